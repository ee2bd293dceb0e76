//! The fuzz targets on `cargo test`: every seed (`corpus/<target>/`) and
//! every input that once crashed a target (`regressions/<target>/`) runs
//! through the target's function, as the libFuzzer binary would run it;
//! the committed seeds are the ones `seeds` writes; and every target has
//! its binary and its corpus.
//!
//! `HUSK_FUZZ_WRITE_SEEDS=1 cargo test -p husk-fuzz --test corpus seeds_are`
//! rewrites the seeds after a change to their generator.

mod seeds;

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use husk_fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn names(dir: &Path, suffix: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(suffix).map(str::to_owned))
        .collect()
}

#[test]
fn every_target_has_a_binary_a_corpus_and_seeds() {
    let targets: BTreeSet<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names(&fuzz_dir().join("fuzz_targets"), ".rs"), targets);
    assert_eq!(names(&fuzz_dir().join("corpus"), ""), targets);
    let seeded: BTreeSet<String> = seeds::all().iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(seeded, targets);
}

#[test]
fn seeds_are_committed_as_generated() {
    let write = std::env::var_os("HUSK_FUZZ_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for (target, seeds) in seeds::all() {
        let dir = fuzz_dir().join("corpus").join(target);
        for (name, bytes) in seeds {
            let path = dir.join(name);
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else if std::fs::read(&path).ok().as_ref() != Some(&bytes) {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "seeds differ from their generator: {stale:?}\n\
         rewrite them: HUSK_FUZZ_WRITE_SEEDS=1 cargo test -p husk-fuzz --test corpus seeds_are"
    );
}

#[test]
fn corpus_and_regressions_replay_without_a_crash() {
    let mut crashed = Vec::new();
    let mut replayed = 0;
    for (target, run) in TARGETS {
        for dir in ["corpus", "regressions"] {
            for path in files(&fuzz_dir().join(dir).join(target)) {
                let data = std::fs::read(&path).unwrap();
                if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                    crashed.push(path.display().to_string());
                }
                replayed += 1;
            }
        }
    }
    assert!(
        crashed.is_empty(),
        "these inputs crash their target: {crashed:?}"
    );
    assert!(replayed >= TARGETS.len(), "only {replayed} inputs");
}

/// The seeds reach what they were written for: a seed that stops at its
/// first check would leave the fuzzer to find the format from nothing.
#[test]
fn seeds_go_deep() {
    for (target, seeds) in seeds::all() {
        for (name, data) in seeds {
            match target {
                "tar_unpack" => {
                    let unpacked = husk_fuzz::tar_unpack::unpack(&data);
                    match name {
                        "hostile" | "replaced" => assert!(unpacked.is_err(), "{name}"),
                        // (whiteouts need root)
                        "whiteouts" => {}
                        _ => {
                            unpacked.unwrap_or_else(|e| panic!("{name}: {e}"));
                        }
                    }
                }
                "image_manifest" => {
                    let images = husk_fuzz::image_manifest::import(&data)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(images.len(), 1, "{name}");
                }
                "gpt_read" => {
                    let grown = husk_fuzz::gpt_read::grow(&data)
                        .unwrap()
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(grown.grew(), name.starts_with("grown"), "{name}: {grown:?}");
                }
                _ => {}
            }
        }
    }
}
