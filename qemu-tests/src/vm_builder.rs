//! How to start a VM: the QEMU command line and launching it.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::deadline::scaled;
use crate::error::{Error, IoContext, Result};
use crate::host::qemu_binary;
use crate::qmp::Qmp;
use crate::slots::Slot;
use crate::test_dir::TestDir;
use crate::vm::Vm;

/// `tcg` (default: nested KVM hangs on the CI machines) or `kvm`.
pub const ACCEL_ENV: &str = "HUSK_QEMU_ACCEL";

/// Always on the kernel command line: the console is the first serial
/// port, and a kernel panic reboots at once instead of hanging (with
/// [`VmBuilder::no_reboot`], QEMU then exits).
pub const BASE_CMDLINE: &str = "console=ttyS0 panic=-1";

/// How long QEMU may take to create its QMP socket.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where [`VmBuilder::forward_to_host`] puts the host's servers on the
/// guest's network (slirp's 10.0.2.0/24). Not the gateway 10.0.2.2 nor
/// the DNS relay 10.0.2.3: slirp refuses forwards on those.
pub const FORWARD_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);

/// The EC2-style metadata service, where the agent asks for user-data.
pub const METADATA_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 254), 80);

/// slirp forwards only addresses on the guest's own network, so a VM
/// that has [`METADATA_ADDR`] forwarded (or shadowed) gets this one
/// instead of slirp's default 10.0.2.0/24: all of link-local
/// 169.254.0.0/16, so that the other metadata addresses clouds use on
/// it (ECS's 169.254.170.2, …) are the guest's own too, where nothing
/// answers; gateway 169.254.1.2, DNS .1.3, DHCP from .1.15 (its first
/// and last /24 are reserved).
const METADATA_NET: &str =
    "net=169.254.0.0/16,host=169.254.1.2,dns=169.254.1.3,dhcpstart=169.254.1.15";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    #[default]
    Q35,
    Pc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    /// From [`ACCEL_ENV`]; TCG when unset.
    pub fn from_env() -> Result<Accel> {
        match std::env::var(ACCEL_ENV).as_deref() {
            Err(_) | Ok("") | Ok("tcg") => Ok(Accel::Tcg),
            Ok("kvm") => Ok(Accel::Kvm),
            Ok(other) => Err(Error::Prerequisite(format!(
                "{ACCEL_ENV}={other:?}: expected \"tcg\" or \"kvm\""
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Drive {
    path: PathBuf,
    format: String,
}

/// A guest address whose TCP connections reach a host server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Forward {
    guest: SocketAddrV4,
    host: SocketAddr,
}

/// The NIC on QEMU's user-mode network (slirp).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UserNet {
    /// Off (`restrict=on`) for every test: the guest reaches only
    /// `forwards`. On for `cargo xtask run`.
    internet: bool,
    forwards: Vec<Forward>,
    /// Where [`METADATA_ADDR`] goes; None: nowhere.
    metadata: Option<SocketAddr>,
    /// Host loopback TCP ports forwarded to guest ports (`hostfwd`).
    host_forwards: Vec<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ovmf {
    code: PathBuf,
    vars: PathBuf,
}

/// How to start a VM. Everything the machine writes goes to the
/// [`TestDir`] it is given.
#[derive(Debug)]
pub struct VmBuilder {
    dir: TestDir,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    cmdline: Vec<String>,
    drives: Vec<Drive>,
    ovmf: Option<Ovmf>,
    memory_mib: u32,
    cpus: u32,
    user_net: Option<UserNet>,
    no_reboot: bool,
    machine: Machine,
    accel: Option<Accel>,
    extra_args: Vec<String>,
}

impl VmBuilder {
    pub fn new(dir: TestDir) -> VmBuilder {
        VmBuilder {
            dir,
            kernel: None,
            initrd: None,
            cmdline: Vec::new(),
            drives: Vec::new(),
            ovmf: None,
            memory_mib: 512,
            cpus: 1,
            user_net: None,
            no_reboot: false,
            machine: Machine::default(),
            accel: None,
            extra_args: Vec::new(),
        }
    }

    /// Direct kernel boot (`-kernel`).
    pub fn kernel(mut self, path: impl Into<PathBuf>) -> Self {
        self.kernel = Some(path.into());
        self
    }

    pub fn initrd(mut self, path: impl Into<PathBuf>) -> Self {
        self.initrd = Some(path.into());
        self
    }

    /// Appends to the kernel command line (after [`BASE_CMDLINE`]).
    pub fn cmdline(mut self, args: &str) -> Self {
        self.cmdline.push(args.to_owned());
        self
    }

    /// A virtio disk backed by `path` (`format`: "raw", "qcow2", …).
    pub fn drive(mut self, path: impl Into<PathBuf>, format: &str) -> Self {
        self.drives.push(Drive {
            path: path.into(),
            format: format.to_owned(),
        });
        self
    }

    /// UEFI firmware. The variable store is copied into the test's
    /// directory at launch so tests never write the shared one.
    pub fn ovmf(mut self, code: impl Into<PathBuf>, vars: impl Into<PathBuf>) -> Self {
        self.ovmf = Some(Ovmf {
            code: code.into(),
            vars: vars.into(),
        });
        self
    }

    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }

    /// A virtio-net NIC on QEMU's user-mode network (default: no NIC),
    /// restricted (`restrict=on`): the guest reaches nothing but the
    /// servers given with [`VmBuilder::forward_to_host`] and
    /// [`VmBuilder::metadata_service`]: not the host (10.0.2.2 is no
    /// longer its loopback), not slirp's DNS relay, not the internet, so
    /// a boot on a cloud CI machine never asks that machine's metadata
    /// service. slirp's DHCP still answers, without router and DNS
    /// options (slirp leaves them out when restricted).
    pub fn user_net(mut self) -> Self {
        self.user_net.get_or_insert_with(UserNet::default);
        self
    }

    /// The guest's TCP connections to [`FORWARD_ADDR`]`:guest_port` reach
    /// `host`, a server the test runs (implies [`VmBuilder::user_net`]).
    pub fn forward_to_host(mut self, guest_port: u16, host: SocketAddr) -> Self {
        let guest = SocketAddrV4::new(FORWARD_ADDR, guest_port);
        let net = self.user_net.get_or_insert_with(UserNet::default);
        net.forwards.push(Forward { guest, host });
        self
    }

    /// TCP connections to 127.0.0.1:`host_port` on this host reach the
    /// guest's `guest_port` (slirp's `hostfwd`, as a cloud's load balancer
    /// reaches a machine's port; implies [`VmBuilder::user_net`]). Pick
    /// the host port with [`free_port`].
    pub fn forward_to_guest(mut self, host_port: u16, guest_port: u16) -> Self {
        let net = self.user_net.get_or_insert_with(UserNet::default);
        net.host_forwards.push((host_port, guest_port));
        self
    }

    /// The guest's [`METADATA_ADDR`] reaches `host`, an IMDS server the
    /// test or the developer runs (implies [`VmBuilder::user_net`]). The
    /// guest's network becomes 169.254.0.0/16 (gateway 169.254.1.2, DNS
    /// .1.3, DHCP from .1.15): slirp forwards only addresses on it.
    pub fn metadata_service(mut self, host: SocketAddr) -> Self {
        self.user_net.get_or_insert_with(UserNet::default).metadata = Some(host);
        self
    }

    /// For `cargo xtask run` (implies [`VmBuilder::user_net`]): the guest
    /// reaches the internet through the host's sockets, but not the
    /// host's metadata service: the guest's network is the metadata one
    /// (as with [`VmBuilder::metadata_service`]) and, unless that is
    /// given, [`METADATA_ADDR`] is a forward that closes every connection
    /// at once. No IPv6: slirp would carry it to the host's side as it
    /// is, EC2's IPv6 metadata address included, and forwards are IPv4
    /// only.
    pub fn internet(mut self) -> Self {
        self.user_net.get_or_insert_with(UserNet::default).internet = true;
        self
    }

    /// QEMU exits instead of resetting when the guest reboots.
    pub fn no_reboot(mut self) -> Self {
        self.no_reboot = true;
        self
    }

    pub fn machine(mut self, machine: Machine) -> Self {
        self.machine = machine;
        self
    }

    /// Overrides [`ACCEL_ENV`].
    pub fn accel(mut self, accel: Accel) -> Self {
        self.accel = Some(accel);
        self
    }

    /// Any other QEMU argument, verbatim.
    pub fn qemu_arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_owned());
        self
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// QEMU's arguments (without the binary), given where the serial
    /// log, QMP socket and variable store go, and the bash that carries
    /// forwarded connections.
    /// `serial: None` puts the serial console and QEMU's monitor on the
    /// terminal (`cargo xtask run`).
    fn args(
        &self,
        accel: Accel,
        serial: Option<&Path>,
        qmp: &Path,
        vars: Option<&Path>,
        bash: &Path,
    ) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        let machine = match self.machine {
            Machine::Q35 => "q35",
            Machine::Pc => "pc",
        };
        push(&["-machine", machine]);
        match accel {
            Accel::Tcg => push(&["-accel", "tcg"]),
            Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        }
        push(&[
            "-m",
            &self.memory_mib.to_string(),
            "-smp",
            &self.cpus.to_string(),
        ]);
        push(&["-display", "none", "-nodefaults"]);
        match serial {
            Some(serial) => {
                let serial_dev = format!("file,id=ser0,path={}", qemu_escape(serial));
                push(&["-chardev", &serial_dev, "-serial", "chardev:ser0"]);
            }
            None => push(&["-serial", "mon:stdio"]),
        }
        push(&[
            "-qmp",
            &format!("unix:{},server=on,wait=off", qemu_escape(qmp)),
        ]);
        if let Some(net) = &self.user_net {
            push(&[
                "-netdev",
                &netdev(net, bash),
                "-device",
                "virtio-net-pci,netdev=n0",
            ]);
        } else {
            push(&["-nic", "none"]);
        }
        if let (Some(ovmf), Some(vars)) = (&self.ovmf, vars) {
            let code = format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                qemu_escape(&ovmf.code)
            );
            let vars = format!("if=pflash,format=raw,unit=1,file={}", qemu_escape(vars));
            push(&["-drive", &code, "-drive", &vars]);
        }
        for drive in &self.drives {
            let spec = format!(
                "file={},format={},if=virtio",
                qemu_escape(&drive.path),
                drive.format
            );
            push(&["-drive", &spec]);
        }
        if let Some(kernel) = &self.kernel {
            push(&["-kernel", &kernel.to_string_lossy()]);
            let mut cmdline = vec![BASE_CMDLINE.to_owned()];
            cmdline.extend(self.cmdline.iter().cloned());
            push(&["-append", &cmdline.join(" ")]);
        }
        if let Some(initrd) = &self.initrd {
            push(&["-initrd", &initrd.to_string_lossy()]);
        }
        if self.no_reboot {
            push(&["-no-reboot"]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The firmware's variable store is per machine: boot counting and
    /// boot entries write to it.
    fn copy_ovmf_vars(&self) -> Result<Option<PathBuf>> {
        let Some(ovmf) = &self.ovmf else {
            return Ok(None);
        };
        let copy = self.dir.join("OVMF_VARS.fd");
        std::fs::copy(&ovmf.vars, &copy)
            .context(|| format!("copying {} to {}", ovmf.vars.display(), copy.display()))?;
        Ok(Some(copy))
    }

    /// Runs QEMU in the foreground with the serial console and QEMU's
    /// monitor on this terminal (Ctrl-A X quits, Ctrl-A C toggles the
    /// monitor); returns when QEMU exits.
    pub fn run_interactive(self) -> Result<std::process::ExitStatus> {
        let qemu = qemu_binary()?;
        let accel = match self.accel {
            Some(accel) => accel,
            None => Accel::from_env()?,
        };
        let vars = self.copy_ovmf_vars()?;
        let args = self.args(
            accel,
            None,
            &self.dir.join("qmp.sock"),
            vars.as_deref(),
            &bash()?,
        );
        Command::new(&qemu)
            .args(&args)
            .status()
            .context(|| format!("starting {}", qemu.display()))
    }

    /// Starts QEMU and connects to its QMP socket. Blocks first while
    /// the per-binary VM cap is reached.
    pub fn launch(self) -> Result<Vm> {
        let qemu = qemu_binary()?;
        let accel = match self.accel {
            Some(accel) => accel,
            None => Accel::from_env()?,
        };
        let serial_path = self.dir.join("serial.log");
        let qmp_path = self.dir.join("qmp.sock");
        let qemu_log_path = self.dir.join("qemu.log");
        let vars = self.copy_ovmf_vars()?;
        let args = self.args(
            accel,
            Some(&serial_path),
            &qmp_path,
            vars.as_deref(),
            &bash()?,
        );
        std::fs::write(self.dir.join("qemu.cmdline"), shell_words(&qemu, &args))
            .context(|| "recording the QEMU command line".to_owned())?;

        let slot = Slot::acquire();
        let log = File::create(&qemu_log_path)
            .context(|| format!("creating {}", qemu_log_path.display()))?;
        let log_err = log
            .try_clone()
            .context(|| "duplicating the QEMU log fd".to_owned())?;
        let child = Command::new(&qemu)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .context(|| format!("starting {}", qemu.display()))?;

        let mut vm = Vm::started(child, serial_path, qemu_log_path, self.dir, slot);
        let qmp = Qmp::connect(&qmp_path, scaled(QMP_CONNECT_TIMEOUT), || {
            vm.check_alive("the QMP socket")
        })?;
        vm.set_qmp(qmp);
        Ok(vm)
    }
}

/// QEMU option values separate fields with ','; a literal comma is ",,".
fn qemu_escape(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// The `-netdev` value for `net`.
fn netdev(net: &UserNet, bash: &Path) -> String {
    // Open to the internet, IPv4 only (see `internet`); else only the
    // forwards and slirp's DHCP.
    let reach = if net.internet {
        "ipv6=off"
    } else {
        "restrict=on"
    };
    let mut spec = vec!["user".to_owned(), "id=n0".to_owned(), reach.to_owned()];
    // On the metadata network whenever the metadata address must be
    // slirp's own, forwarded or shadowed: elsewhere slirp would connect
    // the guest to whatever answers at 169.254.169.254 on the host's side.
    let metadata_net = net.metadata.is_some() || net.internet;
    if metadata_net {
        spec.push(METADATA_NET.to_owned());
    }
    for forward in &net.forwards {
        assert!(
            !metadata_net,
            "forward_to_host puts {} on 10.0.2.0/24, which metadata_service and internet replace",
            forward.guest
        );
        spec.push(guestfwd(forward.guest, &connect_to(bash, forward.host)));
    }
    for (host_port, guest_port) in &net.host_forwards {
        spec.push(format!("hostfwd=tcp:127.0.0.1:{host_port}-:{guest_port}"));
    }
    match net.metadata {
        Some(host) => spec.push(guestfwd(METADATA_ADDR, &connect_to(bash, host))),
        // A command that exits at once: the guest's connection is
        // accepted and closed, and no bytes reach anything.
        None if net.internet => spec.push(guestfwd(METADATA_ADDR, "cmd:true")),
        None => {}
    }
    spec.join(",")
}

/// A TCP port on 127.0.0.1 nothing listens on now (the kernel's pick), for
/// [`VmBuilder::forward_to_guest`].
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A `guestfwd` rule: TCP connections to `guest` go to `target`.
fn guestfwd(guest: SocketAddrV4, target: &str) -> String {
    format!("guestfwd=tcp:{guest}-{}", target.replace(',', ",,"))
}

/// A `cmd:` forward target connecting each guest connection to `host`.
/// A command per connection, because QEMU's other kind of target, a
/// character device, is one connection to the host made when QEMU
/// starts, shared by every guest connection and never closed: HTTP's
/// connection per request does not survive it. slirp runs the command
/// with the guest's connection on stdin and stdout; bash's /dev/tcp
/// opens the host side, and once the server has answered and closed,
/// bash ends the copy the other way too and exits, so the guest sees the
/// server's close. (A failed connect: the guest's connection closes.)
fn connect_to(bash: &Path, host: SocketAddr) -> String {
    let script = format!(
        "exec 2>/dev/null 3<>/dev/tcp/{}/{} || exit 1; cat <&0 >&3 & cat <&3; kill $!",
        host.ip(),
        host.port()
    );
    // slirp splits the command line as a shell would (g_shell_parse_argv).
    format!("cmd:'{}' -c '{script}'", bash.display())
}

/// bash from `$PATH`, which forwarded connections run through.
fn bash() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("bash"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            Error::Prerequisite(
                "bash is not in $PATH (forwarded connections run through it); apt-get install bash"
                    .into(),
            )
        })
}

/// The command line as a shell could re-run it (for debugging by hand).
fn shell_words(program: &Path, args: &[String]) -> String {
    let quote = |s: &str| {
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=/.,:".contains(c))
        {
            s.to_owned()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut words = vec![quote(&program.to_string_lossy())];
    words.extend(args.iter().map(|a| quote(a)));
    words.join(" ") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(builder: &VmBuilder, accel: Accel) -> Vec<String> {
        builder.args(
            accel,
            Some(Path::new("/t/serial.log")),
            Path::new("/t/qmp.sock"),
            Some(Path::new("/t/VARS.fd")),
            Path::new("/bin/bash"),
        )
    }

    fn netdev_of(builder: VmBuilder) -> String {
        let args = args_of(&builder, Accel::Tcg);
        let at = args.iter().position(|a| a == "-netdev").expect("-netdev");
        args[at + 1].clone()
    }

    fn builder() -> VmBuilder {
        VmBuilder::new(TestDir::new("args").unwrap())
    }

    const BRIDGE_4321: &str = "cmd:'/bin/bash' -c 'exec 2>/dev/null 3<>/dev/tcp/127.0.0.1/4321 \
                               || exit 1; cat <&0 >&3 & cat <&3; kill $!'";

    fn contains_pair(args: &[String], flag: &str, value: &str) -> bool {
        args.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    #[test]
    fn defaults_are_tcg_q35_no_nic_and_rebooting() {
        let builder = VmBuilder::new(TestDir::new("args").unwrap())
            .kernel("/k")
            .initrd("/i");
        let args = args_of(&builder, Accel::Tcg);
        assert!(contains_pair(&args, "-machine", "q35"));
        assert!(contains_pair(&args, "-accel", "tcg"));
        assert!(contains_pair(&args, "-m", "512"));
        assert!(contains_pair(&args, "-smp", "1"));
        assert!(contains_pair(&args, "-nic", "none"));
        assert!(contains_pair(&args, "-append", "console=ttyS0 panic=-1"));
        assert!(contains_pair(
            &args,
            "-chardev",
            "file,id=ser0,path=/t/serial.log"
        ));
        assert!(contains_pair(&args, "-serial", "chardev:ser0"));
        assert!(contains_pair(
            &args,
            "-qmp",
            "unix:/t/qmp.sock,server=on,wait=off"
        ));
        assert!(args.contains(&"-nodefaults".to_owned()));
        assert!(!args.contains(&"-no-reboot".to_owned()));
    }

    #[test]
    fn options_map_to_qemu_arguments() {
        let builder = VmBuilder::new(TestDir::new("args").unwrap())
            .kernel("/k")
            .cmdline("husk.debug")
            .memory_mib(1024)
            .cpus(2)
            .user_net()
            .no_reboot()
            .machine(Machine::Pc)
            .drive("/d/a,b.img", "raw")
            .ovmf("/fw/CODE.fd", "/fw/VARS.fd");
        let args = args_of(&builder, Accel::Kvm);
        assert!(contains_pair(&args, "-machine", "pc"));
        assert!(contains_pair(&args, "-accel", "kvm"));
        assert!(contains_pair(&args, "-cpu", "host"));
        assert!(contains_pair(&args, "-m", "1024"));
        assert!(contains_pair(
            &args,
            "-append",
            "console=ttyS0 panic=-1 husk.debug"
        ));
        assert!(contains_pair(&args, "-netdev", "user,id=n0,restrict=on"));
        assert!(contains_pair(&args, "-device", "virtio-net-pci,netdev=n0"));
        assert!(!args.contains(&"-nic".to_owned()));
        assert!(args.contains(&"-no-reboot".to_owned()));
        assert!(contains_pair(
            &args,
            "-drive",
            "file=/d/a,,b.img,format=raw,if=virtio"
        ));
        assert!(contains_pair(
            &args,
            "-drive",
            "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd"
        ));
        assert!(contains_pair(
            &args,
            "-drive",
            "if=pflash,format=raw,unit=1,file=/t/VARS.fd"
        ));
        assert!(!args.contains(&"-initrd".to_owned()));
    }

    #[test]
    fn the_user_net_is_restricted_to_the_forwards_asked_for() {
        assert_eq!(netdev_of(builder().user_net()), "user,id=n0,restrict=on");
        let host: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            netdev_of(builder().forward_to_host(8080, host)),
            format!("user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-{BRIDGE_4321}")
        );
    }

    #[test]
    fn the_metadata_service_moves_the_network_to_reach_it() {
        let host: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            netdev_of(builder().user_net().metadata_service(host)),
            format!(
                "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.1.2,\
                 dns=169.254.1.3,dhcpstart=169.254.1.15,\
                 guestfwd=tcp:169.254.169.254:80-{BRIDGE_4321}"
            )
        );
    }

    #[test]
    fn the_internet_shadows_the_hosts_metadata_service() {
        let shadowed = "user,id=n0,ipv6=off,net=169.254.0.0/16,host=169.254.1.2,\
                        dns=169.254.1.3,dhcpstart=169.254.1.15,guestfwd=tcp:169.254.169.254:80-";
        assert_eq!(
            netdev_of(builder().internet()),
            format!("{shadowed}cmd:true")
        );
        let host: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            netdev_of(builder().internet().metadata_service(host)),
            format!("{shadowed}{BRIDGE_4321}")
        );
    }

    #[test]
    #[should_panic(expected = "forward_to_host puts 10.0.2.100:8080 on 10.0.2.0/24")]
    fn forwards_are_not_on_the_metadata_network() {
        let host: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        netdev_of(builder().forward_to_host(8080, host).metadata_service(host));
    }

    #[test]
    fn commas_in_forward_targets_are_escaped() {
        let guest = SocketAddrV4::new(FORWARD_ADDR, 80);
        assert_eq!(
            guestfwd(guest, "cmd:a,b"),
            "guestfwd=tcp:10.0.2.100:80-cmd:a,,b"
        );
    }

    /// The bridge as slirp runs it, its stdin and stdout one socket: the
    /// request reaches the server, and the server's answer and close come
    /// back (a guest reading to the end would otherwise hang).
    #[test]
    fn the_bridge_carries_a_connection_both_ways_and_closes() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 5];
            stream.read_exact(&mut request).unwrap();
            stream.write_all(b"answer to ").unwrap();
            stream.write_all(&request).unwrap();
        });
        let (mut guest, bridge_end) = UnixStream::pair().unwrap();
        let stdout = bridge_end.try_clone().unwrap();
        let command = connect_to(&bash().unwrap(), host);
        let script = command
            .split_once(" -c '")
            .unwrap()
            .1
            .trim_end_matches('\'');
        let mut bridge = Command::new(bash().unwrap())
            .args(["-c", script])
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(bridge_end)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(stdout)))
            .spawn()
            .unwrap();
        guest.write_all(b"hello").unwrap();
        guest
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = String::new();
        guest.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "answer to hello");
        server.join().unwrap();
        assert!(bridge.wait().unwrap().success());
    }

    #[test]
    fn recorded_command_lines_quote_what_needs_it() {
        let line = shell_words(
            Path::new("/usr/bin/qemu"),
            &["-append".into(), "a b".into()],
        );
        assert_eq!(line, "/usr/bin/qemu -append 'a b'\n");
    }
}
