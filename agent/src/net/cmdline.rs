//! The first link's configuration from the kernel command line, for bare
//! metal without DHCP: `husk.net=ADDRESS/PREFIX[,GATEWAY[,DNS…]]` or
//! `husk.net=dhcp`, and the kernel's own `ip=CLIENT::GATEWAY:NETMASK::…`.

use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticConfig {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

/// Ok(None): DHCP (the default, or said so). Err: the argument is wrong.
pub fn parse(cmdline: &str) -> Result<Option<StaticConfig>, String> {
    for arg in cmdline.split_whitespace() {
        if let Some(value) = arg.strip_prefix("husk.net=") {
            return husk_net(value).map_err(|e| format!("husk.net={value}: {e}"));
        }
        if let Some(value) = arg.strip_prefix("ip=") {
            return kernel_ip(value).map_err(|e| format!("ip={value}: {e}"));
        }
    }
    Ok(None)
}

fn ip(text: &str) -> Result<Ipv4Addr, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an IPv4 address"))
}

fn husk_net(value: &str) -> Result<Option<StaticConfig>, String> {
    if value == "dhcp" {
        return Ok(None);
    }
    let mut parts = value.split(',');
    let cidr = parts.next().unwrap_or_default();
    let (address, prefix) = cidr
        .split_once('/')
        .ok_or("expected ADDRESS/PREFIX[,GATEWAY[,DNS…]] or dhcp")?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("`{prefix}` is not a prefix length"))?;
    let gateway = parts.next().filter(|g| !g.is_empty()).map(ip).transpose()?;
    let dns = parts.map(ip).collect::<Result<_, _>>()?;
    Ok(Some(StaticConfig {
        address: ip(address)?,
        prefix,
        gateway,
        dns,
    }))
}

/// `ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>`,
/// or `ip=dhcp`.
fn kernel_ip(value: &str) -> Result<Option<StaticConfig>, String> {
    if matches!(value, "dhcp" | "on" | "any" | "both") {
        return Ok(None);
    }
    let fields: Vec<&str> = value.split(':').collect();
    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
    let address = ip(field(0).ok_or("no client address")?)?;
    let gateway = field(2).map(ip).transpose()?;
    let prefix = match field(3) {
        Some(mask) => u32::from(ip(mask)?).count_ones() as u8,
        None => 24,
    };
    let dns = [field(7), field(8)]
        .into_iter()
        .flatten()
        .map(ip)
        .collect::<Result<_, _>>()?;
    Ok(Some(StaticConfig {
        address,
        prefix,
        gateway,
        dns,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn husk_and_kernel_forms() {
        assert_eq!(parse("console=ttyS0").unwrap(), None);
        assert_eq!(parse("husk.net=dhcp").unwrap(), None);
        let s = parse("quiet husk.net=192.0.2.10/24,192.0.2.1,192.0.2.53")
            .unwrap()
            .unwrap();
        assert_eq!(s.address, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(s.prefix, 24);
        assert_eq!(s.gateway, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(s.dns, [Ipv4Addr::new(192, 0, 2, 53)]);
        let k = parse("ip=10.0.0.5::10.0.0.1:255.255.0.0::eth0:off:1.1.1.1")
            .unwrap()
            .unwrap();
        assert_eq!(
            (k.prefix, k.gateway),
            (16, Some(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(k.dns, [Ipv4Addr::new(1, 1, 1, 1)]);
        assert_eq!(parse("ip=dhcp").unwrap(), None);
        for bad in [
            "husk.net=10.0.0.5",
            "husk.net=10.0.0.5/33",
            "husk.net=1.2.3/8",
            "ip=x::",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
