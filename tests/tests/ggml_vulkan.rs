//! The ggml engine on a real Vulkan device: Mesa's lavapipe, a conformant software Vulkan
//! implementation (scripts/vulkan-sdk.sh installs it). ggml skips CPU-type Vulkan devices unless
//! `GGML_VK_VISIBLE_DEVICES` names them, so this process sets it before anything loads Vulkan;
//! the child processes below choose for themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybridflow_core::model::edge::{EdgeConfig, EdgeEngine, EdgeModel, GpuUse};
use hybridflow_core::model::{ChatModel, ChatRequest, Message};
use hybridflow_e2e::{captured_logs, default_edge_model, scratch_dir};

const PROMPT: &str = "What is the capital of France? Answer in one sentence.";
const MARKER: &str = "vulkan-probe-in-progress";

fn show_lavapipe_to_ggml() {
    // Before the first Vulkan load of this process; the tests of this file run one at a time.
    std::env::set_var("GGML_VK_VISIBLE_DEVICES", "0");
}

fn ggml(gpu_state: Option<&Path>) -> EdgeConfig {
    let config = EdgeConfig::new(default_edge_model()).with_engine(EdgeEngine::Ggml);
    match gpu_state {
        Some(dir) => config.with_gpu(GpuUse::Vulkan, dir),
        None => config,
    }
}

async fn greedy(model: &EdgeModel) -> String {
    let request = ChatRequest::new(vec![Message::user(PROMPT)]).with_max_tokens(32);
    model.stream(request).await.unwrap().collect_text().await.unwrap().text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_lavapipe_the_gpu_passes_the_probe_and_answers_as_the_cpu_does() {
    show_lavapipe_to_ggml();
    captured_logs();
    let state = scratch_dir("vulkan-probe");
    let _ = std::fs::remove_dir_all(&state);

    let on_gpu = EdgeModel::load(ggml(Some(&state)), |_| {}).await.unwrap();
    let info = on_gpu.info().clone();
    assert_eq!(info.gpu_unavailable, None, "{info:?}");
    assert!(info.device.starts_with("Vulkan0") && info.device.contains("llvmpipe"), "{info:?}");
    assert_eq!(on_gpu.served_by(), format!("ggml on {}", info.device), "what the step events name");
    let verdict = std::fs::read_to_string(state.join("vulkan-verdict.json")).unwrap();
    assert!(verdict.contains("\"passed\""), "{verdict}");
    assert!(!state.join(MARKER).exists(), "the probe removed its marker");
    let agreement = captured_logs().into_iter().find(|line| line.contains("GPU probe passed"));
    println!("{}", agreement.as_deref().unwrap_or("no probe summary logged"));
    assert!(agreement.is_some_and(|line| line.contains("the same greedy choice as the CPU")));

    let on_cpu = EdgeModel::load(ggml(None), |_| {}).await.unwrap();
    assert_eq!(on_cpu.info().device, "CPU");
    let (gpu_text, cpu_text) = (greedy(&on_gpu).await, greedy(&on_cpu).await);
    assert!(gpu_text.contains("Paris"), "{gpu_text:?}");
    assert_eq!(gpu_text, cpu_text, "greedy output differs between Vulkan and the CPU");

    // The verdict is remembered: the next start uses the GPU without running the check again.
    drop(on_gpu);
    let again = EdgeModel::load(ggml(Some(&state)), |_| {}).await.unwrap();
    assert!(again.info().device.contains("llvmpipe"), "{:?}", again.info());
    assert_eq!(greedy(&again).await, cpu_text);
    std::fs::remove_dir_all(state).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_on_the_deny_list_is_not_used_and_the_reason_is_reported() {
    show_lavapipe_to_ggml();
    let state = scratch_dir("vulkan-deny");
    let mut config = ggml(Some(&state));
    config.gpu_deny_list = vec!["llvmpipe".into()];
    let model = EdgeModel::load(config, |_| {}).await.unwrap();
    assert_eq!(model.info().device, "CPU");
    let why = model.info().gpu_unavailable.clone().unwrap_or_default();
    assert!(why.contains("deny list") && why.contains("llvmpipe"), "{why}");
    assert!(greedy(&model).await.contains("Paris"));
    std::fs::remove_dir_all(state).unwrap();
}

fn xtask() -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/xtask
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("xtask")
}

/// `xtask edge-smoke` on the ggml engine with Vulkan allowed, as a child process.
fn edge_smoke(state: &Path, show_lavapipe: bool) -> Command {
    let mut command = Command::new(xtask());
    command.args(["edge-smoke", "--engine", "ggml", "--vulkan-state-dir"]).arg(state);
    command.env_remove("GGML_VK_VISIBLE_DEVICES");
    if show_lavapipe {
        command.env("GGML_VK_VISIBLE_DEVICES", "0");
    }
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    command
}

fn smoke_result(command: &mut Command) -> serde_json::Value {
    let output = command.output().unwrap();
    assert!(output.status.success(), "edge-smoke failed: {output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn a_process_killed_during_the_gpu_probe_makes_the_next_start_use_the_cpu_and_say_why() {
    let state = scratch_dir("vulkan-crash");
    let _ = std::fs::remove_dir_all(&state);
    let mut child = edge_smoke(&state, true).spawn().unwrap();
    let started = Instant::now();
    while !state.join(MARKER).exists() {
        assert!(child.try_wait().unwrap().is_none(), "edge-smoke ended before its GPU probe started");
        assert!(started.elapsed() < Duration::from_secs(60), "the GPU probe never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // What a driver crash does: the process dies inside the probe, with no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(state.join(MARKER).exists());

    let after = smoke_result(&mut edge_smoke(&state, true));
    assert_eq!(after["device"], "CPU", "{after}");
    let why = after["gpu_unavailable"].as_str().unwrap_or_default();
    assert!(why.contains("did not finish"), "{after}");
    assert!(after["text"].as_str().unwrap().contains("Paris"), "{after}");
    // And it stays off: the crash became a recorded verdict.
    let later = smoke_result(&mut edge_smoke(&state, true));
    assert_eq!(later["device"], "CPU", "{later}");
    std::fs::remove_dir_all(state).unwrap();
}

#[test]
fn without_a_gpu_ggml_would_use_the_engine_says_so_instead_of_falling_back_silently() {
    let state = scratch_dir("vulkan-none");
    let _ = std::fs::remove_dir_all(&state);
    // Lavapipe is a CPU-type device: ggml skips it unless told otherwise.
    let result = smoke_result(&mut edge_smoke(&state, false));
    assert_eq!(result["device"], "CPU", "{result}");
    assert!(result["gpu_unavailable"].as_str().unwrap_or_default().contains("no Vulkan GPU"), "{result}");
    assert!(!state.join(MARKER).exists(), "a probe that found nothing leaves no marker");
    std::fs::remove_dir_all(state).unwrap();
}
