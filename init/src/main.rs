//! The `husk-init` binary: PID 1 when the kernel starts it, a tiny
//! control command (`husk-init poweroff|reboot`) otherwise.

fn main() {
    if husk_init::sys::is_pid1() {
        husk_init::boot::run();
    }
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(husk_init::ctl::main(&args));
}
