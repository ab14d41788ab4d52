//! The benchmark's smoke configuration: two gsm8k questions (a fixture of the project) through two
//! strategies with the real models, then the report. Checks the results file (one line per question and strategy, scored),
//! that a rerun resumes instead of repeating, and that the report and its plots are written.

use std::process::Command;

use hybridflow_e2e::{default_edge_model, scratch_dir, test_cloud_url};

fn xtask() -> Command {
    let binary = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("xtask");
    assert!(binary.exists(), "{} missing: build the workspace first", binary.display());
    let mut command = Command::new(binary);
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    command
}

#[test]
fn two_questions_two_strategies_then_the_report() {
    default_edge_model();
    let dir = scratch_dir("bench-smoke");
    let results = dir.join("results.jsonl");
    let calls = dir.join("calls.jsonl");
    let bench_into = |results: &std::path::Path| {
        let status = xtask()
            // The questions ship with the project: a clone alone runs this test.
            .args(["bench", "--dataset", "gsm8k", "--questions", "2", "--strategies", "edge-direct,cloud-direct", "--cloud-url", &test_cloud_url(), "--data", "tests/fixtures/data", "--out"])
            .arg(results)
            .arg("--calls")
            .arg(&calls)
            .status()
            .unwrap();
        assert!(status.success());
    };
    let bench = || bench_into(&results);
    bench();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&results).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "one line per question and strategy");
    for line in &lines {
        assert_eq!(line["dataset"], "gsm8k");
        assert!(line["correct"].is_boolean() && line["latency_s"].as_f64().unwrap() > 0.0);
        assert!(line["error"].is_null(), "{line}");
    }
    let cloud: Vec<_> = lines.iter().filter(|l| l["strategy"] == "cloud-direct").collect();
    assert!(cloud.iter().all(|l| l["cloud_output_tokens"].as_u64().unwrap() > 0 && l["edge_tokens"] == 0));
    bench(); // resumes: nothing left to do
    assert_eq!(std::fs::read_to_string(&results).unwrap().lines().count(), 4, "a rerun appended again");

    // The call record: each call once, with its full request and response; every result names
    // its calls and keeps the response it was scored on.
    let recorded: Vec<serde_json::Value> = std::fs::read_to_string(&calls).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recorded.len(), 4, "one call per question and strategy");
    for line in &lines {
        let spans = line["timeline"].as_array().unwrap();
        assert_eq!(spans.len(), 1, "{line}");
        assert!(spans[0]["end_s"].as_f64().unwrap() > spans[0]["start_s"].as_f64().unwrap(), "the call's time on the test bed: {line}");
        let call = recorded.iter().find(|c| c["key"] == spans[0]["key"]).expect("the result's call is in the record");
        assert_eq!(call["text"], line["response"], "the scored response is the recorded one");
        assert!(call["messages"][0]["content"].as_str().unwrap().contains("Answer with the final answer only"));
        assert_eq!(line["replayed_calls"], 0);
    }
    // A new results file with the same call record: every call replayed, the same scores.
    let again = dir.join("again.jsonl");
    bench_into(&again);
    let replayed: Vec<serde_json::Value> = std::fs::read_to_string(&again).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(replayed.iter().all(|l| l["replayed_calls"] == 1), "{replayed:?}");
    for (first, second) in lines.iter().zip(&replayed) {
        assert_eq!((&first["correct"], &first["response"]), (&second["correct"], &second["response"]));
    }
    assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 4, "nothing new was called");

    let report_dir = dir.join("report");
    let status = xtask().args(["bench-report", "--results"]).arg(&results).arg("--calls").arg(&calls).arg("--out-dir").arg(&report_dir).status().unwrap();
    assert!(status.success());
    let report = std::fs::read_to_string(report_dir.join("README.md")).unwrap();
    assert!(report.contains("| edge-direct | 2 |") && report.contains("| cloud-direct | 2 |"), "{report}");
    assert!(std::fs::read_to_string(report_dir.join("gsm8k-tokens.svg")).unwrap().starts_with("<svg"));
    assert!(report.contains("Validation with this test bed's own measured speeds") && report.contains("on 4 results with no replayed call"), "{report}");
    assert!(std::fs::read_to_string(report_dir.join("gsm8k-modeled-latency.svg")).unwrap().starts_with("<svg"));
    std::fs::remove_dir_all(dir).unwrap();
}
