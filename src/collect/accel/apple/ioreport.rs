//! IOReport, the private kernel-counter library behind powermetrics (`/usr/lib/libIOReport.dylib`):
//! one subscription to a few channel groups, sampled on demand; the delta of two samples gives each
//! channel's energy or state residencies over the interval. Reads the kernel's IOReport channels.
//!
//! The functions are undocumented; their signatures are the ones powermetrics-alikes (macmon,
//! asitop, socpowerbud) have used for years. Every object they return follows CoreFoundation's
//! Create/Copy rule and is held in a [`CFRetained`], which releases it.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use objc2_core_foundation::{
    CFArray, CFDictionary, CFMutableDictionary, CFRetained, CFString, CFType,
};

use super::decode::{ChannelValue, IntervalChannel, StateResidency};

#[link(name = "IOReport", kind = "dylib")]
unsafe extern "C" {
    fn IOReportCopyChannelsInGroup(
        group: &CFString,
        subgroup: Option<&CFString>,
        a: u64,
        b: u64,
        c: u64,
    ) -> Option<NonNull<CFMutableDictionary>>;
    fn IOReportMergeChannels(into: &CFMutableDictionary, from: &CFDictionary, nil: *const c_void);
    fn IOReportCreateSubscription(
        allocator: *const c_void,
        desired: &CFMutableDictionary,
        subscribed: *mut *mut CFMutableDictionary,
        channel_id: u64,
        nil: *const c_void,
    ) -> Option<NonNull<CFType>>;
    fn IOReportCreateSamples(
        subscription: &CFType,
        channels: &CFMutableDictionary,
        nil: *const c_void,
    ) -> Option<NonNull<CFDictionary>>;
    fn IOReportCreateSamplesDelta(
        previous: &CFDictionary,
        current: &CFDictionary,
        nil: *const c_void,
    ) -> Option<NonNull<CFDictionary>>;
    fn IOReportChannelGetGroup(channel: &CFDictionary) -> *const CFString;
    fn IOReportChannelGetSubGroup(channel: &CFDictionary) -> *const CFString;
    fn IOReportChannelGetChannelName(channel: &CFDictionary) -> *const CFString;
    fn IOReportChannelGetUnitLabel(channel: &CFDictionary) -> *const CFString;
    // The second argument is declared an index by some and an error out-pointer by others; a
    // pointer-sized null reads as 0 either way, where a 32-bit 0 would leave the upper half of
    // the register undefined.
    fn IOReportSimpleGetIntegerValue(channel: &CFDictionary, error: *mut i32) -> i64;
    fn IOReportStateGetCount(channel: &CFDictionary) -> i32;
    fn IOReportStateGetNameForIndex(channel: &CFDictionary, index: i32) -> *const CFString;
    fn IOReportStateGetResidency(channel: &CFDictionary, index: i32) -> i64;
}

/// Why IOReport could not be subscribed to.
#[derive(Debug, thiserror::Error)]
pub enum IoReportError {
    /// None of the requested groups exists on this machine (a VM, an Intel Mac).
    #[error("IOReport has none of the channel groups {0}")]
    NoChannels(String),
    /// `IOReportCreateSubscription` returned nothing.
    #[error("IOReport refused the subscription to {0}")]
    Subscription(String),
}

/// How a group's channels carry their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One integer per channel (energy counters).
    Simple,
    /// A residency per performance state.
    State,
}

/// A channel group to subscribe to.
#[derive(Debug, Clone, Copy)]
pub struct GroupSpec {
    /// Group name, e.g. `Energy Model`.
    pub group: &'static str,
    /// Subgroup, or `None` for the whole group.
    pub subgroup: Option<&'static str>,
    /// How to read the group's values.
    pub format: Format,
}

/// A channel's identity: its group, subgroup and name, as IOReport spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelId {
    /// e.g. `Energy Model`, `GPU Stats`.
    pub group: String,
    /// e.g. `GPU Performance States`; empty where there is none.
    pub subgroup: String,
    /// e.g. `GPU Energy`, `GPUPH`.
    pub name: String,
}

/// A live IOReport subscription.
pub struct Subscription {
    /// The subscription object IOReport returned.
    handle: CFRetained<CFType>,
    /// The channels subscribed to, as IOReport filled them in; every sample reads these.
    channels: CFRetained<CFMutableDictionary>,
    /// The groups asked for, to know how to read each channel.
    groups: Vec<GroupSpec>,
}

// SAFETY: the subscription and its channel dictionary are owned by this value alone (no other
// reference to them escapes), so moving it to another thread moves every use with it; IOReport
// has no thread affinity and CoreFoundation's retain/release are thread-safe.
unsafe impl Send for Subscription {}

/// One cumulative sample of the subscribed channels.
pub struct Sample(
    /// The sample dictionary IOReport returned.
    CFRetained<CFDictionary>,
);

// SAFETY: an immutable CFDictionary owned by this value alone; see `Subscription`.
unsafe impl Send for Sample {}

/// The string behind a Get-rule `CFStringRef` (owned by the channel, possibly null), copied.
///
/// # Safety
/// `string` must be null or point to a CFString that stays alive for the call.
unsafe fn copy_string(string: *const CFString) -> String {
    // SAFETY: the caller guarantees the pointer is null or valid.
    unsafe { string.as_ref() }.map_or_else(String::new, |s| s.to_string().trim().to_string())
}

/// The `IOReportChannels` array of a channel list or sample, as dictionaries.
fn channel_items(dict: &CFDictionary) -> Vec<CFRetained<CFDictionary>> {
    let key = CFString::from_static_str("IOReportChannels");
    // SAFETY: IOReport's dictionaries have CFString keys and CF object values.
    let typed: &CFDictionary<CFString, CFType> = unsafe { dict.cast_unchecked() };
    let Some(array) = typed.get(&key).and_then(|v| v.downcast::<CFArray>().ok()) else {
        return Vec::new();
    };
    // SAFETY: a CFArray holds CF objects.
    let items: &CFArray<CFType> = unsafe { array.cast_unchecked() };
    items
        .iter()
        .filter_map(|item| item.downcast::<CFDictionary>().ok())
        .collect()
}

/// The identity of a channel dictionary (from a channel list or a sample).
fn channel_id(item: &CFDictionary) -> ChannelId {
    // SAFETY: `item` is a channel dictionary from IOReport; the getters return strings owned by
    // it (or null), copied before `item` can go away.
    unsafe {
        ChannelId {
            group: copy_string(IOReportChannelGetGroup(item)),
            subgroup: copy_string(IOReportChannelGetSubGroup(item)),
            name: copy_string(IOReportChannelGetChannelName(item)),
        }
    }
}

/// The state residencies of a state channel.
fn read_states(item: &CFDictionary) -> Vec<StateResidency> {
    // SAFETY: `item` is a state channel of a sample (the caller checked its group's format);
    // indices stay below the count IOReport gives, and names are copied at once.
    unsafe {
        let count = IOReportStateGetCount(item).max(0);
        (0..count)
            .map(|i| StateResidency {
                name: copy_string(IOReportStateGetNameForIndex(item, i)),
                residency: IOReportStateGetResidency(item, i),
            })
            .collect()
    }
}

/// The integer and unit of a simple channel.
fn read_integer(item: &CFDictionary) -> ChannelValue {
    // SAFETY: `item` is a simple channel of a sample; a null error pointer is allowed.
    unsafe {
        ChannelValue::Integer {
            delta: IOReportSimpleGetIntegerValue(item, ptr::null_mut()),
            unit: copy_string(IOReportChannelGetUnitLabel(item)),
        }
    }
}

impl Subscription {
    /// Subscribes to the channels of `groups` that exist on this machine (at least one must).
    pub fn open(groups: &[GroupSpec]) -> Result<Self, IoReportError> {
        let names = || {
            groups
                .iter()
                .map(|g| format!("{:?}/{:?}", g.group, g.subgroup.unwrap_or("*")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut merged: Option<CFRetained<CFMutableDictionary>> = None;
        for spec in groups {
            let group = CFString::from_str(spec.group);
            let subgroup = spec.subgroup.map(CFString::from_str);
            // SAFETY: valid CFStrings; the returned dictionary follows the Copy rule, so it is
            // ours to release (CFRetained does).
            let found = unsafe {
                IOReportCopyChannelsInGroup(&group, subgroup.as_deref(), 0, 0, 0)
                    .map(|p| CFRetained::from_raw(p))
            };
            let Some(found) = found.filter(|f| !channel_items(f).is_empty()) else {
                continue;
            };
            match &merged {
                // SAFETY: both are live channel dictionaries from IOReport; the merge copies
                // `found`'s channels into `into`, which IOReport returned mutable.
                Some(into) => unsafe { IOReportMergeChannels(into, &found, ptr::null()) },
                None => merged = Some(found),
            }
        }
        let merged = merged.ok_or_else(|| IoReportError::NoChannels(names()))?;
        // Subscribe with a private mutable copy, as powermetrics-alikes do: IOReport may keep and
        // edit the dictionary it is given.
        let merged: &CFDictionary = &merged;
        // SAFETY: default allocator, no capacity hint (0 is allowed), a live dictionary.
        let desired = unsafe { CFMutableDictionary::new_copy(None, 0, Some(merged)) }
            .ok_or_else(|| IoReportError::Subscription(names()))?;
        let mut subscribed: *mut CFMutableDictionary = ptr::null_mut();
        // SAFETY: `desired` is a live mutable channel dictionary and `subscribed` a valid out
        // pointer; both returned objects follow the Create rule and are wrapped at once.
        let (handle, subscribed) = unsafe {
            let handle =
                IOReportCreateSubscription(ptr::null(), &desired, &mut subscribed, 0, ptr::null())
                    .map(|p| CFRetained::from_raw(p));
            (
                handle,
                NonNull::new(subscribed).map(|p| CFRetained::from_raw(p)),
            )
        };
        let handle = handle.ok_or_else(|| IoReportError::Subscription(names()))?;
        Ok(Self {
            handle,
            channels: subscribed.unwrap_or(desired),
            groups: groups.to_vec(),
        })
    }

    /// The channels this subscription covers.
    pub fn channel_ids(&self) -> Vec<ChannelId> {
        channel_items(&self.channels)
            .iter()
            .map(|item| channel_id(item))
            .collect()
    }

    /// Takes a cumulative sample now; `None` if IOReport returned none.
    pub fn sample(&self) -> Option<Sample> {
        // SAFETY: live subscription and channel dictionary; the sample follows the Create rule.
        unsafe {
            IOReportCreateSamples(&self.handle, &self.channels, ptr::null())
                .map(|p| Sample(CFRetained::from_raw(p)))
        }
    }

    /// The channels' values between two samples, for the subscribed groups; `None` if IOReport
    /// could not compute the delta.
    pub fn delta(&self, previous: &Sample, current: &Sample) -> Option<Vec<IntervalChannel>> {
        // SAFETY: two live samples of this subscription; the delta follows the Create rule.
        let delta = unsafe {
            IOReportCreateSamplesDelta(&previous.0, &current.0, ptr::null())
                .map(|p| CFRetained::from_raw(p))
        }?;
        let channels = channel_items(&delta)
            .iter()
            .filter_map(|item| {
                let id = channel_id(item);
                let spec = self
                    .groups
                    .iter()
                    .find(|g| g.group == id.group && g.subgroup.is_none_or(|s| s == id.subgroup))?;
                let value = match spec.format {
                    Format::Simple => read_integer(item),
                    Format::State => ChannelValue::States(read_states(item)),
                };
                Some(IntervalChannel {
                    group: id.group,
                    subgroup: id.subgroup,
                    name: id.name,
                    value,
                })
            })
            .collect();
        Some(channels)
    }
}
