use husk_ntp::testing::RecordingClock;
use husk_ntp::{DEFAULT_STEP_THRESHOLD, SignedDuration};

use super::*;

fn addr(text: &str) -> Server {
    Server::Addr(text.parse().unwrap())
}

#[test]
fn servers_parse_as_hosts_ports_and_addresses() {
    assert_eq!(
        "169.254.169.123".parse::<Server>().unwrap(),
        addr("169.254.169.123:123")
    );
    assert_eq!(
        "192.0.2.1:4123".parse::<Server>().unwrap(),
        addr("192.0.2.1:4123")
    );
    assert_eq!(
        "2001:db8::1".parse::<Server>().unwrap(),
        addr("[2001:db8::1]:123")
    );
    assert_eq!(
        "[2001:db8::1]:9".parse::<Server>().unwrap(),
        addr("[2001:db8::1]:9")
    );
    assert_eq!(
        "Time.Example:123".parse::<Server>().unwrap(),
        Server::Name {
            host: "time.example".into(),
            port: 123
        }
    );
    assert_eq!(
        "time.example".parse::<Server>().unwrap().to_string(),
        "time.example:123"
    );
    for bad in [
        "",
        "time.example:",
        "time.example:0",
        "time.example:x",
        "a b",
        "-x.example",
        "host:1:2",
    ] {
        assert!(bad.parse::<Server>().is_err(), "{bad:?}");
    }
}

#[test]
fn the_list_is_configured_then_dhcp_each_once_else_the_cloud_default() {
    let configured = [
        addr("192.0.2.1:123"),
        "time.example".parse().unwrap(),
        addr("192.0.2.1:123"),
    ];
    let dhcp = [
        Ipv4Addr::new(10, 0, 2, 2),
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(10, 0, 2, 2),
    ];
    let list: Vec<String> = server_list(&configured, &dhcp)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(list, ["192.0.2.1:123", "time.example:123", "10.0.2.2:123"]);
    let dhcp_only: Vec<String> = server_list(&[], &dhcp[..1])
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(dhcp_only, ["10.0.2.2:123"]);
    assert_eq!(server_list(&[], &[]), [addr("169.254.169.123:123")]);
}

#[test]
fn dhcp_servers_come_from_net_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.json");
    assert!(dhcp_servers(&path).is_empty(), "no file, no servers");
    let mut state = crate::net::NetState::default();
    for (name, ntp) in [
        ("eth0", vec!["10.0.2.2", "10.0.2.3"]),
        ("eth1", vec!["10.0.2.3", "bogus"]),
    ] {
        state.interfaces.insert(
            name.into(),
            crate::net::Interface {
                state: "bound".into(),
                ntp: ntp.into_iter().map(String::from).collect(),
                ..Default::default()
            },
        );
    }
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    assert_eq!(
        dhcp_servers(&path),
        [Ipv4Addr::new(10, 0, 2, 2), Ipv4Addr::new(10, 0, 2, 3)]
    );
    // A net.json of before option 42 (no `ntp`) still reads.
    std::fs::write(&path, r#"{"interfaces":{"eth0":{"state":"bound","mac":"","address":null,"gateway":null,"dns":[],"lease_seconds":null,"error":null}},"dns":[]}"#).unwrap();
    assert!(dhcp_servers(&path).is_empty());
}

#[test]
fn the_schedule_retries_fast_until_the_first_success() {
    assert_eq!(interval(false, 1), Duration::from_secs(2));
    assert_eq!(interval(false, 2), Duration::from_secs(4));
    assert_eq!(interval(false, 5), Duration::from_secs(32));
    assert_eq!(interval(false, 6), Duration::from_secs(64));
    assert_eq!(interval(false, 600), Duration::from_secs(64));
    assert_eq!(interval(true, 0), Duration::from_secs(1024));
    assert_eq!(interval(true, 9), Duration::from_secs(1024));
    assert_eq!(burst(false).samples, 1);
    assert_eq!(burst(true), Burst::default());
}

#[test]
fn settings_parse_and_check() {
    let defaults = TimeSettings::default();
    assert!(defaults.enabled);
    assert!(defaults.servers.is_empty());
    assert_eq!(defaults.step_threshold_ms, 128);
    let s: TimeSettings = toml::from_str(
        "servers = [\"169.254.169.123\", \"time.example:123\"]\nstep_threshold_ms = 500\n",
    )
    .unwrap();
    s.check().unwrap();
    assert_eq!(s.parsed_servers().len(), 2);
    assert!(toml::from_str::<TimeSettings>("server = [\"x\"]\n").is_err());
    let extra: TimeOverrides =
        toml::from_str("servers = [\"192.0.2.9\"]\nstep_threshold_ms = 1000\n").unwrap();
    let merged = s.with(&extra);
    assert_eq!(
        merged.servers,
        ["169.254.169.123", "time.example:123", "192.0.2.9"]
    );
    assert_eq!(merged.step_threshold_ms, 1000);
    assert!(merged.enabled);
    assert_eq!(
        s.with(&TimeOverrides::default()),
        s,
        "nothing given, nothing changed"
    );
    let off = TimeOverrides {
        enabled: Some(false),
        ..TimeOverrides::default()
    };
    assert!(!s.with(&off).enabled);
    let disabled = TimeSettings {
        enabled: false,
        ..TimeSettings::default()
    };
    let on = TimeOverrides {
        enabled: Some(true),
        ..TimeOverrides::default()
    };
    assert!(!disabled.with(&on).enabled, "user-data cannot turn it on");
    assert!(toml::from_str::<TimeOverrides>("servers = 1\n").is_err());
    assert!(toml::from_str::<TimeOverrides>("sever = []\n").is_err());
    let bad: TimeSettings = toml::from_str("servers = [\"a b\"]\n").unwrap();
    assert!(bad.check().unwrap_err().starts_with("time.servers[0]: "));
}

fn report(server: &str, correction: CorrectionKind) -> Report {
    Report {
        server: server.into(),
        offset_ms: 1.0,
        delay_ms: 0.5,
        stratum: 8,
        correction,
        at: 1_767_225_600,
    }
}

#[test]
fn an_error_is_news_once_until_it_changes() {
    let mut status = Status::new(Mode::Set, &TimeSettings::default());
    assert!(
        status.record(Err("timeout A".into()), 1),
        "the first failure"
    );
    assert!(!status.record(Err("timeout A".into()), 2), "the same again");
    assert_eq!(status.error_at, Some(2));
    assert!(status.record(Err("timeout B".into()), 3), "another error");
    assert!(status.record(Ok(report("192.0.2.1:123", CorrectionKind::Step)), 4));
    assert!(status.clock_set);
    assert_eq!(status.error, None);
    assert_eq!(status.last_success, Some(1_767_225_600));
    assert!(!status.record(Ok(report("192.0.2.1:123", CorrectionKind::None)), 5));
    assert!(!status.clock_set);
    assert!(
        status.record(Err("timeout B".into()), 6),
        "failing again after a success"
    );
    assert_eq!(status.state, "unsynced");
    assert!(status.last.is_some(), "the last success is kept");
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["server"], "192.0.2.1:123");
    assert_eq!(json["mode"], "set");
    assert_eq!(json["error"], "timeout B");

    let mut measuring = Status::new(Mode::MeasureOnly, &TimeSettings::default());
    measuring.record(Ok(report("192.0.2.1:123", CorrectionKind::None)), 1);
    let json = serde_json::to_value(&measuring).unwrap();
    assert_eq!(json["mode"], "measure-only");
    assert_eq!(json["clock_set"], false);
    assert_eq!(json["correction"], "none");
    let disabled = Status::new(
        Mode::Set,
        &TimeSettings {
            enabled: false,
            ..TimeSettings::default()
        },
    );
    assert_eq!(disabled.state, "disabled");
}

fn options() -> Options {
    Options {
        timeout: Duration::from_millis(500),
        burst: Burst {
            samples: 1,
            spacing: Duration::from_millis(5),
        },
        step_threshold: DEFAULT_STEP_THRESHOLD,
    }
}

#[tokio::test]
async fn measure_only_never_steps_or_slews() {
    let server = husk_ntp::testing::offset_server(SignedDuration::from_millis(30_000)).await;
    let clock = RecordingClock::default();
    let report = poll(&[server], &clock, Mode::MeasureOnly, &options())
        .await
        .unwrap();
    assert!(clock.corrections().is_empty());
    assert_eq!(report.correction, CorrectionKind::None);
    assert!((report.offset_ms - 30_000.0).abs() < 50.0, "{report:?}");
    assert_eq!(report.server, server.to_string());
    // The same server in Set mode: stepped, through the clock.
    let report = poll(&[server], &clock, Mode::Set, &options())
        .await
        .unwrap();
    assert_eq!(report.correction, CorrectionKind::Step);
    assert!(
        matches!(clock.corrections()[..], [Correction::Step(_)]),
        "{:?}",
        clock.corrections()
    );
}

/// README's `[time]`, as it is written there.
#[test]
fn the_documented_time_settings_parse() {
    let doc = include_str!("../../../README.md");
    let text = doc
        .split("```toml\n# /etc/husk/agent.toml\n[time]")
        .nth(1)
        .unwrap();
    let text = text.split("```").next().unwrap();
    let config = crate::config::AgentConfig::parse(&format!("[time]{text}")).unwrap();
    assert_eq!(config.time.servers, ["169.254.169.123", "time.example:123"]);
    assert_eq!(config.time.step_threshold_ms, 128);
}
