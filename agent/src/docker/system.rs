//! `_ping`, `version` and `info`: what the CLI asks first (`_ping`'s
//! headers choose the API version it speaks), with this machine's real
//! figures: Husk's version, the kernel's, the containers and images.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use super::Docker;
use super::version::{API_VERSION, MIN_API_VERSION};
use crate::containers::Status;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET|HEAD /_ping`: `OK`, and the headers the CLI negotiates with. No
/// `Builder-Version`: there is no builder (so the CLI does not pick
/// BuildKit, and `docker build` reaches the 501 of `/build`).
pub fn ping() -> MethodRouter<Docker> {
    get(|| async {
        let mut headers = HeaderMap::new();
        headers.insert("API-Version", HeaderValue::from_static(API_VERSION));
        headers.insert("OSType", HeaderValue::from_static("linux"));
        headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, must-revalidate"),
        );
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        // axum answers HEAD with GET's headers and no body.
        (headers, "OK").into_response()
    })
}

struct Uname {
    kernel: String,
    machine: String,
    hostname: String,
}

fn uname() -> Uname {
    let u = rustix::system::uname();
    let text = |s: &std::ffi::CStr| s.to_string_lossy().into_owned();
    Uname {
        kernel: text(u.release()),
        machine: text(u.machine()),
        hostname: text(u.nodename()),
    }
}

/// Go's names of the architecture (`amd64`), which `version` uses.
fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `GET /version`.
pub fn version() -> MethodRouter<Docker> {
    get(|| async {
        let u = uname();
        let arch = go_arch(&u.machine).to_owned();
        Json(json!({
            "Platform": {"Name": format!("Husk {VERSION}")},
            "Components": [{
                "Name": "Engine",
                "Version": VERSION,
                "Details": {
                    "ApiVersion": API_VERSION,
                    "MinAPIVersion": MIN_API_VERSION,
                    "Os": "linux",
                    "Arch": arch,
                    "KernelVersion": u.kernel,
                    "Experimental": "false",
                },
            }],
            "Version": VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "none (Husk is written in Rust)",
            "Os": "linux",
            "Arch": arch,
            "KernelVersion": u.kernel,
            "BuildTime": "",
        }))
    })
}

/// `MemTotal` of /proc/meminfo, in bytes.
pub(super) fn mem_total() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// `GET /info`.
pub fn info() -> MethodRouter<Docker> {
    get(|State(docker): State<Docker>| async move { Json(info_of(&docker).await) })
}

async fn info_of(docker: &Docker) -> Value {
    let containers = docker.manager.list();
    let count = |f: fn(Status) -> bool| containers.iter().filter(|c| f(c.status)).count();
    // Docker counts a restarting container as running (its state says
    // both), and a created one as stopped.
    let running = count(|s| matches!(s, Status::Running | Status::Restarting));
    let stopped = count(|s| matches!(s, Status::Created | Status::Exited));
    let images = match docker.images.shared() {
        Ok(store) => tokio::task::spawn_blocking(move || {
            store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .list()
                .len()
        })
        .await
        .unwrap_or(0),
        Err(_) => 0,
    };
    let u = uname();
    let policy = &docker.manager.config().policy;
    let mut security = vec!["name=seccomp,profile=default".to_owned()];
    if policy.userns == husk_spec::UsernsPolicy::Required {
        security.push("name=userns".into());
    }
    security.push("name=cgroupns".into());
    let ncpu = std::thread::available_parallelism().map_or(1, usize::from);
    let mut info = json!({
        "ID": "",
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": null,
            "Log": ["json-file"],
        },
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": false,
        "CPUSet": false,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": husk_common::civil::rfc3339(std::time::SystemTime::now()),
    });
    // In two parts: one `json!` this long passes the macro recursion limit.
    let machine = json!({
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2",
        "NEventsListener": 0,
        "KernelVersion": u.kernel,
        "OperatingSystem": "Husk",
        "OSVersion": VERSION,
        "OSType": "linux",
        "Architecture": u.machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": null,
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "DockerRootDir": docker.root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": u.hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": VERSION,
        "Runtimes": {"husk": {"path": "husk-agent oci"}},
        "DefaultRuntime": "husk",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": false,
            "Error": "",
            "RemoteManagers": null,
        },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": security,
        "Warnings": [],
    });
    if let (Value::Object(info), Value::Object(machine)) = (&mut info, machine) {
        info.extend(machine);
    }
    info
}
