//! The seed corpora (`fuzz/corpus/<target>/`), written by code so that
//! they stay small, deterministic and true to the formats: layers made
//! with the tar crate, archives in `image_manifest`'s input format, the
//! documented init.toml, agent.toml and user-data, DHCP replies encoded
//! by dhcproto, DNS queries by hickory-proto, GPT disks from husk-gpt's
//! writer, bodies from husk-api's types.

mod archives;
mod disks;
mod dns;
mod layers;

use std::net::Ipv4Addr;

use dhcproto::Encodable;
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use husk_api::containers::{ExecRequest, NetworkMode, RestartPolicy, RunOptions, UserNamespace};
use husk_api::images::ImportRequest;
use husk_api::update::{ApplyRequest, RollbackRequest};

/// A seed: its file name and its bytes.
pub type Seed = (&'static str, Vec<u8>);

/// Every target's seeds.
pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("tar_unpack", layers::seeds()),
        ("image_manifest", archives::seeds()),
        ("init_toml", init_toml()),
        ("agent_toml", agent_toml()),
        ("user_data", user_data()),
        ("dhcp_reply", dhcp_reply()),
        ("dns_query", dns::seeds()),
        ("gpt_read", disks::seeds()),
        ("api_bodies", api_bodies()),
        ("registry_answers", registry_answers()),
    ]
}

/// Answers as registries of the field send them.
fn registry_answers() -> Vec<Seed> {
    let zero = "0".repeat(64);
    vec![
        text(
            "oci-index",
            &format!(
                "application/vnd.oci.image.index.v1+json\n{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:{zero}\",\"size\":7,\"platform\":{{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}}}},{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:{zero}\",\"size\":7,\"platform\":{{\"architecture\":\"amd64\",\"os\":\"linux\"}}}}]}}"
            ),
        ),
        text(
            "docker-manifest",
            &format!(
                "application/vnd.docker.distribution.manifest.v2+json\n{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":2,\"digest\":\"sha256:{zero}\"}},\"layers\":[{{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":2,\"digest\":\"sha256:{zero}\"}}]}}"
            ),
        ),
        text(
            "schema1",
            "application/vnd.docker.distribution.manifest.v1+prettyjws\n{\n   \"schemaVersion\": 1,\n   \"name\": \"x\"\n}",
        ),
        text(
            "challenges",
            "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/nginx:pull\"\nBasic realm=\"Registry\"\nnginx:1.27\nlocalhost:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        text(
            "errors",
            "application/json\n{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}],\"token\":\"t\"}",
        ),
    ]
}

fn text(name: &'static str, text: &str) -> Seed {
    (name, text.as_bytes().to_vec())
}

fn init_toml() -> Vec<Seed> {
    vec![
        // docs/ARCHITECTURE.md's example
        text(
            "documented",
            r#"hostname = "husk"
shutdown_timeout_secs = 10   # grace between SIGTERM and SIGKILL
modules = ["overlay", "evdev", "vfat", "nls_cp437", "nls_ascii", "isofs", "efivarfs"]  # always loaded, besides coldplug

[[service]]                  # none given: the agent below; `service = []`: none
name = "husk-agent"
command = ["/usr/bin/husk-agent"]
env = []                     # extra "KEY=VALUE" for the service
restart = "always"           # always | on-failure | never
notify = true                # readiness is READY=1 on $NOTIFY_SOCKET (default false)
on_crash_loop = "reboot-on-trial"  # stay (default) | reboot-on-trial
"#,
        ),
        text(
            "services",
            r#"hostname = "node-1"
shutdown_timeout_secs = 3
modules = []

[[service]]
name = "a"
command = ["/bin/a", "--flag"]
restart = "on-failure"
env = ["RUST_LOG=debug", "EMPTY="]

[[service]]
name = "b.c_d"
command = ["/bin/b"]
restart = "never"
on_crash_loop = "stay"
"#,
        ),
        text("no-services", "service = []\n"),
        text(
            "duplicate",
            "[[service]]\nname = \"a\"\ncommand = [\"/a\"]\n[[service]]\nname = \"a\"\ncommand = [\"/a\"]\n",
        ),
        ("not-utf8", b"hostname = \"h\"\nx = \xff\n".to_vec()),
    ]
}

fn agent_toml() -> Vec<Seed> {
    vec![
        text(
            "everything",
            r#"[api]
allow_uids = [1000, 1001]

[security]
allow_privileged = false
allow_host_network = true

[logs]
max_size = 10485760
max_files = 3

[update]
repository = "http://updates.example/husk/"   # or file:///…; https is not supported yet
root = "/etc/husk/update/root.json"           # default
channel = "stable"
apply_window = "02:00-04:00"                  # UTC; absent: only `huskctl update apply`
check_interval_secs = 21600
assessment_timeout_secs = 300
[[update.health_checks]]
name = "web"
http = "http://127.0.0.1:8080/healthz"        # must answer 2xx
"#,
        ),
        text("host-network", "[security]\nallow_host_network = true\n"),
        text(
            "window-over-midnight",
            "[update]\nrepository = \"file:///var/lib/husk/repo/\"\napply_window = \"22:30-04:00\"\n",
        ),
        text("bad-logs", "[logs]\nmax_files = 0\n"),
    ]
}

fn user_data() -> Vec<Seed> {
    let example = include_str!("../../../examples/user-data.toml");
    let full = r#"hostname = "node-1"

[network]
dns = ["192.0.2.53", "2001:db8::53"]

[[network.interfaces]]
name = "eth0"
address = "192.0.2.10/24"
gateway = "192.0.2.1"
mtu = 1500

[[containers]]
name = "web"
image = "registry.example/web:1"
entrypoint = ["/bin/sh", "-c"]
cmd = ["/web --port 80"]
env = ["A=1"]
user = "www-data:www-data"
workdir = "/srv"
hostname = "web-1"
read_only = true
memory = 268435456
cpus = 0.5
pids_limit = 100
io_weight = 500
restart = "on-failure:3"
labels = { team = "a" }
userns = { host_uid = 100000, host_gid = 100000, size = 65536 }

[[containers]]
name = "job"
image = "busybox"
auto_remove = true
privileged = true

[update]
repository = "http://updates.example/husk/"
channel = "beta"
apply_window = "02:00-04:00"
"#;
    vec![
        text("example", example),
        text("everything", full),
        text(
            "kernel-command-line",
            &format!(
                "console=ttyS0 husk.userdata={} quiet",
                base64(example.as_bytes())
            ),
        ),
    ]
}

fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut acc = [0u8; 3];
        acc[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, acc[0], acc[1], acc[2]]);
        for i in 0..=chunk.len() {
            out.push(DIGITS[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn dhcp_reply() -> Vec<Seed> {
    let server = Ipv4Addr::new(10, 0, 2, 2);
    let reply = |kind: MessageType, options: Vec<DhcpOption>| {
        let mut msg = Message::default();
        msg.set_opcode(Opcode::BootReply)
            .set_xid(0x1234_5678)
            .set_yiaddr(Ipv4Addr::new(10, 0, 2, 15))
            .set_siaddr(server)
            .set_chaddr(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        for option in options {
            opts.insert(option);
        }
        msg.to_vec().expect("encoding a DHCP reply")
    };
    let lease = || {
        vec![
            DhcpOption::ServerIdentifier(server),
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::Router(vec![server]),
            DhcpOption::DomainNameServer(vec![
                Ipv4Addr::new(10, 0, 2, 3),
                Ipv4Addr::new(1, 1, 1, 1),
            ]),
            DhcpOption::AddressLeaseTime(86400),
        ]
    };
    let mut ack_options = lease();
    ack_options.extend([
        DhcpOption::InterfaceMtu(1460),
        DhcpOption::Renewal(3600),
        DhcpOption::Rebinding(7200),
    ]);
    vec![
        ("offer", reply(MessageType::Offer, lease())),
        ("ack", reply(MessageType::Ack, ack_options)),
        (
            "nak",
            reply(MessageType::Nak, vec![DhcpOption::ServerIdentifier(server)]),
        ),
    ]
}

fn api_bodies() -> Vec<Seed> {
    // The first byte picks the endpoint (api_bodies::ENDPOINTS' order).
    let seed = |name, endpoint: u8, body: Vec<u8>| {
        let mut data = vec![endpoint];
        data.extend(body);
        (name, data)
    };
    let mut full = RunOptions::new("web", "registry.example/web:1");
    full.cmd = Some(vec!["/web".into(), "--port".into(), "80".into()]);
    full.entrypoint = Some(vec![]);
    full.env = vec!["A=1".into(), "PATH=/bin".into()];
    full.user = Some("1000:1000".into());
    full.workdir = Some("/srv".into());
    full.hostname = Some("web-1".into());
    full.read_only = true;
    full.memory = Some(256 << 20);
    full.cpus = Some(1.5);
    full.pids_limit = Some(256);
    full.io_weight = Some(500);
    full.restart = RestartPolicy::OnFailure {
        max_retries: Some(3),
    };
    full.labels.insert("team".into(), "a".into());
    full.userns = Some(UserNamespace {
        host_uid: 100_000,
        host_gid: 100_000,
        size: 65536,
    });
    let mut privileged = RunOptions::new("", "busybox");
    privileged.privileged = true;
    privileged.network = NetworkMode::Host;
    privileged.auto_remove = true;
    let exec = ExecRequest {
        cmd: vec!["sh".into(), "-c".into(), "echo hi".into()],
        env: vec!["A=1".into()],
        user: Some("www-data".into()),
        workdir: Some("/tmp".into()),
        ..ExecRequest::default()
    };
    let apply = ApplyRequest {
        version: Some("1.2.0".into()),
        force: true,
        no_reboot: true,
    };
    vec![
        seed("create", 0, json(&RunOptions::new("web", "busybox"))),
        seed("create-everything", 0, json(&full)),
        seed("create-privileged", 0, json(&privileged)),
        seed("exec", 1, json(&exec)),
        seed(
            "import",
            2,
            json(&ImportRequest {
                path: "/var/lib/husk/web.tar".into(),
            }),
        ),
        seed("update-apply", 3, json(&apply)),
        seed(
            "update-rollback",
            4,
            json(&RollbackRequest { no_reboot: true }),
        ),
        seed("stop", 5, b"timeout=10".to_vec()),
        seed("kill", 6, b"signal=SIGTERM".to_vec()),
        seed("logs", 7, b"follow=false&tail=10&stream=stderr".to_vec()),
        seed("remove", 8, b"force=true".to_vec()),
    ]
}

fn json(body: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(body).expect("serialising a body")
}
