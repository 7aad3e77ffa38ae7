//! `ferry serve` tested from outside: the real binary serving real
//! databases on a free port, driven over HTTP (and, in `browser`, by a
//! real Chromium).

mod support;

mod changes;
mod sign_in;
