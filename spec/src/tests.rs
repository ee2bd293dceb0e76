//! `build_spec` against Docker's defaults and its override rules.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxNamespaceType, LinuxSeccompAction, PosixRlimitType, Spec,
};
use serde_json::json;

use super::seccomp::tests::{Verdict, verdict};
use super::*;

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n";
const GROUP: &str = "root:x:0:\ntty:x:5:www-data\nwww-data:x:33:\n";

/// An image config as `docker inspect busybox` shows it, with extras.
fn image(config: serde_json::Value) -> ImageConfiguration {
    serde_json::from_value(json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap()
}

fn busybox() -> ImageConfiguration {
    image(
        json!({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]}),
    )
}

struct Rootfs(tempfile::TempDir);

impl Rootfs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

fn build(image: &ImageConfiguration, opts: &RunOptions) -> Result<Spec, SpecError> {
    let rootfs = Rootfs::new();
    build_spec(image, opts, rootfs.path(), &SecurityPolicy::permissive())
}

fn opts() -> RunOptions {
    RunOptions::new("web", "busybox")
}

fn process(spec: &Spec) -> &oci_spec::runtime::Process {
    spec.process().as_ref().unwrap()
}

fn linux(spec: &Spec) -> &oci_spec::runtime::Linux {
    spec.linux().as_ref().unwrap()
}

fn args(image: &ImageConfiguration, opts: &RunOptions) -> Vec<String> {
    process(&build(image, opts).unwrap())
        .args()
        .clone()
        .unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn defaults_are_dockers() {
    let rootfs = Rootfs::new();
    let spec = build_spec(
        &busybox(),
        &opts(),
        rootfs.path(),
        &SecurityPolicy::default(),
    )
    .unwrap();
    let p = process(&spec);
    assert_eq!(p.args().as_deref(), Some(&strings(&["sh"])[..]));
    assert_eq!(p.cwd(), Path::new("/"));
    assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.terminal(), Some(false));
    assert_eq!(
        p.env().as_deref().unwrap(),
        &strings(&[
            &format!("PATH={DEFAULT_PATH}"),
            "HOSTNAME=web",
            "HOME=/root"
        ])[..]
    );

    let caps = p.capabilities().as_ref().unwrap();
    let default: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    assert_eq!(default.len(), 14);
    assert!(default.contains(&Capability::NetBindService));
    // Docker's set: the device cgroup keeps made nodes closed.
    assert!(default.contains(&Capability::Mknod));
    assert!(!default.contains(&Capability::SysAdmin));
    assert_eq!(caps.bounding().as_ref(), Some(&default));
    assert_eq!(caps.effective().as_ref(), Some(&default));
    assert_eq!(caps.permitted().as_ref(), Some(&default));
    assert!(caps.inheritable().as_ref().unwrap().is_empty());
    assert!(caps.ambient().as_ref().unwrap().is_empty());

    let rlimits = p.rlimits().as_deref().unwrap();
    assert_eq!(rlimits.len(), 1);
    assert_eq!(rlimits[0].typ(), PosixRlimitType::RlimitNofile);
    assert_eq!(
        (rlimits[0].soft(), rlimits[0].hard()),
        (1_048_576, 1_048_576)
    );

    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), rootfs.path());
    assert_eq!(root.readonly(), Some(false));
    assert_eq!(spec.hostname().as_deref(), Some("web"));
    assert_eq!(spec.annotations(), &None);

    let mounts: Vec<(String, String, Vec<String>)> = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m.destination().display().to_string(),
                m.typ().clone().unwrap(),
                m.options().clone().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("/proc", "proc", "nosuid,noexec,nodev"),
        ("/dev", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"),
        (
            "/dev/pts",
            "devpts",
            "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        (
            "/dev/shm",
            "tmpfs",
            "nosuid,noexec,nodev,mode=1777,size=65536k",
        ),
        ("/dev/mqueue", "mqueue", "nosuid,noexec,nodev"),
        ("/sys", "sysfs", "nosuid,noexec,nodev,ro"),
        (
            "/sys/fs/cgroup",
            "cgroup2",
            "nosuid,noexec,nodev,relatime,ro",
        ),
    ];
    assert_eq!(mounts.len(), expected.len());
    for ((dest, typ, options), (d, t, o)) in mounts.iter().zip(expected) {
        assert_eq!((dest.as_str(), typ.as_str()), (d, t));
        assert_eq!(options.join(","), o, "{dest}");
    }

    let l = linux(&spec);
    let namespaces: Vec<LinuxNamespaceType> = l
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert_eq!(
        namespaces,
        [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Network,
        ]
    );
    assert_eq!(l.uid_mappings(), &None);
    assert_eq!(
        l.masked_paths().as_deref().unwrap(),
        &strings(&[
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
        ])[..]
    );
    assert_eq!(
        l.readonly_paths().as_deref().unwrap(),
        &strings(&[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ])[..]
    );
    assert_eq!(l.cgroups_path().as_deref(), Some(Path::new("/husk/web")));
    let resources = l.resources().as_ref().unwrap();
    assert_eq!(resources.memory(), &None);
    assert_eq!(resources.cpu(), &None);
    assert_eq!(resources.pids(), &None);
    let devices = resources.devices().as_deref().unwrap();
    assert!(!devices[0].allow(), "deny all first");
    assert!(
        devices
            .iter()
            .any(|d| d.allow() && d.major() == Some(1) && d.minor() == Some(3))
    );

    let seccomp = l.seccomp().as_ref().unwrap();
    assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(seccomp.default_errno_ret(), Some(1));
    for denied in ["mount", "bpf", "keyctl", "ptrace", "kexec_load"] {
        assert_eq!(verdict(seccomp, denied), Verdict::Denied, "{denied}");
    }
    for allowed in ["read", "write", "execve"] {
        assert_eq!(verdict(seccomp, allowed), Verdict::Allowed, "{allowed}");
    }
    assert_eq!(verdict(seccomp, "clone"), Verdict::AllowedIf);
}

#[test]
fn entrypoint_and_cmd_follow_dockers_table() {
    let both = image(json!({"Entrypoint": ["/entry", "-x"], "Cmd": ["default"]}));
    let cmd_only = image(json!({"Cmd": ["sh", "-c", "echo hi"]}));
    let with = |entrypoint: Option<&[&str]>, cmd: Option<&[&str]>| RunOptions {
        entrypoint: entrypoint.map(strings),
        cmd: cmd.map(strings),
        ..opts()
    };
    let cases: [(&ImageConfiguration, RunOptions, &[&str]); 9] = [
        (&both, with(None, None), &["/entry", "-x", "default"]),
        (&both, with(None, Some(&["arg"])), &["/entry", "-x", "arg"]),
        (&both, with(Some(&["/other"]), None), &["/other"]),
        (
            &both,
            with(Some(&["/other"]), Some(&["a", "b"])),
            &["/other", "a", "b"],
        ),
        (&both, with(Some(&[]), None), &["default"]),
        (&both, with(Some(&[]), Some(&["ls"])), &["ls"]),
        // An empty cmd is no cmd.
        (&both, with(None, Some(&[])), &["/entry", "-x", "default"]),
        (&cmd_only, with(None, None), &["sh", "-c", "echo hi"]),
        (&cmd_only, with(None, Some(&["id"])), &["id"]),
    ];
    for (image, opts, expected) in cases {
        assert_eq!(args(image, &opts), strings(expected), "{opts:?}");
    }
    let nothing = image(json!({}));
    assert!(matches!(
        build(&nothing, &opts()),
        Err(SpecError::NoCommand)
    ));
    assert!(build(&cmd_only, &with(Some(&[]), Some(&[]))).is_ok());
    assert!(build(&both, &with(Some(&[]), None)).is_ok());
    let no_config: ImageConfiguration = serde_json::from_value(json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    assert!(matches!(
        build(&no_config, &opts()),
        Err(SpecError::NoCommand)
    ));
    assert_eq!(args(&no_config, &with(None, Some(&["true"]))), ["true"]);
}

#[test]
fn env_merges_over_the_image_and_defaults() {
    let image = image(json!({
        "Env": ["PATH=/bin", "A=image", "B=image", "HOME=/home/app"],
        "Cmd": ["sh"],
    }));
    let opts = RunOptions {
        env: strings(&["B=user", "C=user=with=equals", "HOSTNAME=mine"]),
        hostname: Some("box".into()),
        ..opts()
    };
    let spec = build(&image, &opts).unwrap();
    assert_eq!(
        process(&spec).env().as_deref().unwrap(),
        &strings(&[
            "PATH=/bin",
            "HOSTNAME=mine",
            "A=image",
            "B=user",
            "HOME=/home/app",
            "C=user=with=equals",
        ])[..]
    );
    assert_eq!(spec.hostname().as_deref(), Some("box"));
    assert_eq!(
        merge_env(&strings(&["A=1", "B=2"]), &strings(&["B=3", "A=", "D=4"])),
        strings(&["A=", "B=3", "D=4"])
    );
    for bad in ["NOEQUALS", "=value", "A=b\0c"] {
        let opts = RunOptions {
            env: strings(&[bad]),
            ..self::opts()
        };
        let err = build(&busybox(), &opts).unwrap_err();
        assert!(
            matches!(err, SpecError::InvalidOption { option: "env", .. }),
            "{err}"
        );
    }
}

#[test]
fn users_resolve_from_the_rootfs() {
    let spec = build(
        &busybox(),
        &RunOptions {
            user: Some("www-data".into()),
            ..opts()
        },
    )
    .unwrap();
    let user = process(&spec).user();
    assert_eq!((user.uid(), user.gid()), (33, 33));
    assert_eq!(user.additional_gids().as_deref(), Some(&[5][..]));
    assert!(
        process(&spec)
            .env()
            .as_ref()
            .unwrap()
            .contains(&"HOME=/var/www".to_string())
    );

    // The image's User, overridden by the flag.
    let image = image(json!({"User": "www-data:tty", "Cmd": ["sh"]}));
    let user = process(&build(&image, &opts()).unwrap()).user().clone();
    assert_eq!((user.uid(), user.gid()), (33, 5));
    let numeric = RunOptions {
        user: Some("1000:1000".into()),
        ..opts()
    };
    let user = process(&build(&image, &numeric).unwrap()).user().clone();
    assert_eq!((user.uid(), user.gid()), (1000, 1000));

    let unknown = RunOptions {
        user: Some("postgres".into()),
        ..opts()
    };
    let err = build(&busybox(), &unknown).unwrap_err();
    assert!(err.to_string().contains("`postgres`"), "{err}");
}

#[test]
fn workdir_comes_from_the_flag_or_the_image_and_is_absolute() {
    let image = image(json!({"WorkingDir": "/app", "Cmd": ["sh"]}));
    let cwd = |opts: &RunOptions| process(&build(&image, opts).unwrap()).cwd().clone();
    assert_eq!(cwd(&opts()), Path::new("/app"));
    let flag = RunOptions {
        workdir: Some("/srv".into()),
        ..opts()
    };
    assert_eq!(cwd(&flag), Path::new("/srv"));
    let relative = RunOptions {
        workdir: Some("srv".into()),
        ..opts()
    };
    assert!(matches!(
        build(&image, &relative),
        Err(SpecError::InvalidOption {
            option: "workdir",
            ..
        })
    ));
}

#[test]
fn limits_become_cgroup_resources() {
    let opts = RunOptions {
        memory: Some(256 << 20),
        cpus: Some(1.5),
        pids_limit: Some(100),
        io_weight: Some(500),
        ..opts()
    };
    let spec = build(&busybox(), &opts).unwrap();
    let r = linux(&spec).resources().as_ref().unwrap();
    let memory = r.memory().unwrap();
    assert_eq!(memory.limit(), Some(256 << 20));
    assert_eq!(memory.swap(), Some(256 << 20), "no swap beyond the limit");
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
    assert_eq!(r.pids().unwrap().limit(), 100);
    assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(500));

    let tenth = RunOptions {
        cpus: Some(0.1),
        ..self::opts()
    };
    let spec = build(&busybox(), &tenth).unwrap();
    let cpu = linux(&spec)
        .resources()
        .as_ref()
        .unwrap()
        .cpu()
        .clone()
        .unwrap();
    assert_eq!(cpu.quota(), Some(10_000));

    let bad: [(RunOptions, &str); 7] = [
        (
            RunOptions {
                memory: Some(1024),
                ..self::opts()
            },
            "memory",
        ),
        (
            RunOptions {
                cpus: Some(0.0),
                ..self::opts()
            },
            "cpus",
        ),
        (
            RunOptions {
                cpus: Some(f64::NAN),
                ..self::opts()
            },
            "cpus",
        ),
        (
            RunOptions {
                cpus: Some(-1.0),
                ..self::opts()
            },
            "cpus",
        ),
        (
            RunOptions {
                pids_limit: Some(0),
                ..self::opts()
            },
            "pids_limit",
        ),
        (
            RunOptions {
                io_weight: Some(5),
                ..self::opts()
            },
            "io_weight",
        ),
        (
            RunOptions {
                io_weight: Some(1001),
                ..self::opts()
            },
            "io_weight",
        ),
    ];
    for (opts, option) in bad {
        match build(&busybox(), &opts) {
            Err(SpecError::InvalidOption { option: o, .. }) => assert_eq!(o, option),
            other => panic!("{option}: {other:?}"),
        }
    }
}

#[test]
fn privileged_needs_the_policy_and_drops_confinement() {
    let rootfs = Rootfs::new();
    let privileged = RunOptions {
        privileged: true,
        ..opts()
    };
    let err = build_spec(
        &busybox(),
        &privileged,
        rootfs.path(),
        &SecurityPolicy::default(),
    )
    .unwrap_err();
    assert!(matches!(err, SpecError::Forbidden(_)));
    assert!(
        err.to_string()
            .starts_with("privileged containers are disabled by the agent's configuration ("),
        "{err}"
    );

    let spec = build(&busybox(), &privileged).unwrap();
    let caps = process(&spec).capabilities().clone().unwrap();
    let all: HashSet<Capability> = ALL_CAPABILITIES.into_iter().collect();
    assert_eq!(all.len(), 41);
    assert_eq!(caps.bounding().as_ref(), Some(&all));
    assert_eq!(caps.effective().as_ref(), Some(&all));
    assert!(caps.inheritable().as_ref().unwrap().is_empty());
    let l = linux(&spec);
    assert_eq!(l.seccomp(), &None);
    assert_eq!(l.masked_paths(), &None);
    assert_eq!(l.readonly_paths(), &None);
    let sys = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));
    let devices = l.resources().as_ref().unwrap().devices().clone().unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].allow());
}

#[test]
fn read_only_rootfs() {
    let opts = RunOptions {
        read_only: true,
        ..opts()
    };
    let spec = build(&busybox(), &opts).unwrap();
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
}

#[test]
fn host_network_shares_the_namespace_if_allowed() {
    let has_netns = |spec: &Spec| {
        linux(spec)
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network)
    };
    assert!(has_netns(&build(&busybox(), &opts()).unwrap()));
    let host = RunOptions {
        network: NetworkMode::Host,
        ..opts()
    };
    assert!(!has_netns(&build(&busybox(), &host).unwrap()));
    let rootfs = Rootfs::new();
    let policy = SecurityPolicy {
        allow_privileged: true,
        allow_host_network: false,
        ..SecurityPolicy::default()
    };
    let err = build_spec(&busybox(), &host, rootfs.path(), &policy).unwrap_err();
    assert!(matches!(err, SpecError::Forbidden(_)), "{err}");
    assert!(err.to_string().contains("host network"), "{err}");
    // A policy requiring a user namespace refuses a spec without one.
    let policy = SecurityPolicy {
        userns: crate::UsernsPolicy::Required,
        ..SecurityPolicy::permissive()
    };
    let err = build_spec(&busybox(), &opts(), rootfs.path(), &policy).unwrap_err();
    assert!(err.to_string().contains("userns = \"required\""), "{err}");
}

#[test]
fn user_namespaces_map_ids() {
    let opts = RunOptions {
        userns: Some(UserNamespace {
            host_uid: 100_000,
            host_gid: 200_000,
            size: 65_536,
        }),
        ..opts()
    };
    let spec = build(&busybox(), &opts).unwrap();
    let l = linux(&spec);
    assert!(
        l.namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User)
    );
    let uid = l.uid_mappings().as_deref().unwrap();
    assert_eq!(
        (uid[0].container_id(), uid[0].host_id(), uid[0].size()),
        (0, 100_000, 65_536)
    );
    let gid = l.gid_mappings().as_deref().unwrap();
    assert_eq!(
        (gid[0].container_id(), gid[0].host_id(), gid[0].size()),
        (0, 200_000, 65_536)
    );

    let small = RunOptions {
        userns: Some(UserNamespace {
            host_uid: 100_000,
            host_gid: 100_000,
            size: 10,
        }),
        user: Some("www-data".into()),
        ..self::opts()
    };
    assert!(matches!(
        build(&busybox(), &small),
        Err(SpecError::InvalidOption { option: "user", .. })
    ));
    let overflow = RunOptions {
        userns: Some(UserNamespace {
            host_uid: u32::MAX,
            host_gid: 0,
            size: 2,
        }),
        ..self::opts()
    };
    assert!(matches!(
        build(&busybox(), &overflow),
        Err(SpecError::InvalidOption {
            option: "userns",
            ..
        })
    ));
}

#[test]
fn labels_are_annotations_and_names_are_checked() {
    let opts = RunOptions {
        labels: [("com.example.team".to_string(), "web".to_string())].into(),
        ..opts()
    };
    let spec = build(&busybox(), &opts).unwrap();
    assert_eq!(
        spec.annotations().as_ref().unwrap()["com.example.team"],
        "web"
    );
    for bad in ["", "-web", "a/b", "has space", &"x".repeat(64)] {
        let opts = RunOptions::new(bad, "busybox");
        assert!(
            matches!(
                build(&busybox(), &opts),
                Err(SpecError::InvalidOption { option: "name", .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn the_spec_is_a_valid_config_json() {
    let opts = RunOptions {
        user: Some("www-data".into()),
        memory: Some(64 << 20),
        cpus: Some(0.5),
        userns: Some(UserNamespace {
            host_uid: 100_000,
            host_gid: 100_000,
            size: 65_536,
        }),
        labels: [("a".to_string(), "b".to_string())].into(),
        ..opts()
    };
    let spec = build(&busybox(), &opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let back = Spec::load(&path).unwrap();
    assert_eq!(back, spec);
    // The field names are the OCI spec's.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["ociVersion"], oci_spec::runtime::VERSION);
    assert_eq!(json["process"]["noNewPrivileges"], true);
    assert_eq!(json["linux"]["cgroupsPath"], "/husk/web");
    assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(json["linux"]["uidMappings"][0]["hostID"], 100_000);
    assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 50_000);
}

#[test]
fn run_options_are_json_with_defaults() {
    let opts: RunOptions = serde_json::from_value(json!({
        "name": "web", "image": "busybox", "restart": "on-failure:3", "network": "host",
    }))
    .unwrap();
    assert_eq!(
        opts.restart,
        RestartPolicy::OnFailure {
            max_retries: Some(3)
        }
    );
    assert_eq!(opts.network, NetworkMode::Host);
    assert!(!opts.privileged);
    let back: RunOptions = serde_json::from_value(serde_json::to_value(&opts).unwrap()).unwrap();
    assert_eq!(back, opts);
    assert!(
        serde_json::from_value::<RunOptions>(
            json!({"name": "a", "image": "b", "privileged_": true})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<RunOptions>(
            json!({"name": "a", "image": "b", "restart": "sometimes"})
        )
        .is_err()
    );
}

#[test]
fn a_tty_gets_a_terminal_and_dockers_term() {
    let tty = RunOptions {
        tty: true,
        ..opts()
    };
    let spec = build(&busybox(), &tty).unwrap();
    assert_eq!(process(&spec).terminal(), Some(true));
    let env = process(&spec).env().clone().unwrap();
    assert!(env.contains(&"TERM=xterm".to_string()), "{env:?}");
    // The user's TERM wins, in the default's place.
    let own = RunOptions {
        env: strings(&["TERM=vt100"]),
        ..tty
    };
    let env = process(&build(&busybox(), &own).unwrap())
        .env()
        .clone()
        .unwrap();
    assert_eq!(env.iter().filter(|e| e.starts_with("TERM=")).count(), 1);
    assert!(env.contains(&"TERM=vt100".to_string()), "{env:?}");
    // Without -t: no terminal, no TERM.
    let env = process(&build(&busybox(), &opts()).unwrap())
        .env()
        .clone()
        .unwrap();
    assert!(!env.iter().any(|e| e.starts_with("TERM=")), "{env:?}");
}
