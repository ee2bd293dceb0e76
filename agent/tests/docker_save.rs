//! `docker save` through Husk's Docker API with Debian's docker CLI 20.10,
//! as a user types it, read back by the peers that read such archives:
//! skopeo (`docker-archive:`), `docker load` into Husk again. Each layer
//! in the archive must be the very tar the image's config names (its
//! diff_id), so the image keeps its id wherever it is loaded. As root,
//! in a private mount and network namespace with cgroup2, as the other
//! container tests.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

use common::docker::Machine;
use common::enter_cgroup2_namespace;
use husk_testkit::{busybox_layer, files_layer, oci_archive, sha256};

/// The archive's regular files by name.
fn entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    files
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo (Debian's skopeo package)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn docker_save_gives_back_each_layer_as_its_diff_id_names_it() {
    if !enter_cgroup2_namespace("docker_save_gives_back_each_layer_as_its_diff_id_names_it") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let m = Machine::start();
    // An image from elsewhere: busybox, and a layer of files, gzipped as
    // registries serve them (the store keeps neither blob).
    let archive = scratch.path().join("in.tar");
    let layer = files_layer(&[
        ("etc/app.conf", 0o644, b"answer = 42\n"),
        ("srv/data.bin", 0o600, &[0xa5; 70_000]),
    ]);
    std::fs::write(&archive, oci_archive("saved:1", &[busybox_layer(), layer])).unwrap();
    assert_eq!(
        m.ok(&["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: saved:1\n"
    );
    m.ok(&["tag", "saved:1", "saved:2"]);
    let id = m
        .ok(&["image", "inspect", "--format", "{{.Id}}", "saved:1"])
        .trim()
        .to_owned();
    let diff_ids: Vec<String> = serde_json::from_str(&m.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        "saved:1",
    ]))
    .unwrap();
    assert_eq!(diff_ids.len(), 2);

    // docker save -o: the layers are their diff_ids, the config the id.
    let saved = scratch.path().join("saved.tar");
    m.ok(&["save", "-o", saved.to_str().unwrap(), "saved:1"]);
    let bytes = std::fs::read(&saved).unwrap();
    let files = entries(&bytes);
    for diff_id in &diff_ids {
        let blob = &files[&format!("blobs/sha256/{}", &diff_id[7..])];
        assert_eq!(&sha256(blob), diff_id, "a layer is not its diff_id");
    }
    assert_eq!(sha256(&files[&format!("blobs/sha256/{}", &id[7..])]), id);
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["saved:1"]));
    // To stdout, as `docker save IMAGE > FILE`: the same bytes.
    let out = m.docker(&["save", "saved:1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == bytes, "two saves of one image differ");

    // skopeo reads it as Docker's archive, and sees the same layers.
    let inspected: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", saved.display()),
    ]))
    .unwrap();
    assert_eq!(inspected["Layers"], serde_json::json!(diff_ids));
    // …and copies it, checking every blob against its digest, to an
    // archive of its own (same format: skopeo converting to OCI would
    // rewrite the config) that Husk loads as the same image.
    let copied = scratch.path().join("copied.tar");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", saved.display()),
        &format!("docker-archive:{}:copied:1", copied.display()),
    ]);
    m.ok(&["load", "-i", copied.to_str().unwrap()]);
    assert_eq!(
        m.ok(&["image", "inspect", "--format", "{{.Id}}", "copied:1"])
            .trim(),
        id
    );

    // Removed and loaded back: the same image, by its name, and it runs.
    m.ok(&["rmi", "saved:1", "saved:2", "copied:1"]);
    m.fails(&["image", "inspect", &id]);
    assert_eq!(
        m.ok(&["load", "-i", saved.to_str().unwrap()]),
        "Loaded image: saved:1\n"
    );
    assert_eq!(
        m.ok(&["image", "inspect", "--format", "{{.Id}}", "saved:1"])
            .trim(),
        id
    );
    assert_eq!(
        m.ok(&["run", "--rm", "saved:1", "cat", "/etc/app.conf"]),
        "answer = 42\n"
    );

    // Names as dockerd reads them: a repository is every tag of it, an
    // id no tag at all.
    m.ok(&["tag", "saved:1", "saved:2"]);
    let all = scratch.path().join("all.tar");
    m.ok(&["save", "-o", all.to_str().unwrap(), "saved"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&entries(&std::fs::read(&all).unwrap())["manifest.json"]).unwrap();
    let mut tags: Vec<&str> = manifest[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["saved:1", "saved:2"]);
    let by_id = scratch.path().join("by-id.tar");
    m.ok(&["save", "-o", by_id.to_str().unwrap(), &id[7..19]]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&entries(&std::fs::read(&by_id).unwrap())["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([]));

    // What cannot be saved says why, and writes no file.
    let missing = m.fails(&[
        "save",
        "-o",
        scratch.path().join("x.tar").to_str().unwrap(),
        "nothing:1",
    ]);
    assert!(missing.contains("No such image: nothing:1"), "{missing}");
    // A layer unpacked before Husk kept its tar's record (an older
    // machine's store): named, with what to do.
    for record in std::fs::read_dir(m.path("root/tar-split")).unwrap() {
        std::fs::remove_file(record.unwrap().path()).unwrap();
    }
    let old = scratch.path().join("old.tar");
    let refused = m.fails(&["save", "-o", old.to_str().unwrap(), "saved:1"]);
    assert!(
        refused.contains("without a record of its tar stream") && refused.contains("again"),
        "{refused}"
    );
    assert!(!old.exists(), "a refused save left {}", old.display());
}
