//! The browser harness against a real headless Chromium and a tiny axum
//! server on 127.0.0.1:0: a form with `data-testid` inputs, row checkboxes
//! with `data-key`, a button whose click asks `confirm()` and then submits,
//! and a result page showing what was posted. Without chromium and
//! chromedriver these tests print `SKIP browser test ...` (they fail under
//! `CI=true`).

use std::path::Path;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::Router;
use ferry_testdb::browser::Browser;
use futures_util::FutureExt as _;

const FORM: &str = r#"<!doctype html>
<html><head><title>Promote</title></head><body>
<h1 data-testid="title">Promote to production</h1>
<form method="post" action="/submit" data-testid="form">
  <label>Your name <input name="name" data-testid="name-input"></label>
  <table>
    <tr><td><input type="checkbox" name="row" value="businesses:7" data-testid="row-select" data-key="businesses:7"></td>
        <td data-testid="row-name" data-key="businesses:7">Café Lumière</td></tr>
    <tr><td><input type="checkbox" name="row" value="businesses:8" data-testid="row-select" data-key="businesses:8"></td>
        <td>Bakery 8</td></tr>
  </table>
  <select name="to" data-testid="target">
    <option value="preprod">preprod</option><option value="production">production</option>
  </select>
  <button type="button" data-testid="promote"
          onclick="if (confirm('Promote the selected rows?')) { this.form.submit(); }">Promote</button>
</form>
</body></html>"#;

/// The form page, which also sets a session cookie.
async fn form_page() -> impl IntoResponse {
    (
        [(
            header::SET_COOKIE,
            "ferry_session=s3cret; Path=/; HttpOnly; SameSite=Strict",
        )],
        Html(FORM),
    )
}

/// The result page: each posted field, in order.
async fn result_page(body: String) -> Html<String> {
    let fields: Vec<String> = body
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            format!("{}={}", form_decode(name), form_decode(value))
        })
        .collect();
    Html(format!(
        "<!doctype html><html><body><p data-testid=\"result\">posted: {}</p></body></html>",
        html_escape(&fields.join("; "))
    ))
}

/// `application/x-www-form-urlencoded` text decoded (`+` and `%XX`).
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .unwrap_or_else(|| panic!("a cut %-escape in {text:?}"));
                out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("bad escape %{hex}: {e}")));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("the browser posts UTF-8")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Serves the two pages (and a 404) on 127.0.0.1:0; the base URL.
async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the test server on 127.0.0.1:0");
    let addr = listener.local_addr().expect("the test server's address");
    let app = Router::new()
        .route("/", get(form_page))
        .route("/submit", post(result_page))
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no such page") }));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the test server stopped") });
    format!("http://{addr}")
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a screenshot ({} bytes)",
        path.display(),
        bytes.len()
    );
}

#[tokio::test]
async fn a_form_is_filled_ticked_confirmed_and_posted() {
    let Some(b) = Browser::start("browser::form_posted").await else {
        return;
    };
    let base = serve().await;
    b.step("open the form", async {
        b.goto(&base).await?;
        assert_eq!(b.text("title").await?, "Promote to production");
        assert_eq!(b.status_of(&format!("{base}/")).await?, 200);
        assert_eq!(b.status_of(&format!("{base}/missing")).await?, 404);
        let session = b.cookie("ferry_session").await?.expect("the session cookie");
        assert_eq!(session.value(), "s3cret");
        assert_eq!(session.http_only(), Some(true));
        Ok(())
    })
    .await;
    b.step("fill and tick", async {
        b.fill("name-input", "Ada & Grace").await?;
        b.click_key("row-select", "businesses:8").await?;
        let ticked = b.by_testid_key("row-select", "businesses:8").await?;
        assert!(ticked.is_selected().await?, "the clicked checkbox is ticked");
        let other = b.by_testid_key("row-select", "businesses:7").await?;
        assert!(!other.is_selected().await?, "the other checkbox is not");
        assert_eq!(b.all_by_testid("row-select").await?.len(), 2);
        assert_eq!(b.text_key("row-name", "businesses:7").await?, "Café Lumière");
        b.select("target", "production").await?;
        Ok(())
    })
    .await;
    let shot = b.shot("filled").await.expect("a screenshot");
    assert_eq!(shot, b.shots_dir().join("01-filled.png"));
    assert_png(&shot);
    b.step("confirm and post", async {
        b.click("promote").await?;
        assert_eq!(b.accept_confirm().await?, "Promote the selected rows?");
        let posted = b.wait_for_text("result", "posted").await?;
        assert_eq!(posted, "posted: name=Ada & Grace; row=businesses:8; to=production");
        assert_eq!(b.current_url().await?, format!("{base}/submit"));
        b.wait_gone("form").await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_dismissed_confirm_posts_nothing() {
    let Some(b) = Browser::start("browser::confirm_dismissed").await else {
        return;
    };
    let base = serve().await;
    b.step("cancel the promotion", async {
        b.goto(&base).await?;
        b.click_key("row-select", "businesses:7").await?;
        b.click("promote").await?;
        assert_eq!(b.dismiss_confirm().await?, "Promote the selected rows?");
        b.wait_for("form").await?;
        assert_eq!(b.current_url().await?, format!("{base}/"));
        assert!(b.all_by_testid("result").await?.is_empty(), "nothing was posted");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_failing_step_leaves_a_screenshot_and_the_page_source() {
    let Some(mut b) = Browser::start("browser::failing_step").await else {
        return;
    };
    let base = serve().await;
    b.goto(&base).await.expect("open the form");

    // An error: "row-select" names two elements.
    let e = b
        .try_step("ambiguous click", async { b.click("row-select").await })
        .await
        .expect_err("two elements match");
    let message = e.message();
    assert!(message.contains("step `ambiguous click` failed"), "{message}");
    assert!(
        message.contains(r#"2 elements match [data-testid="row-select"]"#),
        "{message}"
    );
    let png = b.shots_dir().join("01-ambiguous_click-FAILED.png");
    assert_png(&png);
    assert!(message.contains(&png.display().to_string()), "{message}");
    let html = std::fs::read_to_string(png.with_extension("html")).expect("the FAILED page source");
    assert!(html.contains("data-testid=\"promote\""), "{html}");

    // A panic inside the step: `step` saves its evidence, then panics with
    // the step's name.
    let panicked = std::panic::AssertUnwindSafe(b.step("wrong title", async {
        assert_eq!(b.text("title").await?, "Something else");
        Ok(())
    }))
    .catch_unwind()
    .await
    .expect_err("the step panics");
    let message = panicked.downcast_ref::<String>().expect("a formatted panic message");
    assert!(message.contains("step `wrong title` failed: panicked"), "{message}");
    assert!(message.contains("Something else"), "{message}");
    assert_png(&b.shots_dir().join("02-wrong_title-FAILED.png"));

    // A wait that times out names the selector, the URL and the page's text.
    b.set_timeout(Duration::from_secs(1));
    let e = b.wait_for("nothing-here").await.expect_err("no such element");
    let message = e.message();
    assert!(
        message.contains(r#"no element [data-testid="nothing-here"]"#),
        "{message}"
    );
    assert!(message.contains(&format!("at {base}/")), "{message}");
    assert!(message.contains("Café Lumière"), "{message}");

    // A server that does not answer fails `goto`.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let dead = format!("http://{}/", gone.local_addr().expect("its address"));
    drop(gone);
    let e = b.goto(&dead).await.expect_err("nothing listens there");
    assert!(e.message().contains(&format!("cannot open {dead}")), "{e}");
    assert!(e.message().contains("refused"), "{e}");
}
