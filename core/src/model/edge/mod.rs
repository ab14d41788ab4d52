//! The edge model: a local GGUF file run on the device by one of two engines behind the same
//! [`ChatModel`](crate::model::ChatModel) trait: mistral.rs (the default: CPU, Metal on iOS) or
//! ggml/llama.cpp (CPU, or a Vulkan GPU on Android when the app allows it and the probe passes).
//!
//! Loading never touches the network: both engines read the file itself, with no model hub and
//! no token source.

#[cfg(feature = "ggml")]
mod ggml;
#[cfg(feature = "edge")]
pub mod gguf;
#[cfg(feature = "mistralrs")]
mod mistralrs;
#[cfg(feature = "edge")]
mod load;
#[cfg(feature = "edge")]
pub mod requantize;
#[cfg(feature = "edge")]
mod stream;

#[cfg(feature = "edge")]
pub use load::EdgeModel;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The engine that runs the edge model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdgeEngine {
    /// mistral.rs: the CPU, or Metal in the iOS build.
    MistralRs,
    /// ggml (llama.cpp): the CPU, or a Vulkan GPU with [`GpuUse::Vulkan`].
    Ggml,
}

/// mistral.rs where the build has it; ggml in a build with ggml alone (the lean Android library).
impl Default for EdgeEngine {
    fn default() -> Self {
        if cfg!(feature = "mistralrs") {
            EdgeEngine::MistralRs
        } else {
            EdgeEngine::Ggml
        }
    }
}

impl EdgeEngine {
    /// GGUF architectures the engine loads. mistral.rs 0.8.1: its `GGUFArchitecture` list minus
    /// the unsupported ones (Gemma 3 is known not to load). ggml: the common chat architectures
    /// of llama.cpp; HybridFlow's tests run llama (SmolLM2) and qwen2 (Qwen2.5).
    pub fn supported_architectures(self) -> &'static [&'static str] {
        match self {
            EdgeEngine::MistralRs => &["llama", "mistral3", "phi2", "phi3", "qwen2", "qwen3", "qwen3moe", "starcoder2"],
            EdgeEngine::Ggml => &[
                "llama", "mistral3", "phi2", "phi3", "qwen2", "qwen3", "qwen3moe", "starcoder2", "gemma", "gemma2",
                "gemma3", "granite", "olmo2", "smollm3", "exaone", "deepseek2",
            ],
        }
    }
}

/// The names `Display` prints ("mistral.rs", "ggml"), and "mistral-rs" where a dot is awkward
/// (command lines).
impl std::str::FromStr for EdgeEngine {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "mistral.rs" | "mistral-rs" => Ok(EdgeEngine::MistralRs),
            "ggml" => Ok(EdgeEngine::Ggml),
            other => Err(format!("unknown edge engine `{other}` (mistral-rs or ggml)")),
        }
    }
}

impl fmt::Display for EdgeEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EdgeEngine::MistralRs => "mistral.rs",
            EdgeEngine::Ggml => "ggml",
        })
    }
}

/// Whether the edge model may run on the GPU through Vulkan (ggml engine only). Metal on iOS is
/// a build feature of the mistral.rs engine and needs no setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GpuUse {
    /// The CPU only; Vulkan is never loaded.
    #[default]
    Off,
    /// A Vulkan GPU when one passes the probe (a crash during a probe turns Vulkan off for this
    /// SDK version); the CPU otherwise, with the reason reported.
    Vulkan,
}

/// How to load the edge model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeConfig {
    pub model_path: PathBuf,
    /// Memory the model may use; `None` means what the system reports as available.
    pub memory_budget_bytes: Option<u64>,
    /// Sequences the engine decodes at once (mistral.rs; ggml decodes one at a time).
    pub max_concurrent_sequences: usize,
    pub engine: EdgeEngine,
    pub gpu: GpuUse,
    /// Lower-case substrings of GPU driver descriptions never to use (e.g. "mali-g71").
    pub gpu_deny_list: Vec<String>,
    /// Where the GPU probe keeps its marker and verdict; the client sets it inside its state
    /// directory. Without it the GPU is not used (a crash could not be remembered).
    pub gpu_state_dir: Option<PathBuf>,
}

impl EdgeConfig {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            memory_budget_bytes: None,
            max_concurrent_sequences: 8,
            engine: EdgeEngine::default(),
            gpu: GpuUse::default(),
            gpu_deny_list: Vec::new(),
            gpu_state_dir: None,
        }
    }

    /// The model's file name: its name in logs, events and the GPU probe's verdicts.
    pub fn model_name(&self) -> String {
        self.model_path.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned())
    }

    pub fn with_engine(mut self, engine: EdgeEngine) -> Self {
        self.engine = engine;
        self
    }

    pub fn with_gpu(mut self, gpu: GpuUse, state_dir: impl Into<PathBuf>) -> Self {
        self.gpu = gpu;
        self.gpu_state_dir = Some(state_dir.into());
        self
    }

    /// Settings that cannot work together, whatever the device.
    pub fn validate(&self) -> Result<(), String> {
        // Without ggml (iOS, Android's armeabi-v7a library) a GPU request is not a contradiction:
        // the model loads on the CPU and `gpu_unavailable` says why.
        if self.gpu == GpuUse::Vulkan && self.engine != EdgeEngine::Ggml && cfg!(feature = "ggml") {
            return Err("Vulkan GPU use needs the ggml engine".into());
        }
        if self.engine == EdgeEngine::Ggml && !cfg!(feature = "ggml") {
            return Err("this build has no ggml engine (feature `ggml`)".into());
        }
        if self.engine == EdgeEngine::MistralRs && !cfg!(feature = "mistralrs") {
            return Err("this build has no mistral.rs engine (feature `mistralrs`)".into());
        }
        Ok(())
    }
}

/// Stages of [`EdgeModel::load`], reported to the caller's progress callback in this order.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadProgress {
    /// Reading the file's header and checking memory.
    Checking,
    /// The engine is loading the weights.
    Loading { architecture: String, file_bytes: u64 },
    /// The model answers requests from now on.
    Ready { load_time: Duration, engine: EdgeEngine, device: String, gpu_unavailable: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeLoadError {
    #[error("model file not found: {path}")]
    MissingFile { path: PathBuf },
    #[error("not a GGUF file (bad magic): {path}")]
    NotGguf { path: PathBuf },
    #[error("unsupported model architecture `{architecture}` for {engine} (supported: {})", engine.supported_architectures().join(", "))]
    UnsupportedArchitecture { architecture: String, engine: EdgeEngine },
    #[error("model file truncated: {path} has {actual_bytes} bytes, its tensors need {expected_bytes}")]
    Truncated { path: PathBuf, expected_bytes: u64, actual_bytes: u64 },
    #[error("corrupt GGUF file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("not enough memory for the model: needs about {required_bytes} bytes, {available_bytes} available")]
    InsufficientMemory { required_bytes: u64, available_bytes: u64 },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid edge configuration: {0}")]
    InvalidConfig(String),
    #[error("the engine could not load the model: {0}")]
    Engine(String),
}

/// Facts about a loaded edge model.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeModelInfo {
    pub name: String,
    pub architecture: String,
    pub file_bytes: u64,
    pub load_time: Duration,
    pub engine: EdgeEngine,
    /// What runs the model: "CPU", or the GPU's name and driver description.
    pub device: String,
    /// Why the GPU is not used although the configuration allowed it.
    pub gpu_unavailable: Option<String>,
}

/// Memory a GGUF needs once loaded: the weights, plus dequantized embeddings, KV cache and
/// scratch buffers. Calibrated against peak RSS in docs/benchmarks.md.
pub fn estimated_memory_bytes(file_bytes: u64) -> u64 {
    file_bytes + file_bytes / 2 + 256 * 1024 * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_engine_is_one_the_build_has_and_what_it_lacks_is_refused() {
        let config = EdgeConfig::new("model.gguf");
        assert_eq!(config.validate(), Ok(()), "the default engine, {}", config.engine);
        for (engine, built) in [(EdgeEngine::MistralRs, cfg!(feature = "mistralrs")), (EdgeEngine::Ggml, cfg!(feature = "ggml"))] {
            let verdict = config.clone().with_engine(engine).validate();
            assert_eq!(verdict.is_ok(), built, "{engine}: {verdict:?}");
        }
        // Only a build with ggml can honour a Vulkan request, so only there is mistral.rs with
        // Vulkan a contradiction; elsewhere the model loads without the GPU.
        let vulkan_on_mistral = config.with_engine(EdgeEngine::MistralRs).with_gpu(GpuUse::Vulkan, "state").validate();
        assert_eq!(vulkan_on_mistral.is_err(), cfg!(feature = "ggml"), "{vulkan_on_mistral:?}");
    }
}
