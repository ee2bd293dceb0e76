//! Layers over the limits: decompression bombs, a sparse file claiming a
//! terabyte, too many entries, too long names. Each is refused with an
//! error naming the layer, the entry and the limit, and the store is left
//! exactly as it was — whether the import unpacks or only verifies.

use std::fs;
use std::io::Write;
use std::time::Instant;

use super::*;
use crate::digest::Hasher;
use crate::limits::{LimitExceeded, Limits};
use crate::unpack::{LayerError, UnpackError, UnpackOptions, unpack_layer};
use crate::{Store, StoreError, StoreOptions};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Bombs are built from one compressed chunk of zeros, repeated.
const CHUNK: u64 = 16 * MIB;

fn deferred() -> StoreOptions {
    StoreOptions {
        defer_unpack: true,
        ..StoreOptions::default()
    }
}

fn with_limits(limits: Limits) -> StoreOptions {
    StoreOptions {
        limits,
        ..StoreOptions::default()
    }
}

/// Imports `bad` into a store already holding an image, and returns the
/// error, having checked that the store's images and every file under its
/// root (layers, blobs, `tmp/`) are as they were.
fn refused(options: StoreOptions, bad: &TestImage) -> StoreError {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let mut store = Store::open_with(&root, options).unwrap();
    let good = TestImage::new(
        Some("good:1"),
        vec![Layer::default().file("ok", b"ok", 0o644).tar()],
        Compress::Gzip,
    );
    store
        .import(write_archive(
            dir.path(),
            "good.tar",
            &oci_archive(&[&good]),
        ))
        .unwrap();
    let (images, files) = (store.list(), listing(&root));
    let archive = write_archive(dir.path(), "bad.tar", &oci_archive(&[bad]));
    let start = Instant::now();
    let err = store
        .import(&archive)
        .expect_err("the layer must be refused");
    println!("refused in {:?}: {err}", start.elapsed());
    assert_eq!(store.list(), images, "images unchanged");
    assert_eq!(listing(&root), files, "no layer, blob or staging left");
    let layer = Digest::of(&bad.layer_blobs[0].1);
    assert!(
        err.to_string()
            .starts_with(&format!("layer {layer}: entry `")),
        "`{err}` names the layer and the entry"
    );
    err
}

/// The entry and the limit a refusal names.
fn limit(err: &StoreError) -> (&str, &LimitExceeded) {
    match err {
        StoreError::Unpack {
            source:
                LayerError {
                    entry,
                    error: UnpackError::Limit(limit),
                },
            ..
        } => (entry, limit),
        other => panic!("not a limit: {other}"),
    }
}

fn tar_header(name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h.set_cksum();
    h
}

/// A layer of one file, `zeros`, of `len` zero bytes (a multiple of
/// [`CHUNK`]), never held uncompressed: gzip members and zstd frames may
/// follow one another, so one compressed chunk is repeated.
fn bomb(compress: Compress, len: u64) -> (String, Vec<u8>) {
    let encode = |data: &[u8]| match compress {
        Compress::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(data).unwrap();
            gz.finish().unwrap()
        }
        Compress::Zstd => zstd::stream::encode_all(data, 3).unwrap(),
        Compress::None => data.to_vec(),
    };
    let mut blob = encode(tar_header("zeros", len).as_bytes());
    let chunk = encode(&vec![0; CHUNK as usize]);
    for _ in 0..len / CHUNK {
        blob.extend_from_slice(&chunk);
    }
    // the end of the archive: two zero blocks
    blob.extend(encode(&[0; 1024]));
    let media_type = match compress {
        Compress::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compress::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        Compress::None => "application/vnd.oci.image.layer.v1.tar",
    };
    (media_type.into(), blob)
}

/// The true diff_id of [`bomb`]`(_, len)`, hashed as it would stream.
fn bomb_diff_id(len: u64) -> Digest {
    let mut h = Hasher::default();
    h.update(tar_header("zeros", len).as_bytes());
    let chunk = vec![0; CHUNK as usize];
    for _ in 0..len / CHUNK {
        h.update(&chunk);
    }
    h.update(&[0; 1024]);
    h.finish()
}

/// An image of one bomb layer. Its diff_id is never computed: the layer
/// must be refused before the end, or the import fails on the diff_id
/// instead (and the test with it).
fn bomb_image(compress: Compress, len: u64) -> TestImage {
    let not_computed = Digest::of(b"not computed").to_string();
    TestImage::from_blobs(
        Some("bomb:1"),
        vec![bomb(compress, len)],
        vec![not_computed],
    )
}

#[test]
fn a_gzip_bomb_is_refused_early_with_the_default_limits() {
    let image = bomb_image(Compress::Gzip, 4 * GIB);
    let blob = image.layer_blobs[0].1.len() as u64;
    assert!(4 * GIB / blob > 1000, "a bomb: {blob} bytes compressed");
    for options in [StoreOptions::default(), deferred()] {
        let err = refused(options, &image);
        let (entry, limit) = limit(&err);
        assert_eq!(entry, "zeros");
        let LimitExceeded::Ratio {
            uncompressed,
            limit: 1000,
            ..
        } = *limit
        else {
            panic!("{err}");
        };
        // refused just past the threshold, not at 4 GiB
        assert!(uncompressed < 65 * MIB, "{err}");
        let message = err.to_string();
        assert!(
            message.contains("entry `zeros`: decompression bomb: 64.0 MiB decompressed from ")
                && message.ends_with(
                    "so far, more than the limit of 1000:1 (limits.max_compression_ratio)"
                ),
            "{err}"
        );
    }
}

#[test]
fn a_zstd_bomb_is_refused_early_with_the_default_limits() {
    let image = bomb_image(Compress::Zstd, 16 * GIB);
    for options in [StoreOptions::default(), deferred()] {
        let err = refused(options, &image);
        let (_, limit) = limit(&err);
        assert!(
            matches!(limit, LimitExceeded::Ratio { uncompressed, .. } if *uncompressed < 65 * MIB),
            "{err}"
        );
    }
}

#[test]
fn a_compressible_layer_under_the_ratio_threshold_is_imported() {
    // Zeros compress past 1000:1, but 48 MiB is under the 64 MiB from
    // which the ratio counts.
    let len = 48 * MIB;
    let (media_type, blob) = bomb(Compress::Gzip, len);
    assert!(len / blob.len() as u64 > 1000, "over the ratio");
    let image = TestImage::from_blobs(
        Some("zeros:1"),
        vec![(media_type, blob)],
        vec![bomb_diff_id(len).to_string()],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = store
        .import(write_archive(dir.path(), "a.tar", &oci_archive(&[&image])))
        .unwrap()[0]
        .id;
    let layer = &store.layer_paths(&id).unwrap()[0];
    assert_eq!(fs::metadata(layer.join("zeros")).unwrap().len(), len);
}

#[test]
fn a_lowered_ratio_limit_refuses_sooner() {
    let image = bomb_image(Compress::Gzip, 64 * MIB);
    let limits = Limits {
        max_compression_ratio: 100,
        compression_ratio_after_bytes: MIB,
        ..Limits::default()
    };
    let err = refused(with_limits(limits), &image);
    let (_, limit) = limit(&err);
    assert!(
        matches!(limit, LimitExceeded::Ratio { uncompressed, limit: 100, .. } if *uncompressed < 2 * MIB),
        "{err}"
    );
}

/// A GNU sparse file of `real_size` bytes: a hole, then 512 bytes of data
/// at its end.
pub(super) fn sparse_layer(real_size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_path("sparse").unwrap();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(512);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.sparse[0].set_offset(real_size - 512);
    gnu.sparse[0].set_length(512);
    gnu.set_real_size(real_size);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &[b'x'; 512][..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn a_sparse_file_claiming_a_terabyte_is_refused() {
    // A small one is a valid sparse file, unpacked with its hole.
    let small = TestImage::new(Some("sparse:1"), vec![sparse_layer(8192)], Compress::Gzip);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("store")).unwrap();
    let id = store
        .import(write_archive(dir.path(), "a.tar", &oci_archive(&[&small])))
        .unwrap()[0]
        .id;
    let data = fs::read(store.layer_paths(&id).unwrap()[0].join("sparse")).unwrap();
    assert_eq!(data.len(), 8192);
    assert!(data[..7680].iter().all(|&b| b == 0) && data[7680..].iter().all(|&b| b == b'x'));
    // Its hole stays a hole: a sparse file of 256 MiB holding 512 bytes
    // takes a few KiB of the disk, not 256 MiB of zeros.
    let big = TestImage::new(
        Some("sparse:3"),
        vec![sparse_layer(256 * MIB)],
        Compress::Gzip,
    );
    let id = store
        .import(write_archive(dir.path(), "b.tar", &oci_archive(&[&big])))
        .unwrap()[0]
        .id;
    let path = store.layer_paths(&id).unwrap()[0].join("sparse");
    let meta = fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.len(), 256 * MIB);
    assert!(
        meta.blocks() * 512 < MIB,
        "{} bytes on disk",
        meta.blocks() * 512
    );
    let tail = {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = fs::File::open(&path).unwrap();
        f.seek(SeekFrom::End(-512)).unwrap();
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).unwrap();
        tail
    };
    assert_eq!(tail, vec![b'x'; 512]);

    // 1 TiB, a few hundred bytes compressed: refused from its header.
    let image = TestImage::new(
        Some("sparse:2"),
        vec![sparse_layer(1 << 40)],
        Compress::Gzip,
    );
    for options in [StoreOptions::default(), deferred()] {
        let err = refused(options, &image);
        assert_eq!(limit(&err).0, "sparse");
        assert!(
            err.to_string().ends_with(
                "entry `sparse`: with this entry's 1 TiB the layer's unpacked size would reach \
                 1 TiB, over the limit of 64 GiB (limits.max_layer_bytes)"
            ),
            "{err}"
        );
    }
}

#[test]
fn a_pax_sparse_file_is_refused() {
    // GNU tar's PAX format 1.0: the tar reader does not expand it.
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("GNU.sparse.major", &b"1"[..]),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"big"),
        ("GNU.sparse.realsize", b"1099511627776"),
    ])
    .unwrap();
    let map = b"1\n1099511627264\n512\n";
    let mut data = map.to_vec();
    data.resize(512, 0);
    data.extend([b'x'; 512]);
    let mut h = tar_header("GNUSparseFile.0/big", data.len() as u64);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    let image = TestImage::new(Some("pax:1"), vec![b.into_inner().unwrap()], Compress::Gzip);
    for options in [StoreOptions::default(), deferred()] {
        let err = refused(options, &image);
        assert!(
            err.to_string().ends_with(
                "entry `GNUSparseFile.0/big`: it is a PAX sparse file (`GNU.sparse.major` in its \
                 PAX header), which the store does not unpack"
            ),
            "{err}"
        );
    }
}

#[test]
fn too_many_entries_are_refused() {
    let limits = Limits {
        max_layer_entries: 100,
        ..Limits::default()
    };
    let layer = |n: usize| {
        (0..n)
            .fold(Layer::default(), |l, i| {
                l.file(&format!("f{i}"), b"", 0o644)
            })
            .tar()
    };
    // exactly the limit passes
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_with(dir.path().join("store"), with_limits(limits)).unwrap();
    let image = TestImage::new(Some("files:100"), vec![layer(100)], Compress::Gzip);
    store
        .import(write_archive(dir.path(), "a.tar", &oci_archive(&[&image])))
        .unwrap();

    let image = TestImage::new(Some("files:101"), vec![layer(101)], Compress::Gzip);
    for options in [
        with_limits(limits),
        StoreOptions {
            limits,
            ..deferred()
        },
    ] {
        let err = refused(options, &image);
        assert_eq!(
            limit(&err),
            ("f100", &LimitExceeded::Entries { limit: 100 })
        );
        assert!(
            err.to_string()
                .ends_with("the layer has more than 100 entries (limits.max_layer_entries)"),
            "{err}"
        );
    }
}

#[test]
fn a_file_over_the_byte_limit_is_refused_before_it_is_written() {
    let limits = Limits {
        max_layer_bytes: MIB,
        ..Limits::default()
    };
    let under = Layer::default()
        .file("a", &vec![1; (MIB / 2) as usize], 0o644)
        .file("b", &vec![2; (MIB / 4) as usize], 0o644)
        .tar();
    let over = Layer::default()
        .file("a", &vec![1; (MIB / 2) as usize], 0o644)
        .file("big", &vec![2; (MIB / 2) as usize + 1], 0o644)
        .tar();
    let opts = UnpackOptions {
        limits,
        ..UnpackOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    unpack_layer(&under[..], dir.path(), opts).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let err = unpack_layer(&over[..], dir.path(), opts).unwrap_err();
    assert_eq!(err.entry, "big");
    assert!(
        matches!(err.error, UnpackError::Limit(LimitExceeded::LayerBytes { size, total, limit })
            if size == MIB / 2 + 1 && total == MIB + 1 && limit == MIB),
        "{err}"
    );
    assert!(
        !dir.path().join("big").exists(),
        "refused before it is created"
    );

    let image = TestImage::new(Some("big:1"), vec![over], Compress::Zstd);
    for options in [
        with_limits(limits),
        StoreOptions {
            limits,
            ..deferred()
        },
    ] {
        let err = refused(options, &image);
        assert!(
            err.to_string().ends_with(
                "entry `big`: with this entry's 512.0 KiB the layer's unpacked size would reach \
                 1.0 MiB, over the limit of 1 MiB (limits.max_layer_bytes)"
            ),
            "{err}"
        );
    }
}

#[test]
fn too_long_paths_and_names_are_refused() {
    // 4095 bytes as the container sees it (`/` and 16 components of 254,
    // and `/` and 14 more): the longest path a system call takes.
    let longest = format!(
        "{}{}",
        format!("{}/", "c".repeat(254)).repeat(16),
        "f".repeat(14)
    );
    assert_eq!(longest.len() + 1, 4095);
    let image = TestImage::new(
        Some("long:1"),
        vec![Layer::default().file_pax_path(&longest, b"x").tar()],
        Compress::Gzip,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("store")).unwrap();
    store
        .import(write_archive(dir.path(), "a.tar", &oci_archive(&[&image])))
        .unwrap();

    // 5000 bytes in a PAX header, each component short enough
    let path = format!("{}f", format!("{}/", "d".repeat(249)).repeat(20));
    let image = TestImage::new(
        Some("long:2"),
        vec![Layer::default().file_pax_path(&path, b"x").tar()],
        Compress::Gzip,
    );
    for options in [StoreOptions::default(), deferred()] {
        let err = refused(options, &image);
        assert_eq!(
            limit(&err).1,
            &LimitExceeded::PathBytes {
                len: 5002,
                limit: 4095
            }
        );
        // (the entry's name is abbreviated in the message)
        assert!(
            err.to_string()
                .ends_with("(5001 bytes)`: its path is 5002 bytes, over the limit of 4095 (limits.max_path_bytes)"),
            "{err}"
        );
    }

    // a 300-byte component in a GNU long name
    let name = format!("d/{}", "n".repeat(300));
    let image = TestImage::new(
        Some("long:3"),
        vec![
            Layer::default()
                .long_names(tar::EntryType::Regular, &name, None)
                .tar(),
        ],
        Compress::Gzip,
    );
    let err = refused(StoreOptions::default(), &image);
    assert!(
        err.to_string().ends_with(&format!(
            "its path component `{}…` is 300 bytes, over the limit of 255 \
             (limits.max_name_bytes)",
            "n".repeat(32)
        )),
        "{err}"
    );

    // a symlink to 5000 bytes
    let image = TestImage::new(
        Some("long:4"),
        vec![
            Layer::default()
                .long_names(tar::EntryType::Symlink, "l", Some(&"t/".repeat(2500)))
                .tar(),
        ],
        Compress::Gzip,
    );
    let err = refused(StoreOptions::default(), &image);
    assert!(
        err.to_string().ends_with(
            "entry `l`: its link target is 5000 bytes, over the limit of 4095 (limits.max_path_bytes)"
        ),
        "{err}"
    );
}

/// `image load` of a `.tar.gz` archive that is itself a bomb: refused
/// while it is staged (its stream counts as a layer's), and the store is
/// unchanged.
#[test]
fn a_compressed_archive_bomb_is_refused_while_staged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let mut store = Store::open(&root).unwrap();
    let (images, files) = (store.list(), listing(&root));
    // A tar of one 4 GiB file of zeros, gzipped by repeating one member.
    let (_, archive) = bomb(Compress::Gzip, 4 * GIB);
    let path = write_archive(dir.path(), "bomb.tar.gz", &archive);
    let start = Instant::now();
    let err = store
        .import(&path)
        .expect_err("the archive must be refused");
    println!("refused in {:?}: {err}", start.elapsed());
    assert!(err.to_string().contains("decompression bomb"), "{err}");
    assert!(err.to_string().contains("bomb.tar.gz"), "{err}");
    assert_eq!(store.list(), images);
    assert_eq!(listing(&root), files, "nothing staged is left");
}
