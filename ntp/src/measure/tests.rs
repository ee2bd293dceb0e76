use std::time::Duration;

use super::*;
use crate::SignedDuration;
use crate::fake_server::{Action, FakeServer, good_reply};
use crate::packet::Packet;

const TIMEOUT: Duration = Duration::from_millis(300);

fn quick(samples: u32) -> Burst {
    Burst {
        samples,
        spacing: Duration::from_millis(5),
    }
}

/// A good server whose n-th answer (from 1) has the offset and the
/// return-path delay `script(n)` gives.
async fn scripted(script: fn(usize) -> (i64, u64)) -> FakeServer {
    FakeServer::start(move |n, request| {
        let (offset_ms, delay_ms) = script(n);
        let reply = good_reply(request, SignedDuration::from_millis(offset_ms));
        vec![
            Action::Wait(Duration::from_millis(delay_ms)),
            Action::Reply(reply.encode().to_vec()),
        ]
    })
    .await
}

fn secs(s: &Sample) -> i64 {
    (s.offset.as_secs_f64()).round() as i64
}

#[tokio::test]
async fn the_sample_of_least_delay_is_kept() {
    // Each answer has its own offset (n seconds) so the one kept shows.
    let server = scripted(|n| (n as i64 * 1000, [60, 40, 2, 80][n - 1])).await;
    let sample = measure_with(&[server.addr], TIMEOUT, quick(4))
        .await
        .unwrap();
    assert_eq!(server.requests(), 4);
    assert_eq!(secs(&sample), 3, "{sample:?}");
    assert!(
        sample.delay < Duration::from_millis(40),
        "{:?}",
        sample.delay
    );
}

#[tokio::test]
async fn the_server_of_least_root_distance_wins() {
    let slow = scripted(|_| (1000, 60)).await;
    let fast = scripted(|_| (2000, 1)).await;
    let servers = [slow.addr, fast.addr];
    let sample = measure_with(&servers, TIMEOUT, quick(2)).await.unwrap();
    assert_eq!(sample.server, fast.addr);
    assert_eq!(secs(&sample), 2);
    // A lower stratum does not beat a much shorter distance, but wins a tie.
    let far_primary = FakeServer::start(|_, request| {
        let mut p = good_reply(request, SignedDuration::ZERO);
        p.stratum = 1;
        p.root_dispersion = 0x0000_8000; // 500 ms
        vec![Action::Reply(p.encode().to_vec())]
    })
    .await;
    let sample = measure_with(&[far_primary.addr, fast.addr], TIMEOUT, quick(1))
        .await
        .unwrap();
    assert_eq!(sample.server, fast.addr);
}

#[tokio::test]
async fn bad_and_silent_servers_are_skipped() {
    let unsynchronised = FakeServer::start(|_, request| {
        let mut p = good_reply(request, SignedDuration::ZERO);
        p.leap = 3;
        vec![Action::Reply(p.encode().to_vec())]
    })
    .await;
    let silent = FakeServer::start(|_, _| vec![]).await;
    let good = FakeServer::good(SignedDuration::from_millis(7000)).await;
    let servers = [unsynchronised.addr, silent.addr, good.addr];
    let sample = measure_with(&servers, TIMEOUT, quick(2)).await.unwrap();
    assert_eq!(sample.server, good.addr);
    assert_eq!(secs(&sample), 7);
    // The unsynchronised one was asked once: its answer ends its burst.
    // The silent one was asked again (replies get lost).
    assert_eq!(unsynchronised.requests(), 1);
    assert_eq!(silent.requests(), 2);
}

#[tokio::test]
async fn a_lost_reply_is_retried_within_the_burst() {
    let lossy = FakeServer::start(|n, request: &Packet| {
        if n == 1 {
            return vec![];
        }
        vec![Action::Reply(
            good_reply(request, SignedDuration::ZERO).encode().to_vec(),
        )]
    })
    .await;
    let sample = measure_with(&[lossy.addr], Duration::from_millis(100), quick(2))
        .await
        .unwrap();
    assert_eq!(sample.server, lossy.addr);
}

#[tokio::test]
async fn a_kiss_ends_the_burst() {
    let kisser = FakeServer::start(|_, request| {
        let mut p = good_reply(request, SignedDuration::ZERO);
        p.stratum = 0;
        p.reference_id = *b"DENY";
        vec![Action::Reply(p.encode().to_vec())]
    })
    .await;
    let e = measure_with(&[kisser.addr], TIMEOUT, quick(4))
        .await
        .unwrap_err();
    assert_eq!(kisser.requests(), 1, "no request after a kiss");
    match e {
        NtpError::AllFailed { errors } => {
            assert!(
                matches!(errors[..], [NtpError::KissOfDeath { ref code, .. }] if code == "DENY")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn when_all_fail_every_error_is_reported() {
    let silent = FakeServer::start(|_, _| vec![]).await;
    let unsynchronised = FakeServer::start(|_, request| {
        let mut p = good_reply(request, SignedDuration::ZERO);
        p.stratum = 16;
        vec![Action::Reply(p.encode().to_vec())]
    })
    .await;
    let e = measure_with(
        &[silent.addr, unsynchronised.addr],
        Duration::from_millis(100),
        quick(1),
    )
    .await
    .unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with("no NTP server gave a usable time: "),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}: no valid reply", silent.addr)),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}: stratum 16", unsynchronised.addr)),
        "{message}"
    );
    assert!(matches!(e, NtpError::AllFailed { ref errors } if errors.len() == 2));
}

#[tokio::test]
async fn servers_are_asked_at_once() {
    let servers: Vec<FakeServer> =
        futures_util::future::join_all((0..3).map(|_| FakeServer::start(|_, _| vec![]))).await;
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let started = std::time::Instant::now();
    let _ = measure_with(&addrs, Duration::from_millis(200), quick(1)).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn no_servers_is_its_own_error() {
    assert!(matches!(
        measure(&[], TIMEOUT).await,
        Err(NtpError::NoServers)
    ));
}

#[test]
fn the_default_burst_is_polite() {
    // iburst's pace: public servers kiss clients that ask faster.
    let burst = Burst::default();
    assert!(burst.spacing >= Duration::from_secs(2));
    assert!((1..=8).contains(&burst.samples));
}
