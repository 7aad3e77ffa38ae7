//! What a command acts on: everything, some tables, some rows by key, or
//! rows matching a predicate, less the rows left out. Parsed from
//! `--table`, `--id`, `--where` and `--skip`.

use std::fmt;

/// The rows a plan covers. Empty means every managed table.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    pub tables: Vec<String>,
    /// (table, key values as written, in key order)
    pub ids: Vec<(String, Vec<String>)>,
    /// (table, SQL predicate passed to each database as written)
    pub wheres: Vec<(String, String)>,
    /// (table, key values as written): rows left out of whatever the rest
    /// selects, with the rows that need them.
    #[serde(default)]
    pub skips: Vec<(String, Vec<String>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectionError(pub String);

impl Selection {
    /// Whether the selection covers every managed table (rows left out
    /// with `--skip` aside).
    pub fn is_everything(&self) -> bool {
        self.tables.is_empty() && self.ids.is_empty() && self.wheres.is_empty()
    }

    /// Whether nothing narrows the plan: every table, no row left out.
    pub fn is_all(&self) -> bool {
        self.is_everything() && self.skips.is_empty()
    }

    /// Every table the selection names.
    pub fn named_tables(&self) -> impl Iterator<Item = &String> {
        self.tables
            .iter()
            .chain(self.ids.iter().map(|(t, _)| t))
            .chain(self.wheres.iter().map(|(t, _)| t))
            .chain(self.skips.iter().map(|(t, _)| t))
    }

    /// The selection as command-line words, for the journal and plans.
    pub fn words(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            out.push(format!("--table {t}"));
        }
        for (t, k) in &self.ids {
            out.push(format!("--id {t}:{}", k.join(",")));
        }
        for (t, w) in &self.wheres {
            out.push(format!("--where {t}:{w}"));
        }
        for (t, k) in &self.skips {
            out.push(format!("--skip {t}:{}", k.join(",")));
        }
        out
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            f.write_str("every managed table")
        } else {
            f.write_str(&self.words().join(" "))
        }
    }
}

/// Parses `T:V` or `T:V1,V2` (a composite key in key order).
/// Errors name no flag: a front end says where the text came from.
pub fn parse_id(s: &str) -> Result<(String, Vec<String>), SelectionError> {
    parse_key_arg(s)
}

/// Parses the row of `--skip T:V` (as [`parse_id`]).
pub fn parse_skip(s: &str) -> Result<(String, Vec<String>), SelectionError> {
    parse_key_arg(s)
}

fn parse_key_arg(s: &str) -> Result<(String, Vec<String>), SelectionError> {
    let bad = |why: &str| {
        SelectionError(format!(
            "`{s}`: {why}; write TABLE:KEY, e.g. businesses:7, or TABLE:V1,V2 for a composite key"
        ))
    };
    let (table, key) = s.split_once(':').ok_or_else(|| bad("no `:` between table and key"))?;
    if table.trim().is_empty() {
        return Err(bad("the table is missing"));
    }
    if key.is_empty() {
        return Err(bad("the key is missing"));
    }
    // A key written as Extended JSON (`{"$oid": "..."}`, a document store's
    // typed key) is one part, commas and all.
    let parts: Vec<String> = if key.starts_with('{') {
        vec![key.to_string()]
    } else {
        key.split(',').map(str::to_string).collect()
    };
    if parts.iter().any(String::is_empty) {
        return Err(bad("a key part is empty"));
    }
    Ok((table.trim().to_string(), parts))
}

/// Parses `T:PREDICATE`.
pub fn parse_where(s: &str) -> Result<(String, String), SelectionError> {
    let bad = |why: &str| {
        SelectionError(format!(
            "`{s}`: {why}; write TABLE:'SQL predicate', e.g. \"businesses:city_id = 3\""
        ))
    };
    let (table, pred) = s
        .split_once(':')
        .ok_or_else(|| bad("no `:` between table and predicate"))?;
    if table.trim().is_empty() || table.contains(char::is_whitespace) {
        return Err(bad("the table name is missing or has spaces"));
    }
    if pred.trim().is_empty() {
        return Err(bad("the predicate is empty"));
    }
    if pred.contains(';') {
        return Err(bad("a predicate is one SQL expression, without `;`"));
    }
    Ok((table.to_string(), pred.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_predicates() {
        assert_eq!(parse_id("t:7").unwrap(), ("t".into(), vec!["7".into()]));
        assert_eq!(parse_id("t:a,b").unwrap().1, ["a", "b"]);
        for bad in ["t", ":7", "t:", "t:1,,2"] {
            assert!(parse_id(bad).is_err(), "{bad}");
            assert!(parse_skip(bad).unwrap_err().0.starts_with(&format!("`{bad}`")), "{bad}");
        }
        assert_eq!(parse_where("t: a = 1").unwrap(), ("t".into(), "a = 1".into()));
        for bad in ["t", "t:  ", ":a=1", "t:a=1; drop table t"] {
            assert!(parse_where(bad).is_err(), "{bad}");
        }
    }
}
