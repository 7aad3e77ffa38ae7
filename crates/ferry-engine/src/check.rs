//! `ferry check`: the configuration against every database it names.
//! Reads only; reports every problem at once.

use std::collections::BTreeMap;

use ferry_core::config::ConfigProblem;
use ferry_core::schema::TableSchema;

use crate::error::Error;
use crate::pair;
use crate::project::Project;

#[derive(Clone, Debug, serde::Serialize)]
pub struct EnvStatus {
    pub name: String,
    pub engine: Option<String>,
    pub reachable: bool,
    pub tables: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckReport {
    /// In pipeline order, then the environments outside it.
    pub environments: Vec<EnvStatus>,
    pub problems: Vec<ConfigProblem>,
    /// Things that are valid but probably not meant, such as an
    /// environment that nothing promotes into or out of.
    pub warnings: Vec<ConfigProblem>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problems_of(e: Error, env: &str) -> Vec<ConfigProblem> {
    match e {
        Error::Config(c) => c.problems,
        // The problem names the environment (and table) itself: keep the
        // database's message only, so neither is said twice.
        Error::Db(d) => {
            let p = ConfigProblem::new(d.message).env(&d.env);
            vec![match &d.table {
                Some(t) => p.table(t),
                None => p,
            }]
        }
        other => {
            let text = other.to_string();
            let prefix = format!("environment `{env}`: ");
            let message = text.strip_prefix(&prefix).unwrap_or(&text);
            vec![ConfigProblem::new(message).env(env)]
        }
    }
}

/// Checks every environment and every pair that content flows between.
pub async fn check(project: &Project) -> CheckReport {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut environments = Vec::new();
    let mut schemas: BTreeMap<String, BTreeMap<String, TableSchema>> = BTreeMap::new();
    for env in project.config.environments_in_order() {
        let env = &env.to_string();
        let store = match project.open(env).await {
            Ok(s) => s,
            Err(e) => {
                problems.extend(problems_of(e, env));
                environments.push(EnvStatus {
                    name: env.clone(),
                    engine: None,
                    reachable: false,
                    tables: 0,
                });
                continue;
            }
        };
        let found = match pair::schemas_found(project, &*store).await {
            Ok((found, missing)) => {
                problems.extend(missing);
                found
            }
            Err(e) => {
                problems.extend(problems_of(e, env));
                BTreeMap::new()
            }
        };
        for (name, t) in &project.config.tables {
            if !found.contains_key(name) {
                continue;
            }
            if let Some(col) = &t.changed {
                let line = t.line_of(Some(col));
                if found[name].column(col).is_none() {
                    problems.push(
                        ConfigProblem::new(format!(
                            "the `changed` column `{col}` does not exist here; plans read the table whole until it does (add the column, or fix `changed`)"
                        ))
                        .at(line)
                        .env(env)
                        .table(name)
                        .column(col),
                    );
                } else if let Some(sql) = store.as_sql() {
                    match sql.changed_column(name, col).await {
                        Ok(c) if !c.indexed => warnings.push(
                            ConfigProblem::new(format!(
                                "no index starts with the `changed` column `{col}`: plans read the table whole; create one (CREATE INDEX ... ON {name} ({col}))"
                            ))
                            .at(line)
                            .env(env)
                            .table(name)
                            .column(col),
                        ),
                        Ok(c) if c.has_nulls => warnings.push(
                            ConfigProblem::new(format!(
                                "some rows hold NULL in the `changed` column `{col}`: plans read the table whole until every row has a value"
                            ))
                            .at(line)
                            .env(env)
                            .table(name)
                            .column(col),
                        ),
                        Ok(_) => {}
                        Err(e) => problems.extend(problems_of(e.into(), env)),
                    }
                }
            }
            if t.track_deletes {
                let key = t.key_or(&found[name].primary_key);
                match crate::traces::check(&*store, name, &key).await {
                    Ok(Some(why)) => warnings.push(ConfigProblem::new(why).at(t.line).env(env).table(name)),
                    Ok(None) => {}
                    Err(e) => problems.extend(problems_of(e, env)),
                }
            }
            // A store without a query language (a `dir:` folder) holds no
            // excluded rows: the other side of each promotion evaluates `exclude`.
            let evaluates = store.capabilities().native_predicates;
            if let (Some(pred), true) = (&t.exclude, evaluates) {
                if let Err(e) = ferry_db::check_predicate(&*store, name, pred).await {
                    problems.push(
                        ConfigProblem::new(format!("`exclude` does not run here: {}", e.message))
                            .at(t.line)
                            .env(env)
                            .table(name),
                    );
                }
            }
        }
        environments.push(EnvStatus {
            name: env.clone(),
            engine: Some(store.engine().to_string()),
            reachable: true,
            tables: found.len(),
        });
        schemas.insert(env.clone(), found);
    }
    // Every pair content flows between, and each environment against itself
    // (keys and columns exist).
    let mut pairs: Vec<(String, String)> = project
        .config
        .environments
        .keys()
        .map(|e| (e.clone(), e.clone()))
        .collect();
    pairs.extend(
        project
            .config
            .routes()
            .into_iter()
            .map(|(from, to)| (from.to_string(), to.to_string())),
    );
    for (from, to) in pairs {
        let (Some(a), Some(b)) = (schemas.get(&from), schemas.get(&to)) else {
            continue;
        };
        if let Err(e) = pair::resolve(project, (&from, a), (&to, b)) {
            problems.extend(problems_of(e, &to));
        }
    }
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert(p.to_string()));
    CheckReport {
        environments,
        problems,
        warnings: route_warnings(project).into_iter().chain(warnings).collect(),
    }
}

/// Environments that no route leads into or out of: nothing can reach
/// them or leave them, which is rarely what the file means.
fn route_warnings(project: &Project) -> Vec<ConfigProblem> {
    let config = &project.config;
    config
        .environments_in_order()
        .into_iter()
        .filter(|env| config.targets_of(env).is_empty() && config.sources_of(env).is_empty())
        .map(|env| {
            ConfigProblem::new(
                "nothing promotes into or out of this environment: add it to `pipeline`, or give it `promotes_to = \"ENV\"` or `accepts_from = [\"ENV\"]`",
            )
            .at(config.environments.get(env).and_then(|e| e.line))
            .env(env)
        })
        .collect()
}
