//! node_exporter's `filefd` collector: allocated and maximum file handles from
//! /proc/sys/fs/file-nr (`node_filefd_allocated`, `node_filefd_maximum`).

use crate::collect::{CollectError, Collector, HostPaths, KeptOpen};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// /proc/sys/fs/file-nr: `allocated  free  maximum` (the middle one is always 0 since 2.6).
pub fn parse_file_nr(text: &str) -> Result<(u64, u64), String> {
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [allocated, _, maximum] = fields[..] else {
        return Err(format!("{text:?} does not have 3 fields"));
    };
    let number = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("{s:?} is not a number"))
    };
    Ok((number(allocated)?, number(maximum)?))
}

/// Reads /proc/sys/fs/file-nr every sample (kept open).
pub struct FilefdCollector {
    /// /proc/sys/fs/file-nr.
    file: KeptOpen,
    /// The file's text, kept to reuse its allocation.
    text: String,
}

impl FilefdCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            file: KeptOpen::new(paths.proc("sys/fs/file-nr")),
            text: String::new(),
        }
    }
}

impl Collector for FilefdCollector {
    fn name(&self) -> &'static str {
        "filefd"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.file.read(&mut self.text)?;
        let (allocated, maximum) =
            parse_file_nr(&self.text).map_err(|e| CollectError::parse(self.file.path(), e))?;
        for (stat, value) in [("allocated", allocated), ("maximum", maximum)] {
            snapshot.kernel_families.push(KernelFamily::single(
                format!("node_filefd_{stat}"),
                format!("File descriptor statistics: {stat}."),
                KernelMetricKind::Gauge,
                value as f64,
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
    fn the_captured_vm_reads() {
        let mut collector = FilefdCollector::new(&HostPaths::fixture(fixture("captured-vm")));
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
                ("node_filefd_allocated", 1062.0),
                ("node_filefd_maximum", 2_466_126.0)
            ]
        );
    }

    #[test]
    fn malformed_files_are_refused() {
        assert_eq!(
            parse_file_nr("1024\t0\t9223372036854775807\n"),
            Ok((1024, i64::MAX as u64))
        );
        assert!(parse_file_nr("1 2").is_err());
        assert!(parse_file_nr("a 0 3").is_err());
    }
}
