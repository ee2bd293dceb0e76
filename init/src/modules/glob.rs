//! fnmatch(3) without flags, as kmod matches `modules.alias` patterns:
//! `*` any run, `?` any one byte, `[...]` a set (ranges, `!`/`^` negates,
//! a leading `]` is literal), `\` escapes. Works on bytes; modaliases are
//! ASCII.

/// Whether `text` matches `pattern` as a whole.
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern after it, text index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(&pc) = pattern.get(p) {
            match pc {
                b'*' => {
                    p += 1;
                    star = Some((p, t));
                    continue;
                }
                b'?' if t < text.len() => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some(&tc) = text.get(t)
                        && let Some((matched, len)) =
                            match_set(pattern.get(p + 1..).unwrap_or_default(), tc)
                    {
                        if matched {
                            p += 1 + len;
                            t += 1;
                            continue;
                        }
                    } else if text.get(t) == Some(&b'[') {
                        // An unterminated set is a literal '['.
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                b'\\' => {
                    let lit = pattern.get(p + 1).copied().unwrap_or(b'\\');
                    if text.get(t) == Some(&lit) {
                        p += 2.min(pattern.len() - p);
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if text.get(t) == Some(&c) && c != b'?' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        } else if t == text.len() {
            return true;
        }
        // Mismatch: let the last `*` swallow one more byte.
        match star {
            Some((sp, st)) if st < text.len() => {
                star = Some((sp, st + 1));
                p = sp;
                t = st + 1;
            }
            _ => return false,
        }
    }
}

/// Matches `c` against the set starting just after `[`. Returns whether
/// it matched and how many pattern bytes the set used (through `]`), or
/// None when the set is not terminated.
fn match_set(set: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = matches!(set.first(), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *set.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if lo == b'\\' {
            i += 1;
            lo = *set.get(i)?;
        }
        i += 1;
        if set.get(i) == Some(&b'-') && set.get(i + 1).is_some_and(|&h| h != b']') {
            let mut hi = *set.get(i + 1)?;
            i += 2;
            if hi == b'\\' {
                hi = *set.get(i)?;
                i += 1;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        } else if lo == c {
            matched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    fn m(p: &str, t: &str) -> bool {
        fnmatch(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abcd"));
        assert!(!m("abcd", "abc"));
        assert!(m("a*c", "abbbc"));
        assert!(m("a*c", "ac"));
        assert!(m("*", ""));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*b*b*", "abxxbyy"));
        assert!(!m("*b*b*", "abxx"));
    }

    #[test]
    fn sets() {
        assert!(m("[abc]x", "bx"));
        assert!(!m("[abc]x", "dx"));
        assert!(m("[a-f]", "c"));
        assert!(!m("[!a-f]", "c"));
        assert!(m("[^a-f]", "z"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("[", "["));
        assert!(m("x\\*", "x*"));
        assert!(!m("x\\*", "xy"));
    }

    #[test]
    fn real_modules_alias_patterns() {
        assert!(m("virtio:d00000001v*", "virtio:d00000001v00001AF4"));
        assert!(!m("virtio:d00000001v*", "virtio:d00000002v00001AF4"));
        let virtio_pci = "pci:v00001AF4d*sv*sd*bc*sc*i*";
        assert!(m(
            virtio_pci,
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
        ));
        assert!(!m(
            virtio_pci,
            "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00"
        ));
        assert!(m("acpi*:LNXPWRBN:*", "acpi:LNXPWRBN:"));
        assert!(!m("acpi*:LNXPWRBN:*", "acpi:LNXSLPBN:"));
        assert!(m(
            "input:b*v*p*e*-e*k*r*a*m*l*s*f*w*",
            "input:b0019v0000p0001e0000-e0,1,k74,ramlsfw"
        ));
        assert!(m(
            "pci:v00008086d00007020sv*sd*bc*sc*i*",
            "pci:v00008086d00007020sv00001AF4sd00001100bc0Csc03i00"
        ));
        assert!(m(
            "cpu:type:x86,ven*fam*mod*:feature:*0081*",
            "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0081,0082"
        ));
    }
}
