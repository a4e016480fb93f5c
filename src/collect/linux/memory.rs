//! Memory collector: /proc/meminfo, every field kept under node_exporter's name, plus the
//! totals `free` shows.

use std::collections::HashMap;
use std::sync::Arc;

use crate::collect::{CollectError, Collector, HostPaths, KeptFile};
use crate::model::{percent, MemoryStats, Snapshot};

/// Parses /proc/meminfo into `(name, value)` in file order, named and scaled as node_exporter's
/// meminfo collector does: `Active(anon)` becomes `Active_anon`, a value with a unit (always
/// `kB`, which means KiB) is multiplied by 1024 and its name gets `_bytes`, and a value without a
/// unit (`HugePages_Total`) is kept as is. The name is what follows `node_memory_` on `/metrics`.
///
/// Names made before are kept in `names` (file key → name): the same ~55 names every second need
/// not be made again.
fn parse_meminfo_with(
    text: &str,
    names: &mut HashMap<String, Arc<str>>,
) -> Result<Vec<(Arc<str>, u64)>, String> {
    let mut fields = Vec::with_capacity(64);
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let Some(key) = parts.next() else {
            continue;
        };
        let key = key
            .strip_suffix(':')
            .ok_or_else(|| format!("line {line:?} has no `key:`"))?;
        let value = parts
            .next()
            .ok_or_else(|| format!("`{key}` has no value"))?;
        let value: u64 = value
            .parse()
            .map_err(|_| format!("`{key}` value {value:?} is not a number"))?;
        let has_unit = parts.next().is_some();
        if parts.next().is_some() {
            return Err(format!("line {line:?} has extra fields"));
        }
        let value = if has_unit {
            value.saturating_mul(1024)
        } else {
            value
        };
        if let Some(name) = names.get(key) {
            fields.push((Arc::clone(name), value));
            continue;
        }
        let mut name = match key.split_once('(') {
            Some((base, rest)) => {
                let inner = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("`{key}` has an unclosed parenthesis"))?;
                format!("{base}_{inner}")
            }
            None => key.to_string(),
        };
        if has_unit {
            name.push_str("_bytes");
        }
        let name: Arc<str> = name.into();
        names.insert(key.to_string(), Arc::clone(&name));
        fields.push((name, value));
    }
    if fields.is_empty() {
        return Err("no fields".into());
    }
    Ok(fields)
}

/// Builds the model from parsed meminfo fields (which it takes, to keep them as `raw`).
///
/// Kernels before 3.14 have no MemAvailable: like node_exporter, it is then estimated as
/// MemFree + Buffers + Cached and appended to `raw`, so `/metrics` still has it.
pub fn memory_stats(mut raw: Vec<(Arc<str>, u64)>) -> Result<MemoryStats, String> {
    let get = |raw: &[(Arc<str>, u64)], name: &str| {
        raw.iter().find(|(n, _)| &**n == name).map(|(_, v)| *v)
    };
    let total = get(&raw, "MemTotal_bytes").ok_or("no MemTotal")?;
    let free = get(&raw, "MemFree_bytes").ok_or("no MemFree")?;
    let available = match get(&raw, "MemAvailable_bytes") {
        Some(available) => available,
        None => {
            let estimate = [free, get(&raw, "Buffers_bytes").unwrap_or(0)]
                .into_iter()
                .chain(get(&raw, "Cached_bytes"))
                .fold(0u64, u64::saturating_add);
            raw.push(("MemAvailable_bytes".into(), estimate));
            estimate
        }
    };
    let swap_total = get(&raw, "SwapTotal_bytes").unwrap_or(0);
    let swap_used = swap_total.saturating_sub(get(&raw, "SwapFree_bytes").unwrap_or(0));
    // MemAvailable can exceed MemTotal briefly (memory hot-add, ballooning); used stays ≥ 0.
    let used = total.saturating_sub(available);
    Ok(MemoryStats {
        total_bytes: total,
        available_bytes: available,
        used_bytes: used,
        free_bytes: free,
        cached_bytes: get(&raw, "Cached_bytes")
            .map(|cached| cached.saturating_add(get(&raw, "SReclaimable_bytes").unwrap_or(0))),
        usage_percent: percent(used as f64, total as f64),
        swap_total_bytes: swap_total,
        swap_used_bytes: swap_used,
        swap_percent: percent(swap_used as f64, swap_total as f64),
        raw,
    })
}

/// Reads /proc/meminfo every sample.
pub struct MemoryCollector {
    /// <procfs>/meminfo, kept open.
    meminfo: KeptFile,
    /// node_exporter names of the meminfo keys seen so far, shared by every snapshot.
    names: HashMap<String, Arc<str>>,
}

impl MemoryCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self {
            meminfo: KeptFile::new(paths.proc("meminfo")),
            names: HashMap::new(),
        }
    }
}

impl Collector for MemoryCollector {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let memory =
            parse_meminfo_with(self.meminfo.read()?, &mut self.names).and_then(memory_stats);
        let memory = memory.map_err(|e| CollectError::parse(self.meminfo.path(), e))?;
        snapshot.memory = Some(memory);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_meminfo(text: &str) -> Result<Vec<(Arc<str>, u64)>, String> {
        parse_meminfo_with(text, &mut HashMap::new())
    }

    #[test]
    fn names_are_made_once_and_shared() {
        let text = std::fs::read_to_string(fixture("server").join("proc/meminfo")).unwrap();
        let mut names = HashMap::new();
        let first = parse_meminfo_with(&text, &mut names).unwrap();
        let second = parse_meminfo_with(&text, &mut names).unwrap();
        assert_eq!(first, second);
        assert!(first
            .iter()
            .zip(&second)
            .all(|(a, b)| Arc::ptr_eq(&a.0, &b.0)));
    }

    use crate::collect::linux::fixture;

    fn value(raw: &[(Arc<str>, u64)], name: &str) -> Option<u64> {
        raw.iter().find(|(n, _)| &**n == name).map(|(_, v)| *v)
    }

    #[test]
    fn names_and_scales_like_node_exporter() {
        let text = std::fs::read_to_string(fixture("server/proc/meminfo")).unwrap();
        let raw = parse_meminfo(&text).unwrap();
        assert_eq!(raw.len(), text.lines().count());
        assert_eq!(
            (&*raw[0].0, raw[0].1),
            ("MemTotal_bytes", 263_856_184 * 1024)
        );
        assert_eq!(value(&raw, "Active_anon_bytes"), Some(31_029_384 * 1024));
        assert_eq!(value(&raw, "Inactive_file_bytes"), Some(52_999_060 * 1024));
        assert_eq!(value(&raw, "AnonHugePages_bytes"), Some(18_874_368 * 1024));
        assert_eq!(value(&raw, "ShmemHugePages_bytes"), Some(16_384 * 1024));
        assert_eq!(value(&raw, "Hugepagesize_bytes"), Some(2048 * 1024));
        // A count, not a size: no unit, no scaling, no suffix.
        assert_eq!(value(&raw, "HugePages_Total"), Some(64));
        assert_eq!(value(&raw, "HugePages_Rsvd"), Some(2));
        assert_eq!(
            value(&raw, "VmallocTotal_bytes"),
            Some(34_359_738_367 * 1024)
        );
        assert!(raw.iter().all(|(n, _)| !n.contains(['(', ')', ':'])));
    }

    #[test]
    fn derives_totals() {
        let text = std::fs::read_to_string(fixture("server/proc/meminfo")).unwrap();
        let m = memory_stats(parse_meminfo(&text).unwrap()).unwrap();
        assert_eq!(m.total_bytes, 263_856_184 * 1024);
        assert_eq!(m.available_bytes, 221_093_844 * 1024);
        assert_eq!(m.used_bytes, (263_856_184 - 221_093_844) * 1024);
        assert_eq!(m.free_bytes, 150_223_412 * 1024);
        assert_eq!(m.swap_used_bytes, (8_388_604 - 8_126_460) * 1024);
        let usage = (263_856_184.0 - 221_093_844.0) / 263_856_184.0 * 100.0;
        assert!((m.usage_percent - usage).abs() < 1e-9);
        assert!((m.swap_percent - 262_144.0 / 8_388_604.0 * 100.0).abs() < 1e-9);
    }

    #[test]
    fn old_kernel_without_memavailable() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        let m = memory_stats(parse_meminfo(text).unwrap()).unwrap();
        assert_eq!(m.available_bytes, 400 * 1024);
        assert_eq!(m.used_bytes, 600 * 1024);
        assert_eq!(value(&m.raw, "MemAvailable_bytes"), Some(400 * 1024));
        // No swap at all: 0 %, not NaN.
        assert_eq!(m.swap_percent, 0.0);
    }

    #[test]
    fn malformed_meminfo_is_an_error() {
        assert!(parse_meminfo("").is_err());
        assert!(parse_meminfo("MemTotal 1000 kB\n").is_err());
        assert!(parse_meminfo("MemTotal:\n").is_err());
        assert!(parse_meminfo("MemTotal: lots kB\n").is_err());
        assert!(parse_meminfo("MemTotal: 1 kB extra\n").is_err());
        assert!(parse_meminfo("Active(anon: 1 kB\n").is_err());
        assert!(memory_stats(parse_meminfo("MemFree: 1 kB\n").unwrap()).is_err());
        // MemAvailable above MemTotal (hot-add): used is 0, not a wrapped u64.
        let odd = memory_stats(
            parse_meminfo("MemTotal: 10 kB\nMemFree: 1 kB\nMemAvailable: 20 kB\n").unwrap(),
        )
        .unwrap();
        assert_eq!((odd.used_bytes, odd.usage_percent), (0, 0.0));
    }

    #[test]
    fn collects_both_fixtures() {
        for name in ["server", "captured-vm"] {
            let text = std::fs::read_to_string(fixture(name).join("proc/meminfo")).unwrap();
            let mut snapshot = Snapshot::default();
            MemoryCollector::new(HostPaths::fixture(fixture(name)))
                .collect(&mut snapshot)
                .unwrap();
            let m = snapshot.memory.unwrap();
            assert_eq!(m.raw.len(), text.lines().count(), "{name}");
            assert!(m.used_bytes <= m.total_bytes && m.swap_used_bytes <= m.swap_total_bytes);
            let total_kb: u64 = text.lines().next().unwrap()[9..]
                .trim()
                .trim_end_matches(" kB")
                .parse()
                .unwrap();
            assert_eq!(m.total_bytes, total_kb * 1024, "{name}");
        }
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let mut snapshot = Snapshot::default();
        let err = MemoryCollector::new(HostPaths::fixture(tmp.path()))
            .collect(&mut snapshot)
            .unwrap_err();
        assert!(matches!(err, CollectError::Io { .. }));
        assert!(err.to_string().contains("meminfo"));
    }

    #[test]
    fn live_host_invariants() {
        let mut snapshot = Snapshot::default();
        MemoryCollector::new(HostPaths::default())
            .collect(&mut snapshot)
            .unwrap();
        let m = snapshot.memory.unwrap();
        assert!(m.total_bytes > 0);
        assert!(m.used_bytes <= m.total_bytes && m.free_bytes <= m.total_bytes);
        assert!((0.0..=100.0).contains(&m.usage_percent));
        assert!((0.0..=100.0).contains(&m.swap_percent));
        // An independent reading: MemTotal never changes without memory hotplug.
        let text = std::fs::read_to_string("/proc/meminfo").unwrap();
        let total_kb: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert_eq!(m.total_bytes, total_kb * 1024);
        let sys = rustix::system::sysinfo();
        assert_eq!(m.total_bytes, sys.totalram as u64 * u64::from(sys.mem_unit));
    }
}
