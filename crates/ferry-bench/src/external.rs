//! Baselines run as the command-line tools a person would use: the scan
//! floor (`sqlite3`, `psql`, `mariadb` reading every managed row, output
//! discarded) and `sqldiff` producing and applying the SQLite change set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::db::Db;
use crate::schema::TABLES;

/// The path of an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            crate::db::redact(String::from_utf8_lossy(&out.stderr).trim())
        );
    }
    Ok(())
}

/// Parts of a `mysql://user:password@host:port/db` URL.
struct MyUrl {
    user: String,
    password: Option<String>,
    host: String,
    port: String,
    db: String,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_my(url: &str) -> MyUrl {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
            None => (percent_decode(u), None),
        },
        None => ("root".to_string(), None),
    };
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "3306"));
    MyUrl {
        user,
        password,
        host: host.to_string(),
        port: port.to_string(),
        db: db.to_string(),
    }
}

/// Reads every managed row of each database once with the engine's own
/// client, output discarded; returns the wall time in seconds.
pub fn scan_floor(dbs: &[&Db]) -> Result<f64> {
    let start = Instant::now();
    for db in dbs {
        for t in &TABLES {
            match db {
                Db::Sqlite(p) => run(
                    Command::new("sqlite3").arg(p).arg(format!("select * from {}", t.name)),
                    "sqlite3",
                )?,
                Db::Postgres(..) => run(
                    Command::new("psql")
                        .args(["-X", "-q", "-d"])
                        .arg(db.url())
                        .arg("-c")
                        .arg(format!("COPY {} TO STDOUT", t.name)),
                    "psql",
                )?,
                Db::Mysql(..) => {
                    let u = parse_my(&db.url());
                    let client = if which("mariadb").is_some() { "mariadb" } else { "mysql" };
                    let mut cmd = Command::new(client);
                    cmd.arg("--quick")
                        .arg("-h")
                        .arg(&u.host)
                        .arg("-P")
                        .arg(&u.port)
                        .arg("-u")
                        .arg(&u.user)
                        .arg(&u.db)
                        .arg("-e")
                        .arg(format!("select * from {}", t.name));
                    if let Some(p) = &u.password {
                        cmd.env("MYSQL_PWD", p);
                    }
                    run(&mut cmd, client)?
                }
                Db::Mongo(..) => bail!("MongoDB's scan floor is read with the driver (mongo::scan_floor)"),
            }
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// `sqldiff --transaction production staging > out`; returns the seconds.
pub fn sqldiff(production: &Path, staging: &Path, out: &Path) -> Result<f64> {
    let file = std::fs::File::create(out)?;
    let start = Instant::now();
    let o = Command::new("sqldiff")
        .arg("--transaction")
        .arg(production)
        .arg(staging)
        .stdout(file)
        .stderr(Stdio::piped())
        .output()
        .context("cannot run sqldiff")?;
    let secs = start.elapsed().as_secs_f64();
    if !o.status.success() {
        bail!(
            "sqldiff failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(secs)
}

/// `sqlite3 db < sql`; returns the seconds.
pub fn sqlite3_apply(db: &Path, sql: &Path) -> Result<f64> {
    let input = std::fs::File::open(sql)?;
    let start = Instant::now();
    let o = Command::new("sqlite3")
        .arg("-bail")
        .arg(db)
        .stdin(input)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run sqlite3")?;
    let secs = start.elapsed().as_secs_f64();
    if !o.status.success() {
        bail!(
            "sqlite3 applying sqldiff's output failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_urls() {
        let u = parse_my("mysql://ro%40t:p%3Aw@db.local:3307/x?ssl-mode=disabled");
        assert_eq!((u.user.as_str(), u.password.as_deref()), ("ro@t", Some("p:w")));
        assert_eq!(
            (u.host.as_str(), u.port.as_str(), u.db.as_str()),
            ("db.local", "3307", "x")
        );
        let u = parse_my("mysql://root@127.0.0.1/y");
        assert_eq!((u.port.as_str(), u.password), ("3306", None));
    }
}
