//! Test-only bundles: a busybox rootfs and a config.json like `runc spec`
//! makes, with Docker's default capabilities, masked and read-only paths.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub const TOOLS: &[&str] = &[
    "sh",
    "cat",
    "id",
    "ls",
    "echo",
    "hostname",
    "grep",
    "true",
    "touch",
    "mount",
    "sleep",
    "wc",
    "env",
    "pwd",
    "stat",
    "sha256sum",
    "unshare",
    "readlink",
    "kill",
    "mknod",
    "head",
    "tty",
    "stty",
    "cut",
    "tr",
];

pub const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's mask: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
/// SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
pub const DOCKER_CAPS_HEX: &str = "00000000a80425fb";

/// A bundle directory with a busybox rootfs and a config running `args`.
pub fn make(dir: &Path, args: &[&str]) -> PathBuf {
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    for d in ["mnt", "tmp", "proc", "sys", "dev", "etc"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for tool in TOOLS {
        symlink("busybox", rootfs.join("bin").join(tool)).unwrap();
    }
    write_config(dir, &config(args));
    dir.to_path_buf()
}

/// Gives the bundle the host's libraries, read-only: a dynamically linked
/// host binary (the test build of the runtime) then runs inside it.
pub fn with_host_libs(dir: &Path, config: &mut Value) {
    let rootfs = dir.join("rootfs");
    for lib in ["usr/lib", "usr/lib64"] {
        fs::create_dir_all(rootfs.join(lib)).unwrap();
        config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": format!("/{lib}"), "type": "bind", "source": format!("/{lib}"),
            "options": ["rbind", "ro", "nosuid", "nodev"]
        }));
    }
    // Debian's merged /usr.
    symlink("usr/lib", rootfs.join("lib")).unwrap();
    symlink("usr/lib64", rootfs.join("lib64")).unwrap();
}

pub fn write_config(dir: &Path, config: &Value) {
    fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(config).unwrap(),
    )
    .unwrap();
}

/// A small seccomp profile: allow by default, a few syscalls refused with
/// their own errno (argument conditions included).
pub fn seccomp() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["unshare", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
        ]
    })
}

pub fn config(args: &[&str]) -> Value {
    let caps = json!(DOCKER_CAPS);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "husk-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "seccomp": seccomp(),
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}
