//! HybridFlow engine: answers a query with a small on-device model and, when it pays off, a cloud
//! model. Pure Rust, no FFI types: the bindings crate wraps this API for Kotlin and Swift.
//!
//! - [`model`]: the "chat model" abstraction and its two implementations, edge (mistral.rs, GGUF)
//!   and cloud (OpenAI-compatible HTTP over reqwest + rustls).
//! - [`plan`]: stage 1a, a query becomes a validated graph of subtasks (streamed, repaired).
//! - [`exec`]: stage 1b, the DAG scheduler and the final synthesis.
//! - [`route`]: stage 2, which side runs each step: learned, budget- and device-aware.
//! - [`guard`]: the one enforcement point every cloud request passes when it is sent (device and
//!   policy gates, circuit breaker, budget reservations).
//! - [`client`]: the entry point apps use: one config, one ready engine.
//! - [`store`]: budgets and router statistics in sled; [`device`]: what the app reports.

pub mod client;
pub mod device;
pub mod exec;
pub mod guard;
pub mod model;
pub mod plan;
pub mod route;
pub mod store;
