//! `ferry serve` and `ferry user`: the web UI and its users.

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use ferry_engine::Error;
use ferry_server::accounts;

use super::{load, print_json, print_text};
use crate::cli::{Global, UserAction};
use crate::ui;

pub async fn run(g: &Global, bind: SocketAddr, secure_cookies: bool) -> Result<u8> {
    let project = Arc::new(load(g)?);
    let accounts = accounts::open(&project).await?;
    if accounts.users().await?.is_empty() {
        eprintln!(
            "{} nobody can sign in yet: add a user with `ferry user add NAME` (their roles come from [access])",
            ui::warning_label()
        );
    }
    if !bind.ip().is_loopback() && !secure_cookies {
        eprintln!(
            "{} listening on {bind}, beyond this machine, without TLS: serve it behind a TLS proxy and pass --secure-cookies (docs/server.md)",
            ui::warning_label()
        );
    }
    let state = ferry_server::AppState::new(project, accounts, secure_cookies);
    ferry_server::serve(state, ferry_server::ServeOptions { bind }, |addr| {
        eprintln!("Ferry serves http://{addr}/ (Ctrl-C stops it)");
    })
    .await?;
    Ok(0)
}

pub async fn user(g: &Global, action: UserAction) -> Result<u8> {
    let project = load(g)?;
    let accounts = accounts::open(&project).await?;
    match action {
        UserAction::Add { name, password_stdin } => {
            check_name(&name)?;
            let password = if password_stdin {
                read_stdin_line()?
            } else {
                ask_password(&name)?
            };
            if password.is_empty() {
                return Err(Error::Usage("the password is empty; give one".into()).into());
            }
            let created = accounts
                .set_password(&name, &accounts::hash_password(&password)?)
                .await?;
            let roles = match &project.config.access {
                None => "no [access] section: every signed-in user may do everything".to_string(),
                Some(a) => match a.users.get(&name) {
                    Some(r) => format!("roles from [access]: {}", r.join(", ")),
                    None => format!("`{name}` is not listed in [access]: they may look, not write"),
                },
            };
            let what = if created {
                "added"
            } else {
                "has a new password (signed out everywhere)"
            };
            eprintln!("User `{name}` {what}; {roles}.");
        }
        UserAction::List => {
            let users = accounts.users().await?;
            if g.json {
                print_json(&users)?;
            } else if users.is_empty() {
                print_text("No users yet: add one with `ferry user add NAME`.\n")?;
            } else {
                let mut text = String::new();
                for u in &users {
                    text.push_str(&format!(
                        "{}  (added {}, {} token(s))\n",
                        u.name, u.created_at, u.tokens
                    ));
                }
                print_text(&text)?;
            }
        }
        UserAction::Remove { name } => {
            if !accounts.remove(&name).await? {
                return Err(Error::Usage(format!("there is no user `{name}`; `ferry user list` lists them")).into());
            }
            eprintln!("User `{name}` removed; their sessions and tokens no longer work.");
        }
        UserAction::Token { name } => {
            if accounts.password_hash(&name).await?.is_none() {
                return Err(Error::Usage(format!(
                    "there is no user `{name}`; add them first with `ferry user add {name}`"
                ))
                .into());
            }
            let token = accounts::secret();
            accounts.add_token(&name, &accounts::digest(&token)).await?;
            print_text(&format!("{token}\n"))?;
            eprintln!("Shown once: keep it; `ferry user remove {name}` revokes it with the user.");
        }
    }
    Ok(0)
}

/// A user name: what [access] can name.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || "-_.@".contains(c)) {
        return Err(Error::Usage(format!(
            "`{name}` is not a user name: use letters, digits, `-`, `_`, `.` and `@`"
        ))
        .into());
    }
    Ok(())
}

/// One line of standard input without its line ending.
fn read_stdin_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Asks twice on the terminal, without echo.
fn ask_password(name: &str) -> Result<String> {
    let term = console::Term::stderr();
    if !term.is_term() {
        return Err(Error::Usage(
            "there is no terminal to ask for the password on: pipe it in with --password-stdin".into(),
        )
        .into());
    }
    term.write_str(&format!("Password for {name}: "))?;
    let first = term.read_secure_line()?;
    term.write_str("Again: ")?;
    let second = term.read_secure_line()?;
    if first != second {
        return Err(Error::Usage("the two passwords differ; nothing was changed".into()).into());
    }
    Ok(first)
}
