//! Facts about the chip read once at start: the GPU's DVFS table (pmgr `voltage-states9`, in the
//! IORegistry under `AppleARMIODevice`), its core count (`AGXAccelerator` `gpu-core-count`) and the
//! chip name (sysctl `machdep.cpu.brand_string`); plus the IOKit service lookup the SMC uses.

#![allow(unsafe_code)]

use std::ffi::{c_char, CStr};
use std::ptr;

use objc2_core_foundation::{CFData, CFDictionary, CFNumber, CFRetained, CFString, CFType};
use objc2_io_kit::{
    io_iterator_t, io_object_t, kIOReturnSuccess, IOIteratorNext, IOObjectRelease,
    IORegistryEntryCreateCFProperty, IORegistryEntryGetName, IOServiceGetMatchingServices,
    IOServiceMatching,
};

use super::decode::{dvfs_frequencies_mhz, dvfs_raw_frequencies};

/// `kIOMainPortDefault`: 0 selects the default main port.
const MAIN_PORT_DEFAULT: libc::mach_port_t = 0;

/// An IOKit object handle (service, registry entry, iterator), released on drop.
pub struct IoObject(
    /// The handle; 0 (null) is never released.
    io_object_t,
);

impl IoObject {
    /// The raw handle, valid while `self` lives.
    pub fn raw(&self) -> io_object_t {
        self.0
    }
}

impl Drop for IoObject {
    fn drop(&mut self) {
        if self.0 != 0 {
            IOObjectRelease(self.0);
        }
    }
}

/// The registry name of an entry (`pmgr`, `AppleSMCKeysEndpoint`, …).
fn entry_name(entry: &IoObject) -> Option<String> {
    let mut name: [c_char; 128] = [0; 128];
    // SAFETY: a live entry and a 128-byte buffer, the `io_name_t` size IOKit writes into.
    let code = unsafe { IORegistryEntryGetName(entry.raw(), &mut name) };
    if code != kIOReturnSuccess {
        return None;
    }
    // SAFETY: on success IOKit wrote a NUL-terminated string into `name`.
    let name = unsafe { CStr::from_ptr(name.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The registered services of IOKit class `class`, with their registry names.
pub fn services(class: &CStr) -> Vec<(IoObject, String)> {
    // SAFETY: a NUL-terminated class name; the dictionary returned is ours (Create rule).
    let Some(matching) = (unsafe { IOServiceMatching(class.as_ptr()) }) else {
        return Vec::new();
    };
    let matching: CFRetained<CFDictionary> = CFRetained::from(&*matching);
    let mut iterator: io_iterator_t = 0;
    // SAFETY: the call consumes the one reference passed; `iterator` is a valid out pointer.
    let code =
        unsafe { IOServiceGetMatchingServices(MAIN_PORT_DEFAULT, Some(matching), &mut iterator) };
    if code != kIOReturnSuccess {
        return Vec::new();
    }
    let iterator = IoObject(iterator);
    std::iter::from_fn(|| match IOIteratorNext(iterator.raw()) {
        0 => None,
        entry => Some(IoObject(entry)),
    })
    .map(|entry| {
        let name = entry_name(&entry).unwrap_or_default();
        (entry, name)
    })
    .collect()
}

/// A property of a registry entry, `None` where it has none by that name.
fn property(entry: &IoObject, key: &str) -> Option<CFRetained<CFType>> {
    let key = CFString::from_str(key);
    // SAFETY: a live entry, a valid key, the default allocator, no options; the value returned
    // is ours (Create rule) and CFRetained releases it.
    unsafe { IORegistryEntryCreateCFProperty(entry.raw(), Some(&key), None, 0) }
}

/// The active GPU states' clocks in MHz, from the power manager's DVFS table (`voltage-states9`,
/// or its `-sram` twin where the first is absent or all zero). `None` when neither is readable.
pub fn gpu_frequencies_mhz() -> Option<Vec<f64>> {
    let (pmgr, _) = services(c"AppleARMIODevice")
        .into_iter()
        .find(|(_, name)| name == "pmgr")?;
    ["voltage-states9", "voltage-states9-sram"]
        .into_iter()
        .filter_map(|key| property(&pmgr, key)?.downcast::<CFData>().ok())
        .map(|table| dvfs_frequencies_mhz(&dvfs_raw_frequencies(&table.to_vec())))
        .find(|mhz| !mhz.is_empty())
}

/// The GPU's core count from the AGX driver's registry entry.
pub fn gpu_core_count() -> Option<u32> {
    services(c"AGXAccelerator")
        .into_iter()
        .find_map(|(agx, _)| {
            let count = property(&agx, "gpu-core-count")?
                .downcast::<CFNumber>()
                .ok()?;
            u32::try_from(count.as_i64()?).ok()
        })
}

/// The chip's marketing name, e.g. `Apple M2 Pro`.
pub fn chip_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    let mut length = buffer.len();
    // SAFETY: `buffer`/`length` describe a writable buffer; no new value is set.
    let code = unsafe {
        libc::sysctlbyname(
            c"machdep.cpu.brand_string".as_ptr(),
            buffer.as_mut_ptr().cast(),
            &mut length,
            ptr::null_mut(),
            0,
        )
    };
    if code != 0 {
        return None;
    }
    let text = &buffer[..length.min(buffer.len())];
    let name = CStr::from_bytes_until_nul(text)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(text).into_owned());
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}
