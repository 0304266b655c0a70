//! The live terminal UI over a session's events (see [`crate::session`]).
//!
//! Elm-style, after the ratatui examples and bpftop: [`app::App`] is the state and does no I/O;
//! [`app::update`] and [`view::view`] are pure and unit-tested; [`run()`] is the only part that
//! touches the terminal and the socket: a `tokio::select!` over terminal events, a render tick
//! (at most 20 frames a second, and only when something changed) and the session's messages.

pub mod app;
pub mod inprocess;
pub mod run;
mod stderr;
pub mod view;
pub mod widgets;

#[cfg(test)]
mod tests;

pub use app::{update, App, Effect, Msg};
pub use run::{run, RunError};
pub use view::view;
