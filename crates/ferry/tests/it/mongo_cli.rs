//! Issue 19 through the real binary: the demo's workflow on MongoDB
//! environments (throw-away databases on the server named by
//! `FERRY_TEST_MONGODB_URL`, reached through `url_env`). A business with
//! its form and fields as documents, a reference by top-level field, QA
//! documents excluded by a filter document, emoji and every kind of value
//! byte for byte, a stamp written as a BSON date, `--id` with an ObjectId
//! in Extended JSON, a three-way conflict, a review with drafts, and a
//! revert that puts back the exact documents.
//!
//! Without the variable the tests print a `SKIP` line and pass; with
//! `CI=true` they fail.

use ferry_testdb::{Database, Engine};
use mongodb::bson::{self, doc, Bson, Document, RawDocumentBuf};
use serde_json::Value as J;

use crate::common::{run_in_with, Output};

const TEST: &str = "mongo_cli";
const BUSINESS: &str = "64b0000000000000000000a1";
const QA_SHOP: &str = "64b0000000000000000000a2";
const COLLECTIONS: [&str; 4] = ["cities", "businesses", "forms", "form_fields"];

const TABLES: &str = r#"
[tables.cities]
key = ["_id"]

[tables.businesses]
key = ["_id"]
references = { city_id = "cities" }
stamp = { modified_at = "now" }
exclude = '{"created_by_team": {"$in": ["qa", "dev"]}}'
draft = { is_published = false }

[tables.forms]
key = ["_id"]
parent = { business_id = "businesses" }

[tables.form_fields]
key = ["_id"]
parent = { form_id = "forms" }
"#;

fn oid(hex: &str) -> bson::oid::ObjectId {
    bson::oid::ObjectId::parse_str(hex).expect("an ObjectId")
}

/// Staging's documents: every BSON type in the business, a QA shop that
/// never leaves, a form with two fields.
fn staging_docs() -> Vec<(&'static str, Vec<Document>)> {
    vec![
        (
            "cities",
            vec![
                doc! { "_id": 1, "name": "Lyon" },
                doc! { "_id": 2, "name": "Zürich 🏔️" },
            ],
        ),
        (
            "businesses",
            vec![
                doc! {
                    "_id": oid(BUSINESS),
                    "name": "Café Olé ☕ 👩‍👩‍👧",
                    "city_id": 2,
                    "is_published": true,
                    "created_by_team": "content",
                    "config": { "theme": "dark", "sizes": [1, 2.5, 3i64], "a": Bson::Null },
                    "icon": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0x89, 0x50, 0, 0xff] },
                    "price": Bson::Decimal128("1.10".parse().expect("decimal")),
                    "visits": 7i64,
                    "ratio": -0.0f64,
                    "opened": bson::DateTime::from_millis(1_600_000_000_000),
                    "seen": bson::Timestamp { time: 1_600_000_000, increment: 1 },
                    "slug_re": bson::Regex { pattern: "^cafe".into(), options: "i".into() },
                },
                doc! {
                    "_id": oid(QA_SHOP),
                    "name": "QA test shop",
                    "city_id": 1,
                    "is_published": false,
                    "created_by_team": "qa",
                },
            ],
        ),
        (
            "forms",
            vec![doc! { "_id": 1, "business_id": oid(BUSINESS), "title": "Contact" }],
        ),
        (
            "form_fields",
            vec![
                doc! { "_id": 1, "form_id": 1, "label": "Name" },
                doc! { "_id": 2, "form_id": 1, "label": "E-mail ✉️", "hint": { "z": 1, "a": [] } },
            ],
        ),
    ]
}

/// Throw-away databases for the environments, and a project folder whose
/// `ferry.toml` reaches them through `url_env`.
struct World {
    dir: tempfile::TempDir,
    dbs: Vec<(String, Database)>,
}

impl World {
    /// `None` after a SKIP line.
    async fn new(envs: &[(&str, bool)]) -> Option<World> {
        let mut dbs = Vec::new();
        for (env, _) in envs {
            let db = Database::create(Engine::Mongo, TEST, &format!("mg_{env}"))?;
            let m = db.mongo().await;
            for c in COLLECTIONS {
                m.create_collection(c).await.expect("create a collection");
            }
            dbs.push((env.to_string(), db));
        }
        let dir = tempfile::tempdir().expect("temporary folder");
        let names: Vec<String> = envs.iter().map(|(e, _)| format!("\"{e}\"")).collect();
        let mut config = format!("pipeline = [{}]\n", names.join(", "));
        for (env, review) in envs {
            config.push_str(&format!(
                "\n[environments.{env}]\nurl_env = \"FERRY_MG_{}_URL\"\nreview = {review}\n",
                env.to_uppercase()
            ));
            if *env == "production" {
                // A gate: no business promoted may still say TODO.
                config.push_str(
                    "\n[[environments.production.checks]]\nmongo = \"businesses\"\nfilter = '{\"name\": {\"$regex\": \"TODO\"}}'\n",
                );
            }
        }
        config.push_str(TABLES);
        std::fs::write(dir.path().join("ferry.toml"), config).expect("write ferry.toml");
        Some(World { dir, dbs })
    }

    async fn db(&self, env: &str) -> mongodb::Database {
        let (_, db) = self.dbs.iter().find(|(e, _)| e == env).expect("an environment");
        db.mongo().await
    }

    fn run(&self, args: &[&str]) -> Output {
        let vars: Vec<(String, String)> = self
            .dbs
            .iter()
            .map(|(e, db)| (format!("FERRY_MG_{}_URL", e.to_uppercase()), db.url.clone()))
            .collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        run_in_with(self.dir.path(), args, &vars)
    }

    fn run_yes(&self, args: &[&str]) -> Output {
        let mut a = args.to_vec();
        a.push("--yes");
        self.run(&a)
    }

    async fn put(&self, env: &str, docs: Vec<(&str, Vec<Document>)>) {
        let m = self.db(env).await;
        for (c, d) in docs {
            m.collection::<Document>(c)
                .insert_many(d)
                .await
                .expect("insert documents");
        }
    }

    /// Every document of a collection, as its BSON bytes, by `_id`.
    async fn raw(&self, env: &str, coll: &str) -> Vec<Vec<u8>> {
        let (_, db) = self.dbs.iter().find(|(e, _)| e == env).expect("an environment");
        db.raw_docs(coll).await
    }

    async fn business(&self, env: &str) -> Option<Document> {
        self.db(env)
            .await
            .collection::<Document>("businesses")
            .find_one(doc! { "_id": oid(BUSINESS) })
            .await
            .expect("find")
    }
}

/// A document without the fields a promotion sets on the target.
fn without_stamp(mut d: Document) -> Document {
    d.remove("modified_at");
    d
}

fn id_of(out: &Output, field: &str) -> String {
    let v: J = out.json();
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_workflow_on_mongodb() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    w.put("staging", staging_docs()).await;
    let check = w.run(&["check"]).expect(0);
    assert!(check.all().contains("MongoDB"), "{}", check.all());

    // The QA shop never leaves; everything else arrives, parents first.
    let diff = w.run(&["diff", "staging", "production", "--json"]).expect(0).json();
    let inserts = diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "insert")
        .count();
    assert_eq!(inserts, 6, "{diff:#}");
    assert!(!diff.to_string().contains(QA_SHOP), "{diff:#}");
    let first = w.run_yes(&["promote", "staging", "production", "--json"]).expect(0);
    assert_eq!(first.json()["counts"]["insert"], 6, "{}", first.all());

    // Byte for byte, but the stamp, which is a BSON date.
    for c in ["cities", "forms", "form_fields"] {
        assert_eq!(w.raw("staging", c).await, w.raw("production", c).await, "{c}");
    }
    let prod = w.business("production").await.expect("the business arrived");
    assert!(matches!(prod.get("modified_at"), Some(Bson::DateTime(_))), "{prod}");
    let staged = w.business("staging").await.expect("staging's business");
    assert_eq!(
        bson::to_vec(&without_stamp(prod.clone())).expect("bytes"),
        bson::to_vec(&staged).expect("bytes"),
        "every field, in the order staging wrote them"
    );
    let qa = w.db("production").await.collection::<Document>("businesses");
    assert!(qa.find_one(doc! { "_id": oid(QA_SHOP) }).await.expect("find").is_none());
    w.run_yes(&["baseline", "staging", "production"]).expect(0);

    // A three-way conflict on one field: shown, blocks, forced for the source.
    let sb = w.db("staging").await.collection::<Document>("businesses");
    sb.update_one(doc! { "_id": oid(BUSINESS) }, doc! { "$set": { "name": "Café v2" } })
        .await
        .expect("edit staging");
    qa.update_one(
        doc! { "_id": oid(BUSINESS) },
        doc! { "$set": { "name": "Fixed in production" } },
    )
    .await
    .expect("edit production");
    let before = w.raw("production", "businesses").await;
    let id = format!("businesses:{{\"$oid\":\"{BUSINESS}\"}}");
    let diff = w
        .run(&["diff", "staging", "production", "--id", &id, "--json"])
        .expect(0)
        .json();
    let conflict = diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["table"] == "businesses")
        .unwrap_or_else(|| panic!("the business is not in {diff:#}"))
        .clone();
    assert_eq!(conflict["action"], "conflict", "{conflict}");
    let blocked = w.run_yes(&["promote", "staging", "production", "--id", &id]).expect(3);
    assert_eq!(w.raw("production", "businesses").await, before, "{}", blocked.all());
    let forced = w
        .run_yes(&["promote", "staging", "production", "--id", &id, "--force", "--json"])
        .expect(0);
    assert_eq!(forced.json()["counts"]["update"], 1, "{}", forced.all());
    let now = w.business("production").await.expect("business");
    assert_eq!(now.get_str("name").expect("name"), "Café v2");

    // The gate: a business named TODO in staging blocks (exit 3).
    sb.update_one(
        doc! { "_id": oid(BUSINESS) },
        doc! { "$set": { "name": "TODO rename" } },
    )
    .await
    .expect("edit staging");
    let gated = w.run_yes(&["promote", "staging", "production", "--id", &id]).expect(3);
    assert!(gated.all().contains("mongo"), "{}", gated.all());
    sb.update_one(doc! { "_id": oid(BUSINESS) }, doc! { "$set": { "name": "Café v2" } })
        .await
        .expect("edit staging back");

    // Revert: the exact documents production had.
    let promotion = id_of(&forced, "promotion");
    w.run_yes(&["revert", &promotion]).expect(0);
    assert_eq!(
        w.raw("production", "businesses").await,
        before,
        "revert restores the bytes"
    );
    // A revert reads one promotion's journal through an index, not by
    // reading the whole journal.
    let plan = w
        .db("production")
        .await
        .run_command(doc! { "explain": {
            "find": "_ferry_journal",
            "filter": { "promotion_id": { "$in": [promotion.as_str()] } },
        } })
        .await
        .expect("explain");
    assert!(plan.to_string().contains("IXSCAN"), "{plan}");

    let log = w.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(
        log.as_array().map(Vec::len),
        Some(4),
        "promote, baseline, promote, revert: {log:#}"
    );

    // A deleted document comes back whole, with the field only it had.
    let fields_before = w.raw("production", "form_fields").await;
    w.db("staging")
        .await
        .collection::<Document>("form_fields")
        .delete_one(doc! { "_id": 2 })
        .await
        .expect("delete in staging");
    let deleted = w
        .run_yes(&["promote", "staging", "production", "--table", "form_fields", "--json"])
        .expect(0);
    assert_eq!(deleted.json()["counts"]["delete"], 1, "{}", deleted.all());
    assert_eq!(w.raw("production", "form_fields").await.len(), 1);
    w.run_yes(&["revert", &id_of(&deleted, "promotion")]).expect(0);
    assert_eq!(
        w.raw("production", "form_fields").await,
        fields_before,
        "the document's bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_with_drafts_on_mongodb() {
    let Some(w) = World::new(&[("staging", false), ("preprod", true)]).await else {
        return;
    };
    w.put("staging", staging_docs()).await;
    let out = w.run_yes(&["promote", "staging", "preprod", "--json"]).expect(0);
    let review = out.json()["review"].clone();
    // New documents of a table with `draft` land at once, unpublished.
    let draft = w.business("preprod").await.expect("the new business lands as a draft");
    assert_eq!(draft.get_bool("is_published"), Ok(false), "{draft}");
    let form = w.db("preprod").await.collection::<Document>("forms");
    assert!(
        form.find_one(doc! { "_id": 1 }).await.expect("find").is_some(),
        "a new form arrives with its draft business"
    );
    if let Some(id) = review.as_str() {
        w.run_yes(&["review", "approve", id]).expect(0);
    }
    let reviews = w.run(&["reviews", "preprod", "--json"]).expect(0);
    assert!(reviews.stdout.contains('['), "{}", reviews.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_sql_on_mongodb() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    w.put("staging", staging_docs()).await;
    // `--where` takes a filter document.
    let only = w
        .run(&[
            "diff",
            "staging",
            "production",
            "--where",
            r#"cities:{"name": {"$regex": "^Z"}}"#,
            "--json",
        ])
        .expect(0)
        .json();
    let names: Vec<String> = only["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["table"] == "cities")
        .map(|c| c["key"].to_string())
        .collect();
    assert_eq!(names.len(), 1, "{only:#}");
    // SQL given to a MongoDB environment: a usage error naming it, nothing written.
    let sql = w.run(&["diff", "staging", "production", "--where", "cities:name LIKE 'Z%'"]);
    assert_eq!(sql.code, 2, "{}", sql.all());
    assert!(sql.all().contains("filter document"), "{}", sql.all());
    // ... and in `exclude`: a configuration error at the table's line.
    let path = w.dir.path().join("ferry.toml");
    let text = std::fs::read_to_string(&path).expect("read ferry.toml");
    let sql_exclude = text.replace(
        r#"exclude = '{"created_by_team": {"$in": ["qa", "dev"]}}'"#,
        r#"exclude = "created_by_team IN ('qa', 'dev')""#,
    );
    assert_ne!(sql_exclude, text);
    std::fs::write(&path, sql_exclude).expect("write ferry.toml");
    let bad = w.run(&["diff", "staging", "production"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(bad.all().contains("ferry.toml:"), "{}", bad.all());
    assert!(bad.all().contains("filter document"), "{}", bad.all());
    let m = w.db("production").await;
    assert_eq!(
        m.collection::<Document>("businesses")
            .count_documents(doc! {})
            .await
            .expect("count"),
        0
    );
}

/// `natural_key` on MongoDB: cities matched by name, whatever their `_id`
/// per environment; a new city gets the ObjectId production generates, and
/// references to it are rewritten; a second diff is empty; a revert puts
/// back the exact documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natural_keys_on_mongodb() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    let path = w.dir.path().join("ferry.toml");
    let text = std::fs::read_to_string(&path).expect("read ferry.toml");
    let natural = text.replace(
        "[tables.cities]\nkey = [\"_id\"]\n",
        "[tables.cities]\nkey = [\"_id\"]\nnatural_key = [\"name\"]\n",
    );
    assert_ne!(natural, text);
    std::fs::write(&path, natural).expect("write ferry.toml");
    w.put("staging", staging_docs()).await;
    let lyon = oid("64b0000000000000000000c1");
    w.put(
        "production",
        vec![("cities", vec![doc! { "_id": lyon, "name": "Lyon" }])],
    )
    .await;
    let before: Vec<(&str, Vec<Vec<u8>>)> = {
        let mut out = Vec::new();
        for c in COLLECTIONS {
            out.push((c, w.raw("production", c).await));
        }
        out
    };

    let out = w.run_yes(&["promote", "staging", "production", "--json"]).expect(0);
    let journal = id_of(&out, "promotion");
    let cities = w.db("production").await.collection::<Document>("cities");
    let mut found = Vec::new();
    let mut cur = cities.find(doc! {}).await.expect("find");
    while cur.advance().await.expect("next") {
        found.push(cur.deserialize_current().expect("a city"));
    }
    assert_eq!(found.len(), 2, "Lyon matched by name, Zürich new: {found:?}");
    let lyon_doc = found.iter().find(|d| d.get_str("name") == Ok("Lyon")).expect("Lyon");
    assert_eq!(lyon_doc.get_object_id("_id"), Ok(lyon), "Lyon keeps production's id");
    let zurich = found
        .iter()
        .find(|d| d.get_str("name") == Ok("Zürich 🏔️"))
        .expect("Zürich arrived");
    let zurich_id = zurich
        .get_object_id("_id")
        .unwrap_or_else(|_| panic!("a new city gets an ObjectId from production: {zurich}"));
    let business = w.business("production").await.expect("the business arrived");
    assert_eq!(
        business.get("city_id"),
        Some(&Bson::ObjectId(zurich_id)),
        "staging's city 2 is production's new Zürich: {business}"
    );
    let again = w.run(&["diff", "staging", "production", "--json"]).expect(0).json();
    assert_eq!(again["changes"].as_array().map(Vec::len), Some(0), "{again:#}");

    w.run_yes(&["revert", &journal]).expect(0);
    for (c, bytes) in before {
        assert_eq!(w.raw("production", c).await, bytes, "{c} after the revert");
    }
}

/// A per-branch environment on MongoDB: `env create` clones production's
/// collections into a database beside it (documents byte for byte, a
/// unique index); edited there, it is promoted
/// back into production; `env destroy` drops its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_environment_on_mongodb() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    w.put("production", staging_docs()).await;
    let prod = w.db("production").await;
    prod.collection::<Document>("cities")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "name": 1 })
                .options(mongodb::options::IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .expect("a unique index");
    let clone_name = format!("{}_feature_mg_1", prod.name());
    let client = prod.client().clone();
    client.database(&clone_name).drop().await.expect("no clone left over");

    let made = w
        .run(&["env", "create", "feature/mg-1", "--from", "production", "--json"])
        .expect(0)
        .json();
    assert_eq!(made["name"], "feature-mg-1", "{made}");
    let clone = client.database(&clone_name);
    for c in COLLECTIONS {
        let mut cur = clone
            .collection::<RawDocumentBuf>(c)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .expect("find");
        let mut bytes = Vec::new();
        while cur.advance().await.expect("next") {
            bytes.push(cur.current().as_bytes().to_vec());
        }
        assert_eq!(
            bytes,
            w.raw("production", c).await,
            "{c}: the clone holds the same bytes"
        );
    }
    let index_names = clone
        .collection::<Document>("cities")
        .list_index_names()
        .await
        .expect("indexes");
    assert!(index_names.iter().any(|n| n == "name_1"), "{index_names:?}");
    let dup = clone
        .collection::<Document>("cities")
        .insert_one(doc! { "_id": 99, "name": "Lyon" })
        .await;
    assert!(dup.is_err(), "the unique index came along");

    clone
        .collection::<Document>("cities")
        .update_one(doc! { "_id": 1 }, doc! { "$set": { "name": "Lyon (branch)" } })
        .await
        .expect("edit the branch");
    let list = w.run(&["env", "list", "--json"]).expect(0).json();
    assert_eq!(list[0]["pending"]["update"], 1, "{list:#}");
    w.run_yes(&["promote", "feature-mg-1", "production"]).expect(0);
    let lyon = prod
        .collection::<Document>("cities")
        .find_one(doc! { "_id": 1 })
        .await
        .expect("find")
        .expect("Lyon");
    assert_eq!(lyon.get_str("name"), Ok("Lyon (branch)"));

    w.run_yes(&["env", "destroy", "feature-mg-1"]).expect(0);
    let left = client
        .list_database_names()
        .filter(doc! { "name": &clone_name })
        .await
        .expect("list databases");
    assert!(left.is_empty(), "the clone's database is dropped: {left:?}");
    assert_eq!(w.run(&["env", "list", "--json"]).expect(0).json(), J::Array(Vec::new()));
}

/// A collection that references itself: promoting one new field by
/// `--id` brings the new field it depends on, not its new sibling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_references_itself_on_mongodb() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    let path = w.dir.path().join("ferry.toml");
    let text = std::fs::read_to_string(&path).expect("read ferry.toml");
    let with_self = text.replace(
        "[tables.form_fields]\nkey = [\"_id\"]\n",
        "[tables.form_fields]\nkey = [\"_id\"]\nreferences = { depends_on = \"form_fields\" }\n",
    );
    assert_ne!(with_self, text);
    std::fs::write(&path, with_self).expect("write ferry.toml");
    w.put("staging", staging_docs()).await;
    w.run_yes(&["promote", "staging", "production"]).expect(0);
    w.put(
        "staging",
        vec![(
            "form_fields",
            vec![
                doc! { "_id": 3, "form_id": 1, "label": "Confirm ✅", "depends_on": 4 },
                doc! { "_id": 4, "form_id": 1, "label": "Password" },
                doc! { "_id": 5, "form_id": 1, "label": "Not asked for" },
            ],
        )],
    )
    .await;
    let out = w
        .run_yes(&["promote", "staging", "production", "--id", "form_fields:3", "--json"])
        .expect(0);
    assert_eq!(out.json()["counts"]["insert"], 2, "{}", out.all());
    let fields = w.raw("production", "form_fields").await;
    let staged = w.raw("staging", "form_fields").await;
    assert_eq!(
        fields,
        staged[..4].to_vec(),
        "fields 1 to 4, byte for byte, not field 5"
    );
}

/// A document's top-level field order is the source's, on insert, update
/// and revert, without ever making two documents differ: (a) documents of
/// one collection written in different orders arrive each in its own; (d)
/// a document differing only in order is no difference and is not
/// written; (b) an update gives the target document the source's order;
/// (c) promotions that remove a field and add one, reverted, leave every
/// document byte-identical to before. The order (`_ferry_order`) is never
/// shown as a changed field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_order_is_the_sources_and_reverts_exactly() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    let order = ferry_core::schema::FIELD_ORDER;
    w.put(
        "staging",
        vec![(
            "cities",
            vec![
                doc! { "_id": 1, "name": "Lyon", "pop": 5 },
                doc! { "_id": 2, "pop": 7, "name": "Nice" },
                doc! { "_id": 3, "zone": "x", "name": "Bern" },
            ],
        )],
    )
    .await;
    let promote = |w: &World| {
        w.run_yes(&["promote", "staging", "production", "--table", "cities", "--json"])
            .expect(0)
    };
    // (a) Inserts: shown without the order, written each in its own.
    for args in [
        vec!["diff", "staging", "production", "--table", "cities", "--json"],
        vec!["diff", "staging", "production", "--table", "cities"],
    ] {
        let shown = w.run(&args).expect(0);
        assert!(
            shown.all().contains("Nice") && !shown.all().contains(order),
            "{}",
            shown.all()
        );
    }
    promote(&w);
    assert_eq!(w.raw("staging", "cities").await, w.raw("production", "cities").await);

    // (d) Production reorders a document: no difference, nothing written.
    let prod = w.db("production").await.collection::<Document>("cities");
    let stag = w.db("staging").await.collection::<Document>("cities");
    prod.replace_one(doc! { "_id": 1 }, doc! { "_id": 1, "pop": 5, "name": "Lyon" })
        .await
        .expect("reorder in production");
    let reordered = w.raw("production", "cities").await;
    let diff = w
        .run(&["diff", "staging", "production", "--table", "cities", "--json"])
        .expect(0)
        .json();
    assert_eq!(diff["changes"].as_array().map(Vec::len), Some(0), "{diff:#}");
    let text = w.run(&["diff", "staging", "production", "--table", "cities"]).expect(0);
    assert!(!text.all().contains("cities:1"), "{}", text.all());
    let none = w.run_yes(&["promote", "staging", "production", "--table", "cities", "--json"]);
    assert_eq!(none.code, 0, "{}", none.all());
    assert_eq!(w.raw("production", "cities").await, reordered, "nothing written");

    // (b) A change in staging: production's document takes staging's order.
    stag.update_one(doc! { "_id": 1 }, doc! { "$set": { "pop": 6 } })
        .await
        .expect("edit staging");
    let diff = w
        .run(&["diff", "staging", "production", "--table", "cities", "--json"])
        .expect(0);
    assert!(!diff.stdout.contains(order), "{}", diff.stdout);
    let text = w.run(&["diff", "staging", "production", "--table", "cities"]).expect(0);
    assert!(!text.all().contains(order), "{}", text.all());
    let out = promote(&w);
    assert_eq!(out.json()["counts"]["update"], 1, "{}", out.all());
    assert_eq!(w.raw("staging", "cities").await, w.raw("production", "cities").await);

    // (c) A field removed from one document, one added in the middle of
    // another (a field the collection has: a new one changes the
    // collection's fields, another matter), then reverted: production
    // byte for byte as before.
    let before = w.raw("production", "cities").await;
    stag.update_one(doc! { "_id": 2 }, doc! { "$unset": { "pop": "" } })
        .await
        .expect("remove a field");
    stag.replace_one(
        doc! { "_id": 3 },
        doc! { "_id": 3, "zone": "x", "pop": 9, "name": "Bern" },
    )
    .await
    .expect("add a field");
    let out = promote(&w);
    assert_eq!(out.json()["counts"]["update"], 2, "{}", out.all());
    assert_eq!(w.raw("staging", "cities").await, w.raw("production", "cities").await);
    let promotion = id_of(&out, "promotion");
    for args in [
        vec!["show", promotion.as_str()],
        vec!["show", promotion.as_str(), "--json"],
    ] {
        let shown = w.run(&args).expect(0);
        assert!(!shown.all().contains(order), "{}", shown.all());
        assert!(shown.all().contains("pop"), "{}", shown.all());
    }
    w.run_yes(&["revert", &promotion]).expect(0);
    assert_eq!(
        w.raw("production", "cities").await,
        before,
        "revert restores every document's bytes, field order included"
    );
}

/// A field name no document had before, added to one document, changes
/// that document alone: the others stay in sync (no conflict on every row
/// because the collection's fields grew), and production's own edit of
/// another document is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_field_changes_only_its_document() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    w.put("staging", staging_docs()).await;
    w.run_yes(&["promote", "staging", "production"]).expect(0);
    let stag = w.db("staging").await.collection::<Document>("cities");
    let prod = w.db("production").await.collection::<Document>("cities");
    stag.update_one(doc! { "_id": 1 }, doc! { "$set": { "tagline": "Capitale des Gaules" } })
        .await
        .expect("a new field in staging");
    prod.update_one(doc! { "_id": 2 }, doc! { "$set": { "name": "Zürich (prod)" } })
        .await
        .expect("an edit in production");
    let diff = w
        .run(&["diff", "staging", "production", "--table", "cities", "--json"])
        .expect(0)
        .json();
    let changes = diff["changes"].as_array().expect("changes");
    let actions: Vec<(String, String)> = changes
        .iter()
        .map(|c| (c["key"].to_string(), c["action"].as_str().unwrap_or("").to_string()))
        .collect();
    assert!(
        changes.iter().all(|c| c["action"] != "conflict"),
        "a new field makes no conflict: {diff:#}"
    );
    assert!(
        actions.iter().any(|(k, a)| k.contains('1') && a == "update"),
        "{diff:#}"
    );
    assert!(
        !actions.iter().any(|(k, a)| k.contains('2') && a == "update"),
        "production's edit is not overwritten: {diff:#}"
    );
    w.run_yes(&["promote", "staging", "production", "--table", "cities"])
        .expect(0);
    let lyon = prod.find_one(doc! { "_id": 1 }).await.expect("find").expect("Lyon");
    assert_eq!(lyon.get_str("tagline"), Ok("Capitale des Gaules"), "{lyon}");
    let zurich = prod.find_one(doc! { "_id": 2 }).await.expect("find").expect("Zürich");
    assert_eq!(zurich.get_str("name"), Ok("Zürich (prod)"), "{zurich}");
}

/// A field a document lacks and a field holding BSON `null` are told
/// apart by every diff: the text says "(absent)", the JSON names the
/// absent sides (its `null` alone is a BSON `null` too), and a new
/// document's row lists only the fields it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_tells_an_absent_field_from_a_null() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    w.put("staging", staging_docs()).await;
    w.run_yes(&["promote", "staging", "production"]).expect(0);
    let stag = w.db("staging").await.collection::<Document>("cities");
    stag.update_one(doc! { "_id": 1 }, doc! { "$unset": { "name": 1 } })
        .await
        .expect("remove a field in staging");
    stag.update_one(doc! { "_id": 2 }, doc! { "$set": { "name": Bson::Null } })
        .await
        .expect("set a field to null in staging");
    stag.insert_one(doc! { "_id": 3 })
        .await
        .expect("a document without a name");

    let text = w.run(&["diff", "staging", "production", "--table", "cities"]).expect(0);
    let lines: Vec<&str> = text.stdout.lines().collect();
    let field_after = |key: &str| {
        let at = lines
            .iter()
            .position(|l| l.contains(&format!("_id={key}")))
            .unwrap_or_else(|| panic!("no entry {key}: {}", text.stdout));
        lines.get(at + 1).copied().unwrap_or("")
    };
    assert!(field_after("1").contains("-> (absent)"), "{}", text.stdout);
    assert!(field_after("2").contains("-> null"), "{}", text.stdout);
    assert!(!text.stdout.contains("NULL"), "no field shows as NULL: {}", text.stdout);

    let diff = w
        .run(&["diff", "staging", "production", "--table", "cities", "--json"])
        .expect(0)
        .json();
    let change = |id: i64| {
        diff["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .find(|c| c["key"]["_id"] == id)
            .unwrap_or_else(|| panic!("no change of {id}: {diff:#}"))
            .clone()
    };
    let removed = &change(1)["fields"][0];
    assert_eq!(removed["source"], J::Null, "{removed}");
    assert_eq!(removed["absent"], serde_json::json!(["source"]), "{removed}");
    let nulled = &change(2)["fields"][0];
    assert_eq!(nulled["source"], J::Null, "{nulled}");
    assert!(
        nulled.get("absent").is_none(),
        "a BSON null is no absent field: {nulled}"
    );
    assert_eq!(change(3)["row"], serde_json::json!({"_id": 3}), "{diff:#}");

    // The journal says the same: `show` and the revert's preview.
    let done = w
        .run_yes(&["promote", "staging", "production", "--table", "cities", "--json"])
        .expect(0);
    let id = id_of(&done, "promotion");
    let shown = w.run(&["show", &id]).expect(0);
    assert!(shown.stdout.contains("name: \"Lyon\" -> (absent)"), "{}", shown.stdout);
    assert!(shown.stdout.contains("-> null"), "{}", shown.stdout);
    assert!(!shown.stdout.contains("NULL"), "{}", shown.stdout);
    let json = w.run(&["show", &id, "--json"]).expect(0).json();
    let rows = json["rows"].as_array().expect("rows");
    let of = |id: i64| {
        rows.iter()
            .find(|r| r["key"]["_id"] == id)
            .expect("a journal row")
            .clone()
    };
    assert!(of(1)["after"].get("name").is_none(), "absent after: {json:#}");
    assert_eq!(of(2)["after"]["name"], J::Null, "a BSON null stays: {json:#}");
    assert_eq!(of(3)["after"], serde_json::json!({"_id": 3}), "{json:#}");
    let preview = w.run_yes(&["revert", &id]).expect(0);
    assert!(
        preview.stdout.contains("name: (absent) -> \"Lyon\""),
        "{}",
        preview.stdout
    );
    assert!(!preview.stdout.contains("NULL"), "{}", preview.stdout);
}

/// A per-branch clone whose database exists already is refused and leaves
/// that database as it was; a clone that fails half-way (a managed
/// collection missing in the parent, found after three were copied) drops
/// what it made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_clone_that_cannot_be_made_leaves_nothing_behind() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    w.put("production", staging_docs()).await;
    let prod = w.db("production").await;
    let clone_name = format!("{}_feature_mg_2", prod.name());
    let client = prod.client().clone();
    let clone = client.database(&clone_name);
    clone.drop().await.expect("no clone left over");
    let exists = |client: mongodb::Client, name: String| async move {
        !client
            .list_database_names()
            .filter(doc! { "name": &name })
            .await
            .expect("list databases")
            .is_empty()
    };

    // Someone's database has the clone's name: refused, left alone.
    clone
        .collection::<Document>("notes")
        .insert_one(doc! { "_id": 1, "text": "mine" })
        .await
        .expect("a database in the way");
    let text = w
        .run(&["env", "create", "feature/mg-2", "--from", "production"])
        .expect(1)
        .all();
    assert!(text.contains("exists already") && text.contains(&clone_name), "{text}");
    assert_eq!(
        clone
            .collection::<Document>("notes")
            .count_documents(doc! {})
            .await
            .expect("count"),
        1,
        "the database in the way is untouched"
    );
    assert!(
        clone.list_collection_names().await.expect("collections") == vec!["notes".to_string()],
        "nothing was copied into it"
    );
    assert_eq!(w.run(&["env", "list", "--json"]).expect(0).json(), J::Array(Vec::new()));
    clone.drop().await.expect("drop the database in the way");

    // The last managed collection is missing: the three copied before it
    // are dropped with the half-made database.
    prod.collection::<Document>("form_fields")
        .drop()
        .await
        .expect("drop a collection");
    let text = w
        .run(&["env", "create", "feature/mg-2", "--from", "production"])
        .expect(1)
        .all();
    assert!(text.contains("half-made database was dropped"), "{text}");
    assert!(
        !exists(client.clone(), clone_name.clone()).await,
        "the clone's database is gone"
    );
    assert_eq!(w.run(&["env", "list", "--json"]).expect(0).json(), J::Array(Vec::new()));
}

/// A full plan compares documents by value, through the raw merge: the
/// same values written otherwise (an embedded document's fields, the
/// top-level fields in another order) plan nothing, while what the BSON
/// types make different (int32 against int64, a field absent against
/// `null`) is a change of exactly those documents (a conflict: both sides
/// have them, with no sync base yet); after the promotion, nothing is left
/// to plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_compare_by_value_not_by_bytes() {
    let Some(w) = World::new(&[("staging", false), ("production", false)]).await else {
        return;
    };
    let staging = vec![
        doc! { "_id": 1, "name": "Lyon", "geo": { "lat": 45.76, "lng": 4.83 } },
        doc! { "_id": 2, "name": "Zürich 🏔️", "size": 7i32 },
        doc! { "_id": 3, "name": "Bern", "note": Bson::Null },
        doc! { "_id": 4, "name": "Genève", "rank": 1i32 },
        doc! { "_id": 5, "name": "Basel", "note": "every field on both sides: the raw merge applies" },
    ];
    let production = vec![
        doc! { "_id": 1, "geo": { "lng": 4.83, "lat": 45.76 }, "name": "Lyon" },
        doc! { "_id": 2, "name": "Zürich 🏔️", "size": 7i64 },
        doc! { "_id": 3, "name": "Bern" },
        doc! { "_id": 4, "rank": 1i32, "name": "Genève" },
        doc! { "_id": 5, "name": "Basel", "note": "every field on both sides: the raw merge applies" },
    ];
    w.put("staging", vec![("cities", staging)]).await;
    w.put("production", vec![("cities", production)]).await;
    let diff = w
        .run(&["diff", "staging", "production", "--table", "cities", "--json"])
        .expect(0)
        .json();
    let mut changed: Vec<(String, String)> = diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| (c["key"].to_string(), c["action"].as_str().unwrap_or("").to_string()))
        .collect();
    changed.sort();
    assert_eq!(
        changed,
        [
            (r#"{"_id":2}"#.to_string(), "conflict".to_string()),
            (r#"{"_id":3}"#.to_string(), "conflict".to_string())
        ],
        "{diff:#}"
    );
    w.run_yes(&["promote", "staging", "production", "--table", "cities", "--force"])
        .expect(0);
    let again = w
        .run(&["diff", "staging", "production", "--table", "cities", "--json"])
        .expect(0)
        .json();
    assert_eq!(again["changes"].as_array().map(Vec::len), Some(0), "{again:#}");
    let prod = w.db("production").await.collection::<Document>("cities");
    let zurich = prod.find_one(doc! { "_id": 2 }).await.expect("find").expect("Zürich");
    assert_eq!(zurich.get("size"), Some(&Bson::Int32(7)), "{zurich}");
    let bern = prod.find_one(doc! { "_id": 3 }).await.expect("find").expect("Bern");
    assert_eq!(bern.get("note"), Some(&Bson::Null), "{bern}");
}
