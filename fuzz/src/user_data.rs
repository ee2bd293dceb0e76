//! `user_data`: the first-boot document ([`husk_agent::userdata::UserData::parse`]),
//! as a config drive or the metadata service gives it and as the kernel
//! command line does (`husk.userdata=<base64>`, decoded by
//! [`husk_agent::userdata::source::from_cmdline`]); then what applying a
//! valid one computes before touching the machine: the update settings,
//! the static addresses, each container's spec.

use husk_agent::update::UpdateSettings;
use husk_agent::userdata::UserData;
use husk_agent::userdata::schema::parse_cidr;
use husk_agent::userdata::source::from_cmdline;

pub fn run(data: &[u8]) {
    // Every source reads the document as UTF-8, refusing anything else.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    document(text);
    // The same bytes as a kernel command line.
    if let Some(Ok(decoded)) = from_cmdline(text) {
        document(&decoded);
    }
}

fn document(text: &str) {
    let doc = match UserData::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    if let Some(update) = &doc.update {
        // As `apply_update_settings` merges them over the image's.
        let mut settings = UpdateSettings {
            repository: Some(update.repository.clone()),
            ..UpdateSettings::default()
        };
        if let Some(channel) = &update.channel {
            settings.channel = channel.clone();
        }
        settings.apply_window = update.apply_window.clone();
        let _ = settings.validate();
    }
    if let Some(network) = &doc.network {
        for interface in &network.interfaces {
            parse_cidr(&interface.address).expect("a validated address parses");
        }
    }
    for options in &doc.containers {
        crate::spec::build(options);
    }
}
