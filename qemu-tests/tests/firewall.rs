//! The containers' firewall in a real machine, what agent/tests/bridge.rs
//! checks on this host, on Debian's kernel and through QEMU's network:
//! one machine booted through UEFI from a disk with the web image
//! preloaded, agent.toml allowing metadata access, and user-data
//! starting three restart=always containers: `web` (8080 published on
//! the machine's 80, and 8081 not published), `client`, and `imds`, the
//! one container allowed the metadata service.
//!
//! - **Metadata**: the guest's 169.254.169.254:80 is a slirp `guestfwd`
//!   to a server of this test's (`VmBuilder::metadata_service`: slirp
//!   forwards only addresses on the guest's own network, so the guest's
//!   network becomes 169.254.0.0/16, and the container's masqueraded
//!   packets leave the machine for slirp there). `imds` reaches it (the
//!   control, and the server sees its requests); `client` does not, and
//!   the firewall's metadata counter grew meanwhile (husk-check
//!   `firewall`).
//! - **Published ports only**: through slirp `hostfwd`s to the machine,
//!   its port 80 answers with web's page (the control), while 8080 (web's
//!   own port, not published as such) and 8081 (not published at all) are
//!   dropped: the connection gets no answer and no reset, as nothing
//!   listens on the machine's 8080 or 8081 either — so a reset would have
//!   meant no firewall.
//! - **IPv6**: `client` fetches `web` at its IPv6 address on the default
//!   (dual stack) bridge, at each boot, and the address is the same after
//!   the reboot (the bridge's prefix is kept in the address book).
//! - **Every rule once**: husk-check prints `table inet husk` (read over
//!   nfnetlink: there is no `nft` in the image) after the first boot,
//!   after an agent SIGKILLed and restarted by init, and after a reboot;
//!   the three must be the same lines (counters ignored) with no line
//!   twice, and the restart must have written a new table (its handle).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use qemu_tests::log_lines::{INIT_STARTING, REBOOT, check_failed, check_passed};
use qemu_tests::vm_builder::free_port;
use qemu_tests::{Error, GuestDisk, InitConfig, Restart, Result, SerialCursor, Service, Vm};

const USER_DATA: &str = r#"
[[containers]]
name = "web"
image = "registry.example/web:1.4"
ports = ["80:8080"]
restart = "always"
cmd = ["sh", "-c", "busybox httpd -f -p 8081 -h /www & exec /web --listen :8080"]

[[containers]]
name = "client"
image = "registry.example/web:1.4"
restart = "always"
cmd = ["sleep", "1000000"]

[[containers]]
name = "imds"
image = "registry.example/web:1.4"
restart = "always"
metadata_access = true
cmd = ["sleep", "1000000"]
"#;

/// Without it the agent refuses `metadata_access` (host test
/// `metadata_access_is_one_containers_where_agent_toml_allows_it`).
const AGENT_TOML: &str = "[security]\nallow_metadata_access = true\n";
const METADATA_BODY: &str = "metadata from the test";
const SCENARIO: &str = "firewall";
/// Boot to the checker's verdict: UEFI, three container starts, a
/// blocked fetch's timeout and, on the first boot, an agent restart.
const TO_VERDICT: Duration = Duration::from_secs(300);
/// How long an unpublished port must stay silent. slirp accepts the
/// connection on this side at once and retries its SYN to the guest for
/// far longer (75 s) before it gives up.
const SILENCE: Duration = Duration::from_secs(5);

#[test]
fn containers_reach_only_what_the_firewall_allows_and_its_rules_survive_restarts() -> Result<()> {
    let dir = qemu_tests::TestDir::new("firewall")?;
    let archive = dir.path().join("web.tar");
    std::fs::write(&archive, husk_testkit::web_image_archive())
        .map_err(|e| Error::io("writing the image archive", e))?;
    let agent_toml = dir.path().join("agent.toml");
    std::fs::write(&agent_toml, AGENT_TOML).map_err(|e| Error::io("writing agent.toml", e))?;
    let drive = qemu_tests::config_drive(dir.path(), USER_DATA)?;
    let checker = Service::checker(
        "check-firewall",
        &[SCENARIO, "web", "client", "imds", METADATA_BODY],
        Restart::Never,
    );
    let disk = GuestDisk::builder()
        .init_config(InitConfig::with_agent().service(checker).to_toml())
        .checker()
        .agent_config(&agent_toml)
        .preload(&archive)
        .build(dir.path())?;
    let metadata = MetadataServer::start();
    let free = || free_port().map_err(|e| Error::io("picking a free port", e));
    let (published, container_port, unpublished) = (free()?, free()?, free()?);
    let mut vm = uefi_with_config(dir, &disk, &drive)
        .metadata_service(metadata.addr)
        .forward_to_guest(published, 80)
        .forward_to_guest(container_port, 8080)
        .forward_to_guest(unpublished, 8081)
        .launch()?;

    let started = Instant::now();
    expect_verdict(&mut vm, SerialCursor::START)?;
    eprintln!(
        "firewall: boot 1 and its checks took {:?}",
        started.elapsed()
    );
    expect_web_page(&mut vm, published)?;
    for (port, what) in [(container_port, "8080"), (unpublished, "8081")] {
        assert_dropped(port, what);
    }
    let requests = metadata.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /latest/meta-data/ ")),
        "imds's fetch did not reach the metadata server: {requests:?}"
    );
    let boot1 = table(&vm, "boot1")?;
    let restart = table(&vm, "restart")?;
    assert_sane(&boot1);
    assert_ne!(
        boot1.handle, restart.handle,
        "the restarted agent did not write the table again"
    );
    assert_eq!(
        boot1.lines, restart.lines,
        "the table after an agent restart"
    );

    let reboot_at = Instant::now();
    let from = vm.serial_end()?;
    vm.qmp().send_key(&["ctrl", "alt", "delete"])?;
    vm.wait_for_line_after(from, REBOOT, TO_SHUTDOWN_LINE)?;
    let booted = vm.wait_for_line_after(from, INIT_STARTING, TO_UEFI_AGENT_READY)?;
    expect_verdict(&mut vm, booted.after)?;
    eprintln!(
        "firewall: boot 2 and its checks took {:?}",
        reboot_at.elapsed()
    );
    let boot2 = table(&vm, "boot2")?;
    assert_eq!(boot1.lines, boot2.lines, "the table after a reboot");
    let ipv6 = serial_lines(&vm, "firewall: ipv6: ")?;
    assert!(
        ipv6.len() == 2 && ipv6[0] == ipv6[1],
        "client reached web over IPv6 at each boot, at one address: {ipv6:?}"
    );
    expect_web_page(&mut vm, published)?;
    power_off(&mut vm)?;
    Ok(())
}

/// husk-check's verdict after `from`, a FAIL as the harness's error.
fn expect_verdict(vm: &mut Vm, from: SerialCursor) -> Result<()> {
    let (pass, fail) = (check_passed(SCENARIO), check_failed(SCENARIO));
    let found = vm.wait_for_any_after(from, &[&pass, &fail], TO_VERDICT)?;
    if found.needle == 0 {
        return Ok(());
    }
    Err(Error::CheckFailed {
        scenario: SCENARIO.to_owned(),
        line: found.line,
        tail: vm.serial_tail(60),
        serial: vm.serial_path().to_path_buf(),
    })
}

/// A connection through the hostfwd to the guest's `port` gets neither
/// an answer nor a close: the guest dropped the SYN.
fn assert_dropped(host_port: u16, what: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", host_port))
        .unwrap_or_else(|e| panic!("slirp's forward to {what}: {e}"));
    stream.set_read_timeout(Some(SILENCE)).unwrap();
    // (slirp takes it whatever the guest does: this write cannot fail)
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            assert!(answer.is_empty(), "port {what} answered: {answer:?}");
        }
        outcome => panic!(
            "port {what} was not dropped (a reset or an answer): {outcome:?}, {:?}",
            String::from_utf8_lossy(&answer)
        ),
    }
}

/// A table as husk-check printed it.
#[derive(Debug)]
struct Table {
    lines: Vec<String>,
    handle: String,
}

/// The `nft LABEL: …` lines of the console, and the table handle of
/// its `end` line.
fn table(vm: &Vm, label: &str) -> Result<Table> {
    let mut lines = serial_lines(vm, &format!("firewall: nft {label}: "))?;
    let end = lines.pop().unwrap_or_default();
    let handle = end
        .strip_prefix("end, ")
        .and_then(|e| e.split_once(", table handle "))
        .filter(|(count, _)| *count == format!("{} lines", lines.len()))
        .map(|(_, handle)| handle.to_owned())
        .unwrap_or_else(|| panic!("no whole table {label}: ends with {end:?} after {lines:?}"));
    Ok(Table { lines, handle })
}

/// What follows `marker` on each console line that has it.
fn serial_lines(vm: &Vm, marker: &str) -> Result<Vec<String>> {
    let log = std::fs::read(vm.serial_path()).map_err(|e| Error::io("reading the console", e))?;
    Ok(String::from_utf8_lossy(&log)
        .lines()
        .filter_map(|l| l.split_once(marker))
        .map(|(_, rest)| rest.trim_end().to_owned())
        .collect())
}

/// The dump is the agent's table (its chains, web's port, the drop
/// rules of this test), with no line twice.
fn assert_sane(table: &Table) {
    let lines = &table.lines;
    for needle in [
        "chain prerouting nat hook 0 prio -100 policy accept",
        "chain forward filter hook 2 prio 0 policy accept",
        "rule ports \"web 80->8080/tcp\" ",
        "rule forward \"metadata\" ",
        "rule input \"inbound\" ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(needle)),
            "no {needle:?} in the table: {lines:#?}"
        );
    }
    let mut seen = std::collections::HashSet::new();
    for line in lines {
        assert!(seen.insert(line), "twice in the table: {line}");
    }
}

/// The metadata service: answers every request with [`METADATA_BODY`],
/// and keeps the request lines.
struct MetadataServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl MetadataServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let head = qemu_tests::http::read_request_head(&mut stream);
                let line = head.lines().next().unwrap_or_default().to_owned();
                seen.lock().unwrap().push(line);
                let _ = write!(
                    stream,
                    "HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{METADATA_BODY}\n",
                    METADATA_BODY.len() + 1
                );
            }
        });
        MetadataServer { addr, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The web container's page through its published port.
fn expect_web_page(vm: &mut Vm, published: u16) -> Result<()> {
    let page = http_get_until(
        vm,
        published,
        "/",
        "hello from web-1",
        Duration::from_secs(60),
    )?;
    assert!(page.ends_with("hello from web-1\n"), "{page}");
    Ok(())
}
