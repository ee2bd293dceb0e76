//! Images through Husk's Docker API with Debian's `/usr/bin/docker` 20.10,
//! as a user types it: `docker pull` from a real registry (Debian's
//! docker-registry with basic auth, the image pushed by skopeo) with
//! the credentials of the client's `docker login` file (X-Registry-Auth),
//! then `run`; `docker tag` (and huskctl's); `docker load` of an archive,
//! and of one that is not; the prunes (`container`, `image`, `image -a`,
//! `system`) sparing what is in use; and the events of it all
//! (`docker save`: docker_save.rs). As root,
//! in a private mount and network namespace with cgroup2, as the other
//! container tests.

mod common;

use base64::Engine as _;

use common::docker::Machine;
use common::enter_cgroup2_namespace;
use husk_testkit::registry::{Registry, RegistryOptions, image_layout, skopeo_copy};
use husk_testkit::{busybox_layer, files_layer, oci_archive};

const USER: &str = "puller";
const PASSWORD: &str = "s3cret:with:colons";

/// docker-registry with basic auth, holding busybox as `team/busybox:1`.
fn registry(dir: &std::path::Path) -> Registry {
    let registry = Registry::start(RegistryOptions {
        basic_auth: Some((USER.into(), PASSWORD.into())),
        ..Default::default()
    })
    .expect("docker-registry (Debian's docker-registry package)");
    let layout = dir.join("layout");
    image_layout(&layout, "1", &[busybox_layer()]).unwrap();
    skopeo_copy(
        &format!("oci:{}:1", layout.display()),
        &registry.docker_ref("team/busybox:1"),
        &registry.push_options(),
    )
    .expect("skopeo copy into the registry");
    registry
}

#[test]
fn docker_pulls_with_the_clients_login_and_tags_loads_and_prunes() {
    if !enter_cgroup2_namespace("docker_pulls_with_the_clients_login_and_tags_loads_and_prunes") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let registry = registry(scratch.path());
    // `localhost:PORT`, not `127.0.0.1:PORT`: agent.toml's `http://…`
    // spelling sorts first, as a real one would be found first.
    let host = registry.host().replace("127.0.0.1", "localhost");
    // The registry over plain HTTP, and in agent.toml a stale password
    // under another spelling of its name: the client's login must win.
    let mut m = Machine::start_with(&format!(
        "[registry]\ninsecure = [\"{host}\"]\n\n[registry.auths.\"http://{host}/\"]\n\
         username = \"{USER}\"\npassword = \"stale\"\n"
    ));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let image = format!("{host}/team/busybox:1");

    // Without a login, the machine's stale password is refused, and the
    // CLI says so.
    let refused = m.fails(&["pull", &image]);
    assert!(
        refused.contains(&format!("refused the credentials of `{USER}`")),
        "{refused}"
    );

    // `docker login` writes this file; the CLI sends its entry along.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        m.path("docker-config/config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let pulled = m.ok(&["pull", &image]);
    // Its one layer is busybox's, which the machine has already.
    assert!(pulled.contains("Already exists"), "{pulled}");
    assert!(
        pulled.contains(&format!("Downloaded newer image for {image}")),
        "{pulled}"
    );
    assert!(pulled.contains("Digest: sha256:"), "{pulled}");
    assert_eq!(m.ok(&["run", "--rm", &image, "echo", "pulled"]), "pulled\n");
    let again = m.ok(&["pull", &image]);
    assert!(
        again.contains(&format!("Image is up to date for {image}")),
        "{again}"
    );

    // docker tag: a new name for the same image, runnable by it.
    m.ok(&["tag", &image, "mine:v1"]);
    let listed = m.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let id_of = |name: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{listed}"))
            .split(' ')
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(id_of("mine:v1"), id_of(&image));
    assert_eq!(
        m.ok(&["run", "--rm", "mine:v1", "echo", "tagged"]),
        "tagged\n"
    );
    // A name that is no reference is refused by the agent too (the CLI
    // checks it first, so ask the API itself).
    let bad = m.curl(&[
        "-X",
        "POST",
        "http://docker/images/mine:v1/tag?repo=Bad%20Name",
    ]);
    assert!(bad.contains("invalid"), "{bad}");
    // Husk's own CLI tags too.
    let husk = m
        .agent
        .as_ref()
        .unwrap()
        .huskctl_ok(&["image", "tag", "mine:v1", "other:2"]);
    assert!(husk.contains("as other:2"), "{husk}");
    assert_eq!(id_of("mine:v1"), {
        let again = m.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
        again
            .lines()
            .find(|l| l.starts_with("other:2 "))
            .unwrap_or_else(|| panic!("no other:2 in:\n{again}"))
            .split(' ')
            .nth(1)
            .unwrap()
            .to_owned()
    });

    // docker load: an archive from elsewhere, and one that is not.
    let archive = scratch.path().join("loaded.tar");
    let layer = files_layer(&[("loaded", 0o644, b"yes")]);
    std::fs::write(&archive, oci_archive("loaded:1", &[busybox_layer(), layer])).unwrap();
    let loaded = m.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded, "Loaded image: loaded:1\n");
    assert_eq!(m.ok(&["run", "--rm", "loaded:1", "cat", "/loaded"]), "yes");
    let junk = scratch.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 100_000]).unwrap();
    let refused = m.fails(&["load", "-i", junk.to_str().unwrap()]);
    assert!(refused.contains("not an image archive"), "{refused}");
    assert!(!refused.contains("/proc/self/fd"), "{refused}");
    // The uploads were unnamed files: none is left, named or held open.
    let uploads: Vec<_> = std::fs::read_dir(m.path("root/uploads")).unwrap().collect();
    assert!(uploads.is_empty(), "an upload was left behind: {uploads:?}");
    let pid = m.agent.as_ref().unwrap().child.as_ref().unwrap().id();
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|target| target.contains("uploads"))
        .collect();
    assert!(held.is_empty(), "the agent still holds uploads: {held:?}");

    // The prunes: what runs, and the images it uses, stay.
    m.ok(&[
        "run",
        "-d",
        "--name",
        "im-running",
        "mine:v1",
        "sleep",
        "300",
    ]);
    m.ok(&["run", "--name", "im-done", "loaded:1", "true"]);
    m.ok(&["create", "--name", "im-made", "loaded:1", "true"]);
    let pruned = m.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    let left = m.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left, "im-running\n");
    // A dangling image: `loaded:1`'s name moved onto the busybox image.
    m.ok(&["tag", "mine:v1", "loaded:1"]);
    let dangling = m.ok(&["image", "prune", "-f"]);
    assert!(dangling.contains("deleted: sha256:"), "{dangling}");
    assert!(!dangling.contains("untagged"), "{dangling}");
    // -a: every image no container uses; the running one's stays.
    let spare = scratch.path().join("spare.tar");
    let spare_layer = files_layer(&[("spare", 0o644, b"spare")]);
    std::fs::write(
        &spare,
        oci_archive("spare:1", &[busybox_layer(), spare_layer]),
    )
    .unwrap();
    m.ok(&["load", "-i", spare.to_str().unwrap()]);
    let system = m.ok(&["system", "prune", "-a", "-f"]);
    assert!(system.contains("untagged: spare:1"), "{system}");
    let images = m.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert!(images.contains("mine:v1"), "{images}");
    assert!(
        !images.contains("spare:1"),
        "an unused image survived system prune -a:\n{images}"
    );
    m.ok(&["rm", "-f", "im-running"]);

    // Husk's own API tells the same feed.
    m.agent
        .as_ref()
        .unwrap()
        .huskctl_ok(&["image", "rm", "other:2"]);

    // What happened, as `docker events` tells it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let events = m.ok(&[
        "events",
        "--since",
        &started,
        "--until",
        &now.to_string(),
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.ID}}",
    ]);
    let pulled_id = format!("sha256:{}", id_of("mine:v1"));
    for line in [
        format!("pull {image} {image}"),
        format!("tag mine:v1 {pulled_id}"),
        format!("tag other:2 {pulled_id}"),
        "load loaded:1 sha256:".to_string(),
        format!("untag other:2 {pulled_id}"),
        "delete sha256:".to_string(),
    ] {
        assert!(events.contains(&line), "no {line:?} in:\n{events}");
    }

    // The client's password never reaches the agent's log.
    let log = m.agent.take().unwrap().stop();
    for secret in [PASSWORD, auth.as_str()] {
        assert!(
            !log.contains(secret),
            "the agent logged a credential:\n{log}"
        );
    }
}
