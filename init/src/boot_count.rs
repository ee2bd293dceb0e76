//! Whether this boot is on trial, as systemd-boot tells: when it starts
//! an entry that still has a boot counter (`husk-2.0+2-1.efi`), it sets
//! the EFI variable `LoaderBootCountPath` to that entry's path
//! (systemd's Automatic Boot Assessment; `systemd-bless-boot` reads the
//! same variable). A service marked `on_crash_loop = "reboot-on-trial"`
//! that crash-loops on such a boot makes init reboot, so the boot loader
//! spends a try and, once the tries are spent, falls back to the
//! previous version — instead of the machine staying up, half broken, on
//! a version nobody judged.

use std::path::Path;

use rustix::mount::MountFlags;

use crate::mounts::{MountSpec, mount_one};
use crate::sys;

/// Where efivarfs goes, as on every Linux distribution.
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// systemd-boot's vendor GUID for its variables.
const BOOT_COUNT_VAR: &str = "LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// The variable is a short path; anything longer is not it.
const VAR_MAX: u64 = 1024;

/// The longest entry path kept.
pub type EntryPath = heapless::String<256>;

/// Mounts efivarfs read-only (init and the agent only read it; writing
/// some variables can brick firmware). `false` on a BIOS boot.
pub fn mount_efivarfs() -> bool {
    if !Path::new("/sys/firmware/efi").is_dir() {
        return false;
    }
    let spec = MountSpec {
        target: EFIVARS,
        fs_type: "efivarfs",
        flags: MountFlags::NOSUID
            .union(MountFlags::NODEV)
            .union(MountFlags::NOEXEC)
            .union(MountFlags::RDONLY),
        data: None,
    };
    match mount_one(&spec) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("boot count: {e}");
            false
        }
    }
}

/// The entry booted on trial, if this boot is one.
pub fn trial_entry(efivars: &Path) -> Option<EntryPath> {
    let bytes = sys::read_capped_bytes(&efivars.join(BOOT_COUNT_VAR), VAR_MAX).ok()?;
    parse_var(&bytes)
}

/// An efivarfs file: 4 bytes of attributes, then the value, here a
/// NUL-terminated UTF-16LE path.
pub fn parse_var(bytes: &[u8]) -> Option<EntryPath> {
    let value = bytes.get(4..)?;
    let units = value
        .chunks_exact(2)
        .filter_map(|c| <[u8; 2]>::try_from(c).ok())
        .map(u16::from_le_bytes)
        .take_while(|&u| u != 0);
    let mut path = EntryPath::new();
    for c in char::decode_utf16(units) {
        path.push(c.ok()?).ok()?;
    }
    (!path.is_empty()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(text: &str) -> Vec<u8> {
        let mut bytes = vec![7, 0, 0, 0];
        for unit in text.encode_utf16().chain([0]) {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn the_booted_entry_is_read() {
        assert_eq!(
            parse_var(&var("\\EFI\\Linux\\husk-2.0+2-1.efi")).as_deref(),
            Some("\\EFI\\Linux\\husk-2.0+2-1.efi")
        );
        assert_eq!(parse_var(&var("")), None);
        assert_eq!(parse_var(&[7, 0, 0]), None);
        // Unpaired surrogate: not a path.
        assert_eq!(parse_var(&[7, 0, 0, 0, 0x00, 0xd8, 0x41, 0x00]), None);
        // Longer than kept: refused, not truncated.
        assert_eq!(parse_var(&var(&"x".repeat(300))), None);
    }

    #[test]
    fn no_variable_no_trial() {
        let dir = std::env::temp_dir().join(format!("husk-efivars-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        assert_eq!(trial_entry(&dir), None);
        let _ = std::fs::write(dir.join(BOOT_COUNT_VAR), var("\\EFI\\Linux\\husk-1+3.efi"));
        assert_eq!(
            trial_entry(&dir).as_deref(),
            Some("\\EFI\\Linux\\husk-1+3.efi")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
