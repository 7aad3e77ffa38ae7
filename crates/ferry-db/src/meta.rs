//! Ferry's own tables in each target database, created and upgraded by
//! versioned migrations per dialect (like a migration tool's history table).
//!
//! - `_ferry_schema`: the migration version reached.
//! - `_ferry_promotions`: one row per promotion, revert or baseline.
//! - `_ferry_journal`: per promoted row, its before- and after-images and
//!   its previous sync base, so a revert restores both.
//! - `_ferry_audit`: every action and every refusal, who, when, result.
//! - `_ferry_reviews`: reviews in environments with `review = true`, with
//!   the plan they hold.
//! - `_ferry_branches`: the per-branch environments cloned from this one
//!   (name, branch, where they promote, who made them and when, merged at,
//!   the time they may live after the merge, and when they expire).
//! - `_ferry_watermarks` (since v6): per (source environment, table with
//!   `changed`), the high-water mark of each side's `changed` column at the
//!   last sync that left the whole table in sync, and when it was taken; a
//!   row whose `peer_env` is empty says when Ferry last wrote rows of the
//!   table here with `changed` values older than the write (a revert, a
//!   refresh, a promotion that does not stamp the column).
//! - `_ferry_sync`: the sync base, per (source environment, table, key):
//!   the row hash and packed per-field hashes at the last sync, and for
//!   natural-key tables the key of the matched target row (the id mapping).

use ferry_core::schema::{ColumnSchema, TableSchema};
use ferry_core::value::{ColumnType, LogicalType};

use crate::dialect::Dialect;

pub const SCHEMA: &str = "_ferry_schema";
pub const PROMOTIONS: &str = "_ferry_promotions";
pub const JOURNAL: &str = "_ferry_journal";
pub const SYNC: &str = "_ferry_sync";
pub const AUDIT: &str = "_ferry_audit";
pub const REVIEWS: &str = "_ferry_reviews";
pub const BRANCHES: &str = "_ferry_branches";
pub const WATERMARKS: &str = "_ferry_watermarks";
/// The trace of deletes of tables with `track_deletes` (one row per
/// deleted key, written by the triggers `ferry track` installs; rows with
/// a `kind` say when the trace began or was broken).
pub const DELETED: &str = "_ferry_deleted";

pub const WATERMARK_COLUMNS: [&str; 6] = [
    "peer_env",
    "table_name",
    "source_mark",
    "target_mark",
    "taken_at",
    "promotion_id",
];

pub const BRANCH_COLUMNS: [&str; 9] = [
    "name",
    "branch",
    "from_env",
    "promotes_to",
    "created_by",
    "created_at",
    "merged_at",
    "ttl_secs",
    "expires_at",
];

pub const AUDIT_COLUMNS: [&str; 9] = [
    "id",
    "at",
    "user_name",
    "action",
    "source_env",
    "target_env",
    "result",
    "detail",
    "ref_id",
];
pub const REVIEW_COLUMNS: [&str; 10] = [
    "id",
    "source_env",
    "target_env",
    "user_name",
    "at",
    "status",
    "plan",
    "draft_promotion",
    "decided_by",
    "decided_at",
];

pub const PROMOTION_COLUMNS: [&str; 11] = [
    "id",
    "kind",
    "source_env",
    "target_env",
    "user_name",
    "at",
    "selection",
    "counts",
    "plan_hash",
    "reverts",
    "reverted_by",
];
pub const JOURNAL_COLUMNS: [&str; 9] = [
    "promotion_id",
    "seq",
    "table_name",
    "row_key",
    "action",
    "before_image",
    "after_image",
    "base_before",
    "source_key",
];
pub const SYNC_COLUMNS: [&str; 7] = [
    "source_env",
    "table_name",
    "row_key",
    "row_hash",
    "field_hashes",
    "promotion_id",
    "target_key",
];

pub fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The migrations of `dialect`, in order; migration `i` brings the schema to
/// version `i + 1`.
pub fn migrations(dialect: Dialect) -> Vec<Vec<String>> {
    let (text, long_text, blob, key_text) = match dialect {
        Dialect::Sqlite => ("TEXT", "TEXT", "BLOB", "TEXT"),
        Dialect::Postgres => ("TEXT", "TEXT", "BYTEA", "TEXT"),
        // Keys must fit an index: 255 characters of utf8mb4.
        Dialect::Mysql => ("VARCHAR(255)", "LONGTEXT", "BLOB", "VARCHAR(255)"),
    };
    let bigint = if dialect == Dialect::Sqlite {
        "INTEGER"
    } else {
        "BIGINT"
    };
    let q = |s: &str| dialect.ident(s);
    vec![vec![
        format!("CREATE TABLE {} (version {bigint} NOT NULL)", q(SCHEMA)),
        format!(
            "CREATE TABLE {} (id {key_text} NOT NULL PRIMARY KEY, kind {text} NOT NULL, source_env {text}, \
             target_env {text} NOT NULL, user_name {text} NOT NULL, at {text} NOT NULL, selection {long_text} NOT NULL, \
             counts {long_text} NOT NULL, plan_hash {text}, reverts {text}, reverted_by {text})",
            q(PROMOTIONS)
        ),
        format!(
            "CREATE TABLE {} (promotion_id {key_text} NOT NULL, seq {bigint} NOT NULL, table_name {text} NOT NULL, \
             row_key {long_text} NOT NULL, action {text} NOT NULL, before_image {long_text}, after_image {long_text}, \
             base_before {long_text}, PRIMARY KEY (promotion_id, seq))",
            q(JOURNAL)
        ),
        format!(
            "CREATE TABLE {} (source_env {key_text} NOT NULL, table_name {key_text} NOT NULL, row_key {key_text} NOT NULL, \
             row_hash {blob} NOT NULL, field_hashes {blob} NOT NULL, promotion_id {text}, \
             PRIMARY KEY (source_env, table_name, row_key))",
            q(SYNC)
        ),
    ],
    // v2: the id mapping of tables matched by a natural key, and the source
    // key of a journalled row whose target key differs.
    vec![
        format!("ALTER TABLE {} ADD COLUMN target_key {long_text}", q(SYNC)),
        format!("ALTER TABLE {} ADD COLUMN source_key {long_text}", q(JOURNAL)),
    ],
    // v3: the audit trail (every action and refusal) and reviews.
    vec![
        format!(
            "CREATE TABLE {} (id {key_text} NOT NULL PRIMARY KEY, at {text} NOT NULL, user_name {text} NOT NULL, \
             action {text} NOT NULL, source_env {text}, target_env {text} NOT NULL, result {text} NOT NULL, \
             detail {long_text}, ref_id {text})",
            q(AUDIT)
        ),
        format!(
            "CREATE TABLE {} (id {key_text} NOT NULL PRIMARY KEY, source_env {text} NOT NULL, target_env {text} NOT NULL, \
             user_name {text} NOT NULL, at {text} NOT NULL, status {text} NOT NULL, plan {long_text} NOT NULL, \
             draft_promotion {text}, decided_by {text}, decided_at {text})",
            q(REVIEWS)
        ),
    ],
    // v4: on SQLite the sync base is clustered by its key (`WITHOUT
    // ROWID`): a lookup or an upsert descends one b-tree instead of the
    // key's index and then the table, and a promotion dirties half as many
    // pages. PostgreSQL keeps its heap; InnoDB clusters by the key already.
    match dialect {
        Dialect::Sqlite => {
            let next = format!("{SYNC}_v4");
            vec![
                format!(
                    "CREATE TABLE {} (source_env TEXT NOT NULL, table_name TEXT NOT NULL, row_key TEXT NOT NULL, \
                     row_hash BLOB NOT NULL, field_hashes BLOB NOT NULL, promotion_id TEXT, target_key TEXT, \
                     PRIMARY KEY (source_env, table_name, row_key)) WITHOUT ROWID",
                    q(&next)
                ),
                format!(
                    "INSERT INTO {} SELECT {cols} FROM {}",
                    q(&next),
                    q(SYNC),
                    cols = SYNC_COLUMNS.map(q).join(", ")
                ),
                format!("DROP TABLE {}", q(SYNC)),
                format!("ALTER TABLE {} RENAME TO {}", q(&next), q(SYNC)),
            ]
        }
        Dialect::Postgres | Dialect::Mysql => Vec::new(),
    },
    // v5: the registry of per-branch environments cloned from this one.
    vec![format!(
        "CREATE TABLE {} (name {key_text} NOT NULL PRIMARY KEY, branch {long_text} NOT NULL, from_env {text} NOT NULL, \
         promotes_to {text} NOT NULL, created_by {text} NOT NULL, created_at {text} NOT NULL, merged_at {text}, \
         ttl_secs {bigint}, expires_at {text})",
        q(BRANCHES)
    )],
    // v6: the watermarks of tables with `changed` (change-proportional plans).
    vec![format!(
        "CREATE TABLE {} (peer_env {key_text} NOT NULL, table_name {key_text} NOT NULL, source_mark {text}, \
         target_mark {text}, taken_at {text} NOT NULL, promotion_id {text}, PRIMARY KEY (peer_env, table_name))",
        q(WATERMARKS)
    )],
    // v7: the trace of deletes (`track_deletes`): `at` is UTC text
    // (`YYYY-MM-DD HH:MM:SS.ffffff`), `kind` NULL for a deleted key,
    // `installed` or `truncated` otherwise.
    vec![
        format!(
            "CREATE TABLE {} (table_name {key_text} NOT NULL, row_key {bigint}, at {key_text} NOT NULL, kind {text})",
            q(DELETED)
        ),
        format!(
            "CREATE INDEX {} ON {} (table_name, at)",
            q(&format!("{DELETED}_at")),
            q(DELETED)
        ),
    ]]
}

/// The schema of one of Ferry's own tables as a store without SQL keeps
/// them (a `dir:` folder, MongoDB): its columns, text but for the
/// integers and hashes, and its key.
pub fn record_schema(table: &str) -> Option<TableSchema> {
    let (columns, key): (&[&str], &[&str]) = match table {
        PROMOTIONS => (&PROMOTION_COLUMNS, &["id"]),
        JOURNAL => (&JOURNAL_COLUMNS, &["promotion_id", "seq"]),
        SYNC => (&SYNC_COLUMNS, &["source_env", "table_name", "row_key"]),
        AUDIT => (&AUDIT_COLUMNS, &["id"]),
        REVIEWS => (&REVIEW_COLUMNS, &["id"]),
        BRANCHES => (&BRANCH_COLUMNS, &["name"]),
        _ => return None,
    };
    let ty = |name: &str| match name {
        "seq" | "ttl_secs" => LogicalType::Int,
        "row_hash" | "field_hashes" => LogicalType::Bytes,
        _ => LogicalType::Text,
    };
    Some(TableSchema {
        name: table.to_string(),
        columns: columns
            .iter()
            .map(|c| ColumnSchema {
                name: c.to_string(),
                declared: ty(c).name().to_string(),
                ty: ColumnType::new(ty(c)),
                nullable: !key.contains(c),
                has_default: false,
                auto_increment: false,
            })
            .collect(),
        primary_key: key.iter().map(|s| s.to_string()).collect(),
        foreign_keys: Vec::new(),
        unique: Vec::new(),
        open_fields: None,
        carried: Vec::new(),
    })
}
