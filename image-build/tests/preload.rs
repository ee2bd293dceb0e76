//! `husk-image build --preload`: images in the data partition's store,
//! reproducibly, and a bad archive stops the build naming the problem.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MIB: usize = 1 << 20;

fn kernel() -> PathBuf {
    husk_image::kernel::default_kernel()
        .expect("no /boot/vmlinuz-*-cloud-amd64: apt-get install linux-image-cloud-amd64")
}

/// Stand-in binaries and a config with a 40 MiB data partition.
fn build(dir: &Path, out: &Path, archive: &Path) -> Output {
    build_with(dir, out, &[archive.as_os_str()])
}

/// `build` with `args` in place of `--preload ARCHIVE`'s archive.
fn build_with(dir: &Path, out: &Path, preload: &[&std::ffi::OsStr]) -> Output {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for name in ["husk-init", "husk-agent"] {
        let stand_in = husk_image::elf::stand_in_static(format!("stand-in {name}\n").as_bytes());
        fs::write(bin.join(name), stand_in).unwrap();
    }
    let config = dir.join("image.toml");
    fs::write(
        &config,
        "version = \"1.0.0\"\nseed = \"preload\"\nformats = [\"raw\"]\n\
         [esp]\nsize_mib = 64\n[data]\nsize_mib = 40\n[initramfs]\nzstd_level = 3\n",
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_husk-image"))
        .arg("build")
        .arg("--config")
        .arg(&config)
        .args(
            ["--init", "--agent"]
                .iter()
                .zip(["husk-init", "husk-agent"])
                .flat_map(|(flag, name)| {
                    [
                        flag.to_string(),
                        bin.join(name).to_string_lossy().into_owned(),
                    ]
                }),
        )
        .arg("--kernel")
        .arg(kernel())
        .arg("--preload")
        .args(preload)
        .arg("--out")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap()
}

fn debugfs(image: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(image)
        .output()
        .expect("debugfs (e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn preloaded_images_are_in_the_data_partition_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    fs::write(
        &archive,
        husk_testkit::oci_archive("preload.test/busybox:1", &[husk_testkit::busybox_layer()]),
    )
    .unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let output = build(dir.path(), out, &archive);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let disk = fs::read(a.join("disk.raw")).unwrap();
    assert!(
        disk == fs::read(b.join("disk.raw")).unwrap(),
        "two builds differ"
    );

    // The data partition follows the 64 MiB ESP (after the 1 MiB GPT area).
    let data = dir.path().join("data.ext4");
    fs::write(&data, &disk[65 * MIB..105 * MIB]).unwrap();
    let index = debugfs(&data, "cat /images.json");
    assert!(index.contains("preload.test/busybox:1"), "{index}");
    let blobs = debugfs(&data, "ls -l /blobs/sha256");
    // manifest, config and the layer's blob (unpacked at first boot)
    assert_eq!(
        blobs
            .lines()
            .filter(|l| l.contains("100600") || l.contains("100644"))
            .count(),
        3,
        "{blobs}"
    );
    assert!(!debugfs(&data, "ls -l /").contains("store.lock"));
    // Owned by root whatever the builder's uid.
    let stat = debugfs(&data, "stat /images.json");
    assert!(stat.contains("User:     0   Group:     0"), "{stat}");
}

#[test]
fn a_tampered_archive_stops_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = husk_testkit::oci_archive("bad:1", &[husk_testkit::busybox_layer()]);
    // Flip a byte inside busybox (deep in the layer blob): its digest no
    // longer matches its name.
    let at = data.len() / 2;
    data[at] ^= 0xff;
    let archive = dir.path().join("bad.tar");
    fs::write(&archive, data).unwrap();
    let output = build(dir.path(), &dir.path().join("out"), &archive);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.tar"), "{stderr}");
    assert!(stderr.contains("sha256:"), "{stderr}");
}

/// `--preload docker://REF`: pulled from the registry the way the agent
/// pulls, with `--registry-config`'s `[registry]` (here: the registry is
/// plain HTTP, so it must be listed as insecure); a registry serving a
/// layer that is not its digest stops the build naming it.
#[test]
fn images_are_preloaded_from_a_registry() {
    use husk_testkit::fake_registry::{Content, FakeRegistry, Fault, Layer};
    let dir = tempfile::tempdir().unwrap();
    let mut content = Content::new();
    let image = content.image(
        "library/busybox",
        "1",
        &[Layer::tar(husk_testkit::busybox_layer())],
    );
    let registry = FakeRegistry::start(content);
    let config = dir.path().join("agent.toml");
    fs::write(
        &config,
        format!("[registry]\ninsecure = [\"{}\"]\n", registry.host()),
    )
    .unwrap();
    let reference = format!("docker://{}/library/busybox:1", registry.host());
    let out = dir.path().join("out");
    let output = build_with(
        dir.path(),
        &out,
        &[
            reference.as_ref(),
            "--registry-config".as_ref(),
            config.as_os_str(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let disk = fs::read(out.join("disk.raw")).unwrap();
    let data = dir.path().join("data.ext4");
    fs::write(&data, &disk[65 * MIB..105 * MIB]).unwrap();
    let index = debugfs(&data, "cat /images.json");
    assert!(
        index.contains(&format!("{}/library/busybox:1", registry.host())),
        "{index}"
    );
    assert!(index.contains(&image.manifest), "{index}");

    // Without the configuration, plain HTTP is refused.
    let output = build_with(dir.path(), &dir.path().join("out2"), &[reference.as_ref()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("insecure"), "{stderr}");

    registry.fault(&image.layers[0], Fault::WrongBytes);
    let output = build_with(
        dir.path(),
        &dir.path().join("out3"),
        &[
            reference.as_ref(),
            "--registry-config".as_ref(),
            config.as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(&image.layers[0]), "{stderr}");
}
