//! The fake registry against a tiny raw HTTP/1.1 client.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;
use crate::sha256;

/// One connection, requests one after another on it (keep-alive).
struct Client {
    reader: BufReader<TcpStream>,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    /// What came of the body: Content-Length bytes, or fewer when the
    /// connection ended or stalled first.
    body: Vec<u8>,
    length: usize,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Client {
    fn connect(registry: &FakeRegistry) -> Self {
        let stream = TcpStream::connect(registry.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn timeout(&self, timeout: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
    }

    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: fake\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.reader.get_mut().write_all(head.as_bytes()).unwrap();

        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
            length: 0,
        };
        reply.length = reply.header("content-length").unwrap().parse().unwrap();
        if method != "HEAD" {
            let mut chunk = [0; 4096];
            while reply.body.len() < reply.length {
                let want = (reply.length - reply.body.len()).min(chunk.len());
                match self.reader.read(&mut chunk[..want]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => reply.body.extend_from_slice(&chunk[..n]),
                }
            }
        }
        reply
    }

    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", path, headers)
    }

    /// Whether the server closed the connection (EOF, not a timeout).
    fn closed(&mut self) -> bool {
        matches!(self.reader.read(&mut [0]), Ok(0))
    }
}

/// A one-file tar layer.
fn tar_layer(name: &str, data: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, name, data).unwrap();
    tar.into_inner().unwrap()
}

/// 1000 bytes no two neighbours of which are equal.
fn blob_bytes() -> Vec<u8> {
    (0..1000u32).map(|i| (i % 251) as u8).collect()
}

#[test]
fn manifests_by_tag_and_digest_with_headers() {
    let tar = tar_layer("hello", b"hello\n");
    let mut content = Content::new();
    let image = content.image("a/b/c", "latest", &[Layer::tar(tar.clone())]);
    let arm = content.platform_image("a/b/c", "arm", "arm64", &[Layer::tar(tar.clone())]);
    let index = content.index("a/b/c", "multi", &[&image, &arm]);
    let registry = FakeRegistry::start(content);
    let mut client = Client::connect(&registry);

    let ping = client.get("/v2/", &[]);
    assert_eq!((ping.status, ping.json()), (200, serde_json::json!({})));
    assert_eq!(
        ping.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );

    let by_tag = client.get("/v2/a/b/c/manifests/latest", &[("Accept", OCI_MANIFEST)]);
    assert_eq!(by_tag.status, 200);
    assert_eq!(by_tag.header("Content-Type"), Some(OCI_MANIFEST));
    assert_eq!(
        by_tag.header("Docker-Content-Digest"),
        Some(&image.manifest[..])
    );
    assert_eq!(sha256(&by_tag.body), image.manifest);
    assert_eq!(by_tag.body.len(), image.manifest_size);
    let manifest = by_tag.json();
    assert_eq!(manifest["config"]["digest"], image.config.as_str());
    assert_eq!(manifest["layers"][0]["mediaType"], OCI_LAYER_TAR);
    assert_eq!(manifest["layers"][0]["digest"], sha256(&tar).as_str());

    let by_digest = client.get(&format!("/v2/a/b/c/manifests/{}", image.manifest), &[]);
    assert_eq!((by_digest.status, &by_digest.body), (200, &by_tag.body));
    let head = client.request("HEAD", "/v2/a/b/c/manifests/latest", &[]);
    assert_eq!(
        (head.status, head.length, head.body.len()),
        (200, image.manifest_size, 0)
    );
    assert_eq!(
        head.header("Docker-Content-Digest"),
        Some(&image.manifest[..])
    );

    let config = client.get(&format!("/v2/a/b/c/blobs/{}", image.config), &[]);
    assert_eq!(config.status, 200);
    let config = config.json();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&tar).as_str());

    let multi = client.get("/v2/a/b/c/manifests/multi", &[]);
    assert_eq!(multi.header("Content-Type"), Some(OCI_INDEX));
    assert_eq!(multi.header("Docker-Content-Digest"), Some(&index[..]));
    assert_eq!(
        multi.json()["manifests"][1]["digest"],
        arm.manifest.as_str()
    );
    assert_eq!(
        multi.json()["manifests"][1]["platform"]["architecture"],
        "arm64"
    );
    let tags = client.get("/v2/a/b/c/tags/list", &[]).json();
    assert_eq!(tags["tags"], serde_json::json!(["arm", "latest", "multi"]));

    let unknown = client.get("/v2/a/b/c/manifests/nope", &[]);
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (404, "MANIFEST_UNKNOWN".into())
    );
    let unknown = client.get("/v2/a/b/manifests/latest", &[]);
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (404, "NAME_UNKNOWN".into())
    );
    let unknown = client.get(&format!("/v2/a/b/c/blobs/{}", sha256(b"none")), &[]);
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (404, "BLOB_UNKNOWN".into())
    );

    // All of it on one connection.
    assert_eq!(registry.requests().len(), 10);
    assert_eq!(registry.requests()[1].accept.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(registry.blob_gets(&image.config), 1);
}

#[test]
fn blob_resumes_with_range_after_a_dropped_connection() {
    let mut content = Content::new();
    let blob = content.blob(blob_bytes());
    let registry = FakeRegistry::start(content);
    registry.fault(
        &blob,
        Fault::DropAfter {
            bytes: 300,
            times: 1,
        },
    );
    let path = format!("/v2/library/busybox/blobs/{blob}");

    let mut client = Client::connect(&registry);
    let cut = client.get(&path, &[]);
    assert_eq!((cut.status, cut.length), (200, 1000));
    assert_eq!(cut.body, blob_bytes()[..300]);
    assert!(client.closed());

    let mut client = Client::connect(&registry);
    let rest = client.get(&path, &[("Range", "bytes=300-")]);
    assert_eq!(rest.status, 206);
    assert_eq!(rest.header("Content-Range"), Some("bytes 300-999/1000"));
    assert_eq!(rest.body, blob_bytes()[300..]);
    let middle = client.get(&path, &[("Range", "bytes=10-19")]);
    assert_eq!(
        (middle.status, &middle.body[..]),
        (206, &blob_bytes()[10..20])
    );
    let beyond = client.get(&path, &[("Range", "bytes=1000-")]);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("Content-Range"), Some("bytes */1000"));
    let whole = client.get(&path, &[]);
    assert_eq!((whole.status, whole.body), (200, blob_bytes()));

    assert_eq!(registry.blob_gets(&blob), 5);
    let ranges: Vec<_> = registry.requests().into_iter().map(|r| r.range).collect();
    assert_eq!(ranges[1].as_deref(), Some("bytes=300-"));
}

#[test]
fn status_fault_then_recovery() {
    let mut content = Content::new();
    let blob = content.blob(blob_bytes());
    let registry = FakeRegistry::start(content);
    registry.fault(
        &blob,
        Fault::Status {
            code: 503,
            times: 2,
        },
    );
    let path = format!("/v2/x/blobs/{blob}");
    let mut client = Client::connect(&registry);
    for _ in 0..2 {
        let reply = client.get(&path, &[]);
        assert_eq!((reply.status, reply.error_code()), (503, "UNKNOWN".into()));
    }
    let reply = client.get(&path, &[]);
    assert_eq!((reply.status, &reply.body), (200, &blob_bytes()));
    assert_eq!(reply.header("Docker-Content-Digest"), Some(&blob[..]));
}

#[test]
fn wrong_bytes_keep_the_length_and_the_digest_header() {
    let mut content = Content::new();
    let blob = content.blob(blob_bytes());
    let registry = FakeRegistry::start(content);
    registry.fault(&blob, Fault::WrongBytes);
    let reply = Client::connect(&registry).get(&format!("/v2/x/blobs/{blob}"), &[]);
    assert_eq!((reply.status, reply.body.len()), (200, 1000));
    assert_ne!(sha256(&reply.body), blob);
    assert_eq!(reply.header("Docker-Content-Digest"), Some(&blob[..]));
    registry.clear_faults(&blob);
    let reply = Client::connect(&registry).get(&format!("/v2/x/blobs/{blob}"), &[]);
    assert_eq!(sha256(&reply.body), blob);
}

#[test]
fn stall_holds_the_connection_until_the_registry_drops() {
    let mut content = Content::new();
    let blob = content.blob(blob_bytes());
    let registry = FakeRegistry::start(content);
    registry.fault_for(&blob, Fault::Stall { after_bytes: 100 }, 1);
    let mut stalled = Client::connect(&registry);
    stalled.timeout(Duration::from_millis(300));
    let reply = stalled.get(&format!("/v2/x/blobs/{blob}"), &[]);
    assert_eq!((reply.length, reply.body.len()), (1000, 100));
    // Once only: the next one is whole, and an idle keep-alive
    // connection does not hold the drop up either.
    let mut idle = Client::connect(&registry);
    let reply = idle.get(&format!("/v2/x/blobs/{blob}"), &[]);
    assert_eq!(reply.body, blob_bytes());
    let started = Instant::now();
    drop(registry);
    assert!(started.elapsed() < Duration::from_secs(2));
    stalled.timeout(Duration::from_secs(5));
    assert!(stalled.closed());
}

#[test]
fn slow_bodies_arrive_whole() {
    let mut content = Content::new();
    let blob = content.blob(vec![7; 200]);
    let registry = FakeRegistry::start(content);
    registry.fault(
        &blob,
        Fault::Slow {
            bytes_per_sec: 1000,
        },
    );
    let started = Instant::now();
    let reply = Client::connect(&registry).get(&format!("/v2/x/blobs/{blob}"), &[]);
    assert_eq!(reply.body, vec![7; 200]);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[test]
fn redirect_serves_the_blob_elsewhere_and_logs_the_authorization() {
    let mut content = Content::new();
    let blob = content.blob(blob_bytes());
    let registry = FakeRegistry::start_with(content, Auth::basic("u", "p"));
    registry.fault(&blob, Fault::Redirect);
    registry.fault(
        &blob,
        Fault::DropAfter {
            bytes: 10,
            times: 1,
        },
    );
    let auth = basic_authorization("u", "p");
    let mut client = Client::connect(&registry);
    let redirect = client.get(&format!("/v2/x/blobs/{blob}"), &[("Authorization", &auth)]);
    assert_eq!(redirect.status, 307);
    let location = redirect.header("Location").unwrap().to_string();
    assert_eq!(location, format!("{}/_redirected/{blob}", registry.url()));
    let path = location.strip_prefix(&registry.url()).unwrap();

    // No auth needed there; the drop set behind the redirect applies there.
    let cut = client.get(path, &[]);
    assert_eq!((cut.status, cut.body.len()), (200, 10));
    let mut client = Client::connect(&registry);
    let rest = client.get(path, &[("Range", "bytes=10-"), ("Authorization", &auth)]);
    assert_eq!((rest.status, &rest.body[..]), (206, &blob_bytes()[10..]));

    let log = registry.requests();
    let redirected: Vec<_> = log
        .iter()
        .filter(|r| r.path.starts_with("/_redirected/"))
        .collect();
    assert_eq!(redirected.len(), 2);
    assert_eq!(redirected[0].authorization, None);
    assert_eq!(redirected[1].authorization.as_deref(), Some(&auth[..]));
    assert_eq!(registry.blob_gets(&blob), 1);
}

#[test]
fn basic_auth() {
    let mut content = Content::new();
    let image = content.image("private/app", "v1", &[Layer::tar(tar_layer("f", b"x"))]);
    let registry = FakeRegistry::start_with(content, Auth::basic("alice", "s3cret"));
    let mut client = Client::connect(&registry);
    let path = "/v2/private/app/manifests/v1";
    for headers in [
        &[][..],
        &[("Authorization", &basic_authorization("alice", "wrong")[..])],
    ] {
        let refused = client.get(path, headers);
        assert_eq!(
            (refused.status, refused.error_code()),
            (401, "UNAUTHORIZED".into())
        );
        assert_eq!(
            refused.header("WWW-Authenticate"),
            Some("Basic realm=\"fake\"")
        );
    }
    assert_eq!(client.get("/v2/", &[]).status, 401);
    let auth = basic_authorization("alice", "s3cret");
    assert_eq!(client.get("/v2/", &[("Authorization", &auth)]).status, 200);
    let reply = client.get(path, &[("Authorization", &auth)]);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("Docker-Content-Digest"),
        Some(&image.manifest[..])
    );
}

#[test]
fn token_flow_with_scopes() {
    let mut content = Content::new();
    let a = content.image("team/a", "latest", &[Layer::tar(tar_layer("a", b"a"))]);
    content.image("team/b", "latest", &[Layer::tar(tar_layer("b", b"b"))]);
    let registry = FakeRegistry::start_with(content, Auth::token_for("bob", "pw"));
    let host = registry.host();
    let mut client = Client::connect(&registry);

    let ping = client.get("/v2/", &[]);
    assert_eq!(ping.status, 401);
    let realm = format!("Bearer realm=\"http://{host}/token\",service=\"fake-registry\"");
    assert_eq!(ping.header("WWW-Authenticate"), Some(&realm[..]));
    let refused = client.get("/v2/team/a/manifests/latest", &[]);
    assert_eq!(refused.status, 401);
    let challenge = format!("{realm},scope=\"repository:team/a:pull\"");
    assert_eq!(refused.header("WWW-Authenticate"), Some(&challenge[..]));

    let token_path = "/token?service=fake-registry&scope=repository%3Ateam%2Fa%3Apull";
    assert_eq!(client.get(token_path, &[]).status, 401);
    let wrong = basic_authorization("bob", "nope");
    assert_eq!(
        client.get(token_path, &[("Authorization", &wrong)]).status,
        401
    );
    let auth = basic_authorization("bob", "pw");
    let reply = client.get(token_path, &[("Authorization", &auth)]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["expires_in"], 300);
    let bearer = format!("Bearer {}", reply.json()["token"].as_str().unwrap());

    assert_eq!(
        client.get("/v2/", &[("Authorization", &bearer)]).status,
        200
    );
    let reply = client.get("/v2/team/a/manifests/latest", &[("Authorization", &bearer)]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Docker-Content-Digest"), Some(&a.manifest[..]));
    let blob = format!("/v2/team/a/blobs/{}", a.layers[0]);
    assert_eq!(client.get(&blob, &[("Authorization", &bearer)]).status, 200);

    // A token for team/a is no token for team/b.
    let other = client.get("/v2/team/b/manifests/latest", &[("Authorization", &bearer)]);
    assert_eq!(other.status, 401);
    let challenge =
        format!("{realm},scope=\"repository:team/b:pull\",error=\"insufficient_scope\"");
    assert_eq!(other.header("WWW-Authenticate"), Some(&challenge[..]));
    // Nor is Basic, nor a made-up token, nor a revoked one.
    let basic = client.get("/v2/team/a/manifests/latest", &[("Authorization", &auth)]);
    assert_eq!(basic.status, 401);
    let made_up = client.get(
        "/v2/team/a/manifests/latest",
        &[("Authorization", "Bearer x")],
    );
    assert_eq!(made_up.status, 401);
    registry.revoke_tokens();
    let revoked = client.get("/v2/team/a/manifests/latest", &[("Authorization", &bearer)]);
    assert_eq!(revoked.status, 401);
    assert!(
        revoked
            .header("WWW-Authenticate")
            .unwrap()
            .ends_with("error=\"invalid_token\"")
    );

    // The service must be the challenge's.
    let no_service = client.get(
        "/token?scope=repository:team/a:pull",
        &[("Authorization", &auth)],
    );
    assert_eq!(no_service.status, 400);
}

#[test]
fn anonymous_tokens_in_access_token() {
    let mut content = Content::new();
    content.image("lib/x", "1", &[Layer::tar(tar_layer("x", b"x"))]);
    let registry = FakeRegistry::start_with(
        content,
        Auth::Token {
            user_pass: None,
            field: TokenField::AccessToken,
        },
    );
    let mut client = Client::connect(&registry);
    let reply = client.get(
        "/token?scope=repository:lib/x:pull&service=fake-registry",
        &[],
    );
    assert_eq!(reply.status, 200);
    assert!(reply.json().get("token").is_none());
    let bearer = format!("Bearer {}", reply.json()["access_token"].as_str().unwrap());
    assert_eq!(
        client
            .get("/v2/lib/x/manifests/1", &[("Authorization", &bearer)])
            .status,
        200
    );
    // A push-only scope gives no pull.
    let reply = client.get(
        "/token?scope=repository:lib/x:push&service=fake-registry",
        &[],
    );
    let push = format!("Bearer {}", reply.json()["access_token"].as_str().unwrap());
    assert_eq!(
        client
            .get("/v2/lib/x/manifests/1", &[("Authorization", &push)])
            .status,
        401
    );
}

#[test]
fn malformed_requests_get_a_400_and_a_close() {
    let registry = FakeRegistry::start(Content::new());
    let mut stream = TcpStream::connect(registry.addr()).unwrap();
    stream.write_all(b"NONSENSE\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    assert!(reply.contains("Connection: close\r\n"), "{reply}");
}

#[test]
fn base64_and_percent_decoding() {
    for text in [
        &b""[..],
        b"f",
        b"fo",
        b"foo",
        b"foob",
        b"fooba",
        b"foobar",
        &[0, 255, 128],
    ] {
        let encoded = base64_encode(text);
        assert_eq!(base64_decode(&encoded).as_deref(), Some(text));
    }
    assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64_encode(b"fo"), "Zm8=");
    assert_eq!(base64_decode("Zm8").as_deref(), Some(&b"fo"[..]));
    assert_eq!(base64_decode("Z"), None);
    assert_eq!(base64_decode("Zm9v!"), None);
    assert_eq!(http::percent_decode("a%2Fb%3ac+d%"), "a/b:c d%");
}

#[test]
fn referrers_list_the_manifests_of_a_subject_or_404_when_off() {
    let mut content = Content::new();
    let image = content.image("a/b", "latest", &[Layer::tar(tar_layer("x", b"x"))]);
    let subject =
        json!({"mediaType": OCI_MANIFEST, "digest": image.manifest, "size": image.manifest_size});
    let empty = content.blob(b"{}".to_vec());
    let referrer = |artifact_type: Option<&str>, config_type: &str| {
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": empty, "size": 2},
            "layers": [],
            "subject": subject,
            "annotations": {"made": config_type},
        });
        if let Some(artifact_type) = artifact_type {
            manifest["artifactType"] = json!(artifact_type);
        }
        serde_json::to_vec(&manifest).unwrap()
    };
    let sig = content.untagged_manifest(
        "a/b",
        OCI_MANIFEST,
        referrer(
            Some("application/x-sig"),
            "application/vnd.oci.empty.v1+json",
        ),
    );
    let sbom = content.untagged_manifest("a/b", OCI_MANIFEST, referrer(None, "application/x-sbom"));
    // In another repository: not a referrer here.
    content.untagged_manifest(
        "a/c",
        OCI_MANIFEST,
        referrer(Some("application/x-sig"), "x"),
    );
    let registry = FakeRegistry::start(content);
    let mut client = Client::connect(&registry);

    let path = format!("/v2/a/b/referrers/{}", image.manifest);
    let all = client.get(&path, &[]);
    assert_eq!(all.status, 200);
    assert_eq!(all.header("Content-Type"), Some(OCI_INDEX));
    assert_eq!(all.header("OCI-Filters-Applied"), None);
    let index = all.json();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let mut listed: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["mediaType"], OCI_MANIFEST);
            assert!(d["size"].as_u64().unwrap() > 0);
            assert!(d["annotations"]["made"].is_string());
            (
                d["digest"].as_str().unwrap().to_string(),
                d["artifactType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (sig.clone(), "application/x-sig".to_string()),
        (sbom.clone(), "application/x-sbom".to_string()),
    ];
    expected.sort();
    assert_eq!(listed, expected);

    let filtered = client.get(&format!("{path}?artifactType=application%2Fx-sig"), &[]);
    assert_eq!(filtered.header("OCI-Filters-Applied"), Some("artifactType"));
    assert_eq!(filtered.json()["manifests"][0]["digest"], sig.as_str());
    assert_eq!(filtered.json()["manifests"].as_array().unwrap().len(), 1);

    let none = client.get(&format!("/v2/a/b/referrers/{}", sha256(b"other")), &[]);
    assert_eq!(
        (none.status, none.json()["manifests"].clone()),
        (200, json!([]))
    );
    let unknown = client.get(&format!("/v2/x/referrers/{}", image.manifest), &[]);
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (404, "NAME_UNKNOWN".into())
    );

    registry.referrers_fault(
        &image.manifest,
        Fault::Status {
            code: 500,
            times: 1,
        },
    );
    assert_eq!(client.get(&path, &[]).status, 500);
    assert_eq!(client.get(&path, &[]).status, 200);

    registry.edit_content(|c| c.referrers_index("a/b", &image.manifest, b"not an index".to_vec()));
    assert_eq!(client.get(&path, &[]).body, b"not an index");

    registry.edit_content(|c| c.set_referrers_api(false));
    let off = client.get(&path, &[]);
    assert_eq!(off.status, 404);
    assert_eq!(off.body, b"404 page not found\n");
    // The rest is as it was.
    let manifest = client.get("/v2/a/b/manifests/latest", &[]);
    assert_eq!(sha256(&manifest.body), image.manifest);
}
