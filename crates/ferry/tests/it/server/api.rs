//! The JSON API over HTTP, on SQLite: every endpoint's happy path and its
//! errors, and the security rules (tokens, roles, CSRF and Origin,
//! self-approval, a stale plan hash, database URLs never shown), with the
//! real binary serving the fixture's databases.

use serde_json::{json, Value as J};

use super::support::{add_user, expect_json, token, Client, Server};
use crate::common::{dump, Fixture, CONFIG};

/// Who may do what when `[access]` is on: alice promotes, bob approves
/// and reverts, carol only looks.
const ACCESS: &str = r#"
[access]
users = { alice = ["pm"], bob = ["lead"], carol = ["qa"] }
promote = { production = ["pm"] }
approve = { production = ["lead"] }
revert = { production = ["lead"] }
"#;

/// The fixture served with `config`, alice, bob and carol as users
/// (passwords `pw-NAME`), and alice's token.
fn served_with(config: &str) -> (Fixture, Server, String) {
    let f = Fixture::new();
    f.write_config(config);
    for u in ["alice", "bob", "carol"] {
        add_user(f.path(), u, &format!("pw-{u}"));
    }
    let t = token(f.path(), "alice");
    let s = Server::start(f.path(), &[]);
    (f, s, t)
}

/// The configuration with production holding promotions for review.
fn reviewed_config() -> String {
    let c = CONFIG.replace(
        "url = \"sqlite://production.db\"",
        "url = \"sqlite://production.db\"\nreview = true",
    );
    assert_ne!(c, CONFIG, "the fixture's production URL moved");
    format!("{c}{ACCESS}")
}

fn error_code(body: &J) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

/// `POST path` with a bearer token and no `Origin` or CSRF header.
async fn post_bearer(s: &Server, t: &str, path: &str, body: &J, status: u16) -> J {
    let r = s
        .anonymous()
        .http()
        .post(format!("{}{path}", s.base))
        .bearer_auth(t)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    expect_json(r, status, &format!("POST {path}")).await
}

#[tokio::test]
async fn diff_promote_list_show_and_revert_over_http() {
    let (f, s, t) = served_with(CONFIG);
    let api = s.bearer(&t);
    let plan = api
        .get_json("/api/v1/diff?from=staging&to=production&id=cities:2", 200)
        .await;
    assert_eq!(plan["counts"]["insert"], 1, "{plan}");
    assert_eq!(plan["changes"][0]["key"]["id"], 2, "{plan}");
    let hash = plan["hash"].as_str().expect("a hash").to_string();
    assert_eq!(hash.len(), 64, "{plan}");
    // Repeated `table` keys are one selection.
    let tables = api
        .get_json("/api/v1/diff?from=staging&to=production&table=cities&table=menus", 200)
        .await;
    assert_eq!(tables["counts"]["insert"], 5, "{tables}");

    let done = post_bearer(
        &s,
        &t,
        "/api/v1/promotions",
        &json!({"from": "staging", "to": "production", "ids": ["cities:2"], "plan_hash": hash}),
        201,
    )
    .await;
    let id = done["promotion"]
        .as_str()
        .unwrap_or_else(|| panic!("{done}"))
        .to_string();
    assert_eq!(done["review"], J::Null, "{done}");
    assert_eq!(done["counts"]["insert"], 1, "{done}");
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);

    let log = api.get_json("/api/v1/promotions?env=production", 200).await;
    assert_eq!(log[0]["id"], id.as_str(), "{log}");
    assert_eq!(log[0]["user"], "alice", "{log}");
    let all = api.get_json("/api/v1/promotions", 200).await;
    assert_eq!(all[0]["id"], id.as_str(), "{all}");
    let shown = api.get_json(&format!("/api/v1/promotions/{id}"), 200).await;
    assert_eq!(shown["rows"][0]["table"], "cities", "{shown}");
    assert_eq!(shown["rows"][0]["after"]["name"], "Zürich 🏔️", "{shown}");

    let reverted = post_bearer(&s, &t, &format!("/api/v1/promotions/{id}/revert"), &json!({}), 200).await;
    assert_eq!(reverted["reverts"], id.as_str(), "{reverted}");
    let revert_id = reverted["promotion"].as_str().expect("the revert's id");
    assert_ne!(revert_id, id);
    assert_eq!(f.ids("production", "cities"), [1, 3, 99]);
    // Reverting it again is blocked: it is reverted already.
    let again = post_bearer(&s, &t, &format!("/api/v1/promotions/{id}/revert"), &json!(null), 409).await;
    assert_eq!(error_code(&again), "blocked", "{again}");
    let log = api.get_json("/api/v1/promotions?env=production&limit=1", 200).await;
    assert_eq!(log.as_array().map(Vec::len), Some(1), "{log}");
    assert_eq!(log[0]["id"], revert_id, "{log}");
}

#[tokio::test]
async fn unknown_ids_are_404_and_bad_requests_400_always_as_json() {
    let (f, s, t) = served_with(CONFIG);
    let before = dump(&f.production());
    let api = s.bearer(&t);
    let missing = api.get_json("/api/v1/promotions/01HZZZZZZZZZZZZZZZZZZZZZZZ", 404).await;
    assert_eq!(missing["error"]["hint"]["kind"], "list-promotions", "{missing}");
    api.get_json("/api/v1/reviews/01HZZZZZZZZZZZZZZZZZZZZZZZ", 404).await;
    post_bearer(
        &s,
        &t,
        "/api/v1/promotions/01HZZZZZZZZZZZZZZZZZZZZZZZ/revert",
        &json!({}),
        404,
    )
    .await;
    post_bearer(
        &s,
        &t,
        "/api/v1/reviews/01HZZZZZZZZZZZZZZZZZZZZZZZ/approve",
        &json!({}),
        404,
    )
    .await;
    let nothing = api.get_json("/api/v1/nothing-here", 404).await;
    assert_eq!(error_code(&nothing), "not-found");
    // A path that does not decode, a method a path does not answer.
    let bad = api.get_json("/api/v1/promotions/%FF", 400).await;
    assert_eq!(error_code(&bad), "usage", "{bad}");
    let wrong = api
        .get_json("/api/v1/promotions/01HZZZZZZZZZZZZZZZZZZZZZZZ/revert", 405)
        .await;
    assert_eq!(error_code(&wrong), "usage", "{wrong}");

    for (path, says) in [
        ("/api/v1/diff?from=staging", "to"),
        ("/api/v1/diff?from=staging&to=production&id=cities", "cities"),
        ("/api/v1/diff?from=staging&to=nowhere", "nowhere"),
        ("/api/v1/diff?from=staging&to=production&table=nope", "nope"),
        ("/api/v1/diff?from=staging&to=production&colour=red", "colour"),
        ("/api/v1/promotions?limit=0", "limit"),
        ("/api/v1/promotions?env=nowhere", "nowhere"),
        ("/api/v1/audit?env=production&cursor=not-a-cursor", "cursor"),
    ] {
        let body = api.get_json(path, 400).await;
        assert_eq!(error_code(&body), "usage", "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{path}: {body}");
    }
    for (body, says) in [
        (json!({"from": "staging"}), "to"),
        (
            json!({"from": "staging", "to": "production", "ids": "cities:2"}),
            "sequence",
        ),
        (
            json!({"from": "staging", "to": "production", "ids": ["cities"]}),
            "cities",
        ),
        (
            json!({"from": "staging", "to": "production", "plan-hash": "x"}),
            "plan-hash",
        ),
        (json!({"from": "staging", "to": "production", "take": "source"}), "take"),
        (
            json!({"from": "staging", "to": "production", "take": "both", "ids": ["cities:2"]}),
            "both",
        ),
    ] {
        let got = post_bearer(&s, &t, "/api/v1/promotions", &body, 400).await;
        assert_eq!(error_code(&got), "usage", "{body}: {got}");
        assert!(
            got["error"]["message"].as_str().unwrap_or_default().contains(says),
            "{body}: {got}"
        );
    }
    // Not JSON at all.
    let r = s
        .anonymous()
        .http()
        .post(format!("{}/api/v1/promotions", s.base))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let got = expect_json(r, 400, "POST garbage").await;
    assert_eq!(error_code(&got), "usage", "{got}");
    assert_eq!(dump(&f.production()), before, "a refused request wrote something");
}

#[tokio::test]
async fn a_stale_plan_hash_is_409_and_nothing_is_written() {
    let (f, s, t) = served_with(CONFIG);
    let plan = s
        .bearer(&t)
        .get_json("/api/v1/diff?from=staging&to=production&table=cities", 200)
        .await;
    let hash = plan["hash"].as_str().expect("a hash");
    // Someone edits staging after the diff was shown.
    f.exec("staging", "UPDATE cities SET name = 'Zürich (new)' WHERE id = 2");
    let before = dump(&f.production());
    let got = post_bearer(
        &s,
        &t,
        "/api/v1/promotions",
        &json!({"from": "staging", "to": "production", "tables": ["cities"], "plan_hash": hash}),
        409,
    )
    .await;
    assert_eq!(error_code(&got), "blocked", "{got}");
    assert_eq!(got["error"]["hint"]["kind"], "stale", "{got}");
    assert_eq!(dump(&f.production()), before, "a stale promotion wrote something");
    // A hash of a wider selection shown (`shown`) is checked against that
    // selection: the fresh one of the whole table lets one row through.
    let fresh = s
        .bearer(&t)
        .get_json("/api/v1/diff?from=staging&to=production&table=cities", 200)
        .await;
    let done = post_bearer(
        &s,
        &t,
        "/api/v1/promotions",
        &json!({"from": "staging", "to": "production", "ids": ["cities:2"],
                "plan_hash": fresh["hash"], "shown": {"tables": ["cities"]}}),
        201,
    )
    .await;
    assert_eq!(done["counts"]["insert"], 1, "{done}");
    assert_eq!(
        f.scalar("production", "SELECT name FROM cities WHERE id = 2"),
        "Zürich (new)"
    );
}

#[tokio::test]
async fn two_clients_promoting_the_same_rows_with_one_hash_one_wins() {
    let (f, s, t) = served_with(CONFIG);
    let bob = token(f.path(), "bob");
    let plan = s
        .bearer(&t)
        .get_json("/api/v1/diff?from=staging&to=production&table=cities", 200)
        .await;
    let body = json!({"from": "staging", "to": "production", "tables": ["cities"], "plan_hash": plan["hash"]});
    let post = |token: String, body: J| {
        let base = s.base.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/api/v1/promotions"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("POST /api/v1/promotions");
            let status = r.status().as_u16();
            (status, r.json::<J>().await.expect("a JSON body"))
        }
    };
    let (a, b) = tokio::join!(post(t.clone(), body.clone()), post(bob, body.clone()));
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{a:?} {b:?}");
    let refused = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(refused["error"]["hint"]["kind"], "stale", "{refused}");
    let log = s.bearer(&t).get_json("/api/v1/promotions?env=production", 200).await;
    assert_eq!(log.as_array().map(Vec::len), Some(1), "{log}");
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
}

#[tokio::test]
async fn roles_tokens_and_csrf_guard_every_write() {
    let (f, s, alice_token) = served_with(&format!("{CONFIG}{ACCESS}"));
    let before = dump(&f.production());
    let body = json!({"from": "staging", "to": "production", "ids": ["cities:2"]});
    // No session, no token.
    let anon = s.anonymous();
    let got = anon.post_json("/api/v1/promotions", &body, 401).await;
    assert_eq!(error_code(&got), "unauthorized");
    // A role that may not promote there.
    let carol = token(f.path(), "carol");
    let got = post_bearer(&s, &carol, "/api/v1/promotions", &body, 403).await;
    assert_eq!(error_code(&got), "denied", "{got}");
    // A session without the CSRF header, or from another site.
    let alice = s.sign_in("alice", "pw-alice").await;
    let csrf = alice.csrf.clone().expect("a CSRF token");
    let no_csrf = alice
        .http()
        .post(format!("{}/api/v1/promotions", s.base))
        .header("origin", &s.base)
        .json(&body)
        .send()
        .await
        .unwrap();
    let got = expect_json(no_csrf, 403, "POST without X-CSRF-Token").await;
    assert_eq!(error_code(&got), "forbidden", "{got}");
    let foreign = alice
        .http()
        .post(format!("{}/api/v1/promotions", s.base))
        .header("origin", "http://evil.example")
        .header("x-csrf-token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_json(foreign, 403, "POST from another Origin").await;
    assert_eq!(dump(&f.production()), before, "a refused request wrote something");
    // The audit trail has carol's refusal.
    let audit = s
        .bearer(&alice_token)
        .get_json("/api/v1/audit?env=production&user=carol", 200)
        .await;
    assert_eq!(audit["entries"][0]["result"], "denied", "{audit}");

    // With the header and this server's Origin, the session promotes; a
    // bearer token needs neither.
    let done = alice.post_json("/api/v1/promotions", &body, 201).await;
    let id = done["promotion"].as_str().expect("an id").to_string();
    // alice may not revert; bob may.
    let before = dump(&f.production());
    let got = post_bearer(
        &s,
        &alice_token,
        &format!("/api/v1/promotions/{id}/revert"),
        &json!({}),
        403,
    )
    .await;
    assert_eq!(error_code(&got), "denied", "{got}");
    assert_eq!(dump(&f.production()), before);
    let bob = token(f.path(), "bob");
    post_bearer(
        &s,
        &bob,
        &format!("/api/v1/promotions/{id}/revert"),
        &json!({"force": false}),
        200,
    )
    .await;
    assert_eq!(f.ids("production", "cities"), [1, 3, 99]);
}

#[tokio::test]
async fn reviews_are_listed_shown_approved_by_another_and_rejected() {
    let (f, s, alice) = served_with(&reviewed_config());
    let bob = token(f.path(), "bob");
    let submitted = post_bearer(
        &s,
        &alice,
        "/api/v1/promotions",
        &json!({"from": "staging", "to": "production", "ids": ["cities:2", "menus:5"]}),
        201,
    )
    .await;
    let review = submitted["review"]
        .as_str()
        .unwrap_or_else(|| panic!("{submitted}"))
        .to_string();
    let open = s.bearer(&bob).get_json("/api/v1/reviews?env=production", 200).await;
    assert_eq!(open[0]["id"], review.as_str(), "{open}");
    assert_eq!(open[0]["by"], "alice", "{open}");
    let shown = s.bearer(&bob).get_json(&format!("/api/v1/reviews/{review}"), 200).await;
    assert_eq!(shown["status"], "open", "{shown}");
    assert!(shown["changes"].as_array().is_some_and(|c| c.len() == 2), "{shown}");

    // Self-approval is refused, nothing written.
    let before = dump(&f.production());
    let got = post_bearer(
        &s,
        &alice,
        &format!("/api/v1/reviews/{review}/approve"),
        &json!({}),
        403,
    )
    .await;
    assert_eq!(error_code(&got), "denied", "{got}");
    assert_eq!(dump(&f.production()), before);
    // Bob's browser session needs the CSRF token for a decision too.
    let session = s.sign_in("bob", "pw-bob").await;
    let r = session
        .http()
        .post(format!("{}/api/v1/reviews/{review}/approve", s.base))
        .header("origin", &s.base)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let got = expect_json(r, 403, "approve without X-CSRF-Token").await;
    assert_eq!(error_code(&got), "forbidden", "{got}");
    assert_eq!(dump(&f.production()), before);
    // Bob approves one row and rejects the other.
    let approved = post_bearer(
        &s,
        &bob,
        &format!("/api/v1/reviews/{review}/approve"),
        &json!({"only": ["cities:2"]}),
        200,
    )
    .await;
    assert!(approved["promotion"].is_string(), "{approved}");
    assert_eq!(approved["counts"]["insert"], 1, "{approved}");
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
    let rejected = post_bearer(&s, &bob, &format!("/api/v1/reviews/{review}/reject"), &json!(null), 200).await;
    assert_eq!(rejected["rejected_changes"], 1, "{rejected}");
    assert_eq!(rejected["pending"], 0, "{rejected}");
    assert!(f.ids("production", "menus").is_empty());
    // Decided: gone from the open list, still in `all`.
    let open = s.bearer(&bob).get_json("/api/v1/reviews?env=production", 200).await;
    assert_eq!(open, json!([]));
    let all = s.bearer(&bob).get_json("/api/v1/reviews?all=true", 200).await;
    assert_eq!(all[0]["id"], review.as_str(), "{all}");
    let bad = post_bearer(
        &s,
        &bob,
        &format!("/api/v1/reviews/{review}/approve"),
        &json!({"only": ["x"]}),
        400,
    )
    .await;
    assert_eq!(error_code(&bad), "usage", "{bad}");
}

#[tokio::test]
async fn the_audit_trail_pages_with_a_cursor_and_filters() {
    let (f, s, t) = served_with(CONFIG);
    let api = s.bearer(&t);
    for table in ["cities", "menus"] {
        post_bearer(
            &s,
            &t,
            "/api/v1/promotions",
            &json!({"from": "staging", "to": "production", "tables": [table]}),
            201,
        )
        .await;
    }
    let log = api.get_json("/api/v1/promotions?env=production", 200).await;
    let newest = log[0]["id"].as_str().expect("an id");
    post_bearer(&s, &t, &format!("/api/v1/promotions/{newest}/revert"), &json!({}), 200).await;
    let first = api.get_json("/api/v1/audit?env=production&limit=2", 200).await;
    assert_eq!(first["entries"].as_array().map(Vec::len), Some(2), "{first}");
    assert_eq!(first["entries"][0]["action"], "revert", "{first}");
    let next = first["next"].as_str().expect("a next cursor");
    let second = api
        .get_json(&format!("/api/v1/audit?env=production&limit=2&cursor={next}"), 200)
        .await;
    assert_eq!(second["entries"].as_array().map(Vec::len), Some(1), "{second}");
    assert_eq!(second["entries"][0]["action"], "promote", "{second}");
    assert_eq!(second["next"], J::Null, "{second}");
    let promotes = api.get_json("/api/v1/audit?env=production&action=promote", 200).await;
    assert_eq!(promotes["entries"].as_array().map(Vec::len), Some(2), "{promotes}");
    let everywhere = api.get_json("/api/v1/audit?user=alice", 200).await;
    assert_eq!(everywhere["entries"].as_array().map(Vec::len), Some(3), "{everywhere}");
    let nobody = api.get_json("/api/v1/audit?env=production&user=nobody", 200).await;
    assert_eq!(nobody, json!({"entries": [], "next": null}));
    drop(f);
}

#[tokio::test]
async fn the_openapi_document_is_served_to_users_only() {
    let (_f, s, t) = served_with(CONFIG);
    s.anonymous().get_json("/api/v1/openapi.json", 401).await;
    let doc = s.bearer(&t).get_json("/api/v1/openapi.json", 200).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/diff",
        "/promotions",
        "/promotions/{id}/revert",
        "/reviews/{id}/approve",
        "/audit",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
}

#[tokio::test]
async fn a_database_url_and_its_password_never_appear_in_an_error() {
    let secret = "s3cret-Pa55word";
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let url = format!("postgres://ferry_user:{secret}@127.0.0.1:{port}/ferry_db");
    let f = Fixture::new();
    f.write_config(&format!(
        "{CONFIG}\n[environments.remote]\nurl_env = \"FERRY_REMOTE_URL\"\npromotes_to = \"production\"\naccepts_from = [\"staging\"]\n"
    ));
    add_user(f.path(), "alice", "pw-alice");
    let t = token(f.path(), "alice");
    let s = Server::start(f.path(), &[("FERRY_REMOTE_URL", url.as_str())]);
    let api: Client = s.bearer(&t);
    let mut bodies = Vec::new();
    bodies.push(api.get_json("/api/v1/diff?from=staging&to=remote", 502).await);
    bodies.push(api.get_json("/api/v1/promotions?env=remote", 502).await);
    bodies.push(api.get_json("/api/v1/promotions", 502).await);
    bodies.push(api.get_json("/api/v1/audit?env=remote", 502).await);
    bodies.push(
        post_bearer(
            &s,
            &t,
            "/api/v1/promotions",
            &json!({"from": "staging", "to": "remote", "tables": ["cities"]}),
            502,
        )
        .await,
    );
    for body in &bodies {
        assert_eq!(error_code(body), "database", "{body}");
    }
    bodies.push(api.get_json("/api/v1/environments", 200).await);
    let environments = bodies.last().expect("the environments").clone();
    assert_eq!(environments[2]["name"], "remote", "{environments}");
    assert_eq!(environments[2]["healthy"], false, "{environments}");
    let host = format!("127.0.0.1:{port}");
    for body in &bodies {
        let text = body.to_string();
        for leak in [secret, url.as_str(), "ferry_user", host.as_str()] {
            assert!(!text.contains(leak), "`{leak}` leaked: {text}");
        }
    }
}

#[tokio::test]
async fn conflicts_are_409_until_decided_with_take_or_force() {
    let (f, s, t) = served_with(CONFIG);
    // Business 1 was created apart in each environment: a first-contact
    // conflict, which refuses a promotion until decided.
    let body = json!({"from": "staging", "to": "production", "ids": ["businesses:1"]});
    let before = dump(&f.production());
    let got = post_bearer(&s, &t, "/api/v1/promotions", &body, 409).await;
    assert_eq!(got["error"]["hint"]["kind"], "conflicts", "{got}");
    assert_eq!(dump(&f.production()), before);
    // Kept as production has it: recorded in sync, the row untouched.
    let kept = post_bearer(
        &s,
        &t,
        "/api/v1/promotions",
        &json!({"from": "staging", "to": "production", "ids": ["businesses:1"], "take": "target"}),
        201,
    )
    .await;
    assert_eq!(kept["counts"]["update"], 0, "{kept}");
    assert_eq!(
        f.scalar("production", "SELECT name FROM businesses WHERE id = 1"),
        "Cafe Ole"
    );
    // Decided: the pair no longer conflicts on it.
    let plan = s
        .bearer(&t)
        .get_json("/api/v1/diff?from=staging&to=production&id=businesses:1", 200)
        .await;
    assert_eq!(plan["counts"]["conflict"], 0, "{plan}");
    // `force` lets the source win a conflict.
    f.exec("staging", "UPDATE cities SET name = 'Lyon (staging)' WHERE id = 1");
    f.exec(
        "production",
        "UPDATE cities SET name = 'Lyon (production)' WHERE id = 1",
    );
    let cities = json!({"from": "staging", "to": "production", "ids": ["cities:1"]});
    post_bearer(&s, &t, "/api/v1/promotions", &cities, 409).await;
    let mut forced = cities.clone();
    forced["force"] = json!(true);
    post_bearer(&s, &t, "/api/v1/promotions", &forced, 201).await;
    assert_eq!(
        f.scalar("production", "SELECT name FROM cities WHERE id = 1"),
        "Lyon (staging)"
    );
}
