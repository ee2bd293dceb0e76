//! `/proc/self/mountinfo`: which mounts exist, in mount order. Init uses
//! it to recognise the initramfs (rootfs on "/") and to unmount in
//! reverse order at shutdown; the runtime to detach the host's mounts
//! for `--no-pivot`; the guest checker to read the mount table.

use std::io::Read;

/// One mount, as far as init cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: String,
    pub fs_type: String,
    pub read_only: bool,
}

/// Parses mountinfo text (see proc(5)); malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    // id, parent id, major:minor, root, mount point, options, optional…
    let mount_point = unescape(fields.nth(4)?);
    let options = fields.next()?;
    let fs_type = after.split(' ').next()?.to_owned();
    Some(MountEntry {
        mount_point,
        fs_type,
        read_only: options.split(',').any(|o| o == "ro"),
    })
}

/// Undoes the kernel's octal escaping of space, tab, newline and backslash.
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\'
            && let Some(digits) = bytes.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the current mount table (empty when /proc is not there).
pub fn read() -> Vec<MountEntry> {
    let mut text = String::new();
    let ok = std::fs::File::open("/proc/self/mountinfo")
        .and_then(|f| f.take(4 * 1024 * 1024).read_to_string(&mut text))
        .is_ok();
    if ok { parse(&text) } else { Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
1 1 0:2 / / rw - rootfs rootfs rw,size=1002968k,nr_inodes=250742
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
23 1 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs devtmpfs rw,size=4096k,mode=755
30 1 0:30 / /mnt/with\\040space ro,relatime - ext4 /dev/vda1 ro
";

    #[test]
    fn parses_mount_points_types_and_ro() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].mount_point, "/");
        assert_eq!(m[0].fs_type, "rootfs");
        assert!(!m[0].read_only);
        assert_eq!(m[2].fs_type, "devtmpfs");
        assert_eq!(m[3].mount_point, "/mnt/with space");
        assert!(m[3].read_only);
    }

    #[test]
    fn garbage_is_skipped() {
        assert!(parse("nonsense\n\n1 2 3\n").is_empty());
    }
}
