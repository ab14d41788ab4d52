//! Whether the edge knows when it is wrong: confidence signals of an edge answer (its tokens'
//! log-probabilities, and whether it stated an answer), scored on the benchmark's recorded edge
//! answers: the edge cascade's (the benchmark's prompt) or the SDK's offline answers (its own
//! prompt, the escalation's training data). For each signal: how well it separates right edge answers from wrong ones (ROC AUC,
//! with a bootstrap interval over questions), and the cascade it would make — the least confident
//! share of questions sent to the cloud's chain-of-thought — against sending the same share at
//! random (the straight line between edge and cloud), with paired intervals.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hybridflow_core::model::Side;
use hybridflow_core::route::escalation::confidence;
use crate::logistic::roc_auc;

use crate::benchmark::calls::CallRecord;
use crate::benchmark::datasets::{self, Dataset};
use crate::statistics::{bootstrap_interval, bootstrap_statistic, mean};
use crate::benchmark::{monthly_token_budget, scoring, Record};

/// Tokens at the end of an answer that hold its answer line ("Answer: 42" and the end of the
/// sentence before it).
const ANSWER_TAIL_TOKENS: usize = 8;

/// One question an edge call answered with token log-probabilities (scored from that call's
/// text), with the cloud's result for the same question beside it.
pub struct Question {
    pub edge_right: bool,
    pub cloud_right: bool,
    pub cloud_tokens: u64,
    stated_answer: bool,
    pub logprobs: Vec<f32>,
}

impl Question {
    /// The SDK's confidence signal, computed by the SDK's own code.
    pub fn confidence(&self) -> f64 {
        confidence(&self.logprobs).unwrap_or(f64::NEG_INFINITY)
    }
}

/// Which results pair up: the strategy whose edge call carries the log-probabilities, and the
/// strategy whose result is the cloud's answer to the same question.
#[derive(Clone, Copy)]
pub struct Pairing<'a> {
    pub edge: &'a str,
    pub cloud: &'a str,
}

/// A named confidence signal, higher meaning more confident.
type Signal = (&'static str, fn(&Question) -> f64);

fn signals() -> Vec<Signal> {
    vec![
        ("mean token log-probability", Question::confidence),
        ("lowest token log-probability", |q| q.logprobs.iter().copied().fold(0.0f32, f32::min).into()),
        ("mean log-probability of the last 8 tokens", |q| confidence(&q.logprobs[q.logprobs.len().saturating_sub(ANSWER_TAIL_TOKENS)..]).unwrap_or(f64::NEG_INFINITY)),
        ("stated an answer (0 or 1)", |q| f64::from(u8::from(q.stated_answer))),
    ]
}

/// The questions of a split whose `(results, calls)` hold an answer of `pairing.edge` with token
/// log-probabilities and a result of `pairing.cloud`.
pub fn load_questions(dataset: Dataset, split: &str, (results, calls): (&Path, &Path), data: &Path, pairing: Pairing<'_>) -> Result<Vec<Question>> {
    let read = |path: &Path| std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()));
    let items: HashMap<String, datasets::Item> = datasets::load(dataset, data, split, usize::MAX)?.into_iter().map(|i| (i.id.clone(), i)).collect();
    let records: Vec<Record> = read(results)?.lines().filter_map(|l| serde_json::from_str::<Record>(l).ok()).filter(|r| r.dataset == dataset.name()).collect();
    let calls: HashMap<String, CallRecord> = read(calls)?.lines().filter_map(|l| serde_json::from_str::<CallRecord>(l).ok()).map(|c| (c.key.clone(), c)).collect();
    let of = |strategy: &str| -> HashMap<&str, &Record> { records.iter().filter(|r| r.strategy == strategy && r.error.is_none()).map(|r| (r.id.as_str(), r)).collect() };
    let (cloud, cascade) = (of(pairing.cloud), of(pairing.edge));
    let mut questions: Vec<Question> = cascade
        .iter()
        .filter_map(|(id, cascaded)| {
            // The first edge call is the answer, recorded with its log-probabilities.
            let edge_call = calls.get(&cascaded.timeline.iter().find(|s| s.side == Side::Edge)?.key)?;
            let cloud_answer = cloud.get(id)?;
            let item = items.get(*id)?;
            Some(Question {
                edge_right: scoring::score(dataset, item, &edge_call.text).0,
                cloud_right: cloud_answer.correct,
                cloud_tokens: cloud_answer.cloud_tokens(),
                stated_answer: scoring::states_an_answer(dataset, item, &edge_call.text),
                logprobs: edge_call.token_logprobs.clone(),
            })
        })
        .filter(|q| !q.logprobs.is_empty())
        .collect();
    // A fixed order, so the bootstrap draws the same questions on every run.
    questions.sort_by(|a, b| a.logprobs.partial_cmp(&b.logprobs).unwrap_or(std::cmp::Ordering::Equal));
    Ok(questions)
}

/// ROC AUC of `scores` for "the edge is right", with a bootstrap interval over questions.
pub fn auc_with_interval(scores: &[f64], labels: &[bool]) -> (f64, (f64, f64)) {
    let as_f32: Vec<f32> = scores.iter().map(|s| *s as f32).collect();
    let auc_of = |picks: &[usize]| {
        let (s, l): (Vec<f32>, Vec<bool>) = picks.iter().map(|i| (as_f32[*i], labels[*i])).unzip();
        roc_auc(&s, &l)
    };
    let all: Vec<usize> = (0..labels.len()).collect();
    (auc_of(&all), bootstrap_statistic(labels.len(), auc_of))
}

/// A question's expected correctness when it goes to the cloud with probability `share` (random
/// routing at that share: the straight line between edge and cloud).
pub fn at_random(share: f64, edge_right: bool, cloud_right: bool) -> f64 {
    share * f64::from(u8::from(cloud_right)) + (1.0 - share) * f64::from(u8::from(edge_right))
}

/// Which questions go to the cloud when the `share` least confident do (the `share` with the
/// lowest scores, ties in question order).
pub fn least_confident(confidence: &[f64], share: f64) -> Vec<bool> {
    let k = (share * confidence.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..confidence.len()).collect();
    order.sort_by(|a, b| confidence[*a].total_cmp(&confidence[*b]));
    let mut escalated = vec![false; confidence.len()];
    for i in order.into_iter().take(k) {
        escalated[i] = true;
    }
    escalated
}

/// The confidence under which the `share` least confident questions fall.
fn threshold_at_share(confidence: &[f64], share: f64) -> f64 {
    let mut sorted = confidence.to_vec();
    sorted.sort_by(f64::total_cmp);
    let k = ((share * sorted.len() as f64).round() as usize).min(sorted.len() - 1);
    sorted[k]
}

/// The cascade's per-question correctness and cloud tokens when `escalated` go to the cloud.
fn cascade(questions: &[Question], escalated: &[bool]) -> (Vec<f64>, u64) {
    let correct = questions.iter().zip(escalated).map(|(q, up)| f64::from(u8::from(if *up { q.cloud_right } else { q.edge_right }))).collect();
    (correct, questions.iter().zip(escalated).filter(|(_, up)| **up).map(|(q, _)| q.cloud_tokens).sum())
}

/// A table row: the cascade's cloud tokens, accuracy, gain over random escalation at the same
/// share (paired interval) and difference to the cloud's chain-of-thought.
pub fn cascade_row(questions: &[Question], escalated: &[bool]) -> String {
    let share = escalated.iter().filter(|e| **e).count() as f64 / questions.len() as f64;
    let (correct, tokens) = cascade(questions, escalated);
    let cloud_tokens: u64 = questions.iter().map(|q| q.cloud_tokens).sum();
    // Random at the same share: each question's expected correctness.
    let over_random: Vec<f64> = questions.iter().zip(&correct).map(|(q, c)| c - at_random(share, q.edge_right, q.cloud_right)).collect();
    let (low, high) = bootstrap_interval(&over_random);
    let under_cloud: Vec<f64> = questions.iter().zip(&correct).map(|(q, c)| c - f64::from(u8::from(q.cloud_right))).collect();
    format!(
        "{:.2} | ×{:.2} | {:.1} % | {:+.1} ({:+.1} to {:+.1}) | {:+.1}",
        share,
        tokens as f64 / cloud_tokens as f64,
        100.0 * mean(&correct),
        100.0 * mean(&over_random),
        100.0 * low,
        100.0 * high,
        100.0 * mean(&under_cloud)
    )
}

pub fn describe(split: &str, questions: &[Question]) {
    let rate = |f: fn(&Question) -> bool| 100.0 * questions.iter().filter(|q| f(q)).count() as f64 / questions.len() as f64;
    println!(
        "{split}: {} questions, edge right {:.1} %, cloud right {:.1} %, only the cloud right {:.1} %",
        questions.len(),
        rate(|q| q.edge_right),
        rate(|q| q.cloud_right),
        rate(|q| q.cloud_right && !q.edge_right)
    );
}

/// The SDK's budget sweep (`hybridflow-budget-<tokens>` results) against the line between
/// `pairing.edge` and `pairing.cloud`: each question's result against its expected correctness
/// when the same share of the cloud strategy's tokens went to random questions, the edge
/// answering the others (meaningful when the pair is the SDK's own offline and default answers).
fn budget_sweep(dataset: Dataset, results: &Path, pairing: Pairing<'_>) -> Result<()> {
    let text = std::fs::read_to_string(results).with_context(|| format!("reading {}", results.display()))?;
    let records: Vec<Record> = text.lines().filter_map(|l| serde_json::from_str::<Record>(l).ok()).filter(|r| r.dataset == dataset.name() && r.error.is_none()).collect();
    let of = |strategy: &str| -> HashMap<&str, &Record> { records.iter().filter(|r| r.strategy == strategy).map(|r| (r.id.as_str(), r)).collect() };
    let (edge, cloud) = (of(pairing.edge), of(pairing.cloud));
    let mut budgeted: Vec<&str> = records.iter().map(|r| r.strategy.as_str()).filter(|s| monthly_token_budget(s).is_some()).collect();
    budgeted.sort_by_key(|s| monthly_token_budget(s));
    budgeted.dedup();
    if budgeted.is_empty() {
        return Ok(());
    }
    let tokens = |r: &Record| r.cloud_tokens() as f64;
    let right = |r: &Record| f64::from(u8::from(r.correct));
    println!("\nThe budget sweep against the line between {} and {}:\n", pairing.edge, pairing.cloud);
    println!("| strategy | questions | accuracy | share of {}'s cloud tokens | − random at that share (95 % CI) |\n|---|---|---|---|---|", pairing.cloud);
    for strategy in budgeted {
        let mut rows: Vec<(&Record, &Record, &Record)> = of(strategy).into_iter().filter_map(|(id, r)| Some((r, *edge.get(id)?, *cloud.get(id)?))).collect();
        // A fixed order, so the bootstrap draws the same questions on every run.
        rows.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        let cloud_tokens: f64 = rows.iter().map(|(_, _, c)| tokens(c)).sum();
        if rows.is_empty() || cloud_tokens == 0.0 {
            continue;
        }
        let share = rows.iter().map(|(r, _, _)| tokens(r)).sum::<f64>() / cloud_tokens;
        let over_random: Vec<f64> = rows.iter().map(|(r, e, c)| right(r) - at_random(share, e.correct, c.correct)).collect();
        let (low, high) = bootstrap_interval(&over_random);
        let accuracy = mean(&rows.iter().map(|(r, _, _)| right(r)).collect::<Vec<_>>());
        println!("| {strategy} | {} | {:.1} % | {share:.2} | {:+.1} ({:+.1} to {:+.1}) |", rows.len(), 100.0 * accuracy, 100.0 * mean(&over_random), 100.0 * low, 100.0 * high);
    }
    Ok(())
}

pub fn run(dataset: &str, dev: (&Path, &Path), train: Option<(&Path, &Path)>, data: &Path, pairing: Pairing<'_>) -> Result<()> {
    let dataset = Dataset::parse(dataset)?;
    let questions = load_questions(dataset, "dev", dev, data, pairing)?;
    if questions.len() < 20 {
        bail!("{} questions have a {} answer with token log-probabilities and a {} result: too few", questions.len(), pairing.edge, pairing.cloud);
    }
    describe("dev", &questions);
    let labels: Vec<bool> = questions.iter().map(|q| q.edge_right).collect();
    println!("\n| signal | ROC AUC for \"the edge is right\" on dev (95 % CI) |\n|---|---|");
    let signals = signals();
    let scored: Vec<Vec<f64>> = signals.iter().map(|(_, signal)| questions.iter().map(signal).collect()).collect();
    for ((name, _), scores) in signals.iter().zip(&scored) {
        let (auc, (low, high)) = auc_with_interval(scores, &labels);
        println!("| {name} | {auc:.3} ({low:.3} to {high:.3}) |");
    }
    println!("\nThe least confident share of dev questions to the cloud (the curve's points; no threshold fitted):\n");
    println!("| signal | share to the cloud | cloud tokens (× cloud CoT) | accuracy | − random at that share (95 % CI) | − cloud CoT |\n|---|---|---|---|---|---|");
    for ((name, _), scores) in signals.iter().zip(&scored) {
        for share in [0.2, 0.3, 0.4, 0.5] {
            println!("| {name} | {} |", cascade_row(&questions, &least_confident(scores, share)));
        }
    }
    let oracle: Vec<bool> = questions.iter().map(|q| q.cloud_right && !q.edge_right).collect();
    println!("| oracle: the cloud exactly where only it is right | {} |", cascade_row(&questions, &oracle));
    budget_sweep(dataset, dev.0, pairing)?;

    if let Some(train) = train {
        let trained = load_questions(dataset, "train", train, data, pairing)?;
        if trained.is_empty() {
            println!("\ntrain: no question has a {} answer with log-probabilities and a {} result", pairing.edge, pairing.cloud);
            return Ok(());
        }
        describe("\ntrain", &trained);
        println!("\nThresholds set on train (the confidence under which that share of train questions falls), applied to dev:\n");
        println!("| signal | train share | threshold | dev share to the cloud | cloud tokens (× cloud CoT) | accuracy | − random at that share (95 % CI) | − cloud CoT |\n|---|---|---|---|---|---|---|---|");
        for ((name, signal), scores) in signals.iter().zip(&scored) {
            let train_scores: Vec<f64> = trained.iter().map(signal).collect();
            let train_labels: Vec<bool> = trained.iter().map(|q| q.edge_right).collect();
            println!("| {name}: ROC AUC on train {:.3} | | | | | | | |", auc_with_interval(&train_scores, &train_labels).0);
            for share in [0.2, 0.3, 0.4, 0.5] {
                let threshold = threshold_at_share(&train_scores, share);
                let escalated: Vec<bool> = scores.iter().map(|s| *s < threshold).collect();
                println!("| | {share:.1} | {threshold:.3} | {} |", cascade_row(&questions, &escalated));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(edge_right: bool, cloud_right: bool, confidence: f32) -> Question {
        Question { edge_right, cloud_right, cloud_tokens: 100, stated_answer: true, logprobs: vec![confidence] }
    }

    #[test]
    fn the_cascade_sends_the_least_confident_share_to_the_cloud() {
        let questions = [question(false, true, -3.0), question(true, true, -0.1), question(false, false, -2.0), question(true, false, -0.2)];
        let confidence: Vec<f64> = questions.iter().map(|q| f64::from(q.logprobs[0])).collect();
        let escalated = least_confident(&confidence, 0.5);
        assert_eq!(escalated, vec![true, false, true, false]);
        let (correct, tokens) = cascade(&questions, &escalated);
        assert_eq!(correct, vec![1.0, 1.0, 0.0, 1.0], "the two least confident went to the cloud");
        assert_eq!(tokens, 200);
        let threshold = threshold_at_share(&confidence, 0.5);
        assert_eq!(confidence.iter().map(|c| *c < threshold).collect::<Vec<_>>(), escalated, "a threshold at that share escalates the same questions");
        let labels: Vec<bool> = questions.iter().map(|q| q.edge_right).collect();
        assert_eq!(auc_with_interval(&confidence, &labels).0, 1.0, "a signal that ranks every right answer higher");
    }
}
