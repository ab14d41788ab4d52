//! Trains the router's logistic model on profiled subtasks and reports its quality on held-out
//! questions against a random router and the planner's difficulty hint.

use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Result};
use hybridflow_core::plan::Difficulty;
use hybridflow_core::route::features::{features, GraphPosition};
use hybridflow_core::route::learned::{roc_auc, Example, RouterWeights};

use crate::profile_router::ProfiledSubtask;

/// Held-out split by question (a fifth of the questions), stable across runs.
fn held_out(question_id: &str) -> bool {
    question_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 5 == 0
}

pub fn run(data: &Path, out: &Path) -> Result<()> {
    let records: Vec<ProfiledSubtask> = std::io::BufReader::new(std::fs::File::open(data)?)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    if records.is_empty() {
        bail!("no profiled subtasks in {} (run `cargo xtask profile-router`)", data.display());
    }
    let example = |r: &ProfiledSubtask| Example {
        features: features(&r.query, &r.subtask, GraphPosition { depth: r.depth, fan_in: r.fan_in, fan_out: r.fan_out }),
        cloud_helps: r.cloud_helps,
    };
    let (test, train): (Vec<&ProfiledSubtask>, Vec<&ProfiledSubtask>) = records.iter().partition(|r| held_out(&r.question_id));
    let train_examples: Vec<Example> = train.iter().map(|r| example(r)).collect();
    let positives = train_examples.iter().filter(|e| e.cloud_helps).count();
    let trained_on = format!(
        "gsm8k train split, {} profiled subtasks ({} positive) from {} questions; `cargo xtask profile-router` then `cargo xtask train-router`",
        train_examples.len(),
        positives,
        train.iter().map(|r| &r.question_id).collect::<std::collections::HashSet<_>>().len()
    );
    let weights = RouterWeights::train(&train_examples, 30, 0.3, 1e-3, trained_on);

    let labels: Vec<bool> = test.iter().map(|r| r.cloud_helps).collect();
    let learned: Vec<f32> = test.iter().map(|r| weights.predict(&example(r).features)).collect();
    let hint: Vec<f32> = test
        .iter()
        .map(|r| match r.subtask.difficulty {
            Difficulty::Easy => 0.0,
            Difficulty::Medium => 0.5,
            Difficulty::Hard => 1.0,
        })
        .collect();
    println!("held-out: {} subtasks, {} where the cloud helps", test.len(), labels.iter().filter(|l| **l).count());
    println!("ROC AUC: learned {:.3}, difficulty hint {:.3}, random 0.500", roc_auc(&learned, &labels), roc_auc(&hint, &labels));
    println!("| cloud fraction | helped subtasks reached: learned | difficulty hint | random (expected) |");
    println!("|---|---|---|---|");
    let helped = labels.iter().filter(|l| **l).count().max(1) as f64;
    for fraction in [0.1, 0.25, 0.5, 0.75] {
        let k = ((test.len() as f64) * fraction).round() as usize;
        let reached = |scores: &[f32]| {
            let mut order: Vec<usize> = (0..scores.len()).collect();
            order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
            order.iter().take(k).filter(|i| labels[**i]).count() as f64 / helped
        };
        println!("| {fraction:.2} | {:.2} | {:.2} | {:.2} |", reached(&learned), reached(&hint), fraction);
    }
    std::fs::write(out, serde_json::to_string(&weights)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
