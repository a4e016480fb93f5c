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
#[derive(Debug, Default)]
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

/// A /proc or /sys directory kept open and listed again from its start at each use: procfs and
/// sysfs list their current entries at each read from the start, so, as for [`KeptFile`], the
/// path lookup, open and close of each listing are saved. After a failed listing the directory
/// is closed, so the next one opens it again.
#[cfg(unix)]
#[derive(Debug)]
pub struct KeptDir {
    /// The directory's path.
    path: PathBuf,
    /// The open directory, between listings.
    dir: Option<rustix::fs::Dir>,
}

#[cfg(unix)]
impl KeptDir {
    /// A directory opened at its first listing and kept open.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            dir: None,
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Calls `entry` with the name of each entry but `.` and `..`, and whether it is a regular
    /// file.
    pub fn list(&mut self, mut entry: impl FnMut(&[u8], bool)) -> std::io::Result<()> {
        use rustix::fs::{FileType, Mode, OFlags};
        use std::os::unix::ffi::OsStrExt;
        let mut dir = match self.dir.take() {
            Some(mut dir) => {
                dir.rewind();
                dir
            }
            None => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                rustix::fs::Dir::new(rustix::fs::open(&self.path, flags, Mode::empty())?)?
            }
        };
        while let Some(item) = dir.read() {
            let item = item?;
            let name = item.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let is_file = match item.file_type() {
                FileType::Unknown => {
                    std::fs::symlink_metadata(self.path.join(std::ffi::OsStr::from_bytes(name)))
                        .is_ok_and(|m| m.is_file())
                }
                kind => kind == FileType::RegularFile,
            };
            entry(name, is_file);
        }
        self.dir = Some(dir);
        Ok(())
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
    fn a_kept_directory_is_listed_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("class");
        let mut kept = KeptDir::new(&path);
        let list = |kept: &mut KeptDir| {
            let mut seen = Vec::new();
            kept.list(|name, is_file| {
                seen.push((String::from_utf8_lossy(name).into_owned(), is_file))
            })
            .map(|()| {
                seen.sort();
                seen
            })
        };
        // Absent: an error, and the next listing tries again.
        let absent = list(&mut kept).unwrap_err();
        assert_eq!(absent.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(kept.path(), path);

        std::fs::create_dir(&path).unwrap();
        std::fs::create_dir(path.join("eth0")).unwrap();
        std::fs::write(path.join("bonding_masters"), "").unwrap();
        let expected = |names: &[(&str, bool)]| {
            names
                .iter()
                .map(|(n, f)| (n.to_string(), *f))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            list(&mut kept).unwrap(),
            expected(&[("bonding_masters", true), ("eth0", false)])
        );
        // Entries added and removed since show in the next listing of the kept descriptor.
        std::fs::create_dir(path.join("wlan0")).unwrap();
        std::os::unix::fs::symlink("eth0", path.join("lo")).unwrap();
        std::fs::remove_dir(path.join("eth0")).unwrap();
        assert_eq!(
            list(&mut kept).unwrap(),
            expected(&[("bonding_masters", true), ("lo", false), ("wlan0", false)])
        );
        assert_eq!(
            list(&mut kept).unwrap().len(),
            3,
            "listed again, not continued"
        );
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
}
