//! The cloud model: any OpenAI-compatible `/chat/completions` endpoint over HTTPS (reqwest with
//! rustls). Retries what is worth retrying before the first token, never after (that would repeat
//! text); keeps partial text when a stream breaks; feeds a circuit breaker the router reads.

pub mod breaker;
mod client;
pub mod config;
pub mod wire;

pub use breaker::{BreakerSnapshot, BreakerState, CircuitBreaker, TrialPermit};
pub use config::{ApiKey, BreakerConfig, CloudConfig, CloudTimeouts, Price, RetryPolicy, TrustRoots};
pub use client::{CloudError, CloudModel, TimeoutStage};
pub(crate) use client::estimate_prompt_tokens;

