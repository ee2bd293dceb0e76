//! `cargo xtask bench network`: what the bridge (`--network bridge`,
//! `husk0`, published ports as nftables DNAT) costs a container, against
//! `--network none` and the host's loopback, in one run:
//!
//! 1. start to ready: `huskctl run -d` until `huskctl logs` shows the
//!    container's first line, its `rm -f`, and `run --rm … true` end to
//!    end, bridge against none, interleaved;
//! 2. TCP throughput container → host: the sender is busybox in a
//!    container (httpd's sendfile of a sparse file, and nc's 1 KiB writes
//!    from /dev/zero), the receiver this process (1 MiB reads), which
//!    connects out so the agent's `input` drop of containers' own
//!    connections to the host does not apply; against the same busybox on
//!    the host over 127.0.0.1;
//! 3. published-port latency: sequential GETs, a fresh connection each,
//!    to `busybox httpd -f` published with `-p 8080:80`, through the DNAT
//!    (the host's addresses, from the host and from a namespace outside
//!    it) against the container's own address (no DNAT), with no other
//!    container and with `--idle` idle ones.
//!
//! Runs on this host as root with the release (static) binaries, in
//! private mount and network namespaces with cgroup2 mounted: the agent's
//! bridge, veths and nftables table live and die there, and the host's
//! own network is never touched. "Outside the machine" is one more
//! network namespace, joined by a veth (192.0.2.1 here, 192.0.2.2 there).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use husk_binaries::Artifacts;

use crate::bench_agent::Machine;

const IMAGE: &str = "bench.husk/busybox:1";
/// Set in the re-executed benchmark, inside its namespaces.
const IN_NAMESPACE: &str = "HUSK_BENCH_IN_NETWORK_NS";
/// Set in a helper re-executed in the outside namespace: `ADDR:PORT`, the
/// GETs' target (`GetsHelper`).
const GETS_HELPER: &str = "HUSK_BENCH_NETWORK_GETS";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 1);
const START_RUNS: usize = 20;
const GETS: usize = 500;
const FILE_MIB: u64 = 1024;
const FILE_RUNS: usize = 5;
const NC_MIB: u64 = 256;
const NC_RUNS: usize = 3;
/// Ports: the web server (published as 8080), the sender's httpd and nc
/// (published as 8081, 5011), the host's own busybox servers.
const WEB_PORT: u16 = 8080;
const SENDER_HTTP_PORT: u16 = 8081;
const SENDER_NC_PORT: u16 = 5011;
const LOOPBACK_HTTP_PORT: u16 = 5080;
const LOOPBACK_NC_PORT: u16 = 5081;

pub fn run(idle: usize) -> Result<()> {
    if let Ok(spec) = std::env::var(GETS_HELPER) {
        return gets_helper(&spec);
    }
    if !enter(idle)? {
        return Ok(());
    }
    let artifacts = Artifacts::get()?;
    let dir = husk_binaries::workspace_root().join("target/husk/bench-network");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let outside = Outside::new()?;
    // This host's cgroup2 has no pids controller (v1 hybrid): no
    // default pids limit, which the runtime could not set.
    let machine = Machine::start(artifacts, &dir, "[limits.containers]\ndefault_pids = -1\n")?;
    let mut bench = Bench {
        machine,
        outside,
        servers: Vec::new(),
    };
    measure(&mut bench, idle)
    // `bench` dropped: every container removed, the agent and the
    // servers stopped, on success and failure alike.
}

/// Re-executes the benchmark in private mount and network namespaces
/// with cgroup2 mounted (as `cgroup_ns::enter`, plus `-n`): true in
/// there, false once the child is done.
fn enter(idle: usize) -> Result<bool> {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return Ok(true);
    }
    if !rustix::process::geteuid().is_root() {
        bail!("bench network needs root (namespaces, mounts, cgroups, nftables): run it with sudo");
    }
    // Built out here, so cargo's output is not mixed with the figures and
    // cargo never runs without a network.
    let artifacts = Artifacts::get()?;
    let built = artifacts.agent.parent().context("the agent's directory")?;
    let status = Command::new("unshare")
        .args(["-m", "-n", "--propagation", "private", "sh", "-c"])
        .arg("ip link set lo up && mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe()?)
        .args(["bench", "network", "--idle", &idle.to_string()])
        .env(IN_NAMESPACE, "1")
        .env(husk_binaries::ARTIFACTS_ENV, built)
        .status()
        .context("running unshare (util-linux)")?;
    if !status.success() {
        bail!("the network benchmark failed ({status})");
    }
    Ok(false)
}

/// The machine and everything the benchmark started; dropping it cleans
/// all of it up.
struct Bench {
    machine: Machine,
    outside: Outside,
    servers: Vec<Child>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let names: Vec<String> = self
            .machine
            .huskctl(&["ps", "-a"])
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        if !names.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(names.iter().map(String::as_str));
            if let Err(e) = self.machine.huskctl(&args) {
                eprintln!("bench: cleaning up: {e:#}");
            }
        }
        self.machine.stop();
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Bench {
    fn huskctl(&self, args: &[&str]) -> Result<String> {
        self.machine.huskctl(args)
    }

    /// The container's address on the bridge.
    fn address(&self, name: &str) -> Result<Ipv4Addr> {
        let info: serde_json::Value = serde_json::from_str(&self.huskctl(&["inspect", name])?)?;
        info["network"]["ip_address"]
            .as_str()
            .context("a bridged container without an address")?
            .parse()
            .context("the container's address")
    }
}

/// Another network namespace, held by a `sleep` (gone with it), joined to
/// the benchmark's by a veth: outside the machine.
struct Outside {
    holder: Child,
}

impl Outside {
    fn new() -> Result<Self> {
        let holder = Command::new("unshare")
            .args(["-n", "sleep", "36000"])
            .stdin(Stdio::null())
            .spawn()
            .context("running unshare -n")?;
        let outside = Self { holder };
        let pid = outside.holder.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ours = std::fs::read_link("/proc/self/ns/net")?;
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            if theirs.is_some_and(|t| t != ours) {
                break;
            }
            if Instant::now() > deadline {
                bail!("the outside namespace did not appear");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        sh(
            None,
            &format!(
                "ip link add up0 type veth peer name out0 && ip link set out0 netns {pid} && \
                 ip addr add {HOST_IP}/24 dev up0 && ip link set up0 up"
            ),
        )?;
        sh(
            Some(&outside),
            &format!(
                "ip link set lo up && ip addr add {OUTSIDE_IP}/24 dev out0 && \
                 ip link set out0 up && ip route add default via {HOST_IP}"
            ),
        )?;
        Ok(outside)
    }

    /// A command to run in the outside namespace.
    fn enter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.id().to_string(), "-n", "--"]);
        cmd
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// `sh -c script` here, or in the outside namespace.
fn sh(outside: Option<&Outside>, script: &str) -> Result<()> {
    let mut command = outside.map_or_else(
        || Command::new("sh"),
        |o| {
            let mut c = o.enter();
            c.arg("sh");
            c
        },
    );
    let out = command.args(["-c", script]).output()?;
    if !out.status.success() {
        bail!("{script}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn measure(bench: &mut Bench, idle: usize) -> Result<()> {
    bench.machine.import_busybox(IMAGE)?;

    println!();
    println!(
        "network: the agent's bridge husk0 (172.17.0.0/16, MTU 1500), release binaries, in \
         private mount and network namespaces; outside the machine: one more namespace, \
         {OUTSIDE_IP}, by a veth to {HOST_IP}"
    );
    eprintln!("bench: container starts, no other container");
    let starts_alone = starts(bench, "a")?;
    eprintln!("bench: throughput");
    let streams = throughput(bench)?;

    bench.huskctl(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("{WEB_PORT}:80"),
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo hello > /www/index.html && exec busybox httpd -f -p 80 -h /www",
    ])?;
    let web = bench.address("web")?;
    let paths = latency_paths(web);
    wait_for_http(SocketAddrV4::new(web, 80).into())?;
    eprintln!("bench: published-port latency, no other container");
    let alone = latencies(bench, &paths)?;

    eprintln!("bench: starting {idle} idle containers");
    for i in 0..idle {
        bench.huskctl(&[
            "run",
            "-d",
            "--name",
            &format!("idle-{i}"),
            IMAGE,
            "sleep",
            "1000000",
        ])?;
    }
    let running = bench
        .huskctl(&["ps"])?
        .lines()
        .filter(|l| l.starts_with("idle-"))
        .count();
    if running != idle {
        bail!("{running} of {idle} idle containers are running");
    }
    eprintln!("bench: published-port latency, {idle} idle containers");
    let crowded = latencies(bench, &paths)?;
    eprintln!("bench: container starts, {idle} idle containers");
    let starts_crowded = starts(bench, "c")?;

    print_starts(&[
        ("no other container".to_owned(), starts_alone),
        (format!("{idle} idle containers (+ web)"), starts_crowded),
    ]);
    print_throughput(&streams);
    print_latencies(&paths, &alone, &crowded, idle);
    Ok(())
}

// ---- 1. start to ready ----

/// Per network (none, bridge): `run -d` → ready, `rm -f`, `run --rm true`.
struct Starts {
    ready: [Vec<Duration>; 2],
    remove: [Vec<Duration>; 2],
    run_rm: [Vec<Duration>; 2],
}

const NETWORKS: [&str; 2] = ["none", "bridge"];

fn starts(bench: &Bench, tag: &str) -> Result<Starts> {
    let mut s = Starts {
        ready: Default::default(),
        remove: Default::default(),
        run_rm: Default::default(),
    };
    for i in 0..START_RUNS {
        // Alternate which goes first, so neither always follows the other.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for n in order {
            let network = NETWORKS[n];
            let name = format!("ready-{tag}-{network}-{i}");
            let started = Instant::now();
            bench.huskctl(&[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                network,
                IMAGE,
                "sh",
                "-c",
                "echo ready; exec sleep 600",
            ])?;
            let deadline = started + Duration::from_secs(10);
            while !bench.huskctl(&["logs", &name])?.contains("ready") {
                if Instant::now() > deadline {
                    bail!("{name} did not print ready within 10 s");
                }
            }
            s.ready[n].push(started.elapsed());
            let removing = Instant::now();
            bench.huskctl(&["rm", "-f", &name])?;
            s.remove[n].push(removing.elapsed());

            let started = Instant::now();
            bench.huskctl(&["run", "--rm", "--network", network, IMAGE, "true"])?;
            s.run_rm[n].push(started.elapsed());
        }
    }
    Ok(s)
}

fn print_starts(sets: &[(String, Starts)]) {
    println!();
    println!(
        "container start, release binaries, {START_RUNS} runs each, interleaved: ms, median / p95"
    );
    println!("| what | `--network none` | `--network bridge` | bridge / none, median (p95) |");
    println!("|---|---:|---:|---:|");
    for (when, s) in sets {
        for (what, samples) in [
            (
                "`run -d … sh -c 'echo ready; …'` until `logs` shows ready",
                &s.ready,
            ),
            ("`rm -f` of it", &s.remove),
            ("`run --rm … true`, end to end", &s.run_rm),
        ] {
            let ms = |v: &Vec<Duration>, q: f64| quantile(v, q).as_secs_f64() * 1e3;
            let (none, bridge) = (&samples[0], &samples[1]);
            println!(
                "| {what}, {when} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2}x ({:.2}x) |",
                ms(none, 0.5),
                ms(none, 0.95),
                ms(bridge, 0.5),
                ms(bridge, 0.95),
                ms(bridge, 0.5) / ms(none, 0.5),
                ms(bridge, 0.95) / ms(none, 0.95),
            );
        }
    }
}

/// The `q` quantile (nearest rank) of `samples`.
fn quantile<T: Copy + PartialOrd>(samples: &[T], q: f64) -> T {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

// ---- 2. throughput ----

/// MB/s per path (loopback, bridge, bridge + DNAT), per sender (httpd,
/// nc).
struct Streams {
    http: [Vec<f64>; 3],
    nc: [Vec<f64>; 3],
}

const STREAM_PATHS: [&str; 3] = [
    "host loopback 127.0.0.1 (the same busybox on the host)",
    "container → host over husk0 (the container's address, no NAT)",
    "container → host through its published ports (192.0.2.1, DNAT)",
];

fn throughput(bench: &mut Bench) -> Result<Streams> {
    // The host's side: busybox httpd on loopback serving the same sparse
    // file from a tmpfs, as the container's from its /dev/shm (not its
    // overlayfs writable layer, which would add to sendfile's cost).
    let www = bench.machine.dir.join("www");
    std::fs::create_dir_all(&www)?;
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "bench-www"])
        .arg(&www)
        .status()?;
    if !status.success() {
        bail!("mounting a tmpfs on {} ({status})", www.display());
    }
    std::fs::File::create(www.join("big"))?.set_len(FILE_MIB << 20)?;
    std::fs::write(www.join("index.html"), "hello\n")?;
    let httpd = Command::new("busybox")
        .args([
            "httpd",
            "-f",
            "-p",
            &format!("127.0.0.1:{LOOPBACK_HTTP_PORT}"),
            "-h",
        ])
        .arg(&www)
        .stdin(Stdio::null())
        .spawn()
        .context("running busybox httpd")?;
    bench.servers.push(httpd);
    bench.huskctl(&[
        "run",
        "-d",
        "--name",
        "sender",
        "-p",
        &format!("{SENDER_HTTP_PORT}:80"),
        "-p",
        &format!("{SENDER_NC_PORT}:5001"),
        IMAGE,
        "sh",
        "-c",
        &format!(
            "mkdir -p /dev/shm/www && cd /dev/shm/www && echo hello > index.html && \
             busybox dd if=/dev/zero of=big bs=1M seek={FILE_MIB} count=0 2>/dev/null && \
             busybox httpd -p 80 -h /dev/shm/www && \
             while :; do busybox nc -l -p 5001 </dev/zero; done"
        ),
    ])?;
    let sender = bench.address("sender")?;
    let http_addrs: [SocketAddr; 3] = [
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, LOOPBACK_HTTP_PORT).into(),
        SocketAddrV4::new(sender, 80).into(),
        SocketAddrV4::new(HOST_IP, SENDER_HTTP_PORT).into(),
    ];
    let nc_addrs: [SocketAddr; 3] = [
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, LOOPBACK_NC_PORT).into(),
        SocketAddrV4::new(sender, 5001).into(),
        SocketAddrV4::new(HOST_IP, SENDER_NC_PORT).into(),
    ];
    for addr in http_addrs {
        wait_for_http(addr)?;
    }
    let request = b"GET /big HTTP/1.0\r\nHost: bench\r\n\r\n";
    let mut streams = Streams {
        http: Default::default(),
        nc: Default::default(),
    };
    // One unmeasured round first: page cache, neighbours, conntrack.
    for round in 0..=FILE_RUNS {
        for (p, addr) in http_addrs.iter().enumerate() {
            let rate = download(*addr, request, FILE_MIB << 20)?;
            if round > 0 {
                streams.http[p].push(rate);
            }
        }
    }
    for _ in 0..NC_RUNS {
        for (p, addr) in nc_addrs.iter().enumerate() {
            // On the host, a new `nc -l` for each run; in the container,
            // its loop listens again once the last one has exited.
            let mut nc = None;
            if p == 0 {
                nc = Some(KillOnDrop(
                    Command::new("busybox")
                        .args(["nc", "-l", "-p", &LOOPBACK_NC_PORT.to_string()])
                        .stdin(std::fs::File::open("/dev/zero")?)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .context("running busybox nc")?,
                ));
            }
            streams.nc[p].push(download(*addr, b"", NC_MIB << 20)?);
            drop(nc);
        }
    }
    bench.huskctl(&["rm", "-f", "sender"])?;
    Ok(streams)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects to `addr` (retrying for 5 s while nothing listens there),
/// sends `request`, then reads `bytes` bytes (an HTTP answer: to its
/// end, at least `bytes`): MB/s from the request sent to the last byte.
fn download(addr: SocketAddr, request: &[u8], bytes: u64) -> Result<f64> {
    let mut stream = connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request)?;
    let started = Instant::now();
    let mut buf = vec![0; 1 << 20];
    let mut got = 0u64;
    // nc sends for ever: stop at `bytes`; httpd ends its answer.
    let limit = if request.is_empty() { bytes } else { u64::MAX };
    while got < limit {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading from {addr}"))?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    if got < bytes {
        bail!("{addr}: {got} bytes of {bytes}");
    }
    Ok(got.min(bytes) as f64 / secs / 1e6)
}

fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("connecting to {addr}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn print_throughput(s: &Streams) {
    println!();
    println!(
        "TCP throughput container → host: the sender busybox in a container (a sparse file on its \
         /dev/shm tmpfs; /dev/zero), the receiver this process (1 MiB reads) connecting to it \
         (containers' own connections to the host are dropped by the agent's input chain); MB/s, \
         median"
    );
    println!(
        "| path | httpd sendfile, {FILE_MIB} MiB file, {FILE_RUNS} runs | / loopback | `nc -l </dev/zero` (1 KiB writes), {NC_MIB} MiB, {NC_RUNS} runs | / loopback |"
    );
    println!("|---|---:|---:|---:|---:|");
    let http0 = quantile(&s.http[0], 0.5);
    let nc0 = quantile(&s.nc[0], 0.5);
    for (p, path) in STREAM_PATHS.iter().enumerate() {
        let (http, nc) = (quantile(&s.http[p], 0.5), quantile(&s.nc[p], 0.5));
        println!(
            "| {path} | {http:.0} | {:.2}x | {nc:.0} | {:.2}x |",
            http / http0,
            nc / nc0
        );
    }
}

// ---- 3. published-port latency ----

struct LatencyPath {
    what: String,
    addr: SocketAddr,
    /// From the outside namespace (else from this process, on the host).
    outside: bool,
}

fn latency_paths(web: Ipv4Addr) -> Vec<LatencyPath> {
    let path = |what: String, ip, port, outside| LatencyPath {
        what,
        addr: SocketAddrV4::new(ip, port).into(),
        outside,
    };
    vec![
        path(
            format!("host → the container's address {web}:80 (no DNAT; baseline)"),
            web,
            80,
            false,
        ),
        path(
            format!("host → its own veth address {HOST_IP}:{WEB_PORT} (output DNAT)"),
            HOST_IP,
            WEB_PORT,
            false,
        ),
        path(
            format!(
                "host → the bridge's address {GATEWAY_IP}:{WEB_PORT} (output DNAT, hairpin masquerade)"
            ),
            GATEWAY_IP,
            WEB_PORT,
            false,
        ),
        path(
            format!(
                "outside namespace {OUTSIDE_IP} → {HOST_IP}:{WEB_PORT} (prerouting DNAT, forward; one more veth)"
            ),
            HOST_IP,
            WEB_PORT,
            true,
        ),
    ]
}

/// `GETS` GETs per path, interleaved GET by GET: the host's from this
/// process, the outside's through a helper there. µs per GET.
fn latencies(bench: &Bench, paths: &[LatencyPath]) -> Result<Vec<Vec<f64>>> {
    let mut helpers = Vec::new();
    for path in paths {
        helpers.push(if path.outside {
            Some(GetsHelper::start(&bench.outside, path.addr)?)
        } else {
            None
        });
    }
    let mut once = |p: usize| match &mut helpers[p] {
        Some(helper) => helper.get(),
        None => get(paths[p].addr),
    };
    // Unmeasured: neighbours, conntrack, httpd's first forks.
    for _ in 0..10 {
        for p in 0..paths.len() {
            once(p)?;
        }
    }
    let mut samples = vec![Vec::with_capacity(GETS); paths.len()];
    for _ in 0..GETS {
        for (p, samples) in samples.iter_mut().enumerate() {
            samples.push(once(p)?.as_secs_f64() * 1e6);
        }
    }
    Ok(samples)
}

/// One GET / on a fresh connection: connect to the end of the answer.
fn get(addr: SocketAddr) -> Result<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_nodelay(true)?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut answer = Vec::with_capacity(512);
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("GET http://{addr}/"))?;
    let took = started.elapsed();
    if !answer.starts_with(b"HTTP/1.0 200") && !answer.starts_with(b"HTTP/1.1 200") {
        bail!(
            "GET http://{addr}/: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        );
    }
    Ok(took)
}

fn wait_for_http(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match get(addr) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e.context("waiting for httpd")),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// This program again, under nsenter in the outside namespace: one GET
/// to `addr` for each line it reads, its latency (ns) or error a line.
struct GetsHelper {
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    /// Killed (and reaped) last, when dropped.
    _child: KillOnDrop,
}

impl GetsHelper {
    fn start(outside: &Outside, addr: SocketAddr) -> Result<Self> {
        let mut child = outside
            .enter()
            .arg(std::env::current_exe()?)
            .args(["bench", "network"])
            .env(GETS_HELPER, addr.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("running the GET helper in the outside namespace")?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        Ok(Self {
            stdin: stdin.context("the helper's stdin")?,
            stdout: BufReader::new(stdout.context("the helper's stdout")?),
            _child: KillOnDrop(child),
        })
    }

    fn get(&mut self) -> Result<Duration> {
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        match line.trim().parse::<u64>() {
            Ok(ns) => Ok(Duration::from_nanos(ns)),
            Err(_) if line.is_empty() => {
                bail!("the GET helper in the outside namespace exited")
            }
            Err(_) => bail!("from the outside namespace: {}", line.trim()),
        }
    }
}

/// The helper: a GET to `addr` for each line on stdin, its latency in ns
/// (or the error) on stdout.
fn gets_helper(addr: &str) -> Result<()> {
    let addr: SocketAddr = addr.parse()?;
    let mut stdout = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        line?;
        match get(addr) {
            Ok(took) => writeln!(stdout, "{}", took.as_nanos())?,
            Err(e) => writeln!(stdout, "{e:#}")?,
        }
        stdout.flush()?;
    }
    Ok(())
}

fn print_latencies(paths: &[LatencyPath], alone: &[Vec<f64>], crowded: &[Vec<f64>], idle: usize) {
    println!();
    println!(
        "published port (`-p {WEB_PORT}:80`, busybox httpd -f): GET /, a fresh TCP connection each, \
         {GETS} per path, interleaved; µs"
    );
    println!(
        "| path | p50 / p99, no other container | p50 / p99, {idle} idle containers | / baseline, {idle} idle: p50 (p99) |"
    );
    println!("|---|---:|---:|---:|");
    let (base50, base99) = (quantile(&crowded[0], 0.5), quantile(&crowded[0], 0.99));
    for (p, path) in paths.iter().enumerate() {
        let (a50, a99) = (quantile(&alone[p], 0.5), quantile(&alone[p], 0.99));
        let (c50, c99) = (quantile(&crowded[p], 0.5), quantile(&crowded[p], 0.99));
        println!(
            "| {} | {a50:.0} / {a99:.0} | {c50:.0} / {c99:.0} | {:.2}x ({:.2}x) |",
            path.what,
            c50 / base50,
            c99 / base99
        );
    }
}
