//! A session keyring per container (`_ses.<id>`, runc's permissions),
//! joined by `exec` too, and `--no-new-keyring` keeping the caller's,
//! compared with runc.

use std::fs;

use serde_json::json;

use crate::bundle;
use crate::harness::{self, Cleanup, call, enter, err, text};
use crate::lifecycle::eventually;

/// The session keyring's serial of this process (KEYCTL_GET_KEYRING_ID of
/// KEY_SPEC_SESSION_KEYRING), as /proc/keys prints it.
fn own_session_keyring() -> String {
    // SAFETY: integers only.
    let id = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3 as libc::c_long, 0) };
    assert!(id > 0, "keyctl: {}", std::io::Error::last_os_error());
    format!("{id:08x}")
}

/// /proc/keys lines as (serial, permissions, description).
fn keys(out: &str) -> Vec<(String, u32, String)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 9).then(|| {
                (
                    f[0].to_string(),
                    u32::from_str_radix(f[4], 16).unwrap(),
                    f[8].trim_end_matches(':').to_string(),
                )
            })
        })
        .collect()
}

/// A session keyring per container (runc's `_ses.<id>`), joined by what
/// `exec` runs too; `--no-new-keyring` keeps the caller's. Read as uid
/// 1000: /proc/keys then lists only keys the process possesses (root's
/// keyrings give others no view), so it names the session keyring.
#[test]
fn each_container_gets_its_own_session_keyring() {
    if !enter("keyring::each_container_gets_its_own_session_keyring") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = "cat /proc/keys; echo end; sleep 1000";
    let b = bundle::make(&dir.path().join("b"), &["sh", "-c", script]);
    let mut config = bundle::config(&["sh", "-c", script]);
    config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p != "/proc/keys");
    bundle::write_config(&b, &config);
    let bs = b.to_str().unwrap();
    let caller = own_session_keyring();
    let mut perms = Vec::new();
    let mut exec_sees = Vec::new();
    for runtime in ["husk", "runc"] {
        let root = dir.path().join(runtime);
        let ids = ["a", "b", "c"].map(|x| format!("lc-key-{x}-{runtime}"));
        let _cleanups: Vec<Cleanup> = ids
            .iter()
            .map(|id| Cleanup::new(runtime, &root, id))
            .collect();
        let mut views = Vec::new();
        for (id, flags) in [
            (ids[0].clone(), vec![]),
            (ids[1].clone(), vec![]),
            (ids[2].clone(), vec!["--no-new-keyring"]),
        ] {
            let log = dir.path().join(format!("{id}.out"));
            let mut args = vec!["create", "--bundle", bs];
            args.extend(&flags);
            args.push(&id);
            // The init's stdout is the create's: a file it keeps writing
            // (stderr too: a pipe would stay open as long as the init).
            let errors = log.with_extension("err");
            let status = std::process::Command::new(if runtime == "husk" {
                harness::husk()
            } else {
                "runc".into()
            })
            .args(if runtime == "husk" {
                vec!["oci"]
            } else {
                vec![]
            })
            .arg("--root")
            .arg(&root)
            .args(&args)
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&errors).unwrap())
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
            assert!(
                status.success(),
                "{runtime} {id}: {}",
                fs::read_to_string(&errors).unwrap()
            );
            views.push((id, flags, log));
        }
        for (id, _, _) in &views {
            let out = call(runtime, &root, &["start", id]);
            assert!(out.status.success(), "{runtime}: {}", err(&out));
        }
        let mut seen = Vec::new();
        for (id, _, log) in &views {
            eventually(&format!("{id}'s /proc/keys"), || {
                fs::read_to_string(log)
                    .unwrap_or_default()
                    .contains("end\n")
            });
            seen.push(keys(&fs::read_to_string(log).unwrap()));
            println!("{runtime} {id} sees {:?}", seen.last().unwrap());
        }
        let names = |k: &[(String, u32, String)]| -> Vec<String> {
            k.iter().map(|(_, _, d)| d.clone()).collect()
        };
        let (a, b_, c) = (&views[0].0, &views[1].0, &views[2].0);
        let ses = |id: &str| format!("_ses.{id}");
        // What an exec'd process possesses: the container's keyring.
        let out = call(
            runtime,
            &root,
            &["exec", "--user", "1000:1000", a, "cat", "/proc/keys"],
        );
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        let exec_keys = keys(&text(&out));
        println!("{runtime} exec into {a} sees {exec_keys:?}");
        if runtime == "husk" {
            assert!(names(&seen[0]).contains(&ses(a)), "{a}: {:?}", seen[0]);
            assert!(names(&seen[1]).contains(&ses(b_)), "{b_}: {:?}", seen[1]);
            assert!(
                !names(&seen[0]).contains(&ses(b_)),
                "{a} has {b_}'s keyring"
            );
            assert!(!names(&seen[1]).contains(&ses(a)), "{b_} has {a}'s keyring");
            for (id, k) in [(a, &seen[0]), (b_, &seen[1])] {
                assert!(
                    !k.iter().any(|(serial, _, _)| *serial == caller),
                    "{id} possesses the caller's session keyring {caller}"
                );
            }
            let serial = |k: &[(String, u32, String)], name: &str| {
                k.iter()
                    .find(|(_, _, d)| d == name)
                    .map(|(s, _, _)| s.clone())
            };
            assert_ne!(serial(&seen[0], &ses(a)), serial(&seen[1], &ses(b_)));
            // --no-new-keyring: the caller's, and nothing of its own.
            assert!(
                seen[2].iter().any(|(serial, _, _)| *serial == caller),
                "{c} with --no-new-keyring lacks the caller's {caller}: {:?}",
                seen[2]
            );
            assert!(
                !seen[2].iter().any(|(_, _, d)| d.starts_with("_ses.")),
                "{c}: {:?}",
                seen[2]
            );
        }
        perms.push(
            seen[0]
                .iter()
                .find(|(_, _, d)| *d == ses(a))
                .map(|(_, p, _)| *p),
        );
        exec_sees.push(exec_keys);
    }
    println!(
        "session keyring permissions: husk {:08x?} runc {:08x?}",
        perms[0], perms[1]
    );
    // Both findings at once.
    let mut failures = Vec::new();
    // An exec'd process is the container's: it possesses the container's
    // keyring, not the caller's (runc joins `_ses.<id>` in exec too).
    let husk_exec = &exec_sees[0];
    if husk_exec.iter().any(|(serial, _, _)| *serial == caller) {
        failures.push(format!(
            "the exec'd process possesses the caller's session keyring {caller}: {husk_exec:?}"
        ));
    }
    if !husk_exec.iter().any(|(_, _, d)| d == "_ses.lc-key-a-husk") {
        failures.push(format!(
            "the exec'd process lacks the container's keyring: {husk_exec:?}"
        ));
    }
    // No more rights on the keyring than runc gives (possessor all; the
    // owner view, read, search and link; nothing for the group).
    if let (Some(ours), Some(theirs)) = (perms[0], perms[1])
        && ours & !theirs != 0
    {
        failures.push(format!(
            "the keyring's permissions {ours:08x} grant more than runc's {theirs:08x}"
        ));
    }
    assert!(failures.is_empty(), "husk: {failures:#?}");
}
