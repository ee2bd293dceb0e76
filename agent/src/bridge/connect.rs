//! `network connect` and `disconnect` of a running container: one more
//! veth into its namespace (`eth1`…) with an address from that network's
//! book and its names on that network's DNS, or that veth taken out. The
//! container manager keeps what is connected in the container's record
//! and connects it again at every start.

use std::net::IpAddr;

use husk_api::containers::NetworkInfo;

use super::{Endpoint, NetError, Networks, links, veth_name};

impl Networks {
    /// Connects `network` to the running `container`, which answers to
    /// its name and `aliases` there.
    pub async fn connect(
        &self,
        container: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<NetworkInfo, NetError> {
        let mut state = self.0.state.lock().await;
        let Some(attachment) = state.attached.get(container) else {
            return Err(NetError::NotRunning(container.to_owned()));
        };
        if attachment.endpoints().any(|(n, _, _)| n == network) {
            return Err(NetError::AlreadyConnected {
                container: container.to_owned(),
                network: network.to_owned(),
            });
        }
        let used: Vec<&str> = attachment
            .connected
            .iter()
            .map(|e| e.ifname.as_str())
            .collect();
        let ifname = (1..)
            .map(|i| format!("eth{i}"))
            .find(|n| !used.contains(&n.as_str()))
            .unwrap_or_default();
        let bridge = self.ensure_bridge(state.net(network)?).await?;
        let net = state.net(network)?;
        let address = net.ipam.address_of(container)?;
        let info = net.endpoint(address, Vec::new());
        let mut names = vec![container.to_owned()];
        names.extend(aliases.iter().cloned());
        let endpoint = Endpoint {
            info: info.clone(),
            veth: veth_name(&format!("{container}@{network}")),
            ifname,
            names,
        };
        let made = match self
            .plumb_endpoint(container, &endpoint.veth, &endpoint.ifname, &info, bridge)
            .await
        {
            Ok(()) => {
                let net = state.net(network)?;
                self.announce(net, container, &endpoint.names, &info).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            self.unplug(container, network, &endpoint.veth, &mut state)
                .await;
            let _ = state.net(network).map(|net| net.ipam.release(container));
            return Err(e);
        }
        let Some(attachment) = state.attached.get_mut(container) else {
            return Err(NetError::NotRunning(container.to_owned()));
        };
        attachment.connected.push(endpoint);
        let attachment = attachment.clone();
        link_names(&mut state, &attachment.info, network, true);
        self.write_attachment(container, &attachment)?;
        if let Err(e) = self.apply_firewall(&state) {
            log::error!("bridge: after connecting {container} to {network}: {e}");
        }
        log::info!(
            "bridge: {container} is {address}/{} on {network} too",
            info.prefix_len
        );
        Ok(info)
    }

    /// Takes `network` out of the running `container` (nothing when it
    /// is not connected there), and frees its address there.
    pub async fn disconnect(&self, container: &str, network: &str) -> Result<(), NetError> {
        let mut state = self.0.state.lock().await;
        let endpoint = state.attached.get_mut(container).and_then(|a| {
            let at = a.connected.iter().position(|e| e.info.network == network)?;
            Some(a.connected.remove(at))
        });
        if let Some(endpoint) = endpoint {
            if let Some(primary) = state.attached.get(container).map(|a| a.info.clone()) {
                link_names(&mut state, &primary, network, false);
            }
            self.unplug(container, network, &endpoint.veth, &mut state)
                .await;
            if let Some(attachment) = state.attached.get(container).cloned() {
                self.write_attachment(container, &attachment)?;
            }
        }
        if let Ok(net) = state.net(network) {
            net.ipam.release(container)?;
        }
        Ok(())
    }

    /// A connected endpoint's veth deleted (its inner end goes with it),
    /// its names gone from the network's DNS.
    async fn unplug(&self, container: &str, network: &str, veth: &str, state: &mut super::State) {
        if let Ok(net) = state.net(network) {
            net.names.remove(container);
        }
        if let Ok(handle) = links::connect()
            && let Err(e) = links::delete(&handle, veth).await
        {
            log::warn!("bridge: deleting {veth}: {e}");
        }
    }

    /// The networks connected to a running container besides its own.
    pub async fn connected(&self, container: &str) -> Vec<NetworkInfo> {
        let state = self.0.state.lock().await;
        state
            .attached
            .get(container)
            .map(|a| a.connected.iter().map(|e| e.info.clone()).collect())
            .unwrap_or_default()
    }
}

/// The container asks its own network's DNS server (its resolv.conf
/// names that gateway): queries from its addresses there see `network`'s
/// names too (`link`), or no longer (`!link`).
pub(super) fn link_names(
    state: &mut super::State,
    primary: &NetworkInfo,
    network: &str,
    link: bool,
) {
    let Some(other) = state.nets.get(network).map(|n| n.names.clone()) else {
        return;
    };
    let Some(own) = state.nets.get(&primary.network).filter(|n| n.has_dns()) else {
        return;
    };
    let clients =
        std::iter::once(IpAddr::V4(primary.ip_address)).chain(primary.ipv6_address.map(IpAddr::V6));
    for client in clients {
        if link {
            own.names.link(client, &other);
        } else {
            own.names.unlink(client, &other);
        }
    }
}
