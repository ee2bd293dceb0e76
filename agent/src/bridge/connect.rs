//! `network connect` and `disconnect` of a running container: one more
//! veth into its namespace (`eth1`…) with an address from that network's
//! book and its names on that network's DNS, or that veth taken out; its
//! resolver (resolver.rs) told again what it sees. The container manager
//! keeps what is connected in the container's record, connects it again
//! at every start, and rewrites a running container's resolv.conf after
//! either.

use std::net::IpAddr;

use husk_api::containers::NetworkInfo;

use super::{Endpoint, NetError, Networks, links, resolver, veth_name};

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
        attachment.connected.push(endpoint.clone());
        let attachment = attachment.clone();
        // Its resolver may be this network now (a container of the
        // agent's bridge), or sees its names.
        if let Err(e) = resolver::refresh(&state.nets, &attachment) {
            resolver::forget(&state.nets, &attachment);
            if let Some(a) = state.attached.get_mut(container) {
                a.connected.retain(|e| e.info.network != network);
            }
            if let Some(a) = state.attached.get(container)
                && let Err(again) = resolver::refresh(&state.nets, a)
            {
                log::error!("bridge: {container}: {again}");
            }
            self.unplug(container, network, &endpoint.veth, &mut state)
                .await;
            let _ = state.net(network).map(|net| net.ipam.release(container));
            return Err(e);
        }
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
            if let Some(attachment) = state.attached.get(container) {
                // What the leaving network's server knew of it (it may
                // have been its resolver), then its resolver again.
                let nets = &state.nets;
                if let Some(net) = nets.get(network) {
                    net.names
                        .forget_client(IpAddr::V4(endpoint.info.ip_address));
                    if let Some(v6) = endpoint.info.ipv6_address {
                        net.names.forget_client(IpAddr::V6(v6));
                    }
                }
                if let Err(e) = resolver::refresh(nets, attachment) {
                    log::error!("bridge: {container}: {e}");
                }
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
