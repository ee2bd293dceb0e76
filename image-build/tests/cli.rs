//! `husk-image build`'s exit statuses and messages: 2 for usage and
//! configuration errors, 1 for failed builds.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn husk_image(args: &[&str], dir: &Path) -> (i32, String) {
    let Output { status, stderr, .. } = Command::new(env!("CARGO_BIN_EXE_husk-image"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        status.code().expect("exited"),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Stand-in binaries, so the checks reach the kernel.
fn binaries(dir: &Path) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, name) in [
        ("--init", "husk-init"),
        ("--agent", "husk-agent"),
        ("--huskctl", "huskctl"),
    ] {
        fs::write(dir.join(name), b"\x7fELF").unwrap();
        args.push(flag.to_owned());
        args.push(dir.join(name).to_str().unwrap().to_owned());
    }
    args
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("image.toml"),
        "seed = \"x\"\n\n[esp]\nsize_mib = \"big\"\n",
    )
    .unwrap();
    let (code, err) = husk_image(
        &["build", "--config", "image.toml", "--out", "out"],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("image.toml:4:12: esp.size_mib: invalid type"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists(), "nothing is built");

    fs::write(dir.path().join("image.toml"), "formats = [\"iso\"]\n").unwrap();
    let (code, err) = husk_image(
        &["build", "--config", "image.toml", "--out", "out"],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("image.toml:1:12: formats[0]: unknown variant `iso`"),
        "{err}"
    );

    let (code, err) = husk_image(
        &["build", "--config", "missing.toml", "--out", "out"],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.toml: cannot read"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = husk_image(&["build"], dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--out"), "{err}");
}

#[test]
fn a_missing_kernel_exits_1_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["build".to_owned(), "--out".into(), "out".into()];
    args.extend(binaries(dir.path()));
    args.extend([
        "--kernel".into(),
        "/nonexistent/vmlinuz-9.9-cloud-amd64".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = husk_image(&args, dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/nonexistent/vmlinuz-9.9-cloud-amd64"),
        "{err}"
    );
    assert!(err.contains("linux-image-cloud-amd64"), "{err}");
}

#[test]
fn a_missing_binary_exits_1_naming_path_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["build".into(), "--out".into(), "out".into()];
    args.extend(binaries(dir.path()));
    args[4] = dir.path().join("no-such-init").to_str().unwrap().to_owned();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = husk_image(&args, dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--init") && err.contains("no-such-init"),
        "{err}"
    );

    // The stub's package is named when it is missing.
    let mut args: Vec<String> = vec!["build".into(), "--out".into(), "out".into()];
    args.extend(binaries(dir.path()));
    args.extend(["--stub".into(), "/nonexistent/linuxx64.efi.stub".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = husk_image(&args, dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/nonexistent/linuxx64.efi.stub") && err.contains("systemd-boot-efi"),
        "{err}"
    );
}

#[test]
fn help_explains_the_options_with_an_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_husk-image"))
        .args(["build", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--config",
        "--out",
        "--init",
        "--agent",
        "--huskctl",
        "--kernel",
        "--modules",
        "--stub",
        "--systemd-boot",
        "SOURCE_DATE_EPOCH",
        "Example",
    ] {
        assert!(help.contains(option), "{option} not in:\n{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_husk-image"))
        .args(["build", "--print-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        husk_image::config::DEFAULT_CONFIG
    );
}
