//! `husk-image build` end to end: two builds from the same inputs give
//! the same bytes, and nothing of the build host leaks into them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

fn kernel() -> PathBuf {
    husk_image::kernel::default_kernel()
        .expect("no /boot/vmlinuz-*-cloud-amd64: apt-get install linux-image-cloud-amd64")
}

/// Small but valid inputs: the real kernel and its modules, stand-in
/// (static) binaries, a small disk, next to the config a custom
/// init.toml, an agent.toml, a pinned update root and an extra file.
fn inputs(dir: &Path) -> Vec<String> {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for name in ["husk-init", "husk-agent"] {
        let stand_in = husk_image::elf::stand_in_static(format!("stand-in {name}\n").as_bytes());
        fs::write(bin.join(name), stand_in).unwrap();
    }
    let conf = dir.join("conf");
    fs::create_dir_all(&conf).unwrap();
    fs::write(
        conf.join("image.toml"),
        "version = \"1.2.3\"\nseed = \"test\"\ninit_config = \"init.toml\"\n\
         agent_config = \"agent.toml\"\nupdate_root = \"root.json\"\n\
         [[extra_files]]\nhost = \"motd\"\nguest = \"/etc/motd\"\n\
         [esp]\nsize_mib = 64\n[data]\nsize_mib = 8\n[initramfs]\nzstd_level = 3\n",
    )
    .unwrap();
    fs::write(conf.join("init.toml"), "hostname = \"reproducible\"\n").unwrap();
    fs::write(
        conf.join("agent.toml"),
        "[security]\nallow_host_network = true\n",
    )
    .unwrap();
    fs::write(conf.join("root.json"), ROOT_JSON).unwrap();
    fs::write(conf.join("motd"), "welcome\n").unwrap();
    fs::write(conf.join("tool"), "#!/bin/true\n").unwrap();
    [
        "build",
        "--config",
        conf.join("image.toml").to_str().unwrap(),
        "--init",
        bin.join("husk-init").to_str().unwrap(),
        "--agent",
        bin.join("husk-agent").to_str().unwrap(),
        "--extra-file",
        &format!("{}:/usr/lib/husk/tool:0750", conf.join("tool").display()),
        "--kernel",
        kernel().to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// TUF root metadata as `husk-image repo-init` writes it (one key per
/// role), fixed so the test builds stay byte-identical.
const ROOT_JSON: &str = include_str!("root.json");

/// `(mode, path)` of every entry of a zstd cpio.
fn cpio_entries(initramfs: &Path) -> Vec<(String, String)> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc {} | cpio -itv --quiet",
            initramfs.display()
        ))
        .output()
        .expect("zstd and cpio: apt-get install zstd cpio");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words[0].to_owned(), words[words.len() - 1].to_owned())
        })
        .collect()
}

fn build(args: &[String], out: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_husk-image"))
        .args(args)
        .arg("--out")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "build failed: {stderr}");
    format!("{}{stderr}", String::from_utf8_lossy(&output.stdout))
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            assert!(
                e.file_type().unwrap().is_file(),
                "{:?} left behind",
                e.path()
            );
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let first = needle[0];
    haystack
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == first)
        .any(|(i, _)| haystack[i..].starts_with(needle))
}

#[test]
fn two_builds_are_byte_identical_and_host_free() {
    let dir = tempfile::tempdir().unwrap();
    let args = inputs(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let log = build(&args, &a);
    build(&args, &b);
    for step in ["[1/8] initramfs: ", "[8/8] manifest: ", "total build time"] {
        assert!(log.contains(step), "{step:?} not in the log:\n{log}");
    }

    let (first, second) = (files(&a), files(&b));
    let names: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "disk.qcow2",
            "disk.raw",
            "disk.vhd",
            "husk-1.2.3.efi",
            "initramfs.img",
            "manifest.json"
        ]
    );
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &first {
        assert!(bytes == &second[name], "{name} differs between two builds");
    }

    // The manifest lists every other file with its size and sha256.
    let manifest: serde_json::Value = serde_json::from_slice(&first["manifest.json"]).unwrap();
    assert_eq!(manifest["version"], "1.2.3");
    assert_eq!(manifest["source_date_epoch"], 1_700_000_000u64);
    let listed = manifest["artifacts"].as_array().unwrap();
    assert_eq!(listed.len(), first.len() - 1);
    for entry in listed {
        let bytes = &first[entry["file"].as_str().unwrap()];
        assert_eq!(entry["size"], bytes.len() as u64);
        let digest: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(entry["sha256"], digest);
    }

    // Nothing of the host: not the build's directories, not the user.
    let mut needles = vec![dir.path().to_str().unwrap().to_owned()];
    if let Ok(home) = std::env::var("HOME")
        && home.len() > 1
    {
        needles.push(home);
    }
    let user = std::env::var("USER").ok().or_else(|| {
        let out = Command::new("id").arg("-un").output().ok()?;
        Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
    });
    match user {
        // "root" is in systemd-boot's and the stub's own strings.
        Some(user) if user != "root" && user.len() >= 3 => needles.push(user),
        _ => {}
    }
    for (name, bytes) in &first {
        for needle in &needles {
            assert!(
                !contains(bytes, needle.as_bytes()),
                "{needle:?} appears in {name}"
            );
        }
    }

    // The disk holds the ESP with the UKI under its boot-counting name
    // and the data partition, where the GPT writer put them.
    let disk = &first["disk.raw"];
    assert_eq!(disk.len() as u64, (1 + 64 + 8 + 1) * MIB);
    assert_eq!(first["disk.vhd"].len(), disk.len() + 512);
    let esp = dir.path().join("esp.img");
    fs::write(&esp, &disk[MIB as usize..65 * MIB as usize]).unwrap();
    assert_eq!(
        husk_image::esp::read_file(&esp, "EFI/Linux/husk-1.2.3+3.efi").unwrap(),
        first["husk-1.2.3.efi"]
    );
    let data = dir.path().join("data.ext4");
    fs::write(&data, &disk[65 * MIB as usize..73 * MIB as usize]).unwrap();
    let e2label = husk_image::tools::find("e2label").expect("e2label: apt-get install e2fsprogs");
    let label = Command::new(e2label).arg(&data).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "husk-data");

    // The UKI carries the configured init.toml and the default cmdline.
    let uki = &first["husk-1.2.3.efi"];
    let sections = husk_image::uki::sections(uki).unwrap();
    let section = |name: &str| {
        sections
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.data(uki))
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(
        section(".cmdline"),
        b"console=tty0 console=ttyS0,115200n8 panic=-1"
    );
    assert_eq!(section(".initrd"), &first["initramfs.img"][..]);
    let cpio = zstd::decode_all(section(".initrd")).unwrap();
    assert!(contains(&cpio, b"hostname = \"reproducible\""));

    // What image.toml and the flags add is there, with its mode; the
    // only executables are the image's own and the user's extra one.
    let entries = cpio_entries(&a.join("initramfs.img"));
    let mode_of = |path: &str| {
        entries
            .iter()
            .find(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .unwrap_or_else(|| panic!("{path} not in the initramfs: {entries:?}"))
    };
    assert_eq!(mode_of("etc/husk/agent.toml"), "-rw-r--r--");
    assert_eq!(mode_of("etc/husk/update/root.json"), "-rw-r--r--");
    assert_eq!(mode_of("etc/motd"), "-rw-r--r--");
    assert_eq!(mode_of("usr/lib/husk/tool"), "-rwxr-x---");
    assert!(contains(&cpio, b"allow_host_network = true"));
    assert!(contains(&cpio, ROOT_JSON.as_bytes()));
    let executables: Vec<&str> = entries
        .iter()
        .filter(|(m, _)| m.starts_with("-rwx"))
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(
        executables,
        [
            "init",
            "usr/bin/husk-agent",
            "usr/lib/husk/tool",
            "usr/sbin/e2fsck"
        ]
    );
}
