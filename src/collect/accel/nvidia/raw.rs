//! The FFI side of the NVML collector, behind safe functions: the NVML session and the device
//! handles kept between samples, and the calls nvml-wrapper does not wrap (a MIG device's GPU and
//! compute instance ids, a GPU's instance profiles), made through the loaded library's symbols
//! (`Nvml::lib`). All of the collector's `unsafe` is here.
//!
//! An NVML device handle is a pointer into the library's state, valid until `nvmlShutdown`. Each
//! kept handle is stamped with the [`Session`] it came from, and a session gives back only its own
//! handles, so none is ever used after its session was shut down.

#![allow(unsafe_code)]

use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::{
    nvmlDevice_t, nvmlGpuInstanceInfo_t, nvmlGpuInstanceProfileInfo_v2_t, nvmlGpuInstance_t,
    NVML_GPU_INSTANCE_PROFILE_COUNT,
};

/// The number the next session gets. Numbers are never reused in a process; 0 is no session's
/// (the stamp of a handle that no session gives back).
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// An initialised NVML and the number that tells it from every other session of this process.
pub struct Session {
    /// The library. Only [`Session::shutdown`] (or dropping the session) shuts it down, so every
    /// handle stamped with `id` is valid while the session lives.
    nvml: Nvml,
    /// This session's number, stamped on the handles it keeps.
    id: u64,
}

impl Session {
    /// A new session of the initialised `nvml`.
    pub fn new(nvml: Nvml) -> Self {
        Self {
            nvml,
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The library, for the calls nvml-wrapper wraps.
    pub fn nvml(&self) -> &Nvml {
        &self.nvml
    }

    /// Ends the session (`nvmlShutdown`); its handles are never given back again.
    pub fn shutdown(self) -> Result<(), NvmlError> {
        self.nvml.shutdown()
    }

    /// A handle of `device` to keep between samples. A device of another library instance gets a
    /// handle that no session gives back.
    pub fn keep(&self, device: &Device<'_>) -> RawHandle {
        let session = if ptr::eq(device.nvml(), &self.nvml) {
            self.id
        } else {
            0
        };
        RawHandle {
            // Passed to NVML again only through `device` below, once the session number shows
            // that the library has not been shut down since.
            device: raw_handle(device),
            session,
        }
    }

    /// The device behind `handle` again; NVML's "uninitialized" for a handle this session did
    /// not keep (its own session may have been shut down).
    pub fn device(&self, handle: RawHandle) -> Result<Device<'_>, NvmlError> {
        if handle.session != self.id {
            return Err(NvmlError::Uninitialized);
        }
        // SAFETY: `keep` stamped the handle with this session's number, so it was read from a
        // device of `self.nvml` (numbers are unique to a session, and checked against the
        // library's address when stamped). That library is still initialised: only `shutdown`
        // or drop end it, and both take the session. NVML handles stay valid until then.
        Ok(unsafe { Device::new(handle.device, &self.nvml) })
    }
}

/// A device handle kept between samples, so that no sample looks a device up again. Usable only
/// through the [`Session`] that kept it.
#[derive(Clone, Copy)]
pub struct RawHandle {
    /// NVML's handle.
    device: nvmlDevice_t,
    /// The number of the session it belongs to.
    session: u64,
}

// SAFETY: an NVML handle is an opaque pointer into the library's state, never dereferenced here,
// and the library is thread-safe ("NVML is thread-safe so it is safe to make simultaneous NVML
// calls from multiple threads", nvml.h), so using it from another thread than the one that read
// it is sound; it is used only through its own live session (`Session::device`).
unsafe impl Send for RawHandle {}

/// NVML's handle of `device`, for the calls nvml-wrapper does not wrap. Valid while `device`
/// lives: it borrows its library, which stays initialised until it is dropped or shut down.
fn raw_handle(device: &Device<'_>) -> nvmlDevice_t {
    // SAFETY: only reads the pointer (nvml-wrapper marks the getter unsafe so that it is not
    // used without care, not for a precondition).
    unsafe { device.handle() }
}

/// The GPU instance and compute instance ids of MIG device `mig`.
pub fn instance_ids(mig: &Device<'_>) -> Result<(u32, u32), NvmlError> {
    let lib = mig.nvml().lib();
    let gpu_instance_id = nvml_sym(lib.nvmlDeviceGetGpuInstanceId.as_ref())?;
    let compute_instance_id = nvml_sym(lib.nvmlDeviceGetComputeInstanceId.as_ref())?;
    let handle = raw_handle(mig);
    let (mut gi, mut ci) = (0, 0);
    // SAFETY: `handle` is valid while `mig` borrows its initialised library; the function is
    // that library's, typed as nvml.h declares it (nvml-wrapper-sys); `gi` is a live local.
    nvml_try(unsafe { gpu_instance_id(handle, &mut gi) })?;
    // SAFETY: as above, with `ci`.
    nvml_try(unsafe { compute_instance_id(handle, &mut ci) })?;
    Ok((gi, ci))
}

/// The profile id of GPU instance `id` of `parent`.
pub fn instance_profile_id(parent: &Device<'_>, id: u32) -> Result<u32, NvmlError> {
    let lib = parent.nvml().lib();
    let by_id = nvml_sym(lib.nvmlDeviceGetGpuInstanceById.as_ref())?;
    let get_info = nvml_sym(lib.nvmlGpuInstanceGetInfo.as_ref())?;
    let mut instance: nvmlGpuInstance_t = ptr::null_mut();
    // SAFETY: the handle is valid while `parent` borrows its initialised library; the function
    // is that library's, typed as nvml.h declares it; `instance` is a live local.
    nvml_try(unsafe { by_id(raw_handle(parent), id, &mut instance) })?;
    // SAFETY: a plain C struct of integers and a pointer, for which all zeroes is a valid value.
    let mut info: nvmlGpuInstanceInfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `instance` is the handle NVML has just given (the call succeeded), of the same
    // initialised library; `info` is a live local.
    nvml_try(unsafe { get_info(instance, &mut info) })?;
    Ok(info.profileId)
}

/// `NVML_STRUCT_VERSION(GpuInstanceProfileInfo, 2)`: the struct's size with the version in the
/// top byte, as nvml.h defines it.
const PROFILE_INFO_V2: u32 =
    std::mem::size_of::<nvmlGpuInstanceProfileInfo_v2_t>() as u32 | (2 << 24);

/// Every GPU instance profile of `parent`, asked one by one as the iterator is read: (profile id,
/// name such as `MIG 1g.10gb`), or NVML's answer for a profile it does not give. An error up
/// front where the library lacks the function.
pub fn instance_profiles<'a>(
    parent: &'a Device<'_>,
) -> Result<impl Iterator<Item = Result<(u32, String), NvmlError>> + 'a, NvmlError> {
    let profile_info = nvml_sym(
        parent
            .nvml()
            .lib()
            .nvmlDeviceGetGpuInstanceProfileInfoV
            .as_ref(),
    )?;
    Ok((0..NVML_GPU_INSTANCE_PROFILE_COUNT).map(move |profile| {
        // SAFETY: a plain C struct of integers and a char array, for which all zeroes is a valid
        // value; versioned below as NVML requires.
        let mut info: nvmlGpuInstanceProfileInfo_v2_t = unsafe { std::mem::zeroed() };
        info.version = PROFILE_INFO_V2;
        // SAFETY: the handle is valid while `parent` borrows its initialised library; the
        // function is that library's, typed as nvml.h declares it; `info` is a live local of the
        // versioned struct's size.
        nvml_try(unsafe { profile_info(raw_handle(parent), profile, &mut info) })?;
        // NVML writes a NUL-terminated name; read up to the first NUL, and never the last byte
        // (the terminator's place).
        let name: Vec<u8> = info
            .name
            .iter()
            .take(info.name.len() - 1)
            .map(|c| c.to_ne_bytes()[0])
            .take_while(|&b| b != 0)
            .collect();
        Ok((info.id, String::from_utf8_lossy(&name).into_owned()))
    }))
}
