//! The mount table (/proc/1/mounts): one line per mount, fields octal-escaped by the kernel.

use std::borrow::Cow;

/// One mount-table line, borrowed from the file's text where no unescaping was needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry<'a> {
    /// Mount source: a block device path, `server:/export`, or a name such as `tmpfs`.
    pub device: Cow<'a, str>,
    /// Where it is mounted, unescaped (`/srv/shared data`, not `/srv/shared\040data`).
    pub mountpoint: Cow<'a, str>,
    /// Filesystem type, e.g. `ext4`, `nfs4`, `fuse.sshfs`.
    pub fstype: &'a str,
    /// Comma-separated mount options (`rw,relatime,…`).
    pub options: &'a str,
}

impl MountEntry<'_> {
    /// Mounted read-only (`ro` among the options).
    pub fn read_only(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }
}

/// Parses one line: `device mountpoint fstype options dump pass` (the last two may be absent).
pub(crate) fn parse_line(line: &str) -> Result<MountEntry<'_>, String> {
    let mut fields = line.split_ascii_whitespace();
    let mut next = |what: &str| {
        fields
            .next()
            .ok_or_else(|| format!("no {what} in {line:?}"))
    };
    Ok(MountEntry {
        device: unescape(next("device")?),
        mountpoint: unescape(next("mount point")?),
        fstype: next("filesystem type")?,
        options: next("mount options")?,
    })
}

/// Parses the whole table (blank lines skipped).
pub(crate) fn parse(text: &str) -> impl Iterator<Item = Result<MountEntry<'_>, String>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(parse_line)
}

/// Undoes the kernel's escaping of space, tab, newline and backslash as `\ooo` (octal); anything
/// else after a backslash is kept as written.
pub(crate) fn unescape(field: &str) -> Cow<'_, str> {
    if !field.contains('\\') {
        return Cow::Borrowed(field);
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| {
                let digits = std::str::from_utf8(d).ok()?;
                u8::from_str_radix(digits, 8)
                    .ok()
                    .filter(|_| d.iter().all(u8::is_ascii_digit))
            });
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_line_and_its_options() {
        let m = parse_line("/dev/md0 /data xfs rw,noatime,attr2 0 0").unwrap();
        assert_eq!(
            (m.device.as_ref(), m.mountpoint.as_ref(), m.fstype),
            ("/dev/md0", "/data", "xfs")
        );
        assert!(!m.read_only());
        assert!(parse_line("/dev/md0 /srv xfs ro,noatime 0 0")
            .unwrap()
            .read_only());
        // `ro` only as a whole option, not inside another one.
        assert!(!parse_line("x /y ext4 rw,errors=remount-ro")
            .unwrap()
            .read_only());
        assert!(
            matches!(m.device, Cow::Borrowed(_)),
            "no allocation without escapes"
        );
    }

    #[test]
    fn unescapes_octal_sequences() {
        assert_eq!(unescape(r"/srv/shared\040data"), "/srv/shared data");
        assert_eq!(unescape(r"/a\011b\012c\134d"), "/a\tb\nc\\d");
        // Not an escape: kept as written.
        assert_eq!(unescape(r"/odd\\x\09"), r"/odd\\x\09");
        assert_eq!(unescape(r"/end\"), r"/end\");
        assert_eq!(unescape(r"/x\777"), r"/x\777", "out of byte range");
        assert_eq!(unescape("/données"), "/données");
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_line("/dev/sda1 /mnt ext4")
            .unwrap_err()
            .contains("mount options"));
        assert!(parse_line("tmpfs").unwrap_err().contains("mount point"));
        assert_eq!(parse("\n\n").count(), 0);
    }

    #[test]
    fn parses_the_captured_table() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/captured-vm/proc/1/mounts"),
        )
        .unwrap();
        let entries: Vec<_> = parse(&text).collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), text.lines().count());
        let root = entries.iter().find(|m| m.mountpoint == "/").unwrap();
        assert!(root.device.starts_with('/'));
    }
}
