//! The spec's mount options that reach below a bind: `rro` and the
//! other recursive ones (`mount_setattr` with AT_RECURSIVE) make every
//! submount read-only, where `ro` makes only the top one so.

use std::fs;
use std::process::Command;

use serde_json::json;

use super::bundle;
use super::harness::{self, enter, err, text};

/// A host directory with a tmpfs mounted inside it, bound into the
/// container at /mnt with `options`; the script writes to both levels.
fn write_both_levels(
    runtime: &str,
    dir: &std::path::Path,
    options: &[&str],
) -> (Option<i32>, String) {
    let script = "touch /mnt/top 2>/dev/null && echo top=rw || echo top=ro; \
                  touch /mnt/sub/x 2>/dev/null && echo sub=rw || echo sub=ro";
    let b = bundle::make(
        &dir.join(format!("bundle-{runtime}-{}", options.join("-"))),
        &["sh", "-c", script],
    );
    let mut config = bundle::config(&["sh", "-c", script]);
    config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "bind",
        "source": dir.join("host").to_str().unwrap(), "options": options,
    }));
    bundle::write_config(&b, &config);
    let state = dir.join(format!("state-{runtime}"));
    let out = if runtime == "husk" {
        harness::oci(&state, &["run", "--bundle", b.to_str().unwrap(), "m"])
    } else {
        harness::peer_run(runtime, &state, &b, "m")
    };
    (out.status.code(), format!("{}{}", text(&out), err(&out)))
}

#[test]
fn recursive_read_only_reaches_the_submounts() {
    if !enter("mounts::recursive_read_only_reaches_the_submounts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    fs::create_dir_all(host.join("sub")).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(host.join("sub"))
        .status()
        .unwrap();
    assert!(mounted.success());
    let (code, out) = write_both_levels("husk", dir.path(), &["rbind", "ro"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "top=ro\nsub=rw\n"),
        "ro is the top mount's only"
    );
    let (code, out) = write_both_levels("husk", dir.path(), &["rbind", "rro"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "top=ro\nsub=ro\n"),
        "rro reaches the submount"
    );
    let (code, out) = write_both_levels("husk", dir.path(), &["rbind", "rro", "rrw"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "top=rw\nsub=rw\n"),
        "the last word wins"
    );
    // crun on the same bundle (Debian's 1.8.1 knows rro too).
    let (code, out) = write_both_levels("crun", dir.path(), &["rbind", "rro"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "top=ro\nsub=ro\n"),
        "crun: {out}"
    );
}
