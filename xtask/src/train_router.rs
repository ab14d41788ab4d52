//! Trains the router's logistic model on profiled subtasks. Quality is measured by 5-fold
//! cross-validation over questions (every subtask scored by a model that never saw its question),
//! against a fixed threshold on the planner's difficulty hint and a random router; the shipped
//! weights are then trained on all the data.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Result};
use hybridflow_core::plan::Difficulty;
use hybridflow_core::route::calibration::Calibration;
use hybridflow_core::route::features::{features, GraphPosition, DENSE_FEATURES};
use hybridflow_core::route::learned::{roc_auc, Example, RouterWeights};

use crate::profile_router::ProfiledSubtask;

const FOLDS: u32 = 5;

/// The cross-validation fold of a question, stable across runs.
fn fold(question_id: &str) -> u32 {
    question_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % FOLDS
}

fn example(r: &ProfiledSubtask) -> Example {
    Example {
        features: features(&r.query, &r.subtask, GraphPosition { depth: r.depth, fan_in: r.fan_in, fan_out: r.fan_out }),
        cloud_helps: r.cloud_helps,
    }
}

fn train(records: &[&ProfiledSubtask], trained_on: String) -> RouterWeights {
    let examples: Vec<Example> = records.iter().map(|r| example(r)).collect();
    let mut weights = RouterWeights::train(&examples, 30, 0.3, 1e-3, trained_on);
    // The query-level numbers are measured by `cargo xtask train-query-router` from other data:
    // kept.
    let builtin = RouterWeights::builtin();
    (weights.open, weights.multiple_choice) = (builtin.open, builtin.multiple_choice);
    let disagreements: Vec<&&ProfiledSubtask> = records.iter().filter(|r| !r.results_agree).collect();
    if !disagreements.is_empty() {
        weights.helps_when_results_differ = disagreements.iter().filter(|r| r.cloud_helps).count() as f32 / disagreements.len() as f32;
    }
    weights
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
    let all: Vec<&ProfiledSubtask> = records.iter().collect();
    let mut logits = vec![0.0f64; all.len()];
    let mut helps_rates = vec![0.0f64; all.len()];
    for k in 0..FOLDS {
        let training: Vec<&ProfiledSubtask> = all.iter().copied().filter(|r| fold(&r.question_id) != k).collect();
        let weights = train(&training, String::new());
        for (i, r) in all.iter().enumerate().filter(|(_, r)| fold(&r.question_id) == k) {
            logits[i] = f64::from(weights.logit(&example(r).features));
            helps_rates[i] = f64::from(weights.helps_when_results_differ);
        }
    }
    report_cross_validated(&all, &logits);
    report_calibration(&all, &logits, &helps_rates);

    let positives = all.iter().filter(|r| r.cloud_helps).count();
    let questions = all.iter().map(|r| &r.question_id).collect::<BTreeSet<_>>().len();
    let cloud_models: BTreeSet<&str> = all.iter().map(|r| r.cloud_model.as_str()).collect();
    let trained_on = format!(
        "gsm8k train split, {} profiled subtasks ({positives} positive) from {questions} questions, cloud {}; `cargo xtask profile-router` then `cargo xtask train-router`",
        all.len(),
        cloud_models.into_iter().collect::<Vec<_>>().join(", "),
    );
    let weights = train(&all, trained_on);
    println!("shipped weights: {} subtasks ({positives} where the cloud helps) from {questions} questions; P(helps | results differ) = {:.3}", all.len(), weights.helps_when_results_differ);
    let mut dense: Vec<(&str, f32)> = DENSE_FEATURES.iter().copied().zip(weights.dense.iter().copied()).collect();
    dense.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    println!("dense weights, largest first: {}", dense.iter().map(|(name, w)| format!("{name} {w:+.2}")).collect::<Vec<_>>().join(", "));
    std::fs::write(out, serde_json::to_string(&weights)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Whether a question's answer is right with these of its subtasks on the cloud, from what the
/// profile measured: all on one side, one swapped either way; other mixes are estimated as
/// right when all-edge was, or when one of the cloud subtasks alone fixed it.
fn answer_right(subtasks: &[&ProfiledSubtask], on_cloud: &[bool]) -> bool {
    let first = subtasks[0];
    let cloud_count = on_cloud.iter().filter(|c| **c).count();
    let only = |side: bool| on_cloud.iter().position(|c| *c == side).map(|i| subtasks[i]);
    if cloud_count == 0 {
        return first.correct_all_edge;
    }
    if cloud_count == subtasks.len() {
        return first.correct_all_cloud;
    }
    if cloud_count == subtasks.len() - 1 {
        if let Some(measured) = only(false).and_then(|r| r.correct_with_edge) {
            return measured;
        }
    }
    if cloud_count == 1 {
        if let Some(measured) = only(true).and_then(|r| r.correct_with_cloud) {
            return measured;
        }
    }
    first.correct_all_edge || subtasks.iter().zip(on_cloud).any(|(r, c)| *c && r.correct_with_cloud == Some(true))
}

/// Cross-validated quality: ROC AUC, and the answer accuracy reached when a given fraction of the
/// subtasks (the highest scored) goes to the cloud, for the learned router, a fixed threshold on
/// the planner's difficulty hint, and a random router (mean of 1000 seeded draws).
fn report_cross_validated(test: &[&ProfiledSubtask], logits: &[f64]) {
    let labels: Vec<bool> = test.iter().map(|r| r.cloud_helps).collect();
    let learned: Vec<f32> = logits.iter().map(|l| *l as f32).collect();
    // The hint's levels, ties broken by the expected length (longer first).
    let hint: Vec<f32> = test
        .iter()
        .map(|r| {
            let level = match r.subtask.difficulty {
                Difficulty::Easy => 0.0,
                Difficulty::Medium => 1.0,
                Difficulty::Hard => 2.0,
            };
            level + (r.subtask.expected_tokens as f32 / 10_000.0).min(0.5)
        })
        .collect();
    let questions: BTreeSet<&str> = test.iter().map(|r| r.question_id.as_str()).collect();
    let accuracy = |cloud: &[usize]| {
        let right = questions.iter().filter(|q| {
            let subtasks: Vec<(usize, &&ProfiledSubtask)> = test.iter().enumerate().filter(|(_, r)| r.question_id == **q).collect();
            let on_cloud: Vec<bool> = subtasks.iter().map(|(i, _)| cloud.contains(i)).collect();
            answer_right(&subtasks.iter().map(|(_, r)| **r).collect::<Vec<_>>(), &on_cloud)
        });
        right.count() as f64 / questions.len().max(1) as f64
    };
    let top = |scores: &[f32], k: usize| {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
        order.truncate(k);
        order
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random_accuracy = |k: usize| {
        let mut total = 0.0;
        for _ in 0..1000 {
            let mut order: Vec<usize> = (0..test.len()).collect();
            for i in (1..order.len()).rev() {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                order.swap(i, (seed >> 33) as usize % (i + 1));
            }
            order.truncate(k);
            total += accuracy(&order);
        }
        total / 1000.0
    };
    println!(
        "cross-validated ({FOLDS} folds by question): {} subtasks of {} questions, {} where the cloud helps; all-edge accuracy {:.3}",
        test.len(),
        questions.len(),
        labels.iter().filter(|l| **l).count(),
        accuracy(&[])
    );
    println!("ROC AUC: learned {:.3}, difficulty hint {:.3}, random 0.500", roc_auc(&learned, &labels), roc_auc(&hint, &labels));
    println!("| cloud fraction | accuracy: learned | fixed threshold on difficulty | random (mean) |");
    println!("|---|---|---|---|");
    for fraction in [0.0, 0.1, 0.25, 0.5, 0.75, 1.0] {
        let k = ((test.len() as f64) * fraction).round() as usize;
        println!("| {fraction:.2} | {:.3} | {:.3} | {:.3} |", accuracy(&top(&learned, k)), accuracy(&top(&hint, k)), random_accuracy(k));
    }
}

/// The on-device calibration replayed on the cross-validated scores, question by question in file
/// order: the first half of the subtasks act as probes (only whether the two results agreed is
/// seen), the second half is scored against the true labels, with and without that calibration.
fn report_calibration(records: &[&ProfiledSubtask], logits: &[f64], helps_rates: &[f64]) {
    let half = records.len() / 2;
    let mut calibration = Calibration::default();
    for i in 0..half {
        calibration.update(logits[i], if records[i].results_agree { 0.0 } else { helps_rates[i] });
    }
    let brier = |q: &dyn Fn(f64) -> f64| (half..records.len()).map(|i| (q(logits[i]) - if records[i].cloud_helps { 1.0 } else { 0.0 }).powi(2)).sum::<f64>() / (records.len() - half).max(1) as f64;
    println!(
        "calibration from {half} probes (slope {:.2}, intercept {:.2}): Brier score on the {} later subtasks {:.3} as trained, {:.3} calibrated",
        calibration.slope,
        calibration.intercept,
        records.len() - half,
        brier(&|l| Calibration::default().apply(l)),
        brier(&|l| calibration.apply(l))
    );
}
