//! The container's seccomp profile is for the container: a profile that
//! refuses what the runtime itself calls between installing the filter
//! and the execve (close_range, getcwd: old profiles predate the first,
//! runtime-tools' linux_seccomp refuses the second) must not stop the
//! container, with or without no_new_privileges, for `run` and `exec`.

use serde_json::json;

use super::bundle;
use super::harness::{self, enter, err, oci, text};

fn profile() -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["close_range", "getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })
}

#[test]
fn a_profile_refusing_the_runtimes_own_calls_still_runs_the_container() {
    if !enter("seccomp_order::a_profile_refusing_the_runtimes_own_calls_still_runs_the_container") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for no_new_privs in [false, true] {
        let args = ["sh", "-c", "echo ran; exec sleep 30"];
        let b = bundle::make(&dir.path().join(format!("nnp-{no_new_privs}")), &args);
        let mut config = bundle::config(&args);
        config["process"]["noNewPrivileges"] = no_new_privs.into();
        config["linux"]["seccomp"] = profile();
        bundle::write_config(&b, &config);
        let root = dir.path().join("state");
        let id = format!("s{no_new_privs}");
        let out = oci(
            &root,
            &["run", "--detach", "--bundle", b.to_str().unwrap(), &id],
        );
        assert!(out.status.success(), "nnp {no_new_privs}: {}", err(&out));
        let exec = oci(&root, &["exec", &id, "echo", "exec-ran"]);
        assert_eq!(
            text(&exec).trim(),
            "exec-ran",
            "nnp {no_new_privs}: {}",
            err(&exec)
        );
        assert!(oci(&root, &["delete", "--force", &id]).status.success());

        // The same bundle, to exit: husk and crun print the same.
        config["process"]["args"] = json!(["sh", "-c", "echo ran"]);
        bundle::write_config(&b, &config);
        let husk = oci(&root, &["run", "--bundle", b.to_str().unwrap(), &id]);
        let crun = harness::peer_run("crun", &dir.path().join("crun"), &b, &id);
        assert_eq!(
            text(&husk),
            "ran\n",
            "husk, nnp {no_new_privs}: {}",
            err(&husk)
        );
        assert_eq!(
            text(&crun),
            "ran\n",
            "crun, nnp {no_new_privs}: {}",
            err(&crun)
        );
    }
}
