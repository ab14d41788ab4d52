//! The terminal sample app, driven like a user would: ask a question (the query-level route
//! appears, with the cloud in use), then `/offline` and ask again: it runs on the edge, and says why.

use std::io::Write;
use std::process::{Command, Stdio};

use hybridflow_e2e::{scratch_dir, test_cloud_url};

const QUESTION: &str = "A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?";

#[test]
fn ask_then_offline_runs_everything_on_the_edge() {
    let binary = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("hybridflow-chat");
    assert!(binary.exists(), "{} missing: build the workspace first", binary.display());
    let state = scratch_dir("chat-cli");
    let mut child = Command::new(&binary)
        .args(["--state-dir", state.to_str().unwrap()])
        .env("HYBRIDFLOW_CLOUD_URL", test_cloud_url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{QUESTION}\n/offline\n{QUESTION}").unwrap();
    drop(stdin); // end of input: the app exits after the last answer
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let (online, offline) = text.split_once("device: ").unwrap_or_else(|| panic!("no /offline acknowledgement:\n{text}"));

    // By default the query-level decision weighs a plan and declines it with its measured
    // numbers: one step, routed as a whole query, the gain shown.
    assert!(online.contains("plan: answer directly ({\"reason\":\"not_worth_decomposing\",\"why\":\"a plan gains"), "{online}");
    assert!(!online.contains("planning on"), "no planning call: {online}");
    assert!(online.contains("on the cloud: gain"), "{online}");
    assert!(online.matches("-- edge:").count() == 1, "one answer with its totals: {online}");

    assert!(offline.contains("network: None"), "{offline}");
    assert!(!offline.contains("on the cloud"), "something ran on the cloud while offline:\n{offline}");
    assert!(offline.contains("on the edge"), "{offline}");
    assert!(offline.contains("gate Offline"), "routes say why: {offline}");
    assert!(offline.contains("cloud: 0 calls"), "{offline}");
    std::fs::remove_dir_all(state).unwrap();
}

/// `--vulkan` alone picks the engine that has Vulkan, as `gpu = VULKAN` does in Kotlin and Swift.
#[test]
fn vulkan_alone_selects_the_ggml_engine_on_the_gpu() {
    let binary = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("hybridflow-chat");
    let state = scratch_dir("chat-cli-vulkan");
    let output = Command::new(&binary)
        .args(["--state-dir", state.to_str().unwrap(), "--vulkan"])
        // Lavapipe, Mesa's CPU Vulkan device: ggml skips CPU devices unless named.
        .env("GGML_VK_VISIBLE_DEVICES", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("(ggml on Vulkan0"), "served by ggml on the Vulkan device: {log}");
    std::fs::remove_dir_all(state).unwrap();
}
