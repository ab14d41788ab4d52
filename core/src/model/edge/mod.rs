//! The edge model: a local GGUF file run by mistral.rs on the device's CPU (Metal on iOS).
//!
//! Loading never touches the network: mistral.rs is given the model's own directory, which it lists
//! instead of asking a model hub, and no token source.

#[cfg(feature = "edge")]
mod engine;
#[cfg(feature = "edge")]
pub mod gguf;
#[cfg(feature = "edge")]
pub mod requantize;

#[cfg(feature = "edge")]
pub use engine::EdgeModel;

use std::path::PathBuf;
use std::time::Duration;

/// Architectures mistral.rs 0.8.1 runs from GGUF (its `GGUFArchitecture` list, minus the
/// unsupported ones; Gemma 3 is known not to load).
pub const SUPPORTED_ARCHITECTURES: &[&str] =
    &["llama", "mistral3", "phi2", "phi3", "qwen2", "qwen3", "qwen3moe", "starcoder2"];

/// How to load the edge model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeConfig {
    pub model_path: PathBuf,
    /// Memory the model may use; `None` means what the system reports as available.
    pub memory_budget_bytes: Option<u64>,
    /// Sequences the engine decodes at once.
    pub max_concurrent_sequences: usize,
}

impl EdgeConfig {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            memory_budget_bytes: None,
            max_concurrent_sequences: 8,
        }
    }
}

/// Stages of [`EdgeModel::load`], reported to the caller's progress callback in this order.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadProgress {
    /// Reading the file's header and checking memory.
    Checking,
    /// The weights are being loaded by mistral.rs.
    Loading { architecture: String, file_bytes: u64 },
    /// The model answers requests from now on.
    Ready { load_time: Duration },
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeLoadError {
    #[error("model file not found: {path}")]
    MissingFile { path: PathBuf },
    #[error("not a GGUF file (bad magic): {path}")]
    NotGguf { path: PathBuf },
    #[error("unsupported model architecture `{architecture}` (supported: {})", SUPPORTED_ARCHITECTURES.join(", "))]
    UnsupportedArchitecture { architecture: String },
    #[error("model file truncated: {path} has {actual_bytes} bytes, its tensors need {expected_bytes}")]
    Truncated { path: PathBuf, expected_bytes: u64, actual_bytes: u64 },
    #[error("corrupt GGUF file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("not enough memory for the model: needs about {required_bytes} bytes, {available_bytes} available")]
    InsufficientMemory { required_bytes: u64, available_bytes: u64 },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("mistral.rs could not load the model: {0}")]
    Engine(String),
}

/// Facts about a loaded edge model.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeModelInfo {
    pub name: String,
    pub architecture: String,
    pub file_bytes: u64,
    pub load_time: Duration,
}

/// Memory a GGUF needs once loaded: the weights, plus dequantized embeddings, KV cache and
/// scratch buffers. Calibrated against peak RSS in docs/benchmarks.md.
pub fn estimated_memory_bytes(file_bytes: u64) -> u64 {
    file_bytes + file_bytes / 2 + 256 * 1024 * 1024
}

