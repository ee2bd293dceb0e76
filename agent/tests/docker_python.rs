//! Docker's Python SDK and testcontainers (PyPI, pinned in
//! `tests/python/requirements.txt`) against an agent's Docker socket:
//! the pytest suite `tests/python/test_docker_sdk.py`, run in the
//! virtual environment `cargo xtask test` makes under `target/pyenv`.
//! As root, in a private mount and network namespace with cgroup2, as
//! the other container tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::docker::Machine;
use common::enter_cgroup2_namespace;

/// The environment xtask's `python test environment` step makes
/// (`HUSK_PYENV` to use another).
fn pyenv() -> PathBuf {
    std::env::var_os("HUSK_PYENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv"),
        PathBuf::from,
    )
}

#[test]
fn docker_sdk_and_testcontainers_drive_husk() {
    if !enter_cgroup2_namespace("docker_sdk_and_testcontainers_drive_husk") {
        return;
    }
    let python = pyenv().join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: `cargo xtask test` installs tests/python/requirements.txt there \
         (or: python3 -m venv target/pyenv && target/pyenv/bin/pip install --require-hashes \
         -r agent/tests/python/requirements.txt)",
        python.display()
    );
    let m = Machine::start();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let out = Command::new(&python)
        .args(["-m", "pytest", "-v", "-p", "no:cacheprovider"])
        .arg(&suite)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", m.path("docker.sock").display()),
        )
        .env("DOCKER_CONFIG", m.path("docker-config"))
        // Ryuk, testcontainers' reaper, is an image on Docker Hub.
        .env("TESTCONTAINERS_RYUK_DISABLED", "true")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .current_dir(m.path(""))
        .output()
        .unwrap();
    let (stdout, stderr) = common::text(&out);
    print!("{stdout}{stderr}");
    assert!(out.status.success(), "pytest failed: {:?}", out.status);
    // Every test of the file ran and passed (none skipped or deselected).
    let defined = std::fs::read_to_string(suite.join("test_docker_sdk.py"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("def test_"))
        .count();
    assert!(
        stdout.contains(&format!("{defined} passed")) && !stdout.contains("skipped"),
        "not all {defined} tests passed:\n{stdout}"
    );
}
