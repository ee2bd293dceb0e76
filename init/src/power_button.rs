//! The ACPI power button (and any keyboard's power key): evdev devices
//! that can report KEY_POWER, watched for a key press.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::sys;

/// At most this many input devices are watched.
pub const MAX_BUTTONS: usize = 8;
/// `KEY_POWER` from linux/input-event-codes.h.
pub const KEY_POWER: u16 = 116;
const EV_KEY: u16 = 1;
/// `struct input_event` on 64-bit: timeval (16), type u16, code u16,
/// value i32.
pub const EVENT_SIZE: usize = 24;

pub type Buttons = heapless::Vec<File, MAX_BUTTONS>;

/// Opens every /dev/input/event* that has a power key.
pub fn open_all() -> Buttons {
    let mut buttons = Buttons::new();
    let Ok(entries) = std::fs::read_dir("/dev/input") else {
        return buttons;
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("event"))
        })
        .collect();
    paths.sort();
    for path in paths {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path);
        let Ok(file) = file else {
            continue;
        };
        if !sys::device_has_key(file.as_fd(), KEY_POWER).unwrap_or(false) {
            continue;
        }
        log::debug!("power button: watching {}", path.display());
        if buttons.push(file).is_err() {
            break;
        }
    }
    buttons
}

/// Whether `event` (one `struct input_event`) is a power-key press.
pub fn is_power_press(event: &[u8]) -> bool {
    let field = |at: usize| -> Option<[u8; 2]> { event.get(at..at + 2)?.try_into().ok() };
    let (Some(ty), Some(code), Some(value)) = (
        field(16).map(u16::from_ne_bytes),
        field(18).map(u16::from_ne_bytes),
        event
            .get(20..24)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(i32::from_ne_bytes),
    ) else {
        return false;
    };
    ty == EV_KEY && code == KEY_POWER && value == 1
}

/// Reads what a device has; true if the power key was pressed.
pub fn read_pressed(file: &File) -> io::Result<bool> {
    let mut buf = [0u8; EVENT_SIZE * 16];
    let mut pressed = false;
    loop {
        match rustix::io::read(file.as_fd(), &mut buf) {
            Ok(0) | Err(rustix::io::Errno::AGAIN) => return Ok(pressed),
            Ok(n) => {
                let data = buf.get(..n).unwrap_or_default();
                pressed |= data.chunks_exact(EVENT_SIZE).any(is_power_press);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ty: u16, code: u16, value: i32) -> [u8; EVENT_SIZE] {
        let mut e = [0u8; EVENT_SIZE];
        e[16..18].copy_from_slice(&ty.to_ne_bytes());
        e[18..20].copy_from_slice(&code.to_ne_bytes());
        e[20..24].copy_from_slice(&value.to_ne_bytes());
        e
    }

    #[test]
    fn only_a_power_key_press_counts() {
        assert!(is_power_press(&event(1, 116, 1)));
        assert!(!is_power_press(&event(1, 116, 0)), "release");
        assert!(!is_power_press(&event(1, 116, 2)), "autorepeat");
        assert!(!is_power_press(&event(1, 30, 1)), "another key");
        assert!(!is_power_press(&event(0, 0, 0)), "EV_SYN");
        assert!(!is_power_press(&[0u8; 10]));
    }
}
