//! Trains the router's logistic model on profiled subtasks and reports its quality on held-out
//! questions against a random router and the planner's difficulty hint.

use std::collections::BTreeSet;
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
    let cloud_models: BTreeSet<&str> = records.iter().map(|r| r.cloud_model.as_str()).collect();
    let trained_on = format!(
        "gsm8k train split, {} profiled subtasks ({} positive) from {} questions, cloud {}; `cargo xtask profile-router` then `cargo xtask train-router`",
        train_examples.len(),
        positives,
        train.iter().map(|r| &r.question_id).collect::<BTreeSet<_>>().len(),
        cloud_models.into_iter().collect::<Vec<_>>().join(", "),
    );
    let mut weights = RouterWeights::train(&train_examples, 30, 0.3, 1e-3, trained_on);
    let disagreements: Vec<&&ProfiledSubtask> = train.iter().filter(|r| !r.results_agree).collect();
    if !disagreements.is_empty() {
        weights.helps_when_results_differ = disagreements.iter().filter(|r| r.cloud_helps).count() as f32 / disagreements.len() as f32;
    }
    println!("trained on {} subtasks ({positives} where the cloud helps); P(helps | results differ) = {:.3} from {} disagreements", train_examples.len(), weights.helps_when_results_differ, disagreements.len());
    report_held_out(&weights, &test, &example);
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

/// Held-out quality: ROC AUC, and the answer accuracy reached when a given fraction of the
/// subtasks (the highest scored) goes to the cloud, for the learned router, a fixed threshold on
/// the planner's difficulty hint, and a random router (mean of 1000 seeded draws).
fn report_held_out(weights: &RouterWeights, test: &[&ProfiledSubtask], example: &dyn Fn(&ProfiledSubtask) -> Example) {
    let labels: Vec<bool> = test.iter().map(|r| r.cloud_helps).collect();
    let learned: Vec<f32> = test.iter().map(|r| weights.predict(&example(r).features)).collect();
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
        "held-out: {} subtasks of {} questions, {} where the cloud helps; all-edge accuracy {:.3}",
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
