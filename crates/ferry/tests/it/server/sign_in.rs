//! Signing in: sessions, tokens, and what a request without them gets.

use super::support::{add_user, token, Server};
use crate::common::{run_in, Fixture};

/// A fixture with users alice (pw-alice) and bob (pw-bob), served.
fn served() -> (Fixture, Server) {
    let f = Fixture::new();
    add_user(f.path(), "alice", "pw-alice");
    add_user(f.path(), "bob", "pw-bob");
    let s = Server::start(f.path(), &[]);
    (f, s)
}

#[tokio::test]
async fn nothing_is_served_without_a_session_or_a_token() {
    let (_f, s) = served();
    let anon = s.anonymous();
    let page = anon.get("/").await;
    assert_eq!(page.status().as_u16(), 303);
    assert_eq!(page.headers()["location"], "/login?next=/");
    let body = anon.get_json("/api/v1/environments", 401).await;
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    // A made-up token is no better.
    s.bearer("not-a-token").get_json("/api/v1/environments", 401).await;
    // The sign-in form has its test ids.
    let form = anon.get("/login").await.text().await.unwrap();
    for id in ["login-user", "login-password", "login-submit"] {
        assert!(form.contains(&format!("data-testid=\"{id}\"")), "{id}: {form}");
    }
}

#[tokio::test]
async fn a_signed_in_user_sees_the_pages_and_the_api() {
    let (_f, s) = served();
    let alice = s.sign_in("alice", "pw-alice").await;
    let page = alice.get("/").await;
    assert_eq!(page.status().as_u16(), 200);
    let headers = page.headers().clone();
    let html = page.text().await.unwrap();
    assert!(html.contains("data-testid=\"current-user\">alice<"), "{html}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let envs = alice.get_json("/api/v1/environments", 200).await;
    let names: Vec<&str> = envs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["staging", "production"]);
    assert_eq!(envs[0]["healthy"], true);
    assert_eq!(envs[0]["promotes_to"], "production");
    assert_eq!(envs[1]["pipeline_index"], 1);
}

#[tokio::test]
async fn a_wrong_password_signs_nobody_in_and_repeated_failures_are_refused() {
    let (_f, s) = served();
    let anon = s.anonymous();
    let r = anon
        .post_form_raw("/login", &[("user", "alice"), ("password", "wrong"), ("next", "/")])
        .await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("data-testid=\"login-error\""));
    for _ in 0..5 {
        anon.post_form_raw("/login", &[("user", "alice"), ("password", "wrong")])
            .await;
    }
    // Now even the right password waits out the window.
    let r = anon
        .post_form_raw("/login", &[("user", "alice"), ("password", "pw-alice")])
        .await;
    assert_eq!(r.status().as_u16(), 429, "{}", r.text().await.unwrap());
    // Other users are not affected.
    s.sign_in("bob", "pw-bob").await;
}

#[tokio::test]
async fn the_sign_in_form_refuses_another_site_and_never_redirects_away() {
    let (_f, s) = served();
    let anon = s.anonymous();
    let foreign = anon
        .http()
        .post(format!("{}/login", s.base))
        .header("origin", "http://evil.example")
        .form(&[("user", "alice"), ("password", "pw-alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    assert!(foreign.headers().get("set-cookie").is_none());
    let r = anon
        .post_form_raw(
            "/login",
            &[
                ("user", "alice"),
                ("password", "pw-alice"),
                ("next", "//evil.example/x"),
            ],
        )
        .await;
    assert_eq!(r.headers()["location"], "/");
}

#[tokio::test]
async fn a_token_works_until_its_user_is_removed() {
    let (f, s) = served();
    let t = token(f.path(), "alice");
    s.bearer(&t).get_json("/api/v1/environments", 200).await;
    let alice = s.sign_in("alice", "pw-alice").await;
    run_in(f.path(), &["user", "remove", "alice"]).expect(0);
    s.bearer(&t).get_json("/api/v1/environments", 401).await;
    // Her session ended with her.
    assert_eq!(alice.get("/").await.status().as_u16(), 303);
    let listed = run_in(f.path(), &["user", "list", "--json"]).expect(0).json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    run_in(f.path(), &["user", "remove", "alice"]).expect(2);
}

#[tokio::test]
async fn signing_out_needs_the_csrf_token_and_ends_the_session() {
    let (_f, s) = served();
    let alice = s.sign_in("alice", "pw-alice").await;
    let refused = alice.post_form_raw("/logout", &[]).await;
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(alice.get("/").await.status().as_u16(), 200, "still signed in");
    let out = alice.post_form("/logout", &[]).await;
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(alice.get("/").await.status().as_u16(), 303, "signed out");
}

#[test]
fn user_add_reads_one_line_and_refuses_bad_names() {
    let f = Fixture::new();
    add_user(f.path(), "carol", "secret with spaces");
    let out = run_in(f.path(), &["user", "add", "bad name", "--password-stdin"]);
    assert_eq!(out.code, 2, "{out:?}");
    // No terminal and no --password-stdin: told how.
    let out = run_in(f.path(), &["user", "add", "dave"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--password-stdin"), "{}", out.stderr);
}

#[tokio::test]
async fn replicas_sharing_a_postgres_state_store_share_users_and_sessions() {
    let Some(state) = ferry_testdb::Database::create(ferry_testdb::Engine::Postgres, "server replicas", "ferry_state")
    else {
        return;
    };
    let f = Fixture::new();
    let config = std::fs::read_to_string(f.path().join("ferry.toml")).unwrap();
    f.write_config(&format!("{config}\n[server]\nstate_env = \"FERRY_TEST_STATE\"\n"));
    let vars = [("FERRY_TEST_STATE", state.url.as_str())];
    let out = crate::common::run_in_with(f.path(), &["user", "add", "alice", "--password-stdin"], &vars);
    // No stdin: refused with the way to pass the password.
    assert_eq!(out.code, 2, "{out:?}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["user", "add", "alice", "--password-stdin"])
        .current_dir(f.path())
        .envs(vars)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"pw-alice\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!f.path().join("ferry-server.db").exists(), "the state is in PostgreSQL");
    let a = Server::start(f.path(), &vars);
    let b = Server::start(f.path(), &vars);
    let alice = a.sign_in("alice", "pw-alice").await;
    // The cookie from replica a opens replica b's pages.
    let on_b = alice.http().get(format!("{}/", b.base)).send().await.unwrap();
    assert_eq!(on_b.status().as_u16(), 200);
    let t = crate::common::run_in_with(f.path(), &["user", "token", "alice"], &vars).expect(0);
    b.bearer(t.stdout.trim()).get_json("/api/v1/environments", 200).await;
}
