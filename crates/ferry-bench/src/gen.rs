//! The deterministic workload generator: production at scale S, and the
//! change set that turns a copy of it into staging.
//!
//! Rows come from one seeded ChaCha stream per table; foreign keys are a
//! hash of (seed, table, column, id), so the change set can find every
//! child of a parent without keeping production in memory.

use std::collections::{BTreeSet, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::schema::{Kind, BUSINESSES, CITIES, FIELDS, FORMS, PARTNERS, TABLES};

/// One value, typed as the workload needs (JSON travels as text).
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Ts(NaiveDateTime),
}

impl V {
    pub fn int(&self) -> i64 {
        match self {
            V::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }
}

pub type Row = Vec<V>;

pub const DEFAULT_SEED: u64 = 20_250_601;

/// Text that exercises every quoting and encoding path: accents, CJK,
/// emoji (with joiners and flags), quotes, backslashes, newlines, tabs,
/// the words NULL and null, percent and underscore, markup.
const FRAGMENTS: &[&str] = &[
    "Café",
    "crème brûlée",
    "São Paulo",
    "Zürich",
    "Ærøskøbing",
    "naïve",
    "Łódź",
    "Škoda",
    "Ελληνικά",
    "Привет",
    "مرحبا",
    "東京",
    "北京市",
    "서울",
    "日本語のテキスト",
    "中文字段",
    "🍕",
    "🚀",
    "👩‍💻",
    "🇫🇷",
    "emoji 😀",
    "O'Brien",
    "it's",
    "\"quoted\"",
    "'single'",
    "back\\slash",
    "C:\\temp\\new",
    "\\N",
    "line\nbreak",
    "two\r\nlines",
    "tab\there",
    "NULL",
    "null",
    "100%",
    "50_50",
    "a;b",
    "<b>bold</b>",
    "market",
    "studio",
    "garden",
    "north",
    "blue",
    "express",
    "menu",
    "delivery",
    "order",
    "pickup",
    "Ωmega",
    "μ-service",
    "ünïcödé",
];

const EMOJI: &[&str] = &["📋", "📝", "✅", "🎉", "🛒", "🍔", "☕", "🚚", "⭐", "🔥", "🧾", "📦"];

const COUNTRIES: &[&str] = &[
    "France",
    "España",
    "Deutschland",
    "Côte d'Ivoire",
    "日本",
    "中国",
    "대한민국",
    "Ελλάδα",
    "Россия",
    "Brasil",
    "Türkiye",
    "México",
    "",
    "NULL",
];

const KINDS: &[&str] = &[
    "text", "number", "select", "checkbox", "date", "email", "phone", "textarea",
];
const THEMES: &[&str] = &["light", "dark", "système", "高コントラスト"];
const LOCALES: &[&str] = &["fr-FR", "en-GB", "es-ES", "ja-JP", "zh-CN", "de-DE", "pt-BR"];
const CURRENCIES: &[&str] = &["EUR", "USD", "JPY", "BRL", "GBP"];

/// The workload at one scale.
#[derive(Clone, Debug)]
pub struct Workload {
    pub scale: f64,
    pub seed: u64,
    /// Production rows per table (parents first).
    pub counts: [u64; 5],
    /// The row counts the change rates apply to: `counts`, unless the
    /// change set is sized for another scale (`with_change_scale`).
    pub change_counts: [u64; 5],
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn ts(base: NaiveDateTime, secs: i64) -> NaiveDateTime {
    base + chrono::Duration::seconds(secs)
}

fn day(y: i32, m: u32, d: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// Words joined by spaces, from `lo` to `hi` of them.
fn words(rng: &mut ChaCha8Rng, lo: usize, hi: usize) -> String {
    let n = rng.random_range(lo..=hi);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(*FRAGMENTS.choose(rng).unwrap_or(&"x"));
    }
    out.join(" ")
}

/// Free text that is sometimes empty or the literal NULL / null.
fn free_text(rng: &mut ChaCha8Rng, lo: usize, hi: usize) -> String {
    match rng.random_range(0..100) {
        0..=3 => String::new(),
        4..=5 => "NULL".into(),
        6..=7 => "null".into(),
        _ => words(rng, lo, hi),
    }
}

/// A unique name: words, then the row's id.
fn name(rng: &mut ChaCha8Rng, id: i64) -> String {
    format!("{} (#{id})", words(rng, 1, 3))
}

fn config(rng: &mut ChaCha8Rng, id: i64) -> String {
    let n_features = rng.random_range(1..=3);
    let features: Vec<&str> = (0..n_features)
        .map(|_| {
            *["orders", "booking", "loyalty", "menu", "chat", "reviews"]
                .choose(rng)
                .unwrap_or(&"x")
        })
        .collect();
    let v = json!({
        "theme": THEMES.choose(rng),
        "locale": LOCALES.choose(rng),
        "currency": CURRENCIES.choose(rng),
        "max_items": rng.random_range(1..500),
        "ratio": f64::from(rng.random_range(0..8u32)) * 0.25,
        "features": features,
        "welcome": words(rng, 1, 4),
        "support": {"email": format!("help+{id}@example.com"), "hours": "9–18"},
        "flags": {"beta": rng.random_bool(0.3), "dark_mode": rng.random_bool(0.5)},
    });
    v.to_string()
}

fn icon(rng: &mut ChaCha8Rng) -> V {
    if rng.random_bool(0.15) {
        return V::Null;
    }
    let mut b = vec![0u8; rng.random_range(1900..2200)];
    rng.fill_bytes(&mut b);
    // A PNG-like header, so the blob is not all noise.
    b[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
    V::Blob(b)
}

fn options(rng: &mut ChaCha8Rng) -> V {
    match rng.random_range(0..10) {
        0..=3 => V::Null,
        4..=7 => {
            let n = rng.random_range(2..=5);
            let choices: Vec<String> = (0..n).map(|_| words(rng, 1, 2)).collect();
            V::Text(json!({"choices": choices, "required": rng.random_bool(0.5)}).to_string())
        }
        _ => V::Text(json!({"placeholder": free_text(rng, 1, 3), "max_length": rng.random_range(1..256)}).to_string()),
    }
}

fn title(rng: &mut ChaCha8Rng) -> String {
    format!("{} {}", EMOJI.choose(rng).unwrap_or(&"*"), words(rng, 1, 4))
}

fn created(rng: &mut ChaCha8Rng) -> V {
    V::Ts(ts(day(2021, 1, 1), rng.random_range(0..3 * 365 * 86_400)))
}

/// A value for a changed column of an existing row.
fn changed(rng: &mut ChaCha8Rng, table: usize, col: &str, id: i64) -> V {
    match (table, col) {
        (_, "name") if table == BUSINESSES => V::Text(words(rng, 1, 4)),
        (_, "name") => V::Text(name(rng, id)),
        (_, "country") => V::Text((*COUNTRIES.choose(rng).unwrap_or(&"")).to_string()),
        (_, "config") => V::Text(config(rng, id)),
        (_, "icon") => icon(rng),
        (_, "title") => V::Text(title(rng)),
        (_, "label") => V::Text(free_text(rng, 1, 4)),
        (_, "kind") => V::Text((*KINDS.choose(rng).unwrap_or(&"text")).to_string()),
        (_, "position") => V::Int(rng.random_range(0..50)),
        (_, "options") => options(rng),
        _ => unreachable!("{col} is not generated here"),
    }
}

/// One row of `table` with its foreign keys given (in column order).
fn make_row(rng: &mut ChaCha8Rng, table: usize, id: i64, fks: &[i64]) -> Row {
    match table {
        CITIES => vec![
            V::Int(id),
            V::Text(name(rng, id)),
            V::Text((*COUNTRIES.choose(rng).unwrap_or(&"")).to_string()),
            created(rng),
        ],
        PARTNERS => vec![V::Int(id), V::Text(name(rng, id)), V::Int(fks[0]), created(rng)],
        BUSINESSES => vec![
            V::Int(id),
            V::Text(words(rng, 1, 4)),
            V::Int(fks[0]),
            V::Int(fks[1]),
            V::Text(config(rng, id)),
            icon(rng),
            created(rng),
        ],
        FORMS => vec![V::Int(id), V::Int(fks[0]), V::Text(title(rng)), created(rng)],
        _ => vec![
            V::Int(id),
            V::Int(fks[0]),
            V::Text(free_text(rng, 1, 4)),
            V::Text((*KINDS.choose(rng).unwrap_or(&"text")).to_string()),
            V::Int(rng.random_range(0..50)),
            options(rng),
            created(rng),
        ],
    }
}

/// The change set: staging = production + these operations, applied in
/// order (inserts parents first, updates, deletes children first).
#[derive(Clone, Debug, Default)]
pub struct ChangeSet {
    pub ops: Vec<Op>,
    pub inserted: [u64; 5],
    pub updated: [u64; 5],
    pub deleted: [u64; 5],
}

impl ChangeSet {
    pub fn total(counts: &[u64; 5]) -> u64 {
        counts.iter().sum()
    }
}

#[derive(Clone, Debug)]
pub enum Op {
    Insert {
        table: usize,
        row: Row,
    },
    /// Sets these (column index, value) pairs of row `id`.
    Update {
        table: usize,
        id: i64,
        set: Vec<(usize, V)>,
    },
    Delete {
        table: usize,
        id: i64,
    },
}

impl Workload {
    pub fn new(scale: f64, seed: u64) -> Workload {
        let scaled = |n: f64| ((n * scale).round() as u64).max(1);
        let counts = [1_000, 10_000, scaled(100_000.0), scaled(200_000.0), scaled(1_000_000.0)];
        Workload {
            scale,
            seed,
            counts,
            change_counts: counts,
        }
    }

    /// The same tables with the change set of scale `s` (its rates applied
    /// to the row counts of `s`): at S=1 with the change set of S=0.2, what
    /// grows with the tables shows apart from what grows with the changes.
    pub fn with_change_scale(mut self, s: f64) -> Workload {
        self.change_counts = Workload::new(s, self.seed).counts;
        self
    }

    pub fn total_rows(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn rng(&self, stream: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(splitmix(self.seed ^ stream.wrapping_mul(0x2545_F491_4F6C_DD1D)))
    }

    /// The production value of a foreign-key column (the `k`-th of its table).
    pub fn parent_of(&self, table: usize, k: usize, id: i64) -> i64 {
        let parent = self.parent_table(table, k);
        let h = splitmix(self.seed ^ splitmix(((table as u64) << 56) ^ ((k as u64) << 48) ^ id as u64));
        (h % self.counts[parent]) as i64 + 1
    }

    /// The table the `k`-th foreign key of `table` references.
    fn parent_table(&self, table: usize, k: usize) -> usize {
        let refs: Vec<&str> = TABLES[table].cols.iter().filter_map(|c| c.refs).collect();
        crate::schema::table_index(refs[k])
    }

    fn n_fks(table: usize) -> usize {
        TABLES[table].cols.iter().filter(|c| c.refs.is_some()).count()
    }

    /// Production's rows of a table, in id order.
    pub fn rows(&self, table: usize) -> impl Iterator<Item = Row> + '_ {
        let mut rng = self.rng(table as u64 + 1);
        let n = self.counts[table] as i64;
        let k = Self::n_fks(table);
        (1..=n).map(move |id| {
            let fks: Vec<i64> = (0..k).map(|i| self.parent_of(table, i, id)).collect();
            make_row(&mut rng, table, id, &fks)
        })
    }

    /// The change set (deterministic for the seed and scales).
    pub fn changes(&self) -> ChangeSet {
        let mut rng = self.rng(100);
        let mut cs = ChangeSet::default();

        // Deletes: 0.05% of each table's rows as roots (cities aside: every
        // table hangs off them), with every descendant.
        let mut deleted: Vec<BTreeSet<i64>> = vec![BTreeSet::new(); 5];
        for t in [PARTNERS, BUSINESSES, FORMS, FIELDS] {
            let k = (self.change_counts[t] as f64 * 0.0005).round() as usize;
            while deleted[t].len() < k {
                deleted[t].insert(rng.random_range(1..=self.counts[t] as i64));
            }
        }
        // Cascade: businesses of deleted partners, forms of deleted
        // businesses, fields of deleted forms.
        for (child, parent, k) in [(BUSINESSES, PARTNERS, 0), (FORMS, BUSINESSES, 0), (FIELDS, FORMS, 0)] {
            let gone = deleted[parent].clone();
            if gone.is_empty() {
                continue;
            }
            for id in 1..=self.counts[child] as i64 {
                if gone.contains(&self.parent_of(child, k, id)) {
                    deleted[child].insert(id);
                }
            }
        }

        // Inserts: 0.1% of each table, above the max id; children go under
        // new parents half of the time.
        let mut inserted: Vec<Vec<i64>> = vec![Vec::new(); 5];
        let mut insert_ops = Vec::new();
        for t in 0..5 {
            let n = (self.change_counts[t] as f64 * 0.001).round() as i64;
            for i in 1..=n {
                let id = self.counts[t] as i64 + i;
                let fks: Vec<i64> = (0..Self::n_fks(t))
                    .map(|k| {
                        let p = self.parent_table(t, k);
                        if !inserted[p].is_empty() && rng.random_bool(0.5) {
                            *inserted[p].choose(&mut rng).unwrap_or(&1)
                        } else {
                            self.live_id(&mut rng, p, &deleted[p])
                        }
                    })
                    .collect();
                let mut row = make_row(&mut rng, t, id, &fks);
                // The application stamps an insert as it stamps an update
                // (after every loaded row), which `changed` relies on: a
                // plan with a trace of deletes finds inserts by it alone.
                // From the id, not the generator, so the rest of the
                // change set is the same as before this stamp.
                row[TABLES[t].col_index("modified_at")] = V::Ts(ts(day(2025, 1, 1), id % (30 * 86_400)));
                insert_ops.push(Op::Insert { table: t, row });
                inserted[t].push(id);
            }
            cs.inserted[t] = n as u64;
        }

        // Updates: 1% of each table's surviving rows, one or two fields
        // plus modified_at.
        let mut update_ops = Vec::new();
        for t in 0..5 {
            let updatable: Vec<&str> = match t {
                CITIES => vec!["name", "country"],
                PARTNERS => vec!["name", "city_id"],
                BUSINESSES => vec!["name", "partner_id", "city_id", "config", "icon"],
                FORMS => vec!["title"],
                _ => vec!["label", "kind", "position", "options"],
            };
            let n = (self.change_counts[t] as f64 * 0.01).round() as usize;
            let mut chosen: HashSet<i64> = HashSet::new();
            let table = &TABLES[t];
            let ts_col = table.col_index("modified_at");
            while chosen.len() < n {
                let id = self.live_id(&mut rng, t, &deleted[t]);
                if !chosen.insert(id) {
                    continue;
                }
                let how_many = if updatable.len() > 1 && rng.random_bool(0.4) {
                    2
                } else {
                    1
                };
                let cols: Vec<&str> = updatable.choose_multiple(&mut rng, how_many).copied().collect();
                let mut set = Vec::new();
                for c in cols {
                    let i = table.col_index(c);
                    let v = match table.cols[i].refs {
                        Some(r) => {
                            let p = crate::schema::table_index(r);
                            V::Int(self.live_id(&mut rng, p, &deleted[p]))
                        }
                        None => changed(&mut rng, t, c, id),
                    };
                    set.push((i, v));
                }
                set.push((ts_col, V::Ts(ts(day(2025, 1, 1), rng.random_range(0..30 * 86_400)))));
                update_ops.push(Op::Update { table: t, id, set });
            }
            cs.updated[t] = n as u64;
        }

        let mut delete_ops = Vec::new();
        for t in (0..5).rev() {
            for id in &deleted[t] {
                delete_ops.push(Op::Delete { table: t, id: *id });
            }
            cs.deleted[t] = deleted[t].len() as u64;
        }
        cs.ops = insert_ops;
        cs.ops.extend(update_ops);
        cs.ops.extend(delete_ops);
        cs
    }

    /// A random production id of `table` that the change set keeps.
    fn live_id(&self, rng: &mut ChaCha8Rng, table: usize, deleted: &BTreeSet<i64>) -> i64 {
        loop {
            let id = rng.random_range(1..=self.counts[table] as i64);
            if !deleted.contains(&id) {
                return id;
            }
        }
    }
}

/// The kind of every column, for binding values.
pub fn kinds(table: usize) -> Vec<Kind> {
    TABLES[table].cols.iter().map(|c| c.kind).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized_as_the_readme_says() {
        let w = Workload::new(0.2, DEFAULT_SEED);
        assert_eq!(w.total_rows(), 271_000);
        let a: Vec<Row> = w.rows(BUSINESSES).take(50).collect();
        let b: Vec<Row> = w.rows(BUSINESSES).take(50).collect();
        assert_eq!(a, b);
        let cs = w.changes();
        assert_eq!(ChangeSet::total(&cs.updated), 2_710);
        assert_eq!(ChangeSet::total(&cs.inserted), 271);
        let deleted = ChangeSet::total(&cs.deleted);
        assert!((300..700).contains(&deleted), "{deleted} deleted");
        let again = w.changes();
        assert_eq!(format!("{:?}", cs.ops), format!("{:?}", again.ops));
    }

    #[test]
    fn a_change_set_sized_for_a_smaller_scale_changes_the_bigger_tables() {
        let w = Workload::new(0.05, DEFAULT_SEED).with_change_scale(0.01);
        assert_eq!(w.total_rows(), Workload::new(0.05, DEFAULT_SEED).total_rows());
        let cs = w.changes();
        let small = Workload::new(0.01, DEFAULT_SEED).changes();
        assert_eq!(cs.updated, small.updated);
        assert_eq!(cs.inserted, small.inserted);
        // New rows go above the big tables' max ids.
        let top = cs
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Insert { table: FIELDS, row } => Some(row[0].int()),
                _ => None,
            })
            .min();
        assert_eq!(top, Some(w.counts[FIELDS] as i64 + 1));
    }

    #[test]
    fn text_covers_the_hard_cases() {
        let w = Workload::new(0.01, DEFAULT_SEED);
        let all: String = w
            .rows(FIELDS)
            .flat_map(|r| r.into_iter())
            .filter_map(|v| match v {
                V::Text(s) => Some(format!("{s}\u{1}")),
                _ => None,
            })
            .collect();
        for needle in [
            "\n",
            "\t",
            "\\",
            "'",
            "\"",
            "東京",
            "🚀",
            "é",
            "\u{1}NULL\u{1}",
            "\u{1}null\u{1}",
            "\u{1}\u{1}",
        ] {
            assert!(all.contains(needle), "no {needle:?} in the generated text");
        }
        let configs: Vec<usize> = w
            .rows(BUSINESSES)
            .take(200)
            .map(|r| match &r[4] {
                V::Text(s) => s.len(),
                _ => 0,
            })
            .collect();
        let avg = configs.iter().sum::<usize>() / configs.len();
        assert!((150..=300).contains(&avg), "config averages {avg} bytes");
    }
}
