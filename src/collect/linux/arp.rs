//! node_exporter's `arp` collector: entries of the kernel's IPv4 neighbour (ARP) table per
//! device, from /proc/net/arp, as `node_arp_entries{device}`.

use crate::collect::{CollectError, Collector, HostPaths, KeptFile};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// Words in the header line (`IP address HW type Flags HW address Mask Device`).
const HEADER_WORDS: usize = 9;
/// Words in an entry (`192.0.2.1 0x1 0x2 02:fc:00:00:00:05 * eth0`).
const ENTRY_WORDS: usize = 6;

/// Entries per device, sorted by device. Every entry counts, whatever its flags (incomplete
/// ones too), as node_exporter counts them.
pub(crate) fn entries_per_device(text: &str) -> Result<Vec<(&str, u32)>, String> {
    let mut counts: Vec<(&str, u32)> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let (mut count, mut device) = (0, "");
        for word in words.by_ref().take(ENTRY_WORDS) {
            count += 1;
            device = word;
        }
        let count = count + words.count();
        match count {
            0 | HEADER_WORDS => continue,
            ENTRY_WORDS => {}
            _ => {
                return Err(format!(
                    "{count} columns were detected, but {ENTRY_WORDS} were expected"
                ))
            }
        }
        match counts.iter_mut().find(|(d, _)| *d == device) {
            Some((_, n)) => *n += 1,
            None => counts.push((device, 1)),
        }
    }
    counts.sort_unstable();
    Ok(counts)
}

/// Reads /proc/net/arp each sample, kept open.
pub struct ArpCollector {
    /// <procfs>/net/arp.
    file: KeptFile,
}

impl ArpCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            file: KeptFile::new(paths.proc("net/arp")),
        }
    }
}

impl Collector for ArpCollector {
    fn name(&self) -> &'static str {
        "arp"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let text = self.file.read()?;
        let counts = match entries_per_device(text) {
            Ok(counts) => counts,
            Err(m) => return Err(CollectError::parse(self.file.path(), m)),
        };
        let mut family = KernelFamily::new(
            "node_arp_entries",
            "ARP entries by device",
            KernelMetricKind::Gauge,
        );
        for (device, count) in counts {
            family.push(&[("device", device)], f64::from(count));
        }
        snapshot.kernel_families.push(family);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
