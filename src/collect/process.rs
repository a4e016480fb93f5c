//! TODO: pid-tree metrics for the legacy GetStats (stub).
