//! `ferry-bench serve`: `ferry serve` under concurrent clients (issue 17).
//!
//! SQLite environments at scale S (production generated, staging a copy
//! with the usual change set, a baseline between them and a few hundred
//! promotions in the journal) served in-process on a free port; N clients
//! each send their share of requests of one kind at a time, and every
//! latency is kept. Reported per kind: median and p95, and the ratio of
//! the p95 to that of a static asset under the same load (the server's own
//! floor, measured in the same run).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ferry_core::plan::Action;
use ferry_core::selection::Selection;
use ferry_engine::ops::{self, baseline::BaselineRequest, promote::PromoteRequest};
use ferry_engine::project::Project;
use ferry_engine::registry::Envs;
use ferry_server::accounts::{self, Accounts, SqliteAccounts};

use crate::db::Db;
use crate::gen::Workload;
use crate::schema::{ferry_toml, PRODUCTION_VAR, STAGING_VAR};

/// How the server benchmark runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub scale: f64,
    pub seed: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests of each kind, over all clients.
    pub requests: usize,
    /// Sequential transfers of one business with its forms.
    pub transfers: usize,
}

/// The latencies of one kind of request.
#[derive(Clone, Debug)]
pub struct Latencies {
    pub what: String,
    pub clients: usize,
    pub millis: Vec<f64>,
}

impl Latencies {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.millis.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    /// The q-quantile (nearest rank).
    pub fn quantile(&self, q: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }
}

/// Sets the environments up, serves them, and measures.
pub async fn run(opts: &ServeOptions) -> Result<Vec<Latencies>> {
    let dir = tempfile::tempdir()?;
    let project = prepare(dir.path(), opts).await?;
    let state_db = dir.path().join("ferry-server.db");
    let accounts: Arc<dyn Accounts> = Arc::new(SqliteAccounts::open(&state_db)?);
    accounts
        .set_password("bench", &accounts::hash_password("bench")?)
        .await?;
    let token = accounts::secret();
    accounts.add_token("bench", &accounts::digest(&token)).await?;
    let businesses = changed_businesses(&project, opts.transfers + 1).await?;
    let state = ferry_server::AppState::new(Arc::new(project), accounts, false);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let bind = "127.0.0.1:0".parse()?;
    tokio::spawn(async move {
        let served = ferry_server::serve(state, ferry_server::ServeOptions { bind }, |addr| {
            let _ = tx.send(addr);
        })
        .await;
        if let Err(e) = served {
            eprintln!("ferry-bench serve: the server stopped: {e:#}");
        }
    });
    let addr = rx.await.context("the server did not start")?;
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.clients)
        .build()?;
    let auth = format!("Bearer {token}");
    settle(&client, &base, &auth).await?;
    let mut out = Vec::new();
    let (first, rest) = businesses.split_first().context("no business changed in staging")?;
    let kinds = [
        ("static asset (floor)", "/assets/ferry.css".to_string()),
        ("history page", "/history".to_string()),
        ("reviews page", "/reviews".to_string()),
        ("audit page", "/audit".to_string()),
        (
            "diff of one business (API)",
            format!("/api/v1/diff?from=staging&to=production&{}", ids_query(first)),
        ),
    ];
    for (what, path) in kinds {
        eprintln!(
            "ferry-bench serve: {what}: {} requests from {} clients",
            opts.requests, opts.clients
        );
        out.push(load(&client, &base, &auth, what, &path, opts).await?);
    }
    out.push(transfers(&client, &base, &auth, rest).await?);
    Ok(out)
}

/// Waits until the overview's background plans (started with the server)
/// are done, so they do not run during the measurements.
async fn settle(client: &reqwest::Client, base: &str, auth: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        let page = client
            .get(format!("{base}/"))
            .header("authorization", auth)
            .send()
            .await?;
        let html = page.text().await?;
        if !html.contains("data-state=\"computing\"") {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("the overview's pending counts were still computing after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A business with its forms, as ids for a selection.
type Group = Vec<String>;

fn ids_query(group: &Group) -> String {
    group.iter().map(|id| format!("id={id}")).collect::<Vec<_>>().join("&")
}

/// Staging and production at scale S with the change set between them, a
/// baseline, and some history: the journal and audit the pages list.
async fn prepare(dir: &Path, opts: &ServeOptions) -> Result<Project> {
    let w = Workload::new(opts.scale, opts.seed);
    let (production, staging) = (
        Db::Sqlite(dir.join("production.db")),
        Db::Sqlite(dir.join("staging.db")),
    );
    eprintln!(
        "ferry-bench serve: generating S={} ({} rows)",
        opts.scale,
        w.total_rows()
    );
    production.create_production(&w).await?;
    production.copy_to(&staging).await?;
    let config = dir.join("ferry.toml");
    std::fs::write(&config, ferry_toml())?;
    std::env::set_var(STAGING_VAR, staging.url());
    std::env::set_var(PRODUCTION_VAR, production.url());
    let project = Project::load(&config)?;
    let envs = Envs::new(project.clone());
    let quiet = ops::Quiet;
    let b = ops::baseline::prepare(
        &envs,
        BaselineRequest {
            from: "staging".into(),
            to: "production".into(),
            user: "ferry-bench".into(),
            selection: Selection::default(),
            wait: true,
        },
        &quiet,
    )
    .await?;
    b.commit().await?;
    staging.apply(&w.changes()).await?;
    // History for the pages: single-business promotions.
    let history = changed_businesses(&project, 40).await?;
    eprintln!("ferry-bench serve: {} promotions for the history", history.len() / 2);
    for group in history.iter().skip(history.len() / 2) {
        promote(&envs, group).await?;
    }
    Ok(project)
}

async fn promote(envs: &Envs, group: &Group) -> Result<()> {
    let mut selection = Selection::default();
    for id in group {
        selection
            .ids
            .push(ferry_core::selection::parse_id(id).map_err(|e| anyhow::anyhow!(e.0))?);
    }
    let req = PromoteRequest {
        from: "staging".into(),
        to: "production".into(),
        user: "ferry-bench".into(),
        selection,
        saved: None,
        dry_run: false,
        approve_revisions: false,
        force: false,
        take: None,
        wait: true,
        expect: None,
    };
    ops::promote::prepare(envs, req, &ops::Quiet).await?.commit().await?;
    Ok(())
}

/// Up to `n` businesses that staging changed, each with its forms.
async fn changed_businesses(project: &Project, n: usize) -> Result<Vec<Group>> {
    let envs = Envs::new(project.clone());
    let pair = envs.pair("staging", "production", &Selection::default(), true).await?;
    let sel = Selection {
        tables: vec!["businesses".into()],
        ..Selection::default()
    };
    let plan = ferry_engine::planner::plan(&pair, &sel, ferry_engine::progress::Progress::hidden()).await?;
    let url = project.url("staging")?;
    let path = url.strip_prefix("sqlite://").context("the benchmark serves SQLite")?;
    let conn = rusqlite::Connection::open(path)?;
    let mut out = Vec::new();
    // Updates and inserts: a deleted business may still have forms in production.
    let kept = |e: &&ferry_core::plan::PlanEntry| matches!(e.action, Action::Update | Action::Insert);
    for e in plan.entries.iter().filter(|e| e.table == "businesses").filter(kept) {
        let key = e
            .key
            .first()
            .map(|k| k.display_text())
            .context("a business without a key")?;
        let mut group = vec![format!("businesses:{key}")];
        let mut st = conn.prepare("SELECT id FROM forms WHERE business_id = ?1 ORDER BY id")?;
        let forms: Vec<i64> = st
            .query_map([key.parse::<i64>()?], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        group.extend(forms.iter().map(|f| format!("forms:{f}")));
        out.push(group);
        if out.len() == n {
            break;
        }
    }
    if out.len() < n {
        bail!("only {} businesses changed in staging; {n} are needed", out.len());
    }
    Ok(out)
}

/// `opts.requests` GETs of `path` from `opts.clients` clients at once.
async fn load(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    what: &str,
    path: &str,
    opts: &ServeOptions,
) -> Result<Latencies> {
    let per = opts.requests.div_ceil(opts.clients);
    let mut tasks = Vec::new();
    for _ in 0..opts.clients {
        let (client, url, auth) = (client.clone(), format!("{base}{path}"), auth.to_string());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                let r = client.get(&url).header("authorization", &auth).send().await?;
                let status = r.status();
                let body = r.bytes().await?;
                if !status.is_success() {
                    bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
                }
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(times)
        }));
    }
    let mut millis = Vec::new();
    for t in tasks {
        millis.extend(t.await??);
    }
    Ok(Latencies {
        what: what.into(),
        clients: opts.clients,
        millis,
    })
}

/// Transfers of one business with its forms, one after the other (a
/// target takes one writer at a time), end to end through the API.
async fn transfers(client: &reqwest::Client, base: &str, auth: &str, groups: &[Group]) -> Result<Latencies> {
    let mut millis = Vec::new();
    eprintln!(
        "ferry-bench serve: {} transfers of one business with its forms",
        groups.len()
    );
    for group in groups {
        let body = serde_json::json!({"from": "staging", "to": "production", "ids": group});
        let t = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/promotions"))
            .header("authorization", auth)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if status.as_u16() != 201 {
            bail!("POST /api/v1/promotions {body}: {status}: {text}");
        }
        millis.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Latencies {
        what: "transfer of one business with its forms (API)".into(),
        clients: 1,
        millis,
    })
}

/// The results as a Markdown table.
pub fn report(results: &[Latencies], opts: &ServeOptions) -> String {
    let floor = results
        .iter()
        .find(|r| r.what.starts_with("static asset"))
        .map(|r| r.quantile(0.95));
    let mut s = format!(
        "S={}, {} clients, {} requests per kind, {} transfers; SQLite; latencies in ms\n\n| Request | Clients | n | Median | p95 | p95 / static asset p95 |\n|---|---:|---:|---:|---:|---:|\n",
        opts.scale, opts.clients, opts.requests, opts.transfers
    );
    for r in results {
        let p95 = r.quantile(0.95);
        let ratio = floor.map_or("-".to_string(), |f| format!("{:.1}x", p95 / f));
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {ratio} |\n",
            r.what,
            r.clients,
            r.millis.len(),
            r.quantile(0.5),
            p95
        ));
    }
    s
}
