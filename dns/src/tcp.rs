//! The TCP listener: length-prefixed queries (RFC 1035 4.2.2, RFC 7766),
//! one at a time per connection, with a bounded number of connections and
//! a deadline for each query so idle and slow clients let go.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::TCP_IDLE;
use crate::answer::{Kind, Plan, Transport, plan};
use crate::forward::forward;
use crate::server::Shared;
use crate::stats::bump;

/// Queries one connection may ask before it is closed: a client keeping a
/// connection busy forever would hold its slot forever.
const MAX_QUERIES_PER_CONNECTION: usize = 100;

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: wait for some to close.
                log::debug!("DNS TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if !shared.is_client(peer.ip()) {
            bump(&shared.counters.not_client);
            log::debug!("DNS connection from {peer}, not a client: closed");
            continue;
        }
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            bump(&shared.counters.overloaded);
            log::debug!("DNS connection from {peer} closed: too many connections");
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let _permit = permit;
            connection(stream, peer, &shared).await;
        });
    }
    connections.shutdown().await;
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let counters = &shared.counters;
    for _ in 0..MAX_QUERIES_PER_CONNECTION {
        let query = match timeout(TCP_IDLE, read_query(&mut stream)).await {
            Ok(Ok(Some(query))) => query,
            Ok(Ok(None)) | Ok(Err(_)) => return,
            Err(_) => {
                log::debug!("DNS connection from {peer}: idle, closed");
                return;
            }
        };
        let upstream = shared.upstream_for(peer.ip());
        let names = shared.names.view_for(peer.ip());
        let reply = match plan(&query, &names, !upstream.is_empty(), Transport::Tcp) {
            Plan::Drop => {
                // Not a query: nothing more is read from this stream.
                bump(&counters.dropped);
                return;
            }
            Plan::Answer { bytes, kind } => {
                bump(match kind {
                    Kind::Answered => &counters.answered,
                    Kind::Refused => &counters.refused,
                    Kind::Rejected => &counters.rejected,
                });
                bytes
            }
            Plan::Forward(out) => {
                let Ok(_permit) = shared.in_flight.clone().try_acquire_owned() else {
                    bump(&counters.overloaded);
                    return;
                };
                match forward(&out, &query, &upstream, Transport::Tcp).await {
                    Some(reply) => {
                        bump(&counters.forwarded);
                        reply
                    }
                    None => {
                        bump(&counters.upstream_failures);
                        out.servfail()
                    }
                }
            }
        };
        if !matches!(
            timeout(TCP_IDLE, write_answer(&mut stream, &reply)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

/// One length-prefixed message; `None` at the end of the stream or for a
/// zero length.
async fn read_query(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let len = match stream.read_u16().await {
        Ok(len) => len,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    if len == 0 {
        return Ok(None);
    }
    let mut query = vec![0u8; usize::from(len)];
    stream.read_exact(&mut query).await?;
    Ok(Some(query))
}

async fn write_answer(stream: &mut TcpStream, answer: &[u8]) -> std::io::Result<()> {
    let Ok(len) = u16::try_from(answer.len()) else {
        return Ok(());
    };
    let mut framed = Vec::with_capacity(answer.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(answer);
    stream.write_all(&framed).await
}
