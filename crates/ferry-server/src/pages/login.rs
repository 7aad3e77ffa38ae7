//! The sign-in form.

use maud::{html, Markup};

/// The form, with `message` (a failed attempt) above it.
pub fn form(next: &str, message: Option<&str>) -> Markup {
    html! {
        section.login {
            h1 { "Sign in to Ferry" }
            @if let Some(m) = message {
                div.notice.error data-testid="login-error" { (m) }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "User" input type="text" name="user" autocomplete="username" autofocus data-testid="login-user"; }
                label { "Password" input type="password" name="password" autocomplete="current-password" data-testid="login-password"; }
                button type="submit" data-testid="login-submit" { "Sign in" }
            }
        }
    }
}
