//! `cargo xtask dist [--out DIR]`: the release bundle — husk-image,
//! huskctl, husk-init and husk-agent, static and without test features,
//! in one directory. husk-image takes husk-init and husk-agent from
//! beside itself, so the bundle's husk-image builds a bootable image
//! with no flags; a plain `cargo build --release` makes dynamically
//! linked binaries the kernel cannot start as /init.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use husk_binaries::PRODUCT_BINARIES;
use husk_image::elf::{self, Linking};

/// Where the bundle goes without `--out`, under cargo's target directory.
pub const DEFAULT_DIR: &str = "dist";

pub fn run(out: Option<PathBuf>) -> Result<()> {
    let workspace = husk_binaries::workspace_root();
    let out = out.unwrap_or_else(|| husk_binaries::target_dir(&workspace).join(DEFAULT_DIR));
    let built = husk_binaries::build_product(&workspace)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    println!("release bundle in {}:", out.display());
    for name in PRODUCT_BINARIES {
        let (from, to) = (built.join(name), out.join(name));
        // Static is the point of the bundle: check what cargo made
        // before anyone builds an image from it.
        if let Linking::Dynamic { interpreter } = elf::linking(&from)? {
            bail!(
                "{} is dynamically linked ({interpreter}): the static build did not apply",
                from.display()
            );
        }
        husk_binaries::copy_replacing(&from, &to)?;
        println!("  {:<12} {:>10} bytes  {}", name, size(&to)?, to.display());
    }
    println!(
        "next: {} build --out out   (husk-image build --help; --print-config)",
        out.join("husk-image").display()
    );
    Ok(())
}

fn size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}
