//! skopeo (Debian's) against the same registry: it refuses what we
//! refuse, and reads the same manifest digest where we succeed.

use std::process::{Command, Output, Stdio};

use husk_testkit::fake_registry::{FakeRegistry, Fault};

use super::*;

/// `skopeo copy docker://<fake>/library/busybox:latest oci:<dir>:x`, with
/// a blob info cache of its own (not root's shared one).
fn skopeo_copy(fake: &FakeRegistry, dir: &Path) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--retry-times=0"])
        .args(["--src-tls-verify=false", "--src-no-creds"])
        .arg(format!("docker://{}/{REPO}:latest", fake.host()))
        .arg(format!("oci:{}:x", dir.display()))
        .env("_CONTAINERS_ROOTLESS_UID", "65534")
        .env("XDG_DATA_HOME", cache.path())
        .stdin(Stdio::null())
        .output()
        .expect("the tests need skopeo (apt-get install skopeo)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_reads_the_manifest_digest_we_pull() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let store = TestStore::new();
    let pulled = pull_latest(&fake, &store).await.unwrap();
    assert_eq!(pulled.digest, image.manifest);

    let dir = tempfile::tempdir().unwrap();
    let output = skopeo_copy(&fake, &dir.path().join("oci"));
    assert!(output.status.success(), "skopeo: {output:?}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("oci/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], pulled.digest.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_also_refuses_a_layer_of_wrong_bytes() {
    let (content, image) = busybox_content();
    let fake = FakeRegistry::start(content);
    let layer = &image.layers[0];
    fake.fault(layer, Fault::WrongBytes);
    let store = TestStore::new();
    let ours = message(pull_latest(&fake, &store).await);
    assert_says(&ours, &[layer]);

    let dir = tempfile::tempdir().unwrap();
    let output = skopeo_copy(&fake, &dir.path().join("oci"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "skopeo took it: {stderr}");
    assert!(stderr.contains(layer.as_str()), "{stderr}");
}
