//! `linux.sysctl`: keys of the container's own namespaces are applied
//! inside it; others are refused with the host's value unchanged, as
//! crun and runc refuse them.

use std::fs;

use serde_json::{Value, json};

use crate::bundle;
use crate::harness::{self, enter, err, oci, text};

/// linux.sysctl: only keys of a namespace the container has of its own;
/// the host's values never change.
#[test]
fn sysctls_only_in_the_containers_namespaces() {
    if !enter("sysctl::sysctls_only_in_the_containers_namespaces") {
        return;
    }
    let read = |p: &str| fs::read_to_string(p).unwrap();
    let forward = "/proc/sys/net/ipv4/ip_forward";
    let core = "/proc/sys/kernel/core_pattern";
    let shmmax = "/proc/sys/kernel/shmmax";
    let (forward_before, core_before, shm_before) = (read(forward), read(core), read(shmmax));
    // Put back whatever a runtime wrongly changed on the host.
    struct Restore(Vec<(&'static str, String)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            for (path, value) in &self.0 {
                if fs::read_to_string(path).ok().as_ref() != Some(value) {
                    let _ = fs::write(path, value);
                }
            }
        }
    }
    let _restore = Restore(vec![
        (forward, forward_before.clone()),
        (core, core_before.clone()),
        (shmmax, shm_before.clone()),
    ]);
    let unchanged = |what: &str| {
        assert_eq!(read(forward), forward_before, "{what}: host ip_forward");
        assert_eq!(read(core), core_before, "{what}: host core_pattern");
        assert_eq!(read(shmmax), shm_before, "{what}: host shmmax");
    };
    let new_forward = if forward_before.trim() == "1" {
        "0"
    } else {
        "1"
    };
    let dir = tempfile::tempdir().unwrap();
    let script = "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax";
    let b = bundle::make(&dir.path().join("b"), &["sh", "-c", script]);
    let bs = b.to_str().unwrap();
    let with = |sysctl: Value, drop_ns: Option<&str>| {
        let mut c = bundle::config(&["sh", "-c", script]);
        c["linux"]["sysctl"] = sysctl;
        if let Some(kind) = drop_ns {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != kind);
        }
        bundle::write_config(&b, &c);
    };
    // In the container's own network and IPC namespaces.
    with(
        json!({"net.ipv4.ip_forward": new_forward, "kernel.shmmax": "123456789"}),
        None,
    );
    let root = dir.path().join("husk");
    let out = oci(&root, &["run", "--bundle", bs, "lc-sysctl"]);
    assert!(out.status.success(), "{}", err(&out));
    let husk = text(&out);
    assert_eq!(husk, format!("{new_forward}\n123456789\n"));
    unchanged("namespaced keys");
    for peer in ["crun", "runc"] {
        let out = harness::peer_run(peer, &dir.path().join(peer), &b, "lc-sysctl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            husk,
            "{peer}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    unchanged("namespaced keys, peers");
    // The host's network namespace, and a key no namespace has.
    for (sysctl, drop_ns, expect) in [
        (
            json!({"net.ipv4.ip_forward": new_forward}),
            Some("network"),
            "needs the container's own network namespace",
        ),
        (
            json!({"kernel.shmmax": "123456789"}),
            Some("ipc"),
            "needs the container's own ipc namespace",
        ),
        (
            json!({"kernel.core_pattern": "|/tmp/husk-test-core %p"}),
            None,
            "not namespaced",
        ),
    ] {
        with(sysctl.clone(), drop_ns);
        let out = oci(&root, &["run", "--bundle", bs, "lc-sysctl-bad"]);
        assert!(!out.status.success(), "{sysctl} ran: {}", text(&out));
        assert!(err(&out).contains(expect), "{sysctl}: {}", err(&out));
        assert!(!root.join("lc-sysctl-bad").exists());
        unchanged(&sysctl.to_string());
        // The peers get the host's own values: refused or not, nothing
        // on the host changes. Reported only.
        let harmless: Value = sysctl
            .as_object()
            .unwrap()
            .keys()
            .map(|k| {
                let path = format!("/proc/sys/{}", k.replace('.', "/"));
                (k.clone(), Value::from(read(&path).trim_end_matches('\n')))
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        with(harmless, drop_ns);
        for peer in ["crun", "runc"] {
            let out = harness::peer_run(peer, &dir.path().join(peer), &b, "lc-sysctl-bad");
            println!(
                "{peer} {sysctl} (host's value) without {drop_ns:?}: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        unchanged(&format!("{sysctl}, peers"));
    }
}
