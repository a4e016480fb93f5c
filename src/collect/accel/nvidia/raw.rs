//! The raw side of NVML that nvml-wrapper leaves to its users: device handles kept between
//! samples, for the calls it does not wrap.

use nvml_wrapper::{Device, Nvml};

/// A device handle kept between samples: NVML handles stay valid until `nvmlShutdown`, so no
/// sample looks a device up again.
#[derive(Clone, Copy)]
pub struct RawHandle(nvml_wrapper_sys::bindings::nvmlDevice_t);

// SAFETY: an NVML handle is an opaque pointer owned by the library, which is thread-safe
// ("NVML is thread-safe so it is safe to make simultaneous NVML calls from multiple threads");
// the collector moves handles between threads only together with the `Nvml` they belong to.
unsafe impl Send for RawHandle {}

impl RawHandle {
    /// The handle of `device`.
    pub fn of(device: &Device<'_>) -> Self {
        // SAFETY: reading the pointer has no effect; it is used only with the same `Nvml`.
        Self(unsafe { device.handle() })
    }

    /// The device again.
    ///
    /// # Safety
    /// The handle must come from `nvml`, and `nvml` must not have been shut down since. The
    /// collector clears every handle before it shuts its `Nvml` down.
    pub unsafe fn device(self, nvml: &Nvml) -> Device<'_> {
        Device::new(self.0, nvml)
    }

    /// The raw pointer, for the NVML functions nvml-wrapper does not wrap.
    pub fn raw(self) -> nvml_wrapper_sys::bindings::nvmlDevice_t {
        self.0
    }
}
