//! `modules.alias`: `alias PATTERN MODULE` lines, matched against a
//! device's `modalias` the way kmod does (every matching line counts).

use super::glob::fnmatch;
use super::normalize;

/// One alias line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub pattern: String,
    pub module: String,
}

/// Parses modules.alias text; comments and odd lines are skipped.
pub fn parse(text: &str) -> Vec<Alias> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_ascii_whitespace();
            if words.next()? != "alias" {
                return None;
            }
            let pattern = words.next()?.to_owned();
            let module = normalize(words.next()?);
            Some(Alias { pattern, module })
        })
        .collect()
}

/// The modules whose patterns match `modalias`, in file order, each once.
pub fn lookup<'a>(aliases: &'a [Alias], modalias: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for a in aliases {
        if fnmatch(a.pattern.as_bytes(), modalias.as_bytes()) && !out.contains(&a.module.as_str()) {
            out.push(&a.module);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# Aliases extracted from modules themselves.
alias fs-overlay overlay
alias acpi*:LNXPWRBN:* button
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias input:b*v*p*e*-e*k*r*a*m*l*s*f*w* evdev
alias pci:v*d*sv*sd*bc0Csc03i30* xhci-pci
";

    #[test]
    fn parses_and_normalizes() {
        let a = parse(SAMPLE);
        assert_eq!(a.len(), 7);
        assert_eq!(a[1].pattern, "acpi*:LNXPWRBN:*");
        assert_eq!(a[1].module, "button");
        assert_eq!(a[6].module, "xhci_pci");
    }

    #[test]
    fn devices_find_their_drivers() {
        let a = parse(SAMPLE);
        assert_eq!(lookup(&a, "virtio:d00000001v00001AF4"), ["virtio_net"]);
        assert_eq!(lookup(&a, "virtio:d00000002v00001AF4"), ["virtio_blk"]);
        assert_eq!(
            lookup(&a, "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"),
            ["virtio_pci"]
        );
        assert_eq!(lookup(&a, "acpi:LNXPWRBN:"), ["button"]);
        assert!(lookup(&a, "acpi:LNXCPU:").is_empty());
    }

    #[test]
    fn the_real_debian_file_parses() {
        let Ok(text) = std::fs::read_to_string("/lib/modules/6.1.0-56-cloud-amd64/modules.alias")
        else {
            return;
        };
        let a = parse(&text);
        assert!(a.len() > 1000);
        assert_eq!(lookup(&a, "virtio:d00000001v00001AF4"), ["virtio_net"]);
        assert_eq!(lookup(&a, "acpi:LNXPWRBN:"), ["button"]);
        assert!(
            lookup(&a, "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00")
                .contains(&"virtio_pci")
        );
        assert!(lookup(&a, "input:b0019v0000p0001e0000-e0,1,k74,ramlsfw").contains(&"evdev"));
    }
}
