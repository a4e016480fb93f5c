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

/// A procfs or sysfs file read every sample (/proc/vmstat, /proc/self/stat): opened once and
/// read again from its start, which saves the path walk and the open/close of each sample. The
/// kernel generates these files afresh on every read from offset 0. A read that fails closes the
/// file, and the next read opens it again (a file that went away and came back).
///
/// Only for procfs and sysfs: a regular file replaced by a rename (/etc/os-release) would keep
/// reading its old contents.
#[derive(Debug)]
pub struct KeptOpen {
    /// What is read, for errors and for reopening.
    path: PathBuf,
    /// The open file; `None` before the first read and after a failed one.
    file: Option<std::fs::File>,
}

impl KeptOpen {
    /// The file at `path`, opened at its first read.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: None,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file into `buffer` (replacing its contents, keeping its capacity).
    pub fn read(&mut self, buffer: &mut String) -> Result<(), CollectError> {
        use std::io::{Read, Seek};
        buffer.clear();
        if let Some(file) = self.file.as_mut() {
            let reread = file.rewind().and_then(|()| file.read_to_string(buffer));
            if reread.is_ok() {
                return Ok(());
            }
            buffer.clear();
            self.file = None;
        }
        self.file = Some(open_and_read(&self.path, buffer)?);
        Ok(())
    }
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

    #[test]
    fn a_kept_file_reads_its_current_contents_and_reopens_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        std::fs::write(&path, "1\n").unwrap();
        let mut kept = KeptOpen::new(&path);
        let mut text = String::new();
        kept.read(&mut text).unwrap();
        assert_eq!(text, "1\n");
        // Rewritten in place (as the kernel regenerates a procfs file): the same handle sees it.
        std::fs::write(&path, "22\n").unwrap();
        kept.read(&mut text).unwrap();
        assert_eq!(text, "22\n");
        std::fs::remove_file(&path).unwrap();
        kept.file = None;
        assert!(matches!(kept.read(&mut text), Err(CollectError::Io { .. })));
        std::fs::write(&path, "3\n").unwrap();
        kept.read(&mut text).unwrap();
        assert_eq!(text, "3\n");
    }
}
