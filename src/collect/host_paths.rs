//! Reading the host's files through [`HostPaths`] (its /proc, /sys and / roots): every Linux
//! collector reads through these, so the agent works in a container with the host mounted at
//! /host and tests run on fixture trees.

use std::path::{Path, PathBuf};

use super::CollectError;
#[cfg(doc)]
use super::HostPaths;

/// Reads a whole file into `buffer`, replacing its contents but keeping its capacity, so a file
/// read every sample (/proc/diskstats, /proc/net/tcp with 100k sockets) costs no allocation.
pub fn read_into(path: impl AsRef<Path>, buffer: &mut String) -> Result<(), CollectError> {
    open_and_read(path.as_ref(), buffer).map(drop)
}

/// [`read_into`], returning the open file (for a file that is watched afterwards).
pub fn open_and_read(path: &Path, buffer: &mut String) -> Result<std::fs::File, CollectError> {
    use std::io::Read;
    buffer.clear();
    std::fs::File::open(path)
        .and_then(|mut file| file.read_to_string(buffer).map(|_| file))
        .map_err(|source| CollectError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a one-value sysfs/procfs file, trimmed; `None` when absent or unreadable (optional data).
pub fn read_optional(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Reads a one-number sysfs file; `None` when absent, unreadable or not a number.
pub fn read_number<T: std::str::FromStr>(path: impl AsRef<Path>) -> Option<T> {
    read_optional(path)?.parse().ok()
}

/// Entries of `dir` named exactly `<prefix>N` (`card1`, not the connector `card1-DP-1`) that
/// are directories (following symlinks, as /sys/class entries are links into /sys/devices),
/// ordered by N as the kernel numbered them (`hwmon10` after `hwmon9`). Absent `dir` → empty.
pub fn numbered_dirs(dir: &Path, prefix: &str) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_prefix(prefix)?.parse().ok()?;
            let path = e.path();
            path.is_dir().then_some((n, path))
        })
        .collect();
    found.sort_unstable_by_key(|(n, _)| *n);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_dirs_skip_connectors_and_sort_numerically() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["card10", "card2", "card2-DP-1", "renderD128", "version"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("card3"), "a file, not a device").unwrap();
        let found: Vec<u32> = numbered_dirs(dir.path(), "card")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(found, [2, 10]);
        assert!(numbered_dirs(&dir.path().join("absent"), "card").is_empty());
    }
}
