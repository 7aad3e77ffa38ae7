//! Every type people use in admin data, promoted between every ordered
//! pair of engines (same-engine pairs included), exactly.
//!
//! [`columns`] is the table a reader checks the mapping in: per column, the
//! natural type on SQLite, PostgreSQL and MariaDB, the logical type its
//! values mean, and one value per row (a fifth row holds NULL in every
//! column). Each test inserts the rows into the source with plain SQL
//! literals, promotes them into an empty target of the same schema, and
//! checks that (i) a new plan is empty, (ii) the values read back through
//! the target's store mean exactly what was inserted, and (iii) revert
//! restores the target. It then changes every row (value -> other value,
//! value -> NULL, NULL -> value), promotes the updates, checks again, and
//! reverts both promotions.

use ferry_core::canonical::encode_value;
use ferry_core::selection::Selection;
use ferry_core::value::{convert, ColumnType, LogicalType, Value};

use super::support::{pair_name, read, summary, Eng, World};

/// What a column's values mean, whatever the engine stores them as.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Decimal,
    Float,
    /// Single precision: the values are what a 4-byte float keeps.
    Float4,
    Bool,
    Text,
    Bytes,
    Json,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
}

impl Kind {
    fn ty(self) -> ColumnType {
        let mut t = ColumnType::new(match self {
            Kind::Int => LogicalType::Int,
            Kind::Decimal => LogicalType::Decimal,
            Kind::Float | Kind::Float4 => LogicalType::Float,
            Kind::Bool => LogicalType::Bool,
            Kind::Text => LogicalType::Text,
            Kind::Bytes => LogicalType::Bytes,
            Kind::Json => LogicalType::Json,
            Kind::Date => LogicalType::Date,
            Kind::Time => LogicalType::Time,
            Kind::Timestamp => LogicalType::Timestamp,
            Kind::TimestampTz => LogicalType::TimestampTz,
            Kind::Uuid => LogicalType::Uuid,
        });
        if let Kind::Float4 = self {
            t.float_bits = Some(32);
        }
        t
    }
}

/// One column: its type per engine, what it means, and a value per row.
pub(super) struct Col {
    pub(super) name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    mariadb: &'static str,
    kind: Kind,
    values: [Value; 4],
}

impl Col {
    fn declared(&self, eng: Eng) -> &'static str {
        match eng {
            Eng::Sqlite => self.sqlite,
            Eng::Postgres => self.postgres,
            Eng::Mysql => self.mariadb,
        }
    }
}

fn int(i: i64) -> Value {
    Value::Int(i)
}
fn dec(s: &str) -> Value {
    Value::Decimal(s.into())
}
fn float(f: f64) -> Value {
    Value::Float(f)
}
fn boolean(b: bool) -> Value {
    Value::Bool(b)
}
/// Text as written in the SQL literal (also JSON, dates, times, UUIDs).
fn t(s: &str) -> Value {
    Value::Text(s.into())
}
fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// The mapping table.
#[rustfmt::skip]
pub(super) fn columns() -> Vec<Col> {
    use Kind::*;
    let c = |name, sqlite, postgres, mariadb, kind, values| Col { name, sqlite, postgres, mariadb, kind, values };
    vec![
        //  column      SQLite            PostgreSQL          MariaDB            meaning
        c("i8",        "TINYINT",        "smallint",         "tinyint",         Int, [int(-128), int(127), int(0), int(1)]),
        c("i16",       "SMALLINT",       "smallint",         "smallint",        Int, [int(-32768), int(32767), int(0), int(-1)]),
        c("i24",       "MEDIUMINT",      "integer",          "mediumint",       Int, [int(-8_388_608), int(8_388_607), int(0), int(42)]),
        c("i32",       "INTEGER",        "integer",          "int",             Int, [int(i32::MIN.into()), int(i32::MAX.into()), int(0), int(7)]),
        c("i64",       "BIGINT",         "bigint",           "bigint",          Int, [int(i64::MIN), int(i64::MAX), int(0), int(-7)]),
        c("yr",        "INTEGER",        "smallint",         "year",            Int, [int(1901), int(2155), int(2024), int(2000)]),
        c("u32",       "INTEGER",        "bigint",           "int unsigned",    Int, [int(0), int(4_294_967_295), int(1), int(2_147_483_648)]),
        // Beyond i64: a decimal everywhere; SQLite keeps it exact only as TEXT.
        c("u64",       "TEXT",           "numeric(20,0)",    "bigint unsigned", Decimal, [dec("0"), dec("18446744073709551615"), dec("9223372036854775808"), dec("1")]),
        // 40 significant digits, beyond rust_decimal (28): kept as text.
        c("dec_big",   "TEXT",           "numeric(40,20)",   "decimal(40,20)",  Decimal, [
            dec("12345678901234567890.12345678901234567890"),
            dec("-99999999999999999999.99999999999999999999"),
            dec("0.00000000000000000001"),
            dec("0"),
        ]),
        c("dec",       "DECIMAL(12,2)",  "numeric(12,2)",    "decimal(12,2)",   Decimal, [dec("1234567890.12"), dec("-0.01"), dec("0"), dec("9999999999.99")]),
        c("f64",       "REAL",           "double precision", "double",          Float, [float(0.1), float(-1.797_693_134_862_315_7e308), float(2.225_073_858_507_201_4e-308), float(1.0)]),
        c("f32",       "FLOAT",          "real",             "float",           Float4, [float(1.1), float(3.402_823_4e38), float(16_777_217.0), float(-0.5)]),
        c("flag",      "BOOLEAN",        "boolean",          "tinyint(1)",      Bool, [boolean(true), boolean(false), boolean(true), boolean(false)]),
        c("body",      "TEXT",           "text",             "text",            Text, [
            t("🦀 crab, 𝄞 clef, 👩‍👩‍👧 family"),
            t("中文 日本語 한국어"),
            t("it's \"quoted\"; back\\slash \\n\nnew line\r\n\ttab"),
            t("NULL"),
        ]),
        c("label",     "VARCHAR(50)",    "varchar(50)",      "varchar(50)",     Text, [t("🦀🦀🦀"), t(""), t("NULL"), t("x' OR '1'='1")]),
        // Shorter than the column: PostgreSQL pads it, and reads it back unpadded.
        c("code",      "CHAR(3)",        "char(3)",          "char(3)",         Text, [t("FRA"), t("日本語"), t("ab"), t("a\\b")]),
        // Key order and spacing differ between rows 1 and 2; jsonb reorders keys.
        c("doc",       "JSON",           "jsonb",            "json",            Json, [
            t(r#"{"b": 1, "a": {"z": [1, 2.5, {"y": null}], "x": "é🦀"}}"#),
            t(r#"{"a":{"x":"é🦀","z":[1,2.5,{"y":null}]},"b":1}"#),
            t("null"),
            t(r#"[1, "two", {"3": [true, false]}, "quote \" and \\ backslash"]"#),
        ]),
        c("doc_text",  "JSON",           "json",             "json",            Json, [t(r#"{"z": 1, "a": 2}"#), t("[]"), t("{}"), t(r#""just a string""#)]),
        c("icon",      "BLOB",           "bytea",            "blob",            Bytes, [bytes(&[0x00, 0xff, 0x00, 0x7f, 0x80]), bytes(&[]), bytes(b"NULL"), bytes(&[0xde, 0xad, 0xbe, 0xef, 0x00])]),
        c("day",       "DATE",           "date",             "date",            Date, [t("2024-02-29"), t("1000-01-01"), t("9999-12-31"), t("1970-01-01")]),
        c("at_time",   "TIME",           "time",             "time(6)",         Time, [t("00:00:00"), t("23:59:59.999999"), t("12:34:56.5"), t("08:00:00.000001")]),
        c("at",        "DATETIME",       "timestamp",        "datetime(6)",     Timestamp, [
            t("2024-02-29 23:59:59.123456"),
            t("1000-01-01 00:00:00"),
            t("9999-12-31 23:59:59.999999"),
            t("1970-01-01 00:00:00.000001"),
        ]),
        // MariaDB has no zoned type: DATETIME(6) holds the UTC wall clock.
        c("at_tz",     "TIMESTAMPTZ",    "timestamptz",      "datetime(6)",     TimestampTz, [
            t("2024-06-01 12:00:00.000001+02:00"),
            t("1970-01-01 00:00:00+00:00"),
            t("2024-12-31 23:30:00.5-05:30"),
            t("9999-12-31 23:59:59.999999+00:00"),
        ]),
        c("uid",       "TEXT",           "uuid",             "char(36)",        Uuid, [
            t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            t("00000000-0000-0000-0000-000000000000"),
            t("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            t("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12"),
        ]),
        c("mood",      "TEXT CHECK (mood IN ('happy', 'sad', 'o''k'))", "mood", "enum('happy','sad','o''k')", Text, [t("happy"), t("sad"), t("o'k"), t("happy")]),
    ]
}

pub(super) const TABLES: &str = "[tables.everything]\nkey = [\"id\"]\n";

/// Rows as (id, which value set): sets 0..=3 are the columns' values, 4 is
/// NULL everywhere.
pub(super) const ORIGINAL: [(i64, usize); 5] = [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)];
/// Every row changed: values swapped, a row nulled, a NULL row filled.
const CHANGED: [(i64, usize); 5] = [(1, 1), (2, 0), (3, 4), (4, 2), (5, 3)];

pub(super) fn schema(eng: Eng) -> String {
    let cols = columns();
    let id = match eng {
        Eng::Sqlite => "INTEGER PRIMARY KEY",
        Eng::Postgres => "integer PRIMARY KEY",
        Eng::Mysql => "int PRIMARY KEY",
    };
    let mut defs = vec![format!("{} {id}", eng.q("id"))];
    defs.extend(cols.iter().map(|c| format!("{} {}", eng.q(c.name), c.declared(eng))));
    let mut sql = String::new();
    if eng == Eng::Postgres {
        sql.push_str("CREATE TYPE mood AS ENUM ('happy', 'sad', 'o''k');\n");
    }
    sql.push_str(&format!("CREATE TABLE everything ({});", defs.join(", ")));
    sql
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn quote(eng: Eng, s: &str) -> String {
    let s = if eng == Eng::Mysql {
        s.replace('\\', "\\\\")
    } else {
        s.to_string()
    };
    format!("'{}'", s.replace('\'', "''"))
}

/// The SQL literal an application would write for `v` in a column of `kind`.
fn literal(eng: Eng, kind: Kind, v: &Value) -> String {
    if v.is_null() {
        return "NULL".into();
    }
    let canonical = meaning(kind, v);
    match (kind, v) {
        (Kind::Float | Kind::Float4, Value::Float(f)) => format!("{f:e}"),
        (Kind::Int, _) => canonical.display_text(),
        // Quoted: an SQLite TEXT column keeps the digits exactly.
        (Kind::Decimal, _) => quote(eng, &canonical.display_text()),
        (Kind::Bool, Value::Bool(b)) => if *b { "TRUE" } else { "FALSE" }.into(),
        (Kind::Bytes, Value::Bytes(b)) if eng == Eng::Postgres => format!("'\\x{}'", hex(b)),
        (Kind::Bytes, Value::Bytes(b)) => format!("X'{}'", hex(b)),
        (Kind::Date | Kind::Time | Kind::Timestamp, _) => quote(eng, &canonical.display_text()),
        // MariaDB DATETIME takes no zone: the application writes UTC.
        (Kind::TimestampTz, _) if eng == Eng::Mysql => quote(
            eng,
            &convert(v, &ColumnType::new(LogicalType::Timestamp))
                .expect("timestamp")
                .display_text(),
        ),
        (_, Value::Text(s)) => quote(eng, s),
        other => panic!("no literal for {other:?}"),
    }
}

/// What a value means: its canonical form in the column's logical type.
fn meaning(kind: Kind, v: &Value) -> Value {
    convert(v, &kind.ty()).unwrap_or_else(|e| panic!("test value {v:?} as {kind:?}: {e}"))
}

pub(super) fn insert_sql(eng: Eng, rows: &[(i64, usize)]) -> String {
    let cols = columns();
    let names: Vec<String> = std::iter::once("id")
        .chain(cols.iter().map(|c| c.name))
        .map(|n| eng.q(n))
        .collect();
    let tuples: Vec<String> = rows
        .iter()
        .map(|(id, set)| {
            let values: Vec<String> = std::iter::once(id.to_string())
                .chain(cols.iter().map(|c| match c.values.get(*set) {
                    Some(v) => literal(eng, c.kind, v),
                    None => "NULL".into(),
                }))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO everything ({}) VALUES {};",
        names.join(", "),
        tuples.join(",\n")
    )
}

fn same(a: &Value, b: &Value) -> bool {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    encode_value(&mut x, a);
    encode_value(&mut y, b);
    x == y
}

/// (ii) The target, read through its own store, holds exactly `rows`.
async fn check_target(w: &World, label: &str, rows: &[(i64, usize)]) {
    let cols = columns();
    let names: Vec<&str> = std::iter::once("id").chain(cols.iter().map(|c| c.name)).collect();
    let pair = w.reader().await;
    let got = read(&*pair.target, "everything", &names).await;
    let ids: Vec<Value> = got.iter().map(|r| r[0].clone()).collect();
    let want_ids: Vec<Value> = rows.iter().map(|(id, _)| Value::Int(*id)).collect();
    assert_eq!(ids, want_ids, "{label}: the target's rows");
    let mut wrong = Vec::new();
    for (row, (id, set)) in got.iter().zip(rows) {
        for (i, c) in cols.iter().enumerate() {
            let want = c.values.get(*set).map_or(Value::Null, |v| meaning(c.kind, v));
            let have = convert(&row[i + 1], &c.kind.ty())
                .unwrap_or_else(|e| panic!("{label}: id {id}, column {}: {e}", c.name));
            if !same(&have, &want) {
                wrong.push(format!(
                    "  id {id}, column {} ({}): expected {want:?}, the target holds {have:?} (read as {:?})",
                    c.name,
                    c.declared(pair_target(w)),
                    row[i + 1]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{label}: values read back from the target differ:\n{}",
        wrong.join("\n")
    );
}

fn pair_target(w: &World) -> Eng {
    w.db("target").eng
}

/// (i) Nothing left to promote: the promoted rows compare equal.
async fn assert_converged(w: &World, label: &str) {
    let plan = w.plan("source", "target", &Selection::default()).await;
    let details: Vec<String> = plan
        .entries
        .iter()
        .map(|e| {
            let fields: Vec<String> = e
                .fields
                .iter()
                .map(|f| format!("{}: source {:?} target {:?}", f.column, f.source, f.target))
                .collect();
            format!("{} {}", super::support::entry_summary(e), fields.join("; "))
        })
        .collect();
    assert!(
        plan.entries.is_empty(),
        "{label}: promoted rows are proposed again:\n{}",
        details.join("\n")
    );
}

async fn round_trip(from: Eng, to: Eng) {
    let name = pair_name(from, to);
    let test = format!("round_trip::{name}");
    let Some(w) = World::new(&test, &[("source", from), ("target", to)], |_, eng| schema(eng), TABLES).await else {
        return;
    };
    let source = w.db("source");
    source.exec(&insert_sql(from, &ORIGINAL)).await;

    // Into an empty target.
    let (plan, done) = w.promote_all("source", "target").await;
    assert_eq!(plan.counts().insert, 5, "{name}: {:?}", summary(&plan));
    let first = done.expect("the first promotion writes");
    assert_converged(&w, &format!("{name}, after the insert")).await;
    check_target(&w, &format!("{name}, after the insert"), &ORIGINAL).await;

    // Every row changed.
    source.exec("DELETE FROM everything;").await;
    source.exec(&insert_sql(from, &CHANGED)).await;
    let (plan, done) = w.promote_all("source", "target").await;
    assert_eq!(plan.counts().update, 5, "{name}: {:?}", summary(&plan));
    let second = done.expect("the second promotion writes");
    assert_converged(&w, &format!("{name}, after the update")).await;
    check_target(&w, &format!("{name}, after the update"), &CHANGED).await;

    // (iii) Revert restores the before-images of every type, then the empty table.
    w.revert(&second.id).await;
    check_target(&w, &format!("{name}, after reverting the update"), &ORIGINAL).await;
    w.revert(&first.id).await;
    check_target(&w, &format!("{name}, after reverting the insert"), &[]).await;
}

macro_rules! pairs {
    ($($name:ident: $from:expr => $to:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            round_trip($from, $to).await;
        }
    )*};
}

pairs! {
    sqlite_to_sqlite: Eng::Sqlite => Eng::Sqlite;
    sqlite_to_postgres: Eng::Sqlite => Eng::Postgres;
    sqlite_to_mariadb: Eng::Sqlite => Eng::Mysql;
    postgres_to_sqlite: Eng::Postgres => Eng::Sqlite;
    postgres_to_postgres: Eng::Postgres => Eng::Postgres;
    postgres_to_mariadb: Eng::Postgres => Eng::Mysql;
    mariadb_to_sqlite: Eng::Mysql => Eng::Sqlite;
    mariadb_to_postgres: Eng::Mysql => Eng::Postgres;
    mariadb_to_mariadb: Eng::Mysql => Eng::Mysql;
}
