//! Basic and bearer-token authentication, and plain HTTP refused.

use husk_registry::config::AuthEntry;
use husk_testkit::fake_registry::{Auth, FakeRegistry};

use super::*;

/// `fake`'s configuration with these credentials for it.
fn with_credentials(fake: &FakeRegistry, user: &str, password: &str) -> RegistryConfig {
    let mut config = config_for(fake);
    config.auths.insert(
        fake.host(),
        AuthEntry {
            username: Some(user.into()),
            password: Some(password.into()),
            ..Default::default()
        },
    );
    config
}

async fn pull_with(
    fake: &FakeRegistry,
    store: &TestStore,
    config: RegistryConfig,
) -> Result<Pulled, RegistryError> {
    pull(
        &registries(config),
        store,
        &reference(fake, "latest"),
        &PullOptions::default(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_the_right_credentials() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start_with(content, Auth::basic("alice", "s3cret"));
    let store = TestStore::new();
    pull_with(&fake, &store, with_credentials(&fake, "alice", "s3cret"))
        .await
        .unwrap();
    // The manifest's first request is refused; from then on the
    // credentials go with every request, the layer's included.
    assert_eq!(
        fake.blob_gets(&image.layers[0]),
        1,
        "the layer is asked for with the credentials at once"
    );
    let refused = fake
        .requests()
        .iter()
        .filter(|r| r.authorization.is_none())
        .count();
    assert_eq!(refused, 1, "{:#?}", fake.requests());
    let basic = husk_testkit::fake_registry::basic_authorization("alice", "s3cret");
    for r in fake.requests() {
        assert!(
            r.authorization.is_none() || r.authorization.as_deref() == Some(basic.as_str()),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_wrong_credentials_is_refused() {
    let (content, _) = busybox_content();
    let fake = FakeRegistry::start_with(content, Auth::basic("alice", "s3cret"));
    let store = TestStore::new();
    let err = message(pull_with(&fake, &store, with_credentials(&fake, "alice", "guess")).await);
    assert_says(&err, &["refused the credentials of `alice`", &fake.host()]);
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_without_credentials_says_where_to_give_them() {
    let (content, _) = busybox_content();
    let fake = FakeRegistry::start_with(content, Auth::basic("alice", "s3cret"));
    let store = TestStore::new();
    let err = message(pull_with(&fake, &store, config_for(&fake)).await);
    assert_says(&err, &[&fake.host(), "registry.auths"]);
    store.assert_empty();
}

/// Every `/v2/` request carried no Authorization (the first, which
/// draws the challenge) or a bearer token, and at least one did; every
/// `/token` request carried `basic` (`None`: no Authorization).
fn assert_bearer_on_v2(fake: &FakeRegistry, basic: Option<&str>) {
    let requests = fake.requests();
    let mut bearers = 0;
    let mut tokens = 0;
    for r in &requests {
        let authorization = r.authorization.as_deref();
        if r.path.starts_with("/v2/") {
            match authorization {
                None => {}
                Some(a) if a.starts_with("Bearer ") => bearers += 1,
                Some(other) => panic!("{} sent with `{other}`", r.path),
            }
        } else if r.path.starts_with("/token") {
            tokens += 1;
            assert_eq!(authorization, basic, "{r:?}");
        }
    }
    assert!(
        bearers >= 3,
        "manifest, config and layer with a token: {requests:#?}"
    );
    assert_eq!(tokens, 1, "one token, kept for the pull: {requests:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_token_is_fetched_and_used() {
    let (content, _) = busybox_content();
    let fake = FakeRegistry::start_with(content, Auth::token());
    let store = TestStore::new();
    pull_with(&fake, &store, config_for(&fake)).await.unwrap();
    assert_bearer_on_v2(&fake, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_credentials_is_fetched_with_them_and_used() {
    let (content, _) = busybox_content();
    let fake = FakeRegistry::start_with(content, Auth::token_for("bob", "pw"));
    let store = TestStore::new();
    pull_with(&fake, &store, with_credentials(&fake, "bob", "pw"))
        .await
        .unwrap();
    let basic = husk_testkit::fake_registry::basic_authorization("bob", "pw");
    assert_bearer_on_v2(&fake, Some(&basic));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_service_that_refuses_the_credentials_is_named() {
    let (content, _) = busybox_content();
    let fake = FakeRegistry::start_with(content, Auth::token_for("bob", "pw"));
    let store = TestStore::new();
    let err = message(pull_with(&fake, &store, with_credentials(&fake, "bob", "nope")).await);
    assert_says(&err, &[&fake.host(), "refused the credentials", "bob"]);
    let err = message(pull_with(&fake, &store, config_for(&fake)).await);
    assert_says(&err, &[&fake.host(), "registry.auths"]);
    store.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_unless_the_registry_is_insecure() {
    let (content, _) = busybox_content();
    let fake = FakeRegistry::start(content);
    let store = TestStore::new();
    let err = message(pull_with(&fake, &store, RegistryConfig::default()).await);
    assert_says(&err, &[&fake.host(), "insecure"]);
    store.assert_empty();
}
