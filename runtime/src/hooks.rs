//! The spec's hooks (config.md "POSIX-platform Hooks", runtime.md
//! "Lifecycle"): each runs with the container's state as JSON on its
//! stdin, its own argv and only its own environment, and is killed at
//! its timeout.
//!
//! Who runs which (runc's placement, which the spec's namespaces imply):
//! - `prestart` and `createRuntime`: the runtime (`create`), in its own
//!   namespaces, once the container's namespaces and mounts exist and
//!   before pivot_root; the init waits for them.
//! - `createContainer`: the init, in the container's namespaces, before
//!   pivot_root (its path resolves in the runtime's filesystem).
//! - `startContainer`: the init after `start`, inside the container's
//!   root, before the process is executed.
//! - `poststart` (after `start`) and `poststop` (after `delete`): the
//!   runtime; they only warn on failure.
//!
//! A failing create-time hook fails `create`, which destroys the
//! container and runs the poststop hooks (the lifecycle's step 12).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use super::error::{Result, RuntimeError};
use super::state::OciState;

/// How much of a failing hook's output its error carries.
const OUTPUT_LIMIT: usize = 4096;

/// The six phases, by the spec's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Phase {
    /// In the lifecycle's order.
    pub const ALL: [Phase; 6] = [
        Phase::Prestart,
        Phase::CreateRuntime,
        Phase::CreateContainer,
        Phase::StartContainer,
        Phase::Poststart,
        Phase::Poststop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Prestart => "prestart",
            Phase::CreateRuntime => "createRuntime",
            Phase::CreateContainer => "createContainer",
            Phase::StartContainer => "startContainer",
            Phase::Poststart => "poststart",
            Phase::Poststop => "poststop",
        }
    }

    /// This phase's hooks in `hooks` (empty when none).
    pub fn of(self, hooks: Option<&Hooks>) -> &[Hook] {
        let Some(h) = hooks else { return &[] };
        let list = match self {
            Phase::Prestart => h.prestart(),
            Phase::CreateRuntime => h.create_runtime(),
            Phase::CreateContainer => h.create_container(),
            Phase::StartContainer => h.start_container(),
            Phase::Poststart => h.poststart(),
            Phase::Poststop => h.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }
}

/// What `create` checks of the hooks before anything is made.
pub fn validate(hooks: Option<&Hooks>) -> Result<()> {
    for phase in Phase::ALL {
        for hook in phase.of(hooks) {
            if !hook.path().is_absolute() {
                return Err(RuntimeError::Config(format!(
                    "{} hook path {} is not absolute",
                    phase.name(),
                    hook.path().display()
                )));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(RuntimeError::Config(format!(
                    "{} hook {}: timeout must be above zero",
                    phase.name(),
                    hook.path().display()
                )));
            }
        }
    }
    Ok(())
}

/// Runs a phase's hooks in order; the first failure stops them.
pub fn run(phase: Phase, hooks: Option<&Hooks>, state: &OciState) -> Result<()> {
    each(phase, hooks, state, Err)
}

/// poststart and poststop: each hook runs, a failure is a warning on
/// stderr, and the hooks after it run too (the spec: "the remaining
/// hooks and lifecycle continue as if the hook had succeeded").
pub fn run_warning(phase: Phase, hooks: Option<&Hooks>, state: &OciState) {
    let warn = |e: RuntimeError| {
        eprintln!("husk-agent oci: warning: {e}");
        Ok(())
    };
    let _ = each(phase, hooks, state, warn);
}

/// Runs each hook of `phase` with `state` on its stdin; a failure goes
/// to `failed`, which stops the phase by returning it.
fn each(
    phase: Phase,
    hooks: Option<&Hooks>,
    state: &OciState,
    mut failed: impl FnMut(RuntimeError) -> Result<()>,
) -> Result<()> {
    let list = phase.of(hooks);
    if list.is_empty() {
        return Ok(());
    }
    let input = match serde_json::to_vec(state) {
        Ok(input) => input,
        Err(e) => {
            return failed(RuntimeError::Other(format!(
                "encoding the state for {} hooks: {e}",
                phase.name()
            )));
        }
    };
    for hook in list {
        if let Err(message) = run_one(hook, &input) {
            failed(RuntimeError::Hook {
                phase: phase.name(),
                path: hook.path().display().to_string(),
                message,
            })?;
        }
    }
    Ok(())
}

fn run_one(hook: &Hook, input: &[u8]) -> std::result::Result<(), String> {
    let args = hook.args().as_deref().unwrap_or_default();
    let mut command = Command::new(hook.path());
    if let Some((arg0, rest)) = args.split_first() {
        command.arg0(arg0).args(rest);
    }
    command.env_clear();
    for entry in hook.env().iter().flatten() {
        if let Some((key, value)) = entry.split_once('=') {
            command.env(key, value);
        }
    }
    // Output into memory through a file: a hook's background child may
    // keep a pipe open long after the hook itself has exited, and the
    // init has no writable directory of its own to put a file in.
    let output = rustix::fs::memfd_create("husk-hook-output", rustix::fs::MemfdFlags::CLOEXEC)
        .map(std::fs::File::from)
        .map_err(|e| format!("a file for its output: {e}"))?;
    let clone = |f: &std::fs::File| f.try_clone().map_err(|e| format!("its output file: {e}"));
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(clone(&output)?)
        .stderr(clone(&output)?)
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE).
        let _ = stdin.write_all(input);
    }
    let timeout = hook
        .timeout()
        .map(|t| Duration::from_secs(t.unsigned_abs()));
    let deadline = timeout.map(|t| Instant::now() + t);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "timed out after {}s and was killed",
                timeout.unwrap_or_default().as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut output = output;
    let _ = std::io::Seek::rewind(&mut output);
    let _ = output.take(OUTPUT_LIMIT as u64).read_to_string(&mut text);
    Err(format!("{status}: {}", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        let mut h = Hook::default();
        h.set_path(PathBuf::from("/bin/sh"))
            .set_args(Some(vec!["sh".into(), "-c".into(), script.into()]))
            .set_env(Some(vec!["ONLY=this".into()]))
            .set_timeout(timeout);
        h
    }

    fn state() -> OciState {
        serde_json::from_str(
            r#"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":7,"bundle":"/b"}"#,
        )
        .unwrap()
    }

    fn hooks(list: Vec<Hook>) -> Hooks {
        let mut h = Hooks::default();
        h.set_create_runtime(Some(list));
        h
    }

    #[test]
    fn a_hook_reads_the_state_and_sees_only_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "cat > {0}; echo \"$ONLY:${{HOME:-none}}\" >> {0}",
            out.display()
        );
        run(
            Phase::CreateRuntime,
            Some(&hooks(vec![hook(&script, None)])),
            &state(),
        )
        .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let (json, env) = text.split_at(text.find('}').unwrap() + 1);
        let seen: OciState = serde_json::from_str(json).unwrap();
        assert_eq!(seen.id, "c1");
        assert_eq!(seen.pid, Some(7));
        assert_eq!(env.trim(), "this:none");
    }

    #[test]
    fn a_failing_hook_stops_the_phase_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let after = dir.path().join("after");
        let list = vec![
            hook("echo broken >&2; exit 3", None),
            hook(&format!("touch {}", after.display()), None),
        ];
        let e = run(Phase::CreateRuntime, Some(&hooks(list)), &state()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("createRuntime") && text.contains("broken"),
            "{text}"
        );
        assert!(!after.exists(), "the hook after a failure ran");
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let started = Instant::now();
        let e = run(
            Phase::CreateRuntime,
            Some(&hooks(vec![hook("sleep 30", Some(1))])),
            &state(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_failing_poststop_hook_does_not_stop_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let after = dir.path().join("after");
        let mut h = Hooks::default();
        h.set_poststop(Some(vec![
            hook("exit 1", None),
            hook(&format!("touch {}", after.display()), None),
        ]));
        run_warning(Phase::Poststop, Some(&h), &state());
        assert!(after.exists(), "the hook after a failing one did not run");
    }

    #[test]
    fn relative_paths_and_zero_timeouts_are_refused() {
        let mut h = hook("true", Some(0));
        assert!(validate(Some(&hooks(vec![h.clone()]))).is_err());
        h.set_timeout(None).set_path(PathBuf::from("bin/sh"));
        assert!(validate(Some(&hooks(vec![h]))).is_err());
    }
}
