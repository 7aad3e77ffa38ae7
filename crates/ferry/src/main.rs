//! The `ferry` binary: parses the command line and hands each command to
//! its module in `cmd/`, which calls the engine. Exit codes: 0 done,
//! 1 error, 2 usage or configuration error, 3 blocked by conflicts or
//! gates (nothing applied), 4 permission denied (nothing applied).
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod hints;
mod output;
mod ui;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

/// Rows are decoded on reader threads and freed on the merge's: mimalloc
/// keeps that cheap and the resident memory flat, where the system allocator
/// grew an arena per thread.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Warnings (a hot journal rolled back, a hook that failed) show by
    // default; FERRY_LOG=debug shows more. A filter that does not parse is
    // said, not ignored.
    let filter = match tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::WARN.into())
        .with_env_var("FERRY_LOG")
        .from_env()
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: FERRY_LOG is not a log filter ({e}); use for example FERRY_LOG=debug");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.global.json;
    match runtime.block_on(cmd::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(0),
        Err(e) => {
            let (code, kind) = match e.downcast_ref::<ferry_engine::Error>() {
                Some(err) => (err.exit_code(), err.code()),
                None => match e.downcast_ref::<ui::Refused>() {
                    Some(_) => (2, "refused"),
                    None => (1, "error"),
                },
            };
            if json {
                use std::io::Write;
                let body = ErrorOut {
                    error: ErrorBody {
                        code: kind,
                        exit: code,
                        message: hints::message(&e),
                        hint: e
                            .downcast_ref::<ferry_engine::Error>()
                            .and_then(ferry_engine::Error::hint_of)
                            .cloned(),
                    },
                };
                // A closed stdout must not turn an error into a panic.
                if let Ok(text) = serde_json::to_string(&body) {
                    let _ = writeln!(std::io::stdout(), "{text}");
                }
            }
            eprintln!("{} {}", ui::error_label(), hints::message(&e));
            ExitCode::from(code)
        }
    }
}

/// `{"error": {...}}`: what a failed command prints on stdout with `--json`.
#[derive(serde::Serialize)]
struct ErrorOut {
    error: ErrorBody,
}

/// The error's stable code, the exit code, the message (with the hint
/// said as flags and commands) and, when the engine gave one, the hint as
/// data, for scripts that offer their own way out.
#[derive(serde::Serialize)]
struct ErrorBody {
    code: &'static str,
    exit: u8,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<ferry_engine::error::Hint>,
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == broken
            // `--json` output goes through serde_json, which wraps the I/O error.
            || c.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == broken
    })
}
