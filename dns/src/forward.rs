//! Asking the upstream resolvers: each in turn, [`UPSTREAM_TIMEOUT`]
//! each, over the transport the client used (a TCP query is usually the
//! retry of a truncated UDP answer, so it must not go back over UDP).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::UPSTREAM_TIMEOUT;
use crate::answer::{Outgoing, Transport};

/// The upstream's answer to `query`, made the client's (its id), or `None`
/// when none of `upstream` answered in time.
pub(crate) async fn forward(
    out: &Outgoing,
    query: &[u8],
    upstream: &[SocketAddr],
    via: Transport,
) -> Option<Vec<u8>> {
    for &server in upstream {
        // A fresh random id (and, over UDP, a fresh socket, so a random
        // source port) per attempt: an off-path forger has to guess both
        // to slip an answer in.
        let id = Message::query().metadata.id;
        let mut bytes = query.to_vec();
        bytes[..2].copy_from_slice(&id.to_be_bytes());
        let attempt = match via {
            Transport::Udp => timeout(UPSTREAM_TIMEOUT, udp(server, &bytes, out, id)).await,
            Transport::Tcp => timeout(UPSTREAM_TIMEOUT, tcp(server, &bytes, out, id)).await,
        };
        match attempt {
            Ok(Ok(answer)) => return Some(answer),
            Ok(Err(e)) => log::debug!("upstream {server}: {e}"),
            Err(_) => log::debug!("upstream {server}: no answer in {UPSTREAM_TIMEOUT:?}"),
        }
    }
    None
}

async fn udp(server: SocketAddr, query: &[u8], out: &Outgoing, id: u16) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel keeps datagrams from anyone else out, and an
    // ICMP unreachable fails the wait at once instead of at the timeout.
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let len = socket.recv(&mut buf).await?;
        match out.relay(&buf[..len], id) {
            Some(answer) => return Ok(answer),
            None => log::debug!("upstream {server}: a datagram that is not the answer"),
        }
    }
}

async fn tcp(server: SocketAddr, query: &[u8], out: &Outgoing, id: u16) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(query.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0u8; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    out.relay(&answer, id)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not the answer to the query"))
}
