//! `--userns auto`: each container gets its own range of host ids for its
//! user namespace, one no other container of the machine has, so a root
//! escaping one container is an unprivileged uid that owns nothing of the
//! host's or of its neighbours'.
//!
//! The ranges start at 2^20: above the ids a distribution, an LDAP
//! directory or `/etc/subuid` (100000 up) hands out. Each is 65536 ids
//! (every id an image's files can name in practice; Podman's
//! `--userns=auto` sizes by image, up to the same). The range a container
//! got is in its record (`userns`), which survives reboots; the allocator
//! takes the lowest range that overlaps no container's mapping, automatic
//! or given explicitly, so nothing else has to be kept.

use husk_api::containers::UserNamespace;

use super::error::ManagerError;

pub const FIRST_HOST_ID: u32 = 1 << 20;
pub const RANGE: u32 = 65536;
/// The last range ends below 2^32 - 1, which is no uid (`(uid_t)-1`).
const SLOTS: u32 = (u32::MAX - FIRST_HOST_ID) / RANGE;

fn overlaps(start: u32, taken: &UserNamespace) -> bool {
    let end = u64::from(start) + u64::from(RANGE);
    let hits = |other: u32| {
        u64::from(other) < end && u64::from(start) < u64::from(other) + u64::from(taken.size)
    };
    hits(taken.host_uid) || hits(taken.host_gid)
}

/// The lowest free range, given every mapping in use.
pub fn allocate(taken: &[UserNamespace]) -> Result<UserNamespace, ManagerError> {
    (0..SLOTS)
        .map(|slot| FIRST_HOST_ID + slot * RANGE)
        .find(|start| !taken.iter().any(|t| overlaps(*start, t)))
        .map(|start| UserNamespace {
            host_uid: start,
            host_gid: start,
            size: RANGE,
        })
        .ok_or_else(|| {
            ManagerError::Invalid(format!(
                "no range of {RANGE} host ids is free for another user namespace"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(host_uid: u32, host_gid: u32, size: u32) -> UserNamespace {
        UserNamespace {
            host_uid,
            host_gid,
            size,
        }
    }

    #[test]
    fn ranges_do_not_overlap_anything_in_use() {
        let first = allocate(&[]).unwrap();
        assert_eq!(first, ns(FIRST_HOST_ID, FIRST_HOST_ID, RANGE));
        let second = allocate(&[first]).unwrap();
        assert_eq!(second.host_uid, FIRST_HOST_ID + RANGE);
        // A freed range is reused.
        assert_eq!(allocate(&[second]).unwrap(), first);
        // An explicit mapping across two ranges pushes past both, by its
        // uids or by its gids.
        let explicit = ns(FIRST_HOST_ID + 10, 5, 70_000);
        assert_eq!(
            allocate(&[explicit]).unwrap().host_uid,
            FIRST_HOST_ID + 2 * RANGE
        );
        let by_gid = ns(0, FIRST_HOST_ID + RANGE - 1, 2);
        assert_eq!(
            allocate(&[by_gid]).unwrap().host_uid,
            FIRST_HOST_ID + 2 * RANGE
        );
        // The last range stays below (uid_t)-1.
        let last = FIRST_HOST_ID + (SLOTS - 1) * RANGE;
        assert!(u64::from(last) + u64::from(RANGE) <= u64::from(u32::MAX));
    }

    #[test]
    fn a_full_machine_is_refused() {
        let everything = ns(0, 0, u32::MAX);
        let e = allocate(&[everything]).unwrap_err().to_string();
        assert!(e.contains("no range"), "{e}");
    }
}
