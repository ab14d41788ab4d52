//! HybridFlow for Kotlin and Swift: a thin uniffi layer over `hybridflow-core`.
//!
//! - [`config`]: the configuration records and their checked decoding into the core's.
//! - [`client`]: the `HybridFlow` object (the SDK's runtime, queries, budgets, device state)
//!   and the handle of a streaming query.
//! - [`events`]: what a query reports; [`error`]: the one public error enum.
//! - [`logging`]: `log` records to logcat, os_log or stderr, and to the app's logger.
//! - [`callbacks`]: the one thread that calls into the app's code.

mod callbacks;
pub mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod logging;

uniffi::setup_scaffolding!("hybridflow");
