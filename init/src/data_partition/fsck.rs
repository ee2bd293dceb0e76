//! Checking the data partition with e2fsck in preen mode (`-p`): it
//! fixes what is safe to fix unattended and stops on anything else.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use husk_common::boot::Fsck;

use crate::sys;

/// What the check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// Errors were corrected (exit 1), or corrected with a reboot
    /// recommended (exit 2: only for a mounted root, so not ours).
    Corrected {
        reboot_advised: bool,
    },
    /// Errors left, or e2fsck could not do its job: do not mount.
    Failed,
    /// No e2fsck in the image; the kernel still replays the journal.
    Skipped,
}

impl Verdict {
    /// As data.json and boot.json give it.
    pub fn fsck(self) -> Fsck {
        match self {
            Verdict::Clean => Fsck::Clean,
            Verdict::Corrected { .. } => Fsck::Corrected,
            Verdict::Failed => Fsck::Failed,
            Verdict::Skipped => Fsck::Skipped,
        }
    }
}

/// e2fsck's exit status is a bit set (e2fsck(8)): 1 corrected, 2 reboot,
/// 4 uncorrected, 8 operational error, 16 usage, 32 cancelled, 128
/// library error. `None`: killed by a signal.
pub fn classify(code: Option<i32>) -> Verdict {
    match code {
        Some(0) => Verdict::Clean,
        Some(c) if (1..=3).contains(&c) => Verdict::Corrected {
            reboot_advised: c & 2 != 0,
        },
        _ => Verdict::Failed,
    }
}

/// What a failing status means, for the log and the status file.
fn meaning(code: i32) -> &'static str {
    if code & 8 != 0 {
        ": operational error (could not check the device)"
    } else if code & 4 != 0 {
        ": errors left uncorrected"
    } else if code & 32 != 0 {
        ": cancelled"
    } else {
        ""
    }
}

/// One run of e2fsck.
#[derive(Debug)]
pub struct Check {
    pub verdict: Verdict,
    /// The exit status, or why it could not run.
    pub detail: String,
    /// What e2fsck printed, line by line.
    pub output: Vec<String>,
    pub elapsed: Duration,
}

/// Runs `e2fsck -p device` and waits for it. Not time-limited: killing a
/// check halfway would be worse than a slow boot.
pub fn run(e2fsck: &Path, device: &Path) -> Check {
    let started = Instant::now();
    if !e2fsck.is_file() {
        return Check {
            verdict: Verdict::Skipped,
            detail: format!("{} is missing", e2fsck.display()),
            output: Vec::new(),
            elapsed: started.elapsed(),
        };
    }
    let mut cmd = Command::new(e2fsck);
    cmd.arg("-p")
        .arg(device)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    sys::prepare_child(&mut cmd);
    let (verdict, detail, output) = match cmd.output() {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let lines = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect();
            let detail = match out.status.code() {
                Some(c) => format!("exit status {c}{}", meaning(c)),
                None => "killed by a signal".to_owned(),
            };
            (classify(out.status.code()), detail, lines)
        }
        Err(e) => (Verdict::Failed, format!("cannot run: {e}"), Vec::new()),
    };
    Check {
        verdict,
        detail,
        output,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_decide() {
        assert_eq!(classify(Some(0)), Verdict::Clean);
        assert_eq!(
            classify(Some(1)),
            Verdict::Corrected {
                reboot_advised: false
            }
        );
        assert_eq!(
            classify(Some(2)),
            Verdict::Corrected {
                reboot_advised: true
            }
        );
        assert_eq!(
            classify(Some(3)),
            Verdict::Corrected {
                reboot_advised: true
            }
        );
        for bad in [4, 5, 8, 12, 16, 32, 128] {
            assert_eq!(classify(Some(bad)), Verdict::Failed, "{bad}");
        }
        assert_eq!(classify(None), Verdict::Failed);
    }

    #[test]
    fn a_missing_e2fsck_skips_and_a_failing_one_fails() {
        let check = run(Path::new("/no/such/e2fsck"), Path::new("/dev/null"));
        assert_eq!(check.verdict, Verdict::Skipped);
        // A stand-in e2fsck that finds what preen mode must not fix.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("e2fsck");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"$1 $2: UNEXPECTED INCONSISTENCY\"\nexit 4\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let check = run(&fake, Path::new("/dev/vdz9"));
        assert_eq!(check.verdict, Verdict::Failed, "{check:?}");
        assert_eq!(check.detail, "exit status 4: errors left uncorrected");
        assert_eq!(check.output, ["-p /dev/vdz9: UNEXPECTED INCONSISTENCY"]);
    }
}
