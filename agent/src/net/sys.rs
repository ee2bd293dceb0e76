//! The one socket option rustix does not wrap: SO_BINDTODEVICE, which the
//! DHCP clients need before the interface has an address.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::net::{AddressFamily, SocketAddrAny, SocketFlags, SocketType, sockopt};

/// A UDP socket on 0.0.0.0:68 for `interface` only, broadcast allowed.
pub fn dhcp_socket(interface: &str) -> io::Result<std::net::UdpSocket> {
    let fd = device_socket(AddressFamily::INET, interface)?;
    sockopt::set_socket_broadcast(&fd, true)?;
    bind(
        &fd,
        rustix::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68).into(),
    )?;
    Ok(std::net::UdpSocket::from(fd))
}

/// A UDP socket on [::]:546 (DHCPv6's client port) for `interface` only.
pub fn dhcp6_socket(interface: &str) -> io::Result<std::net::UdpSocket> {
    let fd = device_socket(AddressFamily::INET6, interface)?;
    sockopt::set_ipv6_v6only(&fd, true)?;
    bind(
        &fd,
        rustix::net::SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 546, 0, 0).into(),
    )?;
    Ok(std::net::UdpSocket::from(fd))
}

fn bind(fd: &OwnedFd, addr: SocketAddrAny) -> io::Result<()> {
    rustix::net::bind(fd, &addr)?;
    Ok(())
}

/// A non-blocking UDP socket of `family`, address reuse on, bound to
/// `interface` (SO_BINDTODEVICE).
fn device_socket(family: AddressFamily, interface: &str) -> io::Result<OwnedFd> {
    let fd: OwnedFd = rustix::net::socket_with(
        family,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    let name = interface.as_bytes();
    // SAFETY: `name` is valid for `name.len()` bytes during the call and
    // the kernel copies it; `fd` is an open socket.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}
