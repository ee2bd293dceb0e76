//! The NETLINK_NETFILTER socket, through rustix (it wraps every call
//! this needs, so there is no `unsafe` here).

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, sockopt};

/// The kernel answers a batch while `send` runs (nfnetlink is
/// synchronous) and a dump as fast as we read; this only bounds a wait
/// for an answer that a bug keeps from coming.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// A socket of the calling thread's network namespace (fixed when it is
/// opened, whatever the thread does later).
pub struct Socket(OwnedFd);

impl Socket {
    /// A socket bound to a port id the kernel picks.
    pub fn open() -> io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::NETFILTER),
        )?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0))?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(RECV_TIMEOUT))?;
        Ok(Self(fd))
    }

    /// Makes room for a batch of `send` bytes (a batch must go in one
    /// datagram, which SO_SNDBUF bounds) and its acks. Past the system's
    /// limits only with CAP_NET_ADMIN (which nf_tables needs anyway);
    /// best effort: a batch that still does not fit fails in `send`.
    pub fn reserve(&self, send: usize, recv: usize) {
        if sockopt::set_socket_send_buffer_size_force(&self.0, send).is_err() {
            let _ = sockopt::set_socket_send_buffer_size(&self.0, send);
        }
        if sockopt::set_socket_recv_buffer_size_force(&self.0, recv).is_err() {
            let _ = sockopt::set_socket_recv_buffer_size(&self.0, recv);
        }
    }

    /// Sends one datagram to the kernel (netlink sends all of it or fails).
    pub fn send(&self, datagram: &[u8]) -> io::Result<()> {
        let sent = rustix::net::send(&self.0, datagram, SendFlags::empty())?;
        if sent != datagram.len() {
            return Err(io::Error::other(format!(
                "sent {sent} of {} bytes",
                datagram.len()
            )));
        }
        Ok(())
    }

    /// Receives one datagram into `buf`; one that does not fit is an
    /// error (MSG_TRUNC tells its real length), never half a message.
    pub fn recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
        let (read, len) = rustix::net::recv(&self.0, &mut *buf, RecvFlags::TRUNC)?;
        if len > buf.len() {
            return Err(io::Error::other(format!(
                "a {len}-byte datagram does not fit the {}-byte buffer",
                buf.len()
            )));
        }
        Ok(&buf[..read])
    }
}
