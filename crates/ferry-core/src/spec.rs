//! A managed table resolved against the schemas of both environments: the
//! one description the planner and the appliers work from.

use std::collections::BTreeMap;

use crate::canonical::{hash_row, RowHashes};
use crate::config::TableConfig;
use crate::schema::TableSchema;
use crate::value::{convert, ColumnType, ConvertError, Value};

/// Where a column's value comes from on the target.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableSpec {
    pub name: String,
    pub key: Vec<String>,
    /// Non-key columns compared and copied, sorted by name.
    pub compared: Vec<String>,
    /// Columns set on the target at apply time.
    pub stamped: Vec<String>,
    /// Columns never compared nor copied (configured `ignore`).
    pub ignored: Vec<String>,
    /// Target type of every key, compared and stamped column.
    pub types: BTreeMap<String, ColumnType>,
    /// column -> referenced table (references and the parent).
    pub references: BTreeMap<String, String>,
    pub parent: Option<(String, String)>,
    /// JSON column -> path inside it -> referenced table (one-column key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub json_references: BTreeMap<String, BTreeMap<String, String>>,
    pub exclude: Option<String>,
    /// The referenced table's key column, for every reference column.
    pub referenced_key: BTreeMap<String, String>,
    /// Every column of the target table, in its order (before-images keep
    /// them all, ignored ones included).
    pub target_columns: Vec<String>,
    /// Target types of every target column.
    pub target_types: BTreeMap<String, ColumnType>,
    /// Key columns the target generates (auto-increment, serial, identity).
    pub generated_key: Vec<String>,
    /// Columns rows are matched by across environments when ids differ per
    /// environment; the key is then environment-local (never compared, never
    /// copied) and new rows get the id the target assigns.
    #[serde(default)]
    pub natural_key: Option<Vec<String>>,
    /// The target's unique constraints whose columns are all compared (so
    /// the values a promotion writes are known): checked at plan time
    /// against the target's other rows.
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    /// The column the application sets on every write (`changed`), when
    /// declared: plans read the rows changed since the last sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
    /// Seconds before the last sync's watermark that a changed-only plan
    /// still reads (`changed_margin`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changed_margin_secs: i64,
    /// With `changed`: the databases keep a trace of the table's deletes
    /// (`track_deletes`), which a changed-only plan reads instead of
    /// every key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub track_deletes: bool,
    /// Columns both stores derive from each row and write back with it
    /// (`TableSchema::carried`: a MongoDB document's field order): read
    /// with every row after the compared columns, written with every
    /// insert and every update of a row, kept in before-images; never
    /// compared, hashed nor shown as a difference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<String>,
    /// Both sides hold the table with open fields (MongoDB documents): a
    /// field a row lacks (NULL) is left out of its row hash, so a field
    /// that appears in some documents changes the hash of those alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A problem that stops a table from being resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    pub environment: Option<String>,
    pub column: Option<String>,
    pub message: String,
}

impl TableSpec {
    /// Resolves `cfg` against the schemas read from the source and the
    /// target. `keys` gives every managed table's key (for references).
    pub fn resolve(
        cfg: &TableConfig,
        source: (&str, &TableSchema),
        target: (&str, &TableSchema),
        keys: &BTreeMap<String, Vec<String>>,
    ) -> Result<TableSpec, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        if let Some(p) = kinds_disagree(cfg, source, target) {
            return Err(vec![p]);
        }
        // Carried columns (a document's field order) are columns of a row
        // image: read, written and kept in before-images, never compared.
        let (src_full, dst_full) = (source.1.with_carried(), target.1.with_carried());
        let (source, target) = ((source.0, &src_full), (target.0, &dst_full));
        let (source, target) = (widen_open(cfg, source, target.1), widen_open(cfg, target, source.1));
        let (source, target) = ((source.0, &source.1), (target.0, &target.1));
        let (dst_env, dst) = target;
        let key = match &cfg.key {
            Some(k) => k.clone(),
            None if !dst.primary_key.is_empty() => dst.primary_key.clone(),
            None => {
                problems.push(problem(
                    Some(dst_env),
                    None,
                    "the table has no primary key and the config gives no `key`: add key = [\"COLUMN\", ...]".into(),
                ));
                Vec::new()
            }
        };
        problems.extend(missing_columns(cfg, &key, source, target));
        let carried: Vec<String> = dst
            .carried
            .iter()
            .filter(|c| source.1.carried.contains(c) && !key.contains(c))
            .cloned()
            .collect();
        let compared = compared_columns(cfg, &key, source, target, &mut problems);
        problems.extend(undeclared_foreign_keys(cfg, source, target));
        let (references, referenced_key) = resolve_references(cfg, keys, &mut problems);
        let types = dst
            .columns
            .iter()
            .filter(|c| {
                key.contains(&c.name)
                    || compared.contains(&c.name)
                    || carried.contains(&c.name)
                    || cfg.stamp.contains_key(&c.name)
            })
            .map(|c| (c.name.clone(), c.ty.clone()))
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        if cfg.natural_key.is_some() {
            let generated = key.len() == 1 && dst.column(&key[0]).is_some_and(|c| c.auto_increment);
            if !generated {
                problems.push(problem(
                    Some(dst_env),
                    key.first().map(String::as_str),
                    format!(
                        "with `natural_key`, new rows get the id `{dst_env}` assigns, so the key must be one column the target generates (auto-increment, serial, identity, SQLite INTEGER PRIMARY KEY, or `_id` on MongoDB)"
                    ),
                ));
                return Err(problems);
            }
        }
        let unique = dst
            .unique
            .iter()
            .filter(|cols| !cols.is_empty() && cols.iter().all(|c| compared.contains(c)))
            .cloned()
            .collect();
        let generated_key = dst
            .columns
            .iter()
            .filter(|c| c.auto_increment && key.contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        Ok(TableSpec {
            name: cfg.name.clone(),
            key,
            compared,
            stamped: cfg.stamp.keys().cloned().collect(),
            ignored: cfg.ignore.clone(),
            types,
            references,
            parent: cfg.parent.clone(),
            json_references: cfg.json_references.clone(),
            exclude: cfg.exclude.clone(),
            referenced_key,
            target_columns: dst.columns.iter().map(|c| c.name.clone()).collect(),
            target_types: dst.columns.iter().map(|c| (c.name.clone(), c.ty.clone())).collect(),
            generated_key,
            natural_key: cfg.natural_key.clone(),
            unique,
            changed: cfg.changed.clone(),
            changed_margin_secs: if cfg.changed.is_some() {
                cfg.changed_margin_secs
            } else {
                0
            },
            track_deletes: cfg.changed.is_some() && cfg.track_deletes,
            carried,
            open: src_full.open_fields.is_some() && dst_full.open_fields.is_some(),
        })
    }

    /// The columns read from both sides, in the order rows carry them: the
    /// key columns, the compared columns, then the carried ones.
    pub fn columns(&self) -> Vec<String> {
        self.key
            .iter()
            .chain(self.compared.iter())
            .chain(self.carried.iter())
            .cloned()
            .collect()
    }

    /// The columns a front end shows of a row: [`TableSpec::columns`]
    /// without the carried ones (a row's first values).
    pub fn shown_columns(&self) -> Vec<String> {
        self.key.iter().chain(self.compared.iter()).cloned().collect()
    }

    pub fn is_self_referencing(&self) -> bool {
        self.references.values().any(|t| *t == self.name)
    }

    /// Converts a raw row (in [`TableSpec::columns`] order) into canonical
    /// values of the target's types. On failure, names the column.
    pub fn canonicalize(&self, raw: &[Value]) -> Result<Vec<Value>, (String, ConvertError)> {
        self.canonicalize_owned(raw.to_vec())
    }

    /// [`TableSpec::canonicalize`] of an owned row (values already of their
    /// column's kind are moved, not copied). Extra trailing values are dropped.
    pub fn canonicalize_owned(&self, raw: Vec<Value>) -> Result<Vec<Value>, (String, ConvertError)> {
        let any = ColumnType::new(crate::value::LogicalType::Any);
        self.key
            .iter()
            .chain(self.compared.iter())
            .chain(self.carried.iter())
            .zip(raw)
            .map(|(col, v)| {
                let ty = self.types.get(col).unwrap_or(&any);
                crate::value::convert_owned(v, ty).map_err(|e| (col.clone(), e))
            })
            .collect()
    }

    /// Compares two canonical keys of this table in its key order:
    /// [`key_cmp`](crate::value::key_cmp), with document fields (columns
    /// typed [`ColumnType::extended_json`]) in MongoDB's BSON order
    /// ([`crate::value::key_cmp_with`]). Every merge of this table's
    /// scans compares with it.
    pub fn key_cmp(&self, a: &[Value], b: &[Value]) -> std::cmp::Ordering {
        crate::value::key_cmp_with(a, b, |i| {
            self.key
                .get(i)
                .and_then(|c| self.types.get(c))
                .is_some_and(|t| t.extended_json)
        })
    }

    /// Converts the key columns at the start of a raw row.
    pub fn canonicalize_key(&self, raw: &[Value]) -> Result<Vec<Value>, (String, ConvertError)> {
        self.key
            .iter()
            .zip(raw)
            .map(|(col, v)| convert(v, &self.types[col]).map_err(|e| (col.clone(), e)))
            .collect()
    }

    /// Hashes the compared columns of a canonical row.
    /// The row hash alone (equal to [`TableSpec::hash`]'s `row`), without
    /// the per-field hashes: what the merge compares for every row.
    pub fn row_hash(&self, row: &[Value]) -> crate::canonical::RowHash {
        let k = self.key.len();
        let present = |(_, v): &(&str, &Value)| !(self.open && v.is_null());
        crate::canonical::row_digest(self.compared.iter().map(String::as_str).zip(&row[k..]).filter(present))
    }

    /// The row hash (as [`TableSpec::row_hash`]) and one field hash per
    /// compared column, in order (absent fields of an open table too).
    pub fn hash(&self, row: &[Value]) -> RowHashes {
        let k = self.key.len();
        let mut h = hash_row(self.compared.iter().map(String::as_str).zip(&row[k..]));
        if self.open {
            h.row = self.row_hash(row);
        }
        h
    }

    /// The reference column that points back at this table, if any.
    pub fn self_reference(&self) -> Option<&str> {
        self.references
            .iter()
            .find(|(_, t)| **t == self.name)
            .map(|(c, _)| c.as_str())
    }

    /// Orders items of a self-referencing table so that every row comes
    /// after the row it references when both are among `items`. `key_of`
    /// gives an item's key, `parent_of` the value of its self-reference.
    /// A cycle keeps its remaining rows in their given order.
    pub fn parent_first<T>(items: Vec<T>, key_of: impl Fn(&T) -> &Value, parent_of: impl Fn(&T) -> &Value) -> Vec<T> {
        let mut pending = items;
        let mut out = Vec::with_capacity(pending.len());
        loop {
            let waiting: std::collections::HashSet<Vec<u8>> = pending.iter().map(|i| encoded(key_of(i))).collect();
            let is_waiting = |v: &Value| !v.is_null() && waiting.contains(&encoded(v));
            let (ready, rest): (Vec<T>, Vec<T>) = pending.into_iter().partition(|i| {
                let p = parent_of(i);
                p.key_cmp(key_of(i)).is_eq() || !is_waiting(p)
            });
            let stuck = ready.is_empty();
            out.extend(ready);
            pending = rest;
            if pending.is_empty() {
                return out;
            }
            if stuck {
                out.extend(pending);
                return out;
            }
        }
    }
}

/// A problem of one table's spec, in `env` (or both), at `column`.
fn problem(env: Option<&str>, column: Option<&str>, message: String) -> SpecProblem {
    SpecProblem {
        environment: env.map(str::to_string),
        column: column.map(str::to_string),
        message,
    }
}

/// A collection of documents on one side and a table of SQL columns on the
/// other (Ferry promotes MongoDB to MongoDB, SQL to SQL), or an `exclude`
/// in the other engine's language: a filter document (`{...}`, Extended
/// JSON) for a collection, SQL for a table.
fn kinds_disagree(
    cfg: &TableConfig,
    (src_env, src): (&str, &TableSchema),
    (dst_env, dst): (&str, &TableSchema),
) -> Option<SpecProblem> {
    let (src_docs, dst_docs) = (src.open_fields.is_some(), dst.open_fields.is_some());
    if src_docs != dst_docs {
        let (docs, sql) = if src_docs {
            (src_env, dst_env)
        } else {
            (dst_env, src_env)
        };
        return Some(problem(
            None,
            None,
            format!(
                "`{docs}` holds this table as a MongoDB collection and `{sql}` as an SQL table: Ferry promotes between environments of one kind (MongoDB to MongoDB, SQL to SQL); manage the collections and the SQL tables with two configurations"
            ),
        ));
    }
    let exclude = cfg.exclude.as_deref()?.trim_start();
    match (src_docs, exclude.starts_with('{')) {
        (true, false) => Some(problem(
            Some(src_env),
            None,
            format!(
                "`exclude` reads as SQL, but `{src_env}` is a MongoDB environment: write a filter document as Extended JSON, e.g. exclude = '{{\"created_by_team\": {{\"$in\": [\"qa\", \"dev\"]}}}}'"
            ),
        )),
        (false, true) => Some(problem(
            Some(src_env),
            None,
            format!(
                "`exclude` is a MongoDB filter document, but `{src_env}` is an SQL environment: write an SQL predicate, e.g. exclude = \"created_by_team IN ('qa', 'dev')\""
            ),
        )),
        _ => None,
    }
}

/// A side whose schema is open (a document store), with the other side's
/// columns and every column the config names added: a field one side has
/// not seen yet is absent there, not missing.
fn widen_open<'a>(
    cfg: &TableConfig,
    (env, schema): (&'a str, &TableSchema),
    other: &TableSchema,
) -> (&'a str, TableSchema) {
    if schema.open_fields.is_none() {
        return (env, schema.clone());
    }
    let named = cfg
        .key
        .iter()
        .flatten()
        .chain(cfg.stamp.keys())
        .chain(cfg.references.keys())
        .chain(cfg.parent.iter().map(|(c, _)| c))
        .chain(cfg.draft.keys())
        .filter(|c| !cfg.ignore.contains(c));
    let others = other
        .columns
        .iter()
        .map(|c| &c.name)
        .filter(|c| !cfg.ignore.contains(c));
    (env, schema.with_fields(others.chain(named)))
}

/// The columns the config names that a side lacks. Ignored columns are
/// environment-local: one side having it is enough.
fn missing_columns(
    cfg: &TableConfig,
    key: &[String],
    (src_env, src): (&str, &TableSchema),
    (dst_env, dst): (&str, &TableSchema),
) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    // Ignored columns are environment-local: one side having it is enough.
    for col in &cfg.ignore {
        if src.column(col).is_none() && dst.column(col).is_none() {
            problems.push(problem(
                Some(dst_env),
                Some(col),
                format!(
                    "no such column in either environment (the table has: {})",
                    column_list(dst)
                ),
            ));
        }
    }
    let mentioned = key
        .iter()
        .chain(cfg.stamp.keys())
        .chain(cfg.references.keys())
        .chain(cfg.json_references.keys())
        .chain(cfg.parent.iter().map(|(c, _)| c))
        .chain(cfg.natural_key.iter().flatten())
        .chain(cfg.keep_ids.iter())
        .chain(cfg.draft.keys());
    for col in mentioned {
        for (env, schema) in [(src_env, src), (dst_env, dst)] {
            if schema.column(col).is_none() {
                problems.push(problem(
                    Some(env),
                    Some(col),
                    format!("no such column (the table has: {})", column_list(schema)),
                ));
            }
        }
    }
    problems
}

/// The compared columns, sorted: every target column but the key, ignored
/// and stamped ones; each must exist on both sides.
fn compared_columns(
    cfg: &TableConfig,
    key: &[String],
    (src_env, src): (&str, &TableSchema),
    (dst_env, dst): (&str, &TableSchema),
    problems: &mut Vec<SpecProblem>,
) -> Vec<String> {
    let mut compared = Vec::new();
    for c in &dst.columns {
        let n = &c.name;
        if key.contains(n) || cfg.ignore.contains(n) || cfg.stamp.contains_key(n) || dst.carried.contains(n) {
            continue;
        }
        if src.column(n).is_none() {
            problems.push(problem(
                Some(src_env),
                Some(n),
                format!(
                "the column exists in `{dst_env}` but not in `{src_env}`: migrate the schema, or add it to `ignore`"
            ),
            ));
            continue;
        }
        compared.push(n.clone());
    }
    for c in &src.columns {
        let n = &c.name;
        if dst.column(n).is_none()
            && !cfg.ignore.contains(n)
            && !cfg.stamp.contains_key(n)
            && !key.contains(n)
            && !src.carried.contains(n)
        {
            problems.push(problem(
                Some(dst_env),
                Some(n),
                format!(
                "the column exists in `{src_env}` but not in `{dst_env}`: migrate the schema, or add it to `ignore`"
            ),
            ));
        }
    }
    compared.sort();
    compared
}

/// The references (the parent's column included) and the key column each
/// one names; a reference names a one-column key.
fn resolve_references(
    cfg: &TableConfig,
    keys: &BTreeMap<String, Vec<String>>,
    problems: &mut Vec<SpecProblem>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut references = cfg.references.clone();
    if let Some((c, t)) = &cfg.parent {
        references.insert(c.clone(), t.clone());
    }
    let mut referenced_key = BTreeMap::new();
    for (col, table) in &references {
        match keys.get(table).map(Vec::as_slice) {
            Some([one]) => {
                referenced_key.insert(col.clone(), one.clone());
            }
            Some(_) => problems.push(problem(
                None,
                Some(col),
                format!("references `{table}`, whose key has several columns; a reference names a one-column key"),
            )),
            None => {}
        }
    }
    for (col, paths) in &cfg.json_references {
        for (path, table) in paths {
            if let Some(k) = keys.get(table) {
                if k.len() != 1 {
                    problems.push(problem(
                    None,
                    Some(col),
                    format!("JSON path `{path}` references `{table}`, whose key has several columns; a reference names a one-column key"),
                ));
                }
            }
        }
    }
    (references, referenced_key)
}

/// Foreign keys the database declares on a column that Ferry was not told
/// about: neither a reference (or the parent), nor ignored, stamped, nor
/// declared copied as is (`keep_ids`). Their ids would be copied raw, and
/// ids differ per environment (users, content types): every one is a
/// problem naming the column, the table it points at and the fix. The
/// target's declarations first, then the source's.
fn undeclared_foreign_keys(
    cfg: &TableConfig,
    (src_env, src): (&str, &TableSchema),
    (dst_env, dst): (&str, &TableSchema),
) -> Vec<SpecProblem> {
    let told = |c: &String| {
        cfg.references.contains_key(c)
            || cfg.parent.as_ref().is_some_and(|(p, _)| p == c)
            || cfg.ignore.contains(c)
            || cfg.stamp.contains_key(c)
            || cfg.keep_ids.contains(c)
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (env, schema) in [(dst_env, dst), (src_env, src)] {
        for fk in &schema.foreign_keys {
            for (i, col) in fk.columns.iter().enumerate() {
                if told(col) || !seen.insert(col.clone()) {
                    continue;
                }
                let to = match fk.ref_columns.get(i).filter(|c| !c.is_empty()) {
                    Some(rc) => format!("`{}` ({rc})", fk.ref_table),
                    None => format!("`{}`", fk.ref_table),
                };
                out.push(SpecProblem {
                    environment: Some(env.to_string()),
                    column: Some(col.clone()),
                    message: format!(
                        "the database declares a foreign key from this column to {to}, and Ferry was not told about it: its ids would be copied as they are, and ids usually differ per environment. Add references = {{ {col} = \"{table}\" }} (with `{table}` managed), or keep_ids = [\"{col}\"] if the ids are the same in every environment, or ignore = [\"{col}\"] if the column is environment-local",
                        table = fk.ref_table,
                    ),
                });
            }
        }
    }
    out
}

fn encoded(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    crate::canonical::encode_value(&mut out, v);
    out
}

fn column_list(schema: &TableSchema) -> String {
    schema
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnSchema;
    use crate::value::LogicalType;

    fn config(table: &str) -> TableConfig {
        let text =
            format!("pipeline = [\"a\", \"b\"]\n[environments.a]\nurl = \"x\"\n[environments.b]\nurl = \"y\"\n{table}");
        let cfg = crate::config::parse(&text, std::path::Path::new("ferry.toml")).expect("a config");
        cfg.tables.into_values().next().expect("one table")
    }

    fn columns(names: &[&str], ty: &ColumnType) -> Vec<ColumnSchema> {
        names
            .iter()
            .map(|n| ColumnSchema {
                name: n.to_string(),
                declared: "field".into(),
                ty: ty.clone(),
                nullable: true,
                has_default: false,
                auto_increment: false,
            })
            .collect()
    }

    fn documents(names: &[&str]) -> TableSchema {
        let ty = ColumnType {
            extended_json: true,
            ..ColumnType::new(LogicalType::Json)
        };
        TableSchema {
            name: "businesses".into(),
            columns: columns(names, &ty),
            primary_key: vec!["_id".into()],
            foreign_keys: vec![],
            unique: vec![],
            open_fields: Some(ty),
            carried: Vec::new(),
        }
    }

    fn sql(names: &[&str]) -> TableSchema {
        TableSchema {
            open_fields: None,
            columns: columns(names, &ColumnType::new(LogicalType::Text)),
            ..documents(names)
        }
    }

    const TABLE: &str = "[tables.businesses]\nkey = [\"_id\"]\nstamp = { modified_at = \"now\" }\n";

    #[test]
    fn open_schemas_join_their_fields() {
        let cfg = config(TABLE);
        let keys = BTreeMap::from([("businesses".to_string(), vec!["_id".to_string()])]);
        let spec = TableSpec::resolve(
            &cfg,
            ("staging", &documents(&["_id", "name", "city_id"])),
            ("production", &documents(&["_id"])),
            &keys,
        )
        .expect("an empty target collection resolves");
        assert_eq!(spec.compared, ["city_id", "name"]);
        assert_eq!(spec.target_columns, ["_id", "name", "city_id", "modified_at"]);
        assert!(spec.types["modified_at"].extended_json);
    }

    #[test]
    fn carried_columns_are_read_and_written_never_compared() {
        let cfg = config(TABLE);
        let keys = BTreeMap::from([("businesses".to_string(), vec!["_id".to_string()])]);
        let carrying = |names: &[&str]| TableSchema {
            carried: vec![crate::schema::FIELD_ORDER.into()],
            ..documents(names)
        };
        let spec = TableSpec::resolve(
            &cfg,
            ("staging", &carrying(&["_id", "name"])),
            ("production", &carrying(&["_id", "name"])),
            &keys,
        )
        .expect("resolves");
        assert_eq!(spec.compared, ["name"]);
        assert_eq!(spec.carried, [crate::schema::FIELD_ORDER]);
        assert_eq!(spec.columns(), ["_id", "name", crate::schema::FIELD_ORDER]);
        assert_eq!(spec.shown_columns(), ["_id", "name"]);
        assert!(spec.target_columns.iter().any(|c| c == crate::schema::FIELD_ORDER));
        let json = |t: &str| Value::Json(crate::value::Json::from_text(t).expect("JSON"));
        let a = spec
            .canonicalize(&[json("1"), json("\"x\""), json(r#"["_id", "name"]"#)])
            .expect("canonical");
        let b = spec
            .canonicalize(&[json("1"), json("\"x\""), json(r#"["name", "_id"]"#)])
            .expect("canonical");
        assert_eq!(a.len(), 3, "the carried value travels with the row");
        assert_eq!(spec.hash(&a), spec.hash(&b), "the order makes no difference");
        // Only when both sides carry it; SQL-like schemas carry nothing.
        let one = TableSpec::resolve(
            &cfg,
            ("staging", &documents(&["_id", "name"])),
            ("production", &carrying(&["_id", "name"])),
            &keys,
        );
        assert!(one.expect("resolves").carried.is_empty());
    }

    #[test]
    fn documents_and_sql_tables_do_not_mix() {
        let keys = BTreeMap::from([("businesses".to_string(), vec!["_id".to_string()])]);
        let cfg = config(TABLE);
        let e = TableSpec::resolve(
            &cfg,
            ("staging", &documents(&["_id"])),
            ("production", &sql(&["_id"])),
            &keys,
        )
        .expect_err("MongoDB to SQL");
        assert!(e[0].message.contains("MongoDB to MongoDB"), "{e:?}");
        let sql_exclude = config(&format!("{TABLE}exclude = \"team = 'qa'\"\n"));
        let e = TableSpec::resolve(
            &sql_exclude,
            ("staging", &documents(&["_id"])),
            ("production", &documents(&["_id"])),
            &keys,
        )
        .expect_err("SQL on a collection");
        assert!(e[0].message.contains("filter document"), "{e:?}");
        let filter = config(&format!("{TABLE}exclude = '{{\"team\": \"qa\"}}'\n"));
        let e = TableSpec::resolve(
            &filter,
            ("staging", &sql(&["_id"])),
            ("production", &sql(&["_id"])),
            &keys,
        )
        .expect_err("a filter on an SQL table");
        assert!(e[0].message.contains("SQL environment"), "{e:?}");
    }
}
