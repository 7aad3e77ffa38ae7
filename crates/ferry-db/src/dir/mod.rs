//! A directory of canonical JSON files as a store (`url = "dir:content"`):
//! one file per row, `TABLE/KEY.json`, and Ferry's own records and each
//! table's schema under `_ferry/` (the format is `docs/dir-format.md`).
//!
//! Reads load a table's files; a transaction keeps the tables it touches in
//! memory and commits by writing aside and renaming ([`commit`]), so a
//! promotion lands whole or not at all. It evaluates no SQL (a
//! [`Predicate::Native`] answers [`DbError::native_predicate`]) and
//! generates no keys. One writer at a time: `flock` on `_ferry/lock`.

mod commit;
pub mod format;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::schema::TableSchema;
use ferry_core::value::key_cmp;
use ferry_core::Value;
use tokio::sync::mpsc;

use crate::records::{Records, SqlRecords};
use crate::{
    meta, Capabilities, DbError, DbErrorKind, Engine, FetchRequest, Predicate, Read, Row, RowBatches, ScanRequest,
    Store, Txn, WriterLock, BATCH_ROWS,
};

pub use commit::TXN_DIR;

/// The folder of Ferry's own files inside the store's folder.
pub const FERRY_DIR: &str = "_ferry";
/// The file whose presence says Ferry's records exist (written by the
/// first commit).
const FORMAT_FILE: &str = "_ferry/format.json";
const FORMAT_TEXT: &str = "{\n  \"format\": 1\n}\n";
const GITIGNORE: &str = "_ferry/.gitignore";
const GITIGNORE_TEXT: &str = "lock\ntxn/\n";

/// `dir:PATH`; a relative path starts at the folder of `ferry.toml`.
pub(crate) const BACKEND: crate::registry::Backend = crate::registry::Backend {
    engine: Engine::Dir,
    url: ferry_core::config::UrlKind {
        prefixes: &["dir:"],
        example: "dir:PATH",
    },
    open: |o| {
        Box::pin(async move {
            let path = url_path(o.url, o.base_dir).unwrap_or_else(|| o.base_dir.join(o.url));
            Ok(Arc::new(DirStore::open(o.env, &path)?) as Arc<dyn Store>)
        })
    },
};

/// The folder a `dir:` URL names (a relative path is relative to
/// `base_dir`, the configuration file's folder); `None` for any other URL.
pub fn url_path(url: &str, base_dir: &Path) -> Option<PathBuf> {
    let rest = url.strip_prefix("dir:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = Path::new(rest);
    Some(if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    })
}

/// A directory store.
#[derive(Clone, Debug)]
pub struct DirStore {
    env: String,
    root: PathBuf,
}

/// A table's rows, by file name stem.
type Rows = BTreeMap<String, Row>;

impl DirStore {
    /// Opens the folder `root` (which need not exist yet: the first commit
    /// creates it). When no other writer holds it, finishes or discards a
    /// commit a crash interrupted.
    pub fn open(env: &str, root: &Path) -> Result<DirStore, DbError> {
        if root.exists() && !root.is_dir() {
            return Err(DbError::new(
                DbErrorKind::Unreachable,
                env,
                format!("{} is not a folder", root.display()),
            ));
        }
        let store = DirStore {
            env: env.to_string(),
            root: root.to_path_buf(),
        };
        if root.join(TXN_DIR).exists() {
            let file = store.lock_file()?;
            if file.try_lock().is_ok() {
                commit::recover(env, root)?;
            }
        }
        Ok(store)
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn err(&self, kind: DbErrorKind, table: &str, message: impl Into<String>) -> DbError {
        DbError::new(kind, &self.env, message).table(table)
    }

    fn lock_file(&self) -> Result<fs::File, DbError> {
        let dir = self.root.join(FERRY_DIR);
        let path = dir.join("lock");
        fs::create_dir_all(&dir)
            .and_then(|_| {
                fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
            })
            .map_err(|e| {
                DbError::new(
                    DbErrorKind::Busy,
                    &self.env,
                    format!("cannot open the lock file {}: {e}", path.display()),
                )
            })
    }

    /// The folder of a table's rows, relative to the root.
    fn table_dir(&self, table: &str) -> Result<String, DbError> {
        if let Some(rest) = table.strip_prefix("_ferry_") {
            return Ok(format!("{FERRY_DIR}/{rest}"));
        }
        let bad = table.is_empty()
            || table.starts_with('.')
            || table.starts_with(FERRY_DIR)
            || table.contains(['/', '\\', '\0']);
        if bad {
            return Err(self.err(
                DbErrorKind::Query,
                table,
                "a directory store cannot hold a table of this name (it would not be one folder)",
            ));
        }
        Ok(table.to_string())
    }

    fn schema_path(table: &str) -> String {
        format!("{FERRY_DIR}/schema/{table}.json")
    }

    /// The table's schema: built in for Ferry's tables, else from
    /// `_ferry/schema/TABLE.json`.
    fn schema(&self, table: &str) -> Result<Option<TableSchema>, DbError> {
        if let Some(s) = meta::record_schema(table) {
            return Ok(Some(s));
        }
        self.table_dir(table)?;
        let path = self.root.join(Self::schema_path(table));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(self.err(
                    DbErrorKind::Unreachable,
                    table,
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        };
        let schema: TableSchema = serde_json::from_str(&text).map_err(|e| {
            self.err(
                DbErrorKind::Damaged,
                table,
                format!("the schema file {} does not hold a table's schema: {e}", path.display()),
            )
        })?;
        Ok(Some(schema))
    }

    fn need_schema(&self, table: &str) -> Result<TableSchema, DbError> {
        self.schema(table)?.ok_or_else(|| {
            self.err(
                DbErrorKind::Query,
                table,
                format!(
                    "no such table in the folder {} (its schema {} is missing; export an environment there first)",
                    self.root.display(),
                    Self::schema_path(table)
                ),
            )
        })
    }

    /// Every row file of a table, parsed, by stem.
    fn load(&self, table: &str, schema: &TableSchema) -> Result<Rows, DbError> {
        let dir = self.root.join(self.table_dir(table)?);
        let mut rows = Rows::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(rows),
            Err(e) => {
                return Err(self.err(
                    DbErrorKind::Unreachable,
                    table,
                    format!("cannot list {}: {e}", dir.display()),
                ))
            }
        };
        let key = key_positions(schema);
        for entry in entries {
            let entry = entry.map_err(|e| {
                self.err(
                    DbErrorKind::Unreachable,
                    table,
                    format!("cannot list {}: {e}", dir.display()),
                )
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let path = entry.path();
            let damaged =
                |m: String| self.err(DbErrorKind::Damaged, table, format!("the file {}: {m}", path.display()));
            let text = fs::read_to_string(&path).map_err(|e| damaged(format!("cannot be read: {e}")))?;
            let row = format::parse_row(schema, &text).map_err(damaged)?;
            let key_values: Vec<Value> = key.iter().map(|&i| row[i].clone()).collect();
            let want = format::stem(&key_values).map_err(damaged)?;
            if want != stem {
                return Err(damaged(format!(
                    "it holds the row of key {}, whose file is {want}.json",
                    ferry_core::canonical::key_text(&key_values)
                )));
            }
            rows.insert(want, row);
        }
        Ok(rows)
    }
}

/// The positions of the primary key's columns (every column when it has
/// no primary key).
fn key_positions(schema: &TableSchema) -> Vec<usize> {
    if schema.primary_key.is_empty() {
        return (0..schema.columns.len()).collect();
    }
    schema
        .primary_key
        .iter()
        .filter_map(|k| schema.columns.iter().position(|c| &c.name == k))
        .collect()
}

/// The positions of `names` in the schema, or an error naming the first
/// unknown column.
fn positions(env: &str, schema: &TableSchema, names: &[String]) -> Result<Vec<usize>, DbError> {
    names
        .iter()
        .map(|n| {
            schema.columns.iter().position(|c| &c.name == n).ok_or_else(|| {
                let mut e = DbError::new(DbErrorKind::Query, env, "no such column").table(&schema.name);
                e.column = Some(n.clone());
                e
            })
        })
        .collect()
}

fn pick(row: &[Value], at: &[usize]) -> Row {
    at.iter().map(|&i| row[i].clone()).collect()
}

fn same(a: &[Value], b: &[Value]) -> bool {
    key_cmp(a, b).is_eq()
}

/// Whether `row` matches `p`.
fn matches(env: &str, schema: &TableSchema, p: &Predicate, row: &[Value]) -> Result<bool, DbError> {
    Ok(match p {
        Predicate::All => true,
        Predicate::In { columns, values } => {
            let at = positions(env, schema, columns)?;
            let mine = pick(row, &at);
            values.iter().any(|v| same(&mine, v))
        }
        Predicate::Range { columns, from, to } => {
            let at = positions(env, schema, columns)?;
            let mine = pick(row, &at);
            let above = match from {
                Bound::Unbounded => true,
                Bound::Included(b) => key_cmp(&mine, b).is_ge(),
                Bound::Excluded(b) => key_cmp(&mine, b).is_gt(),
            };
            let below = match to {
                Bound::Unbounded => true,
                Bound::Included(b) => key_cmp(&mine, b).is_le(),
                Bound::Excluded(b) => key_cmp(&mine, b).is_lt(),
            };
            above && below
        }
        Predicate::Native(_) => return Err(DbError::native_predicate(env, &schema.name)),
    })
}

/// The requested columns of a row, and the flag when asked.
fn project(
    env: &str,
    schema: &TableSchema,
    row: &[Value],
    at: &[usize],
    flag: Option<&Predicate>,
) -> Result<Row, DbError> {
    let mut out = pick(row, at);
    if let Some(f) = flag {
        out.push(Value::Bool(matches(env, schema, f, row)?));
    }
    Ok(out)
}

/// The rows of a fetch, from rows already loaded.
fn fetch_rows(env: &str, schema: &TableSchema, rows: &Rows, req: &FetchRequest) -> Result<Vec<Row>, DbError> {
    if let Some(p) = req.flag.as_ref().or(req.filter.as_ref()) {
        if matches!(p, Predicate::Native(_)) {
            return Err(DbError::native_predicate(env, &req.table));
        }
    }
    let at = positions(env, schema, &req.columns)?;
    let by = positions(env, schema, &req.match_columns)?;
    let fixed_names: Vec<String> = req.fixed.iter().map(|(c, _)| c.clone()).collect();
    let fixed_at = positions(env, schema, &fixed_names)?;
    let fixed: Vec<Value> = req.fixed.iter().map(|(_, v)| v.clone()).collect();
    let mut out = Vec::new();
    for row in rows.values() {
        if !same(&pick(row, &fixed_at), &fixed) {
            continue;
        }
        let mine = pick(row, &by);
        if !req.values.iter().any(|v| same(&mine, v)) {
            continue;
        }
        if let Some(f) = &req.filter {
            if !matches(env, schema, f, row)? {
                continue;
            }
        }
        out.push(project(env, schema, row, &at, req.flag.as_ref())?);
    }
    Ok(out)
}

#[async_trait]
impl Store for DirStore {
    fn engine(&self) -> Engine {
        Engine::Dir
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: true,
            raw_scans: false,
            generated_ids: false,
            sql_predicates: false,
            native_predicates: false,
            branch_clones: false,
            open_fields: false,
            reads_at_once: 2,
        }
    }

    fn env(&self) -> &str {
        &self.env
    }

    async fn ping(&self) -> Result<(), DbError> {
        if self.root.is_dir() {
            Ok(())
        } else {
            Err(DbError::new(
                DbErrorKind::Unreachable,
                &self.env,
                format!("the folder {} does not exist", self.root.display()),
            ))
        }
    }

    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, DbError> {
        // Ferry's own tables exist from the first commit on, as in a SQL store.
        if meta::record_schema(table).is_some() && !self.root.join(FORMAT_FILE).exists() {
            return Ok(None);
        }
        self.schema(table)
    }

    async fn has_meta(&self) -> Result<bool, DbError> {
        Ok(self.root.join(FORMAT_FILE).exists())
    }

    async fn scan(&self, req: ScanRequest) -> Result<RowBatches, DbError> {
        let schema = self.need_schema(&req.table)?;
        for p in [req.filter.as_ref(), req.flag.as_ref()].into_iter().flatten() {
            if matches!(p, Predicate::Native(_)) {
                return Err(DbError::native_predicate(&self.env, &req.table));
            }
        }
        let rows = self.load(&req.table, &schema)?;
        let at = positions(&self.env, &schema, &req.columns)?;
        let order = positions(&self.env, &schema, &req.order_by)?;
        let mut kept: Vec<&Row> = Vec::new();
        for row in rows.values() {
            if let Some(f) = &req.filter {
                if !matches(&self.env, &schema, f, row)? {
                    continue;
                }
            }
            kept.push(row);
        }
        kept.sort_by(|a, b| key_cmp(&pick(a, &order), &pick(b, &order)));
        if req.descending {
            kept.reverse();
        }
        if let Some(n) = req.limit {
            kept.truncate(n);
        }
        let mut batches = Vec::new();
        for chunk in kept.chunks(BATCH_ROWS) {
            let batch = chunk
                .iter()
                .map(|r| project(&self.env, &schema, r, &at, req.flag.as_ref()))
                .collect::<Result<Vec<_>, _>>()?;
            batches.push(batch);
        }
        let (tx, rx) = mpsc::channel(batches.len().max(1));
        for b in batches {
            tx.try_send(Ok(b))
                .map_err(|e| self.err(DbErrorKind::Query, &req.table, format!("cannot queue a batch: {e}")))?;
        }
        Ok(rx)
    }

    async fn fetch(&self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        let schema = self.need_schema(&req.table)?;
        let rows = self.load(&req.table, &schema)?;
        fetch_rows(&self.env, &schema, &rows, &req)
    }

    async fn begin(&self) -> Result<Box<dyn Txn>, DbError> {
        // Called under the writer lock: finish or discard what a crash left.
        commit::recover(&self.env, &self.root)?;
        Ok(Box::new(DirTxn {
            store: self.clone(),
            tables: HashMap::new(),
        }))
    }

    async fn try_lock_writer(&self) -> Result<Option<WriterLock>, DbError> {
        crate::file_lock::try_lock(&self.env, self.lock_file()?)
    }

    async fn lock_writer(&self) -> Result<WriterLock, DbError> {
        crate::file_lock::lock(&self.env, self.lock_file()?).await
    }

    fn records(&self) -> Box<dyn Records + '_> {
        // Ferry's records are rows of the same tables as in a SQL store,
        // kept as files under `_ferry/`: one implementation reads both.
        Box::new(SqlRecords(self))
    }
}

/// One table as a transaction holds it: every row, and the stems it changed.
struct TableState {
    schema: TableSchema,
    key: Vec<usize>,
    rows: Rows,
    changed: std::collections::BTreeSet<String>,
}

/// A write transaction: the tables it touches, in memory, until commit.
struct DirTxn {
    store: DirStore,
    tables: HashMap<String, TableState>,
}

impl DirTxn {
    fn table(&mut self, table: &str) -> Result<&mut TableState, DbError> {
        if !self.tables.contains_key(table) {
            let schema = self.store.need_schema(table)?;
            let rows = self.store.load(table, &schema)?;
            let key = key_positions(&schema);
            self.tables.insert(
                table.to_string(),
                TableState {
                    schema,
                    key,
                    rows,
                    changed: Default::default(),
                },
            );
        }
        self.tables
            .get_mut(table)
            .ok_or_else(|| DbError::new(DbErrorKind::Query, &self.store.env, "table vanished").table(table))
    }

    /// Puts `row` (a whole row) under its key's stem; `replace` says
    /// whether a row there already is an error.
    fn put(&mut self, table: &str, row: Row, replace: bool, index: usize) -> Result<(), DbError> {
        let env = self.store.env.clone();
        let t = self.table(table)?;
        let key = pick(&row, &t.key);
        let stem =
            format::stem(&key).map_err(|m| DbError::new(DbErrorKind::Constraint, &env, m).table(table).row(index))?;
        for (c, v) in t.schema.columns.iter().zip(&row) {
            if v.is_null() && !c.nullable && !c.has_default {
                let mut e = DbError::new(DbErrorKind::Constraint, &env, "NULL in a column that may not be NULL")
                    .table(table)
                    .row(index);
                e.column = Some(c.name.clone());
                return Err(e);
            }
        }
        if let Some(old) = t.rows.get(&stem) {
            if !replace || !same(&pick(old, &t.key), &key) {
                return Err(DbError::new(
                    DbErrorKind::Constraint,
                    &env,
                    format!(
                        "a row with key {} exists already",
                        ferry_core::canonical::key_text(&key)
                    ),
                )
                .table(table)
                .row(index));
            }
        }
        t.rows.insert(stem.clone(), row);
        t.changed.insert(stem);
        Ok(())
    }

    /// The stems of the rows whose `columns` equal `values`.
    fn find(&mut self, table: &str, columns: &[String], values: &[Value]) -> Result<Vec<String>, DbError> {
        let env = self.store.env.clone();
        let t = self.table(table)?;
        let at = positions(&env, &t.schema, columns)?;
        if at == t.key {
            let stem = format::stem(values).map_err(|m| DbError::new(DbErrorKind::Query, &env, m).table(table))?;
            return Ok(t.rows.contains_key(&stem).then_some(stem).into_iter().collect());
        }
        Ok(t.rows
            .iter()
            .filter(|(_, r)| same(&pick(r, &at), values))
            .map(|(s, _)| s.clone())
            .collect())
    }

    fn remove(&mut self, table: &str, stem: &str) -> Result<Option<Row>, DbError> {
        let t = self.table(table)?;
        t.changed.insert(stem.to_string());
        Ok(t.rows.remove(stem))
    }

    /// A whole row from `columns` and `values` (the others NULL), or, with
    /// `base`, `base` with those columns replaced.
    fn build(&mut self, table: &str, columns: &[String], values: &[Value], base: Option<Row>) -> Result<Row, DbError> {
        let env = self.store.env.clone();
        let t = self.table(table)?;
        let at = positions(&env, &t.schema, columns)?;
        let mut row = base.unwrap_or_else(|| vec![Value::Null; t.schema.columns.len()]);
        for (&i, v) in at.iter().zip(values) {
            row[i] = v.clone();
        }
        Ok(row)
    }

    /// The files this transaction changes.
    fn changes(&self) -> Result<Vec<commit::Change>, DbError> {
        let mut out = Vec::new();
        for (name, t) in &self.tables {
            let dir = self.store.table_dir(name)?;
            for stem in &t.changed {
                out.push(commit::Change {
                    path: format!("{dir}/{stem}.json"),
                    bytes: t.rows.get(stem).map(|r| format::row_text(&t.schema, r).into_bytes()),
                });
            }
        }
        if !self.store.root.join(FORMAT_FILE).exists() {
            out.push(commit::Change {
                path: FORMAT_FILE.into(),
                bytes: Some(FORMAT_TEXT.as_bytes().to_vec()),
            });
            out.push(commit::Change {
                path: GITIGNORE.into(),
                bytes: Some(GITIGNORE_TEXT.as_bytes().to_vec()),
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl Read for DirTxn {
    fn env(&self) -> &str {
        &self.store.env
    }

    async fn fetch(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        let env = self.store.env.clone();
        let t = self.table(&req.table)?;
        fetch_rows(&env, &t.schema, &t.rows, &req)
    }
}

#[async_trait]
impl Txn for DirTxn {
    async fn insert(&mut self, table: &str, columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        for (i, r) in rows.iter().enumerate() {
            let row = self.build(table, columns, r, None)?;
            self.put(table, row, false, i)?;
        }
        Ok(())
    }

    async fn upsert(&mut self, table: &str, key: &[String], columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        let env = self.store.env.clone();
        for (i, r) in rows.iter().enumerate() {
            let key_at = positions(&env, &self.table(table)?.schema, key)?;
            let col_at = positions(&env, &self.table(table)?.schema, columns)?;
            let key_values: Vec<Value> = key_at
                .iter()
                .map(|k| {
                    col_at
                        .iter()
                        .position(|c| c == k)
                        .map(|p| r[p].clone())
                        .unwrap_or(Value::Null)
                })
                .collect();
            let found = self.find(table, key, &key_values)?;
            let base = match found.first() {
                Some(stem) => self.remove(table, stem)?,
                None => None,
            };
            let row = self.build(table, columns, r, base)?;
            self.put(table, row, false, i)?;
        }
        Ok(())
    }

    async fn insert_returning(&mut self, table: &str, _: &[String], _: &Row, key: &str) -> Result<Value, DbError> {
        let mut e = DbError::new(
            DbErrorKind::Query,
            &self.store.env,
            "a directory generates no key values; rows go in with their keys",
        )
        .table(table);
        e.column = Some(key.to_string());
        Err(e)
    }

    async fn update(
        &mut self,
        table: &str,
        key: &[String],
        set: &[String],
        rows: &[(Row, Row)],
    ) -> Result<(), DbError> {
        for (i, (k, values)) in rows.iter().enumerate() {
            for stem in self.find(table, key, k)? {
                let old = self.remove(table, &stem)?;
                let row = self.build(table, set, values, old)?;
                self.put(table, row, false, i)?;
            }
        }
        Ok(())
    }

    async fn delete(&mut self, table: &str, key: &[String], keys: &[Row]) -> Result<(), DbError> {
        for k in keys {
            for stem in self.find(table, key, k)? {
                self.remove(table, &stem)?;
            }
        }
        Ok(())
    }

    async fn delete_in(
        &mut self,
        table: &str,
        fixed: &[(String, Value)],
        column: &str,
        values: &[Value],
    ) -> Result<(), DbError> {
        let env = self.store.env.clone();
        let t = self.table(table)?;
        let names: Vec<String> = fixed.iter().map(|(c, _)| c.clone()).collect();
        let fixed_at = positions(&env, &t.schema, &names)?;
        let fixed_values: Vec<Value> = fixed.iter().map(|(_, v)| v.clone()).collect();
        let at = positions(&env, &t.schema, &[column.to_string()])?[0];
        let doomed: Vec<String> = t
            .rows
            .iter()
            .filter(|(_, r)| {
                same(&pick(r, &fixed_at), &fixed_values) && values.iter().any(|v| r[at].key_cmp(v).is_eq())
            })
            .map(|(s, _)| s.clone())
            .collect();
        for stem in doomed {
            self.remove(table, &stem)?;
        }
        Ok(())
    }

    async fn advance_generated(&mut self, _table: &str, _column: &str) -> Result<(), DbError> {
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        let changes = self.changes()?;
        let (env, root) = (self.store.env.clone(), self.store.root.clone());
        tokio::task::spawn_blocking(move || commit::commit(&env, &root, &changes))
            .await
            .map_err(|e| {
                DbError::new(
                    DbErrorKind::Unreachable,
                    &self.store.env,
                    format!("worker thread failed: {e}"),
                )
            })?
    }
}

/// One table to export: its schema and every row to write, in the
/// schema's column order.
pub struct ExportTable {
    pub schema: TableSchema,
    pub rows: Vec<Row>,
}

/// What an export changed, per table: files written (new or changed) and
/// removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportCounts {
    pub written: u64,
    pub unchanged: u64,
    pub removed: u64,
}

/// Makes the folder `root` hold exactly `tables` (their schemas under
/// `_ferry/schema/` and one file per row), in one atomic commit under the
/// folder's writer lock: files of rows not in `tables` are removed, files
/// whose bytes would not change are left alone, and Ferry's records there
/// are kept. Tables of the folder not in `tables` are left as they are.
pub async fn export(
    env: &str,
    root: &Path,
    tables: Vec<ExportTable>,
) -> Result<BTreeMap<String, ExportCounts>, DbError> {
    fs::create_dir_all(root).map_err(|e| {
        DbError::new(
            DbErrorKind::Unreachable,
            env,
            format!("cannot create the folder {}: {e}", root.display()),
        )
    })?;
    let store = DirStore::open(env, root)?;
    let _lock = store.lock_writer().await?;
    commit::recover(env, root)?;
    let mut changes = Vec::new();
    let mut counts = BTreeMap::new();
    for t in tables {
        let name = t.schema.name.clone();
        let dir = store.table_dir(&name)?;
        let mut c = ExportCounts::default();
        let schema_text = format!(
            "{}\n",
            serde_json::to_string_pretty(&t.schema).map_err(|e| store.err(DbErrorKind::Query, &name, e.to_string()))?
        );
        put_if_changed(
            &mut changes,
            root,
            &DirStore::schema_path(&name),
            schema_text.into_bytes(),
        );
        let key = key_positions(&t.schema);
        let mut wanted = std::collections::BTreeSet::new();
        for row in &t.rows {
            let stem = format::stem(&pick(row, &key)).map_err(|m| store.err(DbErrorKind::Query, &name, m))?;
            if !wanted.insert(stem.clone()) {
                return Err(store.err(
                    DbErrorKind::Constraint,
                    &name,
                    format!("two rows would be the file {stem}.json (keys that differ only where a file name cannot)"),
                ));
            }
            let path = format!("{dir}/{stem}.json");
            if put_if_changed(&mut changes, root, &path, format::row_text(&t.schema, row).into_bytes()) {
                c.written += 1;
            } else {
                c.unchanged += 1;
            }
        }
        if let Ok(entries) = fs::read_dir(root.join(&dir)) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if let Some(stem) = file.strip_suffix(".json") {
                    if !wanted.contains(stem) {
                        changes.push(commit::Change {
                            path: format!("{dir}/{file}"),
                            bytes: None,
                        });
                        c.removed += 1;
                    }
                }
            }
        }
        counts.insert(name, c);
    }
    if !root.join(GITIGNORE).exists() {
        changes.push(commit::Change {
            path: GITIGNORE.into(),
            bytes: Some(GITIGNORE_TEXT.as_bytes().to_vec()),
        });
    }
    let (env2, root2) = (env.to_string(), root.to_path_buf());
    tokio::task::spawn_blocking(move || commit::commit(&env2, &root2, &changes))
        .await
        .map_err(|e| DbError::new(DbErrorKind::Unreachable, env, format!("worker thread failed: {e}")))??;
    Ok(counts)
}

/// Adds a change writing `bytes` to `path` unless the file holds them
/// already; whether it did.
fn put_if_changed(changes: &mut Vec<commit::Change>, root: &Path, path: &str, bytes: Vec<u8>) -> bool {
    if fs::read(root.join(path)).is_ok_and(|old| old == bytes) {
        return false;
    }
    changes.push(commit::Change {
        path: path.to_string(),
        bytes: Some(bytes),
    });
    true
}

/// Test support: stages a commit up to its commit point and stops, as a
/// process killed right after it would.
#[doc(hidden)]
pub fn stage_without_replay(env: &str, root: &Path, files: &[(&str, Option<&str>)]) -> Result<(), DbError> {
    let changes: Vec<commit::Change> = files
        .iter()
        .map(|(p, b)| commit::Change {
            path: p.to_string(),
            bytes: b.map(|s| s.as_bytes().to_vec()),
        })
        .collect();
    commit::stage(env, root, &changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::schema::ColumnSchema;
    use ferry_core::value::{ColumnType, LogicalType};

    fn schema() -> TableSchema {
        let col = |name: &str, l: LogicalType| ColumnSchema {
            name: name.into(),
            declared: l.name().into(),
            ty: ColumnType::new(l),
            nullable: name != "id",
            has_default: false,
            auto_increment: false,
        };
        TableSchema {
            name: "page".into(),
            columns: vec![col("id", LogicalType::Int), col("title", LogicalType::Text)],
            primary_key: vec!["id".into()],
            foreign_keys: vec![],
            unique: vec![],
            open_fields: None,
            carried: Vec::new(),
        }
    }

    fn row(id: i64, title: &str) -> Row {
        vec![Value::Int(id), Value::Text(title.into())]
    }

    async fn titles(root: &Path) -> Vec<Row> {
        let store = DirStore::open("content", root).expect("open");
        let req = FetchRequest {
            table: "page".into(),
            columns: vec!["id".into(), "title".into()],
            match_columns: vec!["id".into()],
            values: (1..=3).map(|i| vec![Value::Int(i)]).collect(),
            flag: None,
            filter: None,
            fixed: vec![],
        };
        let mut rows = Store::fetch(&store, req).await.expect("fetch");
        rows.sort_by(|a, b| key_cmp(a, b));
        rows
    }

    /// A process killed after the commit point: the next open finishes the
    /// commit. Killed before it: the next open discards what was written
    /// aside, and the folder is as it was.
    #[tokio::test]
    async fn a_commit_cut_short_is_finished_or_discarded_on_open() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let root = dir.path().join("content");
        let tables = vec![ExportTable {
            schema: schema(),
            rows: vec![row(1, "one"), row(2, "two")],
        }];
        export("content", &root, tables).await.expect("export");
        let before = titles(&root).await;

        // Killed before the commit point: aside files, no manifest.
        stage_without_replay(
            "content",
            &root,
            &[("page/1.json", Some("{\n  \"id\": 1,\n  \"title\": \"new\"\n}\n"))],
        )
        .expect("stage");
        std::fs::remove_file(root.join(TXN_DIR).join("manifest.json")).expect("no commit point");
        assert_eq!(titles(&root).await, before);
        assert!(!root.join(TXN_DIR).exists(), "the aside files stay");

        // Killed after it, with a rename and a removal half done.
        stage_without_replay(
            "content",
            &root,
            &[
                ("page/1.json", Some("{\n  \"id\": 1,\n  \"title\": \"new\"\n}\n")),
                ("page/3.json", Some("{\n  \"id\": 3,\n  \"title\": \"three\"\n}\n")),
                ("page/2.json", None),
            ],
        )
        .expect("stage");
        std::fs::rename(root.join(TXN_DIR).join("files/0"), root.join("page/1.json")).expect("first rename");
        assert_eq!(titles(&root).await, vec![row(1, "new"), row(3, "three")]);
        assert!(!root.join(TXN_DIR).exists());
    }

    #[tokio::test]
    async fn a_transaction_lands_whole_or_not_at_all() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let root = dir.path().join("content");
        let tables = vec![ExportTable {
            schema: schema(),
            rows: vec![row(1, "one")],
        }];
        export("content", &root, tables).await.expect("export");
        let store = DirStore::open("content", &root).expect("open");
        let cols = vec!["id".to_string(), "title".to_string()];
        {
            let mut txn = store.begin().await.expect("begin");
            txn.insert("page", &cols, &[row(2, "two")]).await.expect("insert");
            let e = txn
                .insert("page", &cols, &[row(3, "x"), row(1, "dup")])
                .await
                .expect_err("a duplicate");
            assert_eq!((e.kind, e.row), (DbErrorKind::Constraint, Some(1)));
            // Dropped: nothing written.
        }
        assert_eq!(titles(&root).await, vec![row(1, "one")]);
        let mut txn = store.begin().await.expect("begin");
        txn.insert("page", &cols, &[row(2, "two")]).await.expect("insert");
        txn.update(
            "page",
            &["id".into()],
            &["title".into()],
            &[(vec![Value::Int(1)], vec![Value::Text("uno".into())])],
        )
        .await
        .expect("update");
        txn.commit().await.expect("commit");
        assert_eq!(titles(&root).await, vec![row(1, "uno"), row(2, "two")]);
        assert!(store.has_meta().await.expect("has_meta"));
        let e = Store::scan(
            &store,
            ScanRequest {
                table: "page".into(),
                columns: cols.clone(),
                order_by: vec!["id".into()],
                filter: Some(Predicate::native("id = 1")),
                flag: None,
                descending: false,
                limit: None,
            },
        )
        .await
        .expect_err("no SQL");
        assert!(e.message.contains("query text"), "{e}");
    }
}
