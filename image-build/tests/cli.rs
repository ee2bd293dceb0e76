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

/// Stand-in (static) binaries, so the checks reach the kernel.
fn binaries(dir: &Path) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, name) in [("--init", "husk-init"), ("--agent", "husk-agent")] {
        fs::write(dir.join(name), husk_image::elf::stand_in_static(b"")).unwrap();
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

fn args(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

#[test]
fn a_dynamically_linked_init_is_refused_naming_the_fix() {
    // What `cargo build --release` makes: it would panic the kernel.
    let dir = tempfile::tempdir().unwrap();
    let mut list: Vec<String> = vec!["build".into(), "--out".into(), "out".into()];
    list.extend(binaries(dir.path()));
    list[4] = "/bin/true".into();
    let (code, err) = husk_image(&args(&list), dir.path());
    assert_eq!(code, 1, "{err}");
    for words in [
        "--init /bin/true: dynamically linked (needs /lib64/ld-linux",
        "cargo xtask dist",
        "+crt-static",
    ] {
        assert!(err.contains(words), "{words:?} not in {err}");
    }
    assert!(!dir.path().join("out").exists(), "nothing is built");

    // The same for the agent, and for what is no executable at all.
    let mut list: Vec<String> = vec!["build".into(), "--out".into(), "out".into()];
    list.extend(binaries(dir.path()));
    list[6] = "/bin/true".into();
    let (code, err) = husk_image(&args(&list), dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--agent /bin/true: dynamically linked"),
        "{err}"
    );
    fs::write(dir.path().join("script"), "#!/bin/sh\n").unwrap();
    list[6] = "script".into();
    let (code, err) = husk_image(&args(&list), dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--agent script: not an x86-64 ELF executable"),
        "{err}"
    );

    // `husk-image initramfs` refuses it too.
    let (code, err) = husk_image(
        &[
            "initramfs",
            "--init",
            "/bin/true",
            "--agent",
            "husk-agent",
            "--out",
            "initramfs.img",
        ],
        dir.path(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--init /bin/true: dynamically linked"),
        "{err}"
    );
}

#[test]
fn a_dynamic_init_beside_husk_image_is_refused() {
    // A new user's `cargo build --release`: target/release/husk-image
    // beside a dynamically linked target/release/husk-init.
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    fs::create_dir(&release).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_husk-image"), release.join("husk-image")).unwrap();
    fs::copy("/bin/true", release.join("husk-init")).unwrap();
    // A freshly copied binary can be "busy" for a moment: another test's
    // fork may still hold the copy's write descriptor until it execs.
    let output = (0..50)
        .find_map(|_| {
            match Command::new(release.join("husk-image"))
                .args(["build", "--out", "out"])
                .current_dir(dir.path())
                .output()
            {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
                other => Some(other.unwrap()),
            }
        })
        .expect("husk-image stayed busy");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("husk-init (beside husk-image; or pass --init)")
            && err.contains("release/husk-init: dynamically linked")
            && err.contains("cargo xtask dist"),
        "{err}"
    );
}

/// `husk-image build` in `dir` with stand-in binaries and `extra` args.
fn build_with(dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut list: Vec<String> = vec!["build".into(), "--out".into(), "out".into()];
    list.extend(binaries(dir));
    list.extend(extra.iter().map(|s| s.to_string()));
    husk_image(&args(&list), dir)
}

#[test]
fn bad_image_files_exit_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("conf")).unwrap();
    fs::write(
        d.join("conf/agent.toml"),
        "[security]\nallow_privileged = \n",
    )
    .unwrap();
    fs::write(d.join("conf/image.toml"), "agent_config = \"agent.toml\"\n").unwrap();
    // The file's own syntax error: its name (relative to image.toml's
    // directory), line and column.
    let (code, err) = build_with(d, &["--config", "conf/image.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("conf/agent.toml:2:20"), "{err}");
    let (code, err) = build_with(d, &["--agent-config", "conf/agent.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("conf/agent.toml:2:20"), "{err}");

    // A missing file: the field (or flag) that named it.
    fs::write(
        d.join("conf/image.toml"),
        "update_root = \"repo/root.json\"\n",
    )
    .unwrap();
    let (code, err) = build_with(d, &["--config", "conf/image.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("conf/image.toml:1:15: update_root: conf/repo/root.json: cannot read"),
        "{err}"
    );
    // Not TUF root metadata.
    let (code, err) = build_with(d, &["--update-root", "conf/agent.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("command line: --update-root: conf/agent.toml: not TUF root metadata"),
        "{err}"
    );

    // Extra files: a missing host file, the image's own path, twice.
    fs::write(
        d.join("conf/image.toml"),
        "[[extra_files]]\nhost = \"motd\"\nguest = \"/etc/motd\"\n",
    )
    .unwrap();
    let (code, err) = build_with(d, &["--config", "conf/image.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("conf/image.toml:2:8: extra_files[0].host: conf/motd: No such file"),
        "{err}"
    );
    fs::write(d.join("conf/motd"), "hi\n").unwrap();
    let (code, err) = build_with(d, &["--extra-file", "conf/motd:/etc/husk/agent.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "--extra-file: /etc/husk/agent.toml is the image's own: set it with --agent-config"
        ),
        "{err}"
    );
    let (code, err) = build_with(
        d,
        &[
            "--config",
            "conf/image.toml",
            "--extra-file",
            "conf/motd:/etc/motd:0600",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("/etc/motd is already given by conf/image.toml:2:8: extra_files[0].host"),
        "{err}"
    );
    // A malformed flag is clap's usage error.
    let (code, err) = build_with(d, &["--extra-file", "conf/motd"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("HOST:GUEST[:MODE]"), "{err}");
    assert!(!d.join("out").exists(), "nothing is built");
}

#[test]
fn keygen_makes_the_key_directory() {
    // As the docs show it, on a fresh checkout.
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = husk_image(&["keygen", "--out", "keys/root.key"], dir.path());
    assert_eq!(code, 0, "{err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!((mode("keys"), mode("keys/root.key")), (0o700, 0o600));
    let (code, err) = husk_image(&["keygen", "--out", "keys/root.key"], dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refusing to overwrite"), "{err}");
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
        "--agent-config",
        "--update-root",
        "--extra-file",
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
