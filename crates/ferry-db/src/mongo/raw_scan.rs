//! Raw scans of collections ([`Store::scan_raw`](crate::Store::scan_raw)):
//! each document's key decoded, every other field it is compared on kept as
//! the bytes of its BSON element (its type byte, then its value as the
//! server sent it), an absent field as an empty cell.
//!
//! Two fields with the same BSON bytes hold the same value, so the
//! planner's merge drops a document whose fields are byte-equal on both
//! sides without converting a value to Extended JSON, normalizing or
//! hashing it: the decoded path spent most of a plan's CPU there. Bytes
//! that differ say nothing (an embedded document's fields in another
//! order): the merge decodes such a row from its image ([`decoder`]) and
//! compares it canonically, as the decoded scan would.
//!
//! The carried field order ([`FIELD_ORDER`]) is a cell of the document's
//! top-level field names, each followed by a zero byte.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::schema::{TableSchema, FIELD_ORDER};
use ferry_core::value::ColumnType;
use ferry_core::Value;
use mongodb::bson::{Bson, Document, RawDocument};

use super::read::id_key;
use super::survey::RawDocs;
use super::{column_type, query_error, values, MongoStore};
use crate::raw::{self, RawBatch, RawBatches, RawSender};
use crate::{meta, Batch, DbError, Predicate, ScanRequest};

/// The tag of a cell holding a BSON element's type byte and value bytes.
const ELEMENT: u8 = raw::tag::BYTES;

impl MongoStore {
    /// A raw scan of `req`, or `None` when the scan must be decoded: one of
    /// Ferry's own collections, a descending scan, or a collection the
    /// server does not sort in Ferry's key order
    /// ([`MongoStore::server_sort`]). A filter document goes to the server
    /// (a flag's, per batch, for the batch's `_id`s); a structural
    /// predicate is checked here on the fields it names.
    pub(super) async fn raw_scan(&self, req: &ScanRequest) -> Result<Option<RawBatches>, DbError> {
        if meta::record_schema(&req.table).is_some() || req.descending {
            return Ok(None);
        }
        let schema = self.scan_schema(req).await?;
        let Some(sort) = self.server_sort(&req.table, &req.order_by).await? else {
            return Ok(None);
        };
        let query = match &req.filter {
            Some(Predicate::Native(text)) => self.native(&req.table, text)?,
            _ => Document::new(),
        };
        let filter = req.filter.clone().filter(|p| !matches!(p, Predicate::Native(_)));
        let flag = match &req.flag {
            None => Flag::None,
            Some(Predicate::Native(text)) => Flag::Server(self.native(&req.table, text)?),
            Some(p) => Flag::Here(p.clone()),
        };
        let docs = self.ordered_documents(&req.table, query, sort, false).await?;
        let layout = Layout::new(&schema, req);
        let decoder = decoder(&layout);
        let (tx, rx) = raw::channel(layout.key_len);
        let reader = Reader {
            store: self.clone(),
            schema,
            layout,
            filter,
            flag,
            limit: req.limit.unwrap_or(usize::MAX),
        };
        tokio::spawn(async move {
            if let Err(e) = reader.run(docs, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Some(rx.with_decoder(decoder)))
    }
}

/// The scan's columns: the key's first, then the imaged ones.
struct Layout {
    key_len: usize,
    /// Field name -> its column's position in the scan.
    at: HashMap<String, usize>,
    /// Each column's type.
    types: Vec<ColumnType>,
    /// The position of the carried field order, when the scan reads it.
    order: Option<usize>,
}

impl Layout {
    fn new(schema: &TableSchema, req: &ScanRequest) -> Layout {
        let order = req.columns.iter().position(|c| c == FIELD_ORDER);
        Layout {
            key_len: req.order_by.len(),
            at: req
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.as_str() != FIELD_ORDER)
                .map(|(i, c)| (c.clone(), i))
                .collect(),
            types: req.columns.iter().map(|c| column_type(schema, c)).collect(),
            order,
        }
    }
}

/// How a raw scan flags its rows.
enum Flag {
    None,
    /// A filter document, asked of the server for each batch's `_id`s.
    Server(Document),
    /// A structural predicate, checked here.
    Here(Predicate),
}

/// Reads the documents of a raw scan into batches.
struct Reader {
    store: MongoStore,
    schema: TableSchema,
    layout: Layout,
    /// A structural filter, checked here (a filter document went to the
    /// server with the query).
    filter: Option<Predicate>,
    flag: Flag,
    limit: usize,
}

impl Reader {
    async fn run(self, mut docs: RawDocs, tx: &RawSender) -> Result<(), DbError> {
        let (env, table) = (self.store.env.clone(), self.schema.name.clone());
        let n = self.layout.types.len();
        // Per column: the document's element, as its type byte and where
        // its value's bytes are.
        let mut cells: Vec<Option<Element>> = Vec::with_capacity(n);
        let mut names: Vec<u8> = Vec::new();
        let mut batch = tx.fresh();
        // The `_id`s of the batch's rows, when a flag is asked.
        let mut ids: Vec<Bson> = Vec::new();
        let mut left = self.limit;
        while left > 0 && docs.advance(&env, &table).await? {
            let d = docs.current(&env, &table)?;
            if let Some(p) = &self.filter {
                if !self.holds(d, p)? {
                    continue;
                }
            }
            cells.clear();
            cells.resize(n, None);
            names.clear();
            let mut id = None;
            for_each_element(d, |name, e| {
                if self.layout.order.is_some() {
                    names.extend_from_slice(name.as_bytes());
                    names.push(0);
                }
                if let Some(&i) = self.layout.at.get(name) {
                    cells[i] = Some(e);
                }
                if name == "_id" {
                    id = Some(e);
                }
            })
            .map_err(|m| {
                query_error(
                    &env,
                    &table,
                    format!("a document of the collection is not valid BSON: {m}"),
                )
            })?;
            let bytes = d.as_bytes();
            for (i, cell) in cells.iter().enumerate().take(self.layout.key_len) {
                let b = cell
                    .map(|e| e.value(bytes))
                    .transpose()
                    .map_err(|m| query_error(&env, &table, format!("a document's key does not decode: {m}")))?;
                let v = values::decode(b.as_ref(), &self.layout.types[i])
                    .map_err(|m| query_error(&env, &table, format!("a document's key {m}")))?;
                batch.push_key(v);
            }
            for (i, cell) in cells.iter().enumerate().skip(self.layout.key_len) {
                match cell {
                    _ if Some(i) == self.layout.order => batch.push_cell(ELEMENT, &names),
                    None => batch.push_null(),
                    Some(e) => batch.push_cell_parts(ELEMENT, &[e.ty], &bytes[e.start..e.end]),
                }
            }
            batch.end_row(match &self.flag {
                Flag::Here(p) => self.holds(d, p)?,
                Flag::None | Flag::Server(_) => false,
            });
            if let Flag::Server(_) = self.flag {
                let e = id.ok_or_else(|| query_error(&env, &table, "a document without `_id`".into()))?;
                ids.push(e.value(bytes).map_err(|m| query_error(&env, &table, m))?);
            }
            left -= 1;
            if batch.is_full() {
                let full = std::mem::replace(&mut batch, tx.fresh());
                if !tx.send(self.flagged(full, &mut ids).await).await {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            let last = self.flagged(batch, &mut ids).await;
            let _ = tx.send(last).await;
        }
        Ok(())
    }

    /// Whether document `d` satisfies the structural predicate `p`,
    /// decoding only the fields it names.
    fn holds(&self, d: &RawDocument, p: &Predicate) -> Result<bool, DbError> {
        let columns = match p {
            Predicate::In { columns, .. } | Predicate::Range { columns, .. } => columns,
            Predicate::All | Predicate::Native(_) => return Ok(true),
        };
        let (env, table) = (&self.store.env, &self.schema.name);
        let mine = columns
            .iter()
            .map(|c| {
                let b = d
                    .get(c)
                    .map_err(|e| e.to_string())
                    .and_then(|v| {
                        v.map(|v| Bson::try_from(v.to_raw_bson()).map_err(|e| e.to_string()))
                            .transpose()
                    })
                    .map_err(|m| query_error(env, table, format!("a document's `{c}` does not decode: {m}")))?;
                values::decode(b.as_ref(), &column_type(&self.schema, c))
                    .map_err(|m| query_error(env, table, format!("a document's `{c}` {m}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(super::read::holds(&self.schema, p, &mine))
    }

    /// `batch` with each row's flag, asked of the server for the rows'
    /// `_id`s (`ids`, emptied).
    async fn flagged(&self, mut batch: RawBatch, ids: &mut Vec<Bson>) -> Result<RawBatch, DbError> {
        let Flag::Server(filter) = &self.flag else {
            return Ok(batch);
        };
        let ids = std::mem::take(ids);
        let keys: Vec<Vec<u8>> = ids.iter().map(id_key).collect();
        let matching = self.store.flagged_ids(&self.schema.name, &ids, filter).await?;
        for (i, k) in keys.iter().enumerate() {
            batch.set_flag(i, matching.contains(k));
        }
        Ok(batch)
    }
}

/// One top-level element of a document: its type byte, and where its
/// value's bytes are in the document.
#[derive(Clone, Copy)]
struct Element {
    ty: u8,
    start: usize,
    end: usize,
}

impl Element {
    fn value(&self, doc: &[u8]) -> Result<Bson, String> {
        element(self.ty, &doc[self.start..self.end])
    }
}

/// Calls `f` with each top-level element of `d` and its name. The
/// elements must cover the document exactly.
fn for_each_element<'a>(d: &'a RawDocument, mut f: impl FnMut(&'a str, Element)) -> Result<(), String> {
    let bytes = d.as_bytes();
    // The length, then per element: type byte, name and its zero, value.
    let mut at = 4;
    for e in d.iter_elements() {
        let e = e.map_err(|e| e.to_string())?;
        let ty = *bytes.get(at).ok_or("an element past the end")?;
        let start = at + 1 + e.key().len() + 1;
        let end = start + e.len();
        if end >= bytes.len() {
            return Err("an element past the end".into());
        }
        f(e.key(), Element { ty, start, end });
        at = end;
    }
    if at + 1 != bytes.len() {
        return Err(format!("its elements end at byte {at} of {}", bytes.len()));
    }
    Ok(())
}

/// The value of one element, from its type byte and value bytes.
fn element(ty: u8, value: &[u8]) -> Result<Bson, String> {
    // A document of that one element: length, element named "v", end.
    let len = 4 + 1 + 2 + value.len() + 1;
    let mut d = Vec::with_capacity(len);
    d.extend_from_slice(&(len as u32).to_le_bytes());
    d.push(ty);
    d.extend_from_slice(b"v\0");
    d.extend_from_slice(value);
    d.push(0);
    let doc = RawDocument::from_bytes(&d).map_err(|e| e.to_string())?;
    let v = doc.get("v").map_err(|e| e.to_string())?.ok_or("no element")?;
    Bson::try_from(v.to_raw_bson()).map_err(|e| e.to_string())
}

/// Decodes a raw scan's images (the key left out) into the values its
/// decoded scan gives; `None` for an image that does not decode (the row
/// is then read again, and fails there with its reason).
fn decoder(layout: &Layout) -> raw::ImageDecoder {
    let k = layout.key_len;
    let columns: Vec<(bool, ColumnType)> = layout
        .types
        .iter()
        .enumerate()
        .skip(k)
        .map(|(i, t)| (Some(i) == layout.order, t.clone()))
        .collect();
    Arc::new(move |image: &[u8]| {
        let cells = raw::cells(image)?;
        if cells.len() != columns.len() {
            return None;
        }
        cells
            .into_iter()
            .zip(&columns)
            .map(|((_, bytes), (is_order, ty))| match bytes {
                None => values::decode(None, ty).ok(),
                Some(b) if *is_order => Some(order_value(b)),
                Some(b) => {
                    let (first, rest) = b.split_first()?;
                    values::decode(Some(&element(*first, rest).ok()?), ty).ok()
                }
            })
            .collect()
    })
}

/// The carried field order of a cell of names, each ended by a zero byte
/// (a name given twice counts once, as in a decoded document).
fn order_value(cell: &[u8]) -> Value {
    let mut seen = std::collections::HashSet::new();
    let names: Vec<serde_json::Value> = cell
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .filter(|n| seen.insert(n.clone()))
        .map(serde_json::Value::String)
        .collect();
    Value::Json(serde_json::Value::Array(names).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{self, doc, oid::ObjectId, Binary, Decimal128, RawDocumentBuf, Regex, Timestamp};

    fn every_type() -> Document {
        doc! {
            "_id": ObjectId::parse_str("64b0000000000000000000a1").unwrap(),
            "s": "Zürich 🏔️",
            "i": 7,
            "l": 7i64,
            "d": -0.0f64,
            "n": f64::NAN,
            "dec": Bson::Decimal128("1.10".parse::<Decimal128>().unwrap()),
            "b": true,
            "t": bson::DateTime::from_millis(1_600_000_000_000),
            "ts": Timestamp { time: 1, increment: 2 },
            "bin": Binary { subtype: bson::spec::BinarySubtype::UserDefined(0x80), bytes: vec![0, 1, 255] },
            "null": Bson::Null,
            "a": [1, "x", { "z": 1, "a": [] }],
            "o": { "z": 1, "a": 2 },
            "re": Regex { pattern: "^a".into(), options: "i".into() },
        }
    }

    #[test]
    fn every_element_comes_back_as_it_was() {
        let d = every_type();
        let raw = RawDocumentBuf::from_document(&d).unwrap();
        let mut seen = Vec::new();
        for_each_element(&raw, |name, e| {
            let back = e.value(raw.as_bytes()).unwrap();
            let want = d.get(name).unwrap();
            // NaN is not equal to itself: compare the bytes.
            assert_eq!(
                bson::to_vec(&doc! { "v": back }).unwrap(),
                bson::to_vec(&doc! { "v": want.clone() }).unwrap(),
                "{name}"
            );
            seen.push(name.to_string());
        })
        .unwrap();
        assert_eq!(seen, d.keys().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn a_document_cut_short_is_an_error() {
        let raw = RawDocumentBuf::from_document(&doc! { "_id": 1, "s": "abc" }).unwrap();
        let mut bytes = raw.as_bytes().to_vec();
        // Claim one byte more than the elements cover.
        bytes.insert(bytes.len() - 1, 0);
        let n = bytes.len() as u32;
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        // The header parses (its length and last byte are right); walking
        // the elements finds what they do not cover.
        let doc = RawDocument::from_bytes(&bytes).expect("a well-formed header");
        let mut seen = Vec::new();
        let e = for_each_element(doc, |name, _| seen.push(name.to_string())).expect_err("bytes left over");
        assert!(!e.is_empty());
        assert_eq!(seen, ["_id", "s"], "the elements before the stray byte");
    }

    #[test]
    fn the_field_order_cell_decodes_to_the_documents_names() {
        let v = order_value(b"_id\0name\0name\0x\0");
        assert_eq!(v, Value::Json(serde_json::json!(["_id", "name", "x"]).into()));
    }
}
