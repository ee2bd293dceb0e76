//! Pulls through Docker's bearer-token flow from a real peer: Debian's
//! docker-registry 2.8 on loopback (plain HTTP, anonymous; busybox
//! pushed into it with skopeo) behind the testkit's token proxy, which
//! issues tokens at `/token` and forwards `/v2/` requests that carry
//! one. (distribution's own token auth wants JWTs signed by a chain it
//! trusts; the proxy stands in for Docker Hub's auth.docker.io.) skopeo
//! reads through the same proxy, the peer client the pulls are compared
//! with. Needs the packages docker-registry and skopeo, and root (the
//! store unpacks with ownership).

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use common::TestStore;
use husk_registry::config::AuthEntry;
use husk_registry::{PullOptions, Pulled, Reference, Registries, RegistryConfig};
use husk_testkit::fake_registry::{RequestLog, basic_authorization};
use husk_testkit::registry::{
    PushOptions, Registry, RegistryOptions, Tls, image_layout, skopeo_copy, skopeo_inspect_raw,
};
use husk_testkit::token_proxy::TokenProxy;
use husk_testkit::{busybox_layer, sha256};
use serde_json::Value;

const BUSYBOX: &str = "team/busybox:1";
const USER: &str = "puller";
const PASSWORD: &str = "correct horse";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_through_the_token_service() {
    let (reg, pushed) = registry_with_busybox();
    let proxy = TokenProxy::start(reg.addr(), Some((USER.into(), PASSWORD.into())))
        .expect("start the token proxy");
    let name = format!("{}/{BUSYBOX}", proxy.host());
    let store = TestStore::new();

    let err = must_fail(config(&proxy, Some("wrong")), &store, &name).await;
    eprintln!("wrong password: {err}");
    assert!(err.starts_with(&format!("{}: ", proxy.host())), "{err}");
    assert!(
        err.contains("the token service refused the credentials of `puller`"),
        "{err}"
    );
    let log = proxy.requests();
    let wrong = basic_authorization(USER, "wrong");
    assert_eq!(authorizations(&log, "/token"), [Some(wrong.as_str())]);
    assert_eq!(authorizations(&log, "/v2/"), [None], "{log:?}");

    let err = must_fail(config(&proxy, None), &store, &name).await;
    eprintln!("no credentials: {err}");
    assert!(err.starts_with(&format!("{}: ", proxy.host())), "{err}");
    assert!(
        err.contains("the token service wants credentials; give them in registry.auths"),
        "{err}"
    );
    store.assert_untouched();

    proxy.clear_requests();
    let pulled = must_pull(config(&proxy, Some(PASSWORD)), &store, &name).await;
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(pulled.name, name);
    assert_eq!((pulled.layers_fetched, pulled.image.layers), (1, 1));
    let busybox = store.file(&pulled, "bin/busybox").expect("bin/busybox");
    assert!(busybox == std::fs::read("/bin/busybox").unwrap());

    // One token, asked for with the credentials, for the repository's
    // pulls; one 401 to learn where to ask; the rest with the token.
    let log = proxy.requests();
    eprintln!("{log:#?}");
    let good = basic_authorization(USER, PASSWORD);
    assert_eq!(authorizations(&log, "/token"), [Some(good.as_str())]);
    let token_request = log.iter().position(|r| r.path.starts_with("/token"));
    let token_path = &log[token_request.unwrap()].path;
    assert!(token_path.contains("service=husk-test"), "{token_path}");
    assert!(
        token_path.contains("scope=repository%3Ateam%2Fbusybox%3Apull"),
        "{token_path}"
    );
    let v2: Vec<&RequestLog> = log.iter().filter(|r| r.path.starts_with("/v2/")).collect();
    assert!(v2[0].authorization.is_none(), "{log:?}");
    assert!(log[0].path.starts_with("/v2/") && token_request == Some(1));
    let bearers: Vec<&str> = v2[1..]
        .iter()
        .map(|r| r.authorization.as_deref().expect("a token"))
        .collect();
    assert!(
        bearers
            .iter()
            .all(|b| b.starts_with("Bearer ") && *b == bearers[0])
    );
    let gets: Vec<&str> = v2[1..]
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path.as_str())
        .collect();
    for wanted in [
        "/v2/team/busybox/manifests/1".to_string(),
        format!("/v2/team/busybox/blobs/{}", pushed.config),
        format!("/v2/team/busybox/blobs/{}", pushed.layer),
    ] {
        assert!(gets.contains(&wanted.as_str()), "{wanted} in {gets:?}");
    }

    // A proxy that gives tokens to anyone: no credentials needed.
    let anonymous = TokenProxy::start(reg.addr(), None).expect("start the token proxy");
    let name = format!("{}/{BUSYBOX}", anonymous.host());
    let store = TestStore::new();
    let pulled = must_pull(config(&anonymous, None), &store, &name).await;
    assert_eq!(pulled.digest, pushed.digest);
    assert!(store.file(&pulled, "bin/busybox").is_some());
    let log = anonymous.requests();
    assert_eq!(authorizations(&log, "/token"), [None]);
    assert!(
        log.iter()
            .filter(|r| r.path.starts_with("/v2/"))
            .skip(1)
            .all(|r| r
                .authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer "))),
        "{log:?}"
    );
}

/// skopeo, through the same proxy: what it reads is what the registry
/// has, with one token asked for with its credentials.
#[test]
fn skopeo_reads_through_the_token_service() {
    let (reg, pushed) = registry_with_busybox();
    let proxy = TokenProxy::start(reg.addr(), Some((USER.into(), PASSWORD.into())))
        .expect("start the token proxy");
    let image = format!("docker://{}/{BUSYBOX}", proxy.host());
    let creds = format!("{USER}:{PASSWORD}");

    let inspected = skopeo(&["inspect", "--tls-verify=false", "--creds", &creds, &image])
        .expect("skopeo inspect through the proxy");
    let inspected: Value = serde_json::from_slice(&inspected).expect("JSON");
    assert_eq!(inspected["Digest"], pushed.digest.as_str(), "{inspected}");
    assert_eq!(inspected["Architecture"], "amd64", "{inspected}");
    assert_eq!(inspected["Layers"][0], pushed.layer.as_str(), "{inspected}");
    let log = proxy.requests();
    let good = basic_authorization(USER, PASSWORD);
    let tokens = authorizations(&log, "/token");
    assert!(
        !tokens.is_empty() && tokens.iter().all(|a| *a == Some(good.as_str())),
        "{log:#?}"
    );
    let bearer = |r: &&RequestLog| {
        r.authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer "))
    };
    let with_token: Vec<&str> = log
        .iter()
        .filter(|r| r.path.starts_with("/v2/team/"))
        .filter(bearer)
        .map(|r| r.path.as_str())
        .collect();
    let config = format!("/v2/team/busybox/blobs/{}", pushed.config);
    assert!(
        with_token.contains(&"/v2/team/busybox/manifests/1"),
        "{log:#?}"
    );
    assert!(with_token.contains(&config.as_str()), "{log:#?}");

    let opts = PushOptions {
        tls: Tls::Insecure,
        creds: Some((USER.into(), PASSWORD.into())),
        ..PushOptions::default()
    };
    let raw = skopeo_inspect_raw(&image, &opts).expect("skopeo inspect --raw through the proxy");
    assert!(raw == pushed.raw, "the manifest through the proxy differs");

    // The layer too, as skopeo copies it out.
    let out = tempfile::tempdir().unwrap();
    let dest = format!("dir:{}", out.path().display());
    let copy = [
        "copy",
        "--retry-times=0",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &image,
        &dest,
    ];
    skopeo(&copy).expect("skopeo copy through the proxy");
    let layer = std::fs::read(out.path().join(&pushed.layer["sha256:".len()..])).unwrap();
    assert_eq!(sha256(&layer), pushed.layer);

    let wrong = PushOptions {
        creds: Some((USER.into(), "wrong".into())),
        ..opts.clone()
    };
    let err = skopeo_inspect_raw(&image, &wrong).expect_err("a wrong password");
    eprintln!("skopeo, wrong password: {err}");
    // containers/image on the token service's 401, and its message.
    let refusal = "unable to retrieve auth token: invalid username/password: unauthorized: \
                   bad credentials";
    assert!(err.to_string().contains(refusal), "{err}");
}

// --- helpers ---

/// busybox pushed to `team/busybox:1` of a plain, anonymous registry.
struct Pushed {
    digest: String,
    raw: Vec<u8>,
    config: String,
    layer: String,
}

fn registry_with_busybox() -> (Registry, Pushed) {
    let reg = Registry::start(RegistryOptions::default()).expect("start docker-registry");
    let layout = tempfile::tempdir().unwrap();
    image_layout(layout.path(), "img", &[busybox_layer()]).unwrap();
    let src = format!("oci:{}:img", layout.path().display());
    skopeo_copy(&src, &reg.docker_ref(BUSYBOX), &reg.push_options()).expect("skopeo copy");
    let raw = skopeo_inspect_raw(&reg.docker_ref(BUSYBOX), &reg.push_options())
        .expect("skopeo inspect --raw");
    let manifest: Value = serde_json::from_slice(&raw).expect("a JSON manifest");
    let digest_of = |v: &Value| v["digest"].as_str().expect("a digest").to_owned();
    let pushed = Pushed {
        digest: sha256(&raw),
        config: digest_of(&manifest["config"]),
        layer: digest_of(&manifest["layers"][0]),
        raw,
    };
    (reg, pushed)
}

/// The proxy as an insecure (plain HTTP) registry, with `USER` and this
/// password for it, or no credentials.
fn config(proxy: &TokenProxy, password: Option<&str>) -> RegistryConfig {
    let auths = password.map(|password| {
        let entry = AuthEntry {
            username: Some(USER.into()),
            password: Some(password.into()),
            ..AuthEntry::default()
        };
        (proxy.host(), entry)
    });
    RegistryConfig {
        insecure: vec![proxy.host()],
        auths: auths.into_iter().collect(),
        ..RegistryConfig::default()
    }
}

/// The Authorization of each request whose path starts with `prefix`.
fn authorizations<'a>(log: &'a [RequestLog], prefix: &str) -> Vec<Option<&'a str>> {
    log.iter()
        .filter(|r| r.path.starts_with(prefix))
        .map(|r| r.authorization.as_deref())
        .collect()
}

/// `skopeo --insecure-policy ARGS…`: its stdout, or an error with its
/// output.
fn skopeo(args: &[&str]) -> Result<Vec<u8>, String> {
    let output = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run skopeo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "skopeo {args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output.stdout)
}

async fn must_pull(config: RegistryConfig, store: &TestStore, reference: &str) -> Pulled {
    let pulled = pull(config, store, reference).await;
    pulled.unwrap_or_else(|e| panic!("pull {reference}: {e}"))
}

async fn must_fail(config: RegistryConfig, store: &TestStore, reference: &str) -> String {
    pull(config, store, reference)
        .await
        .expect_err("the pull is refused")
}

async fn pull(
    config: RegistryConfig,
    store: &TestStore,
    reference: &str,
) -> Result<Pulled, String> {
    let registries = Arc::new(Registries::new(config).expect("a valid registry config"));
    let reference = Reference::parse(reference).expect("a reference");
    let options = PullOptions::default();
    husk_registry::pull(registries, Arc::clone(&store.store), &reference, &options)
        .await
        .map_err(|e| e.to_string())
}
