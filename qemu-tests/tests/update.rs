//! Signed A/B updates end to end, booted through OVMF and systemd-boot:
//! the test builds a v1 disk and v2 UKIs with husk-image, signs them into
//! a TUF repository with `husk_image::release`, and serves it over HTTP
//! (with ranges) on the host, which the guest reaches through a slirp
//! forward at 10.0.2.100:8080 (and nothing else). The guest drives
//! `huskctl update` through husk-check.

mod common;

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread;
use std::time::Duration;

use common::*;
use qemu_tests::guest_disk::{OVMF_CODE, OVMF_VARS};
use qemu_tests::log_lines::{AGENT_READY, REBOOT};
use qemu_tests::update_repo::TestRepo;
use qemu_tests::vm_builder::FORWARD_ADDR;
use qemu_tests::{
    DiskImage, GuestDisk, InitConfig, Restart, Result, Service, TestDir, Vm, VmBuilder,
};

/// A whole update cycle: several UEFI boots under TCG.
const TO_UPDATE: Duration = Duration::from_secs(300);

/// The repository server's port as the guest sees it, at
/// [`FORWARD_ADDR`]: fixed, so the disks do not depend on the host's.
const GUEST_PORT: u16 = 8080;

/// Serves the files under a directory over HTTP, with
/// `Range: bytes=N-`, for as long as the test runs.
struct RepoServer {
    addr: SocketAddr,
}

impl RepoServer {
    fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the repository server");
        let addr = listener.local_addr().unwrap();
        let root = root.to_owned();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                thread::spawn(move || serve_one(stream, &root));
            }
        });
        Self { addr }
    }

    /// The repository as the guest reaches it, through the forward.
    fn url(&self) -> String {
        format!("http://{FORWARD_ADDR}:{GUEST_PORT}/")
    }
}

fn serve_one(mut stream: std::net::TcpStream, root: &Path) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut from = 0u64;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some(range) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            from = range.trim().trim_end_matches('-').parse().unwrap_or(0);
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let file = root.join(path.trim_start_matches('/'));
    let Some(mut f) = (file.is_file() && !path.contains(".."))
        .then(|| std::fs::File::open(&file).ok())
        .flatten()
    else {
        let _ = write!(
            stream,
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        return;
    };
    let len = f.metadata().unwrap().len();
    let from = from.min(len);
    let head = if from > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {from}-{}/{len}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            len.saturating_sub(1),
            len - from
        )
    } else {
        format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n")
    };
    let _ = stream.write_all(head.as_bytes());
    let _ = f.seek(SeekFrom::Start(from));
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// A test's signed repository, served over HTTP, and the machines built
/// against it. Dropping it removes the disks and stops nothing else.
struct Setup {
    name: String,
    dir: TestDir,
    repo: TestRepo,
    server: RepoServer,
}

/// How a test disk's agent is configured, beyond the repository.
#[derive(Clone, Copy)]
enum Agent<'a> {
    /// The update settings and nothing else.
    Plain,
    /// With this appended to agent.toml.
    Extra(&'a str),
    /// This whole (broken) agent.toml.
    Broken(&'a str),
}

impl Setup {
    fn new(name: &str) -> Result<Self> {
        let dir = TestDir::new(name)?;
        let repo = TestRepo::create(dir.path());
        let server = RepoServer::start(&repo.dir);
        Ok(Self {
            name: name.to_owned(),
            dir,
            repo,
            server,
        })
    }

    /// Boots `disk` through OVMF with the repository forwarded; the
    /// machine's files (serial log, firmware variables) in a directory of
    /// its own.
    fn boot(&self, disk: &DiskImage) -> Result<Vm> {
        VmBuilder::new(TestDir::new(&format!("{}_vm", self.name))?)
            .ovmf(OVMF_CODE, OVMF_VARS)
            .drive(&disk.raw, "raw")
            .forward_to_host(GUEST_PORT, self.server.addr)
            .launch()
    }

    /// A disk of `version` whose agent uses the repository and whose
    /// `checker` (scenario and arguments) runs at boot.
    fn disk(
        &self,
        version: &str,
        agent: Agent<'_>,
        checker: &[&str],
        cmdline: Option<&str>,
    ) -> Result<DiskImage> {
        let build_dir = self.dir.path().join(version);
        std::fs::create_dir_all(&build_dir).unwrap();
        let agent_toml = build_dir.join("agent.toml");
        let settings = format!(
            "[update]\nrepository = \"{}\"\ncheck_interval_secs = 0\n",
            self.server.url()
        );
        let text = match agent {
            Agent::Plain => settings,
            Agent::Extra(extra) => settings + extra,
            Agent::Broken(text) => text.to_owned(),
        };
        std::fs::write(&agent_toml, text).unwrap();
        let (scenario, args) = checker.split_first().unwrap();
        let config = InitConfig::with_agent().service(Service::checker(
            &format!("check-{scenario}"),
            &[&[*scenario], args].concat(),
            Restart::Never,
        ));
        let mut builder = GuestDisk::builder()
            .version(version)
            .checker()
            .init_config(config.to_toml())
            .agent_config(&agent_toml)
            .update_root(self.repo.root_json());
        if let Some(extra) = cmdline {
            builder = builder.cmdline(extra);
        }
        builder.build(&build_dir)
    }

    /// Builds a disk of `version` and signs its UKI into the repository.
    fn release(&self, version: &str, agent: Agent<'_>) -> Result<()> {
        let disk = self.disk(version, agent, &["sleep"], None)?;
        self.repo.release(&disk.uki, 24).expect("release");
        Ok(())
    }

    /// The v1 machine: 1.0.0 running `update-apply ARGS` at boot.
    fn v1(&self, apply_args: &[&str], cmdline: Option<&str>) -> Result<DiskImage> {
        let checker = [&["update-apply"], apply_args].concat();
        self.disk("1.0.0", Agent::Plain, &checker, cmdline)
    }
}

#[test]
fn v1_to_v2_is_applied_and_blessed() -> Result<()> {
    let setup = Setup::new("update_v1_v2")?;
    let v2 = setup.disk(
        "2.0.0",
        Agent::Plain,
        &["update-status", "running:    2.0.0", "assessment: blessed"],
        None,
    )?;
    setup.repo.release(&v2.uki, 24).expect("release");
    let v1 = setup.v1(&[], None)?;

    let mut vm = setup.boot(&v1)?;
    vm.wait_for_line("update: running version 1.0.0", TO_UEFI_AGENT_READY)?;
    vm.wait_for_line("update-apply: check: update available: 2.0.0", TO_UPDATE)?;
    let applied = vm.wait_for_line("update-apply: apply:", TO_UPDATE)?;
    assert!(
        applied.contains("2.0.0 installed; rebooting into it"),
        "{applied}"
    );
    let started = std::time::Instant::now();
    vm.wait_for_line(REBOOT, TO_SHUTDOWN_LINE)?;
    vm.wait_for_line("update: running version 2.0.0", TO_UEFI_AGENT_READY)?;
    vm.wait_for_line(AGENT_READY, TO_UEFI_AGENT_READY)?;
    eprintln!("reboot into v2 to agent ready: {:?}", started.elapsed());
    vm.wait_for_line("2.0.0 passed its boot assessment and is blessed", TO_UPDATE)?;
    vm.expect_check("update-status", TO_UPDATE)?;
    vm.wait_for_line_from_start("husk-2.0.0.efi", TO_CHECK)?;
    vm.wait_for_line_from_start("husk-1.0.0.efi", TO_CHECK)?;
    power_off(&mut vm)
}

#[test]
fn a_v2_that_never_becomes_healthy_rolls_back() -> Result<()> {
    let setup = Setup::new("update_rollback")?;
    // Port 9 (discard) is closed on the guest: the check never passes.
    // A short assessment: three tries of it under TCG.
    setup.release(
        "2.0.0",
        Agent::Extra(
            "assessment_timeout_secs = 4\n\
             [[update.health_checks]]\nname = \"web\"\nhttp = \"http://127.0.0.1:9/healthz\"\n",
        ),
    )?;
    let mut vm = setup.boot(&setup.v1(&[], None)?)?;
    let applied = vm.wait_for_line("update-apply: apply:", TO_UPDATE)?;
    assert!(applied.contains("2.0.0 installed"), "{applied}");
    for try_number in 1..=3 {
        vm.wait_for_line("update: running version 2.0.0", TO_UEFI_AGENT_READY)?;
        let failed = vm.wait_for_line("2.0.0 failed its boot assessment", TO_UPDATE)?;
        assert!(
            failed.contains("health check \"web\""),
            "try {try_number}: {failed}"
        );
    }
    vm.wait_for_line("update: running version 1.0.0", TO_UEFI_AGENT_READY)?;
    let rolled_back = vm.wait_for_line("rolled back from 2.0.0 to 1.0.0", TO_CHECK)?;
    assert!(
        rolled_back.contains("3 tries spent") && rolled_back.contains("health check \"web\""),
        "{rolled_back}"
    );
    // v1's checker asks again: the failed version is not applied again,
    // and the status tells what happened.
    let again = vm.wait_for_line("update-apply: apply:", TO_UPDATE)?;
    assert!(again.contains("failed on this machine before"), "{again}");
    vm.wait_for_line("rollback:   2.0.0 -> 1.0.0", TO_CHECK)?;
    power_off(&mut vm)
}

#[test]
fn a_v2_whose_agent_crash_loops_rolls_back() -> Result<()> {
    // v2's agent.toml is invalid: its agent exits at once, every time.
    // husk-init gives up on it and, the boot being a trial, reboots.
    let setup = Setup::new("update_crash_loop")?;
    setup.release("2.0.0", Agent::Broken("[logs]\nmax_files = 0\n"))?;
    let mut vm = setup.boot(&setup.v1(&[], None)?)?;
    let applied = vm.wait_for_line("update-apply: apply:", TO_UPDATE)?;
    assert!(applied.contains("2.0.0 installed"), "{applied}");
    for try_number in 1..=3 {
        let trial = vm.wait_for_line("boot: trial boot of", TO_UEFI_AGENT_READY)?;
        assert!(trial.contains("husk-2.0.0+"), "try {try_number}: {trial}");
        vm.wait_for_line("husk-agent crash-loops on a trial boot", TO_UPDATE)?;
    }
    vm.wait_for_line("update: running version 1.0.0", TO_UEFI_AGENT_READY)?;
    let rolled_back = vm.wait_for_line("rolled back from 2.0.0 to 1.0.0", TO_CHECK)?;
    assert!(
        rolled_back.contains("without reaching its assessment"),
        "{rolled_back}"
    );
    power_off(&mut vm)
}

/// Boots v1 (running `update-apply ARGS`) against a repository prepared
/// by `prepare`, and expects the refusal to name `expected`, with v1
/// still the next boot.
fn refused(
    name: &str,
    apply_args: &[&str],
    prepare: impl FnOnce(&Setup) -> Result<()>,
    expected: &str,
) -> Result<()> {
    let setup = Setup::new(name)?;
    prepare(&setup)?;
    let mut vm = setup.boot(&setup.v1(apply_args, None)?)?;
    vm.wait_for_line("update: running version 1.0.0", TO_UEFI_AGENT_READY)?;
    let refusal = vm.wait_for_line("update-apply: apply:", TO_UPDATE)?;
    assert!(
        refusal.contains(expected),
        "expected {expected:?} in: {refusal}"
    );
    vm.wait_for_line("next boot:  1.0.0", TO_CHECK)?;
    vm.expect_check("update-apply", TO_CHECK)
        .expect_err("the apply must fail");
    power_off(&mut vm)
}

#[test]
fn a_tampered_uki_is_refused() -> Result<()> {
    refused(
        "update_tampered",
        &[],
        |setup| {
            setup.release("2.0.0", Agent::Plain)?;
            setup.repo.tamper_with("husk-2.0.0.efi");
            Ok(())
        },
        "does not match the signed",
    )
}

#[test]
fn a_bad_signature_is_refused() -> Result<()> {
    refused(
        "update_bad_signature",
        &[],
        |setup| {
            setup.release("2.0.0", Agent::Plain)?;
            setup.repo.spoil_timestamp_signature();
            Ok(())
        },
        "Failed to verify timestamp metadata",
    )
}

#[test]
fn expired_metadata_is_refused() -> Result<()> {
    refused(
        "update_expired",
        &[],
        |setup| {
            let v2 = setup.disk("2.0.0", Agent::Plain, &["sleep"], None)?;
            setup.repo.release(&v2.uki, -1).expect("release");
            Ok(())
        },
        "metadata is expired",
    )
}

#[test]
fn a_downgrade_is_refused() -> Result<()> {
    // The repository's only release is older than the running version:
    // not offered, and refused when asked for by name without force.
    refused(
        "update_downgrade",
        &["--version", "0.9.0"],
        |setup| setup.release("0.9.0", Agent::Plain),
        "0.9.0 is older than the running 1.0.0",
    )
}

/// Cuts power at `point` of an apply, then boots the same disk again:
/// a good version comes up with its data partition clean.
fn power_cut(point: &str, acceptable: &[&str]) -> Result<()> {
    let setup = Setup::new(&format!("update_cut_{}", point.replace('-', "_")))?;
    setup.release("2.0.0", Agent::Plain)?;
    let v1 = setup.v1(&[], Some(&format!("husk.update_fault={point}")))?;
    let mut vm = setup.boot(&v1)?;
    // Only an agent built with `fault-injection` arms it: say so at once
    // rather than wait out the apply for a point that never comes.
    vm.wait_for_line("update: fault injection armed", TO_UEFI_AGENT_READY)?;
    vm.wait_for_line(&format!("update: fault point reached: {point}"), TO_UPDATE)?;
    vm.kill();
    drop(vm);

    let mut vm = setup.boot(&v1)?;
    let running = vm.wait_for_line("update: running version", TO_UEFI_AGENT_READY)?;
    assert!(
        acceptable
            .iter()
            .any(|v| running.ends_with(&format!("running version {v}"))),
        "after a power cut at {point}: {running}"
    );
    // The journal may need replaying after the cut; nothing worse.
    let fsck = vm.wait_for_line_from_start("data: e2fsck /dev/", TO_CHECK)?;
    assert!(
        fsck.contains("clean in") || fsck.contains("errors corrected"),
        "{fsck}"
    );
    vm.wait_for_line_from_start(AGENT_READY, TO_CHECK)?;
    power_off(&mut vm)
}

#[test]
fn power_cut_during_the_download() -> Result<()> {
    power_cut("download", &["1.0.0"])
}

#[test]
fn power_cut_during_the_esp_write() -> Result<()> {
    power_cut("esp-write", &["1.0.0"])
}

#[test]
fn power_cut_before_the_rename() -> Result<()> {
    power_cut("rename", &["1.0.0"])
}

#[test]
fn power_cut_around_the_rename() -> Result<()> {
    // Before the directory is synced the rename may or may not be on
    // disk: either version is a good one.
    power_cut("renamed", &["1.0.0", "2.0.0"])
}

/// The documented path, on the command line alone: the release bundle
/// from `cargo xtask dist`, README's image build, and UPDATES.md's
/// "Keys, images and signing" block run as written (with the bundle's
/// husk-image for `husk-image`) for a v1 and a v2 image; the
/// repository served over HTTP; v1 booted through OVMF with a config
/// drive whose user-data's `[update]` names the repository and a window
/// around now. Nothing but the bundle's product binaries is in the
/// images (no checker, no fault points): the machine updates by itself
/// and must end up running v2, blessed.
#[test]
fn the_documented_commands_update_a_machine() -> Result<()> {
    let dir = TestDir::new("update_documented")?;
    let work = dir.path();
    let husk_image = release_bundle().join("husk-image");

    // README: `target/dist/husk-image build --out out --preload web.tar`,
    // in a directory of its own (its disks are large, if sparse).
    let readme_dir = work.join("readme");
    std::fs::create_dir_all(&readme_dir).unwrap();
    std::fs::write(
        readme_dir.join("web.tar"),
        husk_testkit::oci_archive("registry.example/web:1.4", &[husk_testkit::busybox_layer()]),
    )
    .unwrap();
    let readme = read_doc("README.md");
    let line = doc_commands(&readme, "## Boot it on a cloud VM")
        .into_iter()
        .find(|l| l[0] == "target/dist/husk-image")
        .expect("README's cloud section builds with the bundle's husk-image");
    assert_eq!(line[1..], ["build", "--out", "out", "--preload", "web.tar"]);
    run(&husk_image, &line[1..], &readme_dir);
    for file in ["disk.raw", "disk.qcow2", "disk.vhd", "manifest.json"] {
        assert!(readme_dir.join("out").join(file).is_file(), "no {file}");
    }
    std::fs::remove_dir_all(&readme_dir).unwrap();

    // UPDATES.md's block. What it takes as given: image.toml (the
    // version; small disks for the test) and agent.toml (checks every
    // few seconds instead of six hours; the repository comes from
    // user-data).
    let agent_toml = "[update]\ncheck_interval_secs = 5\n";
    std::fs::write(work.join("agent.toml"), agent_toml).unwrap();
    let image_toml = |version: &str| {
        format!(
            "version = \"{version}\"\nformats = [\"raw\"]\n[esp]\nsize_mib = 64\n\
             [data]\nsize_mib = 64\n[initramfs]\nzstd_level = 3\n"
        )
    };
    let updates = read_doc("docs/UPDATES.md");
    let block = doc_commands(&updates, "### Keys, images and signing");
    assert!(block.len() >= 7, "{block:?}");
    // README's summary of it: each of its husk-image lines is one of the
    // block's, so running the block runs them as written too.
    for line in doc_commands(&read_doc("README.md"), "## Updates") {
        if line[0] == "husk-image" {
            assert!(
                block.contains(&line),
                "README's {line:?} is not in UPDATES.md's block"
            );
        }
    }
    for line in &block {
        assert_eq!(line[0], "husk-image", "{line:?}");
        if line[1] == "build" {
            // v1 first, kept aside; then v2, which the block releases.
            std::fs::write(work.join("image.toml"), image_toml("1.0.0")).unwrap();
            run(&husk_image, &line[1..], work);
            std::fs::rename(work.join("out"), work.join("v1")).unwrap();
            std::fs::write(work.join("image.toml"), image_toml("1.1.0")).unwrap();
        }
        run(&husk_image, &line[1..], work);
    }
    assert!(
        block.iter().any(|l| l[1] == "release"),
        "the block releases v2"
    );

    let server = RepoServer::start(&work.join("repo"));
    let drive = qemu_tests::config_drive(
        work,
        &format!(
            "[update]\nrepository = \"{}\"\napply_window = \"{}\"\n",
            server.url(),
            window_around_now()
        ),
    )?;
    let v1_disk = work.join("v1/disk.raw");
    let mut vm = VmBuilder::new(TestDir::new("update_documented_vm")?)
        .ovmf(OVMF_CODE, OVMF_VARS)
        .drive(&v1_disk, "raw")
        .drive(&drive, "raw")
        .forward_to_host(GUEST_PORT, server.addr)
        .launch()?;
    vm.wait_for_line("update: running version 1.0.0", TO_UEFI_AGENT_READY)?;
    vm.wait_for_line_from_start("user-data from config drive", TO_UEFI_AGENT_READY)?;
    vm.wait_for_line("update: downloading 1.1.0", TO_UPDATE)?;
    vm.wait_for_line(REBOOT, TO_UPDATE)?;
    vm.wait_for_line("update: running version 1.1.0", TO_UEFI_AGENT_READY)?;
    vm.wait_for_line("1.1.0 passed its boot assessment and is blessed", TO_UPDATE)?;
    power_off(&mut vm)?;
    drop(vm);

    // Blessed on disk: v2's entry has lost its boot counter; v1 stays,
    // the way back.
    let entries = qemu_tests::esp::linux_entries(&v1_disk)?;
    assert_eq!(entries, ["husk-1.0.0.efi", "husk-1.1.0.efi"]);
    Ok(())
}

/// `cargo xtask dist`, as README says it; the bundle's directory.
fn release_bundle() -> std::path::PathBuf {
    let workspace = husk_binaries::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let readme = read_doc("README.md");
    let line = doc_commands(&readme, "## Boot it on a cloud VM")
        .into_iter()
        .find(|l| l[0] == "cargo")
        .expect("README's cloud section starts with cargo xtask dist");
    assert_eq!(line, ["cargo", "xtask", "dist"]);
    run(Path::new(&cargo), &line[1..], &workspace);
    husk_binaries::target_dir(&workspace).join("dist")
}

fn read_doc(name: &str) -> String {
    let path = husk_binaries::workspace_root().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The commands of the first ```sh block after `heading`: continuation
/// lines joined, comments dropped, each split into words.
fn doc_commands(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let after = &doc[doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"))..];
    let block = &after[after.find("```sh\n").expect("a sh block") + 6..];
    let block = &block[..block.find("```").expect("the block's end")];
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.split(" #").next().unwrap_or("").trim_end();
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                let words: Vec<String> = current.split_whitespace().map(str::to_owned).collect();
                if !words.is_empty() {
                    commands.push(words);
                }
                current.clear();
            }
        }
        current.push(' ');
    }
    commands
}

/// Runs `program args` in `dir`; panics with its output if it fails.
fn run(program: &Path, args: &[String], dir: &Path) {
    let output = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {} failed ({}):\n{}{}",
        program.display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `HH:MM-HH:MM` (UTC) from half an hour ago to two hours ahead: the
/// guest's clock is the host's.
fn window_around_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = (secs % 86_400 / 60) as i64;
    let hhmm = |minute: i64| {
        let m = minute.rem_euclid(1440);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    format!("{}-{}", hhmm(now - 30), hhmm(now + 120))
}
