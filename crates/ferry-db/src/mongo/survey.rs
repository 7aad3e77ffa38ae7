//! Schema surveys of user collections: one pass over a collection's
//! documents for its field names and the fields the server sorts otherwise
//! than Ferry ([`Survey`]), the cache of each collection's last survey, the
//! documents a survey keeps for the scan that follows ([`spill`]), and
//! where an ordered scan's documents come from ([`RawDocs`]).

use std::collections::HashSet;
use std::time::Duration;

use ferry_core::schema::{ColumnSchema, TableSchema, FIELD_ORDER};
use mongodb::bson::{doc, Bson, Document};

use super::{driver, field_type, query_error, spill, MongoStore};
use crate::{DbError, DbErrorKind};

/// What one pass over a collection's documents found: its field names in
/// the order first seen (`_id` order), and the fields the server sorts
/// otherwise than Ferry ([`MongoStore::server_sort`]): `_id` when some
/// `_id` is an embedded document; another field when some document lacks
/// it or holds `null`, an embedded document or an array in it.
#[derive(Clone, Debug, Default)]
pub(super) struct Survey {
    pub(super) names: Vec<String>,
    pub(super) odd: HashSet<String>,
}

/// Collection -> its last [`Survey`], with when it was taken.
pub(super) type Surveys = std::collections::HashMap<String, (std::time::Instant, Survey)>;

/// How long a scan trusts the survey its plan's schema read took, instead
/// of asking the server again: a scan that meets a key out of the server's
/// order fails anyway, so a document changed meanwhile cannot slip through.
pub(super) const SURVEY_TTL: Duration = Duration::from_secs(60);

impl MongoStore {
    /// The schema of a user collection: its fields in the order first
    /// seen over every document, `_id` first, and the carried field order
    /// ([`FIELD_ORDER`]; a document with a field of that name is refused).
    pub(super) async fn documents_schema(&self, table: &str) -> Result<Option<TableSchema>, DbError> {
        if !self.exists(table).await? {
            return Ok(None);
        }
        // Under the writer lock, the survey taken under it (the cache is
        // emptied when the lock is taken and when a transaction commits):
        // a promotion reads each collection's schema once, not again to
        // check and to write the plan.
        if self.held.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some((_, survey)) = self.surveys()?.get(table) {
                return Ok(Some(documents_schema(table, survey.names.clone())));
            }
        }
        // One pass over the documents in `_id` order, as raw BSON: each
        // field name is kept once, the documents are not. (A server-side
        // `$group` over `$objectToArray` reads every document too, and was
        // several times slower than this on SecantusDB.)
        let survey = self.survey(table).await?;
        if survey.names.iter().any(|k| k == FIELD_ORDER) {
            return Err(DbError::new(
                DbErrorKind::Query,
                &self.env,
                format!(
                    "a document has a field `{FIELD_ORDER}`, the name Ferry uses for a document's field order: rename the field in every environment (e.g. db.{table}.updateMany({{}}, {{$rename: {{\"{FIELD_ORDER}\": \"field_order\"}}}}))"
                ),
            )
            .table(table));
        }
        let names = survey.names.clone();
        self.surveys()?
            .insert(table.to_string(), (std::time::Instant::now(), survey));
        Ok(Some(documents_schema(table, names)))
    }

    /// The cache of [`Survey`]s, locked.
    pub(super) fn surveys(&self) -> Result<std::sync::MutexGuard<'_, Surveys>, DbError> {
        self.locked(&self.surveys, "survey cache")
    }

    /// The surveys' spilled documents, locked.
    pub(super) fn spills(&self) -> Result<std::sync::MutexGuard<'_, spill::Spills>, DbError> {
        self.locked(&self.spills, "surveys' spills")
    }

    fn locked<'a, T>(&self, m: &'a std::sync::Mutex<T>, what: &str) -> Result<std::sync::MutexGuard<'a, T>, DbError> {
        m.lock().map_err(|_| {
            DbError::new(
                DbErrorKind::Query,
                &self.env,
                format!("a scan panicked while holding the {what}"),
            )
        })
    }

    /// The spill of `table`'s last survey, when it may serve a scan now
    /// (taken out: it serves one).
    fn take_spill(&self, table: &str) -> Result<Option<spill::SpillReader>, DbError> {
        Ok(self
            .spills()?
            .remove(table)
            .filter(|s| s.fresh())
            .map(spill::Spill::reader))
    }

    /// The documents of an ordered scan of `table`: those `query` matches,
    /// sorted by `sort` (descending when asked). The survey's kept documents
    /// when the scan reads the whole collection in `_id` order, ascending
    /// ([`spill`]); else a `find`, hinting the `_id` index for the whole
    /// collection in `_id` order.
    pub(super) async fn ordered_documents(
        &self,
        table: &str,
        query: Document,
        sort: Document,
        descending: bool,
    ) -> Result<RawDocs, DbError> {
        let by_id = query.is_empty() && sort == doc! { "_id": 1 };
        if by_id && !descending {
            if let Some(r) = self.take_spill(table)? {
                return Ok(RawDocs::Spill(r, Vec::new()));
            }
        }
        let sort = if descending {
            sort.iter().map(|(k, _)| (k.clone(), Bson::Int32(-1))).collect()
        } else {
            sort
        };
        let coll = self.db.collection::<mongodb::bson::RawDocumentBuf>(table);
        // No `batch_size`: the server's batches (up to 16 MiB each) take
        // fewer round trips than batches of `BATCH_ROWS` documents, and
        // each holds at most 16 MiB, whatever the collection's size.
        let find = coll.find(query).sort(sort).allow_disk_use(true);
        let find = if by_id { find.hint(id_index()) } else { find };
        Ok(RawDocs::Server(Box::new(
            find.await.map_err(|e| driver(&self.env, table, e))?,
        )))
    }

    /// Reads every document of `table` once, in `_id` order, for its
    /// [`Survey`], and keeps the documents for the scan that follows
    /// ([`spill`]).
    async fn survey(&self, table: &str) -> Result<Survey, DbError> {
        use mongodb::bson::spec::ElementType;
        let fail = |e| driver(&self.env, table, e);
        // The server's batches, as in `ordered_documents`.
        let mut cursor = self
            .db
            .collection::<mongodb::bson::RawDocumentBuf>(table)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .hint(id_index())
            .allow_disk_use(true)
            .await
            .map_err(fail)?;
        let mut names: Vec<String> = vec!["_id".into()];
        // Field -> documents holding it with a value the server sorts as Ferry does.
        let mut plain: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        let mut odd: HashSet<String> = HashSet::new();
        let mut docs = 0u64;
        // A spill only saves a read: without a temporary file the scan
        // reads the server.
        let mut spilled = spill::SpillWriter::new()
            .inspect_err(|e| tracing::warn!("no temporary file to keep the documents a survey reads: {e}"))
            .ok();
        while cursor.advance().await.map_err(fail)? {
            docs += 1;
            if let Some(w) = spilled.as_mut() {
                match w.push(cursor.current()) {
                    Ok(true) => {}
                    Ok(false) => spilled = None,
                    Err(e) => {
                        tracing::warn!("cannot keep the documents a survey reads: {e}");
                        spilled = None;
                    }
                }
            }
            for elem in cursor.current().iter() {
                let (k, v) = elem.map_err(|e| {
                    DbError::new(
                        DbErrorKind::Query,
                        &self.env,
                        format!("a document of the collection is not valid BSON: {e}"),
                    )
                    .table(table)
                })?;
                let kind = v.element_type();
                match plain.get_mut(k) {
                    Some(n) => *n += 1,
                    None => {
                        if k != "_id" {
                            names.push(k.to_string());
                        }
                        plain.insert(k.to_string(), 1);
                    }
                }
                let sorts_apart = if k == "_id" {
                    kind == ElementType::EmbeddedDocument
                } else {
                    matches!(
                        kind,
                        ElementType::EmbeddedDocument | ElementType::Array | ElementType::Null
                    )
                };
                if sorts_apart {
                    odd.insert(k.to_string());
                }
            }
        }
        // A field some document lacks sorts with `null` on the server.
        odd.extend(
            plain
                .into_iter()
                .filter(|(k, n)| *n < docs && k != "_id")
                .map(|(k, _)| k),
        );
        match spilled.map(spill::SpillWriter::finish).transpose() {
            Ok(Some(sp)) => {
                self.spills()?.insert(table.to_string(), sp);
            }
            Ok(None) => {
                self.spills()?.remove(table);
            }
            Err(e) => {
                tracing::warn!("cannot keep the documents a survey reads: {e}");
                self.spills()?.remove(table);
            }
        }
        Ok(Survey { names, odd })
    }
}

/// The `_id` index, as a hint for a read of a whole collection in `_id`
/// order: MongoDB walks it for such a sort anyway; a server that would
/// sort the documents itself (SecantusDB: a quarter slower than walking
/// the index, measured) walks it too.
fn id_index() -> mongodb::options::Hint {
    mongodb::options::Hint::Keys(doc! { "_id": 1 })
}

/// Where an ordered scan's documents come from
/// ([`MongoStore::ordered_documents`]), one at a time as raw BSON.
pub(super) enum RawDocs {
    Server(Box<mongodb::Cursor<mongodb::bson::RawDocumentBuf>>),
    /// The documents the collection's survey just read, and the buffer of
    /// the current one.
    Spill(spill::SpillReader, Vec<u8>),
}

impl RawDocs {
    /// Moves to the next document; `false` at the end.
    pub(super) async fn advance(&mut self, env: &str, table: &str) -> Result<bool, DbError> {
        match self {
            RawDocs::Server(c) => c.advance().await.map_err(|e| driver(env, table, e)),
            RawDocs::Spill(r, buf) => r.next_raw(buf).map_err(|m| query_error(env, table, m)),
        }
    }

    pub(super) fn current(&self, env: &str, table: &str) -> Result<&mongodb::bson::RawDocument, DbError> {
        match self {
            RawDocs::Server(c) => Ok(c.current()),
            RawDocs::Spill(_, buf) => mongodb::bson::RawDocument::from_bytes(buf)
                .map_err(|e| query_error(env, table, format!("the survey's spill file is not BSON: {e}"))),
        }
    }
}

/// A collection's schema from its field names.
pub(super) fn documents_schema(table: &str, names: Vec<String>) -> TableSchema {
    TableSchema {
        name: table.to_string(),
        columns: names
            .into_iter()
            .map(|n| ColumnSchema {
                nullable: n != "_id",
                // A document inserted without `_id` gets a new ObjectId.
                has_default: n == "_id",
                auto_increment: n == "_id",
                name: n,
                declared: "field".into(),
                ty: field_type(),
            })
            .collect(),
        primary_key: vec!["_id".into()],
        foreign_keys: Vec::new(),
        unique: Vec::new(),
        open_fields: Some(field_type()),
        carried: vec![FIELD_ORDER.into()],
    }
}
