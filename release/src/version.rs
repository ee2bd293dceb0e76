//! Husk versions: what they may contain, and their order, which must be
//! the order systemd-boot gives its entries (newest first), since the
//! boot loader picks the newest version that still has tries.

use std::cmp::Ordering;

/// A version as Husk writes it into file names: letters, digits and
/// `. _ ~ ^ -`, never `+` (it starts the boot counter) nor `/`.
pub fn check_version(version: &str) -> Result<(), String> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '^' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "version {version:?}: use 1-64 letters, digits and . _ ~ ^ - only"
        ))
    }
}

/// The OS version an os-release text declares: `IMAGE_VERSION`, else
/// `VERSION_ID` (quotes removed). The agent reads its own from
/// /etc/os-release, the image builder a UKI's from its `.osrel`.
pub fn version_from_os_release(text: &str) -> Option<String> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .filter(|v| !v.is_empty())
    };
    field("IMAGE_VERSION").or_else(|| field("VERSION_ID"))
}

/// Compares two versions as systemd does (`strverscmp_improved`, the
/// order of the Boot Loader Specification): runs of digits compare as
/// numbers, letters as text; `~` sorts before anything (a pre-release,
/// `1.0~rc1` < `1.0`), `-` and `^` after the end (`1.0^fix` > `1.0`);
/// `.` and `_` only separate.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        // Separators other than the special ones are skipped.
        a = skip_separators(a);
        b = skip_separators(b);
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {}
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(&x), Some(&y)) if is_suffix(x) || is_suffix(y) => {
                if is_suffix(x) != is_suffix(y) {
                    // A suffix is newer than a further component only
                    // when the other side has ended, handled above; a
                    // component beats a suffix.
                    return if is_suffix(x) {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    };
                }
                if x != y {
                    return x.cmp(&y);
                }
            }
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (na, ra) = split_run(a, |c| c.is_ascii_digit());
                let (nb, rb) = split_run(b, |c| c.is_ascii_digit());
                let (na, nb) = (trim_zeros(na), trim_zeros(nb));
                let order = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if order != Ordering::Equal {
                    return order;
                }
                a = ra;
                b = rb;
                continue;
            }
            (Some(x), Some(y)) if x.is_ascii_digit() != y.is_ascii_digit() => {
                // Numbers are newer than letters (`1.0.1` > `1.0.a`).
                return if x.is_ascii_digit() {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            _ => {
                let (wa, ra) = split_run(a, |c| c.is_ascii_alphabetic());
                let (wb, rb) = split_run(b, |c| c.is_ascii_alphabetic());
                let order = wa.cmp(wb);
                if order != Ordering::Equal {
                    return order;
                }
                a = ra;
                b = rb;
                continue;
            }
        }
        a = &a[1..];
        b = &b[1..];
    }
}

fn is_suffix(c: u8) -> bool {
    matches!(c, b'-' | b'^')
}

fn skip_separators(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .take_while(|c| !c.is_ascii_alphanumeric() && !matches!(c, b'~' | b'-' | b'^'))
        .count();
    &s[n..]
}

fn split_run(s: &[u8], class: impl Fn(&u8) -> bool) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| class(c)).count();
    s.split_at(n)
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(a: &str, b: &str) {
        assert_eq!(compare_versions(a, b), Ordering::Less, "{a} < {b}");
        assert_eq!(compare_versions(b, a), Ordering::Greater, "{b} > {a}");
    }

    #[test]
    fn numbers_compare_as_numbers() {
        lt("1.9", "1.10");
        lt("1.0", "1.0.1");
        lt("0.9.9", "1");
        lt("2", "10");
        assert_eq!(compare_versions("1.01", "1.1"), Ordering::Equal);
        assert_eq!(compare_versions("1.2.3", "1.2.3"), Ordering::Equal);
    }

    #[test]
    fn tilde_is_a_pre_release_and_suffixes_come_after() {
        lt("1.0~rc1", "1.0");
        lt("1.0~rc1", "1.0~rc2");
        lt("1.0", "1.0^fix");
        lt("1.0", "1.0-1");
        lt("1.0-1", "1.0.1");
    }

    #[test]
    fn letters_sort_below_numbers() {
        lt("1.a", "1.1");
        lt("1.0a", "1.0b");
    }

    #[test]
    fn version_from_os_release_prefers_image_version() {
        let text = "NAME=Husk\nVERSION_ID=\"1.2\"\nIMAGE_VERSION=\"1.2.3\"\n";
        assert_eq!(version_from_os_release(text).as_deref(), Some("1.2.3"));
        assert_eq!(
            version_from_os_release("VERSION_ID=2\n").as_deref(),
            Some("2")
        );
        assert_eq!(version_from_os_release("VERSION_ID=\"\"\nNAME=x\n"), None);
    }

    #[test]
    fn versions_are_checked() {
        assert!(check_version("1.2.3~rc1").is_ok());
        for bad in ["", "1+3", "a/b", "1 2", &"9".repeat(65)] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }
}
