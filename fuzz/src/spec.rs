//! What the container manager does with run options once their image is
//! found: the OCI spec (husk-spec's `build_spec_reading`, Docker's
//! defaults), for a busybox-like image, written out as the bundle's
//! `config.json`. Shared by the targets whose input carries run options
//! (the API's create, user-data's containers).

use std::path::Path;
use std::sync::OnceLock;

use husk_spec::{RunOptions, SecurityPolicy, SpecError};
use oci_spec::image::ImageConfiguration;

const CONFIG: &str = r#"{
  "architecture": "amd64",
  "os": "linux",
  "config": {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["sh"],
    "WorkingDir": "/",
    "StopSignal": "SIGTERM"
  },
  "rootfs": {"type": "layers", "diff_ids": []}
}"#;
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:nobody\nnogroup:x:65534:\n";

fn image() -> &'static ImageConfiguration {
    static IMAGE: OnceLock<ImageConfiguration> = OnceLock::new();
    IMAGE.get_or_init(|| {
        ImageConfiguration::from_reader(CONFIG.as_bytes()).expect("the image config")
    })
}

/// Builds the spec under the default policy and, when that refuses, under
/// a permissive one (so privileged and host-network options are built
/// too); a built spec must serialise, as the bundle writer needs.
pub fn build(options: &RunOptions) {
    let rootfs = Path::new("/var/lib/husk/containers/fuzz/rootfs");
    let files = |file: &str| -> std::io::Result<Option<String>> {
        Ok(match file {
            "etc/passwd" => Some(PASSWD.into()),
            "etc/group" => Some(GROUP.into()),
            _ => None,
        })
    };
    let mut built =
        husk_spec::build_spec_reading(image(), options, rootfs, &SecurityPolicy::default(), &files);
    if let Err(SpecError::Forbidden(_)) = built {
        built = husk_spec::build_spec_reading(
            image(),
            options,
            rootfs,
            &SecurityPolicy::permissive(),
            &files,
        );
    }
    match built {
        Ok(spec) => {
            serde_json::to_vec_pretty(&spec).expect("a built spec serialises");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
