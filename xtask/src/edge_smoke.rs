//! One greedy generation on an edge engine, printed as JSON with the engine and device that ran
//! it: the ARM check runs it under qemu (as old and new ARM cores) and compares the text with the
//! x86 build's (scripts/arm-check.sh); the GPU tests compare the Vulkan and CPU runs and kill it
//! during a GPU probe (tests/tests/ggml_engine.rs).

use std::path::{Path, PathBuf};

use anyhow::Result;
use hybridflow_core::model::edge::{EdgeConfig, EdgeEngine, EdgeModel, GpuUse};
use hybridflow_core::model::{ChatModel, ChatRequest, Message};

pub fn run(model: &Path, prompt: &str, tokens: u32, engine: Option<EdgeEngine>, vulkan_state_dir: Option<PathBuf>) -> Result<()> {
    let mut config = EdgeConfig::new(model);
    if let Some(engine) = engine {
        config = config.with_engine(engine);
    }
    if let Some(dir) = vulkan_state_dir {
        config = config.with_gpu(GpuUse::Vulkan, dir);
    }
    tokio::runtime::Runtime::new()?.block_on(async {
        let edge = EdgeModel::load(config, |_| {}).await?;
        let request = ChatRequest::new(vec![Message::user(prompt)]).with_max_tokens(tokens);
        let completion = edge.stream(request).await?.collect_text().await?;
        let info = edge.info();
        let line = serde_json::json!({
            "architecture": std::env::consts::ARCH,
            "engine": info.engine.to_string(),
            "device": info.device,
            "gpu_unavailable": info.gpu_unavailable,
            "text": completion.text,
            "completion_tokens": completion.usage.completion_tokens,
        });
        println!("{line}");
        anyhow::Ok(())
    })
}
