//! TODO: Prometheus / OpenMetrics encoding (stub).
