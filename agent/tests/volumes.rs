//! Volumes, host paths and tmpfs mounts end to end, as root in a private
//! mount namespace with cgroup2: the real agent, huskctl as a user types
//! it, busybox containers. The hostile cases come first: a mount target
//! through a symlink the image planted, targets over the kernel's
//! filesystems, host paths the policy does not allow or that lead out of
//! what it allows, and a volume removed while a container names it.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use husk_api::containers::{ContainerInfo, Status};
use husk_api::volumes::{Volume, VolumeList};

use common::{Agent, enter_cgroup2_namespace, eventually, kill_containers};
use husk_testkit::{busybox_layer, oci_archive};

const IMAGE: &str = "husk.test/busybox:1";
/// busybox and links planted to lead mounts out of the root: `/evil` to
/// `/`, `/up` to `../../../../..`.
const HOSTILE: &str = "husk.test/planted-links:1";

struct Machine {
    dir: tempfile::TempDir,
    agent: Option<Agent>,
}

impl Machine {
    fn new(agent_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::write(
            dir.path().join("agent.toml"),
            format!("{agent_toml}\n[limits.containers]\ndefault_pids = -1\n"),
        )
        .unwrap();
        let mut machine = Self { dir, agent: None };
        machine.start_agent();
        for (name, layers) in [
            (IMAGE, vec![busybox_layer()]),
            (HOSTILE, vec![busybox_layer(), planted_links()]),
        ] {
            let archive = machine.path("image.tar");
            std::fs::write(&archive, oci_archive(name, &layers)).unwrap();
            machine.ok(&["image", "import", archive.to_str().unwrap()]);
        }
        machine
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn start_agent(&mut self) {
        let args = common::agent_args(self.dir.path(), &self.path("agent.toml"));
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        self.agent = Some(Agent::start(self.dir.path(), &args));
    }

    fn restart_agent(&mut self) {
        self.agent.take().unwrap().stop();
        self.start_agent();
    }

    fn ok(&self, args: &[&str]) -> String {
        self.agent.as_ref().unwrap().huskctl_ok(args)
    }

    fn err(&self, args: &[&str]) -> String {
        self.agent.as_ref().unwrap().huskctl_err(args)
    }

    /// A command that fails, whether the agent refused it (exit 1) or
    /// huskctl's own flag parsing did (exit 2): its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.agent.as_ref().unwrap().huskctl(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn volumes(&self) -> VolumeList {
        serde_json::from_str(&self.ok(&["volume", "ls", "--json"])).unwrap()
    }

    fn volume(&self, name: &str) -> Volume {
        let mut list: Vec<Volume> =
            serde_json::from_str(&self.ok(&["volume", "inspect", name])).unwrap();
        list.remove(0)
    }

    fn inspect(&self, name: &str) -> ContainerInfo {
        serde_json::from_str(&self.ok(&["inspect", name])).unwrap()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        kill_containers(&self.path("root"), &self.path("run"));
    }
}

fn planted_links() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, target) in [("evil", "/"), ("up", "../../../../..")] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        tar.append_link(&mut h, path, target).unwrap();
    }
    tar.into_inner().unwrap()
}

/// Mount targets are found inside the container's root, whatever links
/// the image planted, and never over /proc or /sys (runc's
/// CVE-2021-30465 and CVE-2019-16884 class).
#[test]
fn mount_targets_never_leave_the_container() {
    if !enter_cgroup2_namespace("mount_targets_never_leave_the_container") {
        return;
    }
    let m = Machine::new("");
    let marker = format!("husk-volume-escape-{}", std::process::id());
    for target in [format!("/evil/tmp/{marker}"), format!("/up/tmp/{marker}")] {
        // The volume lands on the container's /tmp/<marker>, where the
        // container sees it.
        let out = m.ok(&[
            "run",
            "--rm",
            "-v",
            &format!("planted:{target}"),
            HOSTILE,
            "sh",
            "-c",
            &format!("echo inside > {target}/file && cat /tmp/{marker}/file"),
        ]);
        assert_eq!(out, "inside\n", "{target}");
        assert!(
            !Path::new("/tmp").join(&marker).exists(),
            "{target} was mounted on the host's /tmp"
        );
    }
    let data = PathBuf::from(m.volume("planted").mountpoint);
    assert_eq!(
        std::fs::read_to_string(data.join("file")).unwrap(),
        "inside\n"
    );

    for (target, says) in [
        ("/proc/sys/kernel", "under /proc"),
        ("/proc", "under /proc"),
        ("/sys/kernel", "under /sys"),
        ("/", "root"),
        ("relative", "not an absolute path"),
        ("/a/../../etc", "`..`"),
    ] {
        let e = m.refused(&["run", "--rm", "-v", &format!("v1:{target}"), IMAGE, "true"]);
        assert!(e.contains(says), "{target}: {e}");
    }
    let e = m.err(&[
        "run", "--rm", "-v", "a1:/same", "--tmpfs", "/same/", IMAGE, "true",
    ]);
    assert!(e.contains("target of two mounts"), "{e}");
    // Refused requests made no volume.
    let names: Vec<String> = m.volumes().volumes.into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["planted"]);
}

/// No host path is bound under the default policy, nor anything outside
/// `bind_mounts` once resolved (a link inside an allowed directory that
/// leads out of it).
#[test]
fn host_paths_only_where_the_policy_allows() {
    if !enter_cgroup2_namespace("host_paths_only_where_the_policy_allows") {
        return;
    }
    let closed = Machine::new("");
    let e = closed.err(&["run", "--rm", "-v", "/etc:/host-etc:ro", IMAGE, "true"]);
    assert!(e.contains("bind mounts of host paths are disabled"), "{e}");
    drop(closed);

    let shared = tempfile::tempdir().unwrap();
    let allowed = shared.path().join("allowed");
    std::fs::create_dir_all(allowed.join("site")).unwrap();
    std::fs::write(allowed.join("site/index.html"), "hello from the host\n").unwrap();
    std::os::unix::fs::symlink("/etc", allowed.join("to-etc")).unwrap();
    let m = Machine::new(&format!(
        "[security]\nbind_mounts = [\"{}\"]\n",
        allowed.display()
    ));
    let site = allowed.join("site");
    let out = m.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/srv:ro", site.display()),
        IMAGE,
        "sh",
        "-c",
        "cat /srv/index.html; echo x > /srv/new || echo refused",
    ]);
    assert!(out.starts_with("hello from the host\n"), "{out}");
    assert!(out.ends_with("refused\n"), "{out}");
    assert!(!site.join("new").exists());
    // --mount's bind, writable.
    m.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/srv", site.display()),
        IMAGE,
        "sh",
        "-c",
        "echo written > /srv/new",
    ]);
    assert_eq!(
        std::fs::read_to_string(site.join("new")).unwrap(),
        "written\n"
    );
    for (source, says) in [
        (
            allowed.join("to-etc"),
            "under none of the security policy's bind_mounts",
        ),
        (shared.path().to_path_buf(), "under none"),
        (allowed.join("missing"), "No such file"),
    ] {
        let e = m.err(&[
            "run",
            "--rm",
            "-v",
            &format!("{}:/x", source.display()),
            IMAGE,
            "true",
        ]);
        assert!(e.contains(says), "{}: {e}", source.display());
    }
    let e = m.refused(&[
        "run",
        "--rm",
        "-v",
        &format!("{}/../..:/x", allowed.display()),
        IMAGE,
        "true",
    ]);
    assert!(e.contains("`..`"), "{e}");

    // A machine for tenants never shares host paths: agent.toml cannot
    // say both.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[security]\nuserns = \"required\"\nbind_mounts = [\"{}\"]\n",
            allowed.display()
        ),
    )
    .unwrap();
    let out = common::start_refused(dir.path(), &config);
    let (_, stderr) = common::text(&out);
    assert!(stderr.contains("exclude each other"), "{stderr}");
}

/// A named volume outlives its containers and the agent, cannot go while
/// a container (even a stopped one) names it, and an anonymous one goes
/// with its container when asked.
#[test]
fn volumes_outlive_containers_and_are_kept_while_used() {
    if !enter_cgroup2_namespace("volumes_outlive_containers_and_are_kept_while_used") {
        return;
    }
    let mut m = Machine::new("");
    m.ok(&["volume", "create", "--label", "app=db", "data"]);
    // Creating it again is not an error, and changes nothing.
    assert_eq!(m.ok(&["volume", "create", "data"]), "data\n");
    assert_eq!(m.volume("data").labels["app"], "db");
    m.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "data:/data",
        IMAGE,
        "sh",
        "-c",
        "echo kept > /data/file",
    ]);
    let e = m.err(&["volume", "rm", "data"]);
    assert!(e.contains("in use by container writer"), "{e}");
    assert_eq!(m.volume("data").used_by, ["writer"]);
    m.ok(&["rm", "writer"]);
    m.restart_agent();
    let out = m.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=data,target=/d,readonly",
        IMAGE,
        "sh",
        "-c",
        "cat /d/file; echo x > /d/other || echo read-only",
    ]);
    assert_eq!(out, "kept\nread-only\n");

    // A volume made by `run`, named by the user: kept too.
    m.ok(&["run", "--rm", "-v", "made-by-run:/m", IMAGE, "true"]);
    assert!(m.volume("made-by-run").used_by.is_empty());

    // Anonymous: one of its own per container, gone with `rm -v`.
    m.ok(&[
        "run",
        "--name",
        "scratch",
        "-v",
        "/scratch",
        IMAGE,
        "sh",
        "-c",
        "echo s > /scratch/f",
    ]);
    let info = m.inspect("scratch");
    let anonymous = info.options.mounts[0].source.clone();
    assert_eq!(anonymous.len(), 64, "{anonymous}");
    assert!(m.volume(&anonymous).anonymous);
    m.ok(&["rm", "-v", "scratch"]);
    let e = m.err(&["volume", "inspect", &anonymous]);
    assert!(e.contains("no such volume"), "{e}");
    // `--rm` takes its anonymous volumes with it, in the background too.
    m.ok(&[
        "run", "-d", "--rm", "--name", "bg", "-v", "/tmpdata", IMAGE, "true",
    ]);
    eventually(Duration::from_secs(30), "bg removed", || {
        let out = m.agent.as_ref().unwrap().huskctl(&["inspect", "bg"]);
        String::from_utf8_lossy(&out.stderr)
            .contains("no such container")
            .then_some(())
    });
    let left: Vec<Volume> = m.volumes().volumes;
    assert!(left.iter().all(|v| !v.anonymous), "{left:?}");

    // Prune: what no container names.
    m.ok(&[
        "create",
        "--name",
        "holder",
        "-v",
        "data:/data",
        IMAGE,
        "true",
    ]);
    let pruned = m.ok(&["volume", "prune"]);
    assert_eq!(pruned, "made-by-run\n");
    assert_eq!(m.ok(&["volume", "ls", "-q"]), "data\n");
    m.ok(&["rm", "holder"]);
    let data = PathBuf::from(m.volume("data").mountpoint);
    m.ok(&["volume", "rm", "data"]);
    assert!(!data.exists());
    let e = m.err(&["volume", "rm", "data"]);
    assert!(e.contains("no such volume"), "{e}");
}

/// A tmpfs with Docker's flags and the size asked for; a volume given to
/// a container in a user namespace is writable by its root.
#[test]
fn tmpfs_and_volumes_in_user_namespaces() {
    if !enter_cgroup2_namespace("tmpfs_and_volumes_in_user_namespaces") {
        return;
    }
    let m = Machine::new("");
    let mounts = m.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:size=1m,mode=700",
        IMAGE,
        "grep",
        " /t ",
        "/proc/mounts",
    ]);
    for flag in [
        "tmpfs",
        "nosuid",
        "nodev",
        "noexec",
        "size=1024k",
        "mode=700",
    ] {
        assert!(mounts.contains(flag), "{flag}: {mounts}");
    }
    let out = m.ok(&[
        "run",
        "--name",
        "userns",
        "--userns",
        "auto",
        "-v",
        "ns-data:/data",
        IMAGE,
        "sh",
        "-c",
        "echo mine > /data/f && cat /data/f && id -u",
    ]);
    assert_eq!(out, "mine\n0\n");
    let info = m.inspect("userns");
    assert_eq!(info.status, Status::Exited);
    let host_uid = info.options.userns.unwrap().host_uid;
    let data = PathBuf::from(m.volume("ns-data").mountpoint);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(data.join("f")).unwrap().uid(), host_uid);
}

/// README's volume commands, as a user types them (after `--socket`,
/// which says where this test's agent is).
#[test]
fn the_readme_volume_commands_work_as_written() {
    if !enter_cgroup2_namespace("the_readme_volume_commands_work_as_written") {
        return;
    }
    let commands = common::net_machine::readme_commands("Volumes keep a container's data");
    assert_eq!(commands.len(), 3, "{commands:?}");
    let m = Machine::new("");
    let archive = m.path("web.tar");
    std::fs::write(&archive, husk_testkit::web_image_archive()).unwrap();
    m.ok(&["image", "import", archive.to_str().unwrap()]);
    let mut outputs = Vec::new();
    for command in &commands {
        assert_eq!(command[0], "huskctl", "{command:?}");
        let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
        outputs.push(m.ok(&args));
    }
    assert_eq!(outputs, ["db\n", "", "saved\n"]);
    assert!(m.volume("db").used_by.is_empty());
}

/// Docker's copy-up: a new volume starts with what the image has where
/// it is mounted; one that holds anything, or `nocopy`, does not; an
/// image's `VOLUME` gets an anonymous volume so filled; a target the
/// image made a symlink copies nothing (least of all what it points at).
#[test]
fn a_new_volume_starts_with_the_images_directory() {
    if !enter_cgroup2_namespace("a_new_volume_starts_with_the_images_directory") {
        return;
    }
    let m = Machine::new("");
    let seeded = husk_testkit::files_layer(&[
        ("srv/conf/app.conf", 0o640, b"seeded\n"),
        ("srv/conf/sub/more.conf", 0o644, b"more\n"),
        ("srv/data/seed", 0o644, b"from the image\n"),
    ]);
    let archive = m.path("seeded.tar");
    std::fs::write(
        &archive,
        husk_testkit::oci::oci_archive_with(
            "husk.test/seeded:1",
            &[busybox_layer(), seeded],
            serde_json::json!({"Volumes": {"/srv/data": {}}}),
        ),
    )
    .unwrap();
    m.ok(&["image", "import", archive.to_str().unwrap()]);
    let image = "husk.test/seeded:1";

    let cat = |volume: &str, target: &str, file: &str| {
        m.ok(&[
            "run",
            "--rm",
            "-v",
            &format!("{volume}:{target}"),
            image,
            "cat",
            file,
        ])
    };
    assert_eq!(
        cat("conf", "/srv/conf", "/srv/conf/sub/more.conf"),
        "more\n"
    );
    let mode = m.ok(&[
        "run",
        "--rm",
        "-v",
        "conf:/srv/conf",
        image,
        "busybox",
        "stat",
        "-c",
        "%a",
        "/srv/conf/app.conf",
    ]);
    assert_eq!(mode, "640\n");
    // Its own now: changed, kept, never filled again.
    m.ok(&[
        "run",
        "--rm",
        "-v",
        "conf:/srv/conf",
        image,
        "sh",
        "-c",
        "echo changed > /srv/conf/app.conf",
    ]);
    assert_eq!(cat("conf", "/srv/conf", "/srv/conf/app.conf"), "changed\n");
    // Not empty: mounted elsewhere, it gets nothing of the image there.
    let out = m.ok(&[
        "run",
        "--rm",
        "-v",
        "conf:/srv/data",
        image,
        "busybox",
        "ls",
        "/srv/data",
    ]);
    assert_eq!(out, "app.conf\nsub\n");
    // nocopy: empty.
    let out = m.ok(&[
        "run",
        "--rm",
        "-v",
        "bare:/srv/conf:nocopy",
        image,
        "busybox",
        "ls",
        "/srv/conf",
    ]);
    assert_eq!(out, "");

    // The image's VOLUME: an anonymous volume with the image's files.
    assert_eq!(
        m.ok(&["run", "--name", "vol-img", image, "cat", "/srv/data/seed"]),
        "from the image\n"
    );
    let info = m.inspect("vol-img");
    let anonymous = info
        .options
        .mounts
        .iter()
        .find(|mount| mount.target == "/srv/data")
        .unwrap_or_else(|| panic!("no volume at /srv/data: {:?}", info.options.mounts));
    assert!(anonymous.anonymous, "{anonymous:?}");
    let data = PathBuf::from(m.volume(&anonymous.source).mountpoint);
    assert_eq!(
        std::fs::read_to_string(data.join("seed")).unwrap(),
        "from the image\n"
    );
    m.ok(&["rm", "-v", "vol-img"]);
    assert!(!data.exists(), "rm -v left the image's volume");

    // In a user namespace the copy is the container's root's.
    let out = m.ok(&[
        "run",
        "--name",
        "ns-copy",
        "--userns",
        "auto",
        "-v",
        "nsconf:/srv/conf",
        image,
        "sh",
        "-c",
        "busybox stat -c %u /srv/conf/app.conf && echo more >> /srv/conf/app.conf",
    ]);
    assert_eq!(out, "0\n");
    let host_uid = m.inspect("ns-copy").options.userns.unwrap().host_uid;
    let conf = PathBuf::from(m.volume("nsconf").mountpoint);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(conf.join("app.conf")).unwrap().uid(),
        host_uid
    );
    assert_eq!(std::fs::metadata(&conf).unwrap().uid(), host_uid);

    // The planted `/evil` → `/` and `/up` → `../../..`: whether the run
    // goes or not (`/evil` is the container's root: its /proc is not
    // there to mount on), nothing of the host is copied into a volume.
    for (volume, target) in [
        ("planted", "/evil"),
        ("planted-etc", "/evil/etc"),
        ("planted-up", "/up/etc"),
    ] {
        let out = m.agent.as_ref().unwrap().huskctl(&[
            "run",
            "--rm",
            "-v",
            &format!("{volume}:{target}"),
            HOSTILE,
            "true",
        ]);
        print!("{target}: {out:?}");
        // Made at create, before anything could fail.
        let dir = PathBuf::from(m.volume(volume).mountpoint);
        let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(
            entries.is_empty(),
            "{target}: the host was copied: {entries:?}"
        );
    }
}
