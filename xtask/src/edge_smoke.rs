//! One greedy generation on the edge engine, printed as JSON: the ARM check runs it under qemu
//! (as old and new ARM cores) and compares the text with the x86 build's (scripts/arm-check.sh).

use std::path::Path;

use anyhow::Result;
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel};
use hybridflow_core::model::{ChatModel, ChatRequest, Message};

pub fn run(model: &Path, prompt: &str, tokens: u32) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let edge = EdgeModel::load(EdgeConfig::new(model), |_| {}).await?;
        let request = ChatRequest::new(vec![Message::user(prompt)]).with_max_tokens(tokens);
        let completion = edge.stream(request).await?.collect_text().await?;
        let line = serde_json::json!({
            "architecture": std::env::consts::ARCH,
            "text": completion.text,
            "completion_tokens": completion.usage.completion_tokens,
        });
        println!("{line}");
        anyhow::Ok(())
    })
}
