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

/// Streams the file at `path` through `chunk`, handing `feed` whole lines (the last piece may
/// lack its newline); `Ok(false)` when the file does not exist. For tables that can be large (the
/// kernel's socket tables: 100k sockets are 15 MB of text) and should not become a resident
/// buffer of that size.
pub fn stream_lines(
    path: &Path,
    chunk: &mut [u8],
    mut feed: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<bool, CollectError> {
    use std::io::Read;
    let io = |source| CollectError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e)),
    };
    let mut filled = 0;
    loop {
        let read = file.read(&mut chunk[filled..]).map_err(io)?;
        if read == 0 {
            break;
        }
        filled += read;
        let Some(end) = chunk[..filled].iter().rposition(|&b| b == b'\n') else {
            if filled == chunk.len() {
                return Err(CollectError::parse(
                    path,
                    "a row longer than the read buffer",
                ));
            }
            continue;
        };
        feed(&chunk[..end]).map_err(|m| CollectError::parse(path, m))?;
        // Keep the partial line after the last newline for the next read.
        chunk.copy_within(end + 1..filled, 0);
        filled -= end + 1;
    }
    feed(&chunk[..filled]).map_err(|m| CollectError::parse(path, m))?;
    Ok(true)
}

/// A /proc or /sys file kept open and read again from its start at each use. procfs and sysfs
/// generate a file's text anew at each read from offset 0, so the descriptor can be kept across
/// samples: that saves the path lookup and the open, most of the cost of a small file (a 130-byte
/// /proc/net/sockstat: 15 µs opened and read, 3 µs read again through a kept descriptor, on the
/// development VM). After a failed read the file is closed, so the next read opens it again (a
/// module loaded since, an interface re-created under the same name).
///
/// Each kept descriptor also holds a page of kernel memory (the seq_file buffer); collectors that
/// read one file per device keep only a bounded number open ([`KeptFile::transient`] for the
/// rest).
#[cfg(unix)]
#[derive(Debug)]
pub struct KeptFile {
    /// The file's path.
    path: PathBuf,
    /// The open file, between reads when kept.
    file: Option<std::fs::File>,
    /// Whether the file stays open between reads.
    keep: bool,
    /// The text of the last read (its allocation reused).
    text: Vec<u8>,
}

#[cfg(unix)]
impl KeptFile {
    /// The most a sysfs attribute or a /proc/sys value holds: one page.
    const VALUE_BYTES: usize = 4096;

    /// A file opened at its first read and kept open.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: None,
            keep: true,
            text: Vec::new(),
        }
    }

    /// A file opened for each read and closed after it.
    pub fn transient(path: impl Into<PathBuf>) -> Self {
        Self {
            keep: false,
            ..Self::new(path)
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file stays open between reads ([`KeptFile::new`]).
    pub fn is_kept(&self) -> bool {
        self.keep
    }

    /// The whole file, read from its start.
    pub fn read(&mut self) -> Result<&str, CollectError> {
        match self.fill(true) {
            Ok(()) => self.text(),
            Err(source) => Err(CollectError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// [`KeptFile::read`], or `None` when the file does not exist.
    pub fn read_if_present(&mut self) -> Result<Option<&str>, CollectError> {
        match self.fill(true) {
            Ok(()) => self.text().map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CollectError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// A one-value sysfs attribute or /proc/sys file, trimmed: one read of at most a page (what
    /// node_exporter's `SysReadFile` does). The error is the system's, for the caller to tell
    /// an attribute the device does not support (`EINVAL`, `EOPNOTSUPP`) from a failure.
    pub fn read_value(&mut self) -> std::io::Result<&str> {
        self.fill(false)?;
        std::str::from_utf8(&self.text)
            .map(str::trim)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    fn text(&self) -> Result<&str, CollectError> {
        std::str::from_utf8(&self.text)
            .map_err(|e| CollectError::parse(&self.path, format!("not text: {e}")))
    }

    /// Reads into `self.text` from offset 0: to the end, or once (`whole` false).
    fn fill(&mut self, whole: bool) -> std::io::Result<()> {
        let file = match self.file.take() {
            Some(file) => file,
            None => std::fs::File::open(&self.path)?,
        };
        let result = read_from_start(&file, &mut self.text, whole);
        if result.is_ok() && self.keep {
            self.file = Some(file);
        }
        result
    }
}

/// Reads `file` from offset 0 into `text` (replacing it, keeping its allocation), with
/// positioned reads, so that a kept file needs no seek. `whole`: until a read returns nothing.
/// Otherwise the file is one value (a sysfs attribute, a /proc/sys setting), which the kernel
/// hands over whole to a single read with room for it: the buffer starts small (values are a few
/// bytes, and a /proc/sys read makes the kernel allocate as much as it asks for) and the read is
/// made again with more room, up to a page, only when it came back full.
#[cfg(unix)]
fn read_from_start(file: &std::fs::File, text: &mut Vec<u8>, whole: bool) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    /// Room for a value's first read.
    const VALUE_FIRST_BYTES: usize = 64;
    /// Least room a read of a whole file asks for.
    const MIN_ROOM: usize = 1024;
    let read_at = |buffer: &mut [u8], offset: usize| loop {
        match file.read_at(buffer, offset as u64) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    text.clear();
    if !whole {
        let mut room = text
            .capacity()
            .clamp(VALUE_FIRST_BYTES, KeptFile::VALUE_BYTES);
        loop {
            text.resize(room, 0);
            let read = read_at(text, 0);
            let n = read.as_ref().map_or(0, |n| *n);
            text.truncate(n);
            read?;
            if n < room || room == KeptFile::VALUE_BYTES {
                return Ok(());
            }
            room = (room * 4).min(KeptFile::VALUE_BYTES);
        }
    }
    loop {
        let start = text.len();
        if text.capacity() - start < MIN_ROOM {
            text.reserve(KeptFile::VALUE_BYTES.max(text.capacity()));
        }
        text.resize(text.capacity(), 0);
        let read = read_at(&mut text[start..], start);
        let n = read.as_ref().map_or(0, |n| *n);
        text.truncate(start + n);
        if read? == 0 {
            return Ok(());
        }
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

    #[cfg(unix)]
    #[test]
    fn a_kept_file_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        let mut kept = KeptFile::new(&path);
        assert!(kept.read_if_present().unwrap().is_none());
        assert!(matches!(kept.read(), Err(CollectError::Io { .. })));

        std::fs::write(&path, "first\n").unwrap();
        assert_eq!(kept.read().unwrap(), "first\n");
        // Rewritten in place (as procfs regenerates its text): the kept descriptor sees it.
        std::fs::write(&path, "second, and longer\n").unwrap();
        assert_eq!(kept.read().unwrap(), "second, and longer\n");
        assert_eq!(kept.read_value().unwrap(), "second, and longer");
        std::fs::write(&path, "3").unwrap();
        assert_eq!(kept.read_if_present().unwrap(), Some("3"));

        // Larger than one read.
        let big = "x".repeat(3 * KeptFile::VALUE_BYTES + 5);
        std::fs::write(&path, &big).unwrap();
        assert_eq!(kept.read().unwrap(), big);
        // A value is read with more room until it fits, up to a page (sysfs's limit).
        assert_eq!(kept.read_value().unwrap().len(), KeptFile::VALUE_BYTES);
        for len in [63, 64, 65, 300, 4095] {
            let value = "v".repeat(len);
            std::fs::write(&path, &value).unwrap();
            assert_eq!(KeptFile::new(&path).read_value().unwrap(), value);
            assert_eq!(kept.read_value().unwrap(), value);
        }

        let mut transient = KeptFile::transient(&path);
        assert!(!transient.is_kept() && kept.is_kept());
        std::fs::write(&path, "t\n").unwrap();
        assert_eq!(transient.read_value().unwrap(), "t");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(transient.read(), Err(CollectError::Parse { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn a_kept_procfs_file_regenerates_its_text() {
        let path = Path::new("/proc/self/stat");
        if !path.exists() {
            return; // Not Linux with procfs.
        }
        let mut kept = KeptFile::new(path);
        let fields = |text: &str| text.split_whitespace().count();
        let first = fields(kept.read().unwrap());
        // Burn some CPU so that utime or the context switch counts move; the text stays whole.
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert_eq!(fields(kept.read().unwrap()), first);
        // A multi-page seq_file read whole through the kept descriptor.
        let netstat = Path::new("/proc/net/netstat");
        if netstat.exists() {
            let mut kept = KeptFile::new(netstat);
            let lines = kept.read().unwrap().lines().count();
            assert_eq!(
                lines,
                std::fs::read_to_string(netstat).unwrap().lines().count()
            );
            assert_eq!(kept.read().unwrap().lines().count(), lines);
        }
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
