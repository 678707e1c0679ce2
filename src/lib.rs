//! davsync: two-way sync of calendars and contacts.
//!
//! The library never prints and never reads the terminal; the `davsync` binary is glue around
//! it. Data flows config → storages → listing → [`plan`] → [`sync`] executor → status database.
//! See `docs/ARCHITECTURE.md`.

#![warn(missing_docs)]

pub mod check;
pub mod config;
pub mod daemon;
pub mod filter;
pub mod groups;
pub mod hook;
pub mod http;
pub mod import_vdirsyncer;
pub mod item;
pub mod metadata;
pub mod model;
pub mod oauth;
pub mod pairing;
pub mod plan;
pub mod repair;
pub mod status;
pub mod storage;
pub mod sync;
pub mod vobject;
