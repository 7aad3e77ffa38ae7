//! Who may do what, from `[access]` (PRODUCT.md "[access] defaults"):
//! without `[access]` everyone may do everything (single-user mode); with
//! it, unlisted users cannot write anything, an environment missing from a
//! right's map is open to every listed user, and anyone may read.

use crate::config::AccessConfig;

/// A right that `[access]` grants per environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// Promote into the environment (also `baseline`).
    Promote,
    /// Approve or reject reviews in the environment.
    Approve,
    /// Revert promotions in the environment.
    Revert,
    /// Refresh the environment from one further down the pipeline
    /// (default: whoever may promote into it).
    Refresh,
    /// Clone the environment into per-branch environments, and destroy
    /// those clones (keyed by the parent).
    Envs,
}

impl Right {
    pub fn name(self) -> &'static str {
        match self {
            Right::Promote => "promote",
            Right::Approve => "approve",
            Right::Revert => "revert",
            Right::Refresh => "refresh",
            Right::Envs => "envs",
        }
    }
}

/// Whether `user` holds `right` in `env`; `Err` says why not, and what to do.
pub fn check(access: Option<&AccessConfig>, user: &str, right: Right, env: &str) -> Result<(), String> {
    let Some(access) = access else {
        return Ok(());
    };
    let Some(roles) = access.users.get(user) else {
        let known: Vec<&str> = access.users.keys().map(String::as_str).collect();
        return Err(format!(
            "user `{user}` is not listed in [access] and may not write anything (listed: {})",
            known.join(", ")
        ));
    };
    let map = match right {
        Right::Promote => &access.promote,
        Right::Approve => &access.approve,
        Right::Revert => &access.revert,
        // Not listed for refresh: whoever may promote into it.
        Right::Refresh if !access.refresh.contains_key(env) => &access.promote,
        Right::Refresh => &access.refresh,
        Right::Envs => &access.envs,
    };
    match map.get(env) {
        None => Ok(()),
        Some(allowed) if allowed.iter().any(|r| roles.contains(r)) => Ok(()),
        Some(allowed) => Err(format!(
            "user `{user}` (roles: {}) may not {}: that needs one of the roles {}",
            if roles.is_empty() {
                "none".to_string()
            } else {
                roles.join(", ")
            },
            match right {
                Right::Envs =>
                    format!("clone `{env}` into per-branch environments, or mark its clones merged or destroy them"),
                other => format!("{} in `{env}`", other.name()),
            },
            allowed.join(", ")
        )),
    }
}

/// Whether `user` may approve a review submitted by `submitter`: with
/// `[access]`, nobody approves a review they submitted.
pub fn check_not_own(access: Option<&AccessConfig>, user: &str, submitter: &str) -> Result<(), String> {
    if access.is_some() && user == submitter {
        return Err(format!(
            "user `{user}` submitted this review and may not approve it; another approver must decide it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn access() -> AccessConfig {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        AccessConfig {
            users: BTreeMap::from([
                ("alice".into(), s(&["pm"])),
                ("bob".into(), s(&["pm", "lead"])),
                ("carol".into(), s(&["qa"])),
            ]),
            promote: BTreeMap::from([("production".into(), s(&["pm"]))]),
            approve: BTreeMap::from([("production".into(), s(&["lead"]))]),
            revert: BTreeMap::new(),
            refresh: BTreeMap::from([("staging".into(), s(&["lead"]))]),
            envs: BTreeMap::from([("production".into(), s(&["lead"]))]),
        }
    }

    #[test]
    fn defaults_of_the_product() {
        let a = access();
        assert!(check(None, "anyone", Right::Approve, "production").is_ok());
        assert!(check(Some(&a), "alice", Right::Promote, "production").is_ok());
        assert!(check(Some(&a), "carol", Right::Promote, "production").is_err());
        // An environment missing from a map is open to every listed user.
        assert!(check(Some(&a), "carol", Right::Promote, "preprod").is_ok());
        assert!(check(Some(&a), "carol", Right::Revert, "production").is_ok());
        // Unlisted users cannot write anything.
        let err = check(Some(&a), "mallory", Right::Promote, "preprod").unwrap_err();
        assert!(err.contains("mallory"), "{err}");
        assert!(check(Some(&a), "alice", Right::Approve, "production").is_err());
        assert!(check(Some(&a), "bob", Right::Approve, "production").is_ok());
        assert!(check_not_own(Some(&a), "bob", "bob").is_err());
        assert!(check_not_own(None, "bob", "bob").is_ok());
    }

    #[test]
    fn refresh_is_its_own_right_or_promote_s() {
        let a = access();
        assert!(check(Some(&a), "bob", Right::Refresh, "staging").is_ok());
        let err = check(Some(&a), "alice", Right::Refresh, "staging").unwrap_err();
        assert!(err.contains("may not refresh in `staging`"), "{err}");
        // Not listed for refresh: who may promote into it.
        assert!(check(Some(&a), "alice", Right::Refresh, "production").is_ok());
        assert!(check(Some(&a), "carol", Right::Refresh, "production").is_err());
        assert!(check(Some(&a), "carol", Right::Refresh, "preprod").is_ok());
    }
}
