//! The benchmark's smoke configuration: two gsm8k questions through two strategies with the real
//! models, then the report. Checks the results file (one line per question and strategy, scored),
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
    let bench = || {
        let status = xtask()
            .args(["bench", "--dataset", "gsm8k", "--questions", "2", "--strategies", "edge-direct,cloud-direct", "--cloud-url", &test_cloud_url(), "--out"])
            .arg(&results)
            .status()
            .unwrap();
        assert!(status.success());
    };
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

    let report_dir = dir.join("report");
    let status = xtask().args(["bench-report", "--results"]).arg(&results).arg("--out-dir").arg(&report_dir).status().unwrap();
    assert!(status.success());
    let report = std::fs::read_to_string(report_dir.join("README.md")).unwrap();
    assert!(report.contains("| edge-direct | 2 |") && report.contains("| cloud-direct | 2 |"), "{report}");
    assert!(std::fs::read_to_string(report_dir.join("gsm8k-tokens.svg")).unwrap().starts_with("<svg"));
    std::fs::remove_dir_all(dir).unwrap();
}
