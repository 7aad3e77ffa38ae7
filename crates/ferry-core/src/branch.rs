//! The name of a per-branch environment, made from its branch name: pure,
//! so its rules are property-tested here.
//!
//! Lower-case; every character outside `[a-z0-9]` becomes `-`; runs of `-`
//! collapse; no leading or trailing `-`; at most [`MAX_LEN`] characters.
//! When the name had to be cut, or when it is already taken by another
//! branch, a short stable hash of the full branch name is appended
//! (`feature-...-3f9a1c`), so two branches never share an environment.

/// The longest name of a branch environment.
pub const MAX_LEN: usize = 50;

/// Hex digits of the branch hash appended to a cut or taken name.
const HASH_LEN: usize = 6;

/// The plain form of `branch`: lower-case, `[a-z0-9]` and single `-`
/// between them, not cut. Empty when the branch has no letter or digit.
pub fn slug(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    for c in branch.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The short stable hash of the full branch name (hex, [`HASH_LEN`] digits).
pub fn branch_hash(branch: &str) -> String {
    let h = blake3::hash(branch.as_bytes());
    h.to_hex()[..HASH_LEN].to_string()
}

/// The name with the branch's hash appended, cut so that the whole fits
/// [`MAX_LEN`].
fn hashed(slug: &str, branch: &str) -> String {
    let room = MAX_LEN - HASH_LEN - 1;
    let stem: &str = slug.get(..room.min(slug.len())).unwrap_or(slug).trim_end_matches('-');
    if stem.is_empty() {
        branch_hash(branch)
    } else {
        format!("{stem}-{}", branch_hash(branch))
    }
}

/// The environment name of `branch`. `taken(name)` answers the branch that
/// already holds `name`, if any: a name held by the same branch is its
/// own (so asking twice gives the same name), a name held by another
/// branch gets the hash. A branch whose plain form is empty, or longer
/// than [`MAX_LEN`], gets the hash too.
pub fn env_name(branch: &str, taken: impl Fn(&str) -> Option<String>) -> String {
    let plain = slug(branch);
    if plain.is_empty() || plain.len() > MAX_LEN {
        return hashed(&plain, branch);
    }
    match taken(&plain) {
        Some(holder) if holder != branch => hashed(&plain, branch),
        _ => plain,
    }
}

/// Whether `name` follows the rule's form (what a name given by hand
/// must be to name a branch environment).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// A time to live as seconds: a whole number and its unit, `s`, `m`, `h`
/// or `d` (`7d`, `36h`, `0d`: at once).
pub fn parse_ttl(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let unit = t
        .chars()
        .last()
        .ok_or_else(|| "an empty time to live; write it as 7d, 36h, 90m or 30s".to_string())?;
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => {
            return Err(format!(
                "`{text}` is not a time to live: end it with s, m, h or d (7d, 36h, 90m, 30s)"
            ))
        }
    };
    let n: i64 =
        t[..t.len() - 1].parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
            format!("`{text}` is not a time to live: a whole number of s, m, h or d (7d, 36h, 90m, 30s)")
        })?;
    n.checked_mul(per)
        .ok_or_else(|| format!("`{text}` is too long a time to live"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn free(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn examples() {
        assert_eq!(env_name("feature/ABC_123--x", free), "feature-abc-123-x");
        assert_eq!(env_name("--Fix: the bug!--", free), "fix-the-bug");
        let long = format!("feature/{}", "a".repeat(80));
        let cut = env_name(&long, free);
        assert_eq!(cut.len(), MAX_LEN);
        assert!(cut.ends_with(&format!("-{}", branch_hash(&long))), "{cut}");
        // Taken by another branch: the hash; taken by itself: the same.
        let other = |_: &str| Some("feature/x".to_string());
        assert_eq!(
            env_name("feature-x", other),
            format!("feature-x-{}", branch_hash("feature-x"))
        );
        let own = |_: &str| Some("feature/x".to_string());
        assert_eq!(env_name("feature/x", own), "feature-x");
        assert_eq!(env_name("///", free), branch_hash("///"));
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("7d"), Ok(7 * 86_400));
        assert_eq!(parse_ttl("0d"), Ok(0));
        assert_eq!(parse_ttl("36h"), Ok(36 * 3600));
        assert_eq!(parse_ttl("90m"), Ok(5400));
        assert_eq!(parse_ttl("30s"), Ok(30));
        for bad in ["", "7", "d", "-1d", "7w", "1.5h", "99999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    /// Names given out one after another, each seeing those before it.
    fn assign(branches: &[String]) -> BTreeMap<String, String> {
        let mut holders: BTreeMap<String, String> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for b in branches {
            if out.contains_key(b) {
                continue;
            }
            let n = env_name(b, |n| holders.get(n).cloned());
            holders.insert(n.clone(), b.clone());
            out.insert(b.clone(), n);
        }
        out
    }

    proptest! {
        #[test]
        fn length_and_charset(branch in "\\PC{0,120}") {
            let n = env_name(&branch, free);
            prop_assert!(is_valid_name(&n), "{n:?} from {branch:?}");
        }

        #[test]
        fn idempotent(branch in "[a-zA-Z0-9/_ .-]{0,90}") {
            let n = env_name(&branch, free);
            prop_assert_eq!(env_name(&n, free), n.clone());
            // Asking again once the branch holds it gives the same name.
            let b = branch.clone();
            prop_assert_eq!(env_name(&branch, |_| Some(b.clone())), n);
        }

        #[test]
        fn distinct_branches_distinct_names(
            branches in proptest::collection::vec("(feat|FEAT|fix)[/_ -]{0,2}[a-c]{0,3}|[a-b]{45,60}", 1..12)
        ) {
            let names = assign(&branches);
            let mut seen = BTreeMap::new();
            for (b, n) in &names {
                prop_assert!(is_valid_name(n));
                if let Some(other) = seen.insert(n.clone(), b.clone()) {
                    prop_assert!(false, "{b:?} and {other:?} share {n:?}");
                }
            }
        }
    }
}
