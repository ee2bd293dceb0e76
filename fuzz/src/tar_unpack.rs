//! `tar_unpack`: a layer blob through the store's unpacker
//! ([`husk_store::unpack::unpack_layer`]), as an import or a preloaded
//! image's first boot runs it, into a fresh directory.
//!
//! A tar header carries a checksum that a mutation almost always breaks,
//! and the tar reader stops there: an input that does not start as gzip or
//! zstd has the checksum of each header it holds filled in first, so that
//! the fuzzer reaches the entries. (The same on every run of an input: a
//! crash file replays as it crashed.)

use std::borrow::Cow;

use husk_store::unpack::LayerError;
use husk_store::{Digest, Limits, UnpackOptions};

use crate::scratch::Scratch;

const BLOCK: usize = 512;
const CHECKSUM: std::ops::Range<usize> = 148..156;

pub fn run(data: &[u8]) {
    if let Err(e) = unpack(data) {
        let _ = e.to_string();
    }
}

/// Unpacks the layer `data` (checksums filled in) into a fresh directory
/// and checks nothing landed beside it; what the unpacker said.
pub fn unpack(data: &[u8]) -> Result<Digest, LayerError> {
    let layer = if compressed(data) {
        Cow::Borrowed(data)
    } else {
        Cow::Owned(with_checksums(data))
    };
    let scratch = Scratch::new();
    let dest = scratch.path().join("layer");
    std::fs::create_dir(&dest).expect("creating the layer directory");
    let options = UnpackOptions {
        allow_devices: false,
        limits: limits(),
        ..UnpackOptions::default()
    };
    let unpacked = husk_store::unpack::unpack_layer(&layer[..], &dest, options);
    // Whatever the layer said, nothing may land beside the layer.
    let beside: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("listing the scratch directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "layer")
        .collect();
    assert!(
        beside.is_empty(),
        "the layer wrote outside itself: {beside:?}"
    );
    unpacked
}

/// The defaults, but small enough that no input makes a run write more
/// than a few MiB: the checks are the same, the ceilings lower. (A sparse
/// entry is written out at its logical size.)
pub fn limits() -> Limits {
    Limits {
        max_layer_bytes: 16 << 20,
        compression_ratio_after_bytes: 1 << 20,
        ..Limits::default()
    }
}

fn compressed(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b]) || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// `data` with the checksum of every header filled in, walking headers as
/// a tar reader does: a header, its GNU sparse extension blocks, its data
/// rounded up to whole blocks, the next header.
pub fn with_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut at: usize = 0;
    while let Some(block) = at.checked_add(BLOCK).and_then(|end| out.get_mut(at..end)) {
        if block.iter().all(|&b| b == 0) {
            // the end of the archive (the reader stops here)
            break;
        }
        set_checksum(block);
        let header = tar::Header::from_byte_slice(block);
        let size = header.entry_size().unwrap_or(0);
        let mut extended = header.entry_type().is_gnu_sparse() && block[482] != 0;
        at += BLOCK;
        while extended {
            match out.get(at..at.saturating_add(BLOCK)) {
                Some(ext) => extended = ext[504] != 0,
                None => break,
            }
            at = at.saturating_add(BLOCK);
        }
        let blocks = usize::try_from(size.div_ceil(BLOCK as u64)).unwrap_or(usize::MAX);
        at = at.saturating_add(blocks.saturating_mul(BLOCK));
    }
    out
}

/// The sum of the header's bytes, its checksum field counted as spaces,
/// written as tar writes it: six octal digits, NUL, space.
fn set_checksum(block: &mut [u8]) {
    block[CHECKSUM].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let field = format!("{sum:06o}\0 ");
    block[CHECKSUM].copy_from_slice(field.as_bytes());
}
