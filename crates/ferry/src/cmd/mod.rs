//! One module per command; each returns the process exit code.

mod baseline;
mod check;
pub mod demo;
mod diff;
mod env;
mod export;
mod gates;
pub mod init;
mod log;
mod promote;
mod refresh;
mod revert;
mod reviews;
mod serve;
mod track;

use anyhow::Result;
use ferry_core::selection::{parse_id, parse_skip, parse_where, Selection};
use ferry_engine::project::Project;
use ferry_engine::registry::Envs;
use ferry_engine::Error;

use crate::cli::{Cli, Command, Global, SelectionArgs};

pub async fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Init { demo, force } => init::run(g, demo, force).await,
        Command::Demo { keep } => demo::run(g, keep).await,
        Command::Check => check::run(g).await,
        Command::Export { env, dir } => export::run(g, &env, &dir).await,
        Command::Diff { from, to, selection } => diff::run(g, &from, &to, &selection, None, true).await,
        Command::Plan {
            from,
            to,
            selection,
            output,
        } => diff::run(g, &from, &to, &selection, output, false).await,
        Command::Promote {
            from,
            to,
            selection,
            plan,
            dry_run,
            approve_revisions,
            force,
            take,
        } => {
            let opts = promote::Options {
                plan,
                dry_run,
                approve_revisions,
                force,
                take: take.map(|t| match t {
                    crate::cli::TakeSide::Source => ferry_core::plan::Side::Source,
                    crate::cli::TakeSide::Target => ferry_core::plan::Side::Target,
                }),
            };
            promote::run(g, &from, &to, &selection, opts).await
        }
        Command::Refresh {
            env,
            from,
            drop_excluded,
            dry_run,
        } => refresh::run(g, &env, &from, refresh::Options { drop_excluded, dry_run }).await,
        Command::Log { env, limit } => log::run(g, env.as_deref(), limit).await,
        Command::Show { promotion } => log::show(g, &promotion).await,
        Command::Revert { promotion, force } => revert::run(g, &promotion, force).await,
        Command::Reviews { env, all } => reviews::list(g, env.as_deref(), all).await,
        Command::Review { action } => reviews::act(g, action).await,
        Command::Audit { env, limit } => reviews::audit(g, env.as_deref(), limit).await,
        Command::Serve { bind, secure_cookies } => serve::run(g, bind, secure_cookies).await,
        Command::User { action } => serve::user(g, action).await,
        Command::Env { action } => env::run(g, action).await,
        Command::Track { env } => track::run(g, &env).await,
        Command::Baseline {
            from,
            to,
            selection,
            dry_run,
        } => baseline::run(g, &from, &to, &selection, dry_run).await,
    }
}

pub fn load(g: &Global) -> Result<Project> {
    Ok(Project::load(&g.config)?)
}

/// The project's environments for one command: each opened once, on first use.
pub fn envs(g: &Global) -> Result<Envs> {
    Ok(Envs::new(load(g)?))
}

/// [`envs`] knowing the per-branch environments among `names` (looked up
/// in the configured environments' registries when the configuration does
/// not declare them).
pub async fn envs_for(g: &Global, names: &[&str]) -> Result<Envs> {
    Ok(Envs::discover(load(g)?, names).await?)
}

pub fn selection(args: &SelectionArgs) -> Result<Selection> {
    fn usage(flag: &'static str) -> impl Fn(ferry_core::selection::SelectionError) -> Error {
        move |e| Error::Usage(format!("{flag} {}", e.0))
    }
    Ok(Selection {
        tables: args.tables.clone(),
        ids: args
            .ids
            .iter()
            .map(|s| parse_id(s))
            .collect::<Result<_, _>>()
            .map_err(usage("--id"))?,
        wheres: args
            .wheres
            .iter()
            .map(|s| parse_where(s))
            .collect::<Result<_, _>>()
            .map_err(usage("--where"))?,
        skips: args
            .skips
            .iter()
            .map(|s| parse_skip(s))
            .collect::<Result<_, _>>()
            .map_err(usage("--skip"))?,
    })
}

/// The key of `FERRY_PLAN_KEY`, when it is set: `plan -o` signs with it,
/// and `promote --plan` then accepts only plans it signed.
pub fn plan_key() -> Result<Option<ferry_core::plan::PlanKey>> {
    match std::env::var("FERRY_PLAN_KEY") {
        Ok(secret) => Ok(Some(
            ferry_core::plan::PlanKey::from_secret(&secret).map_err(|e| Error::Usage(e.0))?,
        )),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::Usage("FERRY_PLAN_KEY is not valid UTF-8; set it to a text secret".into()).into())
        }
    }
}

/// The stores a read command looks at: `env`, or every environment of the
/// project. Those that cannot be opened here are left out, and each is
/// named on stderr with the reason, so a listing never looks complete when
/// it is not.
pub async fn stores(envs: &Envs, env: Option<&str>) -> Result<Vec<std::sync::Arc<dyn ferry_engine::Store>>> {
    let (out, unreachable) = envs.each(env).await?;
    if !unreachable.is_empty() {
        let lines: Vec<String> = unreachable
            .iter()
            .map(|(name, err)| format!("  {name}: {err}"))
            .collect();
        eprintln!(
            "{} {} environment(s) could not be read and are left out of this listing:\n{}",
            crate::ui::warning_label(),
            lines.len(),
            lines.join("\n")
        );
    }
    Ok(out)
}

/// Prints a view as JSON on stdout.
pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    use std::io::Write;
    // Stdout is line-buffered: unbuffered, pretty JSON would cost a write
    // per line (a plan of 17,000 changes: 600,000 writes, 1.4 s).
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Prints text on stdout.
pub fn print_text(s: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}
