use super::*;
use crate::SignedDuration;
use crate::discipline::tests::RecordingClock;
use crate::fake_server::FakeServer;
use crate::report::Report;

fn options() -> Options {
    Options {
        timeout: Duration::from_millis(300),
        burst: Burst {
            samples: 2,
            spacing: Duration::from_millis(5),
        },
        step_threshold: DEFAULT_STEP_THRESHOLD,
    }
}

#[tokio::test]
async fn a_far_clock_is_stepped() {
    let server = FakeServer::good(SignedDuration::from_millis(-90_000)).await;
    let clock = RecordingClock::default();
    let report = sync_with(&[server.addr], &clock, &options()).await.unwrap();
    let calls = clock.calls();
    let [Correction::Step(by)] = calls[..] else {
        panic!("{calls:?}")
    };
    assert!((by.as_secs_f64() + 90.0).abs() < 0.02, "{by}");
    assert_eq!(report.server, server.addr.to_string());
    assert_eq!(report.correction, crate::CorrectionKind::Step);
    assert!((report.offset_ms + 90_000.0).abs() < 20.0, "{report:?}");
    assert_eq!(report.stratum, 2);
    assert_eq!(report.at, 1_767_225_600, "the clock's own now, after");
}

#[tokio::test]
async fn a_near_clock_is_slewed() {
    let server = FakeServer::good(SignedDuration::from_millis(60)).await;
    let clock = RecordingClock::default();
    let report = sync_with(&[server.addr], &clock, &options()).await.unwrap();
    assert!(
        matches!(clock.calls()[..], [Correction::Slew(_)]),
        "{:?}",
        clock.calls()
    );
    assert_eq!(report.correction, crate::CorrectionKind::Slew);
    assert!(
        report.delay_ms >= 0.0 && report.delay_ms < 20.0,
        "{report:?}"
    );
}

#[tokio::test]
async fn a_failing_clock_fails_the_sync() {
    let server = FakeServer::good(SignedDuration::from_millis(1000)).await;
    let clock = RecordingClock {
        fail: true,
        ..RecordingClock::default()
    };
    let e = sync_with(&[server.addr], &clock, &options()).await;
    assert!(matches!(e, Err(NtpError::Clock { .. })), "{e:?}");
}

#[tokio::test]
async fn no_answer_leaves_the_clock_alone() {
    let silent = FakeServer::start(|_, _| vec![]).await;
    let clock = RecordingClock::default();
    let e = sync_with(&[silent.addr], &clock, &options()).await;
    assert!(matches!(e, Err(NtpError::AllFailed { .. })), "{e:?}");
    assert!(clock.calls().is_empty());
}

#[test]
fn the_report_as_json() {
    let report = Report {
        server: "192.0.2.1:123".into(),
        offset_ms: -1.5,
        delay_ms: 12.25,
        stratum: 2,
        correction: crate::CorrectionKind::Slew,
        at: 1_767_225_600,
    };
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "server": "192.0.2.1:123", "offset_ms": -1.5, "delay_ms": 12.25,
            "stratum": 2, "correction": "slew", "at": 1_767_225_600u64
        })
    );
    assert_eq!(serde_json::from_value::<Report>(json).unwrap(), report);
}
