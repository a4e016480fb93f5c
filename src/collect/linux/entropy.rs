//! node_exporter's `entropy` collector: the kernel's random pool, from
//! /proc/sys/kernel/random/entropy_avail (every sample) and poolsize (fixed while the kernel
//! runs: read once).

use crate::collect::{read_number, CollectError, Collector, HostPaths, KeptOpen};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// Reads the available entropy every sample (kept open) and the pool size once.
pub struct EntropyCollector {
    /// /proc/sys/kernel/random/entropy_avail.
    available: KeptOpen,
    /// `poolsize`, read at the first sample; `None` where the kernel lacks it.
    pool_size: Option<Option<f64>>,
    /// Where /proc is.
    paths: HostPaths,
    /// The file's text, kept to reuse its allocation.
    text: String,
}

impl EntropyCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            available: KeptOpen::new(paths.proc("sys/kernel/random/entropy_avail")),
            pool_size: None,
            paths: paths.clone(),
            text: String::new(),
        }
    }
}

impl Collector for EntropyCollector {
    fn name(&self) -> &'static str {
        "entropy"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.available.read(&mut self.text)?;
        let available: f64 = self.text.trim().parse().map_err(|_| {
            CollectError::parse(
                self.available.path(),
                format!("{:?} is not a number", self.text),
            )
        })?;
        snapshot.kernel_families.push(KernelFamily::single(
            "node_entropy_available_bits",
            "Bits of available entropy.",
            KernelMetricKind::Gauge,
            available,
        ));
        let paths = &self.paths;
        let pool_size = *self
            .pool_size
            .get_or_insert_with(|| read_number(paths.proc("sys/kernel/random/poolsize")));
        if let Some(pool_size) = pool_size {
            snapshot.kernel_families.push(KernelFamily::single(
                "node_entropy_pool_size_bits",
                "Bits of entropy pool.",
                KernelMetricKind::Gauge,
                pool_size,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    #[test]
    fn the_captured_vm_has_a_full_pool_of_256_bits() {
        let mut collector = EntropyCollector::new(&HostPaths::fixture(fixture("captured-vm")));
        let mut snapshot = Snapshot::default();
        collector.collect(&mut snapshot).unwrap();
        let read: Vec<(&str, f64)> = snapshot
            .kernel_families
            .iter()
            .map(|f| (&*f.name, f.samples[0].value))
            .collect();
        assert_eq!(
            read,
            [
                ("node_entropy_available_bits", 256.0),
                ("node_entropy_pool_size_bits", 256.0)
            ]
        );
    }

    #[test]
    fn a_host_without_the_files_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut collector = EntropyCollector::new(&HostPaths::fixture(dir.path()));
        assert!(collector.collect(&mut Snapshot::default()).is_err());
    }
}
