//! The edge backend against the real SmolLM2-135M (Q8_0), on both engines: mistral.rs and ggml
//! (llama.cpp on the CPU) must give the caller the same contract.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use candle_core::quantized::gguf_file;
use futures::StreamExt;
use hybridflow_core::model::edge::{EdgeConfig, EdgeEngine, EdgeLoadError, EdgeModel, LoadProgress};
use hybridflow_core::model::{ChatModel, ChatRequest, FinishReason, Message, TokenCount};
use hybridflow_e2e::{cancel_after, default_edge_model, process_cpu_time, scratch_dir, write_prefix};

const ENGINES: [EdgeEngine; 2] = [EdgeEngine::MistralRs, EdgeEngine::Ggml];

async fn load_default(engine: EdgeEngine) -> EdgeModel {
    EdgeModel::load(EdgeConfig::new(default_edge_model()).with_engine(engine), |_| {})
        .await
        .unwrap_or_else(|e| panic!("the default model loads on {engine}: {e}"))
}

fn ask(question: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::user(question)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_answer_names_the_capital_and_reports_usage() {
    for engine in ENGINES {
        greedy_answer_on(engine).await;
    }
}

async fn greedy_answer_on(engine: EdgeEngine) {
    let stages = Arc::new(Mutex::new(Vec::new()));
    let seen = stages.clone();
    let model = EdgeModel::load(EdgeConfig::new(default_edge_model()).with_engine(engine), move |p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    let stages = stages.lock().unwrap().clone();
    assert!(matches!(stages[0], LoadProgress::Checking));
    assert!(matches!(stages[1], LoadProgress::Loading { ref architecture, .. } if architecture == "llama"));
    assert!(
        matches!(stages[2], LoadProgress::Ready { engine: e, ref device, gpu_unavailable: None, .. } if e == engine && device == "CPU"),
        "{:?}",
        stages[2]
    );

    let completion = model
        .stream(ask("What is the capital of France? Answer in one sentence.").with_max_tokens(32))
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert!(completion.text.contains("Paris"), "{engine} answered {:?}", completion.text);
    let usage = completion.usage;
    assert_eq!(usage.token_count, TokenCount::Reported);
    assert!(usage.prompt_tokens > 5, "{usage:?}");
    assert!(usage.completion_tokens > 0 && usage.completion_tokens <= 32, "{usage:?}");
    assert!(usage.time_to_first_token.is_some());
    assert!(usage.decode_tokens_per_second > 0.0);

    // Greedy decoding is deterministic.
    let again = model
        .stream(ask("What is the capital of France? Answer in one sentence.").with_max_tokens(32))
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert_eq!(again.text, completion.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_and_stop_sequences_end_generation() {
    for engine in ENGINES {
        max_tokens_and_stop_sequences_end_generation_on(engine).await;
    }
}

async fn max_tokens_and_stop_sequences_end_generation_on(engine: EdgeEngine) {
    let model = load_default(engine).await;
    let capped = model
        .stream(ask("Count from 1 to 50, separated by commas.").with_max_tokens(8))
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert_eq!(capped.usage.finish_reason, FinishReason::Length, "{engine}");
    assert_eq!(capped.usage.completion_tokens, 8);

    let stopped = model
        .stream(ask("Count from 1 to 50, separated by commas.").with_max_tokens(100).with_stop(["5"]))
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert_eq!(stopped.usage.finish_reason, FinishReason::Stop, "{engine}: {stopped:?}");
    assert!(!stopped.text.contains("6"), "{engine} went past the stop sequence: {:?}", stopped.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_output_parses() {
    for engine in ENGINES {
        json_schema_output_parses_on(engine).await;
    }
}

async fn json_schema_output_parses_on(engine: EdgeEngine) {
    let model = load_default(engine).await;
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population_millions": {"type": "number"}
        },
        "required": ["city", "population_millions"],
        "additionalProperties": false
    });
    let completion = model
        .stream(
            ask("Give the largest city of Japan and its population in millions as JSON.")
                .with_json_schema(schema)
                .with_max_tokens(128),
        )
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(completion.text.trim())
        .unwrap_or_else(|e| panic!("{engine}: not JSON ({e}): {:?}", completion.text));
    assert!(value["city"].is_string(), "{value}");
    assert!(value["population_millions"].is_number(), "{value}");
    assert_eq!(value.as_object().unwrap().len(), 2);
}

/// CPU time burnt by the whole process while nothing should run: near zero once decoding stopped,
/// about a core's worth if the engine still decodes.
async fn idle_cpu_over(window: Duration) -> Duration {
    let before = process_cpu_time();
    tokio::time::sleep(window).await;
    process_cpu_time() - before
}

const LONG_TASK: &str = "Write a very long story about a dragon who learns to cook. Use many chapters.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_handle_stops_decoding_early() {
    for engine in ENGINES {
        cancel_handle_stops_decoding_early_on(engine).await;
    }
}

async fn cancel_handle_stops_decoding_early_on(engine: EdgeEngine) {
    let model = load_default(engine).await;
    let stream = model.stream(ask(LONG_TASK).with_max_tokens(400)).await.unwrap();
    let (_, usage) = cancel_after(stream, 5).await;
    assert_eq!(usage.finish_reason, FinishReason::Cancelled);
    assert!(usage.completion_tokens < 400 && usage.completion_tokens >= 5, "{usage:?}");
    tokio::time::sleep(Duration::from_millis(300)).await; // the engine notices at its next token
    let idle = idle_cpu_over(Duration::from_secs(2)).await;
    assert!(idle < Duration::from_millis(500), "{engine} still decoding after cancel: {idle:?} CPU in 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_stops_decoding() {
    for engine in ENGINES {
        dropping_the_stream_stops_decoding_on(engine).await;
    }
}

async fn dropping_the_stream_stops_decoding_on(engine: EdgeEngine) {
    let model = load_default(engine).await;
    let mut stream = model.stream(ask(LONG_TASK).with_max_tokens(400)).await.unwrap();
    for _ in 0..3 {
        stream.next().await.unwrap().unwrap();
    }
    // Reference: CPU used while decoding, over the same window.
    let busy = idle_cpu_over(Duration::from_secs(1)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = idle_cpu_over(Duration::from_secs(1)).await;
    assert!(busy > Duration::from_millis(500), "decoding should keep a core busy: {busy:?}");
    assert!(idle * 4 < busy, "{engine} decoding went on after drop: {idle:?} idle vs {busy:?} busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_from_two_tasks_both_complete() {
    for engine in ENGINES {
        concurrent_requests_from_two_tasks_both_complete_on(engine).await;
    }
}

async fn concurrent_requests_from_two_tasks_both_complete_on(engine: EdgeEngine) {
    let model = Arc::new(load_default(engine).await);
    let tasks = ["Name a fruit.", "Name a color."].map(|question| {
        let model = model.clone();
        tokio::spawn(async move {
            model.stream(ask(question).with_max_tokens(24)).await.unwrap().collect_text().await.unwrap()
        })
    });
    // The runtime stays responsive while both generate: a timer on it fires on time.
    let tick = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tick.elapsed() < Duration::from_millis(500));
    for task in tasks {
        let completion = task.await.unwrap();
        assert!(!completion.text.trim().is_empty());
        assert!(completion.usage.completion_tokens > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_rejected_before_generation() {
    for engine in ENGINES {
        invalid_requests_are_rejected_before_generation_on(engine).await;
    }
}

async fn invalid_requests_are_rejected_before_generation_on(engine: EdgeEngine) {
    let model = load_default(engine).await;
    let empty = model.stream(ChatRequest::new(vec![])).await;
    assert!(matches!(empty, Err(hybridflow_core::model::ModelError::InvalidRequest(_))));
}

async fn load_error(config: EdgeConfig) -> EdgeLoadError {
    match EdgeModel::load(config, |_| {}).await {
        Ok(_) => panic!("load should fail"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_model_files_get_typed_errors() {
    for engine in ENGINES {
        bad_model_files_on(engine).await;
    }
}

async fn bad_model_files_on(engine: EdgeEngine) {
    let dir = scratch_dir(&format!("bad-models-{engine}"));
    let real = default_edge_model();
    let config = |path: &std::path::Path| EdgeConfig::new(path).with_engine(engine);

    let missing = load_error(config(&dir.join("nope.gguf"))).await;
    assert!(matches!(missing, EdgeLoadError::MissingFile { .. }), "{engine}: {missing}");

    let text = dir.join("notes.gguf");
    std::fs::write(&text, "these are not weights").unwrap();
    let not_gguf = load_error(config(&text)).await;
    assert!(matches!(not_gguf, EdgeLoadError::NotGguf { .. }), "{engine}: {not_gguf}");

    let truncated = dir.join("truncated.gguf");
    let real_len = std::fs::metadata(&real).unwrap().len() as usize;
    write_prefix(&real, &truncated, real_len / 2);
    let err = load_error(config(&truncated)).await;
    assert!(matches!(err, EdgeLoadError::Truncated { actual_bytes, .. } if actual_bytes as usize == real_len / 2), "{engine}: {err}");

    // Header cut inside the metadata: the parser itself fails.
    let header_only = dir.join("header.gguf");
    write_prefix(&real, &header_only, 4096);
    let err = load_error(config(&header_only)).await;
    assert!(matches!(err, EdgeLoadError::Corrupt { .. }), "{engine}: {err}");

    let garbage = dir.join("garbage.gguf");
    let mut bytes = b"GGUF".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
    std::fs::write(&garbage, bytes).unwrap();
    let err = load_error(config(&garbage)).await;
    assert!(matches!(err, EdgeLoadError::Corrupt { .. }), "{engine}: {err}");

    // Gemma 3 does not load in mistral.rs 0.8.1; no engine runs a speech model.
    let unsupported = if engine == EdgeEngine::MistralRs { "gemma3" } else { "whisper" };
    let foreign = dir.join("foreign.gguf");
    let arch = gguf_file::Value::String(unsupported.into());
    gguf_file::write(&mut std::fs::File::create(&foreign).unwrap(), &[("general.architecture", &arch)], &[]).unwrap();
    let err = load_error(config(&foreign)).await;
    assert!(
        matches!(err, EdgeLoadError::UnsupportedArchitecture { ref architecture, engine: e } if architecture == unsupported && e == engine),
        "{engine}: {err}"
    );

    let mut tiny_budget = config(&real);
    tiny_budget.memory_budget_bytes = Some(64 * 1024 * 1024);
    let err = load_error(tiny_budget).await;
    assert!(matches!(err, EdgeLoadError::InsufficientMemory { available_bytes, .. } if available_bytes == 64 * 1024 * 1024), "{engine}: {err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Both engines render the GGUF's own chat template (SmolLM2's adds a default system prompt), so
/// they feed the model the same prompt: the same number of prompt tokens, with and without a
/// system message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_give_the_model_the_same_prompt() {
    let chats = [vec![Message::user("Name a fruit.")], vec![Message::system("Answer in French."), Message::user("Name a fruit.")]];
    let mut counts = Vec::new();
    for engine in ENGINES {
        let model = load_default(engine).await;
        for chat in &chats {
            let request = ChatRequest::new(chat.clone()).with_max_tokens(1);
            counts.push(model.stream(request).await.unwrap().collect_text().await.unwrap().usage.prompt_tokens);
        }
    }
    assert_eq!(counts[..2], counts[2..], "prompt tokens (mistral.rs, then ggml): {counts:?}");
    assert!(counts[0] > 20, "the default system prompt is part of it: {counts:?}");
}

/// A temperature samples: the same request three times gives more than one text (greedy gives one,
/// see above). Three identical 24-token samples at temperature 1.5 would be a broken sampler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temperature_samples_instead_of_decoding_greedily() {
    for engine in ENGINES {
        let model = load_default(engine).await;
        let mut texts = std::collections::HashSet::new();
        for _ in 0..3 {
            let request = ask("Write a sentence about the sea.").with_max_tokens(24).with_temperature(1.5);
            let completion = model.stream(request).await.unwrap().collect_text().await.unwrap();
            assert!(completion.usage.completion_tokens > 0, "{engine}");
            texts.insert(completion.text);
        }
        assert!(texts.len() > 1, "{engine} sampled the same text three times: {texts:?}");
    }
}

/// The planner depends on JSON-schema constrained decoding: on either engine, its output parses
/// into a plan (llguidance in mistral.rs, llama.cpp's grammar from the same schema in ggml).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planner_gets_a_parseable_plan_from_either_engine() {
    use hybridflow_core::plan::planner::{stream_plan, DirectReason, PlanEvent, PlannerConfig};
    let query = "A shop sells pens at 2 dollars each and notebooks at 5 dollars each. Tom buys 3 pens and 2 notebooks. How much does he pay?";
    for engine in ENGINES {
        let model: Arc<dyn ChatModel> = Arc::new(load_default(engine).await);
        let mut events = stream_plan(model, query, &PlannerConfig::default());
        let mut outcome = None;
        while let Some(event) = events.next().await {
            if let PlanEvent::Done { outcome: done, .. } = event {
                outcome = Some(done);
            }
        }
        let outcome = outcome.expect("planning ends with Done");
        println!("{engine}: {} subtasks, {:?}", outcome.plan.subtasks.len(), outcome.direct);
        let failure = match &outcome.direct {
            Some(DirectReason::PlannerFailed { error } | DirectReason::UnusablePlan { error, .. }) => Some(error.as_str()),
            _ => None,
        };
        assert_eq!(failure, None, "{engine}: the planner's output was not a usable plan");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_cannot_work_together_are_refused_before_loading() {
    let vulkan_on_mistral = EdgeConfig::new(default_edge_model()).with_gpu(hybridflow_core::model::edge::GpuUse::Vulkan, scratch_dir("gpu-state"));
    let err = load_error(vulkan_on_mistral).await;
    assert!(matches!(err, EdgeLoadError::InvalidConfig(ref why) if why.contains("ggml")), "{err}");
}

/// Dropped while the engine still reads the prompt (no token yet). mistral.rs cannot stop a
/// prompt pass, and alone it would then decode to the token limit; the SDK takes the engine's
/// first response and drops the stream, so decoding stops at the first token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_during_the_prompt_stops_decoding() {
    for engine in ENGINES {
        dropping_the_stream_during_the_prompt_stops_decoding_on(engine).await;
    }
}

async fn dropping_the_stream_during_the_prompt_stops_decoding_on(engine: EdgeEngine) {
    let model = load_default(engine).await;
    // About 300 prompt tokens: a prompt pass of a second or two here.
    let long_prompt = format!("{} Now answer: {LONG_TASK}", "The quick brown fox jumps over the lazy dog. ".repeat(25));
    let stream = model.stream(ask(&long_prompt).with_max_tokens(400)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_secs(4)).await; // the rest of the prompt pass, then one token
    let idle = idle_cpu_over(Duration::from_secs(2)).await;
    assert!(idle < Duration::from_millis(500), "{engine} still decoding after drop: {idle:?} CPU in 2 s");
}

/// Token log-probabilities on request, from mistral.rs: asking for them leaves the greedy text
/// unchanged, and each one is a natural-log probability of the full distribution (at most 0, and
/// near 0 for a confident token: a figure of a renormalised top-k would be 0 throughout, one of a
/// twice-applied softmax near -ln(vocabulary)). ggml reports none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_logprobs_are_log_probabilities_and_leave_the_greedy_text_unchanged() {
    let model = load_default(EdgeEngine::MistralRs).await;
    let question = || ask("What is the capital of France? Answer in one sentence.").with_max_tokens(32);
    let plain = model.stream(question()).await.unwrap().collect_text().await.unwrap();
    assert!(plain.usage.token_logprobs.is_empty(), "not asked for");
    let scored = model.stream(question().with_token_logprobs()).await.unwrap().collect_text().await.unwrap();
    assert_eq!(scored.text, plain.text, "the greedy choice is the same");
    let logprobs = &scored.usage.token_logprobs;
    assert!(!logprobs.is_empty() && logprobs.len() <= scored.usage.completion_tokens as usize, "{logprobs:?}");
    assert!(logprobs.iter().all(|l| l.is_finite() && *l <= 1e-4), "{logprobs:?}");
    assert!(logprobs.iter().any(|l| *l > 0.5f32.ln()), "some token of a one-sentence fact is likely: {logprobs:?}");
    assert!(logprobs.iter().any(|l| *l < -0.01), "and not every one certain: {logprobs:?}");
    let sampled = model.stream(question().with_temperature(1.0).with_token_logprobs()).await.unwrap().collect_text().await.unwrap();
    assert!(!sampled.usage.token_logprobs.is_empty() && sampled.usage.token_logprobs.iter().all(|l| *l <= 1e-4), "{:?}", sampled.usage.token_logprobs);

    let ggml = load_default(EdgeEngine::Ggml).await;
    let completion = ggml.stream(question().with_token_logprobs()).await.unwrap().collect_text().await.unwrap();
    assert!(completion.usage.token_logprobs.is_empty());
}
