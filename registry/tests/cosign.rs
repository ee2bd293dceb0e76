//! cosign signatures: made in cosign's format by `husk_testkit::cosign`
//! (its keys, payloads, signature manifests by tag and by referrer),
//! published into testkit's fake registry and Debian's docker-registry,
//! and verified, or refused with the reason named.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use husk_registry::http::{HttpClient, tls_config};
use husk_registry::trust::cosign::{
    self, CosignError, KeyAlgorithm, PublicKey, SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE, Verified,
};
use husk_registry::{Reference, Registries, RegistryConfig};
use husk_testkit::cosign::{Sig, Signer, payload, pem, sig, signature_manifest};
use husk_testkit::fake_registry::{Content, FakeRegistry, Image, Layer, OCI_MANIFEST};
use husk_testkit::registry::{ManifestFormat, PushOptions, Registry, RegistryOptions};
use husk_testkit::sha256;
use serde_json::json;

const REPO: &str = "team/app";

/// The key `signer`'s `cosign.pub` holds, as husk-registry reads it.
trait Public {
    fn public(&self) -> PublicKey;
}

impl Public for Signer {
    fn public(&self) -> PublicKey {
        PublicKey::from_pem(&self.pem()).unwrap()
    }
}

/// Publishes `sigs` for `image` of [`REPO`] as `sha256-<hex>.sig`;
/// returns the signature manifest's digest.
fn by_tag(content: &mut Content, image: &Image, sigs: &[Sig]) -> String {
    husk_testkit::cosign::by_tag(content, REPO, image, sigs)
}

/// Publishes `sigs` for `image` of [`REPO`] as a referrer; returns its
/// digest.
fn by_referrer(content: &mut Content, image: &Image, sigs: &[Sig]) -> String {
    husk_testkit::cosign::by_referrer(content, REPO, image, sigs)
}

fn tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, name, data).unwrap();
    tar.into_inner().unwrap()
}

/// Two images of [`REPO`], `v1` and `v2`.
fn two_images() -> (Content, Image, Image) {
    let mut content = Content::new();
    let v1 = content.image(REPO, "v1", &[Layer::tar(tar("a", b"one"))]);
    let v2 = content.image(REPO, "v2", &[Layer::tar(tar("a", b"two"))]);
    (content, v1, v2)
}

/// What cosign writes as the docker-reference of `REPO` on `host`.
fn identity(host: &str) -> String {
    format!("{host}/{REPO}")
}

fn registries(host: &str) -> Registries {
    let config = RegistryConfig {
        insecure: vec![host.to_owned()],
        ..Default::default()
    };
    config.validate().unwrap();
    let http = HttpClient::with_timeouts(
        tls_config(&[], &[]).unwrap(),
        Duration::from_secs(5),
        Duration::from_secs(5),
    );
    Registries::with_http(config, http)
}

/// Verifies `digest` of `<host>/team/app:<tag>`.
async fn verify_at(
    host: &str,
    tag: &str,
    digest: &str,
    keys: &[PublicKey],
) -> Result<Verified, CosignError> {
    let registries = Arc::new(registries(host));
    let reference = Reference::parse(&format!("{host}/{REPO}:{tag}")).unwrap();
    let endpoint = registries.endpoints(&reference).pop().unwrap();
    cosign::verify(&registries, &endpoint, &reference, digest, keys).await
}

async fn verify(
    fake: &FakeRegistry,
    image: &Image,
    keys: &[PublicKey],
) -> Result<Verified, CosignError> {
    verify_at(&fake.host(), "v1", &image.manifest, keys).await
}

#[track_caller]
fn assert_says(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "`{part}` is not in: {text}");
    }
}

fn refusal(result: Result<Verified, CosignError>) -> CosignError {
    match result {
        Ok(verified) => panic!("verified: {verified:?}"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_signature_by_tag_verifies() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, _) = two_images();
    let signature = by_tag(
        &mut content,
        &v1,
        &[sig(&signer, payload(&identity(&fake.host()), &v1.manifest))],
    );
    fake.edit_content(|c| *c = content);

    let key = signer.public();
    assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
    let verified = verify(&fake, &v1, std::slice::from_ref(&key))
        .await
        .unwrap();
    assert_eq!(
        verified,
        Verified {
            key: key.describe(),
            docker_reference: identity(&fake.host()),
            found_by: "tag",
            signature_manifest: signature,
        }
    );
    assert!(key.describe().starts_with("ecdsa-p256 sha256:"));
    assert_eq!(key.describe().len(), "ecdsa-p256 sha256:".len() + 12);

    // The referrers API first (filtered to cosign's artifact type: the
    // fake's is on, and has none), then the tag.
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    let hex = &v1.manifest["sha256:".len()..];
    assert_eq!(
        paths[..2],
        [
            format!(
                "/v2/{REPO}/referrers/{}?artifactType=application%2Fvnd.dev.cosign.artifact.sig.v1%2Bjson",
                v1.manifest
            ),
            format!("/v2/{REPO}/manifests/sha256-{hex}.sig"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_signature_by_referrers_verifies() {
    let signer = Signer::ed25519();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, _) = two_images();
    let signature = by_referrer(
        &mut content,
        &v1,
        &[sig(&signer, payload(&identity(&fake.host()), &v1.manifest))],
    );
    fake.edit_content(|c| *c = content);

    let key = signer.public();
    assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
    assert!(key.describe().starts_with("ed25519 sha256:"));
    let other = Signer::ecdsa().public();
    let verified = verify(&fake, &v1, &[other, key.clone()]).await.unwrap();
    assert_eq!(verified.found_by, "referrers");
    assert_eq!(verified.key, key.describe());
    assert_eq!(verified.signature_manifest, signature);
    // Found there: no tag asked for.
    assert!(
        !fake.requests().iter().any(|r| r.path.ends_with(".sig")),
        "{:?}",
        fake.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_referrers_api_the_tag_is_used() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, _) = two_images();
    by_tag(
        &mut content,
        &v1,
        &[sig(&signer, payload(&identity(&fake.host()), &v1.manifest))],
    );
    content.set_referrers_api(false);
    fake.edit_content(|c| *c = content);
    let verified = verify(&fake, &v1, &[signer.public()]).await.unwrap();
    assert_eq!(verified.found_by, "tag");

    // A referrers answer that is no index, or a 500, does not hide the tag.
    fake.edit_content(|c| {
        c.set_referrers_api(true);
        c.referrers_index(REPO, &v1.manifest, b"{\"manifests\": 7}".to_vec());
    });
    let verified = verify(&fake, &v1, &[signer.public()]).await.unwrap();
    assert_eq!(verified.found_by, "tag");
    let (mut content, again, _) = two_images();
    assert_eq!(again, v1);
    by_tag(
        &mut content,
        &v1,
        &[sig(&signer, payload(&identity(&fake.host()), &v1.manifest))],
    );
    fake.edit_content(|c| *c = content);
    fake.referrers_fault(
        &v1.manifest,
        husk_testkit::fake_registry::Fault::Status {
            code: 500,
            times: 1,
        },
    );
    let verified = verify(&fake, &v1, &[signer.public()]).await.unwrap();
    assert_eq!(verified.found_by, "tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_by_another_key_is_refused_naming_the_keys() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, _) = two_images();
    let signature = by_tag(
        &mut content,
        &v1,
        &[sig(&signer, payload(&identity(&fake.host()), &v1.manifest))],
    );
    fake.edit_content(|c| *c = content);
    let keys = [Signer::ecdsa().public(), Signer::ed25519().public()];
    let err = refusal(verify(&fake, &v1, &keys).await);
    assert!(matches!(err, CosignError::NotVerified { .. }), "{err:?}");
    assert_says(
        &err.to_string(),
        &[
            &v1.manifest,
            &signature,
            "does not verify with any of the 2 keys",
            &keys[0].describe(),
            &keys[1].describe(),
        ],
    );
    assert!(!err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_replayed_from_another_image_is_refused() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, v2) = two_images();
    // v2's genuine signature, copied to v1's tag.
    by_tag(
        &mut content,
        &v1,
        &[sig(&signer, payload(&identity(&fake.host()), &v2.manifest))],
    );
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    assert!(matches!(err, CosignError::OtherDigest { .. }), "{err:?}");
    assert_says(
        &err.to_string(),
        &[
            &format!("is for {}, not {}", v2.manifest, v1.manifest),
            "another image",
            &signer.public().describe(),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_for_another_repository_is_refused() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, _) = two_images();
    let elsewhere = format!("{}/team/other", fake.host());
    by_referrer(
        &mut content,
        &v1,
        &[sig(&signer, payload(&elsewhere, &v1.manifest))],
    );
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    assert!(
        matches!(err, CosignError::OtherRepository { .. }),
        "{err:?}"
    );
    assert_says(
        &err.to_string(),
        &[&format!(
            "names repository `{elsewhere}`, not {}",
            identity(&fake.host())
        )],
    );
    // The same repository named with a tag is that repository.
    let (mut content, v1, _) = two_images();
    by_referrer(
        &mut content,
        &v1,
        &[sig(
            &signer,
            payload(&format!("{}:v1", identity(&fake.host())), &v1.manifest),
        )],
    );
    fake.edit_content(|c| *c = content);
    verify(&fake, &v1, &[signer.public()]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_payload_is_refused() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, v2) = two_images();
    // v2's payload with v1's signature: the manifest describes it right.
    let signature = signer.sign(&payload(&identity(&fake.host()), &v1.manifest));
    let forged = Sig {
        payload: payload(&identity(&fake.host()), &v2.manifest),
        signature,
    };
    by_tag(&mut content, &v2, &[forged]);
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v2, &[signer.public()]).await);
    assert!(matches!(err, CosignError::NotVerified { .. }), "{err:?}");
    assert_says(&err.to_string(), &["does not verify with the key"]);

    // The registry serves other bytes under the payload's digest.
    let (mut content, v1, _) = two_images();
    let good = payload(&identity(&fake.host()), &v1.manifest);
    let payload_digest = sha256(&good);
    by_tag(&mut content, &v1, &[sig(&signer, good.clone())]);
    let mut evil = good.clone();
    evil[10] ^= 1;
    content.blob_as(&payload_digest, evil.clone());
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    assert!(matches!(err, CosignError::WrongBlob { .. }), "{err:?}");
    assert_says(
        &err.to_string(),
        &[
            &payload_digest,
            &format!("the registry served other bytes, {}", sha256(&evil)),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_image_has_no_signature() {
    let fake = FakeRegistry::start(two_images().0);
    let (_, v1, _) = two_images();
    let keys = [Signer::ecdsa().public()];
    let err = refusal(verify(&fake, &v1, &keys).await);
    assert!(matches!(err, CosignError::NoSignature { .. }), "{err:?}");
    let hex = &v1.manifest["sha256:".len()..];
    assert_says(
        &err.to_string(),
        &[
            &format!("{}/{REPO}:v1@{}", fake.host(), v1.manifest),
            "no cosign signature found",
            "referrers: 0 cosign signature manifests",
            &format!("no tag sha256-{hex}.sig"),
        ],
    );
    fake.edit_content(|c| c.set_referrers_api(false));
    let err = refusal(verify(&fake, &v1, &keys).await).to_string();
    assert_says(&err, &["no referrers API (404)", "no tag sha256-"]);

    // No keys, or no digest, is the caller's mistake, named.
    let err = refusal(verify(&fake, &v1, &[]).await).to_string();
    assert_says(&err, &["no keys"]);
    let err = refusal(verify_at(&fake.host(), "v1", "v1", &keys).await).to_string();
    assert_says(&err, &["`v1` is not a sha256 digest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_are_refused_clearly() {
    let says = |text: &str| PublicKey::from_pem(text).unwrap_err().to_string();
    assert_says(&says("garbage"), &["not PEM"]);
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let rsa_pem = pem("PUBLIC KEY", rsa.public_key().as_der().unwrap().as_ref());
    assert_says(
        &says(&rsa_pem),
        &["an RSA key", "only ECDSA P-256 keys (cosign's) and Ed25519"],
    );
    let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
    let p384_pem = pem("PUBLIC KEY", p384.public_key().as_der().unwrap().as_ref());
    assert_says(&says(&p384_pem), &["an ECDSA key on P-384"]);
    assert_says(
        &says(&pem("ENCRYPTED SIGSTORE PRIVATE KEY", b"secret")),
        &["a private key", "never the private one"],
    );
    // A P-256 SubjectPublicKeyInfo whose point is not on the curve.
    let mut spki = Signer::ecdsa().spki();
    let last = spki.len() - 1;
    spki[last] ^= 0xff;
    assert_says(
        &says(&pem("PUBLIC KEY", &spki)),
        &["not a valid ecdsa-p256 key"],
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cosign.pub");
    let signer = Signer::ecdsa();
    std::fs::write(&path, format!("# cosign.pub\n{}", signer.pem())).unwrap();
    assert_eq!(PublicKey::from_file(&path).unwrap(), signer.public());
    std::fs::write(&path, "nonsense").unwrap();
    let err = PublicKey::from_file(&path).unwrap_err().to_string();
    assert_says(&err, &[&path.display().to_string(), "not PEM"]);
    let missing = dir.path().join("missing.pub");
    let err = PublicKey::from_file(&missing).unwrap_err().to_string();
    assert_says(&err, &["missing.pub"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payload_is_refused() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, _) = two_images();
    // A valid payload padded past 64 KiB (JSON allows the spaces), signed.
    let mut big = payload(&identity(&fake.host()), &v1.manifest);
    big.extend(std::iter::repeat_n(b' ', 70_000));
    by_tag(&mut content, &v1, &[sig(&signer, big)]);
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    assert!(
        matches!(err, CosignError::PayloadTooLarge { .. }),
        "{err:?}"
    );
    assert_says(&err.to_string(), &["70", "more than the 65536 allowed"]);

    // A descriptor that says little, a blob that is a lot: not read past
    // the limit.
    let (mut content, v1, _) = two_images();
    let good = payload(&identity(&fake.host()), &v1.manifest);
    let payload_digest = sha256(&good);
    by_tag(&mut content, &v1, &[sig(&signer, good)]);
    content.blob_as(&payload_digest, vec![b' '; 10 << 20]);
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    assert!(matches!(err, CosignError::WrongBlob { .. }), "{err:?}");
    assert_says(&err.to_string(), &["served more than 65536 bytes"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_base64_and_missing_annotations_are_named() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, _) = two_images();
    let good = payload(&identity(&fake.host()), &v1.manifest);
    by_tag(
        &mut content,
        &v1,
        &[Sig {
            payload: good,
            signature: "not base64!".into(),
        }],
    );
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    assert!(matches!(err, CosignError::BadBase64 { .. }), "{err:?}");
    assert_says(
        &err.to_string(),
        &["dev.cosignproject.cosign/signature", "not base64"],
    );

    // A simple-signing layer without the annotation (a keyless
    // signature's bundle alone, say), and a manifest with none.
    let (mut content, v1, _) = two_images();
    let good = payload(&identity(&fake.host()), &v1.manifest);
    let mut manifest: serde_json::Value = serde_json::from_slice(&signature_manifest(
        &mut |b| content.blob(b),
        &[sig(&signer, good)],
        None,
    ))
    .unwrap();
    manifest["layers"][0]["annotations"] = json!({"dev.sigstore.cosign/bundle": "{}"});
    let tag = cosign::signature_tag(&v1.manifest);
    content.manifest(REPO, &tag, OCI_MANIFEST, manifest.to_string().into_bytes());
    fake.edit_content(|c| *c = content.clone());
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    assert!(matches!(err, CosignError::Malformed { .. }), "{err:?}");
    assert_says(
        &err.to_string(),
        &["no `dev.cosignproject.cosign/signature` annotation"],
    );
    manifest["layers"][0]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
    content.manifest(REPO, &tag, OCI_MANIFEST, manifest.to_string().into_bytes());
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await).to_string();
    assert_says(
        &err,
        &["no layer of media type application/vnd.dev.cosign.simplesigning.v1+json"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_32_signatures_are_looked_at() {
    let signer = Signer::ecdsa();
    let stranger = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, _) = two_images();
    let id = identity(&fake.host());
    // 40 strangers' signatures, then the good one: not reached.
    let mut sigs: Vec<Sig> = (0..40)
        .map(|i| {
            let mut text = payload(&id, &v1.manifest);
            text.extend(std::iter::repeat_n(b' ', i));
            sig(&stranger, text)
        })
        .collect();
    sigs.push(sig(&signer, payload(&id, &v1.manifest)));
    by_tag(&mut content, &v1, &sigs);
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    let CosignError::NoneValid { failures, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(failures.len(), 32);
    assert_says(
        &err.to_string(),
        &[
            "only the first 32 signatures were looked at",
            "(8) ",
            "; and 24 more",
        ],
    );
    let blob_gets = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/blobs/"))
        .count();
    assert_eq!(blob_gets, 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_good_signature_among_bad_ones_is_enough() {
    let signer = Signer::ecdsa();
    let stranger = Signer::ed25519();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, v2) = two_images();
    let id = identity(&fake.host());
    // A referrer with a stranger's signature, and one for v2; the tag
    // has a replayed signature, then the good one.
    by_referrer(
        &mut content,
        &v1,
        &[sig(&stranger, payload(&id, &v1.manifest))],
    );
    by_tag(
        &mut content,
        &v1,
        &[
            sig(&signer, payload(&id, &v2.manifest)),
            sig(&signer, payload(&id, &v1.manifest)),
        ],
    );
    fake.edit_content(|c| *c = content.clone());
    let verified = verify(&fake, &v1, &[signer.public()]).await.unwrap();
    assert_eq!(verified.found_by, "tag");

    // Without the good one: every refusal, each named.
    by_tag(
        &mut content,
        &v1,
        &[sig(&signer, payload(&id, &v2.manifest))],
    );
    fake.edit_content(|c| *c = content);
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    assert!(matches!(err, CosignError::NoneValid { .. }), "{err:?}");
    assert_says(
        &err.to_string(),
        &[
            "no valid cosign signature",
            "referrers: 1 cosign signature manifest",
            "(1) the signature in layer",
            "does not verify with the key",
            "(2) the payload",
            &format!("is for {}", v2.manifest),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_failures_are_named_and_transient() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (mut content, v1, _) = two_images();
    let good = payload(&identity(&fake.host()), &v1.manifest);
    let payload_digest = sha256(&good);
    by_tag(&mut content, &v1, &[sig(&signer, good)]);
    fake.edit_content(|c| *c = content);
    fake.fault(
        &payload_digest,
        husk_testkit::fake_registry::Fault::Status {
            code: 503,
            times: 1,
        },
    );
    let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
    assert!(err.is_transient(), "{err:?}");
    assert_says(
        &err.to_string(),
        &[&format!("payload {payload_digest} of"), "503"],
    );
    // The next try gets it.
    verify(&fake, &v1, &[signer.public()]).await.unwrap();
}

/// testkit writes signatures in cosign's format on its own: its names
/// are the ones this crate reads.
#[test]
fn testkit_signs_with_the_names_cosign_uses() {
    use husk_testkit::cosign as made;
    assert_eq!(made::SIGNATURE_ANNOTATION, SIGNATURE_ANNOTATION);
    assert_eq!(made::SIGNATURE_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE);
    assert_eq!(made::SIMPLE_SIGNING_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE);
    let digest = sha256(b"image");
    assert_eq!(made::signature_tag(&digest), cosign::signature_tag(&digest));
}

#[test]
fn pem_and_spki_errors_say_what_the_text_is() {
    for (text, says) in [
        ("", "no `-----BEGIN PUBLIC KEY-----`"),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n",
            "no `-----END PUBLIC KEY-----`",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
            "not base64",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "not a SubjectPublicKeyInfo",
        ),
        (
            "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
            "an RSA public key: only ECDSA P-256",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "a certificate, not a public key",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END PUBLIC KEY-----\n",
            "has headers",
        ),
        (
            "-----BEGIN EC PARAMETERS-----\nAAAA\n-----END EC PARAMETERS-----\n",
            "a PEM `EC PARAMETERS`, not a `PUBLIC KEY`",
        ),
    ] {
        let err = PublicKey::from_pem(text).unwrap_err().to_string();
        assert!(err.contains(says), "{text:?}: {err}");
    }
    // SEQUENCE { SEQUENCE { OID 1.2.3.4 }, BIT STRING 00 01 }, and the
    // same with bytes after it.
    let unknown = [
        0x30, 0x0b, 0x30, 0x05, 0x06, 0x03, 0x2a, 0x03, 0x04, 0x03, 0x02, 0x00, 0x01,
    ];
    let err = PublicKey::from_spki_der(&unknown).unwrap_err().to_string();
    assert_says(&err, &["a key of algorithm 1.2.3.4"]);
    let mut trailing = unknown.to_vec();
    trailing.push(0);
    let err = PublicKey::from_spki_der(&trailing).unwrap_err().to_string();
    assert_says(&err, &["not one DER SEQUENCE"]);
    // The same key, as PEM or DER, is one key.
    let signer = Signer::ed25519();
    assert_eq!(
        PublicKey::from_spki_der(&signer.spki()).unwrap(),
        signer.public()
    );
}

#[test]
fn docker_hub_aliases_and_tags_name_the_same_repository() {
    use cosign::payload::{repository_of, same_repository};
    let nginx = Reference::parse("nginx:1.27").unwrap();
    assert_eq!(repository_of(&nginx), "docker.io/library/nginx");
    for same in [
        "index.docker.io/library/nginx",
        "docker.io/library/nginx",
        "registry-1.docker.io/library/nginx",
        "docker.io/nginx",
        "nginx",
        "index.docker.io/library/nginx:latest",
    ] {
        assert!(same_repository(&nginx, same), "{same}");
    }
    for other in [
        "index.docker.io/library/httpd",
        "ghcr.io/library/nginx",
        "index.docker.io/other/nginx",
        "",
        "Not A Reference",
    ] {
        assert!(!same_repository(&nginx, other), "{other}");
    }
    let local =
        Reference::parse(&format!("127.0.0.1:5000/{REPO}@sha256:{}", "0".repeat(64))).unwrap();
    assert!(same_repository(&local, "127.0.0.1:5000/team/app"));
    assert!(!same_repository(&local, "localhost:5000/team/app"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_that_are_not_cosign_image_signatures_are_refused() {
    let signer = Signer::ecdsa();
    let fake = FakeRegistry::start(Content::new());
    let (_, v1, _) = two_images();
    let id = identity(&fake.host());
    let digest = &v1.manifest;
    for (text, says) in [
        (
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"{id}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"atomic container signature"}},"optional":null}}"#
            ),
            "critical.type is `atomic container signature`, not `cosign container image signature`",
        ),
        (
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"{id}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature","also":"this"}},"optional":null}}"#
            ),
            "unknown field `also`",
        ),
        (
            format!(r#"{{"Critical":{{}},"digest":"{digest}"}}"#),
            "missing field `critical`",
        ),
        ("not json".to_string(), "not a simple-signing payload"),
    ] {
        let (mut content, v1, _) = two_images();
        by_tag(&mut content, &v1, &[sig(&signer, text.into_bytes())]);
        fake.edit_content(|c| *c = content);
        let err = refusal(verify(&fake, &v1, &[signer.public()]).await);
        assert!(matches!(err, CosignError::BadPayload { .. }), "{err:?}");
        assert_says(&err.to_string(), &["is not a cosign image signature", says]);
    }
    // Annotations (`optional`) are the signer's business.
    let (mut content, v1, _) = two_images();
    let annotated = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{id}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":{{"commit":"abc","n":1}}}}"#
    );
    by_tag(&mut content, &v1, &[sig(&signer, annotated.into_bytes())]);
    fake.edit_content(|c| *c = content);
    verify(&fake, &v1, &[signer.public()]).await.unwrap();
}

// --- Debian's docker-registry (distribution 2.8: no referrers API) ---

/// One request on its own connection; the status, headers and body.
fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, reply[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
}

/// Pushes a blob by distribution's monolithic upload (POST, then PUT
/// with the digest); returns its digest.
fn push_blob(addr: SocketAddr, repository: &str, blob: Vec<u8>) -> String {
    let digest = sha256(&blob);
    let (status, headers, body) = http(
        addr,
        "POST",
        &format!("/v2/{repository}/blobs/uploads/"),
        &[],
        &[],
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let location = header(&headers, "location");
    // An absolute URL (http://host:port/v2/…) or a path.
    let target = match location.find("/v2/") {
        Some(at) => &location[at..],
        None => panic!("upload location {location}"),
    };
    let separator = if target.contains('?') { '&' } else { '?' };
    let target = format!("{target}{separator}digest={}", digest.replace(':', "%3A"));
    let (status, _, body) = http(
        addr,
        "PUT",
        &target,
        &[("Content-Type", "application/octet-stream")],
        &blob,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_pushed_to_docker_registry_verifies() {
    let registry = Registry::start(RegistryOptions::default()).expect("start docker-registry");
    let addr = registry.addr();
    let host = registry.host();

    // The image, pushed by skopeo as OCI.
    let layout = tempfile::tempdir().unwrap();
    husk_testkit::registry::image_layout(layout.path(), "app", &[tar("hello", b"hello\n")])
        .unwrap();
    let opts = PushOptions {
        format: Some(ManifestFormat::Oci),
        ..registry.push_options()
    };
    let dest = registry.docker_ref(&format!("{REPO}:v1"));
    husk_testkit::registry::skopeo_copy(
        &format!("oci:{}:app", layout.path().display()),
        &dest,
        &opts,
    )
    .expect("skopeo pushes the image");
    let raw = husk_testkit::registry::skopeo_inspect_raw(&dest, &registry.push_options()).unwrap();
    let digest = sha256(&raw);

    // Its signature, pushed as cosign does to a registry without the
    // referrers API: payload and config blobs, then the manifest tagged
    // sha256-<hex>.sig.
    let signer = Signer::ecdsa();
    let sigs = [sig(&signer, payload(&identity(&host), &digest))];
    let manifest = signature_manifest(&mut |b| push_blob(addr, REPO, b), &sigs, None);
    let tag = cosign::signature_tag(&digest);
    let (status, headers, body) = http(
        addr,
        "PUT",
        &format!("/v2/{REPO}/manifests/{tag}"),
        &[("Content-Type", OCI_MANIFEST)],
        &manifest,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "docker-content-digest"), sha256(&manifest));

    let verified = verify_at(&host, "v1", &digest, &[signer.public()])
        .await
        .unwrap();
    assert_eq!(verified.found_by, "tag");
    assert_eq!(verified.signature_manifest, sha256(&manifest));
    assert_eq!(verified.docker_reference, identity(&host));

    let err = refusal(verify_at(&host, "v1", &digest, &[Signer::ed25519().public()]).await);
    assert!(matches!(err, CosignError::NotVerified { .. }), "{err:?}");
    // distribution 2.8 has no referrers API, and said so with a 404.
    let other = format!("sha256:{}", "0".repeat(64));
    let err = refusal(verify_at(&host, "v1", &other, &[signer.public()]).await).to_string();
    assert_says(&err, &["no referrers API (404)", "no tag sha256-0000"]);
}
