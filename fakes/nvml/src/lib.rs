//! Fake nvml (to be built: issue 3).
