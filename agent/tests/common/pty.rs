//! A real pty for the tests of terminals (huskctl's and docker's `-it`),
//! through python3's pty module.

use std::process::Command;

/// `command` (its program, arguments, environment and directory) run on
/// a pty by [`DRIVER`] playing `steps`: its exit code and what the
/// terminal showed. Fails the test when the driver does.
pub fn run(steps: &serde_json::Value, command: &Command) -> (i32, String) {
    let mut driver = Command::new("python3");
    driver
        .arg("-c")
        .arg(DRIVER)
        .arg(steps.to_string())
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => driver.env(key, value),
            None => driver.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        driver.current_dir(dir);
    }
    let out = driver.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the pty driver failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (first, rest) = stdout.split_once('\n').unwrap();
    let code = first.strip_prefix("EXIT ").unwrap().parse().unwrap();
    (code, rest.to_string())
}

/// Steps that check a shell's terminal, then `then`'s: a pty, of the
/// driver's size (24x80) from the start (the client sends it at once),
/// then resized to `rows`x`cols` (the client sends it on SIGWINCH).
pub fn terminal_steps(rows: u16, cols: u16, then: serde_json::Value) -> serde_json::Value {
    let mut steps = serde_json::json!([
        ["expect", "# "],
        ["send", "tty\r"],
        ["expect", "/dev/pts/"],
        ["send", "busybox stty size\r"],
        ["expect", "24 80"],
        ["resize", rows, cols],
        ["send", "sleep 0.5; busybox stty size\r"],
        ["expect", format!("{rows} {cols}")],
    ]);
    let then = then.as_array().expect("a list of steps").iter().cloned();
    steps.as_array_mut().unwrap().extend(then);
    steps
}

/// Runs a command on a pty and plays `steps` on it: `["expect", text]`,
/// `["send", text]`, `["resize", rows, cols]`. Prints `EXIT <code>`, or
/// fails naming the step with what the terminal showed.
pub const DRIVER: &str = r#"
import fcntl, json, os, pty, select, struct, sys, termios, time
steps = json.loads(sys.argv[1])
cmd = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(cmd[0], cmd)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))
seen = b''
transcript = b''
def fail(why):
    sys.stderr.write('%s\n--- terminal ---\n%r\n' % (why, transcript))
    os.kill(pid, 9)
    sys.exit(2)
def read_some(timeout):
    global seen, transcript
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return True
    try:
        data = os.read(fd, 65536)
    except OSError:
        data = b''
    if not data:
        return False
    seen += data
    transcript += data
    return True
for step in steps:
    if step[0] == 'expect':
        want = step[1].encode()
        deadline = time.time() + 30
        while want not in seen:
            left = deadline - time.time()
            if left <= 0:
                fail('timed out waiting for %r' % step[1])
            if not read_some(left):
                fail('EOF waiting for %r' % step[1])
        seen = seen[seen.index(want) + len(want):]
    elif step[0] == 'send':
        os.write(fd, step[1].encode())
    elif step[0] == 'resize':
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', step[1], step[2], 0, 0))
deadline = time.time() + 30
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print('EXIT %d' % os.waitstatus_to_exitcode(status))
        sys.stdout.write(transcript.decode(errors='replace'))
        sys.exit(0)
    if not read_some(0.1):
        time.sleep(0.05)
fail('huskctl did not exit')
"#;
