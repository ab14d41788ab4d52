//! Edge engine benchmark: mistral.rs through HybridFlow's edge backend vs llama.cpp's llama-bench,
//! same GGUF, same thread count (all cores), same prompt length and number of new tokens.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel};
use hybridflow_core::model::{catalog, ChatModel, ChatRequest, Message};
use serde_json::{json, Value};

const NEW_TOKENS: u32 = 64;
/// About 40 tokens once the chat template is applied, like ARCHITECTURE.md's reference figures.
const PROMPT: &str = "Count from one to two hundred in words, separated by commas, without stopping.";

pub fn run(runs: usize) -> Result<()> {
    let threads = std::thread::available_parallelism()?.get();
    let llama_bench = PathBuf::from(std::env::var("LLAMA_CPP_BIN").unwrap_or_else(|_| {
        format!("{}/.cache/hybridflow/llama.cpp-0.3.36/bin", std::env::var("HOME").unwrap_or_default())
    }))
    .join("llama-bench");
    println!("| model | load s | prefill tok/s (llama.cpp, ratio) | decode tok/s (llama.cpp, ratio) | peak RSS MB |");
    println!("|---|---|---|---|---|");
    for relative in [catalog::ORIGINAL_EDGE_MODEL, catalog::DEFAULT_EDGE_MODEL] {
        let model = catalog::model_path(relative);
        let ours = measure_in_child(&model, runs)?;
        let prompt_tokens = ours["prompt_tokens"].as_u64().context("prompt_tokens")?;
        let (llama_prefill, llama_decode) = llama_bench_rates(&llama_bench, &model, threads, prompt_tokens, runs)?;
        let prefill = ours["prefill_tokens_per_second"].as_f64().unwrap_or(0.0);
        let decode = ours["decode_tokens_per_second"].as_f64().unwrap_or(0.0);
        println!(
            "| {} | {:.2} | {:.0} ({:.0}, {:.2}) | {:.1} ({:.1}, {:.2}) | {:.0} |",
            model.file_name().unwrap().to_string_lossy(),
            ours["load_seconds"].as_f64().unwrap_or(0.0),
            prefill,
            llama_prefill,
            prefill / llama_prefill,
            decode,
            llama_decode,
            decode / llama_decode,
            ours["peak_rss_mb"].as_f64().unwrap_or(0.0),
        );
    }
    println!("\n{threads} threads, prompt of {PROMPT:?} (chat template applied), {NEW_TOKENS} new tokens, greedy; median of {runs} runs after a warm-up.");
    Ok(())
}

fn measure_in_child(model: &Path, runs: usize) -> Result<Value> {
    let output = Command::new(std::env::current_exe()?)
        .arg("bench-edge-run")
        .arg(model)
        .args(["--runs", &runs.to_string()])
        .output()?;
    if !output.status.success() {
        bail!("measuring {} failed: {}", model.display(), String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Prints one JSON object: load time, median prefill and decode rates, peak RSS of this process.
pub fn measure_in_this_process(model: &Path, runs: usize) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result: Result<Value> = runtime.block_on(async {
        let edge = EdgeModel::load(EdgeConfig::new(model), |_| {}).await?;
        let request = ChatRequest::new(vec![Message::user(PROMPT)]).with_max_tokens(NEW_TOKENS);
        let mut prefill = Vec::new();
        let mut decode = Vec::new();
        let mut last_usage = None;
        for run in 0..=runs {
            let usage = edge.stream(request.clone()).await?.collect_text().await?.usage;
            if run > 0 {
                let ttft = usage.time_to_first_token.context("no token generated")?.as_secs_f64();
                prefill.push(f64::from(usage.prompt_tokens) / ttft);
                decode.push(usage.decode_tokens_per_second);
            }
            last_usage = Some(usage);
        }
        let usage = last_usage.expect("at least the warm-up ran");
        Ok(json!({
            "load_seconds": edge.info().load_time.as_secs_f64(),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "prefill_tokens_per_second": median(prefill),
            "decode_tokens_per_second": median(decode),
            "peak_rss_mb": peak_rss_mb()?,
        }))
    });
    println!("{}", result?);
    Ok(())
}

fn peak_rss_mb() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("VmHWM")?;
    let kb: f64 = line.split_whitespace().nth(1).context("VmHWM value")?.parse()?;
    Ok(kb / 1024.0)
}

/// Average prefill and decode rates from `llama-bench -o json`.
fn llama_bench_rates(bin: &Path, model: &Path, threads: usize, prompt_tokens: u64, runs: usize) -> Result<(f64, f64)> {
    let output = Command::new(bin)
        .arg("-m")
        .arg(model)
        .args(["-t", &threads.to_string(), "-p", &prompt_tokens.to_string(), "-n", &NEW_TOKENS.to_string()])
        .args(["-r", &runs.to_string(), "-o", "json"])
        .output()
        .with_context(|| format!("running {} (run scripts/build-llama-server.sh)", bin.display()))?;
    if !output.status.success() {
        bail!("llama-bench failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let results: Vec<Value> = serde_json::from_slice(&output.stdout)?;
    let rate = |prompt: bool| {
        results
            .iter()
            .find(|r| (r["n_prompt"].as_u64().unwrap_or(0) > 0) == prompt)
            .and_then(|r| r["avg_ts"].as_f64())
            .context("llama-bench result")
    };
    Ok((rate(true)?, rate(false)?))
}
