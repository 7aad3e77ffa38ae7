//! The trace of deletes of tables with `track_deletes` (docs/config.md):
//! a trigger per table, installed by `ferry track`, writes every deleted
//! key into `_ferry_deleted` in the deleting transaction, with the
//! database's UTC time. A changed-only plan then reads the keys deleted
//! since the last sync from there instead of comparing every key of both
//! sides ([`read`]).
//!
//! Rows of `_ferry_deleted` with a `kind` are not deletes: `installed`
//! (written by [`install`] after the trigger exists, with Ferry's clock)
//! says from when the trace is whole; `truncated` (PostgreSQL's `TRUNCATE`
//! trigger) says it broke.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use ferry_core::value::Value;
use ferry_db::{meta, Predicate, ScanRequest, Store};

use crate::error::{Error, Result};

/// The text form of `_ferry_deleted.at`: UTC, ordered as text.
const AT: &str = "%Y-%m-%d %H:%M:%S%.6f";

const INSTALLED: &str = "installed";
const TRUNCATED: &str = "truncated";

/// What [`install`] did to one table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    pub table: String,
    /// False: the trace was there already, whole.
    pub created: bool,
    /// Why plans cannot trust the trace all the same (MySQL: deletes in
    /// cascade from a foreign key fire no trigger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Installs, in `store`, the trace of deletes of each `(table, key
/// column)` that lacks it (a trigger gone or disabled is made again), and
/// records from when each trace is whole. A key that is not one integer
/// column is refused before anything is written.
pub async fn install(store: &dyn Store, tables: &[(String, String)]) -> Result<Vec<Installed>> {
    let env = store.env().to_string();
    let Some(sql) = store.as_sql() else {
        return Err(Error::Data(format!(
            "environment `{env}` is not an SQL database: it keeps no trace of deletes (plans compare its keys instead)"
        )));
    };
    for (table, column) in tables {
        if !sql.integer_key(table, column).await? {
            return Err(Error::Data(format!(
                "environment `{env}`, table `{table}`: the key `{column}` is not an integer column, so its deletes cannot be traced (remove `track_deletes` from the table); nothing was written"
            )));
        }
    }
    let d = sql.dialect();
    let mut states = Vec::new();
    for (table, _) in tables {
        states.push(state(store, table).await?);
    }
    let mut txn = store.begin().await?;
    let mut out = Vec::new();
    for ((table, column), state) in tables.iter().zip(states) {
        let created = state.missing;
        if created {
            for stmt in d.delete_trace(table, column) {
                txn.execute_sql(&stmt).await.map_err(|e| Error::from(e.table(table)))?;
            }
            let at = Value::Text(Utc::now().format(AT).to_string());
            let row = vec![Value::Text(table.clone()), at, Value::Text(INSTALLED.into())];
            txn.insert(meta::DELETED, &meta::columns(&["table_name", "at", "kind"]), &[row])
                .await?;
        }
        out.push(Installed {
            table: table.clone(),
            created,
            warning: state.cascades.then(|| cascade_note(&env, table)),
        });
    }
    txn.commit().await?;
    Ok(out)
}

/// What breaks the trace of deletes of a table right now.
struct State {
    /// Its trigger is gone or disabled (or the store runs no SQL).
    missing: bool,
    /// A foreign key deletes its rows in cascade (MySQL fires no trigger).
    cascades: bool,
}

/// [`ferry_db::dialect::Dialect::delete_trace_probe`] of `table`.
async fn state(store: &dyn Store, table: &str) -> Result<State> {
    let Some(sql) = store.as_sql() else {
        return Ok(State {
            missing: true,
            cascades: false,
        });
    };
    match sql.query_scalar(&sql.dialect().delete_trace_probe(table)).await? {
        Some(Value::Int(n)) => Ok(State {
            missing: n & 2 != 0,
            cascades: n & 1 != 0,
        }),
        other => Err(Error::Data(format!(
            "environment `{}`, table `{table}`: the probe of the trace of deletes gave {other:?}, not a number",
            store.env()
        ))),
    }
}

fn cascade_note(env: &str, table: &str) -> String {
    format!("environment `{env}`, table `{table}`: {CASCADES}")
}

const CASCADES: &str = "a foreign key deletes its rows in cascade, which MySQL does without firing triggers; plans find its deletes from the keys instead";

/// What `ferry check` says of the trace of deletes of `table` (keyed by
/// `key` in `store`) when plans cannot use it, without naming the
/// environment or the table (the caller does); `None` when they can, or
/// when `store` runs no SQL (its plans read it whole anyway). Reads only.
pub async fn check(store: &dyn Store, table: &str, key: &[String]) -> Result<Option<String>> {
    let env = store.env();
    let Some(sql) = store.as_sql() else {
        return Ok(None);
    };
    let [column] = key else {
        // A configured key has one column (the config says so); a primary
        // key taken from the schema may have several.
        return Ok(Some(format!(
            "`track_deletes`: the key ({}) has more than one column, so its deletes cannot be traced and plans compare its keys instead (remove `track_deletes`, or set a `key` of one integer column)",
            key.join(", ")
        )));
    };
    if !sql.integer_key(table, column).await? {
        return Ok(Some(format!(
            "`track_deletes`: the key `{column}` is not an integer column here, so its deletes cannot be traced and plans compare its keys instead (remove `track_deletes`)"
        )));
    }
    Ok(match unusable(store, table).await? {
        Some(Unusable::NotInstalled | Unusable::Missing) => Some(format!(
            "`track_deletes`: no trace of deletes here, or its trigger is missing or disabled, so changed-only plans compare every key of both sides instead (run `ferry track {env}`)"
        )),
        Some(Unusable::Cascades) => Some(format!("`track_deletes`: {CASCADES}")),
        None => None,
    })
}

/// Why the trace of deletes of `table` in `store` cannot be used now,
/// whatever its rows say.
enum Unusable {
    /// `_ferry_deleted` does not exist.
    NotInstalled,
    /// The table's trigger is gone or disabled.
    Missing,
    /// A foreign key deletes its rows in cascade (MySQL fires no trigger).
    Cascades,
}

/// What [`check`] and [`read`] look at before any row of the trace.
async fn unusable(store: &dyn Store, table: &str) -> Result<Option<Unusable>> {
    if store.table_schema(meta::DELETED).await?.is_none() {
        return Ok(Some(Unusable::NotInstalled));
    }
    let now = state(store, table).await?;
    Ok(if now.missing {
        Some(Unusable::Missing)
    } else {
        now.cascades.then_some(Unusable::Cascades)
    })
}

/// The keys of `table` deleted in `store` at or after `since` minus
/// `margin_secs`, when the trace covers that whole time: it was installed
/// before `since`, is whole now, and did not break since. `Ok(Err(why))`
/// when it cannot be trusted (the plan then compares the keys).
/// `since`: when the last sync's watermark was taken (RFC 3339).
pub async fn read(
    store: &dyn Store,
    table: &str,
    since: &str,
    margin_secs: i64,
) -> Result<std::result::Result<Vec<i64>, String>> {
    let env = store.env();
    let Some(sql) = store.as_sql() else {
        return Ok(Err(format!("environment `{env}` keeps no trace of deletes")));
    };
    let why = match unusable(store, table).await? {
        Some(Unusable::NotInstalled) => Some(format!(
            "no trace of deletes in environment `{env}` (run `ferry track {env}`)"
        )),
        Some(Unusable::Missing) => Some(format!(
            "its trigger of the trace of deletes is missing or disabled in environment `{env}` (run `ferry track {env}`)"
        )),
        Some(Unusable::Cascades) => Some(cascade_note(env, table)),
        None => None,
    };
    if let Some(why) = why {
        return Ok(Err(why));
    }
    let taken = DateTime::parse_from_rfc3339(since)
        .map_err(|e| {
            Error::Data(format!(
                "table `{table}`: the watermark's time `{since}` is not a time: {e}"
            ))
        })?
        .with_timezone(&Utc);
    let taken_text = taken.format(AT).to_string();
    let bound = (taken - Duration::seconds(margin_secs)).format(AT).to_string();
    let d = sql.dialect();
    let filter = format!(
        "table_name = {t} AND (at >= {b} OR kind = {i})",
        t = d.literal(table),
        b = d.literal(&bound),
        i = d.literal(INSTALLED)
    );
    let mut rx = store
        .scan(ScanRequest {
            table: meta::DELETED.into(),
            columns: meta::columns(&["row_key", "at", "kind"]),
            order_by: Vec::new(),
            filter: Some(Predicate::Native(filter)),
            flag: None,
            descending: false,
            limit: None,
        })
        .await?;
    let (mut keys, mut installed, mut truncated) = (Vec::new(), None::<String>, false);
    let damaged = |what: String| {
        Error::Data(format!(
            "environment `{env}`: a row of `{}` for table `{table}` {what}; plan with --full",
            meta::DELETED
        ))
    };
    while let Some(batch) = rx.recv().await {
        for row in batch? {
            let at = match row.get(1) {
                Some(Value::Text(t)) => t.clone(),
                other => return Err(damaged(format!("holds the time {other:?}"))),
            };
            match (row.first(), row.get(2)) {
                (_, Some(Value::Text(k))) if k == INSTALLED => {
                    if installed.as_ref().is_none_or(|i| *i < at) {
                        installed = Some(at);
                    }
                }
                (_, Some(Value::Text(k))) if k == TRUNCATED => truncated |= at >= bound,
                (Some(Value::Int(key)), Some(Value::Null) | None) if at >= bound => keys.push(*key),
                (Some(Value::Int(_)), Some(Value::Null) | None) => {}
                (key, kind) => return Err(damaged(format!("holds the key {key:?} and the kind {kind:?}"))),
            }
        }
    }
    let Some(installed) = installed else {
        return Ok(Err(format!(
            "no trace of its deletes in environment `{env}` (run `ferry track {env}`)"
        )));
    };
    if NaiveDateTime::parse_from_str(&installed, AT).is_err() {
        return Err(damaged(format!("says it was installed at `{installed}`")));
    }
    Ok(if installed > taken_text {
        Err(format!(
            "the trace of its deletes in environment `{env}` began after the last sync (the next promotion that leaves the table in sync makes it usable)"
        ))
    } else if truncated {
        Err(format!(
            "it was truncated in environment `{env}` since the last sync (a TRUNCATE deletes no row one by one)"
        ))
    } else {
        Ok(keys)
    })
}
