//! The workload's five tables (`shared/workloads/README.md`), their types
//! per engine, and the `ferry.toml` over them.

use std::fmt;

/// How a column's values are generated, stored and compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    /// A JSON document (text on SQLite, `jsonb` on PostgreSQL, `JSON` on MariaDB).
    Json,
    Blob,
    /// A timestamp to the second (text on SQLite).
    Ts,
}

#[derive(Clone, Copy, Debug)]
pub struct Col {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
    pub unique: bool,
    /// The referenced table (a foreign key on its `id`).
    pub refs: Option<&'static str>,
}

const fn col(name: &'static str, kind: Kind) -> Col {
    Col {
        name,
        kind,
        nullable: false,
        unique: false,
        refs: None,
    }
}

const fn null(name: &'static str, kind: Kind) -> Col {
    Col {
        nullable: true,
        ..col(name, kind)
    }
}

const fn unique(name: &'static str) -> Col {
    Col {
        unique: true,
        ..col(name, Kind::Text)
    }
}

const fn fk(name: &'static str, table: &'static str) -> Col {
    Col {
        refs: Some(table),
        ..col(name, Kind::Int)
    }
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub cols: &'static [Col],
}

impl Table {
    pub fn col_index(&self, name: &str) -> usize {
        self.cols
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("{}.{name}: no such column", self.name))
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.cols.iter().map(|c| c.name).collect()
    }
}

pub const CITIES: usize = 0;
pub const PARTNERS: usize = 1;
pub const BUSINESSES: usize = 2;
pub const FORMS: usize = 3;
pub const FIELDS: usize = 4;

/// Parents first; `id` is always the first column.
pub static TABLES: [Table; 5] = [
    Table {
        name: "cities",
        cols: &[
            col("id", Kind::Int),
            unique("name"),
            col("country", Kind::Text),
            col("modified_at", Kind::Ts),
        ],
    },
    Table {
        name: "partners",
        cols: &[
            col("id", Kind::Int),
            unique("name"),
            fk("city_id", "cities"),
            col("modified_at", Kind::Ts),
        ],
    },
    Table {
        name: "businesses",
        cols: &[
            col("id", Kind::Int),
            col("name", Kind::Text),
            fk("partner_id", "partners"),
            fk("city_id", "cities"),
            col("config", Kind::Json),
            null("icon", Kind::Blob),
            col("modified_at", Kind::Ts),
        ],
    },
    Table {
        name: "forms",
        cols: &[
            col("id", Kind::Int),
            fk("business_id", "businesses"),
            col("title", Kind::Text),
            col("modified_at", Kind::Ts),
        ],
    },
    Table {
        name: "form_fields",
        cols: &[
            col("id", Kind::Int),
            fk("form_id", "forms"),
            col("label", Kind::Text),
            col("kind", Kind::Text),
            col("position", Kind::Int),
            null("options", Kind::Json),
            col("modified_at", Kind::Ts),
        ],
    },
];

pub fn table_index(name: &str) -> usize {
    TABLES
        .iter()
        .position(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name}: not a workload table"))
}

/// The engines: three SQL ones, and MongoDB (the workload as documents,
/// run only when asked for with `--engines mongodb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
    Mongo,
}

impl Engine {
    /// The engines run by default (the SQL ones).
    pub const ALL: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::Mysql];

    /// The variable holding the server URL (`None` for SQLite).
    pub fn var(self) -> Option<&'static str> {
        match self {
            Engine::Sqlite => None,
            Engine::Postgres => Some("FERRY_TEST_POSTGRES_URL"),
            Engine::Mysql => Some("FERRY_TEST_MYSQL_URL"),
            Engine::Mongo => Some("FERRY_TEST_MONGODB_URL"),
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
            Engine::Mongo => "mongodb",
        }
    }

    pub fn parse(s: &str) -> Option<Engine> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" => Some(Engine::Sqlite),
            "postgres" | "postgresql" | "pg" => Some(Engine::Postgres),
            "mysql" | "mariadb" => Some(Engine::Mysql),
            "mongodb" | "mongo" => Some(Engine::Mongo),
            _ => None,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
            Engine::Mysql => "MariaDB",
            Engine::Mongo => "MongoDB",
        })
    }
}

fn col_type(engine: Engine, c: &Col) -> &'static str {
    match (engine, c.kind) {
        (Engine::Sqlite, Kind::Int) => "INTEGER",
        (Engine::Sqlite, Kind::Blob) => "BLOB",
        (Engine::Sqlite, _) => "TEXT",
        (Engine::Postgres, Kind::Int) => "bigint",
        (Engine::Postgres, Kind::Text) => "text",
        (Engine::Postgres, Kind::Json) => "jsonb",
        (Engine::Postgres, Kind::Blob) => "bytea",
        (Engine::Postgres, Kind::Ts) => "timestamp",
        (Engine::Mysql, Kind::Int) => "BIGINT",
        (Engine::Mysql, Kind::Text) => "VARCHAR(255)",
        (Engine::Mysql, Kind::Json) => "JSON",
        (Engine::Mysql, Kind::Blob) => "BLOB",
        (Engine::Mysql, Kind::Ts) => "DATETIME",
        // Documents have no declared types (see `mongo.rs`).
        (Engine::Mongo, _) => "field",
    }
}

/// Whether the tables declare `changed = "modified_at"` (`--changed`):
/// then `modified_at` is indexed too, as `changed` wants. One setting per
/// benchmark process, read wherever the schema is made (a MariaDB copy
/// makes it again).
static CHANGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets the `--changed` mode for this process (see [`CHANGED`]).
pub fn set_changed(on: bool) {
    CHANGED.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// Whether the tables also declare `track_deletes = true`
/// (`--track-deletes`, with `--changed`).
static TRACK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets the `--track-deletes` mode for this process (see [`TRACK`]).
pub fn set_track_deletes(on: bool) {
    TRACK.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// Whether this process runs the `--track-deletes` mode.
pub fn track_deletes() -> bool {
    TRACK.load(std::sync::atomic::Ordering::SeqCst)
}

/// Whether this process runs the `--changed` mode.
pub fn changed() -> bool {
    CHANGED.load(std::sync::atomic::Ordering::SeqCst)
}

/// `CREATE TABLE` and the indexes on its foreign-key columns (and, with
/// `--changed`, on `modified_at`).
pub fn ddl(engine: Engine, t: &Table) -> Vec<String> {
    let mut defs = Vec::new();
    for (i, c) in t.cols.iter().enumerate() {
        let mut d = format!("{} {}", c.name, col_type(engine, c));
        if i == 0 {
            d.push_str(" PRIMARY KEY");
        } else if !c.nullable {
            d.push_str(" NOT NULL");
        }
        if c.unique && engine != Engine::Mysql {
            d.push_str(" UNIQUE");
        }
        if let (Some(r), false) = (c.refs, engine == Engine::Mysql) {
            d.push_str(&format!(" REFERENCES {r}(id)"));
        }
        defs.push(d);
    }
    if engine == Engine::Mysql {
        for c in t.cols.iter().filter(|c| c.unique) {
            defs.push(format!("UNIQUE KEY {}_{}_key ({})", t.name, c.name, c.name));
        }
    }
    let tail = if engine == Engine::Mysql {
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    } else {
        ""
    };
    let mut out = vec![format!("CREATE TABLE {} ({}){tail}", t.name, defs.join(", "))];
    if changed() && engine != Engine::Mysql {
        out.push(format!("CREATE INDEX {0}_modified_at_idx ON {0} (modified_at)", t.name));
    }
    if engine != Engine::Mysql {
        for c in t.cols.iter().filter(|c| c.refs.is_some()) {
            out.push(format!(
                "CREATE INDEX {}_{}_idx ON {} ({})",
                t.name, c.name, t.name, c.name
            ));
        }
    }
    out
}

/// What [`ddl`] leaves for after the rows are in: on MariaDB, the indexes
/// on the foreign-key columns (and on `modified_at`) and the foreign keys,
/// in one `ALTER TABLE` per table, run with `FOREIGN_KEY_CHECKS = 0` (the
/// rows come from a database that had them). InnoDB then builds each index
/// sorted, once, instead of inserting a million keys at random into an
/// index larger than its buffer pool: at S=10 the load took hours. The
/// other engines create them with the table.
pub fn ddl_after_load(engine: Engine, t: &Table) -> Vec<String> {
    if engine != Engine::Mysql {
        return Vec::new();
    }
    let mut adds = Vec::new();
    for c in t.cols {
        if let Some(r) = c.refs {
            adds.push(format!("ADD KEY {}_{}_idx ({})", t.name, c.name, c.name));
            adds.push(format!(
                "ADD CONSTRAINT {}_{}_fk FOREIGN KEY ({}) REFERENCES {r}(id)",
                t.name, c.name, c.name
            ));
        }
    }
    if changed() {
        adds.push(format!("ADD KEY {}_modified_at_idx (modified_at)", t.name));
    }
    if adds.is_empty() {
        return Vec::new();
    }
    vec![format!("ALTER TABLE {} {}", t.name, adds.join(", "))]
}

/// The variables the benchmark's `ferry.toml` reads its URLs from.
pub const STAGING_VAR: &str = "FERRY_BENCH_STAGING_URL";
pub const PRODUCTION_VAR: &str = "FERRY_BENCH_PRODUCTION_URL";

/// The workload's Ferry configuration: every table keyed by `id`,
/// `references` for every foreign key except `form_fields.form_id`, which
/// is the parent; with `--changed`, `changed = "modified_at"` on every
/// table.
pub fn ferry_toml() -> String {
    ferry_toml_for(Engine::Sqlite)
}

/// The configuration for one engine: on MongoDB every collection is keyed
/// by `_id` (the workload's id), references and the parent by field.
pub fn ferry_toml_for(engine: Engine) -> String {
    let key = if engine == Engine::Mongo { "_id" } else { "id" };
    let mut s = format!(
        "pipeline = [\"staging\", \"production\"]\n\n[environments.staging]\nurl_env = \"{STAGING_VAR}\"\n\n[environments.production]\nurl_env = \"{PRODUCTION_VAR}\"\n"
    );
    for t in &TABLES {
        s.push_str(&format!("\n[tables.{}]\nkey = [\"{key}\"]\n", t.name));
        if changed() {
            s.push_str("changed = \"modified_at\"\n");
            if track_deletes() {
                s.push_str("track_deletes = true\n");
            }
        }
        let refs: Vec<&Col> = t.cols.iter().filter(|c| c.refs.is_some()).collect();
        if t.name == "form_fields" {
            s.push_str("parent = { form_id = \"forms\" }\n");
        } else if !refs.is_empty() {
            let list: Vec<String> = refs
                .iter()
                .map(|c| format!("{} = \"{}\"", c.name, c.refs.unwrap_or_default()))
                .collect();
            s.push_str(&format!("references = {{ {} }}\n", list.join(", ")));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_parses() {
        let c = ferry_core::config::parse(&ferry_toml(), std::path::Path::new("/x/ferry.toml")).unwrap();
        assert_eq!(c.tables.len(), 5);
        assert_eq!(
            c.tables["form_fields"].parent,
            Some(("form_id".to_string(), "forms".to_string()))
        );
        assert_eq!(c.tables["businesses"].references.len(), 2);
    }

    #[test]
    fn ddl_declares_keys_and_indexes() {
        let pg = ddl(Engine::Postgres, &TABLES[BUSINESSES]);
        assert!(pg[0].contains("config jsonb NOT NULL"), "{pg:?}");
        assert_eq!(pg.len(), 3);
        let my = ddl(Engine::Mysql, &TABLES[CITIES]);
        assert!(my[0].contains("UNIQUE KEY"), "{my:?}");
        assert!(my[0].contains("utf8mb4_bin"), "{my:?}");
        // MariaDB's foreign keys and their indexes come after the load.
        let my = ddl(Engine::Mysql, &TABLES[BUSINESSES]);
        assert!(!my[0].contains("FOREIGN KEY"), "{my:?}");
        let after = ddl_after_load(Engine::Mysql, &TABLES[BUSINESSES]);
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(after[0]
            .contains("ADD CONSTRAINT businesses_partner_id_fk FOREIGN KEY (partner_id) REFERENCES partners(id)"));
        assert!(after[0].contains("ADD KEY businesses_city_id_idx (city_id)"));
        assert!(ddl_after_load(Engine::Postgres, &TABLES[BUSINESSES]).is_empty());
    }
}
