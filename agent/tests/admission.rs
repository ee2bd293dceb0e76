//! The admission policy through the real agent and huskctl: agent.toml's
//! `[policy]` written as an operator would, testkit's fake registry on
//! 127.0.0.1 (plain HTTP, listed as insecure), cosign signatures made by
//! `husk_testkit::cosign`, and a tag repository made with the husk-image
//! command line as docs/UPDATES.md shows it. Each refusal is read from
//! what huskctl prints, and checked to have cost no layer (or, for what
//! the policy alone decides, no request at all).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use husk_testkit::cosign::{Signer, by_referrer, by_tag, payload, sig};
use husk_testkit::fake_registry::{Content, FakeRegistry, Image, Layer};
use husk_testkit::sha256;
use serde_json::Value;

use common::{Machine, start_refused, text};

/// The repository the images are in.
const REPO: &str = "team/app";

/// An uncompressed layer of one root-owned file.
fn layer(name: &str, data: &[u8]) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    tar.append_data(&mut header, name, data).unwrap();
    Layer::tar(tar.into_inner().unwrap())
}

/// A fake registry serving two images of [`REPO`], `v1` and `v2`, and
/// `other/app:v1`.
fn registry() -> (FakeRegistry, Image, Image) {
    let mut content = Content::new();
    let v1 = content.image(REPO, "v1", &[layer("version", b"one\n")]);
    let v2 = content.image(REPO, "v2", &[layer("version", b"two\n")]);
    content.image("other/app", "v1", &[layer("version", b"other\n")]);
    (FakeRegistry::start(content), v1, v2)
}

/// agent.toml: the fake registry over plain HTTP, and this `[policy]`.
fn agent_toml(host: &str, policy: &str) -> String {
    format!("[registry]\ninsecure = [\"{host}\"]\n\n[policy]\n{policy}\n")
}

/// How a key is named in messages: its algorithm, and the first 12 hex
/// digits of the SHA-256 of its SubjectPublicKeyInfo.
fn describe(signer: &Signer) -> String {
    let digest = sha256(&signer.spki());
    format!("ecdsa-p256 {}", &digest[.."sha256:".len() + 12])
}

#[track_caller]
fn assert_says(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "`{part}` is not in: {text}");
    }
}

/// `huskctl image ls` shows no image.
#[track_caller]
fn assert_no_images(m: &Machine) {
    let ls = m.agent.huskctl_ok(&["image", "ls"]);
    assert_eq!(ls.lines().count(), 1, "only the heading: {ls}");
}

/// `huskctl pull REF`'s stdout, asserting success.
fn pull(m: &Machine, reference: &str) -> String {
    let out = m.agent.huskctl(&["pull", reference]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "pull {reference}: {stdout}{stderr}");
    stdout
}

/// `huskctl pull REF`'s stderr, asserting it failed, and that it printed
/// no progress of a download.
fn refused(m: &Machine, reference: &str) -> String {
    let out = m.agent.huskctl(&["pull", reference]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "pull {reference}: {stdout}{stderr}"
    );
    // What it said, for `--nocapture`.
    print!("pull {reference}:\n{stdout}{stderr}");
    assert!(
        !stdout.contains("pull complete") && !stdout.contains("Digest:"),
        "{stdout}"
    );
    stderr
}

/// `huskctl image inspect REF`'s manifest digest and image id.
fn stored(m: &Machine, reference: &str) -> (String, String) {
    let details: Value =
        serde_json::from_str(&m.agent.huskctl_ok(&["image", "inspect", reference])).unwrap();
    (
        details["manifest"].as_str().unwrap().to_owned(),
        details["id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_deny_rule_refuses_before_any_request() {
    let (fake, _, _) = registry();
    let host = fake.host();
    // The first rule allows the registry; the second, which matches too,
    // denies the repository: a deny among the matching rules wins.
    let m = Machine::start(&agent_toml(
        &host,
        &format!(
            "[[policy.rules]]\nregistry = \"{host}\"\n\n[[policy.rules]]\nregistry = \"{host}\"\nrepository = \"{REPO}\"\naction = \"deny\"\n"
        ),
    ));
    let reference = format!("{host}/{REPO}:v1");
    let err = refused(&m, &reference);
    assert_says(
        &err,
        &[
            "refused by the admission policy",
            &format!("agent.toml policy.rules[1] ({host}/{REPO})"),
            &format!("{host}/{REPO} is denied"),
        ],
    );
    assert!(
        fake.requests().is_empty(),
        "the registry was asked: {:#?}",
        fake.requests()
    );
    assert_no_images(&m);

    // Another repository of the registry: allowed by the first rule.
    let out = pull(&m, &format!("{host}/other/app:v1"));
    assert!(out.contains("Status: downloaded"), "{out}");
    let log = m.agent.stop();
    assert!(
        log.contains(&format!(
            "pull {reference}: refused by the admission policy"
        )),
        "{log}"
    );
}

#[test]
fn a_default_deny_admits_only_what_a_rule_allows() {
    let (fake, v1, _) = registry();
    let host = fake.host();
    let m = Machine::start(&agent_toml(
        &host,
        &format!(
            "default = \"deny\"\n\n[[policy.rules]]\nregistry = \"{host}\"\nrepository = \"team/*\"\n"
        ),
    ));
    let allowed = format!("{host}/{REPO}:v1");
    let out = pull(&m, &allowed);
    assert_says(
        &out,
        &[
            &format!("Digest: {}", v1.manifest),
            &format!("Status: downloaded {allowed}"),
        ],
    );

    fake.clear_requests();
    let other = format!("{host}/other/app:v1");
    let err = refused(&m, &other);
    assert_says(
        &err,
        &[
            "refused by the admission policy: agent.toml policy.default",
            &format!("no rule allows {host}/other/app"),
        ],
    );
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());
    // Docker Hub too: no rule names it.
    let err = refused(&m, "busybox:latest");
    assert_says(
        &err,
        &["agent.toml policy.default", "no rule allows busybox"],
    );
    let ls = m.agent.huskctl_ok(&["image", "ls"]);
    assert_eq!(ls.lines().count(), 2, "{ls}");
    assert!(ls.contains(&format!("{host}/{REPO}")), "{ls}");
}

#[test]
fn require_digest_refuses_a_tag_and_pulls_the_digest() {
    let (fake, v1, _) = registry();
    let host = fake.host();
    let m = Machine::start(&agent_toml(
        &host,
        &format!("[[policy.rules]]\nregistry = \"{host}\"\nrequire_digest = true\n"),
    ));
    let err = refused(&m, &format!("{host}/{REPO}:v1"));
    assert_says(
        &err,
        &[
            &format!("agent.toml policy.rules[0] ({host})"),
            "only references by digest are allowed",
            &format!("`{host}/{REPO}@sha256:"),
        ],
    );
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());
    assert_no_images(&m);

    let by_digest = format!("{host}/{REPO}@{}", v1.manifest);
    let out = pull(&m, &by_digest);
    assert_says(
        &out,
        &[
            &format!("Digest: {}", v1.manifest),
            &format!("Status: downloaded {by_digest}"),
        ],
    );
    assert_eq!(
        stored(&m, &by_digest),
        (v1.manifest.clone(), v1.config.clone())
    );
}

/// Nothing of the image was fetched: neither its config nor its layer.
#[track_caller]
fn assert_nothing_fetched(fake: &FakeRegistry, image: &Image) {
    assert_eq!(fake.blob_gets(&image.config), 0, "{:#?}", fake.requests());
    assert_eq!(
        fake.blob_gets(&image.layers[0]),
        0,
        "{:#?}",
        fake.requests()
    );
}

#[test]
fn require_signature_wants_a_signature_of_the_image_by_its_key() {
    let (fake, v1, v2) = registry();
    let host = fake.host();
    let signer = Signer::ecdsa();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("cosign.pub");
    std::fs::write(&key, signer.pem()).unwrap();
    let m = Machine::start(&agent_toml(
        &host,
        &format!(
            "[[policy.rules]]\nregistry = \"{host}\"\nrepository = \"team/*\"\nrequire_signature = [\"{}\"]\n",
            key.display()
        ),
    ));
    let rule = format!("agent.toml policy.rules[0] ({host}/team/*)");
    let reference = format!("{host}/{REPO}:v1");
    let identity = format!("{host}/{REPO}");

    // Unsigned.
    let err = refused(&m, &reference);
    let hex = &v1.manifest["sha256:".len()..];
    assert_says(
        &err,
        &[
            &format!("refused by the admission policy: {rule}: "),
            &format!("{reference}@{}", v1.manifest),
            "no cosign signature found",
            "referrers: 0 cosign signature manifests",
            &format!("no tag sha256-{hex}.sig"),
        ],
    );
    assert_nothing_fetched(&fake, &v1);
    assert_no_images(&m);

    // Signed, by another key.
    let stranger = Signer::ecdsa();
    fake.edit_content(|c| {
        by_tag(
            c,
            REPO,
            &v1,
            &[sig(&stranger, payload(&identity, &v1.manifest))],
        )
    });
    let err = refused(&m, &reference);
    assert_says(
        &err,
        &[&rule, "does not verify with the key", &describe(&signer)],
    );
    assert!(!err.contains(&describe(&stranger)), "{err}");

    // By the key, but for v2: a signature replayed onto v1.
    fake.edit_content(|c| {
        by_tag(
            c,
            REPO,
            &v1,
            &[sig(&signer, payload(&identity, &v2.manifest))],
        )
    });
    let err = refused(&m, &reference);
    assert_says(
        &err,
        &[
            &rule,
            &format!("is for {}, not {}", v2.manifest, v1.manifest),
            "another image",
        ],
    );
    assert_nothing_fetched(&fake, &v1);
    assert_nothing_fetched(&fake, &v2);
    assert_no_images(&m);

    // By the key, of v1 (cosign's tag form).
    fake.edit_content(|c| {
        by_tag(
            c,
            REPO,
            &v1,
            &[sig(&signer, payload(&identity, &v1.manifest))],
        )
    });
    let out = pull(&m, &reference);
    let verified = format!(
        "verified: {} signed by {} (found by tag) ({rule})",
        v1.manifest,
        describe(&signer)
    );
    // Verified before the image is resolved (its config fetched).
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], verified, "{out}");
    assert!(
        lines[1].starts_with(&format!("{reference}: {}, 1 layer", v1.manifest)),
        "{out}"
    );
    assert_says(&out, &[&format!("Digest: {}", v1.manifest)]);
    assert_eq!(
        stored(&m, &reference),
        (v1.manifest.clone(), v1.config.clone())
    );
    assert_eq!(fake.blob_gets(&v1.layers[0]), 1);
    // The signature manifest was read by its tag, before the image's
    // config and layer.
    let requests = fake.requests();
    let at = |path: &str| requests.iter().rposition(|r| r.path == path);
    let tag = at(&format!("/v2/{REPO}/manifests/sha256-{hex}.sig")).expect("the .sig tag read");
    let config = at(&format!("/v2/{REPO}/blobs/{}", v1.config)).expect("the config read");
    let layer = at(&format!("/v2/{REPO}/blobs/{}", v1.layers[0])).expect("the layer read");
    assert!(tag < config && config < layer, "{requests:#?}");

    // v2, unsigned, is still refused.
    let err = refused(&m, &format!("{host}/{REPO}:v2"));
    assert_says(&err, &[&rule, "no cosign signature found"]);
    assert_nothing_fetched(&fake, &v2);
}

#[test]
fn require_signature_takes_a_key_as_pem_text() {
    let (fake, v1, v2) = registry();
    let host = fake.host();
    let signer = Signer::ecdsa();
    // The key inline, as a TOML multi-line literal string.
    let m = Machine::start(&agent_toml(
        &host,
        &format!(
            "[[policy.rules]]\nregistry = \"{host}\"\nrequire_signature = ['''\n{}''']\n",
            signer.pem()
        ),
    ));
    let rule = format!("agent.toml policy.rules[0] ({host})");
    let identity = format!("{host}/{REPO}");
    // Published as a referrer (cosign's OCI 1.1 form).
    fake.edit_content(|c| {
        by_referrer(
            c,
            REPO,
            &v1,
            &[sig(&signer, payload(&identity, &v1.manifest))],
        )
    });
    let reference = format!("{host}/{REPO}:v1");
    let out = pull(&m, &reference);
    assert_says(
        &out,
        &[
            &format!(
                "verified: {} signed by {} (found by referrers) ({rule})",
                v1.manifest,
                describe(&signer)
            ),
            &format!("Digest: {}", v1.manifest),
        ],
    );
    assert!(
        !fake.requests().iter().any(|r| r.path.ends_with(".sig")),
        "found by referrers: no tag asked for: {:#?}",
        fake.requests()
    );
    let err = refused(&m, &format!("{host}/{REPO}:v2"));
    assert_says(&err, &[&rule, "no cosign signature found"]);
    assert_nothing_fetched(&fake, &v2);
    let ls = m.agent.huskctl_ok(&["image", "ls"]);
    assert_eq!(ls.lines().count(), 2, "{ls}");
}

/// A publisher's tag repository, made with husk-image as docs/UPDATES.md
/// shows: `keys/`, `tags/`, and `root.json`, the machine's pinned copy
/// of `tags/root.json`.
struct Tags {
    dir: tempfile::TempDir,
}

impl Tags {
    fn husk_image(&self, args: &[&str]) -> String {
        let out = Command::new(common::husk_image_bin())
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "husk-image {args:?}: {stdout}{stderr}"
        );
        stdout
    }

    fn new() -> Self {
        let tags = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for role in ["root", "targets", "snapshot", "timestamp"] {
            tags.husk_image(&["keygen", "--out", &format!("keys/{role}.key")]);
        }
        tags.husk_image(&[
            "repo-init",
            "--repo",
            "tags",
            "--root-key",
            "keys/root.key",
            "--targets-key",
            "keys/targets.key",
            "--snapshot-key",
            "keys/snapshot.key",
            "--timestamp-key",
            "keys/timestamp.key",
        ]);
        std::fs::copy(
            tags.path().join("tags/root.json"),
            tags.path().join("root.json"),
        )
        .unwrap();
        tags
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `husk-image trust-tag` of `REF@digest`s, `extra` flags first.
    fn trust(&self, extra: &[&str], tags: &[&str]) -> String {
        let mut args = vec![
            "trust-tag",
            "--repo",
            "tags",
            "--key",
            "keys/targets.key",
            "--key",
            "keys/snapshot.key",
            "--key",
            "keys/timestamp.key",
        ];
        args.extend(extra);
        args.extend(tags);
        self.husk_image(&args)
    }

    fn url(&self) -> String {
        format!("file://{}/tags/", self.path().display())
    }

    fn timestamp(&self) -> PathBuf {
        self.path().join("tags/metadata/timestamp.json")
    }

    /// agent.toml's rule: `host`'s images must have fresh tags.
    fn rule(&self, host: &str) -> String {
        format!(
            "[[policy.rules]]\nregistry = \"{host}\"\nrepository = \"{REPO}\"\nrequire_fresh = {{ repository = \"{}\", root = \"{}\" }}\n",
            self.url(),
            self.path().join("root.json").display()
        )
    }
}

#[test]
fn require_fresh_pulls_the_trusted_digest_whatever_the_registry_says() {
    let (fake, v1, v2) = registry();
    let host = fake.host();
    let tags = Tags::new();
    let reference = format!("{host}/{REPO}:v1");
    let out = tags.trust(&[], &[&format!("{reference}@{}", v1.manifest)]);
    assert!(
        out.contains(&format!("tags/{reference} → {}", v1.manifest)),
        "{out}"
    );
    let m = Machine::start(&agent_toml(&host, &tags.rule(&host)));
    let rule = format!("agent.toml policy.rules[0] ({host}/{REPO})");
    let verified = format!(
        "verified: tag is {} per {} ({rule})",
        v1.manifest,
        tags.url()
    );

    let out = pull(&m, &reference);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], verified, "{out}");
    assert!(
        lines[1].starts_with(&format!(
            "{reference}@{}: {}, 1 layer",
            v1.manifest, v1.manifest
        )),
        "{out}"
    );
    assert_says(&out, &[&format!("Digest: {}", v1.manifest)]);
    assert_eq!(
        stored(&m, &reference),
        (v1.manifest.clone(), v1.config.clone())
    );

    // Someone with push rights moves the registry's tag to v2.
    fake.edit_content(|c| c.tag(REPO, "v1", &v2.manifest));
    m.agent.huskctl_ok(&["image", "rm", &reference]);
    fake.clear_requests();
    let out = pull(&m, &reference);
    assert_says(&out, &[&verified, &format!("Digest: {}\n", v1.manifest)]);
    assert!(!out.contains(&v2.manifest), "{out}");
    let manifests: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        manifests,
        [format!("/v2/{REPO}/manifests/{}", v1.manifest)],
        "fetched by the trusted digest, not by the tag"
    );
    assert_nothing_fetched(&fake, &v2);
    assert_eq!(
        stored(&m, &reference),
        (v1.manifest.clone(), v1.config.clone())
    );

    // The same by a new manifest pushed under the tag.
    let pushed = fake.edit_content(|c| c.image(REPO, "v1", &[layer("version", b"evil\n")]));
    let out = pull(&m, &reference);
    assert_says(&out, &[&format!("Digest: {}\n", v1.manifest)]);
    assert_nothing_fetched(&fake, &pushed);
    let ls = m.agent.huskctl_ok(&["image", "ls"]);
    assert_eq!(ls.lines().count(), 2, "{ls}");
    assert!(ls.contains(&v1.config["sha256:".len()..][..12]), "{ls}");
}

#[test]
fn require_fresh_refuses_expired_missing_and_rolled_back_tags() {
    let (fake, v1, _) = registry();
    let host = fake.host();
    let tags = Tags::new();
    let reference = format!("{host}/{REPO}:v1");
    let trusted = format!("{reference}@{}", v1.manifest);
    let rule = format!("agent.toml policy.rules[0] ({host}/{REPO})");

    // Expired: signed to have lapsed yesterday.
    tags.trust(&["--expires-days", "-1"], &[&trusted]);
    let m = Machine::start(&agent_toml(&host, &tags.rule(&host)));
    let err = refused(&m, &reference);
    assert_says(
        &err,
        &[
            &format!("refused by the admission policy: {rule}: {reference}"),
            &format!("tag repository {}", tags.url()),
            "the timestamp metadata has expired",
        ],
    );
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());

    // Renewed: fresh again.
    tags.trust(&[], &[&trusted]);
    let older = std::fs::read(tags.timestamp()).unwrap();
    pull(&m, &reference);

    // A tag the repository does not have (the registry does).
    fake.clear_requests();
    let untrusted = format!("{host}/{REPO}:v2");
    let err = refused(&m, &untrusted);
    assert_says(
        &err,
        &[
            &rule,
            &format!("{untrusted}: not trusted"),
            &format!("has no tags/{untrusted}"),
        ],
    );
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());

    // Re-signed (the timestamp's version goes up), seen by the agent;
    // then the older timestamp is served again.
    let out = tags.trust(&[], &[&trusted]);
    assert!(out.contains("timestamp v4"), "{out}");
    pull(&m, &reference);
    std::fs::write(tags.timestamp(), &older).unwrap();
    fake.clear_requests();
    let err = refused(&m, &reference);
    assert_says(
        &err,
        &[
            &rule,
            &format!("tag repository {}: rollback refused", tags.url()),
            "timestamp",
        ],
    );
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());
    let ls = m.agent.huskctl_ok(&["image", "ls"]);
    assert_eq!(ls.lines().count(), 2, "{ls}");
}

#[test]
fn a_signature_key_that_is_missing_stops_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let missing = dir.path().join("keys/team.pub");
    std::fs::write(
        &config,
        format!(
            "[policy]\n[[policy.rules]]\nregistry = \"*\"\n\n[[policy.rules]]\nregistry = \"registry.example\"\nrepository = \"team/*\"\nrequire_signature = [\"{}\"]\n",
            missing.display()
        ),
    )
    .unwrap();
    let out = start_refused(dir.path(), &config);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert_says(
        &stderr,
        &[
            config.to_str().unwrap(),
            "agent.toml policy.rules[1] (registry.example/team/*)",
            "require_signature",
            missing.to_str().unwrap(),
        ],
    );
    assert!(!dir.path().join("agent.sock").exists());
}

/// Under a policy, images come in by pulls it checks: an import or a
/// tag, which would put a name it governs on an image it never saw, is
/// refused (Docker's `load` and `tag` take the same check).
#[test]
fn under_a_policy_images_come_in_only_by_admitted_pulls() {
    let (fake, _, _) = registry();
    let host = fake.host();
    let m = Machine::start(&agent_toml(
        &host,
        &format!("default = \"deny\"\n\n[[policy.rules]]\nregistry = \"{host}\"\n"),
    ));
    let archive = m.dir.path().join("unsigned.tar");
    std::fs::write(
        &archive,
        husk_testkit::oci_archive(
            &format!("{host}/{REPO}:v1"),
            &[husk_testkit::busybox_layer()],
        ),
    )
    .unwrap();
    let import = m
        .agent
        .huskctl_err(&["image", "import", archive.to_str().unwrap()]);
    assert_says(&import, &["an image import is refused", "admission policy"]);
    assert_no_images(&m);
    // A pulled (admitted) image cannot lend its name either.
    pull(&m, &format!("{host}/other/app:v1"));
    let tag = m.agent.huskctl_err(&[
        "image",
        "tag",
        &format!("{host}/other/app:v1"),
        &format!("{host}/{REPO}:v1"),
    ]);
    assert_says(&tag, &["an image tag is refused", "admission policy"]);
}
