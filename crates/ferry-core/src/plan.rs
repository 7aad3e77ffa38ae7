//! The plan: what promoting a selection from one environment to the next
//! would change, entry by entry. A plan is what a person reviews and what
//! the engine applies.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::canonical::{hex, unhex, RowHash};
use crate::rules::SyncBase;
use crate::value::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Insert,
    Update,
    Delete,
    Conflict,
    Skip,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Conflict => "conflict",
            Action::Skip => "skip",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The target changed the row and the source did not.
    TargetNewer,
    /// The row exists only in the target and Ferry never synced it.
    TargetOnly,
    /// First contact: the rows differ and there is no sync base yet, so
    /// which side changed it is unknown: a conflict until decided.
    NoBase,
    /// Both sides changed different fields: merged.
    Merged,
    /// The row matches the table's `exclude` predicate, or needs a row
    /// that does (`depends_on`).
    Excluded,
    /// The row was left out with `--skip`, or needs a row that was
    /// (`depends_on`).
    LeftOut,
    PendingReview,
    /// Both sides changed the same field differently.
    BothChanged,
    /// Deleted in the target, changed in the source.
    DeletedInTarget,
    /// Deleted in the source, changed in the target.
    DeletedInSource,
    /// A child deleted because its parent is deleted.
    ParentDeleted,
    /// `--take target` decided the row: the target's version stays and is
    /// recorded as in sync.
    KeptTarget,
    /// `--take source` decided the row: the source's version is written.
    TakenSource,
    /// A natural-key row matched for the first time, equal on both sides:
    /// the promotion records the id mapping and nothing else.
    Matched,
    /// The row's values in a unique constraint of the target are held by
    /// another target row (or another row of the plan): the target would
    /// refuse the write. Not resolved by `--force` or `--take`.
    UniqueCollision,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::TargetNewer => "target-newer",
            Reason::TargetOnly => "target-only",
            Reason::NoBase => "no-base",
            Reason::Merged => "merged",
            Reason::Excluded => "excluded",
            Reason::LeftOut => "left-out",
            Reason::PendingReview => "pending-review",
            Reason::BothChanged => "both-changed",
            Reason::DeletedInTarget => "deleted-in-target",
            Reason::DeletedInSource => "deleted-in-source",
            Reason::ParentDeleted => "parent-deleted",
            Reason::KeptTarget => "kept-target",
            Reason::TakenSource => "taken-source",
            Reason::Matched => "matched",
            Reason::UniqueCollision => "unique-collision",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One changed (or conflicting) column of a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub column: String,
    #[serde(default, with = "tagged_opt", skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    #[serde(default, with = "tagged_opt", skip_serializing_if = "Option::is_none")]
    pub target: Option<Value>,
    /// For conflicts: the value at the last sync, when Ferry kept it (rows
    /// it promoted); `None` when the base was not kept (baselined rows).
    #[serde(default, with = "tagged_opt", skip_serializing_if = "Option::is_none")]
    pub base: Option<Value>,
}

/// An id inside a JSON column waiting for the id the target assigns the
/// row it names: the column, the concrete path (`$.a[2].id`) and the
/// referenced table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredJson {
    pub column: String,
    pub path: String,
    pub table: String,
}

/// One row of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanEntry {
    pub table: String,
    /// The row's key, canonical (in the target's types).
    #[serde(with = "tagged_vec")]
    pub key: Vec<Value>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Changed columns (update), conflicting columns (conflict).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDiff>,
    /// For updates: the compared columns to write from the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
    /// The source row (key + compared columns, canonical) to write.
    #[serde(default, with = "tagged_opt_vec", skip_serializing_if = "Option::is_none")]
    pub source: Option<Vec<Value>>,
    /// The target row hash this entry expects at apply time; `None`: the
    /// target must not have the row.
    #[serde(default, with = "hash_opt", skip_serializing_if = "Option::is_none")]
    pub expect_target: Option<RowHash>,
    /// Packed per-field hashes of the source row, recorded as the sync base.
    #[serde(default, with = "hex_bytes", skip_serializing_if = "Vec::is_empty")]
    pub source_fields: Vec<u8>,
    /// Row hash of the source row (the new sync base).
    #[serde(default, with = "hash_opt", skip_serializing_if = "Option::is_none")]
    pub source_hash: Option<RowHash>,
    /// Why a row outside the selection is in the plan: `table:key.column`
    /// of the row that references it, or the parent it travels with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled_by: Option<String>,
    /// For a row left behind (`skip`, reason `excluded`) because a row it
    /// references is: that row, `table:key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<String>,
    /// For conflicts: whether the base values of `fields` are known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base_kept: bool,
    /// Tables matched by a natural key: the key of the matched target row
    /// (`key` is then the source row's key). `None` for a new row, whose key
    /// the target assigns.
    #[serde(default, with = "tagged_opt_vec", skip_serializing_if = "Option::is_none")]
    pub target_key: Option<Vec<Value>>,
    /// Reference columns whose value is the source key of a natural-key row
    /// this plan inserts: rewritten to the id the target assigns it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<String>,
    /// Ids inside JSON columns (`json_references`) that are the source key
    /// of a natural-key row this plan inserts (their column is in
    /// `deferred` too): rewritten to the id the target assigns it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred_json: Vec<DeferredJson>,
    /// For a `unique-collision`: the unique columns with the values the row
    /// would write, and the other row that holds them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collides_with: Option<String>,
    /// The sync base the planner found for the row (`Some(None)`: none),
    /// in memory only: see [`Plan::under_lock`].
    #[serde(skip)]
    pub base: InMemory<Option<Option<SyncBase>>>,
}

impl PlanEntry {
    pub fn is_change(&self) -> bool {
        matches!(self.action, Action::Insert | Action::Update | Action::Delete)
    }

    /// The row's key in the target (differs from `key` for natural-key tables).
    pub fn target_key(&self) -> &[Value] {
        self.target_key.as_deref().unwrap_or(&self.key)
    }

    /// `table:key` as the command line writes it.
    pub fn label(&self) -> String {
        format!("{}:{}", self.table, key_label(&self.key))
    }
}

/// A key as the command line writes it: values joined by commas.
pub fn key_label(key: &[Value]) -> String {
    key.iter().map(Value::display_text).collect::<Vec<_>>().join(",")
}

/// Which side `--take` gives a row to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Target,
}

impl PlanEntry {
    /// The entry as the source's change: what `--force` does to a conflict
    /// and `--take source` to a conflict or a target-newer row.
    pub fn source_wins(&self) -> PlanEntry {
        let mut e = self.clone();
        e.action = match (e.reason, &e.source, e.expect_target) {
            (Some(Reason::DeletedInSource), _, _) | (_, None, _) => Action::Delete,
            (_, Some(_), None) => Action::Insert,
            _ => Action::Update,
        };
        if e.action == Action::Update && e.set.is_empty() {
            e.set = e.fields.iter().map(|f| f.column.clone()).collect();
        }
        e
    }

    /// Decides a conflicting or target-newer row for one side.
    pub fn take(&self, side: Side) -> PlanEntry {
        match side {
            Side::Source => {
                let mut e = self.source_wins();
                e.reason = Some(Reason::TakenSource);
                e
            }
            Side::Target => {
                let mut e = self.clone();
                e.action = Action::Skip;
                e.reason = Some(Reason::KeptTarget);
                e
            }
        }
    }
}

/// Counts of changes by action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
    pub conflict: u64,
    pub skip: u64,
    /// Rows recorded as in sync (baseline).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub synced: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    pub fn add(&mut self, a: Action) {
        match a {
            Action::Insert => self.insert += 1,
            Action::Update => self.update += 1,
            Action::Delete => self.delete += 1,
            Action::Conflict => self.conflict += 1,
            Action::Skip => self.skip += 1,
        }
    }
    pub fn changes(&self) -> u64 {
        self.insert + self.update + self.delete
    }
}

/// The plan for one promotion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub from: String,
    pub to: String,
    /// When the plan was made (RFC 3339, UTC).
    pub created_at: String,
    /// The selection, as the command line gave it.
    pub selection: Vec<String>,
    /// Tables in apply order (parents first).
    pub tables: Vec<String>,
    /// Key columns of every table.
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<String>>,
    /// Columns of the row images (`source`) of every table: key, then compared.
    #[serde(default)]
    pub columns: BTreeMap<String, Vec<String>>,
    /// Every table as resolved against both schemas when the plan was made:
    /// with them a saved plan applies without its source environment.
    #[serde(default)]
    pub specs: BTreeMap<String, crate::spec::TableSpec>,
    pub entries: Vec<PlanEntry>,
    /// Rows left behind because they match `exclude`, per table.
    #[serde(default)]
    pub excluded: BTreeMap<String, u64>,
    /// Results of the target environment's source-side `sql` checks, run
    /// when the plan was saved: promoting the saved plan takes them from
    /// here (the source may be gone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// blake3 of the saved plan with this field and `signature` empty
    /// (see [`Plan::to_file`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// A keyed blake3 MAC of `hash` under the key of `FERRY_PLAN_KEY`, when
    /// the plan was saved with one (see [`PlanKey`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// Whether the plan was made under the target's writer lock, held until
    /// it is applied: then no other writer can have changed the sync bases
    /// its entries carry, and the promotion journals them without reading
    /// them again. Never saved: a plan read from a file reads them.
    #[serde(skip)]
    pub under_lock: InMemory<bool>,
    /// Per table read whole that declares `changed`: the high-water marks
    /// of both sides before it was read. Applying the plan records them
    /// as the pair's watermark when it leaves the table in sync. Never
    /// saved: a saved plan records none.
    #[serde(skip)]
    pub marks: InMemory<BTreeMap<String, crate::watermark::Watermark>>,
    /// What the planner says once about how it read the tables (a table
    /// with `changed` read whole, and why). Never saved.
    #[serde(skip)]
    pub notes: InMemory<Vec<String>>,
}

/// What a plan carries in memory only: never saved, and no part of what the
/// plan says (two plans that differ only here are equal).
#[derive(Clone, Copy, Debug, Default)]
pub struct InMemory<T>(pub T);

impl<T> PartialEq for InMemory<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The result of one gate check, as a saved plan carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check as configured: its SQL text or its command.
    pub check: String,
    /// `source` or `target` (sql checks), `command`.
    pub side: String,
    pub passed: bool,
    /// What the check returned or printed (trimmed).
    #[serde(default)]
    pub output: String,
}

pub const PLAN_FORMAT: u32 = 1;

/// Why a saved plan cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanFileError(pub String);

/// The key that signs saved plans and checks their signature, derived from
/// a shared secret (`FERRY_PLAN_KEY`). It never prints.
#[derive(Clone)]
pub struct PlanKey([u8; 32]);

impl std::fmt::Debug for PlanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanKey(***)")
    }
}

impl PlanKey {
    /// The key of a secret text; an empty secret is refused, since it
    /// would sign with a key everyone knows.
    pub fn from_secret(secret: &str) -> Result<PlanKey, PlanFileError> {
        if secret.is_empty() {
            return Err(PlanFileError(
                "FERRY_PLAN_KEY is set but empty; set it to the shared secret that signs plans, or unset it".into(),
            ));
        }
        Ok(PlanKey(blake3::derive_key(
            "ferry 2026-12 saved plan signature v1",
            secret.as_bytes(),
        )))
    }

    fn sign(&self, hash: &str) -> blake3::Hash {
        blake3::keyed_hash(&self.0, hash.as_bytes())
    }
}

impl Plan {
    fn digest(&self) -> String {
        let mut unsealed = self.clone();
        unsealed.hash.clear();
        unsealed.signature.clear();
        let bytes = serde_json::to_vec(&unsealed).unwrap_or_default();
        blake3::hash(&bytes).to_hex().to_string()
    }

    /// The plan as a self-contained file: format version, row images, the
    /// target state it expects, the table specs and a hash over all of it.
    pub fn to_file(&self) -> String {
        self.to_file_signed(None)
    }

    /// [`Plan::to_file`], signed with `key` when there is one.
    pub fn to_file_signed(&self, key: Option<&PlanKey>) -> String {
        let mut sealed = self.clone();
        sealed.hash = self.digest();
        sealed.signature = key
            .map(|k| k.sign(&sealed.hash).to_hex().to_string())
            .unwrap_or_default();
        serde_json::to_string_pretty(&sealed).unwrap_or_default()
    }

    /// Refuses a plan that `key` did not sign: unsigned, or signed with
    /// another key, or whose content changed since (the signature covers
    /// the hash, and the hash everything else).
    pub fn verify_signature(&self, key: &PlanKey) -> Result<(), PlanFileError> {
        if self.signature.is_empty() {
            return Err(PlanFileError(
                "the plan is not signed, and FERRY_PLAN_KEY requires signed plans; save the plan again where FERRY_PLAN_KEY is set".into(),
            ));
        }
        let expected = key.sign(&self.digest());
        // blake3::Hash compares in constant time.
        match blake3::Hash::from_hex(&self.signature) {
            Ok(given) if given == expected => Ok(()),
            _ => Err(PlanFileError(
                "the plan's signature does not match: it was signed with another FERRY_PLAN_KEY, or changed after it was signed; make and review a new plan".into(),
            )),
        }
    }

    /// Reads a plan file written by [`Plan::to_file`], refusing one of
    /// another format or one edited since it was written.
    pub fn from_file(text: &str) -> Result<Plan, PlanFileError> {
        let head: serde_json::Value =
            serde_json::from_str(text).map_err(|e| PlanFileError(format!("not a Ferry plan (invalid JSON: {e})")))?;
        match head.get("format").and_then(serde_json::Value::as_u64) {
            Some(f) if f == u64::from(PLAN_FORMAT) => {}
            Some(f) => {
                return Err(PlanFileError(format!(
                    "plan format {f} is not the format this Ferry reads ({PLAN_FORMAT}); make the plan again with this version"
                )))
            }
            None => return Err(PlanFileError("not a Ferry plan (no `format`)".into())),
        }
        let plan: Plan = serde_json::from_value(head).map_err(|e| PlanFileError(format!("not a Ferry plan: {e}")))?;
        if plan.hash.is_empty() || plan.hash != plan.digest() {
            return Err(PlanFileError(
                "the plan's hash does not match its content: it was edited after it was made; make and review a new plan".into(),
            ));
        }
        Ok(plan)
    }

    /// A hash of what the plan would do (blake3, hex): the route, the
    /// selection, the tables with their keys and row columns, every field
    /// of every entry (row images, actions, the target hashes it expects,
    /// the new sync bases) and the rows left out by `exclude`. Not when it
    /// was made, its checks, its file hash or signature, nor anything held
    /// in memory only: two plans of the same databases made at different
    /// times hash the same, and any change to a row either side, an action
    /// or an expected target hash changes it. A front end shows a plan with
    /// this hash, and a promotion made under the writer lock can then
    /// refuse to apply anything but what was shown.
    pub fn content_hash(&self) -> String {
        /// What the hash covers, in a fixed order (the serde order of the
        /// fields, the key order of the maps).
        #[derive(Serialize)]
        struct Content<'a> {
            from: &'a str,
            to: &'a str,
            selection: &'a [String],
            tables: &'a [String],
            keys: &'a BTreeMap<String, Vec<String>>,
            columns: &'a BTreeMap<String, Vec<String>>,
            entries: &'a [PlanEntry],
            excluded: &'a BTreeMap<String, u64>,
        }
        let content = Content {
            from: &self.from,
            to: &self.to,
            selection: &self.selection,
            tables: &self.tables,
            keys: &self.keys,
            columns: &self.columns,
            entries: &self.entries,
            excluded: &self.excluded,
        };
        let mut hasher = blake3::Hasher::new_derive_key("ferry 2026-12 plan content v1");
        // Writing into a hasher cannot fail, and every field serializes
        // (the entries are written the same way to a plan file); serde
        // streams into the hasher, so the plan is never copied.
        if let Err(e) = serde_json::to_writer(&mut hasher, &content) {
            unreachable!("a plan's content always serializes: {e}");
        }
        hasher.finalize().to_hex().to_string()
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for e in &self.entries {
            c.add(e.action);
        }
        c
    }

    pub fn conflicts(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries.iter().filter(|e| e.action == Action::Conflict)
    }

    /// The key of an entry as (column, value) pairs.
    pub fn named_key(&self, e: &PlanEntry) -> Vec<(String, Value)> {
        let cols = self.keys.get(&e.table).cloned().unwrap_or_default();
        cols.into_iter().zip(e.key.iter().cloned()).collect()
    }

    pub fn has_changes(&self) -> bool {
        self.entries.iter().any(PlanEntry::is_change)
    }
}

mod tagged_vec {
    use super::Value;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Value], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(Value::to_tagged))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
        let raw = Vec::<serde_json::Value>::deserialize(d)?;
        raw.iter()
            .map(|j| Value::from_tagged(j).ok_or_else(|| serde::de::Error::custom(format!("bad value {j}"))))
            .collect()
    }
}

mod tagged_opt_vec {
    use super::Value;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<Value>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_seq(v.iter().map(Value::to_tagged)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Value>>, D::Error> {
        let raw = Option::<Vec<serde_json::Value>>::deserialize(d)?;
        raw.map(|raw| {
            raw.iter()
                .map(|j| Value::from_tagged(j).ok_or_else(|| serde::de::Error::custom(format!("bad value {j}"))))
                .collect()
        })
        .transpose()
    }
}

/// An optional value whose `None` is left out of the file (the fields
/// using it skip it), so that a JSON `null` is the value NULL: a field
/// changed to or from NULL, or a NULL base, reads back as it was written.
mod tagged_opt {
    use super::Value;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().map(Value::to_tagged).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        let j = serde_json::Value::deserialize(d)?;
        Value::from_tagged(&j)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("bad value {j}")))
    }
}

mod hash_opt {
    use super::{hex, unhex, RowHash};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<RowHash>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().map(|h| hex(h)).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RowHash>, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        raw.map(|s| {
            unhex(&s)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| serde::de::Error::custom("bad row hash"))
        })
        .transpose()
    }
}

mod hex_bytes {
    use super::{hex, unhex};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let raw = String::deserialize(d)?;
        unhex(&raw).ok_or_else(|| serde::de::Error::custom("bad hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_plan() -> Plan {
        serde_json::from_value(serde_json::json!({
            "format": PLAN_FORMAT, "from": "staging", "to": "production",
            "created_at": "2026-12-06T00:00:00Z", "selection": [], "tables": ["t"],
            "columns": {"t": ["name"]}, "entries": []
        }))
        .unwrap()
    }

    #[test]
    fn a_signed_plan_verifies_only_with_its_key_and_content() {
        let key = PlanKey::from_secret("s3cret").unwrap();
        let other = PlanKey::from_secret("other").unwrap();
        let plan = small_plan();
        let signed = Plan::from_file(&plan.to_file_signed(Some(&key))).unwrap();
        assert!(!signed.signature.is_empty());
        signed.verify_signature(&key).unwrap();
        let e = signed.verify_signature(&other).unwrap_err().to_string();
        assert!(e.contains("signature does not match"), "{e}");

        // Unsigned.
        let unsigned = Plan::from_file(&plan.to_file()).unwrap();
        let e = unsigned.verify_signature(&key).unwrap_err().to_string();
        assert!(e.contains("not signed"), "{e}");

        // Edited, with its hash recomputed (anyone can) and the old signature kept.
        let mut forged = signed.clone();
        forged.to = "preprod".into();
        let mut forged = Plan::from_file(&forged.to_file()).unwrap();
        forged.signature = signed.signature.clone();
        let e = forged.verify_signature(&key).unwrap_err().to_string();
        assert!(e.contains("signature does not match"), "{e}");

        assert!(PlanKey::from_secret("").is_err());
        assert_eq!(format!("{key:?}"), "PlanKey(***)");
    }

    /// A plan with one update and one insert, as two plannings of the same
    /// databases would make it (`created_at` aside).
    fn plan_with_entries(created_at: &str) -> Plan {
        serde_json::from_value(serde_json::json!({
            "format": PLAN_FORMAT, "from": "staging", "to": "production",
            "created_at": created_at, "selection": ["--table t"], "tables": ["t"],
            "keys": {"t": ["id"]}, "columns": {"t": ["id", "name"]},
            "entries": [
                {"table": "t", "key": [["int", "1"]], "action": "update", "set": ["name"],
                 "fields": [{"column": "name", "source": ["text", "new"], "target": ["text", "old"]}],
                 "source": [["int", "1"], ["text", "new"]], "expect_target": "00112233445566778899aabbccddeeff",
                 "source_fields": "0011223344556677", "source_hash": "ffeeddccbbaa99887766554433221100"},
                {"table": "t", "key": [["int", "2"]], "action": "insert", "source": [["int", "2"], ["text", "two"]],
                 "source_fields": "8899aabbccddeeff", "source_hash": "0123456789abcdef0123456789abcdef"}
            ],
            "excluded": {"t": 1}
        }))
        .unwrap()
    }

    #[test]
    fn the_content_hash_ignores_when_and_how_a_plan_was_sealed() {
        let a = plan_with_entries("2026-12-06T00:00:00Z");
        let mut b = plan_with_entries("2026-12-07T09:30:00Z");
        assert_eq!(a.content_hash(), b.content_hash());
        assert_eq!(a.content_hash().len(), 64);
        assert!(a.content_hash().chars().all(|c| c.is_ascii_hexdigit()));
        // Checks, the file hash, the signature and what is held in memory
        // are not what the plan would do.
        b.checks.push(CheckResult {
            check: "SELECT 1".into(),
            side: "source".into(),
            passed: true,
            output: "1".into(),
        });
        b.under_lock.0 = true;
        b.entries[0].base.0 = Some(None);
        let sealed = Plan::from_file(&b.to_file_signed(Some(&PlanKey::from_secret("k").unwrap()))).unwrap();
        assert!(!sealed.hash.is_empty() && !sealed.signature.is_empty());
        assert_eq!(sealed.content_hash(), a.content_hash());
    }

    #[test]
    fn the_content_hash_changes_with_anything_the_plan_would_do() {
        let base = plan_with_entries("2026-12-06T00:00:00Z").content_hash();
        type Edit = Box<dyn Fn(&mut Plan)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "row image",
                Box::new(|p| p.entries[0].source = Some(vec![Value::Int(1), Value::Text("newer".into())])),
            ),
            (
                "field value",
                Box::new(|p| p.entries[0].fields[0].target = Some(Value::Text("older".into()))),
            ),
            ("action", Box::new(|p| p.entries[0].action = Action::Conflict)),
            ("reason", Box::new(|p| p.entries[0].reason = Some(Reason::Merged))),
            (
                "expected target",
                Box::new(|p| p.entries[0].expect_target = Some([7; 16])),
            ),
            (
                "target expected absent",
                Box::new(|p| p.entries[0].expect_target = None),
            ),
            ("new sync base", Box::new(|p| p.entries[1].source_hash = Some([9; 16]))),
            ("field hashes", Box::new(|p| p.entries[1].source_fields = vec![0; 8])),
            (
                "an entry fewer",
                Box::new(|p| {
                    p.entries.pop();
                }),
            ),
            ("entry order", Box::new(|p| p.entries.reverse())),
            ("key", Box::new(|p| p.entries[1].key = vec![Value::Int(3)])),
            ("route", Box::new(|p| p.to = "preprod".into())),
            ("selection", Box::new(|p| p.selection = vec!["--id t:1".into()])),
            (
                "columns",
                Box::new(|p| {
                    p.columns
                        .insert("t".into(), vec!["id".into(), "title".into()])
                        .map(drop)
                        .unwrap_or(())
                }),
            ),
            (
                "keys",
                Box::new(|p| p.keys.insert("t".into(), vec!["uuid".into()]).map(drop).unwrap_or(())),
            ),
            ("tables", Box::new(|p| p.tables.push("u".into()))),
            (
                "excluded",
                Box::new(|p| p.excluded.insert("t".into(), 2).map(drop).unwrap_or(())),
            ),
        ];
        let mut seen = std::collections::HashSet::from([base.clone()]);
        for (what, edit) in edits {
            let mut p = plan_with_entries("2026-12-06T00:00:00Z");
            edit(&mut p);
            let h = p.content_hash();
            assert_ne!(h, base, "changing the {what} kept the hash");
            assert!(seen.insert(h), "changing the {what} gave the hash of another change");
        }
    }

    #[test]
    fn null_field_values_survive_a_saved_plan() {
        let known = FieldDiff {
            column: "qty".into(),
            source: Some(Value::Int(1)),
            target: Some(Value::Null),
            base: Some(Value::Null),
        };
        let unknown = FieldDiff {
            base: None,
            ..known.clone()
        };
        for f in [known, unknown] {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<FieldDiff>(&json).unwrap(), f, "{json}");
        }
    }
}
