//! A machine whose user-data names an image in a registry pulls it at
//! first boot and runs it: Debian's docker-registry on this host, the
//! image pushed into it with skopeo, reached from the guest through
//! slirp (a forward to the registry's loopback port). The agent retries
//! while the network comes up.

mod common;

use common::*;
use husk_testkit::registry::{PushOptions, Registry, RegistryOptions, image_layout, skopeo_copy};
use qemu_tests::{Error, GuestImage, InitConfig, Restart, Service, config_drive};

/// Where the guest reaches the registry.
const GUEST_PORT: u16 = 5000;

#[test]
fn user_data_pulls_a_registry_image_at_first_boot() -> qemu_tests::Result<()> {
    let dir = qemu_tests::TestDir::new("pull_first_boot")?;
    let registry = Registry::start(RegistryOptions::default())
        .map_err(|e| Error::io("starting docker-registry", e))?;
    let layout = dir.path().join("layout");
    image_layout(&layout, "1", &[husk_testkit::busybox_layer()])
        .map_err(|e| Error::io("writing the image layout", e))?;
    skopeo_copy(
        &format!("oci:{}:1", layout.display()),
        &registry.docker_ref("team/busybox:1"),
        &PushOptions::default(),
    )
    .map_err(|e| Error::io("skopeo copy to the registry", e))?;

    let guest_registry = format!("{}:{GUEST_PORT}", qemu_tests::vm_builder::FORWARD_ADDR);
    let image = format!("{guest_registry}/team/busybox:1");
    let drive = config_drive(
        dir.path(),
        &format!(
            "hostname = \"puller\"\n\n[registry]\ninsecure = [\"{guest_registry}\"]\n\n[[containers]]\nname = \"web\"\n\
             image = \"{image}\"\ncmd = [\"sh\", \"-c\", \"echo up; exec sleep 100000\"]\n\
             restart = \"always\"\n"
        ),
    )?;
    let config = InitConfig::with_agent().service(Service::checker(
        "check-user-data",
        &["user-data", "applied", "puller", "web"],
        Restart::Never,
    ));
    let guest = GuestImage::builder().init_config(config.to_toml());
    let initrd = guest.checker().build(dir.path())?;
    let mut vm = qemu_tests::VmBuilder::new(dir)
        .kernel(&qemu_tests::Kernel::get()?.image)
        .initrd(initrd)
        .drive(&drive, "raw")
        .forward_to_host(GUEST_PORT, registry.addr())
        .launch()?;
    vm.wait_for_line(&format!("pulling {image}"), TO_AGENT_READY)?;
    vm.wait_for_line(&format!("pulled {image}"), TO_AGENT_READY)?;
    vm.expect_check("user-data", TO_CHECK)?;
    power_off(&mut vm)?;
    Ok(())
}
