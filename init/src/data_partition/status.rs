//! What became of the data partition, for the agent (`GET /v1/system`):
//! a small JSON object in /run/husk/data.json, written atomically.
//! Formatted by hand: PID 1 has no JSON library and needs none for six
//! fields.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The partition is mounted on /var/lib/husk.
    Mounted,
    /// No data partition: /var/lib/husk is a tmpfs.
    Absent,
    /// It exists but could not be checked or mounted: /var/lib/husk is a
    /// tmpfs and the partition is left as it was.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Mounted => "mounted",
            State::Absent => "absent",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// `/dev/vda2`.
    pub device: Option<String>,
    pub error: Option<String>,
    /// clean | corrected | failed | skipped (`None` when not checked).
    pub fsck: Option<&'static str>,
    /// Partition or filesystem grown this boot.
    pub grown: bool,
    /// The mounted filesystem's size.
    pub size_bytes: u64,
}

impl Status {
    pub fn absent() -> Self {
        Self {
            state: State::Absent,
            device: None,
            error: None,
            fsck: None,
            grown: false,
            size_bytes: 0,
        }
    }

    /// `{"state":"mounted","device":"/dev/vda2","error":null,"fsck":"clean","grown":false,"size_bytes":1073741824}`
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"state\":");
        push_str(&mut out, Some(self.state.as_str()));
        out.push_str(",\"device\":");
        push_str(&mut out, self.device.as_deref());
        out.push_str(",\"error\":");
        push_str(&mut out, self.error.as_deref());
        out.push_str(",\"fsck\":");
        push_str(&mut out, self.fsck);
        let _ = write!(
            out,
            ",\"grown\":{},\"size_bytes\":{}}}",
            self.grown, self.size_bytes
        );
        out.push('\n');
        out
    }
}

/// A JSON string (or `null`), escaped per RFC 8259.
fn push_str(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("null");
        return;
    };
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `status` to `path` through `path.tmp` and a rename, so the
/// agent never reads half a file.
pub fn write(path: &Path, status: &Status) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(status.to_json().as_bytes())?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_state() {
        assert_eq!(
            Status::absent().to_json(),
            "{\"state\":\"absent\",\"device\":null,\"error\":null,\"fsck\":null,\"grown\":false,\"size_bytes\":0}\n"
        );
        let mounted = Status {
            state: State::Mounted,
            device: Some("/dev/vda2".into()),
            error: None,
            fsck: Some("clean"),
            grown: true,
            size_bytes: 1 << 30,
        };
        assert_eq!(
            mounted.to_json(),
            "{\"state\":\"mounted\",\"device\":\"/dev/vda2\",\"error\":null,\"fsck\":\"clean\",\"grown\":true,\"size_bytes\":1073741824}\n"
        );
    }

    #[test]
    fn strings_are_escaped() {
        let failed = Status {
            state: State::Failed,
            device: Some("/dev/vda2".into()),
            error: Some("e2fsck: \"bad\" \\ inode\n\u{1}é".into()),
            fsck: Some("failed"),
            grown: false,
            size_bytes: 0,
        };
        let json = failed.to_json();
        assert!(
            json.contains(r#""error":"e2fsck: \"bad\" \\ inode\n\u0001é""#),
            "{json}"
        );
    }

    #[test]
    fn written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/husk/data.json");
        write(&path, &Status::absent()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            Status::absent().to_json()
        );
        assert!(!dir.path().join("run/husk/data.json.tmp").exists());
    }
}
