//! The HTTP API against a real runtime on a real SQLite store, through `oneshot`.

mod compat;
mod health;
mod lifecycle;
mod security;
mod serve;
mod start;
mod status;
mod support;
