//! Throw-away databases for the conformance suite, one per test and
//! backend, and the fixture tables every backend is checked against.
//!
//! The databases, the server URLs (`FERRY_TEST_POSTGRES_URL` /
//! `FERRY_TEST_MYSQL_URL` / `FERRY_TEST_MONGODB_URL`) and the skip policy come from the shared
//! `ferry-testdb` crate: without a variable a test prints a `SKIP` line and
//! passes; with `CI=true` a missing variable or an unreachable server fails
//! it.

use std::sync::Arc;

use ferry_db::Store;
use ferry_testdb::{Database, Engine};

/// The backends every [`Store`] implementation of this crate is run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mariadb,
    /// A `dir:` folder. Its fixture is laid out by SQL in an SQLite mirror
    /// and exported into the folder ([`Db::exec`] does the same), since a
    /// folder runs no SQL.
    Dir,
    /// A MongoDB database (`FERRY_TEST_MONGODB_URL`). Its fixture is the
    /// three collections, empty, with unique indexes where the SQL fixture
    /// has keys and unique constraints (documents declare no columns, so a
    /// duplicate is refused by an index); rows go in as documents
    /// ([`Db::words`]). It runs the shared checks whose behaviour applies
    /// (see `main.rs`) and its own (`cases_mongo.rs`).
    Mongo,
}

impl Backend {
    fn engine(self) -> Engine {
        match self {
            Backend::Sqlite => Engine::Sqlite,
            Backend::Postgres => Engine::Postgres,
            Backend::Mariadb => Engine::Mariadb,
            Backend::Dir => Engine::Sqlite,
            Backend::Mongo => Engine::Mongo,
        }
    }
}

/// One throw-away database, dropped with its guard.
pub struct Db {
    pub backend: Backend,
    /// The URL a store opens (`sqlite://PATH` for SQLite).
    pub url: String,
    db: Database,
    /// `Dir`: the folder (the SQLite file is its mirror).
    folder: Option<tempfile::TempDir>,
}

impl Db {
    /// An empty database with the fixture tables; `None` after a SKIP line.
    pub async fn create(backend: Backend, test: &str) -> Option<Db> {
        let db = Database::create(backend.engine(), &format!("conformance::{test}"), "c")?;
        let folder = (backend == Backend::Dir).then(|| tempfile::tempdir().expect("temporary folder"));
        let url = match &folder {
            Some(f) => format!("dir:{}", f.path().join("content").display()),
            None => db.url.clone(),
        };
        let db = Db {
            backend,
            url,
            db,
            folder,
        };
        if backend == Backend::Mongo {
            let m = db.db.mongo().await;
            for c in ["parent", "item", "word"] {
                m.create_collection(c).await.expect("create a collection");
            }
            // The SQL fixture's keys and unique constraints, as unique
            // indexes of the documents that hold their fields (MongoDB's own
            // checks put documents of other shapes in these collections).
            let unique: [(&str, mongodb::bson::Document); 5] = [
                ("parent", mongodb::bson::doc! { "id": 1 }),
                ("parent", mongodb::bson::doc! { "name": 1 }),
                ("item", mongodb::bson::doc! { "id": 1 }),
                ("item", mongodb::bson::doc! { "parent_id": 1, "label": 1 }),
                ("word", mongodb::bson::doc! { "k": 1, "n": 1 }),
            ];
            for (c, keys) in unique {
                let mut held = mongodb::bson::Document::new();
                for field in keys.keys() {
                    held.insert(field.clone(), mongodb::bson::doc! { "$exists": true });
                }
                let options = mongodb::options::IndexOptions::builder()
                    .unique(true)
                    .partial_filter_expression(held)
                    .build();
                let index = mongodb::IndexModel::builder().keys(keys).options(options).build();
                m.collection::<mongodb::bson::Document>(c)
                    .create_index(index)
                    .await
                    .unwrap_or_else(|e| panic!("a unique index on {c}: {e}"));
            }
        } else {
            db.exec(&fixture(backend)).await;
        }
        Some(db)
    }

    /// Puts rows `(k, n, v)` into the fixture table `word`, outside any
    /// store: SQL `INSERT` (a `None` is NULL), or documents for MongoDB (a
    /// `None` is an absent field, as the store writes it; `n` an int32 when
    /// it fits, Ferry's form of a small integer).
    pub async fn words(&self, rows: &[(String, i64, Option<String>)]) {
        if self.backend == Backend::Mongo {
            let docs: Vec<mongodb::bson::Document> = rows
                .iter()
                .map(|(k, n, v)| {
                    let mut d = mongodb::bson::doc! { "k": k.as_str() };
                    match i32::try_from(*n) {
                        Ok(small) => d.insert("n", small),
                        Err(_) => d.insert("n", *n),
                    };
                    if let Some(v) = v {
                        d.insert("v", v.as_str());
                    }
                    d
                })
                .collect();
            self.db
                .mongo()
                .await
                .collection::<mongodb::bson::Document>("word")
                .insert_many(docs)
                .await
                .expect("insert the words");
            return;
        }
        let quote = |t: &str| format!("'{}'", t.replace('\'', "''"));
        let values: Vec<String> = rows
            .iter()
            .map(|(k, n, v)| format!("({}, {n}, {})", quote(k), v.as_deref().map_or("NULL".into(), quote)))
            .collect();
        self.exec(&format!("INSERT INTO word (k, n, v) VALUES {}", values.join(", ")))
            .await;
    }

    /// The driver's handle on a MongoDB database.
    pub async fn mongo(&self) -> mongodb::Database {
        self.db.mongo().await
    }

    /// Every document of a collection as its BSON bytes, by `_id`.
    pub async fn raw_docs(&self, coll: &str) -> Vec<Vec<u8>> {
        self.db.raw_docs(coll).await
    }

    /// Opens a store on the database, as environment `env`, through the
    /// backend registry (as a project does).
    pub async fn open(&self, env: &str) -> Arc<dyn Store> {
        let opening = ferry_db::registry::Opening {
            env,
            url: &self.url,
            base_dir: std::path::Path::new("/"),
        };
        ferry_db::registry::open(opening)
            .await
            .unwrap_or_else(|| panic!("no backend opens {}", self.url))
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.backend))
    }

    /// Runs SQL (several statements allowed) outside any store.
    /// `Dir`: runs it in the SQLite mirror and exports the fixture tables
    /// into the folder again (so rows written through the store before are
    /// replaced); the one change the suite makes to Ferry's own records
    /// (`counts = 'zero'`, a damaged record) is made in the files.
    pub async fn exec(&self, sql: &str) {
        if self.backend == Backend::Mongo {
            assert!(
                sql.starts_with("UPDATE _ferry_promotions SET counts = 'zero'"),
                "MongoDB runs no SQL: {sql}"
            );
            let m = self.db.mongo().await;
            m.collection::<mongodb::bson::Document>("_ferry_promotions")
                .update_many(
                    mongodb::bson::doc! {},
                    mongodb::bson::doc! { "$set": { "counts": "zero" } },
                )
                .await
                .expect("damage the records");
            return;
        }
        let Some(folder) = &self.folder else {
            return self.db.exec(sql).await;
        };
        let root = folder.path().join("content");
        if sql.starts_with("UPDATE _ferry_promotions SET counts = 'zero'") {
            for e in std::fs::read_dir(root.join("_ferry/promotions")).expect("promotions") {
                let path = e.expect("entry").path();
                let text = std::fs::read_to_string(&path).expect("read");
                let text: String = text
                    .lines()
                    .map(|l| {
                        if l.starts_with("  \"counts\": ") {
                            "  \"counts\": \"zero\",".to_string()
                        } else {
                            l.to_string()
                        }
                    })
                    .map(|l| l + "\n")
                    .collect();
                std::fs::write(&path, text).expect("write");
            }
            return;
        }
        self.db.exec(sql).await;
        let opening = ferry_db::registry::Opening {
            env: "mirror",
            url: &self.db.url,
            base_dir: std::path::Path::new("/"),
        };
        let mirror = ferry_db::registry::open(opening)
            .await
            .expect("sqlite")
            .expect("open the mirror");
        let mut tables = Vec::new();
        for name in ["parent", "item", "word"] {
            let schema = mirror.table_schema(name).await.expect("schema").expect("fixture table");
            let columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
            let req = ferry_db::ScanRequest {
                table: name.into(),
                columns,
                order_by: schema.primary_key.clone(),
                filter: None,
                flag: None,
                descending: false,
                limit: None,
            };
            let mut rx = mirror.scan(req).await.expect("scan");
            let mut rows = Vec::new();
            while let Some(batch) = rx.recv().await {
                for r in batch.expect("batch") {
                    let row = r
                        .iter()
                        .zip(&schema.columns)
                        .map(|(v, c)| ferry_core::value::convert(v, &c.ty).expect("canonical"))
                        .collect();
                    rows.push(row);
                }
            }
            tables.push(ferry_db::dir::ExportTable { schema, rows });
        }
        ferry_db::dir::export("conf", &root, tables)
            .await
            .expect("export the fixture");
    }
}

/// The fixture, in each backend's DDL:
/// - `parent`: a generated key and a unique name;
/// - `item`: a plain integer key, a foreign key to `parent`, a unique pair,
///   and one column of each kind the suite writes;
/// - `word`: a two-column key whose text part sorts differently by bytes
///   than by the server's default collation (MariaDB: case-insensitive).
fn fixture(backend: Backend) -> String {
    match backend {
        Backend::Sqlite | Backend::Dir => "\
            CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL UNIQUE);
            CREATE TABLE item (id INT PRIMARY KEY, parent_id INT REFERENCES parent (id), \
                label VARCHAR(40) NOT NULL, price NUMERIC(10,2), active BOOLEAN, data BLOB, note TEXT, \
                UNIQUE (parent_id, label));
            CREATE TABLE word (k VARCHAR(20) NOT NULL, n INTEGER NOT NULL, v TEXT, PRIMARY KEY (k, n));"
            .into(),
        Backend::Postgres => "\
            CREATE TABLE parent (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name VARCHAR(40) NOT NULL UNIQUE);
            CREATE TABLE item (id INT PRIMARY KEY, parent_id BIGINT REFERENCES parent (id), \
                label VARCHAR(40) NOT NULL, price NUMERIC(10,2), active BOOLEAN, data BYTEA, note TEXT, \
                UNIQUE (parent_id, label));
            CREATE TABLE word (k VARCHAR(20) NOT NULL, n INTEGER NOT NULL, v TEXT, PRIMARY KEY (k, n));"
            .into(),
        Backend::Mongo => String::new(),
        Backend::Mariadb => "\
            CREATE TABLE parent (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL UNIQUE) ENGINE=InnoDB;
            CREATE TABLE item (id INT PRIMARY KEY, parent_id BIGINT, \
                label VARCHAR(40) NOT NULL, price DECIMAL(10,2), active BOOLEAN, data VARBINARY(64), note TEXT, \
                UNIQUE (parent_id, label), FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE=InnoDB;
            CREATE TABLE word (k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL, \
                n INT NOT NULL, v TEXT, PRIMARY KEY (k, n)) ENGINE=InnoDB;"
            .into(),
    }
}
