//! The network with QEMU's user-mode networking (slirp): a DHCP lease
//! obtained and used to reach a server the test runs on the host, a
//! static address from the kernel command line, and user-data from an
//! EC2-style metadata service the test runs (reached through QEMU's
//! forwarding of the guest's connections to 169.254.169.254).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;

use common::*;
use qemu_tests::{GuestImage, InitConfig, Restart, Result, Service};

/// A one-thread HTTP server on 127.0.0.1 answering every request with
/// `answer(request)`; returns its port. It lives as long as the test.
fn serve(answer: impl Fn(&str) -> String + Send + 'static) -> u16 {
    serve_on(0, answer)
}

fn serve_on(port: u16, answer: impl Fn(&str) -> String + Send + 'static) -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("binding 127.0.0.1:{port}: {e}"));
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = vec![0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = answer(&request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn net_check(state: &str, host: &str, port: u16, body: &str) -> InitConfig {
    InitConfig::with_agent().service(Service::checker(
        "check-net",
        &["net", state, host, &port.to_string(), body],
        Restart::Never,
    ))
}

#[test]
fn a_dhcp_lease_is_obtained_and_used() -> Result<()> {
    let port = serve(|_| "hello from the host".into());
    // slirp's host is 10.0.2.2 from the guest; its DHCP server hands out
    // 10.0.2.15 with 10.0.2.2 as router and 10.0.2.3 as DNS.
    let image = GuestImage::builder()
        .init_config(net_check("bound", "10.0.2.2", port, "hello from the host").to_toml());
    let mut vm = boot_direct("dhcp", image, |b| b.user_net())?;
    vm.wait_for_line("10.0.2.15/24 via 10.0.2.2 (DHCP from", TO_AGENT_READY)?;
    vm.expect_check("net", TO_AGENT_READY)?;
    vm.wait_for_line_from_start("nameserver 10.0.2.3", TO_CHECK)?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    power_off(&mut vm)?;
    Ok(())
}

#[test]
fn a_static_address_from_the_kernel_command_line() -> Result<()> {
    let port = serve(|_| "static works".into());
    let image = GuestImage::builder()
        .init_config(net_check("static", "10.0.2.2", port, "static works").to_toml());
    let mut vm = boot_direct("static_net", image, |b| {
        b.user_net()
            .cmdline("husk.net=10.0.2.77/24,10.0.2.2,10.0.2.3")
    })?;
    vm.wait_for_line("10.0.2.77/24 (static, kernel command line)", TO_AGENT_READY)?;
    vm.expect_check("net", TO_AGENT_READY)?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    power_off(&mut vm)?;
    Ok(())
}

#[test]
fn user_data_from_the_metadata_service() -> Result<()> {
    // slirp with its host (the gateway) at 169.254.169.254: the guest's
    // connections to it reach the host's loopback, port for port, so the
    // metadata server listens on 127.0.0.1:80 (the tests run as root).
    serve_on(80, |request| {
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
    let netdev = "user,id=n0,net=169.254.0.0/16,host=169.254.169.254,dhcpstart=169.254.1.15";
    let mut vm = boot_direct("imds", image, |b| {
        b.qemu_arg("-netdev")
            .qemu_arg(netdev)
            .qemu_arg("-device")
            .qemu_arg("virtio-net-pci,netdev=n0")
    })?;
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
    let port = serve(|_| "user-data static".into());
    let user_data = "[network]\ndns = [\"10.0.2.3\"]\n\n[[network.interfaces]]\n\
                     address = \"10.0.2.88/24\"\ngateway = \"10.0.2.2\"\n";
    let image = GuestImage::builder()
        .init_config(net_check("static", "10.0.2.2", port, "user-data static").to_toml());
    let mut vm = boot_direct("static_user_data", image, |b| {
        b.user_net()
            .cmdline(&format!("husk.userdata={}", base64(user_data.as_bytes())))
    })?;
    vm.wait_for_line("10.0.2.88/24 (static, user-data)", TO_AGENT_READY)?;
    vm.expect_check("net", TO_AGENT_READY)?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    power_off(&mut vm)?;
    Ok(())
}
