//! The guest-side checker; all logic lives in the husk-check library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    husk_check::main(&args)
}
