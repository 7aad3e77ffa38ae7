//! The workload as MongoDB documents (`--engines mongodb`): one collection
//! per table, one document per row with `_id` the row's id (an int64),
//! references as int64 fields, a business's `config` an embedded document
//! and its icon BSON binary (subtype 0), `options` an embedded value or
//! `null`, timestamps BSON dates. Loaded, copied, changed and compared with
//! the official driver; the scan floor reads every document of both
//! databases once as raw BSON.

use std::future::IntoFuture;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};
use mongodb::options::IndexOptions;
use mongodb::{Client, Database, IndexModel};

use crate::db::redact;
use crate::gen::{ChangeSet, Op, Row, Workload, V};
use crate::schema::{Kind, Table, TABLES};

/// Documents per `insert_many`.
const BATCH: usize = 1000;

/// The database a `mongodb://HOST/DB` URL names.
pub async fn database(url: &str) -> Result<Database> {
    let client = Client::with_uri_str(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    let name = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('?').next())
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, db)| db.to_string())
        .filter(|db| !db.is_empty())
        .with_context(|| format!("{} names no database", redact(url)))?;
    Ok(client.database(&name))
}

/// A JSON value as BSON: integers int32 when they fit, else int64; other
/// numbers doubles; objects embedded documents in their order.
fn json_bson(j: &serde_json::Value) -> Bson {
    use serde_json::Value as J;
    match j {
        J::Null => Bson::Null,
        J::Bool(b) => Bson::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32),
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Bson::String(s.clone()),
        J::Array(a) => Bson::Array(a.iter().map(json_bson).collect()),
        J::Object(m) => Bson::Document(m.iter().map(|(k, v)| (k.clone(), json_bson(v))).collect()),
    }
}

/// A workload value as BSON.
fn bson(v: &V, kind: Kind) -> Result<Bson> {
    Ok(match (v, kind) {
        (V::Null, _) => Bson::Null,
        (V::Int(i), _) => Bson::Int64(*i),
        (V::Text(s), Kind::Json) => {
            json_bson(&serde_json::from_str(s).with_context(|| format!("the workload's JSON {s:?}"))?)
        }
        (V::Text(s), _) => Bson::String(s.clone()),
        (V::Blob(b), _) => Bson::Binary(mongodb::bson::Binary {
            subtype: mongodb::bson::spec::BinarySubtype::Generic,
            bytes: b.clone(),
        }),
        (V::Ts(t), _) => Bson::DateTime(mongodb::bson::DateTime::from_millis(t.and_utc().timestamp_millis())),
    })
}

/// A row as a document: `_id` the id, then the other columns by name.
pub fn document(t: &Table, row: &Row) -> Result<Document> {
    let mut d = Document::new();
    for (c, v) in t.cols.iter().zip(row) {
        let name = if c.name == "id" { "_id" } else { c.name };
        d.insert(name, bson(v, c.kind)?);
    }
    Ok(d)
}

/// The collections and their indexes: unique names, and every reference
/// field (Ferry fetches children by it), as the SQL schemas index them.
async fn create_schema(db: &Database) -> Result<()> {
    for t in &TABLES {
        db.create_collection(t.name).await.with_context(|| t.name.to_string())?;
        for c in t.cols.iter().filter(|c| c.unique || c.refs.is_some()) {
            let model = IndexModel::builder()
                .keys(doc! { c.name: 1 })
                .options(IndexOptions::builder().unique(c.unique).build())
                .build();
            db.collection::<Document>(t.name)
                .create_index(model)
                .await
                .with_context(|| format!("indexing {}.{}", t.name, c.name))?;
        }
    }
    Ok(())
}

/// Creates the database with production's documents.
pub async fn create_production(url: &str, w: &Workload) -> Result<()> {
    let db = database(url).await?;
    db.drop().await?;
    create_schema(&db).await?;
    for (i, t) in TABLES.iter().enumerate() {
        let coll = db.collection::<Document>(t.name);
        let mut rows = w.rows(i).peekable();
        while rows.peek().is_some() {
            let docs = rows
                .by_ref()
                .take(BATCH)
                .map(|r| document(t, &r))
                .collect::<Result<Vec<_>>>()?;
            coll.insert_many(docs)
                .await
                .with_context(|| format!("loading {}", t.name))?;
        }
    }
    Ok(())
}

/// Makes `dst` a copy of `src`: the workload's collections with their
/// indexes, and every other collection (Ferry's own) but the writer lock,
/// document for document as raw BSON.
pub async fn copy(src: &str, dst: &str) -> Result<()> {
    let (from, to) = (database(src).await?, database(dst).await?);
    to.drop().await?;
    create_schema(&to).await?;
    let mut names = from.list_collection_names().await?;
    names.sort();
    for name in names.iter().filter(|n| *n != "_ferry_lock") {
        let mut cursor = from.collection::<RawDocumentBuf>(name).find(doc! {}).await?;
        let target = to.collection::<RawDocumentBuf>(name);
        let mut batch = Vec::with_capacity(BATCH);
        let mut any = false;
        while let Some(d) = cursor.try_next().await? {
            batch.push(d);
            if batch.len() == BATCH {
                target.insert_many(std::mem::take(&mut batch)).await?;
            }
            any = true;
        }
        if !batch.is_empty() {
            target.insert_many(batch).await?;
        }
        if !any && !TABLES.iter().any(|t| t.name == name) {
            to.create_collection(name).await?;
        }
    }
    Ok(())
}

/// Applies the change set, one command per change.
pub async fn apply(url: &str, cs: &ChangeSet) -> Result<()> {
    let db = database(url).await?;
    for op in &cs.ops {
        match op {
            Op::Insert { table, row } => {
                let t = &TABLES[*table];
                db.collection::<Document>(t.name)
                    .insert_one(document(t, row)?)
                    .await
                    .with_context(|| format!("inserting into {}", t.name))?;
            }
            Op::Update { table, id, set } => {
                let t = &TABLES[*table];
                let mut fields = Document::new();
                for (i, v) in set {
                    let c = &t.cols[*i];
                    fields.insert(c.name, bson(v, c.kind)?);
                }
                let r = db
                    .collection::<Document>(t.name)
                    .update_one(doc! { "_id": id }, doc! { "$set": fields })
                    .await?;
                if r.matched_count != 1 {
                    bail!("{} {id}: no such document to update", t.name);
                }
            }
            Op::Delete { table, id } => {
                let t = &TABLES[*table];
                db.collection::<Document>(t.name).delete_one(doc! { "_id": id }).await?;
            }
        }
    }
    Ok(())
}

/// Document counts of the workload's collections.
pub async fn counts(url: &str) -> Result<Vec<u64>> {
    let db = database(url).await?;
    let mut out = Vec::new();
    for t in &TABLES {
        out.push(db.collection::<Document>(t.name).count_documents(doc! {}).await?);
    }
    Ok(out)
}

pub async fn version(url: &str) -> Result<String> {
    let db = database(url).await?;
    let info = db.run_command(doc! { "buildInfo": 1 }).await?;
    let v = info.get_str("version").unwrap_or("(version not given)");
    let set = db
        .run_command(doc! { "hello": 1 })
        .await?
        .get_str("setName")
        .map_or(String::new(), |s| format!(", replica set {s}"));
    Ok(format!("MongoDB-wire server {v}{set}"))
}

pub async fn drop(url: &str) -> Result<()> {
    database(url).await?.drop().await?;
    Ok(())
}

/// Reads every document of the workload's collections of each database
/// once, as raw BSON (the driver's `RawDocumentBuf`, nothing decoded);
/// returns the wall time in seconds.
pub async fn scan_floor(urls: &[String]) -> Result<f64> {
    let mut dbs = Vec::new();
    for u in urls {
        dbs.push(database(u).await?);
    }
    let start = Instant::now();
    let mut bytes = 0usize;
    for db in &dbs {
        for t in &TABLES {
            let mut cursor = db.collection::<RawDocumentBuf>(t.name).find(doc! {}).await?;
            while let Some(d) = cursor.try_next().await? {
                bytes += d.as_bytes().len();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if bytes == 0 {
        bail!("the scan floor read no documents");
    }
    Ok(secs)
}

fn clip(d: Option<&RawDocumentBuf>) -> String {
    match d {
        None => "no more documents".into(),
        Some(d) => match Document::try_from(d.as_ref()) {
            Ok(doc) => {
                let s: String = doc.to_string().chars().take(300).collect();
                format!("{s:?}")
            }
            Err(e) => format!("a document that does not decode ({e})"),
        },
    }
}

/// Checks that two databases hold the same documents in every workload
/// collection, byte for byte (the raw BSON, field order included), in
/// `_id` order. The error names the first difference.
pub async fn verify_equal(a: (&str, &str), b: (&str, &str)) -> Result<()> {
    let (da, db) = (database(a.1).await?, database(b.1).await?);
    for t in &TABLES {
        let (xa, xb) = (
            da.collection::<RawDocumentBuf>(t.name),
            db.collection::<RawDocumentBuf>(t.name),
        );
        let (mut ca, mut cb) = tokio::try_join!(
            xa.find(doc! {}).sort(doc! { "_id": 1 }).into_future(),
            xb.find(doc! {}).sort(doc! { "_id": 1 }).into_future()
        )?;
        let mut n = 0u64;
        loop {
            let (x, y) = tokio::try_join!(ca.try_next(), cb.try_next())?;
            if x.is_none() && y.is_none() {
                break;
            }
            if x.as_ref().map(|d| d.as_bytes()) != y.as_ref().map(|d| d.as_bytes()) {
                bail!(
                    "collection `{}` differs at document {} (in _id order): {} has {}, {} has {}",
                    t.name,
                    n + 1,
                    a.0,
                    clip(x.as_ref()),
                    b.0,
                    clip(y.as_ref())
                );
            }
            n += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::BUSINESSES;

    #[test]
    fn a_business_is_a_document_with_its_config_and_icon() {
        let w = Workload::new(0.001, crate::gen::DEFAULT_SEED);
        let row = w.rows(BUSINESSES).next().expect("a business");
        let d = document(&TABLES[BUSINESSES], &row).expect("a document");
        assert_eq!(d.keys().next().map(String::as_str), Some("_id"));
        assert_eq!(d.get("_id"), Some(&Bson::Int64(1)));
        assert!(matches!(d.get("partner_id"), Some(Bson::Int64(_))), "{d}");
        assert!(matches!(d.get("config"), Some(Bson::Document(_))), "{d}");
        assert!(matches!(d.get("icon"), Some(Bson::Binary(_) | Bson::Null)), "{d}");
        assert!(matches!(d.get("modified_at"), Some(Bson::DateTime(_))), "{d}");
    }
}
