//! The MIG devices of an NVIDIA GPU in MIG mode: found when the GPU is scanned (with their
//! GPU/compute instance ids and profile name), read each sample (memory, processes).
//!
//! nvml-wrapper does not wrap the instance queries, so those call the loaded library's symbols
//! directly (`Nvml::lib`).

use std::ffi::CStr;

use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::{
    nvmlGpuInstanceInfo_t, nvmlGpuInstanceProfileInfo_v2_t, nvmlGpuInstance_t,
    NVML_GPU_INSTANCE_PROFILE_COUNT,
};

use super::convert::{self, merge_processes};
use super::query::{classify, DeviceError, Failure, Query, Reader, Unsupported};
use super::raw::RawHandle;
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
    pub fn sample(&mut self, nvml: &Nvml, gpu: u32) -> Result<MigDevice, DeviceError> {
        // SAFETY: `handle` belongs to `nvml` (handles are cleared before a shutdown).
        let device = unsafe { self.handle.device(nvml) };
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
    nvml: &Nvml,
    parent: &Device<'_>,
    gpu: u32,
    q: &mut Reader<'_>,
    profiles: &mut Option<Vec<(u32, String)>>,
    mut previous: Vec<Mig>,
) -> Result<Vec<Mig>, DeviceError> {
    let Some(max) = q.get(Query::MigDevices, || parent.mig_device_count())? else {
        return Ok(Vec::new());
    };
    let parent_handle = RawHandle::of(parent);
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
        let handle = RawHandle::of(&device);
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
        let ids = mq.get(Query::MigInstanceIds, || instance_ids(nvml, handle))?;
        let attributes = mq.get(Query::MigAttributes, || device.attributes())?;
        let mut profile = None;
        if let Some((gpu_instance, _)) = ids {
            if profiles.is_none() {
                let table = q.get(Query::MigProfile, || profile_table(nvml, parent_handle))?;
                *profiles = Some(table.unwrap_or_default());
            }
            let profile_id = q.get(Query::MigInstanceProfile, || {
                instance_profile_id(nvml, parent_handle, gpu_instance)
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

/// GPU instance and compute instance ids of a MIG device.
fn instance_ids(nvml: &Nvml, mig: RawHandle) -> Result<(u32, u32), NvmlError> {
    let lib = nvml.lib();
    let gpu_instance_id = nvml_sym(lib.nvmlDeviceGetGpuInstanceId.as_ref())?;
    let compute_instance_id = nvml_sym(lib.nvmlDeviceGetComputeInstanceId.as_ref())?;
    let (mut gi, mut ci) = (0, 0);
    // SAFETY: valid handle of this session; the out-pointers are live locals.
    unsafe {
        nvml_try(gpu_instance_id(mig.raw(), &mut gi))?;
        nvml_try(compute_instance_id(mig.raw(), &mut ci))?;
    }
    Ok((gi, ci))
}

/// The profile id of GPU instance `id` of `parent`.
fn instance_profile_id(nvml: &Nvml, parent: RawHandle, id: u32) -> Result<u32, NvmlError> {
    let lib = nvml.lib();
    let by_id = nvml_sym(lib.nvmlDeviceGetGpuInstanceById.as_ref())?;
    let get_info = nvml_sym(lib.nvmlGpuInstanceGetInfo.as_ref())?;
    let mut instance: nvmlGpuInstance_t = std::ptr::null_mut();
    // SAFETY: valid handle of this session; NVML fills the zeroed plain-data struct.
    unsafe {
        nvml_try(by_id(parent.raw(), id, &mut instance))?;
        let mut info: nvmlGpuInstanceInfo_t = std::mem::zeroed();
        nvml_try(get_info(instance, &mut info))?;
        Ok(info.profileId)
    }
}

/// `NVML_STRUCT_VERSION(GpuInstanceProfileInfo, 2)`: the struct's size with the version in the
/// top byte, as nvml.h defines it.
const PROFILE_INFO_V2: u32 =
    std::mem::size_of::<nvmlGpuInstanceProfileInfo_v2_t>() as u32 | (2 << 24);

/// Every GPU instance profile of `parent`: (profile id, name such as `MIG 1g.10gb`).
fn profile_table(nvml: &Nvml, parent: RawHandle) -> Result<Vec<(u32, String)>, NvmlError> {
    let profile_info = nvml_sym(nvml.lib().nvmlDeviceGetGpuInstanceProfileInfoV.as_ref())?;
    let mut table = Vec::new();
    for profile in 0..NVML_GPU_INSTANCE_PROFILE_COUNT {
        // SAFETY: plain-data struct, zeroed then versioned as NVML requires.
        let mut info: nvmlGpuInstanceProfileInfo_v2_t = unsafe { std::mem::zeroed() };
        info.version = PROFILE_INFO_V2;
        // SAFETY: valid handle of this session; `info` is a live local.
        let code = unsafe { profile_info(parent.raw(), profile, &mut info) };
        match nvml_try(code) {
            Ok(()) => {
                // SAFETY: NVML writes a NUL-terminated name; the last byte is forced to NUL.
                info.name[info.name.len() - 1] = 0;
                let name = unsafe { CStr::from_ptr(info.name.as_ptr()) };
                table.push((info.id, name.to_string_lossy().into_owned()));
            }
            // Profiles this board does not offer answer NOT_SUPPORTED (or INVALID_ARGUMENT).
            Err(error) if classify(&error) == Failure::Fatal => return Err(error),
            Err(_) => {}
        }
    }
    Ok(table)
}
