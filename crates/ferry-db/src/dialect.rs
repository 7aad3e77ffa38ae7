//! The only place that builds SQL text: identifier quoting, placeholders and
//! the statements every store runs, per dialect.

use std::ops::Bound;

use ferry_core::Value;

use crate::{meta, FetchRequest, Predicate, Row, ScanRequest};

/// Per-column SQL a store needs around identifiers and placeholders: casts
/// for reading a type the driver cannot decode, casts for parameters, and
/// a byte-wise order for text keys.
pub trait ColumnSql {
    fn dialect(&self) -> Dialect;
    /// The expression that reads `col` in a SELECT list.
    fn read(&self, col: &str) -> String {
        self.dialect().ident(col)
    }
    /// The parameter `placeholder` as a value of `col`.
    fn param(&self, _col: &str, placeholder: String) -> String {
        placeholder
    }
    /// `col` in an ORDER BY, so that rows come in Ferry's key order.
    fn order(&self, col: &str) -> String {
        self.dialect().ident(col)
    }
}

/// No casts: the dialect's plain identifiers and placeholders.
pub struct Plain(pub Dialect);

impl ColumnSql for Plain {
    fn dialect(&self) -> Dialect {
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

impl Dialect {
    /// Quotes an identifier so capitals, spaces and reserved words work.
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
            Dialect::Sqlite | Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// The `n`-th placeholder (1-based).
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Mysql => "?".to_string(),
        }
    }

    /// A query counting the rows of `table` that an SQL predicate matches,
    /// run to see whether the predicate runs there.
    pub fn predicate_probe(self, table: &str, predicate: &str) -> String {
        format!(
            "SELECT count(*) FROM (SELECT 1 FROM {} WHERE ({predicate})) AS x",
            self.ident(table)
        )
    }

    /// A string literal (quotes doubled), for the catalog queries below.
    pub fn literal(self, text: &str) -> String {
        let quoted = text.replace('\'', "''");
        match self {
            // MySQL also reads backslashes as escapes in literals.
            Dialect::Mysql => format!("'{}'", quoted.replace('\\', "\\\\")),
            Dialect::Sqlite | Dialect::Postgres => format!("'{quoted}'"),
        }
    }

    /// A query giving whether an index of `table` starts with `column`
    /// (so `column >= x` reads only the matching rows): a boolean or a
    /// count, true or non-zero when there is one.
    pub fn leading_index_probe(self, table: &str, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "SELECT count(*) FROM pragma_index_list({t}) AS l, pragma_index_info(l.name) AS i \
                 WHERE i.seqno = 0 AND i.name = {c}",
                t = self.literal(table),
                c = self.literal(column)
            ),
            Dialect::Postgres => format!(
                "SELECT count(*)::bigint FROM pg_index i JOIN pg_attribute a \
                 ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                 WHERE i.indrelid = to_regclass({t}) AND a.attname = {c}",
                t = self.literal(&self.ident(table)),
                c = self.literal(column)
            ),
            Dialect::Mysql => format!(
                "SELECT count(*) FROM information_schema.statistics WHERE table_schema = DATABASE() \
                 AND table_name = {t} AND column_name = {c} AND seq_in_index = 1",
                t = self.literal(table),
                c = self.literal(column)
            ),
        }
    }

    /// A query giving one row when some row of `table` holds NULL in
    /// `column`, and none otherwise.
    pub fn null_probe(self, table: &str, column: &str) -> String {
        format!(
            "SELECT 1 FROM {} WHERE {} IS NULL LIMIT 1",
            self.ident(table),
            self.ident(column)
        )
    }

    /// A query giving the largest value of `column` in `table`.
    pub fn max_of(self, table: &str, column: &str) -> String {
        format!("SELECT max({}) FROM {}", self.ident(column), self.ident(table))
    }

    /// The keys of `table` (one integer column) in blocks of 64
    /// ([`crate::SqlStore::key_blocks`]): one row per block holding a key,
    /// its smallest key then the mask of its keys (bit `k & 63` of block
    /// `k >> 6`), in key order. The database aggregates, so one row
    /// travels per 64 keys. SQLite, which runs in the process, has no row
    /// to save: it reads the keys in order (`ORDER BY`, the rowid b-tree)
    /// and the store folds them itself.
    pub fn key_blocks(self, table: &str, column: &str) -> String {
        let (t, c) = (self.ident(table), self.ident(column));
        match self {
            Dialect::Postgres => format!(
                "SELECT min({c})::int8, bit_or(1::int8 << ({c}::int8 & 63)::int4) FROM {t} \
                 GROUP BY {c}::int8 >> 6 ORDER BY 1"
            ),
            // Bit operations work on unsigned 64-bit integers: a negative
            // key's block and bit are those of its two's complement, so
            // the blocks are the same 64 keys as elsewhere.
            Dialect::Mysql => format!(
                "SELECT CAST(MIN({c}) AS SIGNED), BIT_OR(1 << ({c} & 63)) FROM {t} GROUP BY {c} >> 6 ORDER BY 1"
            ),
            // The store folds the keys (it reads them unordered when their
            // range is narrow enough: `sqlite.rs`).
            Dialect::Sqlite => format!("SELECT {c} FROM {t} ORDER BY {c}"),
        }
    }

    /// The statements that install Ferry's trace of deletes on `table`,
    /// whose key is the one integer column `column` (`track_deletes`):
    /// a trigger that writes every deleted key into [`meta::DELETED`]
    /// with the database's UTC time, in the deleting transaction; on
    /// PostgreSQL also one that records a `TRUNCATE` (which deletes no
    /// row one by one) as a break of the trace.
    pub fn delete_trace(self, table: &str, column: &str) -> Vec<String> {
        let (t, c, name) = (self.ident(table), self.ident(column), trace_name(table));
        let (lit, log, n) = (self.literal(table), self.ident(meta::DELETED), self.ident(&name));
        match self {
            Dialect::Postgres => {
                let now = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')";
                let trunc = self.ident(&format!("{name}_t"));
                vec![
                    format!("DROP TRIGGER IF EXISTS {n} ON {t}"),
                    format!("DROP TRIGGER IF EXISTS {trunc} ON {t}"),
                    format!(
                        "CREATE OR REPLACE FUNCTION {n}() RETURNS trigger LANGUAGE plpgsql AS $ferry$ BEGIN \
                         INSERT INTO {log} (table_name, row_key, at) SELECT {lit}, {c}::int8, {now} FROM ferry_gone; \
                         RETURN NULL; END $ferry$"
                    ),
                    format!(
                        "CREATE TRIGGER {n} AFTER DELETE ON {t} REFERENCING OLD TABLE AS ferry_gone \
                         FOR EACH STATEMENT EXECUTE FUNCTION {n}()"
                    ),
                    format!(
                        "CREATE OR REPLACE FUNCTION {trunc}() RETURNS trigger LANGUAGE plpgsql AS $ferry$ BEGIN \
                         INSERT INTO {log} (table_name, row_key, at, kind) VALUES ({lit}, NULL, {now}, 'truncated'); \
                         RETURN NULL; END $ferry$"
                    ),
                    format!(
                        "CREATE TRIGGER {trunc} AFTER TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION {trunc}()"
                    ),
                ]
            }
            Dialect::Mysql => vec![
                format!("DROP TRIGGER IF EXISTS {n}"),
                format!(
                    "CREATE TRIGGER {n} AFTER DELETE ON {t} FOR EACH ROW INSERT INTO {log} (table_name, row_key, at) \
                 VALUES ({lit}, OLD.{c}, DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:%s.%f'))"
                ),
            ],
            Dialect::Sqlite => vec![
                format!("DROP TRIGGER IF EXISTS {n}"),
                format!(
                    "CREATE TRIGGER {n} AFTER DELETE ON {t} BEGIN INSERT INTO {log} (table_name, row_key, at) \
                 VALUES ({lit}, OLD.{c}, strftime('%Y-%m-%d %H:%M:%f', 'now')); END"
                ),
            ],
        }
    }

    /// A query counting what breaks the trace of deletes of `table`
    /// ([`Dialect::delete_trace`]) right now, as `missing * 2 + cascades`
    /// (0: the trace is whole): `missing`, 1 when its trigger is gone or
    /// disabled; `cascades`, on MySQL, 1 when a foreign key deletes rows
    /// of the table in cascade (InnoDB fires no trigger for those).
    pub fn delete_trace_probe(self, table: &str) -> String {
        let (lit, name) = (self.literal(table), self.literal(&trace_name(table)));
        match self {
            Dialect::Postgres => format!(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass({q}) AND tgname = {name} \
                 AND tgenabled <> 'D') THEN 0::int8 ELSE 2::int8 END",
                q = self.literal(&self.ident(table))
            ),
            Dialect::Mysql => format!(
                "SELECT ((SELECT count(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE() \
                 AND event_object_table = {lit} AND trigger_name = {name}) = 0) * 2 \
                 + ((SELECT count(*) FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE() \
                 AND table_name = {lit} AND delete_rule = 'CASCADE') > 0)"
            ),
            Dialect::Sqlite => format!(
                "SELECT (count(*) = 0) * 2 FROM sqlite_master WHERE type = 'trigger' AND tbl_name = {lit} AND name = {name}"
            ),
        }
    }

    /// Refreshes the planner statistics of a table.
    pub fn analyze(self, table: &str) -> String {
        match self {
            Dialect::Mysql => format!("ANALYZE TABLE {}", self.ident(table)),
            Dialect::Sqlite | Dialect::Postgres => format!("ANALYZE {}", self.ident(table)),
        }
    }

    /// Most bound parameters one statement may carry.
    pub fn max_params(self) -> usize {
        match self {
            Dialect::Sqlite => 32_766,
            Dialect::Postgres | Dialect::Mysql => 65_535,
        }
    }

    fn list(self, cols: &[String]) -> String {
        cols.iter().map(|c| self.ident(c)).collect::<Vec<_>>().join(", ")
    }

    /// The SQL of a predicate, its values appended to `params` and its
    /// placeholders numbered after those already there; `None` for
    /// [`Predicate::All`].
    pub fn condition(self, p: &Predicate, c: &dyn ColumnSql, params: &mut Vec<Value>) -> Option<String> {
        match p {
            Predicate::All => None,
            Predicate::Native(text) => Some(format!("({text})")),
            Predicate::In { columns, values } if values.is_empty() || columns.is_empty() => Some("(1 = 0)".to_string()),
            Predicate::In { columns, values } => {
                let sql = self.matching_from(columns, values.len(), c, params.len());
                params.extend(values.iter().flatten().cloned());
                Some(format!("({sql})"))
            }
            Predicate::Range { columns, from, to } => {
                let mut parts = Vec::new();
                for (bound, strict, loose) in [(from, ">", ">="), (to, "<", "<=")] {
                    let (op, row) = match bound {
                        Bound::Included(row) => (loose, row),
                        Bound::Excluded(row) => (strict, row),
                        Bound::Unbounded => continue,
                    };
                    parts.push(self.compare(columns, op, row, c, params));
                }
                Some(if parts.is_empty() {
                    "(1 = 1)".to_string()
                } else {
                    format!("({})", parts.join(" AND "))
                })
            }
        }
    }

    /// `(a, b) op (v1, v2)`, compared in Ferry's key order (text by bytes).
    fn compare(self, columns: &[String], op: &str, row: &Row, c: &dyn ColumnSql, params: &mut Vec<Value>) -> String {
        let left: Vec<String> = columns.iter().map(|col| c.order(col)).collect();
        let right: Vec<String> = columns
            .iter()
            .zip(row)
            .map(|(col, v)| {
                params.push(v.clone());
                c.param(col, self.param(params.len()))
            })
            .collect();
        format!("({}) {op} ({})", left.join(", "), right.join(", "))
    }

    fn flag_column(self, flag: &Option<Predicate>, c: &dyn ColumnSql, params: &mut Vec<Value>) -> String {
        match flag.as_ref().map(|p| self.condition(p, c, params)) {
            Some(Some(pred)) => format!(", (({pred}) IS TRUE)"),
            Some(None) => ", (1 = 1)".to_string(),
            None => String::new(),
        }
    }

    /// A scan's SQL, and the values its placeholders take.
    pub fn scan(self, req: &ScanRequest, c: &dyn ColumnSql) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let mut sql = format!(
            "SELECT {}{} FROM {}",
            reads(c, &req.columns),
            self.flag_column(&req.flag, c, &mut params),
            self.ident(&req.table)
        );
        if let Some(f) = req.filter.as_ref().and_then(|p| self.condition(p, c, &mut params)) {
            sql.push_str(&format!(" WHERE {f}"));
        }
        if !req.order_by.is_empty() {
            let dir = if req.descending { " DESC" } else { "" };
            let order: Vec<String> = req.order_by.iter().map(|k| format!("{}{dir}", c.order(k))).collect();
            sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        }
        if let Some(n) = req.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        (sql, params)
    }

    /// A fetch of `n` value tuples; parameters numbered from 1.
    /// A condition matching `n` value tuples of `columns`; parameters
    /// numbered from 1.
    fn matching(self, columns: &[String], n: usize, c: &dyn ColumnSql) -> String {
        self.matching_from(columns, n, c, 0)
    }

    /// [`Dialect::matching`] with parameters numbered after `skip` others.
    fn matching_from(self, columns: &[String], n: usize, c: &dyn ColumnSql, skip: usize) -> String {
        let mut p = skip;
        let mut next = |col: &str| {
            p += 1;
            c.param(col, self.param(p))
        };
        if let [only] = columns {
            let params: Vec<String> = (0..n).map(|_| next(only)).collect();
            return format!("{} IN ({})", self.ident(only), params.join(", "));
        }
        let tuples: Vec<String> = (0..n)
            .map(|_| {
                let parts: Vec<String> = columns
                    .iter()
                    .map(|col| format!("{} = {}", self.ident(col), next(col)))
                    .collect();
                format!("({})", parts.join(" AND "))
            })
            .collect();
        tuples.join(" OR ")
    }

    /// `DELETE ... WHERE f1 = $1 AND ... AND column IN (...)` for `n` values.
    pub fn delete_in(self, table: &str, fixed: &[String], column: &str, n: usize, c: &dyn ColumnSql) -> String {
        let mut conds: Vec<String> = fixed
            .iter()
            .enumerate()
            .map(|(i, col)| format!("{} = {}", self.ident(col), c.param(col, self.param(i + 1))))
            .collect();
        conds.push(self.matching_from(&[column.to_string()], n, c, fixed.len()));
        format!("DELETE FROM {} WHERE {}", self.ident(table), conds.join(" AND "))
    }

    /// A delete of `n` rows by key.
    pub fn delete_many(self, table: &str, key: &[String], n: usize, c: &dyn ColumnSql) -> String {
        format!("DELETE FROM {} WHERE ({})", self.ident(table), self.matching(key, n, c))
    }

    /// A fetch of the value tuples of `chunk` (a part of `req.values`), and
    /// the values its placeholders take: the flag's, the fixed columns',
    /// the tuples', then the filter's.
    pub fn fetch(self, req: &FetchRequest, chunk: &[Row], c: &dyn ColumnSql) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let flag = self.flag_column(&req.flag, c, &mut params);
        let fixed: Vec<String> = req
            .fixed
            .iter()
            .map(|(col, v)| {
                params.push(v.clone());
                format!("{} = {}", self.ident(col), c.param(col, self.param(params.len())))
            })
            .collect();
        let matched = self.matching_from(&req.match_columns, chunk.len(), c, params.len());
        params.extend(chunk.iter().flatten().cloned());
        let cond = if fixed.is_empty() {
            matched
        } else {
            format!("{} AND ({matched})", fixed.join(" AND "))
        };
        let mut sql = format!(
            "SELECT {}{flag} FROM {} WHERE ({cond})",
            reads(c, &req.columns),
            self.ident(&req.table)
        );
        if let Some(f) = req.filter.as_ref().and_then(|p| self.condition(p, c, &mut params)) {
            sql.push_str(&format!(" AND {f}"));
        }
        (sql, params)
    }

    /// [`Dialect::fetch`] locking the rows it reads until the transaction
    /// ends (`FOR UPDATE`), so nobody changes them between a re-check and
    /// the writes that follow it. SQLite has no row locks: its write
    /// transaction (`BEGIN IMMEDIATE`) already keeps every other writer out.
    pub fn fetch_for_update(self, req: &FetchRequest, chunk: &[Row], c: &dyn ColumnSql) -> (String, Vec<Value>) {
        let (sql, params) = self.fetch(req, chunk, c);
        match self {
            Dialect::Postgres | Dialect::Mysql => (format!("{sql} FOR UPDATE"), params),
            Dialect::Sqlite => (sql, params),
        }
    }

    /// A multi-row insert of `rows` rows that replaces the non-key columns
    /// of rows whose `key` exists already (served by the key's index).
    pub fn upsert(self, table: &str, key: &[String], columns: &[String], rows: usize, c: &dyn ColumnSql) -> String {
        let insert = self.insert(table, columns, rows, c);
        self.on_conflict(insert, key, columns)
    }

    /// `insert` with the clause that makes it an upsert on `key`.
    fn on_conflict(self, insert: String, key: &[String], columns: &[String]) -> String {
        let rest: Vec<&String> = columns.iter().filter(|col| !key.contains(col)).collect();
        match self {
            Dialect::Mysql => {
                let sets: Vec<String> = rest
                    .iter()
                    .map(|col| format!("{} = VALUES({})", self.ident(col), self.ident(col)))
                    .collect();
                format!("{insert} ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
            Dialect::Sqlite | Dialect::Postgres => {
                let sets: Vec<String> = rest
                    .iter()
                    .map(|col| format!("{} = excluded.{}", self.ident(col), self.ident(col)))
                    .collect();
                format!(
                    "{insert} ON CONFLICT ({}) DO UPDATE SET {}",
                    self.list(key),
                    sets.join(", ")
                )
            }
        }
    }

    /// A multi-row insert of `rows` rows.
    pub fn insert(self, table: &str, columns: &[String], rows: usize, c: &dyn ColumnSql) -> String {
        let mut p = 0;
        let tuples: Vec<String> = (0..rows)
            .map(|_| {
                let params: Vec<String> = columns
                    .iter()
                    .map(|col| {
                        p += 1;
                        c.param(col, self.param(p))
                    })
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        // Explicit ids go into identity columns too (PostgreSQL).
        let overriding = if self == Dialect::Postgres {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        format!(
            "INSERT INTO {} ({}){overriding} VALUES {}",
            self.ident(table),
            self.list(columns),
            tuples.join(", ")
        )
    }

    /// An update of one row: the `set` parameters first, then the key.
    pub fn update(self, table: &str, key: &[String], set: &[String], c: &dyn ColumnSql) -> String {
        let mut p = 0;
        let mut next = |col: &str| {
            p += 1;
            c.param(col, self.param(p))
        };
        let sets: Vec<String> = set
            .iter()
            .map(|col| format!("{} = {}", self.ident(col), next(col)))
            .collect();
        let wheres: Vec<String> = key
            .iter()
            .map(|col| format!("{} = {}", self.ident(col), next(col)))
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            self.ident(table),
            sets.join(", "),
            wheres.join(" AND ")
        )
    }

    /// An update of `rows` rows in one statement, each row's parameters
    /// being its `set` values, then its key values (as in
    /// [`Dialect::update`], which is what one row gets): MySQL joins a
    /// `UNION ALL` of `SELECT`s (PostgreSQL has [`Dialect::update_unnest`]);
    /// SQLite, in process, runs [`Dialect::update`] per row.
    pub fn update_many(self, table: &str, key: &[String], set: &[String], rows: usize, c: &dyn ColumnSql) -> String {
        if rows <= 1 || self == Dialect::Sqlite {
            return self.update(table, key, set, c);
        }
        let names: Vec<&String> = set.iter().chain(key).collect();
        let alias = derived_alias;
        let t = self.ident(table);
        let v = "_ferry_v";
        let mut p = 0;
        let mut next = |col: &str| {
            p += 1;
            c.param(col, self.param(p))
        };
        let selects: Vec<String> = (0..rows)
            .map(|r| {
                let cells: Vec<String> = names
                    .iter()
                    .enumerate()
                    .map(|(i, col)| {
                        let param = next(col);
                        if r == 0 {
                            format!("{param} AS {}", alias(i))
                        } else {
                            param
                        }
                    })
                    .collect();
                format!("SELECT {}", cells.join(", "))
            })
            .collect();
        let sets: Vec<String> = set
            .iter()
            .enumerate()
            .map(|(i, col)| format!("{t}.{} = {v}.{}", self.ident(col), alias(i)))
            .collect();
        format!(
            "UPDATE {t} JOIN ({}) AS {v} ON {} SET {}",
            selects.join(" UNION ALL "),
            self.match_derived(&t, key, set.len()),
            sets.join(", ")
        )
    }

    /// PostgreSQL: the rows of a multi-row statement as one `text[]`
    /// parameter per column of `names` (`$1`, `$2`, ...), unnested and each
    /// cast to its column's type, as a query with the columns `_ferry_0`,
    /// `_ferry_1`, ...: the statement does not grow with the rows, so the
    /// server parses and plans it once, whatever their number.
    fn unnest(self, names: &[String], c: &dyn ColumnSql) -> String {
        let arrays: Vec<String> = (1..=names.len())
            .map(|i| format!("{}::text[]", self.param(i)))
            .collect();
        let aliases: Vec<String> = (0..names.len()).map(derived_alias).collect();
        let cells: Vec<String> = names
            .iter()
            .zip(&aliases)
            .map(|(col, a)| format!("{} AS {a}", c.param(col, format!("_ferry_u.{a}"))))
            .collect();
        format!(
            "SELECT {} FROM UNNEST({}) AS _ferry_u ({})",
            cells.join(", "),
            arrays.join(", "),
            aliases.join(", ")
        )
    }

    /// PostgreSQL: an insert of the rows of [`Dialect::unnest`].
    pub fn insert_unnest(self, table: &str, columns: &[String], c: &dyn ColumnSql) -> String {
        format!(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE {}",
            self.ident(table),
            self.list(columns),
            self.unnest(columns, c)
        )
    }

    /// PostgreSQL: an upsert of the rows of [`Dialect::unnest`].
    pub fn upsert_unnest(self, table: &str, key: &[String], columns: &[String], c: &dyn ColumnSql) -> String {
        self.on_conflict(self.insert_unnest(table, columns, c), key, columns)
    }

    /// PostgreSQL: an update of the rows of [`Dialect::unnest`], each row
    /// being its `set` values, then its key values.
    pub fn update_unnest(self, table: &str, key: &[String], set: &[String], c: &dyn ColumnSql) -> String {
        let names: Vec<String> = set.iter().chain(key).cloned().collect();
        let t = self.ident(table);
        let sets: Vec<String> = set
            .iter()
            .enumerate()
            .map(|(i, col)| format!("{} = _ferry_v.{}", self.ident(col), derived_alias(i)))
            .collect();
        format!(
            "UPDATE {t} SET {} FROM ({}) AS _ferry_v WHERE {}",
            sets.join(", "),
            self.unnest(&names, c),
            self.match_derived(&t, key, set.len())
        )
    }

    /// PostgreSQL: a delete of the keys of [`Dialect::unnest`].
    pub fn delete_unnest(self, table: &str, key: &[String], c: &dyn ColumnSql) -> String {
        let t = self.ident(table);
        format!(
            "DELETE FROM {t} USING ({}) AS _ferry_v WHERE {}",
            self.unnest(key, c),
            self.match_derived(&t, key, 0)
        )
    }

    /// The join of table `t` (quoted) with a derived table `_ferry_v` of
    /// rows on `key`, whose values are its columns from `_ferry_{first}` on.
    fn match_derived(self, t: &str, key: &[String], first: usize) -> String {
        let on: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{t}.{} = _ferry_v.{}", self.ident(k), derived_alias(first + i)))
            .collect();
        on.join(" AND ")
    }

    /// A delete of one row by key.
    pub fn delete(self, table: &str, key: &[String], c: &dyn ColumnSql) -> String {
        let wheres: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, col)| format!("{} = {}", self.ident(col), c.param(col, self.param(i + 1))))
            .collect();
        format!("DELETE FROM {} WHERE {}", self.ident(table), wheres.join(" AND "))
    }
}

fn derived_alias(i: usize) -> String {
    format!("_ferry_{i}")
}

fn reads(c: &dyn ColumnSql, cols: &[String]) -> String {
    cols.iter().map(|col| c.read(col)).collect::<Vec<_>>().join(", ")
}

/// The name of the trigger (and PostgreSQL function) of the trace of
/// deletes of `table`: `_ferry_deleted_` and the table's name, shortened
/// with a hash of it where identifiers would grow past 60 characters.
pub fn trace_name(table: &str) -> String {
    let name = format!("_ferry_deleted_{table}");
    if name.len() <= 58 {
        return name;
    }
    let head: String = table.chars().take(24).collect();
    let hash = blake3::hash(table.as_bytes()).to_hex();
    format!("_ferry_deleted_{head}_{}", &hash[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(Dialect::Sqlite.ident("Order \"x\""), "\"Order \"\"x\"\"\"");
        assert_eq!(Dialect::Mysql.ident("a`b"), "`a``b`");
    }

    #[test]
    fn a_locking_fetch_is_the_fetch_for_update_where_rows_lock() {
        let req = FetchRequest {
            table: "t".into(),
            columns: vec!["id".into(), "name".into()],
            match_columns: vec!["id".into()],
            values: vec![vec![ferry_core::Value::Int(1)]],
            flag: None,
            filter: None,
            fixed: Vec::new(),
        };
        let chunk = &req.values[..];
        for d in [Dialect::Postgres, Dialect::Mysql] {
            let (sql, params) = d.fetch(&req, chunk, &Plain(d));
            assert_eq!(
                d.fetch_for_update(&req, chunk, &Plain(d)),
                (format!("{sql} FOR UPDATE"), params)
            );
        }
        // SQLite's write transaction already keeps other writers out.
        let s = Dialect::Sqlite;
        assert_eq!(
            s.fetch_for_update(&req, chunk, &Plain(s)),
            s.fetch(&req, chunk, &Plain(s))
        );
    }

    #[test]
    fn builds_statements() {
        let cols = vec!["id".to_string(), "name".to_string()];
        assert_eq!(
            Dialect::Postgres.insert("t", &cols, 2, &Plain(Dialect::Postgres)),
            "INSERT INTO \"t\" (\"id\", \"name\") OVERRIDING SYSTEM VALUE VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            Dialect::Sqlite.update("t", &cols[..1], &cols[1..], &Plain(Dialect::Sqlite)),
            "UPDATE \"t\" SET \"name\" = ?1 WHERE \"id\" = ?2"
        );
    }

    #[test]
    fn postgres_writes_many_rows_as_one_array_per_column() {
        struct Cast;
        impl ColumnSql for Cast {
            fn dialect(&self) -> Dialect {
                Dialect::Postgres
            }
            fn param(&self, col: &str, placeholder: String) -> String {
                if col == "id" {
                    format!("{placeholder}::bigint")
                } else {
                    placeholder
                }
            }
        }
        let (key, set) = (vec!["id".to_string()], vec!["name".to_string()]);
        let cols = vec!["id".to_string(), "name".to_string()];
        let d = Dialect::Postgres;
        let rows = "SELECT _ferry_u._ferry_0::bigint AS _ferry_0, _ferry_u._ferry_1 AS _ferry_1 \
                    FROM UNNEST($1::text[], $2::text[]) AS _ferry_u (_ferry_0, _ferry_1)";
        assert_eq!(
            d.insert_unnest("t", &cols, &Cast),
            format!("INSERT INTO \"t\" (\"id\", \"name\") OVERRIDING SYSTEM VALUE {rows}")
        );
        assert_eq!(
            d.upsert_unnest("t", &key, &cols, &Cast),
            format!(
                "INSERT INTO \"t\" (\"id\", \"name\") OVERRIDING SYSTEM VALUE {rows} \
                 ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\""
            )
        );
        assert_eq!(
            d.update_unnest("t", &key, &set, &Cast),
            "UPDATE \"t\" SET \"name\" = _ferry_v._ferry_0 FROM (SELECT _ferry_u._ferry_0 AS _ferry_0, \
             _ferry_u._ferry_1::bigint AS _ferry_1 FROM UNNEST($1::text[], $2::text[]) AS _ferry_u (_ferry_0, _ferry_1)) \
             AS _ferry_v WHERE \"t\".\"id\" = _ferry_v._ferry_1"
        );
        assert_eq!(
            d.delete_unnest("t", &key, &Cast),
            "DELETE FROM \"t\" USING (SELECT _ferry_u._ferry_0::bigint AS _ferry_0 FROM UNNEST($1::text[]) \
             AS _ferry_u (_ferry_0)) AS _ferry_v WHERE \"t\".\"id\" = _ferry_v._ferry_0"
        );
    }

    #[test]
    fn multi_row_updates_take_each_rows_set_values_then_its_key() {
        let (key, set) = (vec!["id".to_string()], vec!["name".to_string()]);
        assert_eq!(
            Dialect::Mysql.update_many("t", &key, &set, 2, &Plain(Dialect::Mysql)),
            "UPDATE `t` JOIN (SELECT ? AS _ferry_0, ? AS _ferry_1 UNION ALL SELECT ?, ?) AS _ferry_v ON `t`.`id` = _ferry_v._ferry_1 SET `t`.`name` = _ferry_v._ferry_0"
        );
        // One row, and SQLite always, get the plain statement.
        assert_eq!(
            Dialect::Postgres.update_many("t", &key, &set, 1, &Plain(Dialect::Postgres)),
            Dialect::Postgres.update("t", &key, &set, &Plain(Dialect::Postgres))
        );
        assert_eq!(
            Dialect::Sqlite.update_many("t", &key, &set, 5, &Plain(Dialect::Sqlite)),
            Dialect::Sqlite.update("t", &key, &set, &Plain(Dialect::Sqlite))
        );
    }
}
