//! `docker save`: images given back as they came in, each layer the very
//! tar its diff_id names, or refused before anything is written.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use super::limits::sparse_layer;
use super::*;
use crate::tar_split::SplitError;
use crate::{ImageId, Store, StoreError};

/// Every kind of entry and header a layer may carry, and bytes after the
/// end blocks (counted by the diff_id, so kept too).
fn varied_layer() -> Vec<u8> {
    let mut tar = Layer::default()
        .dir("etc/", 0o755)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("etc/empty", b"", 0o600)
        .file_with_xattr("etc/capable", b"\x7fELF...", ("user.note", b"kept"))
        .file_pax_path(&format!("deep/{}/file", "d".repeat(120)), b"long named")
        .long_names(
            tar::EntryType::Regular,
            &format!("gnu/{}", "n".repeat(150)),
            None,
        )
        .symlink("etc/link", "passwd")
        .hardlink("etc/hard", "etc/passwd")
        .file("big", &vec![7u8; 300_000], 0o755)
        .tar();
    tar.extend_from_slice(&[0u8; 1024]);
    tar.extend_from_slice(b"trailing bytes a tar writer left");
    tar
}

fn whiteout_layer() -> Vec<u8> {
    Layer::default()
        .dir("etc/", 0o755)
        .file("etc/.wh.passwd", b"", 0o644)
        .dir("usr/", 0o755)
        .file("usr/.wh..wh..opq", b"", 0o644)
        .file("usr/new", b"new", 0o644)
        .tar()
}

/// The archive's files by name.
fn entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    files
}

fn import(store: &mut Store, dir: &Path, image: &TestImage) -> ImageId {
    let archive = write_archive(dir, "in.tar", &oci_archive(&[image]));
    store.import(&archive).unwrap()[0].id
}

/// The archive of the image saved by its id (no tags).
fn save_by_id(store: &Store, id: ImageId) -> crate::Result<Vec<u8>> {
    let mut out = Vec::new();
    store.export(&[(id, vec![])])?.write_to(&mut out)?;
    Ok(out)
}

#[test]
fn an_exported_image_is_its_layers_byte_for_byte_and_loads_back_as_itself() {
    require_root("an_exported_image_is_its_layers_byte_for_byte_and_loads_back_as_itself");
    let dir = tempfile::tempdir().unwrap();
    let layers = vec![varied_layer(), whiteout_layer(), sparse_layer(1 << 20)];
    let image = TestImage::new(Some("example.org/app:1"), layers.clone(), Compress::Gzip);
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = import(&mut store, dir.path(), &image);

    let export = store
        .export(&[(id, vec!["example.org/app:1".into(), "app:latest".into()])])
        .unwrap();
    let mut archive = Vec::new();
    export.write_to(&mut archive).unwrap();
    let files = entries(&archive);
    for layer in &layers {
        let name = format!("blobs/sha256/{}", Digest::of(layer).hex());
        assert!(
            files[&name] == *layer,
            "{name} is not the layer that came in"
        );
    }
    assert_eq!(files[&format!("blobs/sha256/{}", id.0.hex())], image.config);
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        json!(["example.org/app:1", "app:latest"])
    );
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["example.org/app:1", "docker.io/library/app:latest"]);
    // The end blocks are there: a whole archive.
    assert!(archive.len() % 512 == 0 && archive.ends_with(&[0u8; 1024]));

    // Loaded into another store, it is the same image, by the same names.
    let other = tempfile::tempdir().unwrap();
    let mut loaded = Store::open(other.path()).unwrap();
    let saved = write_archive(dir.path(), "saved.tar", &archive);
    let summaries = loaded.import(&saved).unwrap();
    assert_eq!(summaries[0].id, id);
    assert_eq!(summaries[0].names, ["example.org/app:1", "app:latest"]);
    // …and gives back the same layers again.
    let mut again = Vec::new();
    loaded
        .export(&[(id, vec!["app:latest".into()])])
        .unwrap()
        .write_to(&mut again)
        .unwrap();
    for layer in &layers {
        let name = format!("blobs/sha256/{}", Digest::of(layer).hex());
        assert!(
            entries(&again)[&name] == *layer,
            "{name} after a round trip"
        );
    }
}

#[test]
fn the_same_archive_twice_is_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let image = TestImage::new(Some("a:1"), vec![varied_layer()], Compress::Zstd);
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = import(&mut store, dir.path(), &image);
    let save = || {
        let mut out = Vec::new();
        let export = store
            .export(&[(id, vec!["a:1".into()]), (id, vec![])])
            .unwrap();
        assert_eq!(export.ids(), [id], "an image named twice is saved once");
        export.write_to(&mut out).unwrap();
        out
    };
    assert!(save() == save());
}

#[test]
fn a_layer_that_rewrote_one_of_its_files_is_refused_before_a_byte_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // The first `conf`'s content is gone from the unpacked layer.
    let layer = Layer::default()
        .file("conf", b"first", 0o644)
        .file("conf", b"second", 0o644)
        .tar();
    let image = TestImage::new(Some("twice:1"), vec![layer], Compress::None);
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = import(&mut store, dir.path(), &image);
    let err = store.export(&[(id, vec![])]).unwrap_err();
    assert!(
        matches!(err, StoreError::Export(SplitError::NotReplayable(d)) if d == image.diff_ids()[0]),
        "{err}"
    );
    assert!(err.to_string().contains("byte for byte"), "{err}");
    // A directory entry again merges: nothing lost, nothing refused.
    let layer = Layer::default()
        .dir("d/", 0o755)
        .file("d/f", b"kept", 0o644)
        .dir("d/", 0o700)
        .tar();
    let image = TestImage::new(Some("dirs:1"), vec![layer], Compress::None);
    let id = import(&mut store, dir.path(), &image);
    store.export(&[(id, vec![])]).unwrap();
}

#[test]
fn a_layer_unpacked_without_a_record_is_named_and_the_next_import_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let image = TestImage::new(Some("old:1"), vec![varied_layer()], Compress::Gzip);
    let diff_id = image.diff_ids()[0];
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = import(&mut store, dir.path(), &image);
    // As a store written before records were kept.
    fs::remove_file(dir.path().join("store/tar-split").join(diff_id.hex())).unwrap();
    let err = store.export(&[(id, vec![])]).unwrap_err();
    assert!(
        matches!(err, StoreError::Export(SplitError::Missing(d)) if d == diff_id),
        "{err}"
    );
    assert!(
        err.to_string().contains("pull or load its image again"),
        "{err}"
    );
    // A pull would fetch it again; an import unpacks it again, for the
    // record only (the directory containers may use stays).
    assert!(!store.has_layer(&diff_id));
    let layer_dir = store.layer_paths(&id).unwrap().remove(0);
    let inode = fs::metadata(&layer_dir).unwrap().ino();
    import(&mut store, dir.path(), &image);
    assert!(store.has_layer(&diff_id));
    assert_eq!(fs::metadata(&layer_dir).unwrap().ino(), inode);
    save_by_id(&store, id).unwrap();
}

#[test]
fn a_layer_changed_on_disk_ends_the_archive_without_its_end_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let image = TestImage::new(Some("rot:1"), vec![varied_layer()], Compress::Gzip);
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = import(&mut store, dir.path(), &image);
    let export = store.export(&[(id, vec![])]).unwrap();
    // Same length, other bytes: bit rot, or someone writing in a layer.
    let passwd = store.layer_paths(&id).unwrap()[0].join("etc/passwd");
    let len = fs::metadata(&passwd).unwrap().len() as usize;
    fs::write(&passwd, vec![b'x'; len]).unwrap();
    let mut out = Vec::new();
    let err = export.write_to(&mut out).unwrap_err();
    assert!(
        matches!(err, StoreError::Export(SplitError::Changed { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("changed on disk"), "{err}");
    assert!(
        !out.ends_with(&[0u8; 1024]),
        "a cut archive must not look whole"
    );
    // Shorter: named as such.
    fs::write(&passwd, b"x").unwrap();
    let err = export.write_to(&mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("etc/passwd is shorter"), "{err}");
}

#[test]
fn a_record_pointing_out_of_its_layer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("secret"), b"host secret").unwrap();
    let image = TestImage::new(Some("esc:1"), vec![varied_layer()], Compress::Gzip);
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = import(&mut store, dir.path(), &image);
    // A record rewritten to read `../../../secret`, and a layer file
    // swapped for a symlink: neither is followed.
    let layer = store.layer_paths(&id).unwrap().remove(0);
    fs::remove_file(layer.join("big")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), layer.join("big")).unwrap();
    let err = save_by_id(&store, id).unwrap_err();
    assert!(err.to_string().contains("opening big"), "{err}");
}

#[test]
fn gc_removes_the_records_of_the_layers_it_removes() {
    let dir = tempfile::tempdir().unwrap();
    let image = TestImage::new(Some("gone:1"), vec![varied_layer()], Compress::Gzip);
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = import(&mut store, dir.path(), &image);
    let record = dir
        .path()
        .join("store/tar-split")
        .join(image.diff_ids()[0].hex());
    assert!(record.is_file());
    fs::write(
        dir.path().join("store/tar-split").join("f".repeat(64)),
        b"orphan",
    )
    .unwrap();
    store.remove(&id.to_string(), |_| false).unwrap();
    store.gc().unwrap();
    assert!(!record.exists());
    assert_eq!(
        fs::read_dir(dir.path().join("store/tar-split"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_record_a_crash_cut_short_counts_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let image = TestImage::new(Some("cut:1"), vec![varied_layer()], Compress::Gzip);
    let diff_id = image.diff_ids()[0];
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = import(&mut store, dir.path(), &image);
    // Its header is written last: zeros where a crash stopped it.
    let record = dir.path().join("store/tar-split").join(diff_id.hex());
    let mut bytes = fs::read(&record).unwrap();
    bytes[..24].fill(0);
    fs::write(&record, bytes).unwrap();
    assert!(!store.has_layer(&diff_id), "a pull must fetch it again");
    let err = store.export(&[(id, vec![])]).unwrap_err();
    assert!(
        matches!(err, StoreError::Export(SplitError::Corrupt { .. })),
        "{err}"
    );
    import(&mut store, dir.path(), &image);
    save_by_id(&store, id).unwrap();
}

#[test]
fn replay_reads_regular_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let image = TestImage::new(Some("fifo:1"), vec![varied_layer()], Compress::Gzip);
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = import(&mut store, dir.path(), &image);
    // A FIFO where a file was would hold a blocking thread forever.
    let big = store.layer_paths(&id).unwrap()[0].join("big");
    fs::remove_file(&big).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &big,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let err = save_by_id(&store, id).unwrap_err();
    assert!(err.to_string().contains("opening big"), "{err}");
}
