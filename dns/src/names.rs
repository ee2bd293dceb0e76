//! The names one network answers for: what the agent says each container
//! (an "owner") is called and where it is, indexed both ways (name to
//! addresses for A/AAAA, address to names for PTR); and what differs for
//! one client: the other networks' names it sees (`link`) and the
//! servers its other questions go to (`set_upstream_for`, a container's
//! `--dns`).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};

use crate::DnsError;

/// The upstream servers one client may have of its own; more are left
/// out. Docker's embedded DNS tries three external servers, as glibc
/// reads three `nameserver` lines: a fourth would never be asked anyway.
pub const MAX_CLIENT_UPSTREAMS: usize = 3;

/// Clients of one network with upstream servers of their own. The agent
/// sets one per container with `--dns`, and forgets it when the container
/// stops; the bound keeps a leak (or a flood of such containers) from
/// growing the table without end.
pub const MAX_CLIENTS_WITH_UPSTREAMS: usize = 4096;

/// The names one network answers for, shared between the agent (which
/// sets them as containers connect and leave) and the server (which reads
/// them for every query). Cloning is cheap: the clones share one table.
#[derive(Clone, Default)]
pub struct Names {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    table: RwLock<Table>,
    /// Turns the answer's order (round-robin, as dnsmasq and Docker rotate
    /// theirs), so clients that take the first address spread over the
    /// containers sharing an alias.
    rotation: AtomicUsize,
}

#[derive(Default)]
struct Table {
    owners: HashMap<String, Entry>,
    /// Normalised name → the owners answering for it. A BTreeSet so that
    /// the answer (before rotation) does not depend on hash order.
    by_name: HashMap<String, BTreeSet<String>>,
    by_addr: HashMap<IpAddr, BTreeSet<String>>,
    /// Clients that also see other networks' names: a container on this
    /// network and others (`network connect`) resolves the names of all
    /// of them from this one's server, as Docker's embedded DNS does.
    /// Weak: two networks linking each other's clients must not keep
    /// each other alive.
    links: HashMap<IpAddr, Vec<Weak<Shared>>>,
    /// Clients whose questions for names that are not the network's go
    /// to servers of their own (`--dns`) instead of the network's
    /// upstream. At most [`MAX_CLIENTS_WITH_UPSTREAMS`] entries of at most
    /// [`MAX_CLIENT_UPSTREAMS`] servers.
    upstreams: HashMap<IpAddr, Arc<[SocketAddr]>>,
}

struct Entry {
    /// As given (normalised), the first one being the name PTR answers.
    names: Vec<String>,
    addrs: Vec<IpAddr>,
}

/// The form names are compared in: ASCII case folded (DNS names are
/// case-insensitive, RFC 4343) and without the root's trailing dot.
pub(crate) fn normalise(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.to_ascii_lowercase()
}

impl Names {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what `owner` (a container id) answers for: each of `names`
    /// (container name, aliases; case-insensitive, with or without a
    /// trailing dot) resolves to `addrs` (its IPv4 and IPv6 addresses on
    /// this network). Replaces the owner's previous entries. Several owners
    /// may share an alias: all their addresses are answered.
    pub fn set(&self, owner: &str, names: &[String], addrs: &[IpAddr]) {
        let mut normalised: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            let name = normalise(name);
            if !name.is_empty() && !normalised.contains(&name) {
                normalised.push(name);
            }
        }
        let mut unique: Vec<IpAddr> = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let addr = addr.to_canonical();
            if !unique.contains(&addr) {
                unique.push(addr);
            }
        }
        let mut table = self.write();
        table.unlink(owner);
        for name in &normalised {
            table
                .by_name
                .entry(name.clone())
                .or_default()
                .insert(owner.to_owned());
        }
        for addr in &unique {
            table
                .by_addr
                .entry(*addr)
                .or_default()
                .insert(owner.to_owned());
        }
        table.owners.insert(
            owner.to_owned(),
            Entry {
                names: normalised,
                addrs: unique,
            },
        );
    }

    /// Queries from `client` (a container's address here) also see the
    /// names of `other` (another network it is on).
    pub fn link(&self, client: IpAddr, other: &Names) {
        let mut table = self.write();
        let links = table.links.entry(client.to_canonical()).or_default();
        links.retain(|w| {
            w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(&other.inner))
        });
        links.push(Arc::downgrade(&other.inner));
    }

    /// Undoes [`Self::link`] of `other` for `client`.
    pub fn unlink(&self, client: IpAddr, other: &Names) {
        let mut table = self.write();
        let key = client.to_canonical();
        if let Some(links) = table.links.get_mut(&key) {
            links.retain(|w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(&other.inner)));
            if links.is_empty() {
                table.links.remove(&key);
            }
        }
    }

    /// Forgets everything of `client`: its links and its upstream servers
    /// (the container stopped, or is to be set up again).
    pub fn forget_client(&self, client: IpAddr) {
        let mut table = self.write();
        let key = client.to_canonical();
        table.links.remove(&key);
        table.upstreams.remove(&key);
    }

    /// Questions of `client` for names that are not the network's go to
    /// `servers` (the first [`MAX_CLIENT_UPSTREAMS`]) instead of the
    /// network's upstream, as a container's `--dns` makes Docker's embedded
    /// DNS ask those servers for it. Empty: the network's again. An
    /// internal network's server forwards nothing, these included.
    pub fn set_upstream_for(&self, client: IpAddr, servers: &[SocketAddr]) -> Result<(), DnsError> {
        let key = client.to_canonical();
        let mut unique: Vec<SocketAddr> = Vec::with_capacity(MAX_CLIENT_UPSTREAMS);
        for server in servers {
            let server = SocketAddr::new(server.ip().to_canonical(), server.port());
            if !unique.contains(&server) && unique.len() < MAX_CLIENT_UPSTREAMS {
                unique.push(server);
            }
        }
        let mut table = self.write();
        if unique.is_empty() {
            table.upstreams.remove(&key);
            return Ok(());
        }
        if !table.upstreams.contains_key(&key)
            && table.upstreams.len() >= MAX_CLIENTS_WITH_UPSTREAMS
        {
            return Err(DnsError::TooManyClientUpstreams {
                client: key,
                limit: MAX_CLIENTS_WITH_UPSTREAMS,
            });
        }
        table.upstreams.insert(key, unique.into());
        Ok(())
    }

    /// The servers of `client`'s own ([`Self::set_upstream_for`]), if any.
    pub(crate) fn upstream_for(&self, client: IpAddr) -> Option<Arc<[SocketAddr]>> {
        self.read().upstreams.get(&client.to_canonical()).cloned()
    }

    /// The names a query from `client` sees: this network's, and those of
    /// the networks linked for it (a copy, made only for linked clients).
    pub(crate) fn view_for(&self, client: IpAddr) -> Names {
        let linked: Vec<Names> = {
            let table = self.read();
            match table.links.get(&client.to_canonical()) {
                Some(links) => links
                    .iter()
                    .filter_map(Weak::upgrade)
                    .map(|inner| Names { inner })
                    .collect(),
                None => Vec::new(),
            }
        };
        if linked.is_empty() {
            return self.clone();
        }
        let view = Names::new();
        for (i, names) in std::iter::once(self).chain(linked.iter()).enumerate() {
            let entries: Vec<(String, Vec<String>, Vec<IpAddr>)> = names
                .read()
                .owners
                .iter()
                .map(|(owner, e)| (owner.clone(), e.names.clone(), e.addrs.clone()))
                .collect();
            for (owner, names, addrs) in entries {
                view.set(&format!("{i}/{owner}"), &names, &addrs);
            }
        }
        view
    }

    /// Forgets everything `owner` answered for.
    pub fn remove(&self, owner: &str) {
        self.write().unlink(owner);
    }

    /// The addresses `name` resolves to (both families), in this query's
    /// round-robin order; empty for a name nobody answers for.
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        self.find(name).unwrap_or_default()
    }

    /// `Some` (possibly empty) when some owner answers for `name`: a known
    /// name without addresses is still ours (NOERROR, no answer), not a
    /// question for the upstream resolvers.
    pub(crate) fn find(&self, name: &str) -> Option<Vec<IpAddr>> {
        let key = normalise(name);
        let table = self.read();
        let owners = table.by_name.get(&key)?;
        // A container's own name (the first it was given) is its alone:
        // another's alias of that name does not share it.
        let own: Vec<&String> = owners
            .iter()
            .filter(|o| table.owners.get(*o).and_then(|e| e.names.first()) == Some(&key))
            .collect();
        let owners: Vec<&String> = if own.is_empty() {
            owners.iter().collect()
        } else {
            own
        };
        let mut addrs: Vec<IpAddr> = Vec::new();
        for owner in owners {
            if let Some(entry) = table.owners.get(owner) {
                for addr in &entry.addrs {
                    if !addrs.contains(addr) {
                        addrs.push(*addr);
                    }
                }
            }
        }
        drop(table);
        if !addrs.is_empty() {
            let turn = self.inner.rotation.fetch_add(1, Ordering::Relaxed);
            let len = addrs.len();
            addrs.rotate_left(turn % len);
        }
        Some(addrs)
    }

    /// The names PTR answers for `addr`: each owner's first name.
    pub(crate) fn reverse(&self, addr: IpAddr) -> Vec<String> {
        let table = self.read();
        let Some(owners) = table.by_addr.get(&addr.to_canonical()) else {
            return Vec::new();
        };
        owners
            .iter()
            .filter_map(|owner| table.owners.get(owner)?.names.first().cloned())
            .collect()
    }

    // A panic while holding the lock leaves the table consistent (every
    // change is made whole under one guard), so poisoning is ignored
    // rather than taking the network's DNS down with it.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.inner
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.inner
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    fn unlink(&mut self, owner: &str) {
        let Some(entry) = self.owners.remove(owner) else {
            return;
        };
        for name in entry.names {
            if let Some(owners) = self.by_name.get_mut(&name) {
                owners.remove(owner);
                if owners.is_empty() {
                    self.by_name.remove(&name);
                }
            }
        }
        for addr in entry.addrs {
            if let Some(owners) = self.by_addr.get_mut(&addr) {
                owners.remove(owner);
                if owners.is_empty() {
                    self.by_addr.remove(&addr);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sorted(mut v: Vec<IpAddr>) -> Vec<IpAddr> {
        v.sort();
        v
    }

    #[test]
    fn names_are_case_insensitive_with_or_without_the_dot() {
        let names = Names::new();
        names.set("c1", &["Web.".into(), "alias".into()], &[ip("172.18.0.2")]);
        assert_eq!(names.lookup("web"), [ip("172.18.0.2")]);
        assert_eq!(names.lookup("WEB."), [ip("172.18.0.2")]);
        assert_eq!(names.lookup("Alias."), [ip("172.18.0.2")]);
        assert!(names.lookup("web.example").is_empty());
        assert!(names.lookup("").is_empty());
        assert!(names.lookup(".").is_empty());
    }

    #[test]
    fn set_replaces_and_remove_forgets() {
        let names = Names::new();
        names.set("c1", &["web".into()], &[ip("172.18.0.2")]);
        names.set("c1", &["api".into()], &[ip("172.18.0.3")]);
        assert!(names.lookup("web").is_empty());
        assert_eq!(names.lookup("api"), [ip("172.18.0.3")]);
        assert!(names.reverse(ip("172.18.0.2")).is_empty());
        assert_eq!(names.reverse(ip("172.18.0.3")), ["api"]);
        names.remove("c1");
        assert!(names.find("api").is_none());
        assert!(names.reverse(ip("172.18.0.3")).is_empty());
        names.remove("never-there");
    }

    #[test]
    fn shared_aliases_answer_every_owner_in_turn() {
        let names = Names::new();
        names.set("c1", &["db".into()], &[ip("172.18.0.2"), ip("fd00::2")]);
        names.set("c2", &["db".into()], &[ip("172.18.0.3")]);
        let first = names.lookup("db");
        assert_eq!(
            sorted(first.clone()),
            [ip("172.18.0.2"), ip("172.18.0.3"), ip("fd00::2")]
        );
        let second = names.lookup("db");
        assert_eq!(sorted(second.clone()), sorted(first.clone()));
        assert_ne!(first[0], second[0], "the order turns");
        names.remove("c1");
        assert_eq!(names.lookup("db"), [ip("172.18.0.3")]);
    }

    #[test]
    fn a_linked_client_sees_the_other_networks_names_and_no_one_else_does() {
        let (front, back) = (Names::new(), Names::new());
        front.set("app", &["app".into()], &[ip("172.18.0.2")]);
        back.set("db", &["db".into()], &[ip("172.19.0.2")]);
        front.link(ip("172.18.0.2"), &back);
        assert_eq!(
            front.view_for(ip("172.18.0.2")).lookup("db"),
            [ip("172.19.0.2")]
        );
        assert_eq!(
            front.view_for(ip("172.18.0.2")).lookup("app"),
            [ip("172.18.0.2")]
        );
        assert!(front.view_for(ip("172.18.0.3")).lookup("db").is_empty());
        assert!(front.lookup("db").is_empty());
        front.link(ip("172.18.0.2"), &back);
        front.unlink(ip("172.18.0.2"), &back);
        assert!(front.view_for(ip("172.18.0.2")).lookup("db").is_empty());
        front.link(ip("172.18.0.2"), &back);
        front.forget_client(ip("172.18.0.2"));
        assert!(front.view_for(ip("172.18.0.2")).lookup("db").is_empty());
        // A network that is gone leaves nothing behind.
        front.link(ip("172.18.0.2"), &back);
        drop(back);
        assert!(front.view_for(ip("172.18.0.2")).lookup("db").is_empty());
    }

    #[test]
    fn an_alias_cannot_take_a_containers_own_name() {
        let names = Names::new();
        names.set("db", &["db".into()], &[ip("172.18.0.2")]);
        names.set("evil", &["evil".into(), "db".into()], &[ip("172.18.0.9")]);
        for _ in 0..3 {
            assert_eq!(names.lookup("db"), [ip("172.18.0.2")]);
        }
        names.remove("db");
        assert_eq!(names.lookup("db"), [ip("172.18.0.9")]);
    }

    #[test]
    fn a_known_name_without_addresses_is_still_known() {
        let names = Names::new();
        names.set("c1", &["quiet".into()], &[]);
        assert_eq!(names.find("quiet"), Some(vec![]));
        assert_eq!(names.find("loud"), None);
    }

    fn server(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_clients_own_upstream_is_its_alone_bounded_and_forgotten() {
        let names = Names::new();
        assert!(names.upstream_for(ip("172.18.0.2")).is_none());
        let given = [
            server("192.0.2.1:53"),
            server("192.0.2.1:53"),
            server("[::ffff:192.0.2.2]:53"),
            server("192.0.2.3:53"),
            server("192.0.2.4:53"),
        ];
        names.set_upstream_for(ip("172.18.0.2"), &given).unwrap();
        // Duplicates (a mapped address is its IPv4 one) and the fourth
        // left out.
        assert_eq!(
            names
                .upstream_for(ip("::ffff:172.18.0.2"))
                .unwrap()
                .as_ref(),
            [
                server("192.0.2.1:53"),
                server("192.0.2.2:53"),
                server("192.0.2.3:53")
            ]
        );
        assert!(names.upstream_for(ip("172.18.0.3")).is_none());
        names.set_upstream_for(ip("172.18.0.2"), &[]).unwrap();
        assert!(names.upstream_for(ip("172.18.0.2")).is_none());
        names
            .set_upstream_for(ip("172.18.0.2"), &given[..1])
            .unwrap();
        names.forget_client(ip("172.18.0.2"));
        assert!(names.upstream_for(ip("172.18.0.2")).is_none());

        // Bounded: one more client is refused, naming it; those already
        // there may still change theirs.
        for i in 0..MAX_CLIENTS_WITH_UPSTREAMS {
            let client = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            names.set_upstream_for(client, &given[..1]).unwrap();
        }
        let err = names
            .set_upstream_for(ip("172.18.0.9"), &given[..1])
            .unwrap_err();
        assert!(err.to_string().contains("172.18.0.9"), "{err}");
        names
            .set_upstream_for(ip("10.0.0.0"), &given[1..2])
            .unwrap();
        names.set_upstream_for(ip("10.0.0.1"), &[]).unwrap();
        names
            .set_upstream_for(ip("172.18.0.9"), &given[..1])
            .unwrap();
    }
}
