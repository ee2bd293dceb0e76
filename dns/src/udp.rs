//! The UDP listener: one datagram, one decision; forwards run as their own
//! tasks (bounded by [`MAX_IN_FLIGHT`](crate::MAX_IN_FLIGHT)) so a slow
//! upstream never holds up the network's own names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::answer::{Kind, Plan, Transport, plan};
use crate::forward::forward;
use crate::server::Shared;
use crate::stats::bump;

pub(crate) async fn serve(
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    // The largest datagram there is: a shorter buffer would cut a query
    // silently (and then it parses as something else).
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    let mut forwards = JoinSet::new();
    loop {
        while forwards.try_join_next().is_some() {}
        let received = tokio::select! {
            _ = stop.changed() => break,
            received = socket.recv_from(&mut buf) => received,
        };
        let (len, peer) = match received {
            Ok(received) => received,
            Err(e) => {
                // Transient (an ICMP error for an earlier answer): a short
                // pause keeps a persistent one from spinning.
                log::debug!("DNS UDP receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let counters = &shared.counters;
        if !shared.is_client(peer.ip()) {
            bump(&counters.not_client);
            log::debug!("DNS query from {peer}, not a client: dropped");
            continue;
        }
        let upstream = shared.upstream_for(peer.ip());
        let query = &buf[..len];
        let names = shared.names.view_for(peer.ip());
        match plan(query, &names, !upstream.is_empty(), Transport::Udp) {
            Plan::Drop => {
                bump(&counters.dropped);
                log::debug!("DNS datagram from {peer} dropped");
            }
            Plan::Answer { bytes, kind } => {
                bump(match kind {
                    Kind::Answered => &counters.answered,
                    Kind::Refused => &counters.refused,
                    Kind::Rejected => &counters.rejected,
                });
                send(&socket, &bytes, peer).await;
            }
            Plan::Forward(out) => {
                let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
                    bump(&counters.overloaded);
                    log::debug!("DNS query from {peer} dropped: too many forwards in flight");
                    continue;
                };
                let query = query.to_vec();
                let socket = socket.clone();
                let shared = shared.clone();
                forwards.spawn(async move {
                    let _permit = permit;
                    let reply = match forward(&out, &query, &upstream, Transport::Udp).await {
                        Some(reply) => {
                            bump(&shared.counters.forwarded);
                            reply
                        }
                        None => {
                            bump(&shared.counters.upstream_failures);
                            out.servfail()
                        }
                    };
                    send(&socket, &reply, peer).await;
                });
            }
        }
    }
    forwards.shutdown().await;
}

async fn send(socket: &UdpSocket, bytes: &[u8], peer: SocketAddr) {
    if let Err(e) = socket.send_to(bytes, peer).await {
        log::debug!("DNS answer to {peer}: {e}");
    }
}
