//! A running `ferry serve` and HTTP clients for it: a browser-like session
//! (cookies, the page's CSRF token, `Origin`) or a bearer token.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value as J;

/// `ferry serve --bind 127.0.0.1:0` in `dir`, stopped on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Server {
    /// Starts the server of the project in `dir` (its ferry.toml), waiting
    /// until it says where it listens; `vars` are extra environment
    /// variables (database URLs).
    pub fn start(dir: &Path, vars: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("FERRY_CONFIG")
            .env("NO_COLOR", "1")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferry serve");
        let stderr = child.stderr.take().expect("the server's stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("Ferry serves ") {
                        let url = rest.split_whitespace().next().expect("an address");
                        break url.trim_end_matches('/').to_string();
                    }
                    seen.push(line);
                }
                _ => {
                    let _ = child.kill();
                    panic!("ferry serve ended before listening:\n{}", seen.join("\n"));
                }
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Server { child, base }
    }

    /// A client with no session.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.base, None)
    }

    /// Signs `user` in through the form, as a browser does.
    pub async fn sign_in(&self, user: &str, password: &str) -> Client {
        let c = self.anonymous();
        let r = c
            .post_form_raw("/login", &[("user", user), ("password", password), ("next", "/")])
            .await;
        assert!(
            r.status().is_redirection(),
            "signing in as {user} answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
        c.with_csrf().await
    }

    /// A client that sends `Authorization: Bearer TOKEN`.
    pub fn bearer(&self, token: &str) -> Client {
        Client::new(&self.base, Some(token))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ferry user add NAME --password-stdin` in `dir`.
pub fn add_user(dir: &Path, name: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["user", "add", name, "--password-stdin"])
        .current_dir(dir)
        .env_remove("FERRY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferry user add");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write the password");
    let out = child.wait_with_output().expect("ferry user add ends");
    assert!(
        out.status.success(),
        "ferry user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ferry user token NAME` in `dir`: the token.
pub fn token(dir: &Path, name: &str) -> String {
    let out = super::super::common::run_in(dir, &["user", "token", name]).expect(0);
    let token = out.stdout.trim().to_string();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace), "{out:?}");
    token
}

/// An HTTP client of the server: cookies kept, redirects not followed.
pub struct Client {
    http: reqwest::Client,
    pub base: String,
    /// The session's CSRF token (from the page's `csrf-token` meta).
    pub csrf: Option<String>,
    bearer: Option<String>,
}

impl Client {
    fn new(base: &str, bearer: Option<&str>) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            base: base.to_string(),
            csrf: None,
            bearer: bearer.map(str::to_string),
        }
    }

    /// Reads the CSRF token the overview page embeds.
    async fn with_csrf(mut self) -> Client {
        let page = self.get("/").await;
        let html = page.text().await.expect("the overview");
        let token = html
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("the overview carries no csrf-token meta:\n{html}"));
        self.csrf = Some(token.to_string());
        self
    }

    fn headers(&self, state_changing: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = &self.bearer {
            h.insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {t}")).expect("a header"),
            );
        }
        if state_changing {
            h.insert("origin", HeaderValue::from_str(&self.base).expect("a header"));
            if let Some(c) = &self.csrf {
                h.insert("x-csrf-token", HeaderValue::from_str(c).expect("a header"));
            }
        }
        h
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .headers(self.headers(false))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `GET path`, expecting `status`, as JSON.
    pub async fn get_json(&self, path: &str, status: u16) -> J {
        let r = self.get(path).await;
        expect_json(r, status, &format!("GET {path}")).await
    }

    #[allow(dead_code)] // for the API suites
    /// `POST path` with a JSON body (Origin and CSRF header as a page's
    /// script sends them), expecting `status`.
    pub async fn post_json(&self, path: &str, body: &J, status: u16) -> J {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .headers(self.headers(true))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        expect_json(r, status, &format!("POST {path}")).await
    }

    #[allow(dead_code)] // for the API suites
    /// `DELETE path` with a JSON body (Origin and CSRF header as a page's
    /// script sends them), expecting `status`.
    pub async fn delete_json(&self, path: &str, body: &J, status: u16) -> J {
        let r = self
            .http
            .delete(format!("{}{path}", self.base))
            .headers(self.headers(true))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
        expect_json(r, status, &format!("DELETE {path}")).await
    }

    /// `POST path` as a form of a page: the session's `csrf_token` field
    /// and the `Origin` header added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        if let Some(c) = &self.csrf {
            all.push(("csrf_token", c));
        }
        self.post_form_raw(path, &all).await
    }

    /// `POST path` with exactly `fields` and an `Origin` of this server.
    pub async fn post_form_raw(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut headers = self.headers(false);
        headers.insert("origin", HeaderValue::from_str(&self.base).expect("a header"));
        self.http
            .post(format!("{}{path}", self.base))
            .headers(headers)
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// The underlying client, for requests these helpers do not shape.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// The body of `r` as JSON, after checking its status.
pub async fn expect_json(r: reqwest::Response, status: u16, what: &str) -> J {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(got, status, "{what} answered {got}, expected {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}
