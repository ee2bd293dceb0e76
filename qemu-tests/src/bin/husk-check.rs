//! The guest-side checker; all logic lives in `qemu_tests::checker`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    qemu_tests::checker::main(&args)
}
