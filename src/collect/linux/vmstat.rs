//! node_exporter's `vmstat` collector: the /proc/vmstat fields whose names match
//! `--collector.vmstat.fields` (by default page faults, paging, swapping and OOM kills), each as
//! an untyped `node_vmstat_<field>`, as node_exporter copies them.

use std::sync::Arc;

use regex_lite::Regex;

use crate::collect::{CollectError, Collector, HostPaths, KeptOpen};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// A field the filter kept: where it is in the file and its family's name and help.
#[derive(Debug, Clone, PartialEq)]
struct Kept {
    /// Line number (0-based): the kernel writes the fields in a fixed order.
    line: usize,
    /// The field name, e.g. `pgfault`.
    field: Box<str>,
    /// `node_vmstat_<field>`.
    name: Arc<str>,
    /// `/proc/vmstat information field <field>.`
    help: Arc<str>,
}

/// The fields of `text` that `fields` matches, with where they are.
fn choose(text: &str, fields: &Regex) -> Vec<Kept> {
    text.lines()
        .enumerate()
        .filter_map(|(line, text)| {
            let (field, _) = text.split_once(' ')?;
            fields.is_match(field).then(|| Kept {
                line,
                field: field.into(),
                name: format!("node_vmstat_{field}").into(),
                help: format!("/proc/vmstat information field {field}.").into(),
            })
        })
        .collect()
}

/// The families of the kept fields, or `None` when the file no longer has them where they
/// were (then the fields are chosen again).
fn read_kept(text: &str, kept: &[Kept]) -> Option<Vec<KernelFamily>> {
    let mut lines = text.lines().enumerate();
    kept.iter()
        .map(|k| {
            let (_, line) = lines.find(|(n, _)| *n == k.line)?;
            let value = line.strip_prefix(&*k.field)?.strip_prefix(' ')?;
            let value: f64 = value.trim().parse().ok()?;
            Some(KernelFamily::single(
                Arc::clone(&k.name),
                Arc::clone(&k.help),
                KernelMetricKind::Untyped,
                value,
            ))
        })
        .collect()
}

/// Reads /proc/vmstat every sample (kept open); the filter runs only when the fields move.
pub struct VmstatCollector {
    /// /proc/vmstat.
    file: KeptOpen,
    /// `--collector.vmstat.fields`.
    fields: Regex,
    /// The fields kept, in file order.
    kept: Vec<Kept>,
    /// The file's text, kept to reuse its allocation.
    text: String,
}

impl VmstatCollector {
    pub fn new(paths: &HostPaths, fields: Regex) -> Self {
        Self {
            file: KeptOpen::new(paths.proc("vmstat")),
            fields,
            kept: Vec::new(),
            text: String::new(),
        }
    }
}

impl Collector for VmstatCollector {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.file.read(&mut self.text)?;
        let families = match read_kept(&self.text, &self.kept).filter(|f| !f.is_empty()) {
            Some(families) => families,
            None => {
                self.kept = choose(&self.text, &self.fields);
                read_kept(&self.text, &self.kept).ok_or_else(|| {
                    CollectError::parse(self.file.path(), "a field's value is not a number")
                })?
            }
        };
        snapshot.kernel_families.extend(families);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;
    use crate::config::DEFAULT_VMSTAT_FIELDS;

    fn collect(collector: &mut VmstatCollector) -> Vec<(String, f64)> {
        let mut snapshot = Snapshot::default();
        collector.collect(&mut snapshot).unwrap();
        snapshot
            .kernel_families
            .iter()
            .map(|f| (f.name.to_string(), f.samples[0].value))
            .collect()
    }

    #[test]
    fn the_default_filter_keeps_node_exporters_fields() {
        let paths = HostPaths::fixture(fixture("captured-vm"));
        let mut collector =
            VmstatCollector::new(&paths, Regex::new(DEFAULT_VMSTAT_FIELDS).unwrap());
        let names: Vec<String> = collect(&mut collector)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        // node_exporter 1.5 on the VM the fixture was captured on.
        assert_eq!(
            names,
            [
                "node_vmstat_pgpgin",
                "node_vmstat_pgpgout",
                "node_vmstat_pswpin",
                "node_vmstat_pswpout",
                "node_vmstat_pgfault",
                "node_vmstat_pgmajfault",
                "node_vmstat_oom_kill",
            ]
        );
        // The second sample takes the fast path and reads the same.
        assert_eq!(collect(&mut collector).len(), 7);
    }

    #[test]
    fn fields_that_move_are_chosen_again() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(&proc).unwrap();
        std::fs::write(proc.join("vmstat"), "nr_free_pages 10\npgfault 5\n").unwrap();
        let paths = HostPaths::fixture(dir.path());
        let mut collector =
            VmstatCollector::new(&paths, Regex::new(DEFAULT_VMSTAT_FIELDS).unwrap());
        assert_eq!(
            collect(&mut collector),
            [("node_vmstat_pgfault".into(), 5.0)]
        );
        // A kernel with another field first (or a fixture rewritten): found where it is now.
        std::fs::write(proc.join("vmstat"), "pgfault 6\noom_kill 1\n").unwrap();
        assert_eq!(
            collect(&mut collector),
            [
                ("node_vmstat_pgfault".into(), 6.0),
                ("node_vmstat_oom_kill".into(), 1.0)
            ]
        );
    }
}
