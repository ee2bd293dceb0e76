//! Against a real server: Debian's chronyd (package `chrony`), started
//! here on 127.0.0.1 and a free port with `-x` (it never touches this
//! machine's clock) and `local stratum 8` (it serves its own clock as
//! stratum 8 with no sources). It shares our clock, so the offset must
//! be about zero. Fails, not skips, without chronyd.

use std::net::SocketAddr;
use std::time::Duration;

use husk_ntp::testing::RecordingClock;
use husk_ntp::{Burst, Correction, NtpError, Options, decide, query};
use husk_testkit::chronyd::Chronyd;

#[tokio::test]
async fn chronyd_serves_our_own_time() {
    let chronyd = Chronyd::start();
    let first = query(chronyd.addr, Duration::from_secs(1)).await.unwrap();
    let sample = query(chronyd.addr, Duration::from_secs(1)).await.unwrap();
    eprintln!(
        "chronyd {}: offset {} delay {:?} stratum {} leap {} refid {:?} root delay {:?} root dispersion {:?}",
        sample.server,
        sample.offset,
        sample.delay,
        sample.stratum,
        sample.leap,
        sample.reference_id,
        sample.root_delay,
        sample.root_dispersion
    );
    for s in [&first, &sample] {
        assert_eq!(s.server, chronyd.addr);
        assert_eq!(s.stratum, 8);
        assert_ne!(s.leap, 3);
        // Same clock on both ends: only loopback and scheduling noise.
        assert!(s.offset.abs() < Duration::from_millis(50), "{}", s.offset);
        assert!(s.delay < Duration::from_millis(50), "{:?}", s.delay);
    }
    // Never a step against our own clock.
    let correction = decide(sample.offset, husk_ntp::DEFAULT_STEP_THRESHOLD);
    assert!(!matches!(correction, Correction::Step(_)), "{correction:?}");
}

#[tokio::test]
async fn a_sync_against_chronyd_only_slews_or_leaves_the_clock() {
    let chronyd = Chronyd::start();
    // A dead server beside it is skipped.
    let dead = SocketAddr::from(([127, 0, 0, 1], 9));
    let clock = RecordingClock::default();
    let options = Options {
        timeout: Duration::from_millis(500),
        burst: Burst {
            samples: 3,
            // chronyd's default rate limiting does not apply without
            // `ratelimit`; real servers get iburst's 2 s.
            spacing: Duration::from_millis(50),
        },
        ..Options::default()
    };
    let report = husk_ntp::sync_with(&[dead, chronyd.addr], &clock, &options)
        .await
        .unwrap();
    eprintln!("{report:?}");
    assert_eq!(report.server, chronyd.addr.to_string());
    assert_eq!(report.stratum, 8);
    assert!(report.offset_ms.abs() < 50.0, "{report:?}");
    let calls = clock.corrections();
    assert!(
        calls.iter().all(|c| !matches!(c, Correction::Step(_))),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_stopped_chronyd_is_a_timeout() {
    let chronyd = Chronyd::start();
    let addr = chronyd.addr;
    drop(chronyd);
    let e = query(addr, Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(e, NtpError::Timeout { .. }), "{e:?}");
}
