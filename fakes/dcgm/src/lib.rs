//! Fake dcgm (to be built: issue 3).
