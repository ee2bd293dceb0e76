//! `image_manifest`: an image archive through the store's import
//! ([`husk_store::Store::import`]): `docker save`'s `manifest.json`, an
//! OCI layout's `oci-layout` and `index.json`, the manifests, indexes and
//! configs they point to, and the names, digests, sizes and platforms in
//! them; then what the agent does with an imported image (find it by
//! name, read its config, reopen the store).
//!
//! Documents point at each other by digest and size, which no mutation
//! finds, so the input is a list of files with placeholders for them:
//!
//! - files are separated by NUL bytes (JSON has none); a file's first line
//!   is its name in the archive, the rest its content. Every file is also
//!   in the archive as `blobs/sha256/<its digest>`; an empty name puts it
//!   there only; a name `LINK -> TARGET` is a symlink (as `docker save`
//!   links identical layers).
//! - in a file's content, `@N` is the hex digest of file N and `#N` its
//!   size, for N a digit naming a *later* file (so every reference can be
//!   filled in; others stay as they are); `@L` and `#L` are those of a
//!   small layer tar the archive always has as `layer.tar`.

use std::sync::OnceLock;

use husk_store::{Digest, Store, StoreOptions};

use crate::scratch::Scratch;

/// One file of the archive, as the input gives it.
struct File<'a> {
    name: &'a [u8],
    content: Vec<u8>,
}

pub fn run(data: &[u8]) {
    if let Err(e) = import(data) {
        let _ = e.to_string();
    }
}

/// Imports the archive `data` describes into a new store and checks the
/// store after it; what the import said.
pub fn import(data: &[u8]) -> Result<Vec<husk_store::ImageSummary>, husk_store::StoreError> {
    let archive = archive(data);
    let scratch = Scratch::new();
    let path = scratch.path().join("archive.tar");
    std::fs::write(&path, &archive).expect("writing the archive");
    let root = scratch.path().join("store");
    let options = StoreOptions {
        limits: crate::tar_unpack::limits(),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&root, options).expect("opening a new store");
    let imported = store.import(&path)?;
    assert!(!imported.is_empty(), "an import that imported nothing");
    check_store(&store);
    let listed = store.list();
    drop(store);
    // What the import wrote, the next agent must read back.
    let store = Store::open_with(&root, options).expect("reopening the store");
    assert_eq!(store.list(), listed, "the store reads back otherwise");
    Ok(imported)
}

/// What the agent relies on for every image in the store.
fn check_store(store: &Store) {
    for image in store.list() {
        for name in &image.names {
            let found = store.get(name).expect("an image's name finds it");
            assert_eq!(found.id, image.id, "{name} finds another image");
        }
        assert_eq!(
            store.get(&image.id.to_string()).map(|i| i.id).ok(),
            Some(image.id)
        );
        store
            .image_config(&image.id)
            .expect("an imported config reads");
        let layers = store.layer_paths(&image.id).expect("its layers are there");
        assert_eq!(layers.len(), image.layers);
    }
}

/// The archive `data` describes.
pub fn archive(data: &[u8]) -> Vec<u8> {
    let mut files: Vec<File<'_>> = data
        .split(|&b| b == 0)
        .map(|part| match part.iter().position(|&b| b == b'\n') {
            Some(i) => File {
                name: &part[..i],
                content: part[i + 1..].to_vec(),
            },
            None => File {
                name: part,
                content: Vec::new(),
            },
        })
        .collect();
    let layer = layer();
    let layer_ref = (Digest::of(layer).hex(), layer.len());
    // Last file first: the files a content may name are final by then.
    let mut refs: Vec<(String, usize)> = vec![(String::new(), 0); files.len()];
    for i in (0..files.len()).rev() {
        let content = fill_in(&files[i].content, |c| match c {
            b'L' => Some(&layer_ref),
            b'0'..=b'9' => refs
                .get(usize::from(c - b'0'))
                .filter(|_| usize::from(c - b'0') > i),
            _ => None,
        });
        refs[i] = (Digest::of(&content).hex(), content.len());
        files[i].content = content;
    }
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, b"layer.tar", tar::EntryType::Regular, layer, b"");
    let layer_blob = format!("blobs/sha256/{}", layer_ref.0);
    append(
        &mut tar,
        layer_blob.as_bytes(),
        tar::EntryType::Regular,
        layer,
        b"",
    );
    for (file, (hex, _)) in files.iter().zip(&refs) {
        if let Some(at) = find(file.name, b" -> ") {
            let (link, target) = (&file.name[..at], &file.name[at + 4..]);
            append(&mut tar, link, tar::EntryType::Symlink, b"", target);
            continue;
        }
        if !file.name.is_empty() {
            append(
                &mut tar,
                file.name,
                tar::EntryType::Regular,
                &file.content,
                b"",
            );
        }
        let blob = format!("blobs/sha256/{hex}");
        append(
            &mut tar,
            blob.as_bytes(),
            tar::EntryType::Regular,
            &file.content,
            b"",
        );
    }
    tar.into_inner().expect("writing to memory")
}

/// `content` with `@X` and `#X` replaced by the digest and size `refs`
/// gives for `X`.
fn fill_in<'r>(content: &[u8], refs: impl Fn(u8) -> Option<&'r (String, usize)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    let mut i = 0;
    while i < content.len() {
        let (c, next) = (content[i], content.get(i + 1).copied());
        match (c, next.and_then(&refs)) {
            (b'@', Some((hex, _))) => out.extend_from_slice(hex.as_bytes()),
            (b'#', Some((_, size))) => out.extend_from_slice(size.to_string().as_bytes()),
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Appends an entry whatever its name (`..`, absolute, long: the tar
/// crate's path setters refuse some that archives can hold).
fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    data: &[u8],
    link: &[u8],
) {
    const FIELD: usize = 100;
    for (long, value) in [
        (tar::EntryType::GNULongName, name),
        (tar::EntryType::GNULongLink, link),
    ] {
        if value.len() > FIELD {
            let mut data = value.to_vec();
            data.push(0);
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            header.set_entry_type(long);
            header.set_size(data.len() as u64);
            header.set_cksum();
            tar.append(&header, &data[..]).expect("writing to memory");
        }
    }
    let mut header = tar::Header::new_gnu();
    let old = header.as_old_mut();
    let n = name.len().min(FIELD);
    old.name[..n].copy_from_slice(&name[..n]);
    let n = link.len().min(FIELD);
    old.linkname[..n].copy_from_slice(&link[..n]);
    header.set_entry_type(kind);
    header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(data.len() as u64);
    header.set_cksum();
    tar.append(&header, data).expect("writing to memory");
}

/// A one-file layer, the same in every archive: `etc/hostname`.
pub fn layer() -> &'static [u8] {
    static LAYER: OnceLock<Vec<u8>> = OnceLock::new();
    LAYER.get_or_init(|| {
        let mut tar = tar::Builder::new(Vec::new());
        append(&mut tar, b"etc/", tar::EntryType::Directory, b"", b"");
        append(
            &mut tar,
            b"etc/hostname",
            tar::EntryType::Regular,
            b"husk\n",
            b"",
        );
        tar.into_inner().expect("writing to memory")
    })
}
