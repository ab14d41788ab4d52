//! HybridFlow engine: answers a query with a small on-device model and, when it pays off, a cloud
//! model. Pure Rust, no FFI types: the bindings crate wraps this API for Kotlin and Swift.
//!
//! - [`model`]: the "chat model" abstraction and its two implementations, edge (mistral.rs, GGUF)
//!   and cloud (OpenAI-compatible HTTP over reqwest + rustls).

pub mod model;
