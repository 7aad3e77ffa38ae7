//! `ferry serve` tested from outside: the real binary serving real
//! databases on a free port, driven over HTTP (and, in `browser`, by a
//! real Chromium).

mod support;

mod api;
mod api_engines;
mod browser;
mod changes;
mod environments;
mod history_pages;
mod reviews_pages;
mod sign_in;
