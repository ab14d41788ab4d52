//! Edge engine benchmark, same GGUF, same thread count (all cores), same prompt and number of new
//! tokens: HybridFlow's two engines (mistral.rs and ggml, through the edge backend the SDK uses)
//! and llama.cpp's own llama-bench. The ggml engine also runs on Vulkan when a device is visible
//! (lavapipe here: its speed means nothing, its greedy text must equal the CPU's).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use hybridflow_core::model::edge::{EdgeConfig, EdgeEngine, EdgeModel, GpuUse};
use hybridflow_core::model::{catalog, ChatModel, ChatRequest, Message};
use serde_json::{json, Value};

use crate::statistics::median;


const NEW_TOKENS: u32 = 64;
/// About 40 tokens once the chat template is applied, like ARCHITECTURE.md's reference figures.
const PROMPT: &str = "Count from one to two hundred in words, separated by commas, without stopping.";

pub fn run(runs: usize) -> Result<()> {
    let threads = std::thread::available_parallelism()?.get();
    let llama_bench = PathBuf::from(std::env::var("LLAMA_CPP_BIN").unwrap_or_else(|_| {
        format!("{}/.cache/hybridflow/llama.cpp-0.3.36/bin", std::env::var("HOME").unwrap_or_default())
    }))
    .join("llama-bench");
    println!("| model | engine | device | load s | prefill tok/s (ratio to mistral.rs) | decode tok/s (ratio to mistral.rs) | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|");
    for relative in [catalog::ORIGINAL_EDGE_MODEL, catalog::DEFAULT_EDGE_MODEL] {
        let model = catalog::model_path(relative);
        let name = model.file_name().unwrap().to_string_lossy().into_owned();
        let mistral = measure_in_child(&model, EdgeEngine::MistralRs, false, runs)?;
        let ggml = measure_in_child(&model, EdgeEngine::Ggml, false, runs)?;
        let prompt_tokens = mistral["prompt_tokens"].as_u64().context("prompt_tokens")?;
        let (bench_prefill, bench_decode) = llama_bench_rates(&llama_bench, &model, threads, prompt_tokens, runs)?;
        let rate = |result: &Value, key: &str| result[key].as_f64().unwrap_or(0.0);
        let (base_prefill, base_decode) = (rate(&mistral, "prefill_tokens_per_second"), rate(&mistral, "decode_tokens_per_second"));
        for (engine, result) in [("mistral.rs", &mistral), ("ggml", &ggml)] {
            println!(
                "| {name} | {engine} | {} | {:.2} | {:.0} ({:.2}) | {:.1} ({:.2}) | {:.0} |",
                result["device"].as_str().unwrap_or("?"),
                rate(result, "load_seconds"),
                rate(result, "prefill_tokens_per_second"),
                rate(result, "prefill_tokens_per_second") / base_prefill,
                rate(result, "decode_tokens_per_second"),
                rate(result, "decode_tokens_per_second") / base_decode,
                rate(result, "peak_rss_mb"),
            );
        }
        println!(
            "| {name} | llama-bench | CPU | | {bench_prefill:.0} ({:.2}) | {bench_decode:.1} ({:.2}) | |",
            bench_prefill / base_prefill,
            bench_decode / base_decode
        );
        let vulkan = measure_in_child(&model, EdgeEngine::Ggml, true, 1)?;
        let same_text = vulkan["text"] == ggml["text"];
        println!(
            "| {name} | ggml | {} | {:.2} | (correctness only) | greedy text {} the CPU's | {:.0} |",
            vulkan["device"].as_str().unwrap_or("?"),
            rate(&vulkan, "load_seconds"),
            if same_text { "equals" } else { "DIFFERS from" },
            rate(&vulkan, "peak_rss_mb"),
        );
    }
    println!("\n{threads} threads, prompt of {PROMPT:?} (chat template applied), {NEW_TOKENS} new tokens, greedy; median of {runs} runs after a warm-up.");
    Ok(())
}

/// One engine's measurement in a process of its own, so its peak RSS is its own.
fn measure_in_child(model: &Path, engine: EdgeEngine, vulkan: bool, runs: usize) -> Result<Value> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("bench-edge-run").arg(model).args(["--runs", &runs.to_string()]);
    command.arg("--engine").arg(engine.to_string());
    if vulkan {
        // Lavapipe is a CPU-type Vulkan device, which ggml skips unless it is named.
        command.arg("--vulkan").env("GGML_VK_VISIBLE_DEVICES", "0");
    }
    let output = command.output()?;
    if !output.status.success() {
        bail!("measuring {} failed: {}", model.display(), String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Prints one JSON object: the device, load time, median prefill and decode rates, the greedy
/// text and the peak RSS of this process.
pub fn measure_in_this_process(model: &Path, engine: EdgeEngine, vulkan: bool, runs: usize) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let probe_dir = std::env::temp_dir().join(format!("hybridflow-bench-edge-{}", std::process::id()));
    let mut config = EdgeConfig::new(model).with_engine(engine);
    if vulkan {
        config = config.with_gpu(GpuUse::Vulkan, &probe_dir);
    }
    let result: Result<Value> = runtime.block_on(async {
        let edge = EdgeModel::load(config, |_| {}).await?;
        let request = ChatRequest::new(vec![Message::user(PROMPT)]).with_max_tokens(NEW_TOKENS);
        let mut prefill = Vec::new();
        let mut decode = Vec::new();
        let mut last = None;
        for run in 0..=runs {
            let completion = edge.stream(request.clone()).await?.collect_text().await?;
            let usage = &completion.usage;
            if run > 0 {
                let ttft = usage.time_to_first_token.context("no token generated")?.as_secs_f64();
                prefill.push(f64::from(usage.prompt_tokens) / ttft);
                decode.push(usage.decode_tokens_per_second);
            }
            last = Some(completion);
        }
        let last = last.expect("at least the warm-up ran");
        let usage = last.usage;
        Ok(json!({
            "device": edge.info().device,
            "gpu_unavailable": edge.info().gpu_unavailable,
            "text": last.text,
            "load_seconds": edge.info().load_time.as_secs_f64(),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "prefill_tokens_per_second": median(&prefill).unwrap_or(0.0),
            "decode_tokens_per_second": median(&decode).unwrap_or(0.0),
            "peak_rss_mb": peak_rss_mb()?,
        }))
    });
    let _ = std::fs::remove_dir_all(&probe_dir);
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
