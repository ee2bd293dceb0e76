//! The network with QEMU's user-mode networking (slirp), restricted as
//! every test guest's is (`VmBuilder::user_net`): a DHCP lease obtained
//! and used to reach a server the test runs on the host (forwarded to
//! the guest at `FORWARD_ADDR`), static addresses from the kernel command
//! line and from user-data, user-data from an EC2-style metadata service
//! the test runs (the guest's 169.254.169.254 forwarded to it), and the
//! restriction itself: nothing but the forwards answers the guest.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use common::*;
use qemu_tests::vm_builder::FORWARD_ADDR;
use qemu_tests::{GuestImage, InitConfig, Restart, Result, Service};

/// The port the guest reaches the test's server on, at [`FORWARD_ADDR`].
const GUEST_PORT: u16 = 8080;

/// A one-thread HTTP server on 127.0.0.1 answering every request with
/// `answer(request)`. It lives as long as the test.
struct Server {
    addr: SocketAddr,
    /// Connections accepted so far.
    connections: Arc<AtomicUsize>,
}

fn serve(answer: impl Fn(&str) -> String + Send + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let request = qemu_tests::http::read_request_head(&mut stream);
            let body = answer(&request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Server { addr, connections }
}

/// The `net` scenario: an interface reaches `state`, and the test's
/// server answers `body` through the forward.
fn net_check(state: &str, body: &str) -> InitConfig {
    InitConfig::with_agent().service(Service::checker(
        "check-net",
        &[
            "net",
            state,
            &FORWARD_ADDR.to_string(),
            &GUEST_PORT.to_string(),
            body,
        ],
        Restart::Never,
    ))
}

#[test]
fn a_dhcp_lease_is_obtained_and_used() -> Result<()> {
    let server = serve(|_| "hello from the host".into());
    // slirp's DHCP server (at its host address, 10.0.2.2) hands out
    // 10.0.2.15; restricted, it leaves the router and DNS options out.
    // The forward is on the guest's own /24: no route needed.
    let image =
        GuestImage::builder().init_config(net_check("bound", "hello from the host").to_toml());
    let mut vm = boot_direct("dhcp", image, |b| {
        b.forward_to_host(GUEST_PORT, server.addr)
    })?;
    vm.wait_for_line(
        "10.0.2.15/24 via no router (DHCP from 10.0.2.2,",
        TO_AGENT_READY,
    )?;
    vm.expect_check("net", TO_AGENT_READY)?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    power_off(&mut vm)?;
    Ok(())
}

#[test]
fn a_static_address_from_the_kernel_command_line() -> Result<()> {
    let server = serve(|_| "static works".into());
    let image = GuestImage::builder().init_config(net_check("static", "static works").to_toml());
    let mut vm = boot_direct("static_net", image, |b| {
        b.forward_to_host(GUEST_PORT, server.addr)
            .cmdline("husk.net=10.0.2.77/24,10.0.2.2,10.0.2.3")
    })?;
    vm.wait_for_line("10.0.2.77/24 (static, kernel command line)", TO_AGENT_READY)?;
    vm.expect_check("net", TO_AGENT_READY)?;
    // The name server given reaches /etc/resolv.conf.
    vm.wait_for_line_from_start("resolv.conf: nameserver 10.0.2.3", TO_CHECK)?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    power_off(&mut vm)?;
    Ok(())
}

#[test]
fn user_data_from_the_metadata_service() -> Result<()> {
    let server = serve(|request| {
        if request.starts_with("PUT /latest/api/token") {
            "token-1".into()
        } else if request
            .to_ascii_lowercase()
            .contains("x-aws-ec2-metadata-token: token-1")
        {
            "hostname = \"from-imds\"\n".into()
        } else {
            "no token".into()
        }
    });
    let config = InitConfig::with_agent().service(Service::checker(
        "check-user-data",
        &["user-data", "applied", "from-imds"],
        Restart::Never,
    ));
    let image = GuestImage::builder().init_config(config.to_toml());
    // The guest's 169.254.169.254:80 is forwarded to the test's server,
    // on the guest's own network (169.254.0.0/16, see
    // `VmBuilder::metadata_service`).
    let mut vm = boot_direct("imds", image, |b| b.metadata_service(server.addr))?;
    vm.wait_for_line("user-data from metadata service", TO_AGENT_READY)?;
    vm.expect_check("user-data", TO_CHECK)?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    power_off(&mut vm)?;
    Ok(())
}

/// Standard base64, for `husk.userdata=`.
fn base64(data: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_static_address_from_user_data_replaces_dhcp() -> Result<()> {
    let server = serve(|_| "user-data static".into());
    let user_data = "[network]\ndns = [\"10.0.2.3\"]\n\n[[network.interfaces]]\n\
                     address = \"10.0.2.88/24\"\ngateway = \"10.0.2.2\"\n";
    let image =
        GuestImage::builder().init_config(net_check("static", "user-data static").to_toml());
    let mut vm = boot_direct("static_user_data", image, |b| {
        b.forward_to_host(GUEST_PORT, server.addr)
            .cmdline(&format!("husk.userdata={}", base64(user_data.as_bytes())))
    })?;
    vm.wait_for_line("10.0.2.88/24 (static, user-data)", TO_AGENT_READY)?;
    vm.expect_check("net", TO_AGENT_READY)?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    power_off(&mut vm)?;
    Ok(())
}

/// The restriction itself: the forwarded server answers, and nothing
/// else does. The guest has a gateway (a static address), so every probe
/// leaves it for slirp, which must refuse them. Would fail without
/// `restrict=on`: 10.0.2.2 would be the host's loopback, where the test
/// listens.
#[test]
fn nothing_but_the_forwards_answers_the_guest() -> Result<()> {
    let forwarded = serve(|_| "forwarded".into());
    // Listening on the host's loopback, so a refused connection to it is
    // the restriction's doing, not an empty port's.
    let other = serve(|_| "not forwarded".into());
    // Those on the host's loopback first: the first probe that connects
    // ends the scenario, before any reaches beyond the host.
    let probes = [
        format!("tcp:10.0.2.2:{}", other.addr.port()),
        format!("tcp:10.0.2.2:{}", forwarded.addr.port()),
        // slirp's DNS relay, which asks the host's resolver.
        "dns:10.0.2.3:53".to_owned(),
        // The host's metadata service (unforwarded), and the internet.
        "tcp:169.254.169.254:80".to_owned(),
        "tcp:1.1.1.1:53".to_owned(),
    ];
    let forward = format!("{FORWARD_ADDR}:{GUEST_PORT}");
    let mut args = vec!["net-isolated", &forward, "forwarded"];
    args.extend(probes.iter().map(String::as_str));
    let config =
        InitConfig::with_agent().service(Service::checker("check-isolated", &args, Restart::Never));
    let image = GuestImage::builder().init_config(config.to_toml());
    let mut vm = boot_direct("isolated", image, |b| {
        b.forward_to_host(GUEST_PORT, forwarded.addr)
            .cmdline("husk.net=10.0.2.77/24,10.0.2.2,10.0.2.3")
    })?;
    vm.expect_check("net-isolated", TO_AGENT_READY)?;
    assert_eq!(
        other.connections.load(Ordering::SeqCst),
        0,
        "the unforwarded server was reached"
    );
    assert_eq!(forwarded.connections.load(Ordering::SeqCst), 1);
    power_off(&mut vm)?;
    Ok(())
}
