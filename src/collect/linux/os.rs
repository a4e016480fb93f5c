//! node_exporter's `os` collector: `node_os_info` (os-release(5) fields as labels) and
//! `node_os_version` (the major.minor of `VERSION_ID`), from the host's /etc/os-release, else
//! /usr/lib/os-release, under the root path. The file is read again only when its modification
//! time changes, as node_exporter does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::collect::{CollectError, Collector, HostPaths};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// Where os-release(5) is, in the order it is looked for.
pub const OS_RELEASE_FILES: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// Samples between two checks of the file's modification time.
const CHECK_EVERY: u64 = 60;

/// The `KEY=value` pairs of an os-release file, values unquoted; comments and malformed lines
/// skipped. Later assignments win, as in a shell.
pub fn os_release_fields(text: &str) -> HashMap<&str, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            let key = key.trim();
            let valid =
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            valid.then(|| (key, unquote(value.trim())))
        })
        .collect()
}

/// An os-release value without its shell quoting (`"…"` or `'…'`, with `\"`-style escapes).
fn unquote(value: &str) -> String {
    let inner = ['"', '\'']
        .into_iter()
        .find_map(|q| value.strip_prefix(q)?.strip_suffix(q))
        .unwrap_or(value);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('"' | '\\' | '$' | '`' | '\''))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// node_exporter's `^[0-9]+\.?[0-9]*` of `VERSION_ID` as a number (`22.04` → 22.04, `12` → 12,
/// `rolling` → none).
pub fn major_minor(version_id: &str) -> Option<f64> {
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let major = digits(version_id);
    if major == 0 {
        return None;
    }
    let end = match version_id[major..].strip_prefix('.') {
        Some(rest) => major + 1 + digits(rest),
        None => major,
    };
    version_id[..end].parse().ok()
}

/// The two families of one os-release file.
pub fn families(text: &str) -> Vec<KernelFamily> {
    let fields = os_release_fields(text);
    let field = |key: &str| fields.get(key).map_or("", String::as_str);
    let mut out = vec![KernelFamily::new(
        "node_os_info",
        "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, \
         image_version, name, pretty_name, variant, variant_id, version, version_codename, \
         version_id.",
        KernelMetricKind::Gauge,
    )
    .with(
        &[
            ("build_id", field("BUILD_ID")),
            ("id", field("ID")),
            ("id_like", field("ID_LIKE")),
            ("image_id", field("IMAGE_ID")),
            ("image_version", field("IMAGE_VERSION")),
            ("name", field("NAME")),
            ("pretty_name", field("PRETTY_NAME")),
            ("variant", field("VARIANT")),
            ("variant_id", field("VARIANT_ID")),
            ("version", field("VERSION")),
            ("version_codename", field("VERSION_CODENAME")),
            ("version_id", field("VERSION_ID")),
        ],
        1.0,
    )];
    // node_exporter leaves the version out when it is 0 or not a number.
    if let Some(version) = major_minor(field("VERSION_ID")).filter(|v| *v > 0.0) {
        out.push(
            KernelFamily::new(
                "node_os_version",
                "Metric containing the major.minor part of the OS version.",
                KernelMetricKind::Gauge,
            )
            .with(
                &[
                    ("id", field("ID")),
                    ("id_like", field("ID_LIKE")),
                    ("name", field("NAME")),
                ],
                version,
            ),
        );
    }
    out
}

/// Reads os-release when its modification time changes (checked every [`CHECK_EVERY`] samples).
pub struct OsCollector {
    /// Where the host's root is.
    paths: HostPaths,
    /// The file last read, its modification time and its families.
    read: Option<(PathBuf, Option<SystemTime>, Vec<KernelFamily>)>,
    /// Samples since the last check.
    since_check: u64,
}

impl OsCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self {
            paths,
            read: None,
            since_check: 0,
        }
    }

    /// The families of the first os-release file that exists, read again if it changed.
    fn check(&mut self) -> Result<(), CollectError> {
        for host_path in OS_RELEASE_FILES {
            let path = self.paths.root(host_path);
            let modified = match std::fs::metadata(&path) {
                Ok(metadata) => metadata.modified().ok(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CollectError::Io { path, source }),
            };
            if let Some((read_path, read_modified, _)) = &self.read {
                if *read_path == path && *read_modified == modified && modified.is_some() {
                    return Ok(());
                }
            }
            let text = std::fs::read_to_string(&path).map_err(|source| CollectError::Io {
                path: path.clone(),
                source,
            })?;
            self.read = Some((path, modified, families(&text)));
            return Ok(());
        }
        self.read = None;
        Err(CollectError::Other(format!(
            "no os-release file ({} or {})",
            self.paths.root(OS_RELEASE_FILES[0]).display(),
            self.paths.root(OS_RELEASE_FILES[1]).display()
        )))
    }
}

impl Collector for OsCollector {
    fn name(&self) -> &'static str {
        "os"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        if self.read.is_none() || self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            self.check()?;
        }
        self.since_check += 1;
        if let Some((_, _, families)) = &self.read {
            snapshot.kernel_families.extend(families.iter().cloned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    fn labels(family: &KernelFamily) -> Vec<(&str, &str)> {
        family.samples[0]
            .labels
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect()
    }

    #[test]
    fn debian_reads_as_node_exporter_printed_it() {
        let text =
            std::fs::read_to_string(fixture("captured-vm").join("root/etc/os-release")).unwrap();
        let families = families(&text);
        // node_exporter 1.5 on the VM the fixture was captured on.
        assert_eq!(
            labels(&families[0]),
            [
                ("build_id", ""),
                ("id", "debian"),
                ("id_like", ""),
                ("image_id", ""),
                ("image_version", ""),
                ("name", "Debian GNU/Linux"),
                ("pretty_name", "Debian GNU/Linux 12 (bookworm)"),
                ("variant", ""),
                ("variant_id", ""),
                ("version", "12 (bookworm)"),
                ("version_codename", "bookworm"),
                ("version_id", "12"),
            ]
        );
        assert_eq!(
            labels(&families[1]),
            [
                ("id", "debian"),
                ("id_like", ""),
                ("name", "Debian GNU/Linux")
            ]
        );
        assert_eq!(families[1].samples[0].value, 12.0);
    }

    #[test]
    fn version_is_the_leading_major_minor() {
        assert_eq!(major_minor("22.04"), Some(22.04));
        assert_eq!(major_minor("12"), Some(12.0));
        assert_eq!(major_minor("8.9.1"), Some(8.9));
        assert_eq!(major_minor("3."), Some(3.0));
        assert_eq!(major_minor("rolling"), None);
        assert_eq!(major_minor(""), None);
        // Arch's os-release has no VERSION_ID: no node_os_version.
        assert_eq!(families("NAME=\"Arch Linux\"\nID=arch\n").len(), 1);
        assert_eq!(families("VERSION_ID=0\n").len(), 1);
    }

    #[test]
    fn fields_are_unquoted_and_comments_skipped() {
        let fields = os_release_fields(
            "# comment\nNAME='Fedora Linux'\nPRETTY_NAME=\"A \\\"B\\\" \\$C\"\nbad line\nID=x\nID=y\n",
        );
        assert_eq!(fields["NAME"], "Fedora Linux");
        assert_eq!(fields["PRETTY_NAME"], "A \"B\" $C");
        assert_eq!(fields["ID"], "y");
        assert_eq!(fields.len(), 3);
    }

    #[test]
    fn usr_lib_is_the_fallback_and_no_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::fixture(dir.path());
        let mut collector = OsCollector::new(paths);
        assert!(collector.collect(&mut Snapshot::default()).is_err());
        let usr_lib = dir.path().join("root/usr/lib");
        std::fs::create_dir_all(&usr_lib).unwrap();
        std::fs::write(usr_lib.join("os-release"), "ID=alpine\nVERSION_ID=3.19.1\n").unwrap();
        let mut snapshot = Snapshot::default();
        collector.collect(&mut snapshot).unwrap();
        assert_eq!(snapshot.kernel_families[1].samples[0].value, 3.19);
    }
}
