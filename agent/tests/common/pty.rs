//! A real pty for the tests of terminals (huskctl's and docker's `-it`),
//! through python3's pty module.

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
