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

/// A count for Kotlin and Swift, which have signed integers (`Int`, `Int32`): saturates.
pub(crate) fn int(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}

/// A token count or a duration for Kotlin and Swift (`Long`, `Int64`): saturates.
pub(crate) fn long(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}
