//! The one socket option rustix does not wrap: SO_BINDTODEVICE, which the
//! DHCP client needs before the interface has an address.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// A UDP socket on 0.0.0.0:68 for `interface` only, broadcast allowed.
pub fn dhcp_socket(interface: &str) -> io::Result<std::net::UdpSocket> {
    use rustix::net::{AddressFamily, SocketAddrV4, SocketFlags, SocketType, sockopt};
    let fd: OwnedFd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_broadcast(&fd, true)?;
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
    rustix::net::bind(&fd, &SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 68))?;
    Ok(std::net::UdpSocket::from(fd))
}
