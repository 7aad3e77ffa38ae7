//! The hand-written per-row sync a team would write: in one transaction on
//! production, select each staging row by id in production, insert it or
//! update it when it differs (parents first), then delete the production
//! rows missing from staging (children first; the missing ids found by
//! reading both sides' ids once). Plain code on purpose: the
//! baseline Ferry is measured against, not a competitor to tune.

use std::collections::HashSet;

use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::{Connection, MySqlConnection, PgConnection, Row as _};

use crate::db::{bind_my, bind_pg, insert_sql, update_sql, Db};
use crate::gen::{Row, V};
use crate::schema::{Engine, Kind, Table, TABLES};

/// What the sync did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// Syncs `production` to `staging`.
pub async fn sync(staging: &Db, production: &Db) -> Result<SyncCounts> {
    match (staging, production) {
        (Db::Sqlite(s), Db::Sqlite(p)) => sync_sqlite(s, p),
        (Db::Postgres(..), Db::Postgres(..)) => sync_pg(&staging.url(), &production.url()).await,
        (Db::Mysql(..), Db::Mysql(..)) => sync_my(&staging.url(), &production.url()).await,
        _ => anyhow::bail!("the sync runs between two databases of one engine"),
    }
}

fn non_key(t: &Table) -> Vec<usize> {
    (1..t.cols.len()).collect()
}

fn sqlite_row(r: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Vec<rusqlite::types::Value>> {
    (0..n).map(|i| r.get(i)).collect()
}

fn sync_sqlite(staging: &std::path::Path, production: &std::path::Path) -> Result<SyncCounts> {
    use rusqlite::OptionalExtension;
    let src = rusqlite::Connection::open(staging)?;
    let mut dst = rusqlite::Connection::open(production)?;
    dst.execute_batch("PRAGMA foreign_keys = ON")?;
    let tx = dst.transaction()?;
    let mut counts = SyncCounts::default();
    for t in &TABLES {
        let n = t.cols.len();
        let mut read = src.prepare(&format!("SELECT {} FROM {} ORDER BY id", t.names().join(", "), t.name))?;
        let mut find = tx.prepare(&format!(
            "SELECT {} FROM {} WHERE id = ?1",
            t.names().join(", "),
            t.name
        ))?;
        let mut insert = tx.prepare(&insert_sql(Engine::Sqlite, t))?;
        let mut update = tx.prepare(&update_sql(Engine::Sqlite, t, &non_key(t)))?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let row = sqlite_row(r, n)?;
            let existing = find.query_row([&row[0]], |r| sqlite_row(r, n)).optional()?;
            match existing {
                None => {
                    insert.execute(rusqlite::params_from_iter(&row))?;
                    counts.inserted += 1;
                }
                Some(old) if old != row => {
                    let params = row[1..].iter().chain(std::iter::once(&row[0]));
                    update.execute(rusqlite::params_from_iter(params))?;
                    counts.updated += 1;
                }
                Some(_) => {}
            }
        }
    }
    for t in TABLES.iter().rev() {
        let keep: HashSet<i64> = src
            .prepare(&format!("SELECT id FROM {}", t.name))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let ids: Vec<i64> = tx
            .prepare(&format!("SELECT id FROM {}", t.name))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut delete = tx.prepare(&format!("DELETE FROM {} WHERE id = ?1", t.name))?;
        for id in ids.into_iter().filter(|id| !keep.contains(id)) {
            delete.execute([id])?;
            counts.deleted += 1;
        }
    }
    tx.commit()?;
    Ok(counts)
}

fn pg_row(r: &PgRow, t: &Table) -> Result<Row> {
    t.cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(match c.kind {
                Kind::Int => r.try_get::<Option<i64>, _>(i)?.map_or(V::Null, V::Int),
                Kind::Text => r.try_get::<Option<String>, _>(i)?.map_or(V::Null, V::Text),
                Kind::Json => r
                    .try_get::<Option<serde_json::Value>, _>(i)?
                    .map_or(V::Null, |j| V::Text(j.to_string())),
                Kind::Blob => r.try_get::<Option<Vec<u8>>, _>(i)?.map_or(V::Null, V::Blob),
                Kind::Ts => r.try_get::<Option<chrono::NaiveDateTime>, _>(i)?.map_or(V::Null, V::Ts),
            })
        })
        .collect()
}

async fn sync_pg(staging: &str, production: &str) -> Result<SyncCounts> {
    let mut src = PgConnection::connect(staging).await.context("staging")?;
    let mut dst = PgConnection::connect(production).await.context("production")?;
    let mut tx = dst.begin().await?;
    let mut counts = SyncCounts::default();
    for t in &TABLES {
        let cols = t.names().join(", ");
        let read = format!("SELECT {cols} FROM {} ORDER BY id", t.name);
        let find = format!("SELECT {cols} FROM {} WHERE id = $1", t.name);
        let insert = insert_sql(Engine::Postgres, t);
        let rest = non_key(t);
        let update = update_sql(Engine::Postgres, t, &rest);
        let mut rows = sqlx::query(&read).fetch(&mut src);
        while let Some(r) = rows.try_next().await? {
            let row = pg_row(&r, t)?;
            let existing = sqlx::query(&find).bind(row[0].int()).fetch_optional(&mut *tx).await?;
            let existing = existing.map(|r| pg_row(&r, t)).transpose()?;
            match existing {
                None => {
                    let mut q = sqlx::query(&insert);
                    for (v, c) in row.iter().zip(t.cols) {
                        q = bind_pg(q, v, c.kind);
                    }
                    q.execute(&mut *tx).await?;
                    counts.inserted += 1;
                }
                Some(old) if old != row => {
                    let mut q = sqlx::query(&update);
                    for i in &rest {
                        q = bind_pg(q, &row[*i], t.cols[*i].kind);
                    }
                    q.bind(row[0].int()).execute(&mut *tx).await?;
                    counts.updated += 1;
                }
                Some(_) => {}
            }
        }
    }
    for t in TABLES.iter().rev() {
        let select = format!("SELECT id FROM {}", t.name);
        let keep: HashSet<i64> = sqlx::query_scalar(&select)
            .fetch_all(&mut src)
            .await?
            .into_iter()
            .collect();
        let ids: Vec<i64> = sqlx::query_scalar(&select).fetch_all(&mut *tx).await?;
        let delete = format!("DELETE FROM {} WHERE id = $1", t.name);
        for id in ids.into_iter().filter(|id| !keep.contains(id)) {
            sqlx::query(&delete).bind(id).execute(&mut *tx).await?;
            counts.deleted += 1;
        }
    }
    tx.commit().await?;
    src.close().await?;
    dst.close().await?;
    Ok(counts)
}

fn my_row(r: &MySqlRow, t: &Table) -> Result<Row> {
    t.cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(match c.kind {
                Kind::Int => r.try_get::<Option<i64>, _>(i)?.map_or(V::Null, V::Int),
                Kind::Text | Kind::Json => r
                    .try_get::<Option<Vec<u8>>, _>(i)?
                    .map_or(V::Null, |b| V::Text(String::from_utf8_lossy(&b).into_owned())),
                Kind::Blob => r.try_get::<Option<Vec<u8>>, _>(i)?.map_or(V::Null, V::Blob),
                Kind::Ts => r.try_get::<Option<chrono::NaiveDateTime>, _>(i)?.map_or(V::Null, V::Ts),
            })
        })
        .collect()
}

async fn sync_my(staging: &str, production: &str) -> Result<SyncCounts> {
    let mut src = MySqlConnection::connect(staging).await.context("staging")?;
    let mut dst = MySqlConnection::connect(production).await.context("production")?;
    let mut tx = dst.begin().await?;
    let mut counts = SyncCounts::default();
    for t in &TABLES {
        let cols = t.names().join(", ");
        let read = format!("SELECT {cols} FROM {} ORDER BY id", t.name);
        let find = format!("SELECT {cols} FROM {} WHERE id = ?", t.name);
        let insert = insert_sql(Engine::Mysql, t);
        let rest = non_key(t);
        let update = update_sql(Engine::Mysql, t, &rest);
        let mut rows = sqlx::query(&read).fetch(&mut src);
        while let Some(r) = rows.try_next().await? {
            let row = my_row(&r, t)?;
            let existing = sqlx::query(&find).bind(row[0].int()).fetch_optional(&mut *tx).await?;
            let existing = existing.map(|r| my_row(&r, t)).transpose()?;
            match existing {
                None => {
                    let mut q = sqlx::query(&insert);
                    for (v, c) in row.iter().zip(t.cols) {
                        q = bind_my(q, v, c.kind);
                    }
                    q.execute(&mut *tx).await?;
                    counts.inserted += 1;
                }
                Some(old) if old != row => {
                    let mut q = sqlx::query(&update);
                    for i in &rest {
                        q = bind_my(q, &row[*i], t.cols[*i].kind);
                    }
                    q.bind(row[0].int()).execute(&mut *tx).await?;
                    counts.updated += 1;
                }
                Some(_) => {}
            }
        }
    }
    for t in TABLES.iter().rev() {
        let select = format!("SELECT id FROM {}", t.name);
        let keep: HashSet<i64> = sqlx::query_scalar(&select)
            .fetch_all(&mut src)
            .await?
            .into_iter()
            .collect();
        let ids: Vec<i64> = sqlx::query_scalar(&select).fetch_all(&mut *tx).await?;
        let delete = format!("DELETE FROM {} WHERE id = ?", t.name);
        for id in ids.into_iter().filter(|id| !keep.contains(id)) {
            sqlx::query(&delete).bind(id).execute(&mut *tx).await?;
            counts.deleted += 1;
        }
    }
    tx.commit().await?;
    src.close().await?;
    dst.close().await?;
    Ok(counts)
}
