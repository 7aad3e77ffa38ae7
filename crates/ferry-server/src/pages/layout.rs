//! The frame every page shares: the navigation, the signed-in user and the
//! sign-out form, and the error page.

use maud::{html, Markup, DOCTYPE};

use crate::auth::CurrentUser;
use crate::error::AppError;

/// The head of every page: no inline script or style (the
/// Content-Security-Policy forbids them); `ferry.js` only adds
/// confirmations and select-all boxes, every form works without it.
fn head(title: &str, csrf: Option<&str>, reload_after: Option<u32>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            @if let Some(seconds) = reload_after {
                // The page shows something still being computed: the
                // browser reloads it by itself (no script needed).
                meta http-equiv="refresh" content=(seconds);
            }
            @if let Some(token) = csrf {
                // For scripts that call the API with the page's session.
                meta name="csrf-token" content=(token);
            }
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Ferry" }
            link rel="stylesheet" href="/assets/ferry.css";
            script src="/assets/ferry.js" defer {}
        }
    }
}

/// A page for a signed-in user.
pub fn page(user: &CurrentUser, title: &str, body: Markup) -> Markup {
    page_reloading(user, title, body, None)
}

/// [`page`] that, with `reload_after` set, the browser reloads by itself
/// after that many seconds (for a page that shows a computation still
/// running).
pub fn page_reloading(user: &CurrentUser, title: &str, body: Markup, reload_after: Option<u32>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
        (head(title, user.csrf.as_deref(), reload_after))
        body {
            header.top {
                a.brand href="/" { "Ferry" }
                nav {
                    a href="/" data-testid="nav-overview" { "Overview" }
                    a href="/environments" data-testid="nav-environments" { "Environments" }
                    a href="/reviews" data-testid="nav-reviews" { "Reviews" }
                    a href="/history" data-testid="nav-history" { "History" }
                    a href="/audit" data-testid="nav-audit" { "Audit" }
                }
                div.who {
                    span data-testid="current-user" { (user.name) }
                    form method="post" action="/logout" {
                        (csrf_field(user))
                        button.link type="submit" data-testid="logout" { "Sign out" }
                    }
                }
            }
            main { (body) }
        }
        }
    }
}

/// A page without the navigation (sign-in).
pub fn bare(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, None, None))
            body.bare { main { (body) } }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(user: &CurrentUser) -> Markup {
    html! {
        @if let Some(token) = &user.csrf {
            input type="hidden" name="csrf_token" value=(token);
        }
    }
}

/// An error as a page: what happened and, when the engine knows one, the
/// way out.
pub fn error_page(e: &AppError) -> Markup {
    let body = e.body();
    html! {
        (DOCTYPE)
        html lang="en" {
        (head("Error", None, None))
        body {
            header.top { a.brand href="/" { "Ferry" } }
            main {
                div.error data-testid="error" data-code=(body.code) {
                    h1 { "Nothing was done" }
                    pre.message { (body.message) }
                }
                p { a href="/" { "Back to the overview" } }
            }
        }
        }
    }
}

/// A notice at the top of a page (an error the page recovered from).
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { div class=(format!("notice {kind}")) data-testid=(format!("notice-{kind}")) { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> CurrentUser {
        CurrentUser {
            name: "alice".into(),
            csrf: Some("t0ken".into()),
        }
    }

    #[test]
    fn a_page_reloads_itself_only_when_asked_to() {
        let plain = page(&alice(), "Overview", html! { p { "ready" } }).into_string();
        assert!(!plain.contains("http-equiv"), "{plain}");
        let reloading = page_reloading(&alice(), "Overview", html! { p { "computing" } }, Some(2)).into_string();
        assert!(
            reloading.contains(r#"<meta http-equiv="refresh" content="2">"#),
            "{reloading}"
        );
    }

    #[test]
    fn the_navigation_has_test_ids() {
        let html = page(&alice(), "Overview", html! {}).into_string();
        for (id, href) in [
            ("nav-overview", "/"),
            ("nav-environments", "/environments"),
            ("nav-reviews", "/reviews"),
            ("nav-history", "/history"),
            ("nav-audit", "/audit"),
        ] {
            assert!(
                html.contains(&format!(r#"href="{href}" data-testid="{id}""#)),
                "{id}: {html}"
            );
        }
    }
}
