//! How to start a VM: the QEMU command line and launching it.

use std::fs::File;
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
    user_net: bool,
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
            user_net: false,
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

    /// A virtio-net NIC on QEMU's user-mode network (default: no NIC).
    pub fn user_net(mut self) -> Self {
        self.user_net = true;
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
    /// log, QMP socket and variable store go.
    /// `serial: None` puts the serial console and QEMU's monitor on the
    /// terminal (`cargo xtask run`).
    fn args(
        &self,
        accel: Accel,
        serial: Option<&Path>,
        qmp: &Path,
        vars: Option<&Path>,
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
        if self.user_net {
            push(&[
                "-netdev",
                "user,id=n0",
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
        let args = self.args(accel, None, &self.dir.join("qmp.sock"), vars.as_deref());
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
        let args = self.args(accel, Some(&serial_path), &qmp_path, vars.as_deref());
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
        )
    }

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
        assert!(contains_pair(&args, "-netdev", "user,id=n0"));
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
    fn recorded_command_lines_quote_what_needs_it() {
        let line = shell_words(
            Path::new("/usr/bin/qemu"),
            &["-append".into(), "a b".into()],
        );
        assert_eq!(line, "/usr/bin/qemu -append 'a b'\n");
    }
}
