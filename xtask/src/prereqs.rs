//! The Debian packages the build and the tests need. Run as root on
//! Debian, missing ones are installed (`apt-get update` once first);
//! otherwise the exact command to run is printed.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

/// A prerequisite: the Debian package and how to tell it is there.
struct Prereq {
    package: &'static str,
    present: fn() -> bool,
    why: &'static str,
}

fn has_command(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join(name).is_file())
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|dir| Path::new(dir).join(name).is_file())
    })
}

const PREREQS: &[Prereq] = &[
    Prereq {
        package: "qemu-system-x86",
        present: || has_command("qemu-system-x86_64"),
        why: "boots the images",
    },
    Prereq {
        package: "linux-image-cloud-amd64",
        present: || husk_image::kernel::default_kernel().is_some(),
        why: "the kernel Husk ships",
    },
    Prereq {
        package: "ovmf",
        present: || Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").is_file(),
        why: "UEFI firmware for QEMU",
    },
    Prereq {
        package: "systemd-boot-efi",
        present: || Path::new("/usr/lib/systemd/boot/efi/systemd-bootx64.efi").is_file(),
        why: "the boot loader and the UKI stub",
    },
    Prereq {
        package: "e2fsprogs",
        present: || has_command("mke2fs"),
        why: "formats the data partition",
    },
    Prereq {
        package: "e2fsck-static",
        present: || Path::new("/sbin/e2fsck.static").is_file(),
        why: "checks the data partition at boot (shipped in the image)",
    },
    Prereq {
        package: "qemu-utils",
        present: || has_command("qemu-img"),
        why: "writes qcow2 images and checks the image writers",
    },
    Prereq {
        package: "dnsmasq-base",
        present: || has_command("dnsmasq"),
        why: "the DNS peer of the user networks' name server (husk-dns, the agent's tests)",
    },
    Prereq {
        package: "gdisk",
        present: || has_command("sgdisk"),
        why: "checks the GPT writer",
    },
    Prereq {
        package: "fdisk",
        present: || has_command("fdisk"),
        why: "checks the GPT writer",
    },
    Prereq {
        package: "dosfstools",
        present: || has_command("fsck.vfat"),
        why: "checks the FAT writer",
    },
    Prereq {
        package: "binutils",
        present: || has_command("objdump"),
        why: "checks the UKI (PE) writer",
    },
    Prereq {
        package: "cpio",
        present: || has_command("cpio"),
        why: "the tests read initramfs images back with it",
    },
    Prereq {
        package: "zstd",
        present: || has_command("zstd"),
        why: "the tests decompress initramfs images with it",
    },
    Prereq {
        package: "runc",
        present: || has_command("runc"),
        why: "`cargo xtask bench` compares Husk's runtime with it",
    },
    Prereq {
        package: "crun",
        present: || has_command("crun"),
        why: "`cargo xtask bench` compares Husk's runtime with it",
    },
    Prereq {
        package: "containerd",
        present: || has_command("containerd") && has_command("ctr"),
        why: "a QEMU test runs Husk's runtime under containerd (tests/engines.rs)",
    },
    Prereq {
        package: "g++",
        // (what the cc crate runs for C++)
        present: || has_command("c++"),
        why: "compiles libFuzzer for the fuzz targets (`cargo xtask fuzz`)",
    },
    Prereq {
        package: "busybox-static",
        present: || Path::new("/bin/busybox").is_file(),
        why: "test container images are built from it",
    },
    Prereq {
        package: "docker-registry",
        present: || Path::new("/usr/bin/docker-registry").is_file(),
        why: "registry peers for the pull tests",
    },
    Prereq {
        package: "skopeo",
        present: || has_command("skopeo"),
        why: "registry peers for the pull tests",
    },
    Prereq {
        package: "docker.io",
        // Debian's client, not another docker earlier on the PATH: the
        // tests run /usr/bin/docker (no dockerd is started).
        present: || Path::new("/usr/bin/docker").is_file(),
        why: "Docker's CLI drives Husk's Docker Engine API (agent/tests/docker_cli.rs, docker_tls.rs)",
    },
    Prereq {
        package: "docker-compose",
        present: || Path::new("/usr/bin/docker-compose").is_file(),
        why: "Debian's docker-compose brings an application up on Husk (agent/tests/docker_compose.rs)",
    },
    Prereq {
        package: "python3-venv",
        present: crate::pyenv::can_make_venvs,
        why: "the Python Docker SDK and testcontainers are installed into target/pyenv (agent/tests/docker_python.rs)",
    },
    Prereq {
        package: "nftables",
        present: || has_command("nft"),
        why: "the firewall tests read the agent's nftables table back with `nft` (agent/tests/nft.rs)",
    },
    Prereq {
        package: "chrony",
        present: || Path::new("/usr/sbin/chronyd").is_file(),
        why: "an NTP server for the time tests, run with -x so it never sets this clock (ntp/tests/chrony.rs, agent/tests/time.rs)",
    },
];

/// Makes sure every prerequisite is installed, or says what to install.
pub fn ensure() -> Result<()> {
    ensure_these(PREREQS.iter().collect())
}

/// [`ensure`] for these packages only (a task that needs no QEMU).
pub fn ensure_only(packages: &[&str]) -> Result<()> {
    ensure_these(
        PREREQS
            .iter()
            .filter(|p| packages.contains(&p.package))
            .collect(),
    )
}

fn ensure_these(wanted: Vec<&Prereq>) -> Result<()> {
    let missing: Vec<&Prereq> = wanted.into_iter().filter(|p| !(p.present)()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
    for p in &missing {
        eprintln!("xtask: missing {} ({})", p.package, p.why);
    }
    let is_root = is_root();
    if !is_root || !has_command("apt-get") {
        bail!(
            "install the missing packages, then run again:\n    sudo apt-get update && sudo apt-get install --no-install-recommends {}",
            packages.join(" ")
        );
    }
    eprintln!("xtask: installing {}", packages.join(" "));
    run_apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&packages);
    // QEMU's packages must all be of one version: a qemu-utils newer than
    // the archive's qemu-system-x86 (a backport, as some machine images
    // ship) makes apt refuse the whole install. Align it on the version
    // apt would install for qemu-system-x86.
    let aligned = packages
        .contains(&"qemu-system-x86")
        .then(qemu_utils_alignment)
        .flatten();
    if let Some(pin) = &aligned {
        eprintln!("xtask: installing {pin} to match qemu-system-x86's version");
        install.push("--allow-downgrades");
        install.push(pin);
    }
    let no_starts = NoServiceStarts::install();
    run_apt(&install)?;
    drop(no_starts);
    let still: Vec<&str> = missing
        .iter()
        .filter(|p| !(p.present)())
        .map(|p| p.package)
        .collect();
    if !still.is_empty() {
        bail!(
            "apt-get ran, but these are still missing: {}",
            still.join(" ")
        );
    }
    Ok(())
}

/// `qemu-utils=<version>` when the installed qemu-utils differs from the
/// qemu-system-x86 apt would install; `None` when they agree or either
/// is unknown.
fn qemu_utils_alignment() -> Option<String> {
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "qemu-utils"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())?;
    let policy = Command::new("apt-cache")
        .args(["policy", "qemu-system-x86"])
        .output()
        .ok()?;
    let candidate = candidate_version(&String::from_utf8_lossy(&policy.stdout))?;
    (!installed.is_empty() && installed != candidate).then(|| format!("qemu-utils={candidate}"))
}

/// The `Candidate:` line of `apt-cache policy` output.
fn candidate_version(policy: &str) -> Option<String> {
    policy
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_owned)
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// A policy-rc.d answering 101 ("action forbidden") while apt installs:
/// invoke-rc.d and deb-systemd-invoke ask it before starting a package's
/// service, and chrony's postinst would otherwise start a chronyd that
/// disciplines this machine's clock. Removed afterwards; one already
/// there (Docker images have one) is left as it is.
struct NoServiceStarts(Option<&'static Path>);

impl NoServiceStarts {
    fn install() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new(POLICY_RC_D);
        if path.exists() {
            return Self(None);
        }
        let written = std::fs::write(
            path,
            "#!/bin/sh\n# cargo xtask: no service starts while it installs prerequisites\nexit 101\n",
        )
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)));
        match written {
            Ok(()) => Self(Some(path)),
            Err(e) => {
                eprintln!("xtask: writing {POLICY_RC_D}: {e}; new packages' services may start");
                Self(None)
            }
        }
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn run_apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("apt-get {} failed: {status}", args.join(" "));
    }
    Ok(())
}

fn is_root() -> bool {
    // `id -u` keeps xtask free of libc bindings for one call.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_is_read_from_apt_cache_policy() {
        let policy = "qemu-system-x86:\n  Installed: (none)\n  Candidate: 1:7.2+dfsg-7+deb12u18+b3\n  Version table:\n";
        assert_eq!(
            candidate_version(policy).as_deref(),
            Some("1:7.2+dfsg-7+deb12u18+b3")
        );
        assert_eq!(candidate_version("x:\n  Candidate: (none)\n"), None);
        assert_eq!(candidate_version(""), None);
    }
}
