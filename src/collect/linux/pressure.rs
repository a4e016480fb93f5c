//! Pressure collector: Linux pressure stall information from /proc/pressure/{cpu,memory,io}.

use std::io::ErrorKind;

use crate::collect::{CollectError, Collector, HostPaths, KeptFile};
use crate::model::{PressureLine, PressureResource, PressureStats, Snapshot};

/// Parses one PSI file: a `some` line and, except for cpu before Linux 5.13, a `full` line:
/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`.
pub fn parse_pressure(text: &str) -> Result<PressureResource, String> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let Some((kind, values)) = line.trim().split_once(' ') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("line {line:?} has no values"));
        };
        let parsed = parse_line(values).map_err(|e| format!("{kind} line: {e}"))?;
        match kind {
            "some" => some = Some(parsed),
            "full" => full = Some(parsed),
            _ => return Err(format!("unknown line kind {kind:?}")),
        }
    }
    Ok(PressureResource {
        some: some.ok_or("no `some` line")?,
        full,
    })
}

/// The `avg10=… avg60=… avg300=… total=…` part of a PSI line; all four are required.
fn parse_line(values: &str) -> Result<PressureLine, String> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for pair in values.split_ascii_whitespace() {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        let number = || {
            value
                .parse::<f64>()
                .map_err(|_| format!("{key} value {value:?} is not a number"))
        };
        match key {
            "avg10" => avg10 = Some(number()?),
            "avg60" => avg60 = Some(number()?),
            "avg300" => avg300 = Some(number()?),
            // Microseconds; parsed as an integer so a huge total keeps its precision until the
            // one division.
            "total" => {
                let micros: u64 = value
                    .parse()
                    .map_err(|_| format!("total {value:?} is not a number"))?;
                total = Some(micros as f64 / 1e6);
            }
            _ => {} // a future field: ignore, like node_exporter's procfs library
        }
    }
    let missing = |name: &str| format!("no {name}");
    Ok(PressureLine {
        avg10: avg10.ok_or_else(|| missing("avg10"))?,
        avg60: avg60.ok_or_else(|| missing("avg60"))?,
        avg300: avg300.ok_or_else(|| missing("avg300"))?,
        total_seconds: total.ok_or_else(|| missing("total"))?,
    })
}

/// Reads /proc/pressure every sample.
///
/// Without PSI (kernel before 4.20, or built without it) there is no /proc/pressure; with PSI
/// built in but disabled at boot (`psi=0`) the files exist and reading them fails with
/// EOPNOTSUPP. Both are normal: the collector succeeds and the resources are `None` in
/// `Some(PressureStats)`, so "no PSI on this host" differs from "the collector failed" (a
/// `None` section with an error in the status).
pub struct PressureCollector {
    /// <procfs>/pressure/{cpu,memory,io}, kept open.
    files: [KeptFile; 3],
}

impl PressureCollector {
    pub fn new(paths: HostPaths) -> Self {
        let dir = paths.proc("pressure");
        Self {
            files: ["cpu", "memory", "io"].map(|resource| KeptFile::new(dir.join(resource))),
        }
    }
}

/// One resource's file: `None` where the host does not provide it.
fn read_resource(file: &mut KeptFile) -> Result<Option<PressureResource>, CollectError> {
    let parsed = match file.read() {
        Ok(text) => parse_pressure(text),
        Err(CollectError::Io { source: e, .. })
            if e.kind() == ErrorKind::NotFound
                || rustix::io::Errno::from_io_error(&e) == Some(rustix::io::Errno::OPNOTSUPP) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    parsed
        .map(Some)
        .map_err(|e| CollectError::parse(file.path(), e))
}

impl Collector for PressureCollector {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let [cpu, memory, io] = &mut self.files;
        let stats = PressureStats {
            cpu: read_resource(cpu)?,
            memory: read_resource(memory)?,
            io: read_resource(io)?,
        };
        snapshot.pressure = Some(stats);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::collect::linux::fixture;

    fn collect(paths: HostPaths) -> Result<PressureStats, CollectError> {
        let mut snapshot = Snapshot::default();
        PressureCollector::new(paths).collect(&mut snapshot)?;
        Ok(snapshot.pressure.unwrap())
    }

    #[test]
    fn parses_lines() {
        let r = parse_pressure(
            "some avg10=1.53 avg60=1.20 avg300=0.98 total=912837465\n\
             full avg10=0.10 avg60=0.20 avg300=0.30 total=1500000\n",
        )
        .unwrap();
        assert_eq!(r.some.avg10, 1.53);
        assert_eq!(r.some.avg300, 0.98);
        assert_eq!(r.some.total_seconds, 912.837465);
        assert_eq!(r.full.unwrap().total_seconds, 1.5);
        let cpu_only_some = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        assert_eq!(cpu_only_some.unwrap().full, None);
    }

    #[test]
    fn malformed_pressure_is_an_error() {
        assert!(parse_pressure("").is_err());
        assert!(parse_pressure("full avg10=0 avg60=0 avg300=0 total=0\n").is_err());
        assert!(parse_pressure("some avg10=0 avg60=0 avg300=0\n").is_err());
        assert!(parse_pressure("some avg10=x avg60=0 avg300=0 total=0\n").is_err());
        assert!(parse_pressure("some avg10 avg60=0 avg300=0 total=0\n").is_err());
        assert!(parse_pressure("some\n").is_err());
        assert!(parse_pressure("half avg10=0 avg60=0 avg300=0 total=0\n").is_err());
    }

    #[test]
    fn collects_server_fixture() {
        let p = collect(HostPaths::fixture(fixture("server"))).unwrap();
        let cpu = p.cpu.unwrap();
        assert_eq!(cpu.some.avg10, 1.53);
        assert_eq!(cpu.full, None);
        let io = p.io.unwrap();
        assert_eq!(io.full.unwrap().total_seconds, 1928.37465);
        assert_eq!(p.memory.unwrap().some.avg60, 0.12);
    }

    #[test]
    fn collects_captured_vm_fixture() {
        let dir = fixture("captured-vm");
        let p = collect(HostPaths::fixture(&dir)).unwrap();
        for (name, resource) in [("cpu", &p.cpu), ("memory", &p.memory), ("io", &p.io)] {
            let text = std::fs::read_to_string(dir.join("proc/pressure").join(name)).unwrap();
            let total: u64 = text
                .lines()
                .next()
                .unwrap()
                .rsplit("total=")
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let resource = resource.as_ref().unwrap();
            assert_eq!(resource.some.total_seconds, total as f64 / 1e6, "{name}");
            assert_eq!(resource.full.is_some(), text.contains("full"), "{name}");
        }
    }

    #[test]
    fn absent_psi_is_not_an_error_but_garbage_is() {
        let tmp = tempfile::tempdir().unwrap();
        let p = collect(HostPaths::fixture(tmp.path())).unwrap();
        assert_eq!(p, PressureStats::default());

        let dir = tmp.path().join("proc/pressure");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cpu"), "some avg10=0 avg60=0 avg300=0 total=5\n").unwrap();
        let p = collect(HostPaths::fixture(tmp.path())).unwrap();
        assert!(p.cpu.is_some() && p.memory.is_none());

        std::fs::write(dir.join("io"), "garbage\n").unwrap();
        let err = collect(HostPaths::fixture(tmp.path())).unwrap_err();
        assert!(err
            .to_string()
            .contains(&dir.join("io").display().to_string()));
    }

    #[test]
    fn live_host_invariants() {
        let p = collect(HostPaths::default()).unwrap();
        let lines = [&p.cpu, &p.memory, &p.io]
            .into_iter()
            .flatten()
            .flat_map(|r| std::iter::once(r.some).chain(r.full));
        for line in lines {
            for avg in [line.avg10, line.avg60, line.avg300] {
                assert!((0.0..=100.0).contains(&avg));
            }
            assert!(line.total_seconds >= 0.0);
        }
        let readable = std::fs::read_to_string("/proc/pressure/cpu").is_ok();
        assert_eq!(p.cpu.is_some(), readable);
    }
}
