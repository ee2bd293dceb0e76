//! The networks' DNS servers follow the machine's name servers: when its
//! resolv.conf changes (a DHCP renewal may bring new servers or search
//! domains), every running server is given the new upstreams and every
//! container's names the new search domains, not only the next container
//! to start on that network.
//!
//! The file is watched with inotify rather than checked on a timer or
//! when a query is forwarded: a change reaches the servers at once,
//! nothing runs while nothing changes, and the net module that writes the
//! file needs no hook. The directory is watched, not the file: the file
//! is replaced by a rename (written atomically), and a watch on it would
//! stay with the old inode.

use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustix::fs::inotify;
use rustix::io::Errno;

use super::{Networks, dns, set_names};

impl Networks {
    /// Gives every running network's DNS server the machine's name
    /// servers as they are now (none to an internal one), and the names
    /// of every container on it with the machine's search domains as
    /// they are now.
    pub async fn refresh_upstreams(&self) {
        let host = std::fs::read_to_string(&self.0.paths.host_resolv_conf).unwrap_or_default();
        let upstream = dns::upstream_servers(&host);
        let state = self.0.state.lock().await;
        for net in state.nets.values() {
            if let Some(server) = &net.dns {
                server.set_upstream(if net.internal {
                    Vec::new()
                } else {
                    upstream.clone()
                });
            }
        }
        for (container, attachment) in &state.attached {
            for (network, names, info) in attachment.endpoints() {
                if let Some(net) = state.nets.get(network).filter(|n| n.has_dns()) {
                    set_names(net, container, names, info, &host);
                }
            }
        }
        log::info!(
            "network: the DNS servers ask {}",
            if upstream.is_empty() {
                "no name server (the machine has none)".to_owned()
            } else {
                upstream
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }

    /// Starts following the machine's resolv.conf (once; within the
    /// agent's runtime). When it cannot, the servers' upstreams are set
    /// again only as containers start, and that is said.
    pub(super) fn watch_host_resolv_conf(&self) {
        if self.0.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        let path = &self.0.paths.host_resolv_conf;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        let watched = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)
            .and_then(|fd| {
                inotify::add_watch(
                    &fd,
                    dir,
                    inotify::WatchFlags::CLOSE_WRITE
                        | inotify::WatchFlags::MOVED_TO
                        | inotify::WatchFlags::DELETE,
                )
                .map(|_| fd)
            })
            .map_err(std::io::Error::from)
            .and_then(super::sys::async_fd);
        let fd = match watched {
            Ok(fd) => fd,
            Err(e) => {
                log::warn!(
                    "network: cannot follow {} ({e}): the DNS servers learn new name servers only as containers start",
                    path.display()
                );
                return;
            }
        };
        let name = name.as_bytes().to_vec();
        // Weak: the watch must not keep the networks alive.
        let networks = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            loop {
                let mut ready = match fd.readable().await {
                    Ok(ready) => ready,
                    Err(e) => {
                        log::warn!("network: following resolv.conf: {e}");
                        return;
                    }
                };
                let mut changed = false;
                let mut events = inotify::Reader::new(fd.get_ref(), &mut buf);
                loop {
                    match events.next() {
                        Ok(event) => {
                            changed |= event.events().contains(inotify::ReadFlags::QUEUE_OVERFLOW)
                                || event.file_name().map(|n| n.to_bytes()) == Some(&name[..]);
                        }
                        Err(Errno::AGAIN) => {
                            ready.clear_ready();
                            break;
                        }
                        Err(Errno::INTR) => {}
                        Err(e) => {
                            log::warn!("network: following resolv.conf: {e}");
                            return;
                        }
                    }
                }
                if changed {
                    let Some(inner) = networks.upgrade() else {
                        return;
                    };
                    Networks(inner).refresh_upstreams().await;
                }
            }
        });
    }
}
