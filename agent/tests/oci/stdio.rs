//! runc's stdio without a terminal: the container's process has the
//! stdin, stdout and stderr of whoever called `create`, so a `start` by
//! another process (a shim's later request, another command) leaves its
//! output going to the first caller's files, not the starter's.

use std::fs::File;
use std::process::{Command, Stdio};

use super::bundle;
use super::harness::{self, enter};

/// create with stdio on files, start with stdio elsewhere; returns what
/// the create's stdout and stderr files hold.
fn create_then_start(command: &[String], dir: &std::path::Path, id: &str) -> (String, String) {
    let input = dir.join(format!("{id}.in"));
    std::fs::write(&input, "from-stdin\n").unwrap();
    let (out, err) = (dir.join(format!("{id}.out")), dir.join(format!("{id}.err")));
    let status = Command::new(&command[0])
        .args(&command[1..])
        .args(["create", "--bundle"])
        .arg(dir.join("bundle"))
        .arg(id)
        .stdin(File::open(&input).unwrap())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{command:?} create: {}",
        std::fs::read_to_string(&err).unwrap()
    );
    let start = Command::new(&command[0])
        .args(&command[1..])
        .args(["start", id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        start.status.success(),
        "start: {}",
        String::from_utf8_lossy(&start.stderr)
    );
    assert!(
        start.stdout.is_empty(),
        "the starter got the container's output"
    );
    // The process is short; wait for it to end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let state = Command::new(&command[0])
            .args(&command[1..])
            .args(["state", id])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&state.stdout).contains("running") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the container did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = Command::new(&command[0])
        .args(&command[1..])
        .args(["delete", "--force", id])
        .status();
    (
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
    )
}

#[test]
fn a_later_start_writes_to_the_creators_stdio() {
    if !enter("stdio::a_later_start_writes_to_the_creators_stdio") {
        return;
    }
    harness::require("crun");
    let dir = tempfile::tempdir().unwrap();
    let args = ["sh", "-c", "read line; echo out:$line; echo err:$line >&2"];
    bundle::make(&dir.path().join("bundle"), &args);
    let husk = vec![
        harness::husk().to_string_lossy().into_owned(),
        "oci".into(),
        "--root".into(),
        dir.path().join("husk").to_string_lossy().into_owned(),
    ];
    let crun = vec![
        "crun".into(),
        "--cgroup-manager=disabled".into(),
        "--root".into(),
        dir.path().join("crun").to_string_lossy().into_owned(),
    ];
    for (name, command) in [("husk", husk), ("crun", crun)] {
        let (out, err) = create_then_start(&command, dir.path(), name);
        assert_eq!(out, "out:from-stdin\n", "{name}: stdout");
        assert!(err.ends_with("err:from-stdin\n"), "{name}: stderr {err:?}");
    }
}
