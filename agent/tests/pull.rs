//! Pulling from a registry through the real agent and huskctl: a scripted
//! registry (husk-testkit's fake) on 127.0.0.1, agent.toml's `[registry]`
//! naming it insecure, and the commands as a user types them: `pull`,
//! `image pull`, `run --pull`, and the API's answers to bad requests.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use husk_api::images::IMAGES_PULL_PATH;
use husk_api::{Client, ClientError, Method};
use husk_testkit::busybox_layer;
use husk_testkit::fake_registry::{Content, FakeRegistry, Fault, Image, Layer};
use serde_json::Value;

use common::{Machine, enter_cgroup2_namespace, start_refused, text};

/// The repository and tag the fake registry serves busybox under.
const REPOSITORY: &str = "library/busybox";

/// A fake registry serving busybox (one uncompressed layer) as
/// `library/busybox:latest`, linux/amd64 only.
fn registry() -> (FakeRegistry, Image) {
    let mut content = Content::new();
    let image = content.image(REPOSITORY, "latest", &[Layer::tar(busybox_layer())]);
    (FakeRegistry::start(content), image)
}

/// agent.toml's `[registry]` with `host` reached over plain HTTP.
fn insecure(host: &str) -> String {
    format!("[registry]\ninsecure = [\"{host}\"]\n")
}

/// `sha256:<hex>`'s first 12 hex digits, as the progress lines show a
/// layer.
fn short(digest: &str) -> &str {
    &digest.strip_prefix("sha256:").unwrap()[..12]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A first pull's plain lines (stdout is a pipe, not a terminal).
fn assert_first_pull(stdout: &str, reference: &str, image: &Image) {
    assert!(
        !stdout.contains('\r') && !stdout.contains('\x1b'),
        "plain lines, no bars: {stdout:?}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let layer = short(&image.layers[0]);
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("{reference}: {}, 1 layer, ", image.manifest)),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!("{layer}: pull complete (")) && lines[1].ends_with("MB)"),
        "{stdout}"
    );
    assert_eq!(lines[2], format!("Digest: {}", image.manifest), "{stdout}");
    assert_eq!(
        lines[3],
        format!("Status: downloaded {reference} ({})", image.config),
        "{stdout}"
    );
}

/// `verb REF` twice: the first downloads and lists the image, the second
/// finds the layer in the store and does not fetch it again.
fn pull_twice(verb: &[&str]) {
    let (fake, image) = registry();
    let host = fake.host();
    let m = Machine::start(&insecure(&host));
    let reference = format!("{host}/{REPOSITORY}:latest");
    let layer = &image.layers[0];

    let pull: Vec<&str> = verb.iter().copied().chain([reference.as_str()]).collect();
    let out = m.agent.huskctl(&pull);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{pull:?}: {stdout}{stderr}");
    assert_first_pull(&stdout, &reference, &image);
    assert_eq!(fake.blob_gets(layer), 1);

    let ls = m.agent.huskctl_ok(&["image", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 2, "{ls}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let repository = format!("{host}/{REPOSITORY}");
    assert_eq!(
        &row[..3],
        [repository.as_str(), "latest", short(&image.config)],
        "{ls}"
    );

    let again = m.agent.huskctl_ok(&pull);
    let lines: Vec<&str> = again.lines().collect();
    assert_eq!(lines.len(), 4, "{again}");
    assert_eq!(
        lines[1],
        format!("{}: already exists", short(layer)),
        "{again}"
    );
    assert!(!again.contains("pull complete"), "{again}");
    assert_eq!(lines[2], format!("Digest: {}", image.manifest), "{again}");
    assert_eq!(
        lines[3],
        format!(
            "Status: image is up to date for {reference} ({})",
            image.config
        ),
        "{again}"
    );
    assert_eq!(fake.blob_gets(layer), 1, "the layer is not fetched again");
    assert_eq!(m.agent.huskctl_ok(&["image", "ls"]).lines().count(), 2);

    let log = m.agent.stop();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains(&format!("pulled {reference}")), "{log}");
}

#[test]
fn pull_shows_plain_progress_and_reuses_layers() {
    pull_twice(&["pull"]);
}

#[test]
fn image_pull_is_the_same_command() {
    pull_twice(&["image", "pull"]);
}

#[test]
fn failed_pulls_say_why_and_the_agent_keeps_serving() {
    let (fake, _) = registry();
    let host = fake.host();
    let m = Machine::start(&insecure(&host));

    let err = m.agent.huskctl_err(&["pull", "Bad//Ref"]);
    assert!(err.contains("Bad//Ref"), "{err}");
    assert!(
        err.contains("(HTTP 400)"),
        "refused before streaming: {err}"
    );

    let missing = format!("{host}/{REPOSITORY}:nope");
    let err = m.agent.huskctl_err(&["pull", &missing]);
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains(&missing), "{err}");

    let err = m
        .agent
        .huskctl_err(&["pull", "--platform", "nonsense", &missing]);
    assert!(
        err.contains("nonsense") && err.contains("(HTTP 400)"),
        "{err}"
    );

    assert!(m.agent.huskctl_ok(&["health"]).starts_with("ok"));
    assert_eq!(m.agent.huskctl_ok(&["image", "ls"]).lines().count(), 1);
    let log = m.agent.stop();
    assert!(!log.contains("panicked"), "{log}");
}

/// A registry that speaks plain HTTP but is not listed as insecure: the
/// message says what to do, not only what TLS saw.
#[test]
fn a_plain_http_registry_not_listed_as_insecure_is_told_apart() {
    let (fake, _) = registry();
    // Another registry, not listed as insecure: only HTTPS would do.
    let (other, _) = registry();
    let m = Machine::start(&insecure(&fake.host()));

    let secure = format!("{}/{REPOSITORY}:latest", other.host());
    let started = Instant::now();
    let err = m.agent.huskctl_err(&["pull", &secure]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.contains(&other.host()), "{err}");
    assert!(err.contains("insecure"), "{err}");

    assert!(m.agent.huskctl_ok(&["health"]).starts_with("ok"));
    assert_eq!(m.agent.huskctl_ok(&["image", "ls"]).lines().count(), 1);
    let log = m.agent.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn concurrent_pulls_share_one_download() {
    let (fake, image) = registry();
    let host = fake.host();
    let layer = &image.layers[0];
    // busybox's ~2 MB at 400 kB/s: about 5 s, time enough for the
    // second pull to find the first one running.
    fake.fault(
        layer,
        Fault::Slow {
            bytes_per_sec: 400_000,
        },
    );
    let m = Machine::start(&insecure(&host));
    let reference = format!("{host}/{REPOSITORY}:latest");
    let spawn = || {
        Command::new(common::huskctl_bin())
            .arg("--socket")
            .arg(&m.agent.socket)
            .args(["pull", &reference])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    let first = spawn();
    let second = spawn();
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the slow layer was not slow: {:?}",
        started.elapsed()
    );
    for out in &outputs {
        let (stdout, stderr) = text(out);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(
            stdout.contains(&format!("{}: pull complete", short(layer))),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("Digest: {}\n", image.manifest)),
            "{stdout}"
        );
        assert!(stdout.contains("Status: downloaded "), "{stdout}");
    }
    assert_eq!(fake.blob_gets(layer), 1, "{:#?}", fake.requests());

    // A pull that joins one well under way (its layer downloading) shows
    // the same lines as the one it joined.
    m.agent.huskctl_ok(&["image", "rm", &reference]);
    m.agent.huskctl_ok(&["image", "gc"]);
    fake.clear_requests();
    let first = spawn();
    common::eventually(Duration::from_secs(20), "the layer's download", || {
        (fake.blob_gets(layer) == 1).then_some(())
    });
    let late = spawn();
    let [first, late] = [first, late].map(|child| {
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        stdout
    });
    assert_eq!(late, first, "the late pull missed lines");
    assert_eq!(fake.blob_gets(layer), 1, "{:#?}", fake.requests());

    let log = m.agent.stop();
    assert_eq!(
        log.matches("joining the pull already running").count(),
        2,
        "{log}"
    );
}

/// Kills whatever a run test leaves running (a failed assertion
/// included): the container's shim and cgroup.
struct Cleanup {
    root: PathBuf,
    run: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        common::kill_containers(&self.root, &self.run);
    }
}

#[test]
fn run_pulls_a_missing_image_as_its_policy_says() {
    if !enter_cgroup2_namespace("run_pulls_a_missing_image_as_its_policy_says") {
        return;
    }
    let (fake, image) = registry();
    let host = fake.host();
    let m = Machine::start(&insecure(&host));
    let _cleanup = Cleanup {
        root: m.dir.path().join("root"),
        run: m.dir.path().join("run"),
    };
    let reference = format!("{host}/{REPOSITORY}:latest");

    // Missing: pulled (progress on stderr), then run.
    let out = m
        .agent
        .huskctl(&["run", "--rm", &reference, "echo", "hello"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "hello\n", "only the container's output: {stderr}");
    assert!(
        stderr.contains(&format!("{}: pull complete", short(&image.layers[0]))),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("Digest: {}", image.manifest)),
        "{stderr}"
    );
    assert_eq!(fake.blob_gets(&image.layers[0]), 1);
    let manifest_gets = || {
        fake.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/manifests/"))
            .count()
    };
    let before = manifest_gets();

    // Present, the default policy (missing): no request to the registry.
    let out = m
        .agent
        .huskctl(&["run", "--rm", &reference, "echo", "again"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!((stdout.as_str(), stderr.as_str()), ("again\n", ""));
    assert_eq!(manifest_gets(), before);

    // --pull never on an image not there: refused, nothing fetched.
    let absent = format!("{host}/{REPOSITORY}:absent");
    let err = m
        .agent
        .huskctl_err(&["run", "--rm", "--pull", "never", &absent, "true"]);
    assert!(err.contains("no image"), "{err}");
    assert!(err.contains(&absent), "{err}");
    assert_eq!(manifest_gets(), before);

    // --pull always: asks the registry again (the layer is kept).
    let out = m
        .agent
        .huskctl(&["run", "--rm", "--pull", "always", &reference, "true"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(&format!("{}: already exists", short(&image.layers[0]))),
        "{stderr}"
    );
    assert!(manifest_gets() > before, "{:#?}", fake.requests());
    assert_eq!(fake.blob_gets(&image.layers[0]), 1);

    assert!(!m.agent.huskctl_ok(&["ps", "-a"]).contains(&host));
    let log = m.agent.stop();
    assert!(!log.contains("panicked"), "{log}");
}

/// A raw POST's status and `error` message.
fn refused(socket: &Path, body: &[u8]) -> (u16, String) {
    let result = runtime().block_on(Client::new(socket).request::<Value>(
        Method::POST,
        IMAGES_PULL_PATH,
        Some(body.to_vec()),
    ));
    match result {
        Err(e @ ClientError::Status { status, .. }) => {
            let message = e
                .agent_message()
                .unwrap_or_else(|| panic!("no JSON error: {e:?}"));
            (status, message)
        }
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// An amd64-only image (a manifest, no index) asked for as arm64: the
/// stream ends with the error, naming the platform, and the store is as
/// it was.
#[test]
fn the_pull_api_streams_a_platform_mismatch_as_its_last_line() {
    let (fake, image) = registry();
    let host = fake.host();
    let m = Machine::start(&insecure(&host));
    let reference = format!("{host}/{REPOSITORY}:latest");

    let body = serde_json::to_vec(&serde_json::json!({
        "reference": reference,
        "platform": "linux/arm64",
    }))
    .unwrap();
    let mut lines = Vec::new();
    runtime()
        .block_on(Client::new(&m.agent.socket).stream(
            Method::POST,
            IMAGES_PULL_PATH,
            Some(body),
            |line: Value| lines.push(line),
        ))
        .unwrap();
    let last = lines.last().expect("at least one line");
    assert_eq!(last["event"], "error", "{lines:#?}");
    let message = last["message"].as_str().unwrap();
    assert!(message.contains("linux/arm64"), "{message}");
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l["event"] != "error" && l["event"] != "done"),
        "{lines:#?}"
    );
    assert_eq!(m.agent.huskctl_ok(&["image", "ls"]).lines().count(), 1);
    assert_eq!(fake.blob_gets(&image.layers[0]), 0, "no layer fetched");

    assert!(m.agent.huskctl_ok(&["health"]).starts_with("ok"));
    let log = m.agent.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn the_pull_api_refuses_bad_requests_before_streaming() {
    let (fake, _) = registry();
    let m = Machine::start(&insecure(&fake.host()));
    for body in [
        &br#"{"reference": 5}"#[..],
        br#"{"reference": "busybox", "extra": 1}"#,
        br#"{"platform": "linux/amd64"}"#,
        br#"{"reference": "busybox", "platform": "linux"}"#,
        b"{not json",
        b"",
    ] {
        let (status, message) = refused(&m.agent.socket, body);
        assert_eq!(status, 400, "{}: {message}", String::from_utf8_lossy(body));
        assert!(!message.is_empty());
    }
    let (_, message) = refused(&m.agent.socket, br#"{"reference": "busybox", "extra": 1}"#);
    assert!(message.contains("extra"), "{message}");
    let (status, message) = refused(&m.agent.socket, br#"{"reference": "Bad//Ref"}"#);
    assert_eq!(status, 400);
    assert!(message.contains("Bad//Ref"), "{message}");
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());

    assert!(m.agent.huskctl_ok(&["health"]).starts_with("ok"));
    let log = m.agent.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn an_invalid_registry_table_stops_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[registry]\nmirrors = {\"docker.io\" = [\"ftp://x\"]}\n",
    )
    .unwrap();
    let out = start_refused(dir.path(), &config);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("ftp://x"), "{stderr}");
    assert!(stderr.contains(config.to_str().unwrap()), "{stderr}");
    assert!(!dir.path().join("agent.sock").exists());
}
