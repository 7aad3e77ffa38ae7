//! The frame every page shares: the navigation, the signed-in user and the
//! sign-out form, and the error page.

use maud::{html, Markup, DOCTYPE};

use crate::auth::CurrentUser;
use crate::error::AppError;

/// The head of every page: no inline script or style (the
/// Content-Security-Policy forbids them); `ferry.js` only adds
/// confirmations and select-all boxes, every form works without it.
fn head(title: &str, csrf: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
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
    html! {
        (DOCTYPE)
        html lang="en" {
        (head(title, user.csrf.as_deref()))
        body {
            header.top {
                a.brand href="/" { "Ferry" }
                nav {
                    a href="/" { "Overview" }
                    a href="/reviews" { "Reviews" }
                    a href="/history" { "History" }
                    a href="/audit" { "Audit" }
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
            (head(title, None))
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
        (head("Error", None))
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
