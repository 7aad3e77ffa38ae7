//! `ferry.toml`: parsing and validation (pure: the caller reads the file).
//!
//! Parsing turns syntax errors and unknown keys into one [`ConfigProblem`]
//! with its line; validation then reports *every* semantic problem at once,
//! each with its line, environment, table and column. Checks that need a
//! database (columns exist, keys match) live in the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::value::Value;

/// One thing wrong with the configuration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConfigProblem {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub message: String,
}

impl ConfigProblem {
    /// A problem; any URL the message quotes from the file (a mistyped
    /// value may be one) is shown with its password hidden.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigProblem {
            line: None,
            environment: None,
            table: None,
            column: None,
            message: redact_urls_in(&message.into()),
        }
    }
    pub fn at(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }
    pub fn env(mut self, env: &str) -> Self {
        self.environment = Some(redact_urls_in(env));
        self
    }
    pub fn table(mut self, table: &str) -> Self {
        self.table = Some(redact_urls_in(table));
        self
    }
    pub fn column(mut self, column: &str) -> Self {
        self.column = Some(redact_urls_in(column));
        self
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(env) = &self.environment {
            write!(f, "environment `{env}`: ")?;
        }
        match (&self.table, &self.column) {
            (Some(t), Some(c)) => write!(f, "table `{t}`, column `{c}`: ")?,
            (Some(t), None) => write!(f, "table `{t}`: ")?,
            (None, Some(c)) => write!(f, "column `{c}`: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// `text` with every URL in it (a run of characters around `://` up to a
/// space, quote, backtick or bracket) shown as [`redact_url`] shows it.
pub fn redact_urls_in(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let stop = |c: char| c.is_whitespace() || "`'\"()[]{}<>,".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .rfind(stop)
            .map_or(0, |i| i + rest[i..].chars().next().map_or(1, char::len_utf8));
        let end = rest[at..].find(stop).map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Every problem found in one configuration file.
#[derive(Clone, Debug, thiserror::Error)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{} has {n} problem{}:",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {}:{p}", self.file.display())?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    /// Folder of the configuration file: relative SQLite and `dir:` paths
    /// are resolved against it.
    pub base_dir: PathBuf,
    pub pipeline: Vec<String>,
    pub environments: BTreeMap<String, EnvConfig>,
    pub tables: BTreeMap<String, TableConfig>,
    pub access: Option<AccessConfig>,
    /// The `[server]` section of `ferry serve`.
    pub server: ServerConfig,
}

/// `[server]`: where `ferry serve` keeps its users, sessions and tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerConfig {
    /// `state` or `state_env`; `None`: `ferry-server.db` beside ferry.toml.
    pub state: Option<UrlSource>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnvConfig {
    pub name: String,
    pub url: UrlSource,
    pub review: bool,
    /// Outside the pipeline only: the environment it may promote into.
    pub promotes_to: Option<String>,
    /// Outside the pipeline only: the environments that may promote into it.
    pub accepts_from: Vec<String>,
    pub checks: Vec<CheckConfig>,
    pub hooks: Vec<HookConfig>,
    pub line: Option<usize>,
}

/// Where an environment's URL comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum UrlSource {
    /// Written in the file (never with a password: that is refused).
    Inline(String),
    /// Read from this environment variable.
    Variable(String),
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum CheckConfig {
    Sql {
        sql: String,
        on: CheckSide,
    },
    Command {
        command: String,
    },
    /// On a MongoDB environment: the documents of `collection` matching
    /// `filter` (a filter document as Extended JSON) must number exactly
    /// `count` (0 unless given: no document may match).
    Mongo {
        collection: String,
        filter: String,
        count: u64,
        on: CheckSide,
    },
}

impl CheckConfig {
    /// What the check runs, as one text (a saved plan records source-side
    /// results under it).
    pub fn text(&self) -> String {
        match self {
            CheckConfig::Sql { sql, .. } => sql.clone(),
            CheckConfig::Command { command } => command.clone(),
            CheckConfig::Mongo {
                collection,
                filter,
                count,
                ..
            } => format!("{collection} {filter} count {count}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckSide {
    Source,
    Target,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum HookConfig {
    Command { command: String, timeout_secs: u64 },
    Webhook { url: String, timeout_secs: u64 },
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TableConfig {
    pub name: String,
    /// `None`: use the primary key the database declares.
    pub key: Option<Vec<String>>,
    pub natural_key: Option<Vec<String>>,
    /// column -> referenced table
    pub references: BTreeMap<String, String>,
    /// JSON column -> path inside it (`$.a.b`, `$.a[0]`, `$.a[*]`) ->
    /// referenced table: ids inside JSON, rewritten like references.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub json_references: BTreeMap<String, BTreeMap<String, String>>,
    /// (column, parent table)
    pub parent: Option<(String, String)>,
    pub ignore: Vec<String>,
    /// Foreign-key columns copied as they are: the ids they hold are the
    /// same in every environment (declared, so `check` does not refuse them).
    pub keep_ids: Vec<String>,
    /// column -> what to stamp (only `now` today)
    pub stamp: BTreeMap<String, StampValue>,
    pub exclude: Option<String>,
    /// The column the application sets on every write (`changed`): plans
    /// read only the rows changed since the pair's last sync
    /// (docs/config.md, "Change-proportional plans").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
    /// How far before the last sync's watermark a changed-only plan reads
    /// (`changed_margin`, seconds; default [`DEFAULT_CHANGED_MARGIN_SECS`]).
    pub changed_margin_secs: i64,
    /// With `changed`: Ferry keeps a trace of the table's deletes
    /// (`track_deletes`, installed by `ferry track`), so that a plan finds
    /// deleted keys without reading every key (docs/config.md).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub track_deletes: bool,
    #[serde(skip)]
    pub draft: BTreeMap<String, Value>,
    pub line: Option<usize>,
    /// The line where each column the table names is written (`key`,
    /// `references`, `parent`, `ignore`, `stamp`...), so a problem with a
    /// column points at it rather than at the table's header.
    #[serde(skip)]
    pub column_lines: BTreeMap<String, usize>,
}

impl TableConfig {
    /// The key: the configured one, else the table's primary key.
    pub fn key_or(&self, primary_key: &[String]) -> Vec<String> {
        self.key.clone().unwrap_or_else(|| primary_key.to_vec())
    }

    /// The line of `column` in the file, else the table's line.
    pub fn line_of(&self, column: Option<&str>) -> Option<usize> {
        column.and_then(|c| self.column_lines.get(c).copied()).or(self.line)
    }
}

impl Eq for TableConfig {}

/// The default `changed_margin`: rows whose `changed` value is up to this
/// many seconds older than the last sync's watermark are read again (clock
/// skew between writers, transactions that commit late).
pub const DEFAULT_CHANGED_MARGIN_SECS: i64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum StampValue {
    Now,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AccessConfig {
    pub users: BTreeMap<String, Vec<String>>,
    pub promote: BTreeMap<String, Vec<String>>,
    pub approve: BTreeMap<String, Vec<String>>,
    pub revert: BTreeMap<String, Vec<String>>,
    /// Who may refresh an environment from one further down the pipeline;
    /// an environment missing here falls back to `promote`'s list.
    pub refresh: BTreeMap<String, Vec<String>>,
    /// Who may clone an environment into per-branch environments (and
    /// destroy those clones), keyed by the parent environment.
    pub envs: BTreeMap<String, Vec<String>>,
}

// ---- raw, as written ----------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    pipeline: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    environments: BTreeMap<String, Spanned<RawEnv>>,
    #[serde(default)]
    tables: BTreeMap<String, Spanned<RawTable>>,
    access: Option<Spanned<RawAccess>>,
    server: Option<Spanned<RawServer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    state: Option<Spanned<String>>,
    state_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    #[serde(default)]
    review: bool,
    promotes_to: Option<Spanned<String>>,
    accepts_from: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    checks: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    hooks: Vec<Spanned<RawHook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    sql: Option<String>,
    on: Option<CheckSide>,
    command: Option<String>,
    mongo: Option<String>,
    filter: Option<String>,
    count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    command: Option<String>,
    webhook: Option<String>,
    timeout: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    key: Option<Spanned<Vec<String>>>,
    natural_key: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    references: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    json_references: BTreeMap<String, Spanned<BTreeMap<String, Spanned<String>>>>,
    parent: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    #[serde(default)]
    keep_ids: Vec<Spanned<String>>,
    #[serde(default)]
    stamp: BTreeMap<String, Spanned<String>>,
    exclude: Option<Spanned<String>>,
    draft: Option<Spanned<toml::Table>>,
    changed: Option<Spanned<String>>,
    changed_margin: Option<Spanned<String>>,
    track_deletes: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    users: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    promote: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    approve: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    revert: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    refresh: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    envs: BTreeMap<String, Spanned<Vec<String>>>,
}

/// Byte offset -> 1-based line.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn of<T>(&self, s: &Spanned<T>) -> Option<usize> {
        self.line(s.span().start)
    }
    fn line(&self, offset: usize) -> Option<usize> {
        Some(self.0.get(..offset)?.bytes().filter(|b| *b == b'\n').count() + 1)
    }
}

/// The variable an environment's URL is read from when the file names none.
pub fn default_url_var(env: &str) -> String {
    let upper: String = env
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("FERRY_{upper}_URL")
}

/// Query parameters whose value is a secret: refused in the file like a
/// password in the user part, and redacted wherever a URL is printed.
fn secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "credential", "auth"]
        .iter()
        .any(|s| name.contains(s))
}

/// Where the user part of a URL (or of text meant as one) starts and where
/// its `@` is, if it has one: after `scheme://`, or after a leading
/// `scheme:` and slashes, or at the start of a malformed URL. The `@` is
/// the last one before the query, so a password holding `@` is covered.
fn userinfo_span(url: &str) -> Option<(usize, usize)> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let at = url[..end].rfind('@')?;
    let start = match url.find("://") {
        Some(i) if i < at => i + 3,
        _ => {
            let scheme = url
                .find(':')
                .filter(|&i| i > 0 && url[..i].chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
            match scheme {
                Some(i) if i < at && url[i + 1..at].starts_with('/') => {
                    i + 1 + url[i + 1..at].chars().take_while(|c| *c == '/').count()
                }
                _ => 0,
            }
        }
    };
    Some((start, at))
}

/// The query parameters of `url` as (name, value start, value end).
fn query_params(url: &str) -> Vec<(&str, usize, usize)> {
    let Some(q) = url.find('?') else { return Vec::new() };
    let end = url[q..].find('#').map_or(url.len(), |i| q + i);
    let mut out = Vec::new();
    let mut pos = q + 1;
    for part in url[q + 1..end].split('&') {
        if let Some((name, _)) = part.split_once('=') {
            let start = pos + name.len() + 1;
            out.push((name, start, pos + part.len()));
        }
        pos += part.len() + 1;
    }
    out
}

/// `text` with every double-quoted part that carries a password (see
/// [`url_has_password`]) redacted, for messages that quote what was read.
pub fn redact_quoted(text: &str) -> String {
    text.split('"')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 && url_has_password(part) {
                redact_url(part)
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\"")
}

/// True when a URL, well-formed or not, carries a password
/// (`scheme://user:secret@host`, `user:secret@host`) or a query parameter
/// holding a secret (`?password=...`, `?sslpassword=...`, `?token=...`).
pub fn url_has_password(url: &str) -> bool {
    let in_userinfo = userinfo_span(url).is_some_and(|(start, at)| {
        let info = &url[start..at];
        info.split_once(':').is_some_and(|(_, pw)| !pw.is_empty())
    });
    in_userinfo || query_params(url).iter().any(|(name, s, e)| secret_param(name) && e > s)
}

/// A URL, well-formed or not, with any password and every secret query
/// parameter replaced by `***`, safe to print.
pub fn redact_url(url: &str) -> String {
    let mut cuts: Vec<(usize, usize)> = query_params(url)
        .into_iter()
        .filter(|(name, s, e)| secret_param(name) && e > s)
        .map(|(_, s, e)| (s, e))
        .collect();
    if let Some((start, at)) = userinfo_span(url) {
        if let Some(colon) = url[start..at].find(':') {
            cuts.push((start + colon + 1, at));
        }
    }
    cuts.sort();
    let mut out = String::with_capacity(url.len());
    let mut pos = 0;
    for (s, e) in cuts {
        if s < pos {
            continue;
        }
        out.push_str(&url[pos..s]);
        out.push_str("***");
        pos = e;
    }
    out.push_str(&url[pos..]);
    out
}

/// A kind of store a URL can name: how its URLs begin (`postgres://`,
/// `postgresql://`) and how to write one (`postgres://USER@HOST/DB`). The
/// stores' registry (`ferry_db::registry`) lists them; the core knows none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlKind {
    pub prefixes: &'static [&'static str],
    pub example: &'static str,
}

impl UrlKind {
    /// Whether `url` is of this kind.
    pub fn names(&self, url: &str) -> bool {
        self.prefixes.iter().any(|p| url.starts_with(p))
    }

    /// `a, b or c`: how to write a URL of each kind.
    pub fn examples(kinds: &[UrlKind]) -> String {
        let all: Vec<&str> = kinds.iter().map(|k| k.example).collect();
        match all.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => all.join(""),
        }
    }
}

/// Parses and validates `text`, the contents of the file at `path`: each
/// section is checked on its own (environments, the pipeline, routes,
/// tables, access), and every problem is reported with its line. What
/// kind of store each inline URL names is not checked (see
/// [`parse_with`]).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    parse_with(text, path, None)
}

/// [`parse`], and each inline `url` must be of one of `kinds` (the stores
/// this build opens), reported with its line otherwise.
pub fn parse_with(text: &str, path: &Path, kinds: Option<&[UrlKind]>) -> Result<Config, ConfigErrors> {
    let fail = |problems| ConfigErrors {
        file: path.to_path_buf(),
        problems,
    };
    let lines = Lines(text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().and_then(|s| lines.line(s.start));
        // The parser quotes the value it could not use: a URL put where
        // another type belongs must not show its password.
        let message = redact_quoted(e.message());
        fail(vec![ConfigProblem::new(message).at(line)])
    })?;
    let mut problems = Vec::new();
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut environments = BTreeMap::new();
    for (name, env) in &raw.environments {
        environments.insert(name.clone(), environment(name, env, &lines, kinds, &mut problems));
    }
    let pipeline = pipeline(&raw, &lines, &mut problems);
    routes(&raw, &pipeline, &lines, &mut problems);
    let mut tables = BTreeMap::new();
    for (name, t) in &raw.tables {
        tables.insert(name.clone(), table(name, t, &raw, &lines, &mut problems));
    }
    if tables.is_empty() {
        problems.push(ConfigProblem::new(
            "no table is managed: add a [tables.NAME] section with its `key`",
        ));
    }
    let access = access(&raw, &lines, &mut problems);
    let server = server(&raw, &lines, &mut problems);
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    Ok(Config {
        base_dir,
        pipeline,
        environments,
        tables,
        access,
        server,
    })
}

/// The `[server]` section: the state store's URL (SQLite or PostgreSQL),
/// never with a password in the file.
fn server(raw: &RawConfig, lines: &Lines, problems: &mut Vec<ConfigProblem>) -> ServerConfig {
    let Some(s) = &raw.server else {
        return ServerConfig::default();
    };
    let s = s.get_ref();
    let state = match (&s.state, &s.state_env) {
        (Some(_), Some(v)) => {
            problems.push(ConfigProblem::new("[server]: give either `state` or `state_env`, not both").at(lines.of(v)));
            None
        }
        (Some(u), None) => {
            let url = u.get_ref();
            if url_has_password(url) {
                problems.push(
                    ConfigProblem::new(
                        "[server] `state` carries a password; put the URL in an environment variable and write `state_env = \"FERRY_SERVER_STATE\"` instead",
                    )
                    .at(lines.of(u)),
                );
            } else if !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                problems.push(
                    ConfigProblem::new(format!(
                        "[server] `state` = `{}`: the server keeps its users and sessions in SQLite (`sqlite://ferry-server.db`) or PostgreSQL (`postgres://HOST/DB`)",
                        redact_url(url)
                    ))
                    .at(lines.of(u)),
                );
            }
            Some(UrlSource::Inline(url.clone()))
        }
        (None, Some(v)) => Some(UrlSource::Variable(v.get_ref().clone())),
        (None, None) => None,
    };
    ServerConfig { state }
}

/// One `[environments.NAME]` section: its URL, checks and hooks.
fn environment(
    name: &str,
    env: &Spanned<RawEnv>,
    lines: &Lines,
    kinds: Option<&[UrlKind]>,
    problems: &mut Vec<ConfigProblem>,
) -> EnvConfig {
    let line = lines.of(env);
    let env = env.get_ref();
    let p = |m: String, l: Option<usize>| ConfigProblem::new(m).at(l).env(name);
    if !valid_env_name(name) {
        problems.push(p(
            "an environment name uses letters, digits, `-` and `_` only".into(),
            line,
        ));
    }
    let url = match (&env.url, &env.url_env) {
        (Some(_), Some(v)) => {
            problems.push(p("give either `url` or `url_env`, not both".into(), lines.of(v)));
            UrlSource::Variable(v.get_ref().clone())
        }
        (Some(u), None) => {
            if url_has_password(u.get_ref()) {
                problems.push(p(
                    format!(
                        "`url` carries a password (in its user part or a query parameter); put the URL in an environment variable and write `url_env = \"{}\"` instead",
                        default_url_var(name)
                    ),
                    lines.of(u),
                ));
            } else if let Some(kinds) = kinds.filter(|k| !k.iter().any(|k| k.names(u.get_ref()))) {
                problems.push(p(
                    format!(
                        "`{}` is not a URL Ferry knows; use {}",
                        redact_url(u.get_ref()),
                        UrlKind::examples(kinds)
                    ),
                    lines.of(u),
                ));
            }
            UrlSource::Inline(u.get_ref().clone())
        }
        (None, Some(v)) => UrlSource::Variable(v.get_ref().clone()),
        (None, None) => UrlSource::Variable(default_url_var(name)),
    };
    let mut checks = Vec::new();
    for c in &env.checks {
        let l = lines.of(c);
        let r = c.get_ref();
        if r.mongo.is_none() && (r.filter.is_some() || r.count.is_some()) {
            problems.push(p("`filter` and `count` apply to `mongo` checks only".into(), l));
        }
        match (&r.sql, &r.command, &r.mongo) {
            (Some(sql), None, None) => checks.push(CheckConfig::Sql {
                sql: sql.clone(),
                on: r.on.unwrap_or(CheckSide::Source),
            }),
            (None, Some(cmd), None) => {
                if r.on.is_some() {
                    problems.push(p("`on` applies to `sql` and `mongo` checks only".into(), l));
                }
                checks.push(CheckConfig::Command { command: cmd.clone() })
            }
            (None, None, Some(collection)) => {
                let filter = r.filter.clone().unwrap_or_else(|| "{}".into());
                if !filter.trim_start().starts_with('{') {
                    problems.push(p(
                        format!("a `mongo` check's `filter` is a filter document as Extended JSON (`{{\"team\": \"qa\"}}`), not `{filter}`"),
                        l,
                    ));
                }
                checks.push(CheckConfig::Mongo {
                    collection: collection.clone(),
                    filter,
                    count: r.count.unwrap_or(0),
                    on: r.on.unwrap_or(CheckSide::Source),
                })
            }
            _ => problems.push(p("a check has exactly one of `sql`, `mongo` or `command`".into(), l)),
        }
    }
    let mut hooks = Vec::new();
    for h in &env.hooks {
        let l = lines.of(h);
        let timeout_secs = h.get_ref().timeout.unwrap_or(30);
        match (&h.get_ref().command, &h.get_ref().webhook) {
            (Some(command), None) => hooks.push(HookConfig::Command {
                command: command.clone(),
                timeout_secs,
            }),
            (None, Some(url)) => {
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    problems.push(p(format!("webhook `{url}` is not an http:// or https:// URL"), l));
                }
                hooks.push(HookConfig::Webhook {
                    url: url.clone(),
                    timeout_secs,
                })
            }
            _ => problems.push(p("a hook has exactly one of `command` or `webhook`".into(), l)),
        }
    }
    EnvConfig {
        name: name.to_string(),
        url,
        review: env.review,
        promotes_to: env.promotes_to.as_ref().map(|s| s.get_ref().clone()),
        accepts_from: env
            .accepts_from
            .iter()
            .flat_map(|a| a.get_ref().iter().map(|s| s.get_ref().clone()))
            .collect(),
        checks,
        hooks,
        line,
    }
}

/// The `pipeline`: environments that exist, each once.
fn pipeline(raw: &RawConfig, lines: &Lines, problems: &mut Vec<ConfigProblem>) -> Vec<String> {
    let mut pipeline = Vec::new();
    match &raw.pipeline {
        None => problems.push(ConfigProblem::new(
            "`pipeline` is missing: list the environments content flows through, e.g. pipeline = [\"staging\", \"production\"]",
        ).at(Some(1))),
        Some(p) => {
            let mut seen = BTreeSet::new();
            for e in p.get_ref() {
                let name = e.get_ref();
                if !raw.environments.contains_key(name) {
                    problems.push(
                        ConfigProblem::new(format!("the pipeline names `{name}`, but there is no [environments.{name}]"))
                            .at(lines.of(e)),
                    );
                }
                if !seen.insert(name.clone()) {
                    problems.push(ConfigProblem::new(format!("`{name}` appears twice in the pipeline")).at(lines.of(e)));
                }
                pipeline.push(name.clone());
            }
        }
    }
    pipeline
}

/// Routes: the pipeline's own, and those that environments outside it
/// declare (`promotes_to`, `accepts_from`), naming environments that exist.
fn routes(raw: &RawConfig, pipeline: &[String], lines: &Lines, problems: &mut Vec<ConfigProblem>) {
    for (name, env) in &raw.environments {
        let env = env.get_ref();
        let in_pipeline = pipeline.contains(name);
        let p = |m: String, l: Option<usize>| ConfigProblem::new(m).at(l).env(name);
        let mut named: Vec<(&str, &Spanned<String>)> = Vec::new();
        if let Some(to) = &env.promotes_to {
            named.push(("promotes_to", to));
        }
        if let Some(from) = &env.accepts_from {
            if in_pipeline {
                problems.push(p(
                    format!(
                        "`accepts_from` is for environments outside the pipeline; `{name}` is in it ({}), whose order is its routes: remove this line, and write `promotes_to = \"{name}\"` on the environment that should promote into it",
                        pipeline.join(" -> ")
                    ),
                    lines.of(from),
                ));
            }
            named.extend(from.get_ref().iter().map(|f| ("accepts_from", f)));
        }
        if in_pipeline {
            if let Some(to) = &env.promotes_to {
                problems.push(p(
                    format!(
                        "`promotes_to` is for environments outside the pipeline; `{name}` is in it ({}), whose order is its routes: remove this line",
                        pipeline.join(" -> ")
                    ),
                    lines.of(to),
                ));
            }
        }
        for (key, other) in named {
            let o = other.get_ref();
            if o == name {
                problems.push(p(format!("`{key}` names `{name}` itself"), lines.of(other)));
            } else if !raw.environments.contains_key(o) {
                problems.push(p(
                    format!("`{key}` names `{o}`, which is not an environment in this file"),
                    lines.of(other),
                ));
            }
        }
    }
}

/// One `[tables.NAME]` section. A column plays one role (key, reference,
/// ignored, stamped...), and every table it names is managed.
fn table(
    name: &str,
    t: &Spanned<RawTable>,
    raw: &RawConfig,
    lines: &Lines,
    problems: &mut Vec<ConfigProblem>,
) -> TableConfig {
    let line = lines.of(t);
    let t = t.get_ref();
    let p = |m: String, l: Option<usize>| ConfigProblem::new(m).at(l.or(line)).table(name);
    if name.starts_with("_ferry") {
        problems.push(p(
            "tables named `_ferry*` belong to Ferry itself and cannot be managed".into(),
            line,
        ));
    }
    let key = t.key.as_ref().map(|k| {
        if k.get_ref().is_empty() {
            problems.push(p("`key` lists no column".into(), lines.of(k)));
        }
        k.get_ref().clone()
    });
    let natural_key = t.natural_key.as_ref().map(|k| {
        if k.get_ref().is_empty() {
            problems.push(p("`natural_key` lists no column".into(), lines.of(k)));
        }
        k.get_ref().clone()
    });
    let references = table_references(t, raw, lines, &p, problems);
    let json_references = json_references(t, raw, lines, &p, problems);
    let parent = table_parent(t, raw, lines, &p, &references, problems);
    let column_lines = column_lines(t, lines);
    let ignore: Vec<String> = t.ignore.iter().map(|s| s.get_ref().clone()).collect();
    let mut stamp = BTreeMap::new();
    for (col, v) in &t.stamp {
        if v.get_ref() != "now" {
            problems.push(
                p(
                    format!("stamp value `{}` is not supported; use \"now\"", v.get_ref()),
                    lines.of(v),
                )
                .column(col),
            );
        }
        stamp.insert(col.clone(), StampValue::Now);
    }
    let roles = Roles {
        key: &key,
        natural_key: &natural_key,
        references: &references,
        json_references: &json_references,
        parent: &parent,
        stamp: &stamp,
        ignore: &ignore,
    };
    check_roles(t, &roles, lines, &p, problems);
    let keep_ids: Vec<String> = t.keep_ids.iter().map(|s| s.get_ref().clone()).collect();
    let mut draft = BTreeMap::new();
    if let Some(d) = &t.draft {
        for (col, v) in d.get_ref() {
            match toml_to_value(v) {
                Some(v) => {
                    draft.insert(col.clone(), v);
                }
                None => {
                    problems.push(p("a draft value is a string, number or boolean".into(), lines.of(d)).column(col))
                }
            }
        }
    }
    if let Some(e) = &t.exclude {
        if e.get_ref().trim().is_empty() {
            problems.push(p("`exclude` is empty".into(), lines.of(e)));
        }
    }
    let (changed, changed_margin_secs) = table_changed(t, &key, &ignore, lines, &p, problems);
    let track_deletes = t.track_deletes.as_ref().is_some_and(|d| *d.get_ref());
    if let Some(d) = t.track_deletes.as_ref().filter(|d| *d.get_ref()) {
        if t.changed.is_none() {
            problems.push(p(
                "`track_deletes` without `changed`: a trace of deletes serves change-proportional plans; name the changed column too, or remove it".into(),
                lines.of(d),
            ));
        }
        if key.as_ref().is_some_and(|k| k.len() != 1) {
            problems.push(p(
                "`track_deletes` needs a key of one integer column (the trace records deleted keys as integers)".into(),
                lines.of(d),
            ));
        }
    }
    TableConfig {
        name: name.to_string(),
        key,
        natural_key,
        references,
        json_references,
        parent,
        ignore,
        keep_ids,
        stamp,
        exclude: t.exclude.as_ref().map(|e| e.get_ref().clone()),
        changed,
        changed_margin_secs,
        track_deletes,
        draft,
        line,
        column_lines,
    }
}

/// A table's `changed` column and `changed_margin`: a column name that is
/// not a key or ignored column, and a margin written like `5m`. Whether the
/// column exists is known when the schema is read (the plan says so and
/// reads the table whole).
fn table_changed(
    t: &RawTable,
    key: &Option<Vec<String>>,
    ignore: &[String],
    lines: &Lines,
    p: &dyn Fn(String, Option<usize>) -> ConfigProblem,
    problems: &mut Vec<ConfigProblem>,
) -> (Option<String>, i64) {
    let changed = t.changed.as_ref().and_then(|c| {
        let col = c.get_ref().trim();
        if col.is_empty() {
            problems.push(p(
                "`changed` names no column; name the column the application sets on every write, as `changed = \"modified_at\"`".into(),
                lines.of(c),
            ));
            return None;
        }
        if key.iter().flatten().any(|k| k == col) {
            problems.push(p("a key column cannot be the `changed` column".into(), lines.of(c)).column(col));
        }
        if ignore.iter().any(|i| i == col) {
            problems.push(
                p(
                    "an ignored column cannot be the `changed` column (it is environment-local)".into(),
                    lines.of(c),
                )
                .column(col),
            );
        }
        Some(col.to_string())
    });
    let mut margin = DEFAULT_CHANGED_MARGIN_SECS;
    if let Some(m) = &t.changed_margin {
        match crate::branch::parse_ttl(m.get_ref()) {
            Ok(secs) => margin = secs,
            Err(_) => problems.push(p(
                format!(
                    "`changed_margin = \"{}\"` is not a duration: a whole number of s, m, h or d (5m, 90s, 1h)",
                    m.get_ref()
                ),
                lines.of(m),
            )),
        }
        if changed.is_none() && t.changed.is_none() {
            problems.push(p(
                "`changed_margin` without `changed`: name the changed column too, or remove the margin".into(),
                lines.of(m),
            ));
        }
    }
    (changed, margin)
}

/// A table's `references`: column -> a managed table.
fn table_references(
    t: &RawTable,
    raw: &RawConfig,
    lines: &Lines,
    p: &dyn Fn(String, Option<usize>) -> ConfigProblem,
    problems: &mut Vec<ConfigProblem>,
) -> BTreeMap<String, String> {
    let mut references = BTreeMap::new();
    for (col, target) in &t.references {
        if !raw.tables.contains_key(target.get_ref()) {
            problems.push(
                p(
                    format!(
                        "references `{}`, which is not a managed table: add [tables.{}] or remove the reference",
                        target.get_ref(),
                        target.get_ref()
                    ),
                    lines.of(target),
                )
                .column(col),
            );
        }
        references.insert(col.clone(), target.get_ref().clone());
    }
    references
}

/// A table's `json_references`: column -> JSON path -> a managed table.
fn json_references(
    t: &RawTable,
    raw: &RawConfig,
    lines: &Lines,
    p: &dyn Fn(String, Option<usize>) -> ConfigProblem,
    problems: &mut Vec<ConfigProblem>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut json_references = BTreeMap::new();
    for (col, paths) in &t.json_references {
        if paths.get_ref().is_empty() {
            problems.push(
                p(
                    "`json_references` names no path for this column, e.g. { \"$.content_type\" = \"TABLE\" }".into(),
                    lines.of(paths),
                )
                .column(col),
            );
        }
        let mut by_path = BTreeMap::new();
        for (path, target) in paths.get_ref() {
            if let Err(e) = crate::json_refs::JsonPath::parse(path) {
                problems.push(p(e.to_string(), lines.of(target)).column(col));
            }
            if !raw.tables.contains_key(target.get_ref()) {
                problems.push(
                    p(
                        format!(
                            "JSON path `{path}` references `{}`, which is not a managed table: add [tables.{}] or remove the path",
                            target.get_ref(),
                            target.get_ref()
                        ),
                        lines.of(target),
                    )
                    .column(col),
                );
            }
            by_path.insert(path.clone(), target.get_ref().clone());
        }
        json_references.insert(col.clone(), by_path);
    }
    json_references
}

/// A table's `parent`: one column and a managed table, not also a
/// reference.
fn table_parent(
    t: &RawTable,
    raw: &RawConfig,
    lines: &Lines,
    p: &dyn Fn(String, Option<usize>) -> ConfigProblem,
    references: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<(String, String)> {
    match &t.parent {
        None => None,
        Some(par) => {
            let map = par.get_ref();
            if map.len() != 1 {
                problems.push(p(
                    "`parent` names exactly one column and its table, e.g. parent = { form_id = \"forms\" }".into(),
                    lines.of(par),
                ));
            }
            map.iter().next().map(|(col, target)| {
                if !raw.tables.contains_key(target.get_ref()) {
                    problems.push(
                        p(
                            format!("parent `{}` is not a managed table", target.get_ref()),
                            lines.of(target),
                        )
                        .column(col),
                    );
                }
                if references.contains_key(col) {
                    problems.push(
                        p(
                            "a column is either a reference or the parent, not both".into(),
                            lines.of(target),
                        )
                        .column(col),
                    );
                }
                (col.clone(), target.get_ref().clone())
            })
        }
    }
}

/// The line where each column of a table is first named.
fn column_lines(t: &RawTable, lines: &Lines) -> BTreeMap<String, usize> {
    let mut column_lines: BTreeMap<String, usize> = BTreeMap::new();
    {
        let mut note = |col: &String, l: Option<usize>| {
            if let Some(l) = l {
                column_lines.entry(col.clone()).or_insert(l);
            }
        };
        for k in t.key.iter().chain(t.natural_key.iter()) {
            for col in k.get_ref() {
                note(col, lines.of(k));
            }
        }
        for (col, target) in &t.references {
            note(col, lines.of(target));
        }
        for (col, paths) in &t.json_references {
            note(col, lines.of(paths));
        }
        if let Some(par) = &t.parent {
            for (col, target) in par.get_ref() {
                note(col, lines.of(target));
            }
        }
        for ig in t.ignore.iter().chain(&t.keep_ids) {
            note(ig.get_ref(), lines.of(ig));
        }
        for (col, v) in &t.stamp {
            note(col, lines.of(v));
        }
        if let Some(c) = &t.changed {
            note(c.get_ref(), lines.of(c));
        }
        if let Some(d) = &t.draft {
            for col in d.get_ref().keys() {
                note(col, lines.of(d));
            }
        }
    }
    column_lines
}

/// The roles a table's columns were given, to check that each plays one.
struct Roles<'r> {
    key: &'r Option<Vec<String>>,
    natural_key: &'r Option<Vec<String>>,
    references: &'r BTreeMap<String, String>,
    json_references: &'r BTreeMap<String, BTreeMap<String, String>>,
    parent: &'r Option<(String, String)>,
    stamp: &'r BTreeMap<String, StampValue>,
    ignore: &'r [String],
}

/// A column plays one role: a key column is not ignored, stamped or given
/// `json_references`; a reference is not ignored or in `keep_ids`...
fn check_roles(
    t: &RawTable,
    roles: &Roles,
    lines: &Lines,
    p: &dyn Fn(String, Option<usize>) -> ConfigProblem,
    problems: &mut Vec<ConfigProblem>,
) {
    let Roles {
        key,
        natural_key,
        references,
        json_references,
        parent,
        stamp,
        ignore,
    } = *roles;
    // A column plays one role.
    let key_cols: Vec<&String> = key.iter().flatten().chain(natural_key.iter().flatten()).collect();
    for ig in &t.ignore {
        let c = ig.get_ref();
        if key_cols.contains(&c) {
            problems.push(p("a key column cannot be ignored".into(), lines.of(ig)).column(c));
        }
        if stamp.contains_key(c) {
            problems.push(p("a column cannot be both ignored and stamped".into(), lines.of(ig)).column(c));
        }
        if references.contains_key(c)
            || json_references.contains_key(c)
            || parent.as_ref().is_some_and(|(pc, _)| pc == c)
        {
            problems.push(p("a reference column cannot be ignored".into(), lines.of(ig)).column(c));
        }
    }
    for (c, v) in &t.stamp {
        if key_cols.contains(&c) {
            problems.push(p("a key column cannot be stamped".into(), lines.of(v)).column(c));
        }
        if json_references.contains_key(c) {
            problems.push(p("a column with `json_references` cannot be stamped".into(), lines.of(v)).column(c));
        }
    }
    for (c, paths) in &t.json_references {
        if key_cols.contains(&c) {
            problems.push(p("a key column cannot have `json_references`".into(), lines.of(paths)).column(c));
        }
    }
    for k in &t.keep_ids {
        let c = k.get_ref();
        if references.contains_key(c) || parent.as_ref().is_some_and(|(pc, _)| pc == c) {
            problems.push(
                p(
                    "a column in `keep_ids` is copied as it is, so it cannot be a reference too (rewritten through the id mapping): keep it in one of them".into(),
                    lines.of(k),
                )
                .column(c),
            );
        }
        if ignore.contains(c) {
            problems.push(p("a column cannot be both ignored and in `keep_ids`".into(), lines.of(k)).column(c));
        }
    }
}

/// The `[access]` section: environments and roles that exist.
fn access(raw: &RawConfig, lines: &Lines, problems: &mut Vec<ConfigProblem>) -> Option<AccessConfig> {
    raw.access.as_ref().map(|a| {
        let line = lines.of(a);
        let a = a.get_ref();
        let roles: BTreeSet<&String> = a.users.values().flatten().collect();
        let mut check_map = |what: &str, m: &BTreeMap<String, Spanned<Vec<String>>>| {
            let mut out = BTreeMap::new();
            for (env, rs) in m {
                if !raw.environments.contains_key(env) {
                    problems.push(
                        ConfigProblem::new(format!("[access] {what} names `{env}`, which is not an environment"))
                            .at(lines.of(rs).or(line)),
                    );
                }
                for r in rs.get_ref() {
                    if !roles.contains(r) {
                        problems.push(
                            ConfigProblem::new(format!("[access] {what}.{env} names role `{r}`, which no user has"))
                                .at(lines.of(rs).or(line)),
                        );
                    }
                }
                out.insert(env.clone(), rs.get_ref().clone());
            }
            out
        };
        let promote = check_map("promote", &a.promote);
        let approve = check_map("approve", &a.approve);
        let revert = check_map("revert", &a.revert);
        let refresh = check_map("refresh", &a.refresh);
        let envs = check_map("envs", &a.envs);
        AccessConfig {
            users: a.users.clone(),
            promote,
            approve,
            revert,
            refresh,
            envs,
        }
    })
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn toml_to_value(v: &toml::Value) -> Option<Value> {
    Some(match v {
        toml::Value::String(s) => Value::Text(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        _ => return None,
    })
}

impl Config {
    /// Every route content may take, `(from, to)`: each step of the
    /// pipeline, then the routes environments outside it declare.
    pub fn routes(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .pipeline
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        for (name, env) in &self.environments {
            if let Some(to) = &env.promotes_to {
                out.push((name, to));
            }
            out.extend(env.accepts_from.iter().map(|from| (from.as_str(), name.as_str())));
        }
        let mut seen = BTreeSet::new();
        out.retain(|r| seen.insert(*r));
        out
    }

    /// Whether content may go from `from` into `to`.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        self.routes().contains(&(from, to))
    }

    /// The environments `env` may promote into.
    pub fn targets_of(&self, env: &str) -> Vec<&str> {
        self.routes()
            .into_iter()
            .filter(|(f, _)| *f == env)
            .map(|(_, t)| t)
            .collect()
    }

    /// The environments that may promote into `env`.
    pub fn sources_of(&self, env: &str) -> Vec<&str> {
        self.routes()
            .into_iter()
            .filter(|(_, t)| *t == env)
            .map(|(f, _)| f)
            .collect()
    }

    /// The environments in pipeline order, then those outside it by name.
    pub fn environments_in_order(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.pipeline.iter().map(String::as_str).collect();
        out.extend(
            self.environments
                .keys()
                .map(String::as_str)
                .filter(|e| !self.pipeline.iter().any(|p| p == e)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
pipeline = ["staging", "production"]
[environments.staging]
url = "sqlite://staging.db"
[environments.production]
url_env = "FERRY_PRODUCTION_URL"
review = true
[tables.cities]
key = ["id"]
[tables.businesses]
key = ["id"]
references = { city_id = "cities" }
ignore = ["view_count"]
stamp = { modified_at = "now" }
exclude = "created_by_team IN ('qa', 'dev')"
draft = { is_published = false }
"#;

    #[test]
    fn parses_the_product_example() {
        let c = parse(GOOD, Path::new("/x/ferry.toml")).unwrap();
        assert_eq!(c.pipeline, ["staging", "production"]);
        assert_eq!(c.base_dir, Path::new("/x"));
        let b = &c.tables["businesses"];
        assert_eq!(b.references["city_id"], "cities");
        assert_eq!(b.draft["is_published"], Value::Bool(false));
        assert!(c.allows("staging", "production"));
        assert!(!c.allows("production", "staging"));
    }

    const ROUTES: &str = r#"pipeline = ["staging", "preprod", "production"]
[environments.staging]
url = "sqlite://s.db"
[environments.preprod]
url = "sqlite://p.db"
[environments.production]
url = "sqlite://prod.db"
[environments.feature-1]
url = "sqlite://f.db"
promotes_to = "preprod"
accepts_from = ["staging"]
[environments.content]
url = "sqlite://c.db"
accepts_from = ["staging", "feature-1"]
[tables.t]
key = ["id"]
"#;

    #[test]
    fn routes_are_the_pipeline_and_what_outside_environments_declare() {
        let c = parse(ROUTES, Path::new("f.toml")).unwrap();
        assert_eq!(
            c.routes(),
            [
                ("staging", "preprod"),
                ("preprod", "production"),
                ("staging", "content"),
                ("feature-1", "content"),
                ("feature-1", "preprod"),
                ("staging", "feature-1"),
            ]
        );
        assert_eq!(c.targets_of("staging"), ["preprod", "content", "feature-1"]);
        assert_eq!(c.sources_of("preprod"), ["staging", "feature-1"]);
        assert!(!c.allows("staging", "production"));
        assert_eq!(
            c.environments_in_order(),
            ["staging", "preprod", "production", "content", "feature-1"]
        );
    }

    #[test]
    fn promotes_to_and_accepts_from_on_a_pipeline_environment_are_errors_at_their_line() {
        let text = ROUTES.replace(
            "url = \"sqlite://s.db\"\n",
            "url = \"sqlite://s.db\"\npromotes_to = \"production\"\naccepts_from = [\"content\"]\n",
        );
        let err = parse(&text, Path::new("f.toml")).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 2, "{text}");
        let mut lines: Vec<_> = err.problems.iter().map(|p| p.line).collect();
        lines.sort();
        assert_eq!(lines, [Some(4), Some(5)], "{text}");
        assert!(
            text.contains("`promotes_to` is for environments outside the pipeline"),
            "{text}"
        );
        assert!(
            text.contains("`accepts_from` is for environments outside the pipeline"),
            "{text}"
        );

        let text = ROUTES.replace(
            "accepts_from = [\"staging\"]",
            "accepts_from = [\"nowhere\", \"feature-1\"]",
        );
        let err = parse(&text, Path::new("f.toml")).unwrap_err().to_string();
        assert!(err.contains("`accepts_from` names `nowhere`"), "{err}");
        assert!(err.contains("names `feature-1` itself"), "{err}");
    }

    #[test]
    fn reports_every_problem_with_its_line() {
        let bad = r#"pipeline = ["staging", "prod"]
[environments.staging]
url = "postgres://u:secret@h/db"
[tables.a]
key = []
references = { b_id = "b" }
stamp = { at = "yesterday" }
"#;
        let err = parse(bad, Path::new("f.toml")).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("secret"), "{text}");
        let lines: Vec<_> = err.problems.iter().map(|p| p.line).collect();
        assert!(err.problems.len() >= 4, "{text}");
        assert!(
            lines.contains(&Some(1)) && lines.contains(&Some(3)) && lines.contains(&Some(5)),
            "{text}"
        );
        assert!(text.contains("url_env"), "{text}");
    }

    #[test]
    fn track_deletes_needs_changed_and_a_one_column_key() {
        let ok = GOOD.replace(
            "ignore = [\"view_count\"]",
            "ignore = [\"view_count\"]\nchanged = \"modified_at\"\ntrack_deletes = true",
        );
        let c = parse(&ok, Path::new("f.toml")).unwrap();
        assert!(c.tables["businesses"].track_deletes);
        assert!(!c.tables["cities"].track_deletes);
        for (written, wanted) in [
            ("track_deletes = true", "`track_deletes` without `changed`"),
            (
                "changed = \"modified_at\"\ntrack_deletes = true\nkey = [\"id\", \"name\"]",
                "needs a key of one integer column",
            ),
        ] {
            let bad = GOOD
                .replace("key = [\"id\"]\nreferences = { city_id", "references = { city_id")
                .replace(
                    "ignore = [\"view_count\"]",
                    &format!("ignore = [\"view_count\"]\n{written}"),
                );
            let err = parse(&bad, Path::new("f.toml")).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(wanted), "{written}: {text}");
            let line = err.problems[0].line.expect("a line");
            assert!(
                bad.lines()
                    .nth(line - 1)
                    .is_some_and(|l| l.starts_with("track_deletes")),
                "{written}: line {line}: {text}"
            );
        }
    }

    #[test]
    fn changed_names_a_column_with_a_margin_and_is_checked_at_its_line() {
        let ok = GOOD.replace(
            "ignore = [\"view_count\"]",
            "ignore = [\"view_count\"]\nchanged = \"modified_at\"\nchanged_margin = \"90s\"",
        );
        let c = parse(&ok, Path::new("f.toml")).unwrap();
        let b = &c.tables["businesses"];
        assert_eq!(b.changed.as_deref(), Some("modified_at"));
        assert_eq!(b.changed_margin_secs, 90);
        assert_eq!(c.tables["cities"].changed, None);
        let default = GOOD.replace(
            "ignore = [\"view_count\"]",
            "ignore = [\"view_count\"]\nchanged = \"modified_at\"",
        );
        assert_eq!(
            parse(&default, Path::new("f.toml")).unwrap().tables["businesses"].changed_margin_secs,
            DEFAULT_CHANGED_MARGIN_SECS
        );

        for (written, wanted) in [
            (
                "changed = \"view_count\"",
                "ignored column cannot be the `changed` column",
            ),
            ("changed = \"id\"", "key column cannot be the `changed` column"),
            ("changed = \"\"", "`changed` names no column"),
            (
                "changed = \"modified_at\"\nchanged_margin = \"soon\"",
                "is not a duration",
            ),
            ("changed_margin = \"5m\"", "`changed_margin` without `changed`"),
        ] {
            let bad = GOOD.replace(
                "ignore = [\"view_count\"]",
                &format!("ignore = [\"view_count\"]\n{written}"),
            );
            let err = parse(&bad, Path::new("f.toml")).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(wanted), "{written}: {text}");
            let line = err.problems[0].line.expect("a line");
            assert!(
                bad.lines().nth(line - 1).is_some_and(|l| l.starts_with("changed")),
                "{written}: line {line}: {text}"
            );
        }
    }

    #[test]
    fn keep_ids_is_parsed_and_plays_one_role() {
        let ok = GOOD.replace(
            "ignore = [\"view_count\"]",
            "ignore = [\"view_count\"]\nkeep_ids = [\"owner_id\"]",
        );
        let c = parse(&ok, Path::new("f.toml")).unwrap();
        assert_eq!(c.tables["businesses"].keep_ids, ["owner_id"]);
        let bad = GOOD.replace(
            "ignore = [\"view_count\"]",
            "ignore = [\"view_count\"]\nkeep_ids = [\"city_id\", \"view_count\"]",
        );
        let err = parse(&bad, Path::new("f.toml")).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 2, "{text}");
        assert!(err.problems.iter().all(|p| p.line == Some(14)), "{text}");
        assert!(text.contains("cannot be a reference too"), "{text}");
        assert!(text.contains("both ignored and in `keep_ids`"), "{text}");
    }

    #[test]
    fn unknown_keys_point_at_their_line() {
        let bad = "pipeline = [\"a\"]\n[environments.a]\nurl = \"sqlite://a.db\"\n[tables.t]\nkeys = [\"id\"]\n";
        let err = parse(bad, Path::new("f.toml")).unwrap_err();
        assert_eq!(err.problems[0].line, Some(5), "{err}");
        assert!(err.problems[0].message.contains("keys"), "{err}");
    }

    #[test]
    fn problems_hide_a_password_quoted_from_the_file() {
        let p = ConfigProblem::new(
            "`promotes_to` names `mysql://root:s3cret@127.0.0.1:1/app`, which is not an environment",
        )
        .env("postgres://u:pw2@h/db");
        let shown = format!("{p}");
        assert!(!shown.contains("s3cret") && !shown.contains("pw2"), "{shown}");
        assert!(
            shown.contains("127.0.0.1:1/app") && shown.contains("which is not"),
            "{shown}"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h:5/db?x=1"), "postgres://u:***@h:5/db?x=1");
        assert_eq!(
            redact_url("mysql://h/db?password=pw&a=b"),
            "mysql://h/db?password=***&a=b"
        );
        assert!(url_has_password("postgres://u:pw@h/db"));
        assert!(!url_has_password("postgres://u@h/db"));
        assert!(!url_has_password("sqlite://a.db"));
    }

    #[test]
    fn inline_urls_are_checked_against_the_kinds_handed_in() {
        let text = "pipeline = [\"a\"]\n[environments.a]\nurl = \"dir:content\"\n[tables.t]\nkey = [\"id\"]\n";
        let path = Path::new("/x/ferry.toml");
        assert!(parse(text, path).is_ok(), "no kinds given: any scheme");
        let kinds = [
            UrlKind {
                prefixes: &["sqlite:"],
                example: "sqlite://PATH",
            },
            UrlKind {
                prefixes: &["postgres://", "postgresql://"],
                example: "postgres://USER@HOST/DB",
            },
        ];
        let e = parse_with(text, path, Some(&kinds)).expect_err("dir: is no kind of these");
        let shown = e.to_string();
        assert!(
            shown.contains("`dir:content` is not a URL Ferry knows; use sqlite://PATH or postgres://USER@HOST/DB"),
            "{shown}"
        );
        assert_eq!(e.problems[0].line, Some(3), "{shown}");
        let ok = text.replace("dir:content", "postgresql://h/db");
        assert!(parse_with(&ok, path, Some(&kinds)).is_ok());
    }

    #[test]
    fn malformed_urls_and_secret_parameters_never_show_a_password() {
        let cases = [
            "postgres//ferry:PW@host/x",
            "postgres:/ferry:PW@host/x",
            "postgres:ferry:PW@host/x",
            "mysql//ferry:PW@host/x",
            ":PW@host",
            "ferry:PW@host:5432/db",
            "postgres://ferry:P@W@host/db",
            "postgres://ferry:PW/x@host/db",
            "postgres://h/db?password=PW",
            "postgres://h/db?sslmode=require&sslpassword=PW",
            "mysql://h/db?a=1&PASSWORD=PW#frag",
            "postgres://h/db?auth_token=PW",
        ];
        for url in cases {
            assert!(url_has_password(url), "{url}");
            let shown = redact_url(url);
            assert!(!shown.contains("PW"), "{url} shown as {shown}");
            assert!(shown.contains("***"), "{url} shown as {shown}");
        }
        assert_eq!(
            redact_url("postgres://h/db?sslmode=require"),
            "postgres://h/db?sslmode=require"
        );
        assert!(!url_has_password("postgres://h/db?sslmode=require&user=me"));
        assert!(!url_has_password("postgres://u:@h/db"));
    }

    #[test]
    fn a_url_where_another_type_belongs_is_not_echoed_with_its_password() {
        for text in [
            "pipeline = [\"a\"]\nenvironments = \"postgres://u:PW@h/db\"\n",
            "pipeline = \"mysql://u:PW@h/db?x=1\"\n",
            "pipeline = [\"a\"]\n[environments.a]\nreview = \"postgres://h/db?password=PW\"\n",
        ] {
            let err = parse(text, Path::new("f.toml")).unwrap_err().to_string();
            assert!(!err.contains("PW"), "{err}");
            assert!(err.contains("***"), "{err}");
        }
    }

    #[test]
    fn a_secret_query_parameter_in_the_file_is_refused() {
        let text =
            "pipeline = [\"a\"]\n[environments.a]\nurl = \"postgres://h/db?password=PW\"\n[tables.t]\nkey = [\"id\"]\n";
        let err = parse(text, Path::new("f.toml")).unwrap_err().to_string();
        assert!(err.contains("url_env") && err.contains("line 3"), "{err}");
        assert!(!err.contains("PW"), "{err}");
    }
}
