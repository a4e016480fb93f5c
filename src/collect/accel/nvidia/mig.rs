//! The MIG devices of an NVIDIA GPU in MIG mode: found when the GPU is scanned (with their
//! GPU/compute instance ids and profile name), read each sample (memory, processes).
//!
//! nvml-wrapper does not wrap the instance queries; [`super::raw`] makes them.

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Device;

use super::convert::{self, merge_processes};
use super::query::{classify, DeviceError, Failure, Query, Reader, Unsupported};
use super::raw::{self, RawHandle, Session};
use crate::model::MigDevice;

/// One MIG device, as found at the last scan.
pub struct Mig {
    /// The handle in the current NVML session.
    handle: RawHandle,
    /// What the model reports that does not change while the instance exists.
    facts: MigDevice,
    /// Queries this MIG device does not support.
    unsupported: Unsupported,
}

impl Mig {
    /// Reads the instance now (memory, processes). An error means the parent GPU is gone.
    pub fn sample(&mut self, session: &Session, gpu: u32) -> Result<MigDevice, DeviceError> {
        let device = session.device(self.handle).map_err(|source| DeviceError {
            index: gpu,
            function: Query::MigDevices.function(),
            source,
        })?;
        let mut q = Reader {
            index: gpu,
            unsupported: &mut self.unsupported,
        };
        let mut m = self.facts.clone();
        if let Some(memory) = q.get(Query::Memory, || device.memory_info())? {
            m.memory_used_bytes = Some(memory.used);
            m.memory_total_bytes = Some(memory.total);
        }
        let processes = q.get(Query::ComputeProcesses, || {
            device.running_compute_processes()
        })?;
        m.processes = merge_processes(processes.into_iter().flatten());
        Ok(m)
    }
}

/// The MIG devices of `parent` (NVML index `gpu`). `profiles` caches the GPU's instance profiles
/// (they depend on the board only). An instance found in `previous` (same UUID) is kept as it
/// was, with what it does not support: only new instances are queried for their facts.
pub fn scan(
    session: &Session,
    parent: &Device<'_>,
    gpu: u32,
    q: &mut Reader<'_>,
    profiles: &mut Option<Vec<(u32, String)>>,
    mut previous: Vec<Mig>,
) -> Result<Vec<Mig>, DeviceError> {
    let Some(max) = q.get(Query::MigDevices, || parent.mig_device_count())? else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for index in 0..max {
        // Indices without an instance answer NOT_FOUND (or INVALID_ARGUMENT past the last).
        let device = match parent.mig_device_by_index(index) {
            Ok(device) => device,
            Err(source) if classify(&source) == Failure::Fatal => {
                return Err(DeviceError {
                    index: gpu,
                    function: Query::MigDevices.function(),
                    source,
                })
            }
            Err(_) => continue,
        };
        let handle = session.keep(&device);
        let mut unsupported = Unsupported::default();
        let mut mq = Reader {
            index: gpu,
            unsupported: &mut unsupported,
        };
        let uuid = mq.get(Query::Uuid, || device.uuid())?;
        let known = previous
            .iter()
            .position(|m| uuid.is_some() && m.facts.uuid == uuid && m.facts.index == index);
        if let Some(at) = known {
            let mut kept = previous.swap_remove(at);
            kept.handle = handle;
            found.push(kept);
            continue;
        }
        let ids = mq.get(Query::MigInstanceIds, || raw::instance_ids(&device))?;
        let attributes = mq.get(Query::MigAttributes, || device.attributes())?;
        let mut profile = None;
        if let Some((gpu_instance, _)) = ids {
            if profiles.is_none() {
                let table = q.get(Query::MigProfile, || profile_table(parent))?;
                *profiles = Some(table.unwrap_or_default());
            }
            let profile_id = q.get(Query::MigInstanceProfile, || {
                raw::instance_profile_id(parent, gpu_instance)
            })?;
            let name = profile_id.and_then(|id| {
                let table = profiles.as_deref().unwrap_or_default();
                table
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, n)| n.as_str())
            });
            profile = name.map(|name| {
                convert::mig_profile_name(
                    name,
                    attributes.as_ref().map(|a| a.gpu_instance_slice_count),
                    attributes.as_ref().map(|a| a.compute_instance_slice_count),
                )
            });
        }
        found.push(Mig {
            handle,
            facts: MigDevice {
                index,
                uuid,
                gpu_instance_id: ids.map(|(gi, _)| gi),
                compute_instance_id: ids.map(|(_, ci)| ci),
                profile,
                multiprocessors: attributes.map(|a| a.multiprocessor_count),
                ..MigDevice::default()
            },
            unsupported,
        });
    }
    Ok(found)
}

/// Every GPU instance profile of `parent`: (profile id, name such as `MIG 1g.10gb`).
fn profile_table(parent: &Device<'_>) -> Result<Vec<(u32, String)>, NvmlError> {
    let mut table = Vec::new();
    for answer in raw::instance_profiles(parent)? {
        match answer {
            Ok(profile) => table.push(profile),
            // Profiles this board does not offer answer NOT_SUPPORTED (or INVALID_ARGUMENT).
            Err(error) if classify(&error) == Failure::Fatal => return Err(error),
            Err(_) => {}
        }
    }
    Ok(table)
}
