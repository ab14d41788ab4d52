//! Where the provisioned models live on a development host (`cargo xtask fetch-models` puts them
//! there; the sample apps and tests find them here). Apps on phones pass their own paths.

use std::path::PathBuf;

/// The default edge model: SmolLM2-135M-Instruct, re-quantized from Q4_1 to Q8_0.
pub const DEFAULT_EDGE_MODEL: &str = "smollm2-135m-instruct-q8_0/SmolLM2-135M-Instruct.Q8_0.gguf";
/// The same model as published (Q4_1), kept for the benchmark's comparison.
pub const ORIGINAL_EDGE_MODEL: &str = "smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The model behind the test cloud server (Qwen2.5-Coder-0.5B-Instruct Q4_K_M).
pub const TEST_CLOUD_MODEL: &str =
    "qwen2.5-coder-0.5b-instruct-q4_k_m/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
/// The stronger cloud for benchmarks and router profiling (Qwen2.5-Coder-1.5B-Instruct Q4_K_M):
/// the 0.5B model is too weak for its results to change a gsm8k answer.
pub const BENCHMARK_CLOUD_MODEL: &str =
    "qwen2.5-coder-1.5b-instruct-q4_k_m/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// `$HYBRIDFLOW_MODELS`, else `$HOME/.cache/hybridflow/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HYBRIDFLOW_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/hybridflow/models")
}

/// Full path of a catalog model (one of the constants above).
pub fn model_path(relative: &str) -> PathBuf {
    models_dir().join(relative)
}
