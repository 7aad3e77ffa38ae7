//! The promotion scenarios of the SQLite engine tests (`scenarios.rs`,
//! `three_way.rs`), on real servers and across engines: references pulled
//! in by `--where` and `--id`, children travelling with their parent,
//! updates, deletes after a baseline, excluded rows, trees inserted
//! parent-first and deleted children-first under enforced foreign keys,
//! composite keys with emoji, stale plans, the three-way rules, reverts
//! (refused when rows moved, unless forced), and more rows than one batch.
//!
//! One test per ordered engine pair runs every scenario. The pair's two
//! databases are created once; each scenario gets its own tables (names
//! prefixed, written `@name` below) and its own configuration naming only
//! them, so it starts from nothing, as on fresh databases.

use ferry_core::plan::{Action, Plan, Reason};
use ferry_core::selection::{parse_id, parse_where, Selection};
use ferry_core::value::{convert, ColumnType, LogicalType, Value};
use ferry_engine::apply::Promotion;
use ferry_engine::Error;

use super::support::{pair_name, read, summary, texts, Eng, World, USER};

const S: &str = "staging";
const P: &str = "production";

/// The scenario DDL with each engine's types: `$INT`, `$TEXT` (a key-able
/// text on MariaDB), `$TS`, `$BLOB`.
fn ddl(eng: Eng, sql: &str) -> String {
    let (int, text, ts, blob) = match eng {
        Eng::Sqlite => ("INTEGER", "TEXT", "DATETIME", "BLOB"),
        Eng::Postgres => ("integer", "text", "timestamptz", "bytea"),
        Eng::Mysql => ("int", "varchar(100)", "datetime(6)", "blob"),
    };
    sql.replace("$INT", int)
        .replace("$TEXT", text)
        .replace("$TS", ts)
        .replace("$BLOB", blob)
}

/// One scenario on one engine pair: its own tables in the pair's databases.
struct Sc {
    w: World,
    prefix: &'static str,
    from: Eng,
    to: Eng,
}

impl Sc {
    /// Creates `schema` on both sides and a configuration with `tables`.
    async fn new(base: &World, prefix: &'static str, schema: &str, tables: &str) -> Sc {
        let (from, to) = (base.db(S).eng, base.db(P).eng);
        let sc = Sc {
            w: base.sibling(&tables.replace('@', prefix)),
            prefix,
            from,
            to,
        };
        sc.exec(S, &ddl(from, schema)).await;
        sc.exec(P, &ddl(to, schema)).await;
        sc
    }

    /// `@name` -> this scenario's table.
    fn t(&self, s: &str) -> String {
        s.replace('@', self.prefix)
    }

    fn label(&self) -> String {
        format!(
            "{} ({})",
            self.prefix.trim_end_matches('_'),
            pair_name(self.from, self.to)
        )
    }

    async fn exec(&self, env: &str, sql: &str) {
        self.w.db(env).exec(&self.t(sql)).await;
    }

    fn ids(&self, args: &[&str]) -> Selection {
        Selection {
            ids: args.iter().map(|a| parse_id(&self.t(a)).expect("valid --id")).collect(),
            ..Selection::default()
        }
    }

    fn wheres(&self, args: &[&str]) -> Selection {
        Selection {
            wheres: args
                .iter()
                .map(|a| parse_where(&self.t(a)).expect("valid --where"))
                .collect(),
            ..Selection::default()
        }
    }

    /// Plan entries as `@table:key action[/reason]`.
    fn summary(&self, plan: &Plan) -> Vec<String> {
        summary(plan).iter().map(|l| l.replacen(self.prefix, "@", 1)).collect()
    }

    async fn plan(&self, selection: &Selection) -> Plan {
        self.w.plan(S, P, selection).await
    }

    async fn promote(&self, plan: &Plan) -> Promotion {
        self.w
            .promote(S, P, plan)
            .await
            .unwrap_or_else(|| panic!("{}: the promotion wrote nothing", self.label()))
    }

    async fn try_promote(&self, plan: &Plan, force: bool) -> Result<Option<Promotion>, Error> {
        let pair = self.w.pair(S, P).await;
        let opts = ferry_engine::apply::PromoteOptions {
            user: USER.into(),
            force,
        };
        ferry_engine::apply::promote(&pair, plan, &opts).await
    }

    async fn baseline(&self) -> u64 {
        self.w.baseline(S, P).await.recorded
    }

    /// One side's rows of `@table`, as display text.
    async fn rows(&self, env: &str, table: &str, columns: &[&str]) -> Vec<String> {
        let pair = self.w.reader().await;
        let store = if env == S { &pair.source } else { &pair.target };
        texts(&**store, &self.t(table), columns).await
    }

    /// Several tables of the target, for before/after comparisons.
    async fn dump(&self, tables: &[(&str, &[&str])]) -> Vec<String> {
        let mut out = Vec::new();
        for (t, cols) in tables {
            for r in self.rows(P, t, cols).await {
                out.push(format!("{t}|{r}"));
            }
        }
        out
    }
}

// ---- the shop: references, children, exclusions, stamps ----------------------

const SHOP: &str = "
CREATE TABLE @cities (id $INT PRIMARY KEY, name $TEXT NOT NULL);
CREATE TABLE @partners (id $INT PRIMARY KEY, name $TEXT NOT NULL, city_id $INT,
    FOREIGN KEY (city_id) REFERENCES @cities (id));
CREATE TABLE @businesses (id $INT PRIMARY KEY, name $TEXT NOT NULL, partner_id $INT, city_id $INT,
    created_by_team $TEXT, view_count $INT, modified_at $TS,
    FOREIGN KEY (partner_id) REFERENCES @partners (id), FOREIGN KEY (city_id) REFERENCES @cities (id));
CREATE TABLE @forms (id $INT PRIMARY KEY, business_id $INT, title $TEXT,
    FOREIGN KEY (business_id) REFERENCES @businesses (id));
CREATE TABLE @form_fields (id $INT PRIMARY KEY, form_id $INT NOT NULL, label $TEXT, position $INT,
    FOREIGN KEY (form_id) REFERENCES @forms (id));
INSERT INTO @cities VALUES (1, 'Lyon');
INSERT INTO @partners VALUES (1, 'Acme', 1);
INSERT INTO @businesses VALUES (1, 'Old shop', 1, 1, 'pm', 0, '2020-01-01 00:00:00');
INSERT INTO @forms VALUES (1, 1, 'Contact');
INSERT INTO @form_fields VALUES (1, 1, 'Email', 0), (2, 1, 'Name', 1);
";

const SHOP_TABLES: &str = r#"
[tables.@cities]
[tables.@partners]
references = { city_id = "@cities" }
[tables.@businesses]
references = { partner_id = "@partners", city_id = "@cities" }
exclude = "created_by_team IN ('qa', 'dev')"
ignore = ["view_count"]
stamp = { modified_at = "now" }
[tables.@forms]
references = { business_id = "@businesses" }
[tables.@form_fields]
parent = { form_id = "@forms" }
"#;

const SPRINT: &str = "
INSERT INTO @cities VALUES (2, 'Marseille ☀️');
INSERT INTO @partners VALUES (2, 'Ferries & Co', 2);
INSERT INTO @businesses VALUES (2, 'Café du Port', 2, 2, 'pm', 0, NULL);
INSERT INTO @businesses VALUES (3, 'QA test shop', 1, 1, 'qa', 0, NULL);
UPDATE @businesses SET name = 'Old shop (renamed)' WHERE id = 1;
INSERT INTO @forms VALUES (2, 2, 'Booking');
INSERT INTO @form_fields VALUES (3, 2, 'Date', 0), (4, 2, 'Passengers 👪', 1);
INSERT INTO @forms VALUES (3, 3, 'QA form');
UPDATE @forms SET title = 'Contact us' WHERE id = 1;
UPDATE @form_fields SET label = 'E-mail' WHERE id = 1;
DELETE FROM @form_fields WHERE id = 2;
INSERT INTO @form_fields VALUES (5, 1, 'Phone', 2);
";

const SHOP_DUMP: &[(&str, &[&str])] = &[
    ("@cities", &["id", "name"]),
    ("@partners", &["id", "name", "city_id"]),
    (
        "@businesses",
        &["id", "name", "partner_id", "city_id", "created_by_team", "view_count"],
    ),
    ("@forms", &["id", "business_id", "title"]),
    ("@form_fields", &["id", "form_id", "label", "position"]),
];

/// Staging after a sprint of work, production as it was at the baseline.
async fn shop(base: &World, prefix: &'static str) -> Sc {
    let sc = Sc::new(base, prefix, SHOP, SHOP_TABLES).await;
    assert_eq!(sc.baseline().await, 6, "{}: every row is equal at first", sc.label());
    sc.exec(S, SPRINT).await;
    sc
}

/// `--where` pulls in what the selected rows reference; a selected parent
/// brings its children (inserted, updated and deleted); the stamp is the
/// promotion time; the ignored column keeps the target's value.
async fn where_selection_pulls_references(base: &World) {
    let sc = shop(base, "ws_").await;
    let l = sc.label();
    sc.exec(P, "UPDATE @businesses SET view_count = 42 WHERE id = 1;").await;
    let plan = sc.plan(&sc.wheres(&["@businesses:name LIKE 'Caf%'"])).await;
    assert_eq!(
        sc.summary(&plan),
        ["@cities:2 insert", "@partners:2 insert", "@businesses:2 insert"],
        "{l}"
    );
    let partner = &plan.entries[1];
    assert_eq!(partner.pulled_by, Some(sc.t("@businesses:2.partner_id")), "{l}");
    let p = sc.promote(&plan).await;
    assert_eq!(p.counts.insert, 3, "{l}");
    assert_eq!(
        sc.rows(P, "@businesses", &["id", "name", "view_count"]).await,
        ["1|Old shop|42", "2|Café du Port|NULL"],
        "{l}: rows outside the selection stay as they are"
    );
    // The stamp is the promotion's time, in UTC, to the microsecond.
    let pair = sc.w.reader().await;
    let stamp = read(&*pair.target, &sc.t("@businesses"), &["id", "modified_at"]).await;
    let at = chrono::DateTime::parse_from_rfc3339(&p.at)
        .expect("promotion time")
        .naive_utc();
    let as_ts = convert(&stamp[1][1], &ColumnType::new(LogicalType::Timestamp)).expect("a timestamp");
    assert_eq!(as_ts, Value::Timestamp(at), "{l}: the stamp of businesses:2");

    // The predicate selects rows matching it on either side.
    let plan = sc.plan(&sc.wheres(&["@businesses:name = 'Old shop'"])).await;
    assert_eq!(sc.summary(&plan), ["@businesses:1 update"], "{l}");
    let plan = sc.plan(&sc.wheres(&["@forms:title = 'Contact us'"])).await;
    assert_eq!(
        sc.summary(&plan),
        [
            "@forms:1 update",
            "@form_fields:1 update",
            "@form_fields:2 delete",
            "@form_fields:5 insert"
        ],
        "{l}"
    );
    sc.promote(&plan).await;
    assert_eq!(
        sc.rows(P, "@form_fields", &["id", "form_id", "label"]).await,
        ["1|1|E-mail", "5|1|Phone"],
        "{l}"
    );

    // A row that needs an excluded one stays behind with it, saying so;
    // everything else goes.
    let plan = sc.plan(&Selection::default()).await;
    let form = plan
        .entries
        .iter()
        .find(|e| e.table == sc.t("@forms") && e.key == [Value::Int(3)])
        .unwrap_or_else(|| panic!("{l}: {:?}", sc.summary(&plan)));
    assert_eq!(
        (form.action, form.reason),
        (Action::Skip, Some(Reason::Excluded)),
        "{l}"
    );
    assert_eq!(form.depends_on, Some(format!("{}:3", sc.t("@businesses"))), "{l}");
    assert_eq!(plan.excluded.get(&sc.t("@businesses")), Some(&1), "{l}: the QA shop");
    assert_eq!(plan.excluded.get(&sc.t("@forms")), Some(&1), "{l}: the QA form");
    assert!(
        sc.summary(&plan).contains(&"@businesses:1 update".to_string()),
        "{l}: {:?}",
        sc.summary(&plan)
    );
    sc.promote(&plan).await;
    let left = sc.plan(&Selection::default()).await;
    assert_eq!(
        sc.summary(&left),
        ["@businesses:3 skip/excluded", "@forms:3 skip/excluded"],
        "{l}: only the QA shop and the form that needs it are left"
    );
    assert_eq!(
        left.excluded.get(&sc.t("@businesses")),
        Some(&1),
        "{l}: the QA shop is excluded"
    );
    assert_eq!(
        sc.rows(P, "@businesses", &["id", "name", "view_count"]).await,
        ["1|Old shop (renamed)|42", "2|Café du Port|NULL"],
        "{l}: the update keeps the target's ignored column"
    );
}

/// `--id` on a form brings its fields and pulls its business, partner and
/// city; revert takes them all back; an excluded row cannot be referenced.
async fn id_selection_brings_children(base: &World) {
    let sc = shop(base, "ids_").await;
    let l = sc.label();
    let plan = sc.plan(&sc.ids(&["@forms:2"])).await;
    assert_eq!(
        sc.summary(&plan),
        [
            "@cities:2 insert",
            "@partners:2 insert",
            "@businesses:2 insert",
            "@forms:2 insert",
            "@form_fields:3 insert",
            "@form_fields:4 insert",
        ],
        "{l}"
    );
    let before = sc.dump(SHOP_DUMP).await;
    let p = sc.promote(&plan).await;
    for (table, cols) in [
        ("@cities", &["id", "name"][..]),
        ("@partners", &["id", "name", "city_id"]),
        ("@forms", &["id", "business_id", "title"]),
    ] {
        let two = |rows: Vec<String>| rows.into_iter().filter(|r| r.starts_with("2|")).collect::<Vec<_>>();
        assert_eq!(
            two(sc.rows(P, table, cols).await),
            two(sc.rows(S, table, cols).await),
            "{l}: {table}"
        );
    }
    assert_eq!(
        sc.rows(P, "@form_fields", &["id", "label"]).await,
        ["1|Email", "2|Name", "3|Date", "4|Passengers 👪"],
        "{l}"
    );
    sc.w.revert(&p.id).await;
    assert_eq!(sc.dump(SHOP_DUMP).await, before, "{l}: reverted");

    let plan = sc.plan(&sc.ids(&["@businesses:3"])).await;
    assert_eq!(sc.summary(&plan), ["@businesses:3 skip/excluded"], "{l}");
    let plan = sc.plan(&sc.ids(&["@forms:3"])).await;
    assert_eq!(
        sc.summary(&plan),
        ["@businesses:3 skip/excluded", "@forms:3 skip/excluded"],
        "{l}: a row that needs an excluded one stays behind with it"
    );
    assert!(!plan.has_changes(), "{l}");
}

/// A parent deleted after the baseline takes its children with it, deleted
/// first (the target enforces its foreign keys); revert restores them.
async fn delete_after_baseline(base: &World) {
    let sc = Sc::new(base, "del_", SHOP, SHOP_TABLES).await;
    let l = sc.label();
    sc.baseline().await;
    sc.exec(
        S,
        "DELETE FROM @form_fields WHERE form_id = 1; DELETE FROM @forms WHERE id = 1;",
    )
    .await;
    let plan = sc.plan(&sc.ids(&["@forms:1"])).await;
    assert_eq!(
        sc.summary(&plan),
        ["@forms:1 delete", "@form_fields:1 delete", "@form_fields:2 delete"],
        "{l}"
    );
    let before = sc.dump(SHOP_DUMP).await;
    let p = sc.promote(&plan).await;
    assert_eq!(p.counts.delete, 3, "{l}");
    assert!(sc.rows(P, "@forms", &["id"]).await.is_empty(), "{l}");
    assert!(sc.plan(&Selection::default()).await.entries.is_empty(), "{l}");
    sc.w.revert(&p.id).await;
    assert_eq!(sc.dump(SHOP_DUMP).await, before, "{l}: reverted");

    // A city deleted in staging after the baseline is deleted in production.
    sc.exec(S, "INSERT INTO @cities VALUES (9, 'Nowhere');").await;
    sc.exec(P, "INSERT INTO @cities VALUES (9, 'Nowhere');").await;
    sc.baseline().await;
    sc.exec(S, "DELETE FROM @cities WHERE id = 9;").await;
    let plan = sc.plan(&sc.ids(&["@cities:9"])).await;
    assert_eq!(sc.summary(&plan), ["@cities:9 delete"], "{l}");
    sc.promote(&plan).await;
    assert_eq!(sc.rows(P, "@cities", &["id"]).await, ["1"], "{l}");
}

// ---- a self-referencing table -----------------------------------------------------

const MENUS: &str = "
CREATE TABLE @menus (id $INT PRIMARY KEY, parent_id $INT, title $TEXT NOT NULL, position $INT NOT NULL,
    FOREIGN KEY (parent_id) REFERENCES @menus (id));
INSERT INTO @menus VALUES (1, NULL, 'Home', 0);
INSERT INTO @menus VALUES (2, 1, 'About', 1);
";

/// Keys run opposite to depth: key order is children first.
const SUBTREE: &str = "
INSERT INTO @menus VALUES (30, 1, 'Products', 2);
INSERT INTO @menus VALUES (20, 30, 'Ferries ⛴️', 0);
INSERT INTO @menus VALUES (10, 20, 'Car ferry', 0);
INSERT INTO @menus VALUES (11, 20, 'Foot ferry', 1);
INSERT INTO @menus VALUES (5, 10, 'Timetable', 0);
";

async fn tree_parent_first(base: &World) {
    let tables = "[tables.@menus]\nreferences = { parent_id = \"@menus\" }\n";
    let sc = Sc::new(base, "tree_", MENUS, tables).await;
    let l = sc.label();
    sc.baseline().await;
    sc.exec(S, SUBTREE).await;
    let plan = sc.plan(&Selection::default()).await;
    assert_eq!(
        sc.summary(&plan),
        [
            "@menus:5 insert",
            "@menus:10 insert",
            "@menus:11 insert",
            "@menus:20 insert",
            "@menus:30 insert"
        ],
        "{l}"
    );
    let p = sc.promote(&plan).await;
    let cols = ["id", "parent_id", "title"];
    assert_eq!(
        sc.rows(P, "@menus", &cols).await,
        sc.rows(S, "@menus", &cols).await,
        "{l}"
    );
    // Deleting the subtree deletes children first.
    sc.exec(
        S,
        "DELETE FROM @menus WHERE id = 5; DELETE FROM @menus WHERE id IN (10, 11);
         DELETE FROM @menus WHERE id = 20; DELETE FROM @menus WHERE id = 30;",
    )
    .await;
    let plan = sc.plan(&Selection::default()).await;
    assert_eq!(plan.counts().delete, 5, "{l}: {:?}", sc.summary(&plan));
    let d = sc.promote(&plan).await;
    assert_eq!(sc.rows(P, "@menus", &["id"]).await, ["1", "2"], "{l}");
    // Revert both, newest first.
    sc.w.revert(&d.id).await;
    assert_eq!(sc.rows(P, "@menus", &["id"]).await.len(), 7, "{l}");
    sc.w.revert(&p.id).await;
    assert_eq!(sc.rows(P, "@menus", &["id"]).await, ["1", "2"], "{l}");
}

// ---- a composite key with text (and emoji) ---------------------------------------

const TRANSLATIONS: &str = "
CREATE TABLE @translations (item_id $INT NOT NULL, lang $TEXT NOT NULL, label $TEXT, icon $BLOB,
    PRIMARY KEY (item_id, lang));
INSERT INTO @translations (item_id, lang, label) VALUES
    (1, 'en', 'Ferry'), (1, 'fr', 'Traversier'), (2, 'en', 'Boat'), (2, 'fr', 'Bateau');
";

/// Text keys are merged in byte order on every engine (`COLLATE "C"`,
/// `utf8mb4_bin`, SQLite's BINARY): 'Z' < 'en' < 'é' < '🦀'.
async fn composite_text_keys(base: &World) {
    let sc = Sc::new(base, "tr_", TRANSLATIONS, "[tables.@translations]\n").await;
    let l = sc.label();
    sc.baseline().await;
    sc.exec(
        S,
        "INSERT INTO @translations (item_id, lang, label) VALUES
             (1, '🦀', 'Krabbe 🦀'), (1, 'é', 'e'), (1, 'Z', 'z'), (2, 'de', 'Boot');
         UPDATE @translations SET label = 'Traversier 🚢' WHERE item_id = 1 AND lang = 'fr';
         DELETE FROM @translations WHERE item_id = 2 AND lang = 'en';
         UPDATE @translations SET label = 'Bateau (staging)' WHERE item_id = 2 AND lang = 'fr';",
    )
    .await;
    sc.exec(
        P,
        "UPDATE @translations SET label = 'Bateau (production)' WHERE item_id = 2 AND lang = 'fr';",
    )
    .await;
    let plan = sc.plan(&Selection::default()).await;
    assert_eq!(
        sc.summary(&plan),
        [
            "@translations:1,Z insert",
            "@translations:1,fr update",
            "@translations:1,é insert",
            "@translations:1,🦀 insert",
            "@translations:2,de insert",
            "@translations:2,en delete",
            "@translations:2,fr conflict/both-changed",
        ],
        "{l}"
    );
    let one = sc.plan(&sc.ids(&["@translations:1,🦀"])).await;
    assert_eq!(sc.summary(&one), ["@translations:1,🦀 insert"], "{l}");

    let cols = ["item_id", "lang", "label"];
    let before = sc.rows(P, "@translations", &cols).await;
    let err = sc.try_promote(&plan, false).await.expect_err("a conflict blocks");
    assert!(matches!(err.inner(), Error::Blocked(_)), "{l}: {err:?}");
    assert_eq!(sc.rows(P, "@translations", &cols).await, before, "{l}: nothing written");
    let p = sc.try_promote(&plan, true).await.expect("forced").expect("promoted");
    assert_eq!((p.counts.insert, p.counts.update, p.counts.delete), (4, 2, 1), "{l}");
    assert_eq!(
        sc.rows(P, "@translations", &cols).await,
        sc.rows(S, "@translations", &cols).await,
        "{l}"
    );
    assert!(sc.plan(&Selection::default()).await.entries.is_empty(), "{l}");
    sc.w.revert(&p.id).await;
    assert_eq!(sc.rows(P, "@translations", &cols).await, before, "{l}: reverted");
}

// ---- the three-way rules ------------------------------------------------------------

const ITEMS: &str = "
CREATE TABLE @items (id $INT PRIMARY KEY, name $TEXT NOT NULL, qty $INT, views $INT, modified_at $TS);
INSERT INTO @items VALUES (1, 'one', 1, 10, NULL), (2, 'two', 2, 20, NULL), (3, 'three', 3, 30, NULL),
    (4, 'four', 4, 40, NULL), (5, 'five', 5, 50, NULL);
";

const ITEM_TABLES: &str = r#"
[tables.@items]
ignore = ["views"]
stamp = { modified_at = "now" }
"#;

async fn three_way_rules(base: &World) {
    let sc = Sc::new(base, "tw_", ITEMS, ITEM_TABLES).await;
    let l = sc.label();
    assert_eq!(sc.baseline().await, 5, "{l}");
    sc.exec(
        S,
        "UPDATE @items SET name = 'one (staging)' WHERE id = 1;
         UPDATE @items SET qty = 20 WHERE id = 2;
         UPDATE @items SET name = 'three (staging)' WHERE id = 3;
         UPDATE @items SET name = 'same' WHERE id = 4;
         UPDATE @items SET views = 999 WHERE id = 5;",
    )
    .await;
    sc.exec(
        P,
        "UPDATE @items SET name = 'two (production)' WHERE id = 2;
         UPDATE @items SET name = 'three (production)' WHERE id = 3;
         UPDATE @items SET name = 'same' WHERE id = 4;
         UPDATE @items SET name = 'five (production)' WHERE id = 5;",
    )
    .await;
    let plan = sc.plan(&Selection::default()).await;
    assert_eq!(
        sc.summary(&plan),
        [
            "@items:1 update",
            "@items:2 update/merged",
            "@items:3 conflict/both-changed",
            "@items:5 skip/target-newer",
        ],
        "{l}"
    );
    let merged = plan
        .entries
        .iter()
        .find(|e| e.reason == Some(Reason::Merged))
        .expect("merged");
    assert_eq!(merged.action, Action::Update, "{l}");

    // The conflict blocks everything.
    let cols = ["id", "name", "qty", "views"];
    let before = sc.rows(P, "@items", &cols).await;
    let err = sc.try_promote(&plan, false).await.expect_err("blocked");
    assert!(matches!(err.inner(), Error::Blocked(_)), "{l}: {err:?}");
    assert_eq!(sc.rows(P, "@items", &cols).await, before, "{l}: nothing written");
    // Without the conflicting row it goes through; target-newer is kept.
    let plan = sc.plan(&sc.ids(&["@items:1", "@items:2", "@items:5"])).await;
    sc.promote(&plan).await;
    assert_eq!(
        sc.rows(P, "@items", &cols).await,
        [
            "1|one (staging)|1|10",
            "2|two (production)|20|20",
            "3|three (production)|3|30",
            "4|same|4|40",
            "5|five (production)|5|50",
        ],
        "{l}"
    );
    // Row 2 now differs from the sync base only on the target's side.
    let left = sc.plan(&Selection::default()).await;
    assert_eq!(
        sc.summary(&left),
        [
            "@items:2 skip/target-newer",
            "@items:3 conflict/both-changed",
            "@items:5 skip/target-newer"
        ],
        "{l}"
    );
}

/// A plan the target moved under is refused, nothing written, even forced.
async fn stale_plan_refused(base: &World) {
    let sc = Sc::new(base, "stale_", ITEMS, ITEM_TABLES).await;
    let l = sc.label();
    sc.baseline().await;
    sc.exec(
        S,
        "UPDATE @items SET name = 'one!' WHERE id = 1; INSERT INTO @items VALUES (6, 'six', 6, 0, NULL);",
    )
    .await;
    let plan = sc.plan(&Selection::default()).await;
    assert_eq!(sc.summary(&plan), ["@items:1 update", "@items:6 insert"], "{l}");
    sc.exec(P, "UPDATE @items SET qty = 100 WHERE id = 1;").await;
    let cols = ["id", "name", "qty"];
    let before = sc.rows(P, "@items", &cols).await;
    let promotions = sc.w.db(P).promotions().await;
    for force in [false, true] {
        let err = sc.try_promote(&plan, force).await.expect_err("stale");
        assert!(matches!(err.inner(), Error::Blocked(_)), "{l}: {err:?}");
        assert!(err.to_string().contains("changed since the plan"), "{l}: {err}");
        assert_eq!(sc.rows(P, "@items", &cols).await, before, "{l}: nothing written");
    }
    assert_eq!(sc.w.db(P).promotions().await, promotions, "{l}: nothing recorded");
}

/// Revert refuses rows changed since, unless forced; a promotion is
/// reverted once.
async fn revert_refuses_moved_rows(base: &World) {
    let sc = Sc::new(base, "rv_", ITEMS, ITEM_TABLES).await;
    let l = sc.label();
    sc.baseline().await;
    let cols = ["id", "name", "qty", "views"];
    let before = sc.rows(P, "@items", &cols).await;
    sc.exec(
        S,
        "UPDATE @items SET name = 'one!' WHERE id = 1; INSERT INTO @items VALUES (6, 'six', 6, 0, NULL);",
    )
    .await;
    let p = sc.promote(&sc.plan(&Selection::default()).await).await;
    sc.exec(P, "UPDATE @items SET name = 'edited after' WHERE id = 1;")
        .await;
    let moved = sc.rows(P, "@items", &cols).await;
    let err = ferry_engine::revert::revert(&sc.w.project, &p.id, USER, false)
        .await
        .expect_err("rows moved");
    assert!(matches!(err.inner(), Error::Blocked(_)), "{l}: {err:?}");
    assert!(err.to_string().contains(&sc.t("@items:1 (column name)")), "{l}: {err}");
    assert_eq!(
        sc.rows(P, "@items", &cols).await,
        moved,
        "{l}: a refused revert writes nothing"
    );
    ferry_engine::revert::revert(&sc.w.project, &p.id, USER, true)
        .await
        .expect("forced revert");
    assert_eq!(sc.rows(P, "@items", &cols).await, before, "{l}");
    let again = ferry_engine::revert::revert(&sc.w.project, &p.id, USER, false)
        .await
        .expect_err("reverted once");
    assert!(matches!(again.inner(), Error::Blocked(_)), "{l}: {again:?}");
}

// ---- more rows than one batch -----------------------------------------------------------

const BULK: &str = "CREATE TABLE @bulk (id $INT PRIMARY KEY, name $TEXT, n $INT, icon $BLOB);";

fn bulk_rows(eng: Eng, ids: impl Iterator<Item = i64>, name: &str) -> String {
    let values: Vec<String> = ids
        .map(|i| {
            let icon = match (i % 4, eng) {
                (0, _) => "NULL".to_string(),
                (k, Eng::Postgres) => format!("'\\x{}'", "00ff".repeat(k as usize)),
                (k, _) => format!("X'{}'", "00ff".repeat(k as usize)),
            };
            format!("({i}, '{name} {i} 🦀', {i}, {icon})")
        })
        .collect();
    format!("INSERT INTO @bulk VALUES {};", values.join(", "))
}

/// More rows than one scan batch (1024) and one fetch chunk (1000).
async fn many_rows(base: &World) {
    let sc = Sc::new(base, "many_", BULK, "[tables.@bulk]\n").await;
    let l = sc.label();
    sc.exec(S, &bulk_rows(sc.from, 1..=1100, "row")).await;
    sc.exec(P, &bulk_rows(sc.to, 1..=1100, "row")).await;
    assert_eq!(sc.baseline().await, 1100, "{l}");
    sc.exec(
        S,
        "UPDATE @bulk SET n = n + 1 WHERE id % 3 = 0; DELETE FROM @bulk WHERE id % 7 = 0;",
    )
    .await;
    sc.exec(S, &bulk_rows(sc.from, 1101..=1250, "new")).await;
    let updated = (1..=1100).filter(|i| i % 3 == 0 && i % 7 != 0).count() as u64;
    let deleted = (1..=1100).filter(|i| i % 7 == 0).count() as u64;
    let plan = sc.plan(&Selection::default()).await;
    let c = plan.counts();
    assert_eq!((c.insert, c.update, c.delete), (150, updated, deleted), "{l}");
    let by_where = sc
        .plan(&sc.wheres(&["@bulk:id % 3 = 0 OR id % 7 = 0 OR id > 1100"]))
        .await;
    assert_eq!(sc.summary(&by_where), sc.summary(&plan), "{l}");
    let cols = ["id", "name", "n", "icon"];
    let before = sc.rows(P, "@bulk", &cols).await;
    let p = sc.promote(&plan).await;
    assert_eq!(
        sc.rows(P, "@bulk", &cols).await,
        sc.rows(S, "@bulk", &cols).await,
        "{l}"
    );
    assert!(sc.plan(&Selection::default()).await.entries.is_empty(), "{l}");
    sc.w.revert(&p.id).await;
    assert_eq!(sc.rows(P, "@bulk", &cols).await, before, "{l}: reverted");
}

// ---- every scenario on every engine pair -------------------------------------------------

async fn suite(from: Eng, to: Eng) {
    let test = format!("scenarios::{}", pair_name(from, to));
    // The databases only: each scenario configures its own tables.
    let unused = "[tables.none]\nkey = [\"id\"]\n";
    let Some(base) = World::new(&test, &[(S, from), (P, to)], |_, _| String::new(), unused).await else {
        return;
    };
    where_selection_pulls_references(&base).await;
    id_selection_brings_children(&base).await;
    delete_after_baseline(&base).await;
    tree_parent_first(&base).await;
    composite_text_keys(&base).await;
    three_way_rules(&base).await;
    stale_plan_refused(&base).await;
    revert_refuses_moved_rows(&base).await;
    many_rows(&base).await;
}

macro_rules! pairs {
    ($($name:ident: $from:expr => $to:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            suite($from, $to).await;
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
