//! For the tests of husk-ntp's users (feature `testing`): a clock that
//! records what it is told and never touches the system's, and an NTP
//! server on 127.0.0.1 whose clock is a given offset ahead.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::discipline::{Clock, Correction};
use crate::duration::SignedDuration;
use crate::packet::{self, Packet};
use crate::timestamp::{NtpTimestamp, unix_nanos};

/// Records the corrections it is asked for; reads the system's time.
#[derive(Debug, Default)]
pub struct RecordingClock(Mutex<Vec<Correction>>);

impl RecordingClock {
    /// What it was asked, in order.
    pub fn corrections(&self) -> Vec<Correction> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, correction: Correction) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(correction);
    }
}

impl Clock for RecordingClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn step(&self, by: SignedDuration) -> io::Result<()> {
        self.record(Correction::Step(by));
        Ok(())
    }
    fn slew(&self, by: SignedDuration) -> io::Result<()> {
        self.record(Correction::Slew(by));
        Ok(())
    }
}

/// What a healthy stratum-2 server whose clock is `offset` ahead would
/// answer to `request`, stamped now.
pub fn good_reply(request: &Packet, offset: SignedDuration) -> Packet {
    let now = unix_nanos(SystemTime::now()) + i128::from(offset.as_nanos());
    Packet {
        leap: 0,
        version: packet::VERSION,
        mode: packet::MODE_SERVER,
        stratum: 2,
        poll: 6,
        precision: -20,
        root_delay: packet::duration_to_short(Duration::from_millis(10)),
        root_dispersion: packet::duration_to_short(Duration::from_millis(20)),
        reference_id: [192, 0, 2, 1],
        reference: NtpTimestamp::from_unix_nanos(now - 64_000_000_000),
        origin: request.transmit,
        receive: NtpTimestamp::from_unix_nanos(now),
        transmit: NtpTimestamp::from_unix_nanos(now),
    }
}

/// A server on 127.0.0.1 answering every request with [`good_reply`],
/// for as long as the runtime runs.
pub async fn offset_server(offset: SignedDuration) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((len, client)) = socket.recv_from(&mut buf).await {
            if let Some(request) = Packet::decode(&buf[..len]) {
                let _ = socket
                    .send_to(&good_reply(&request, offset).encode(), client)
                    .await;
            }
        }
    });
    addr
}
