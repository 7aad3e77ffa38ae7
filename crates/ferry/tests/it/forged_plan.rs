//! A saved plan is only hashed, not trusted: anyone can edit the file and
//! hash it again (`Plan::to_file` does). `promote --plan` applies it only to
//! tables `ferry.toml` manages, described as the configuration and the
//! target's schema describe them, and never to Ferry's own `_ferry_*`
//! tables (exit 3, nothing written).

use std::collections::BTreeMap;

use ferry_core::plan::Plan;
use ferry_core::value::{ColumnType, LogicalType, Value};

use crate::common::Fixture;

/// The fixture's plan saved by `ferry plan -o plan.json`, read back.
fn saved_plan(f: &Fixture) -> Plan {
    f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    let text = std::fs::read_to_string(f.path().join("plan.json")).expect("read plan.json");
    Plan::from_file(&text).unwrap_or_else(|e| panic!("the saved plan reads back: {e}"))
}

/// Adds to `plan` one insert of `row` into `table` (whose columns are
/// `key` then `compared`), with a spec copied from `cities`, and saves it
/// with its hash recomputed.
fn forge(f: &Fixture, mut plan: Plan, table: &str, key: &str, compared: &[&str], row: Vec<Value>) {
    let mut spec = plan.specs["cities"].clone();
    spec.name = table.to_string();
    spec.key = vec![key.to_string()];
    spec.compared = compared.iter().map(|c| c.to_string()).collect();
    spec.target_columns = std::iter::once(key)
        .chain(compared.iter().copied())
        .map(String::from)
        .collect();
    spec.types = spec
        .target_columns
        .iter()
        .map(|c| (c.clone(), ColumnType::new(LogicalType::Text)))
        .collect::<BTreeMap<_, _>>();
    spec.target_types = spec.types.clone();
    spec.references.clear();
    spec.referenced_key.clear();
    spec.generated_key.clear();
    let mut entry = plan
        .entries
        .iter()
        .find(|e| e.table == "cities" && e.action == ferry_core::plan::Action::Insert)
        .expect("the plan inserts a city")
        .clone();
    entry.table = table.to_string();
    entry.key = vec![row[0].clone()];
    entry.source = Some(row);
    entry.pulled_by = None;
    plan.specs.insert(table.to_string(), spec);
    plan.tables.push(table.to_string());
    plan.entries.push(entry);
    std::fs::write(f.path().join("forged.json"), plan.to_file()).expect("write forged.json");
}

fn promote_forged(f: &Fixture) -> String {
    let before = f.dump("production");
    let out = f
        .run(&["promote", "staging", "production", "--plan", "forged.json", "--yes"])
        .expect(3);
    assert_eq!(f.dump("production"), before, "nothing written");
    assert!(out.stderr.contains("Nothing was written"), "{}", out.stderr);
    out.stderr
}

#[test]
fn a_saved_plan_cannot_write_a_table_the_configuration_does_not_manage() {
    let f = Fixture::new();
    f.exec(
        "production",
        "CREATE TABLE secrets (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    );
    let plan = saved_plan(&f);
    forge(
        &f,
        plan,
        "secrets",
        "id",
        &["name"],
        vec![Value::Int(7), Value::Text("forged".into())],
    );
    let said = promote_forged(&f);
    assert!(said.contains("`secrets`"), "{said}");
    assert!(said.contains("ferry.toml does not manage"), "{said}");
    assert_eq!(f.scalar("production", "SELECT count(*) FROM secrets"), "0");
}

#[test]
fn a_saved_plan_cannot_write_ferrys_own_tables() {
    let f = Fixture::new();
    // A first promotion creates Ferry's tables in production.
    f.run(&["promote", "staging", "production", "--table", "menus", "--yes"])
        .expect(0);
    let promotions = f.scalar("production", "SELECT count(*) FROM _ferry_promotions");
    let plan = saved_plan(&f);
    let compared = [
        "at",
        "counts",
        "kind",
        "plan_hash",
        "reverted_by",
        "reverts",
        "selection",
        "source_env",
        "target_env",
        "user_name",
    ];
    let mut row = vec![Value::Text("01FORGEDFORGEDFORGEDFORGED".into())];
    row.extend(compared.iter().map(|c| Value::Text(format!("forged {c}"))));
    forge(&f, plan, "_ferry_promotions", "id", &compared, row);
    let said = promote_forged(&f);
    assert!(said.contains("`_ferry_promotions`"), "{said}");
    assert!(said.contains("Ferry's own tables"), "{said}");
    assert_eq!(
        f.scalar("production", "SELECT count(*) FROM _ferry_promotions"),
        promotions
    );
}

#[test]
fn a_saved_plan_must_describe_a_managed_table_as_the_configuration_does() {
    let f = Fixture::new();
    let mut plan = saved_plan(&f);
    // `view_count` is ignored (environment-local): a plan that copies it
    // writes what the configuration says Ferry never writes.
    let spec = plan.specs.get_mut("businesses").expect("businesses spec");
    spec.ignored.clear();
    spec.compared.push("view_count".into());
    spec.compared.sort();
    std::fs::write(f.path().join("forged.json"), plan.to_file()).expect("write forged.json");
    let said = promote_forged(&f);
    assert!(said.contains("`businesses`"), "{said}");
    assert!(said.contains("compared columns"), "{said}");
    assert!(said.contains("view_count"), "{said}");
}

#[test]
fn a_saved_plan_entry_must_have_its_table_shape() {
    let f = Fixture::new();
    let plan = saved_plan(&f);
    let insert = plan
        .entries
        .iter()
        .position(|e| e.table == "cities" && e.action == ferry_core::plan::Action::Insert)
        .expect("the plan inserts a city");
    // A row image one value short or missing, a key one value long, an
    // unknown column to set: each would reach the database as a malformed statement.
    type Forge = fn(&mut ferry_core::plan::PlanEntry);
    let forgeries: [(&str, Forge); 4] = [
        ("a row of 1 value(s)", |e| {
            e.source.as_mut().expect("an insert's row").pop();
        }),
        ("an insert without the row it inserts", |e| e.source = None),
        ("a key of 2 value(s)", |e| e.key.push(Value::Int(9))),
        ("a column `nope`", |e| e.set.push("nope".into())),
    ];
    for (says, forge_entry) in forgeries {
        let mut forged = plan.clone();
        forge_entry(&mut forged.entries[insert]);
        std::fs::write(f.path().join("forged.json"), forged.to_file()).expect("write forged.json");
        let said = promote_forged(&f);
        assert!(said.contains(says), "{says}: {said}");
        assert!(said.contains("cities:"), "{said}");
    }
}
