//! `process.terminal` and `--console-socket`: the runtime makes a pty in
//! the container and sends its master over the socket (SCM_RIGHTS, runc's
//! protocol); the process has the peer as its stdio and controlling
//! terminal. The test is the socket's listener, as a shim would be, and
//! the same bundle goes through crun.

use std::fs::File;
use std::io::{IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use serde_json::json;

use crate::bundle;
use crate::harness::{self, Cleanup, enter, err, oci, text};

/// How long any one conversation with a pty may take.
const LIMIT: Duration = Duration::from_secs(20);

/// The master end of a container's pty, as received.
pub struct Pty {
    master: File,
    /// Everything read so far, `\r` removed.
    pub seen: String,
    eof: bool,
}

impl Pty {
    /// Reads what is there within 100 ms; false at EOF (EIO: no peer left).
    fn read_some(&mut self) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        if self.eof {
            return false;
        }
        let mut fds = [PollFd::new(&self.master, PollFlags::IN)];
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        match poll(&mut fds, Some(&tick)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => return true,
            Ok(_) => {}
            Err(e) => panic!("poll on the pty master: {e}"),
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => self
                .seen
                .push_str(&String::from_utf8_lossy(&buf[..n]).replace('\r', "")),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => self.eof = true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the pty master: {e}"),
        }
        !self.eof
    }

    /// Reads until `what` has been seen.
    pub fn expect(&mut self, what: &str) {
        let deadline = Instant::now() + LIMIT;
        while !self.seen.contains(what) {
            assert!(
                self.read_some() && Instant::now() < deadline,
                "never saw {what:?} on the pty; saw {:?}",
                self.seen
            );
        }
    }

    /// Types `bytes` into the terminal.
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Reads until the last peer is closed (the process has exited).
    fn finish(&mut self) {
        let deadline = Instant::now() + LIMIT;
        while self.read_some() {
            assert!(
                Instant::now() < deadline,
                "the pty stayed open; saw {:?}",
                self.seen
            );
        }
    }
}

/// A console socket at `path`, listened on before the runtime runs: the
/// returned thread receives the master (and the name sent with it), runs
/// `talk` on it, reads it to EOF and returns the name and all the output.
pub fn serve(
    path: &Path,
    talk: impl FnOnce(&mut Pty) + Send + 'static,
) -> JoinHandle<(String, String)> {
    let listener = UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let deadline = Instant::now() + LIMIT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "nothing connected to {}",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept on {}: {e}", path.display()),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let (name, master) = receive_fd(&stream);
        let mut pty = Pty {
            master: File::from(master),
            seen: String::new(),
            eof: false,
        };
        talk(&mut pty);
        pty.finish();
        (name, pty.seen)
    })
}

/// One message with one descriptor: runc's console protocol.
fn receive_fd(stream: &std::os::unix::net::UnixStream) -> (String, OwnedFd) {
    let mut name = [0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut name)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .expect("recvmsg on the console socket");
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    assert_eq!(fds.len(), 1, "one descriptor in the console message");
    let name = String::from_utf8_lossy(&name[..got.bytes]).into_owned();
    (name, fds.pop().unwrap())
}

/// A bundle running `args` on a terminal of 24 rows and 80 columns.
fn terminal_bundle(dir: &Path, args: &[&str]) -> PathBuf {
    let b = bundle::make(dir, args);
    let mut config = bundle::config(args);
    config["process"]["terminal"] = true.into();
    config["process"]["consoleSize"] = json!({"height": 24, "width": 80});
    bundle::write_config(&b, &config);
    b
}

/// `RUNTIME … run --bundle B --console-socket S ID`.
fn run_on(runtime: &'static str, state: &Path, b: &Path, socket: &Path, id: &str) -> Output {
    let args = [
        "run",
        "--bundle",
        b.to_str().unwrap(),
        "--console-socket",
        socket.to_str().unwrap(),
        id,
    ];
    harness::call(runtime, state, &args)
}

/// `tty`, `stty size` and the shell's session and controlling terminal
/// (/proc/PID/stat fields 6 and 7), as printed by [`TTY_SCRIPT`].
struct TtyReport {
    tty: String,
    size: String,
    session_leader: bool,
    ctty: bool,
}

const TTY_SCRIPT: &str = "tty; stty size; set -- $(cut -d' ' -f6,7 /proc/$$/stat); \
    echo sid=$1 ctty=$2 pid=$$; echo done";

fn tty_report(out: &str) -> TtyReport {
    assert!(out.contains("done"), "{out:?}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let ids = lines
        .iter()
        .find(|l| l.starts_with("sid="))
        .unwrap_or_else(|| panic!("no sid= line in {out:?}"));
    let value = |key: &str| {
        ids.split(' ')
            .find_map(|f| f.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in {ids}"))
    };
    TtyReport {
        tty: lines[0].to_string(),
        size: lines.get(1).unwrap_or(&"").to_string(),
        session_leader: value("sid=") == value("pid="),
        ctty: value("ctty=") != "0",
    }
}

#[test]
fn run_with_a_console_socket_gives_the_process_a_pty() {
    if !enter("console::run_with_a_console_socket_gives_the_process_a_pty") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = terminal_bundle(&dir.path().join("b"), &["sh", "-c", TTY_SCRIPT]);
    for runtime in ["husk", "crun"] {
        let state = dir.path().join(runtime);
        let socket = dir.path().join(format!("{runtime}.sock"));
        let id = format!("con-run-{runtime}");
        let _cleanup = Cleanup::new(runtime, &state, &id);
        let master = serve(&socket, |_| {});
        let out = run_on(runtime, &state, &b, &socket, &id);
        let (name, pty) = master.join().unwrap();
        println!(
            "{runtime}: {} name {name:?} pty {pty:?} stdout {:?} stderr {:?}",
            out.status,
            text(&out),
            err(&out)
        );
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        let report = tty_report(&pty);
        assert!(
            report.tty.starts_with("/dev/pts/"),
            "{runtime}: tty says {:?}",
            report.tty
        );
        assert_eq!(report.size, "24 80", "{runtime}: process.consoleSize");
        assert!(report.session_leader, "{runtime}: not a session leader");
        assert!(report.ctty, "{runtime}: no controlling terminal");
        // Everything went to the pty, nothing to the runtime's stdio.
        assert!(!text(&out).contains("done"), "{runtime}: {}", text(&out));
        if runtime == "husk" {
            assert_eq!(name, "/dev/ptmx", "the name runc sends with the master");
            assert!(!state.join(&id).exists(), "run left its state behind");
        }
    }
}

#[test]
fn input_typed_into_the_master_reaches_the_process() {
    if !enter("console::input_typed_into_the_master_reaches_the_process") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // An interactive shell on the terminal: what it prints for a typed
    // command (42) is not the terminal's echo of it.
    let b = terminal_bundle(&dir.path().join("b"), &["sh"]);
    for runtime in ["husk", "crun"] {
        let state = dir.path().join(runtime);
        let socket = dir.path().join(format!("{runtime}.sock"));
        let id = format!("con-in-{runtime}");
        let _cleanup = Cleanup::new(runtime, &state, &id);
        let master = serve(&socket, |pty| {
            pty.send(b"echo typed-$((6*7))\n");
            pty.expect("typed-42\n");
            // ^C goes to the foreground process group: the terminal is
            // the shell's controlling one. Sent while the shell runs the
            // line (a `read`), when the terminal is in canonical mode: at
            // its prompt the line editor reads ^C as a byte. The trap's
            // output (got-4) is not in the terminal's echo of the line.
            pty.send(b"trap 'echo got-$((2+2)); exit 4' INT; echo armed-$((1+1)); read x\n");
            pty.expect("armed-2\n");
            pty.send(b"\x03");
            pty.expect("got-4");
        });
        let out = run_on(runtime, &state, &b, &socket, &id);
        let (_, pty) = master.join().unwrap();
        println!("{runtime}: {} pty {pty:?} {}", out.status, err(&out));
        assert_eq!(out.status.code(), Some(4), "{runtime}: {pty:?}");
    }
}

#[test]
fn a_terminal_needs_a_console_socket_and_a_socket_a_terminal() {
    if !enter("console::a_terminal_needs_a_console_socket_and_a_socket_a_terminal") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("husk");
    let b = terminal_bundle(&dir.path().join("b"), &["true"]);
    let bs = b.to_str().unwrap();
    let nothing_left = |id: &str| {
        assert!(!root.join(id).exists(), "{id}: state left behind");
        assert!(
            !Path::new("/sys/fs/cgroup/husk").join(id).exists(),
            "{id}: cgroup left behind"
        );
    };
    for command in ["create", "run"] {
        let id = format!("con-nosock-{command}");
        let out = oci(&root, &[command, "--bundle", bs, &id]);
        assert!(
            !out.status.success(),
            "{command}: terminal without socket ran"
        );
        assert!(
            err(&out).contains("process.terminal is true but no --console-socket"),
            "{command}: {}",
            err(&out)
        );
        nothing_left(&id);
    }
    // A listener is there: the refusal is not a failed connection.
    let socket = dir.path().join("s.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let plain = bundle::make(&dir.path().join("plain"), &["true"]);
    let ps = plain.to_str().unwrap();
    let ss = socket.to_str().unwrap();
    let out = oci(
        &root,
        &["run", "--bundle", ps, "--console-socket", ss, "con-noterm"],
    );
    assert!(!out.status.success(), "socket without terminal ran");
    assert!(
        err(&out).contains("--console-socket") && err(&out).contains("terminal is false"),
        "{}",
        err(&out)
    );
    nothing_left("con-noterm");
    // exec: --tty and --console-socket go together too.
    let _cleanup = Cleanup::new("husk", &root, "con-exec");
    let sleeper = bundle::make(&dir.path().join("sleeper"), &["sleep", "1000"]);
    let out = oci(
        &root,
        &[
            "run",
            "--detach",
            "--bundle",
            sleeper.to_str().unwrap(),
            "con-exec",
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    let out = oci(&root, &["exec", "--tty", "con-exec", "true"]);
    assert!(!out.status.success(), "exec --tty without a socket ran");
    assert!(err(&out).contains("--console-socket"), "{}", err(&out));
    let out = oci(&root, &["exec", "--console-socket", ss, "con-exec", "true"]);
    assert!(!out.status.success(), "exec with a socket and no tty ran");
    assert!(err(&out).contains("terminal is false"), "{}", err(&out));
    // What the peers do with the same command lines (they may allocate
    // a pty of their own for a foreground run): reported, not compared.
    for peer in ["crun", "runc"] {
        let state = dir.path().join(peer);
        let out = harness::peer(peer, &state, &["run", "--bundle", bs, "con-peer"]);
        let _ = harness::peer(peer, &state, &["delete", "--force", "con-peer"]);
        println!(
            "{peer}: terminal without socket: {} {}",
            out.status,
            err(&out).trim()
        );
        let out = harness::peer(
            peer,
            &state,
            &["run", "--bundle", ps, "--console-socket", ss, "con-peer2"],
        );
        let _ = harness::peer(peer, &state, &["delete", "--force", "con-peer2"]);
        println!(
            "{peer}: socket without terminal: {} {}",
            out.status,
            err(&out).trim()
        );
    }
}

#[test]
fn exec_tty_gives_the_process_a_pty() {
    if !enter("console::exec_tty_gives_the_process_a_pty") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle::make(&dir.path().join("b"), &["sleep", "1000"]);
    let bs = b.to_str().unwrap();
    for runtime in ["husk", "crun"] {
        let state = dir.path().join(runtime);
        let id = format!("con-exec-{runtime}");
        let _cleanup = Cleanup::new(runtime, &state, &id);
        let call = |args: &[&str]| harness::call(runtime, &state, args);
        let out = call(&["run", "--detach", "--bundle", bs, &id]);
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        // Without a tty first: the container's stdio is not one.
        let out = call(&["exec", &id, "sh", "-c", "tty; true"]);
        assert!(
            text(&out).contains("not a tty"),
            "{runtime}: {}",
            text(&out)
        );
        let socket = dir.path().join(format!("{runtime}.sock"));
        let master = serve(&socket, |pty| {
            // Typed input reaches the exec'd shell too.
            pty.expect("ready");
            pty.send(b"echo typed-$((6*7))\n");
        });
        let script = format!("{TTY_SCRIPT}; echo ready; read line; eval \"$line\"");
        let ss = socket.to_str().unwrap();
        let out = call(&[
            "exec",
            "--tty",
            "--console-socket",
            ss,
            &id,
            "sh",
            "-c",
            &script,
        ]);
        let (_, pty) = master.join().unwrap();
        println!("{runtime}: {} pty {pty:?} {}", out.status, err(&out));
        assert!(out.status.success(), "{runtime}: {}", err(&out));
        let report = tty_report(&pty);
        assert!(
            report.tty.starts_with("/dev/pts/"),
            "{runtime}: tty says {:?}",
            report.tty
        );
        assert!(report.session_leader, "{runtime}: not a session leader");
        assert!(report.ctty, "{runtime}: no controlling terminal");
        assert!(pty.contains("typed-42"), "{runtime}: {pty:?}");
    }
}
