use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::fake_server::{Action, FakeServer, good_reply};

const SHORT: Duration = Duration::from_millis(300);

fn reply(p: Packet) -> Vec<Action> {
    vec![Action::Reply(p.encode().to_vec())]
}

/// A server answering each request with `craft(good reply)`.
async fn crafted(craft: fn(&mut Packet)) -> FakeServer {
    FakeServer::start(move |_, request| {
        let mut p = good_reply(request, SignedDuration::ZERO);
        craft(&mut p);
        reply(p)
    })
    .await
}

async fn rejected(craft: fn(&mut Packet)) -> Problem {
    let server = crafted(craft).await;
    match query(server.addr, SHORT).await {
        Err(NtpError::Rejected { server: s, problem }) => {
            assert_eq!(s, server.addr);
            problem
        }
        other => panic!("{other:?}"),
    }
}

async fn ignored_then_timeout(server: &FakeServer) -> (Vec<Problem>, String) {
    let started = std::time::Instant::now();
    let e = query(server.addr, SHORT).await.unwrap_err();
    // Ignored datagrams do not end the wait early.
    assert!(started.elapsed() >= SHORT, "{:?}", started.elapsed());
    let message = e.to_string();
    match e {
        NtpError::Timeout {
            server: s,
            timeout,
            ignored,
        } => {
            assert_eq!((s, timeout), (server.addr, SHORT));
            (ignored, message)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_good_reply_gives_the_servers_offset() {
    let server = FakeServer::good(SignedDuration::from_millis(5_000)).await;
    let sample = query(server.addr, SHORT).await.unwrap();
    assert_eq!(sample.server, server.addr);
    // The server is 5 s ahead: the offset is +5 s, to what loopback and
    // the scheduler add.
    assert!(
        (sample.offset.as_nanos() - 5_000_000_000).abs() < 20_000_000,
        "{}",
        sample.offset
    );
    assert!(
        sample.delay < Duration::from_millis(20),
        "{:?}",
        sample.delay
    );
    assert_eq!(sample.stratum, 2);
    assert_eq!(sample.leap, 0);
    assert_eq!(sample.reference_id, [192, 0, 2, 1]);
    assert_eq!(sample.root_delay.as_millis(), 9); // 16.16 truncates 10 ms
    assert_eq!(sample.root_dispersion.as_millis(), 19);
}

#[tokio::test]
async fn the_request_is_minimal_and_its_nonce_fresh() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = FakeServer::start(move |_, request| {
        tx.send(*request).unwrap();
        reply(good_reply(request, SignedDuration::ZERO))
    })
    .await;
    query(server.addr, SHORT).await.unwrap();
    query(server.addr, SHORT).await.unwrap();
    let (a, b) = (rx.recv().await.unwrap(), rx.recv().await.unwrap());
    assert_eq!((a.leap, a.version, a.mode), (0, 4, 3));
    let blank = Packet {
        transmit: a.transmit,
        ..Packet::request(a.transmit)
    };
    assert_eq!(a, blank, "nothing but the nonce");
    assert_ne!(a.transmit, NtpTimestamp::ZERO);
    assert_ne!(a.transmit, b.transmit);
}

#[tokio::test]
async fn a_wrong_origin_timestamp_is_ignored() {
    let server = crafted(|p| p.origin.0 ^= 1).await;
    let (ignored, message) = ignored_then_timeout(&server).await;
    assert!(
        matches!(ignored[..], [Problem::OriginMismatch { .. }]),
        "{ignored:?}"
    );
    assert!(message.contains("origin timestamp"), "{message}");
    assert!(message.contains(&server.addr.to_string()), "{message}");
}

#[tokio::test]
async fn a_spoofed_reply_does_not_hide_the_real_one() {
    let server = FakeServer::start(|_, request| {
        let real = good_reply(request, SignedDuration::ZERO);
        let mut spoofed = good_reply(request, SignedDuration::from_millis(-86_400_000));
        spoofed.origin = NtpTimestamp(12345);
        vec![
            Action::Reply(spoofed.encode().to_vec()),
            Action::ReplyFromElsewhere(real.encode().to_vec()),
            Action::Reply(vec![0x24; 12]),
            Action::Reply(real.encode().to_vec()),
        ]
    })
    .await;
    let sample = query(server.addr, SHORT).await.unwrap();
    assert!(
        sample.offset.abs() < Duration::from_millis(20),
        "{}",
        sample.offset
    );
}

#[tokio::test]
async fn a_reply_from_another_port_is_ignored() {
    let server = FakeServer::start(|_, request| {
        vec![Action::ReplyFromElsewhere(
            good_reply(request, SignedDuration::ZERO).encode().to_vec(),
        )]
    })
    .await;
    let (ignored, message) = ignored_then_timeout(&server).await;
    match ignored[..] {
        [Problem::ForeignSource(from)] => {
            assert_eq!(from.ip(), server.addr.ip());
            assert_ne!(from.port(), server.addr.port());
        }
        _ => panic!("{ignored:?}"),
    }
    assert!(message.contains("not from the server"), "{message}");
}

#[tokio::test]
async fn a_reply_from_another_address_is_ignored() {
    // The server asked is 127.0.0.2 (loopback answers it: Linux routes
    // 127/8 to lo); its reply goes out from 127.0.0.1, a wrong address.
    let socket = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let asked = socket.local_addr().unwrap();
    let liar = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let serve = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let (len, client) = socket.recv_from(&mut buf).await.unwrap();
        let request = Packet::decode(&buf[..len]).unwrap();
        let bytes = good_reply(&request, SignedDuration::ZERO).encode();
        liar.send_to(&bytes, client).await.unwrap();
    });
    let e = query(asked, SHORT).await.unwrap_err();
    serve.await.unwrap();
    match e {
        NtpError::Timeout { ignored, .. } => match ignored[..] {
            [Problem::ForeignSource(from)] => assert_eq!(from.ip().to_string(), "127.0.0.1"),
            _ => panic!("{ignored:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_short_packet_is_ignored() {
    let server = FakeServer::start(|_, request| {
        let bytes = good_reply(request, SignedDuration::ZERO).encode();
        vec![Action::Reply(bytes[..47].to_vec())]
    })
    .await;
    let (ignored, _) = ignored_then_timeout(&server).await;
    assert_eq!(ignored, [Problem::Short(47)]);
}

#[tokio::test]
async fn no_reply_is_a_timeout() {
    let server = FakeServer::start(|_, _| vec![]).await;
    let (ignored, message) = ignored_then_timeout(&server).await;
    assert!(ignored.is_empty());
    assert_eq!(
        message,
        format!("NTP server {}: no valid reply within 300ms", server.addr)
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_flood_of_junk_is_listed_within_bounds() {
    let server =
        FakeServer::start(|_, _| (0..50).map(|_| Action::Reply(vec![0; 10])).collect()).await;
    let (ignored, _) = ignored_then_timeout(&server).await;
    assert_eq!(ignored.len(), MAX_IGNORED);
}

#[tokio::test]
async fn a_client_mode_reply_is_rejected() {
    assert_eq!(
        rejected(|p| p.mode = packet::MODE_CLIENT).await,
        Problem::Mode(3)
    );
    assert_eq!(rejected(|p| p.mode = 5).await, Problem::Mode(5));
}

#[tokio::test]
async fn versions_3_and_4_only() {
    assert_eq!(rejected(|p| p.version = 2).await, Problem::Version(2));
    assert_eq!(rejected(|p| p.version = 5).await, Problem::Version(5));
    let v3 = crafted(|p| p.version = 3).await;
    query(v3.addr, SHORT).await.unwrap();
}

#[tokio::test]
async fn a_kiss_of_death_names_its_code() {
    let server = crafted(|p| {
        p.stratum = 0;
        p.leap = 3;
        p.reference_id = *b"RATE";
    })
    .await;
    let e = query(server.addr, SHORT).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("NTP server {}: kiss-o'-death \"RATE\"", server.addr)
    );
    assert!(matches!(e, NtpError::KissOfDeath { ref code, .. } if code == "RATE"));
}

#[tokio::test]
async fn unsynchronised_servers_are_rejected() {
    assert_eq!(rejected(|p| p.leap = 3).await, Problem::Unsynchronised);
    assert_eq!(rejected(|p| p.stratum = 16).await, Problem::Stratum(16));
    assert_eq!(rejected(|p| p.stratum = 255).await, Problem::Stratum(255));
    let s15 = crafted(|p| {
        p.stratum = 15;
        p.leap = 1; // a leap second announced is fine
    })
    .await;
    assert_eq!(query(s15.addr, SHORT).await.unwrap().stratum, 15);
}

#[tokio::test]
async fn zero_timestamps_are_rejected() {
    assert_eq!(
        rejected(|p| p.receive = NtpTimestamp::ZERO).await,
        Problem::ZeroTimestamp("receive")
    );
    assert_eq!(
        rejected(|p| p.transmit = NtpTimestamp::ZERO).await,
        Problem::ZeroTimestamp("transmit")
    );
}

#[tokio::test]
async fn insane_root_delay_or_dispersion_is_rejected() {
    let problem = rejected(|p| p.root_delay = 0x0001_0100).await;
    assert!(
        matches!(problem, Problem::RootDelay(d) if d > MAX_ROOT_DELAY),
        "{problem:?}"
    );
    let problem = rejected(|p| p.root_dispersion = 0x0010_0100).await;
    assert!(matches!(problem, Problem::RootDispersion(_)), "{problem:?}");
    // At the limits is still sane.
    let edge = crafted(|p| {
        p.root_delay = 0x0001_0000;
        p.root_dispersion = 0x0010_0000;
    })
    .await;
    query(edge.addr, SHORT).await.unwrap();
}

#[tokio::test]
async fn a_negative_delay_is_rejected() {
    // The server claims to have held the request ten seconds, longer
    // than the whole round trip.
    let problem = rejected(|p| {
        p.receive = NtpTimestamp(p.transmit.0 - (10 << 32));
    })
    .await;
    assert!(
        matches!(problem, Problem::NegativeDelay(d) if d.is_negative()),
        "{problem:?}"
    );
}

#[tokio::test]
async fn an_unroutable_server_is_an_error_naming_it() {
    // Port 0 cannot be sent to: an I/O error, not a timeout.
    let server: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let e = query(server, SHORT).await.unwrap_err();
    assert!(
        matches!(
            e,
            NtpError::Io {
                op: "sending the request",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("NTP server 127.0.0.1:0: sending the request: "),
        "{e}"
    );
}

// The arithmetic, without sockets.

fn at(unix_nanos: i128) -> SystemTime {
    crate::timestamp::system_time(unix_nanos)
}

fn stamped(nonce: NtpTimestamp, t2: i128, t3: i128) -> [u8; packet::LEN] {
    let request = Packet::request(nonce);
    Packet {
        receive: NtpTimestamp::from_unix_nanos(t2),
        transmit: NtpTimestamp::from_unix_nanos(t3),
        ..good_reply(&request, SignedDuration::ZERO)
    }
    .encode()
}

#[test]
fn offset_and_delay_per_rfc_5905() {
    let server: SocketAddr = "192.0.2.1:123".parse().unwrap();
    let nonce = NtpTimestamp(0xdead_beef_0000_0001);
    let t1: i128 = 1_767_225_600_000_000_000;
    // Server 10 s ahead; 1 ms out, 1 ms held, 2 ms back.
    let t2 = t1 + 10_001_000_000;
    let t3 = t1 + 10_002_000_000;
    let t4 = t1 + 4_000_000;
    let s = check_reply(
        server,
        nonce,
        &stamped(nonce, t2, t3),
        server,
        at(t1),
        at(t4),
    )
    .unwrap();
    assert_eq!(s.offset, SignedDuration::from_nanos(9_999_500_000));
    assert_eq!(s.delay, Duration::from_millis(3));
    // Server behind.
    let s = check_reply(
        server,
        nonce,
        &stamped(nonce, t1 - 2_999_000_000, t1 - 2_998_000_000),
        server,
        at(t1),
        at(t1 + 2_000_000),
    )
    .unwrap();
    assert_eq!(s.offset, SignedDuration::from_nanos(-2_999_500_000));
    assert_eq!(s.delay, Duration::from_millis(1));
}

#[test]
fn offsets_across_the_2036_wrap() {
    let server: SocketAddr = "192.0.2.1:123".parse().unwrap();
    let nonce = NtpTimestamp(7);
    let wrap: i128 = ((1 << 32) - 2_208_988_800) * 1_000_000_000;
    // Our clock 3 s before the wrap, the server's 2 s after it: its
    // seconds field is 2, and it still reads 5 s ahead, not 136 years back.
    let t1 = wrap - 3_000_000_000;
    let bytes = stamped(nonce, wrap + 2_000_000_000, wrap + 2_000_000_000);
    assert_eq!(Packet::decode(&bytes).unwrap().receive.seconds(), 2);
    let s = check_reply(server, nonce, &bytes, server, at(t1), at(t1)).unwrap();
    assert_eq!(s.offset, SignedDuration::from_nanos(5_000_000_000));
    // And the other way: our clock after the wrap, the server's before.
    let t1 = wrap + 1_000_000_000;
    let bytes = stamped(nonce, wrap - 1_000_000_000, wrap - 1_000_000_000);
    let s = check_reply(server, nonce, &bytes, server, at(t1), at(t1)).unwrap();
    assert_eq!(s.offset, SignedDuration::from_nanos(-2_000_000_000));
}

#[test]
fn a_clock_left_at_1970_still_measures() {
    // No RTC: the kernel starts at the epoch. 2026 is 56 years on,
    // within the 68-year window.
    let server: SocketAddr = "192.0.2.1:123".parse().unwrap();
    let nonce = NtpTimestamp(9);
    let y2026: i128 = 1_767_225_600_000_000_000;
    let bytes = stamped(nonce, y2026, y2026);
    let s = check_reply(server, nonce, &bytes, server, UNIX_EPOCH, UNIX_EPOCH).unwrap();
    assert_eq!(s.offset.as_nanos(), y2026 as i64);
}
