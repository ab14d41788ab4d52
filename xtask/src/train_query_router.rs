//! The query-level decision's numbers, from the benchmark's edge and cloud chain-of-thought
//! results: the cloud's advantage on whole queries, measured on gsm8k train and written into the
//! router weights (gsm8k's as the numbers of open questions, mmlu-stem's, from its carved train
//! split, as those of multiple-choice ones); the escalation model (P(edge right) and P(cloud right) against the confidence
//! of the SDK's own edge answers, `hybridflow-offline` on train), written there too and checked
//! on dev; and whether a learned per-query model (hashed n-grams and logistic regression,
//! `logistic.rs`, applied to the whole query) finds the queries where the cloud helps better than a
//! zero-parameter rule or chance, checked on dev questions it never saw.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hybridflow_core::plan::planner::direct_plan;
use hybridflow_core::route::escalation::{EscalationModel, Logistic};
use hybridflow_core::route::learned::{DecompositionGain, QueryLevel, RouterWeights, WholeQueryGain};

use crate::benchmark::datasets::{self, Dataset};
use crate::statistics::{bootstrap_interval, mean};
use crate::cascade_signal::{self, at_random, auc_with_interval, cascade_row, least_confident, load_questions, Pairing};
use crate::benchmark::Record;
use crate::logistic::{features, roc_auc, Example, Model};

/// One question answered by both sides.
struct Paired {
    question: String,
    edge_right: bool,
    cloud_right: bool,
    cloud_output_tokens: u64,
    /// The cloud call's input and output tokens.
    cloud_tokens: u64,
    /// The plan with every step on the cloud (`hybridflow-cloud-only`), where it ran without an
    /// error: whether it was right, and its cloud tokens.
    plan: Option<(bool, u64)>,
}

impl Paired {
    fn cloud_helps(&self) -> bool {
        self.cloud_right && !self.edge_right
    }
}

/// One question's recorded answers, by the strategies the query-level numbers are measured from.
#[derive(Default)]
struct Answers {
    edge: Option<Record>,
    cloud: Option<Record>,
    plan: Option<Record>,
}

fn paired(dataset: Dataset, results: &Path, split: &str, data: &Path) -> Result<Vec<Paired>> {
    let text = std::fs::read_to_string(results).with_context(|| format!("reading {}", results.display()))?;
    let mut by_id: BTreeMap<String, Answers> = BTreeMap::new();
    for record in text.lines().filter_map(|l| serde_json::from_str::<Record>(l).ok()) {
        let entry = by_id.entry(record.id.clone()).or_default();
        match record.strategy.as_str() {
            "edge-cot" => entry.edge = Some(record),
            // The SDK's own edge answer is the same request with log-probabilities: it stands in
            // where the benchmark's edge-cot was not run.
            "hybridflow-offline" if entry.edge.is_none() => entry.edge = Some(record),
            "cloud-cot" => entry.cloud = Some(record),
            "hybridflow-cloud-only" => entry.plan = Some(record),
            _ => {}
        }
    }
    let questions: BTreeMap<String, String> = datasets::load(dataset, data, split, usize::MAX)?.into_iter().map(|i| (i.id, i.question)).collect();
    Ok(by_id
        .into_iter()
        .filter_map(|(id, answers)| match answers {
            Answers { edge: Some(edge), cloud: Some(cloud), plan } if edge.error.is_none() && cloud.error.is_none() => Some(Paired {
                question: questions.get(&id)?.clone(),
                edge_right: edge.correct,
                cloud_right: cloud.correct,
                cloud_output_tokens: cloud.cloud_output_tokens,
                cloud_tokens: cloud.cloud_tokens(),
                plan: plan.filter(|p| p.error.is_none()).map(|p| (p.correct, p.cloud_tokens())),
            }),
            _ => None,
        })
        .collect())
}

/// What answering through a plan with every step on the cloud (`hybridflow-cloud-only`) gains
/// over the edge's one-step answer, and its cloud tokens over one cloud chain-of-thought call's,
/// on the paired questions the plan also answered. `None` when there are none.
fn decomposition(dataset: Dataset, rows: &[Paired]) -> Option<DecompositionGain> {
    let with_plan: Vec<(&Paired, (bool, u64))> = rows.iter().filter_map(|p| p.plan.map(|plan| (p, plan))).collect();
    if with_plan.is_empty() {
        return None;
    }
    let rate = |right: fn(&(&Paired, (bool, u64))) -> bool| with_plan.iter().filter(|q| right(q)).count() as f64 / with_plan.len() as f64;
    let (edge, one_call, plan) = (rate(|(p, _)| p.edge_right), rate(|(p, _)| p.cloud_right), rate(|(_, (right, _))| *right));
    let tokens = |of: fn(&(&Paired, (bool, u64))) -> u64| with_plan.iter().map(of).sum::<u64>() as f64;
    let (gain, token_ratio) = (plan - edge, tokens(|(_, (_, t))| *t) / tokens(|(p, _)| p.cloud_tokens).max(1.0));
    println!(
        "decomposition on train: {} questions, edge right {edge:.3}, one cloud call {one_call:.3}, the plan with every step on the cloud {plan:.3}; plan gain {gain:.3} at ×{token_ratio:.2} one call's cloud tokens",
        with_plan.len()
    );
    Some(DecompositionGain {
        gain: gain as f32,
        token_ratio: token_ratio as f32,
        measured_on: format!(
            "{} train, {} questions: every step of the plan on cloud Qwen2.5-Coder-1.5B (`hybridflow-cloud-only`) against edge Qwen2.5-Coder-0.5B and one cloud chain-of-thought call (docs/bench/{0}-train); `cargo xtask train-query-router`",
            dataset.name(),
            with_plan.len()
        ),
    })
}

fn example(p: &Paired) -> Example {
    let plan = direct_plan(&p.question);
    Example { features: features(&p.question, &plan.subtasks[0]), cloud_helps: p.cloud_helps() }
}

fn accuracy(rows: &[Paired], on_cloud: &dyn Fn(usize) -> f64) -> Vec<f64> {
    rows.iter().enumerate().map(|(i, p)| at_random(on_cloud(i), p.edge_right, p.cloud_right)).collect()
}

/// Accuracy when the `share` of questions with the highest scores go to the cloud, against random
/// routing at the same share (its expectation per question), with the paired interval.
fn at_share(dev: &[Paired], scores: &[f64], share: f64) -> (f64, f64, (f64, f64)) {
    let negated: Vec<f64> = scores.iter().map(|s| -s).collect();
    let chosen = least_confident(&negated, share);
    let routed = accuracy(dev, &|i| f64::from(u8::from(chosen[i])));
    let k = chosen.iter().filter(|c| **c).count();
    let random = accuracy(dev, &|_| k as f64 / dev.len() as f64);
    let differences: Vec<f64> = routed.iter().zip(&random).map(|(r, c)| r - c).collect();
    (mean(&routed), mean(&random), bootstrap_interval(&differences))
}

/// `bench_dir` holds `<dataset>-train/results.jsonl` and `<dataset>/results.jsonl`.
pub fn run(dataset: Dataset, bench_dir: &Path, data: &Path, weights_path: &Path) -> Result<()> {
    let results = |dir: String| bench_dir.join(dir).join("results.jsonl");
    let (train, dev) = (&results(format!("{}-train", dataset.name())), &results(dataset.name().to_owned()));
    let train_rows = paired(dataset, train, "train", data)?;
    let dev_rows = paired(dataset, dev, "dev", data)?;
    if train_rows.is_empty() {
        bail!("no question in {} has both an edge answer (edge-cot or hybridflow-offline) and a cloud-cot result", train.display());
    }
    let rate = |rows: &[Paired], f: fn(&Paired) -> bool| rows.iter().filter(|p| f(p)).count() as f64 / rows.len().max(1) as f64;
    let gain = rate(&train_rows, |p| p.cloud_right) - rate(&train_rows, |p| p.edge_right);
    let answer_tokens = train_rows.iter().map(|p| p.cloud_output_tokens).sum::<u64>() / train_rows.len() as u64;
    println!(
        "train: {} questions, edge right {:.3}, cloud right {:.3}, cloud helps {:.3}; whole-query gain {gain:.3}, cloud answer {answer_tokens} tokens",
        train_rows.len(),
        rate(&train_rows, |p| p.edge_right),
        rate(&train_rows, |p| p.cloud_right),
        rate(&train_rows, Paired::cloud_helps),
    );

    let mut weights: RouterWeights = serde_json::from_str(&std::fs::read_to_string(weights_path)?)?;
    let whole_query = WholeQueryGain {
        gain: gain as f32,
        answer_tokens: answer_tokens as u32,
        measured_on: format!(
            "{} train, {} questions, edge Qwen2.5-Coder-0.5B vs cloud Qwen2.5-Coder-1.5B chain-of-thought (docs/bench/{0}-train); `cargo xtask train-query-router`",
            dataset.name(),
            train_rows.len()
        ),
    };
    let escalation = fit_escalation(dataset, train, dev, data)?;
    // gsm8k's numbers are those of open questions; mmlu-stem's those of multiple-choice ones.
    let (kind, level) = match dataset {
        Dataset::Gsm8k => ("open", &mut weights.open),
        Dataset::MmluStem => ("multiple-choice", weights.multiple_choice.get_or_insert_with(QueryLevel::default)),
        other => bail!("{} has no kind of query of its own in the router weights (gsm8k: open, mmlu-stem: multiple choice)", other.name()),
    };
    level.whole_query = whole_query;
    if let Some(measured) = decomposition(dataset, &train_rows) {
        level.decomposition = Some(measured);
    }
    match escalation {
        EscalationFit::Fitted(model) => level.escalation = Some(model),
        EscalationFit::NoSignal => level.escalation = None,
        EscalationFit::TooFew => {}
    }
    std::fs::write(weights_path, serde_json::to_string(&weights)?)?;
    println!("wrote the {kind} questions' whole-query gain, escalation model and decomposition numbers into {}", weights_path.display());
    if let Some(multiple_choice) = &weights.multiple_choice {
        // This dataset's dev questions are read already; only the other kind's are read here.
        let other = if dataset == Dataset::Gsm8k { Dataset::MmluStem } else { Dataset::Gsm8k };
        let other_rows = paired(other, &results(other.name().to_owned()), "dev", data).unwrap_or_default();
        let (open_dev, choice_dev) = if dataset == Dataset::Gsm8k { (&dev_rows, &other_rows) } else { (&other_rows, &dev_rows) };
        mixed_workload(open_dev, choice_dev, f64::from(weights.open.whole_query.gain), f64::from(multiple_choice.whole_query.gain));
    }

    if dev_rows.len() < 10 {
        println!("dev: {} paired questions, too few to evaluate a per-query model", dev_rows.len());
        return Ok(());
    }
    let examples: Vec<Example> = train_rows.iter().map(example).collect();
    let learned = Model::train(&examples, 30, 0.3, 1e-3);
    let learned_scores: Vec<f64> = dev_rows.iter().map(|p| f64::from(learned.logit(&example(p).features))).collect();
    let words: Vec<f64> = dev_rows.iter().map(|p| p.question.split_whitespace().count() as f64).collect();
    let labels: Vec<bool> = dev_rows.iter().map(Paired::cloud_helps).collect();
    let as_f32 = |s: &[f64]| s.iter().map(|x| *x as f32).collect::<Vec<f32>>();
    println!(
        "dev: {} questions, edge right {:.3}, cloud right {:.3}, cloud helps on {}",
        dev_rows.len(),
        rate(&dev_rows, |p| p.edge_right),
        rate(&dev_rows, |p| p.cloud_right),
        labels.iter().filter(|l| **l).count()
    );
    println!("ROC AUC for \"the cloud helps\" on dev: learned {:.3}, rule \"longer queries to the cloud\" {:.3}", roc_auc(&as_f32(&learned_scores), &labels), roc_auc(&as_f32(&words), &labels));
    println!("| cloud share | learned | rule (longer) | random | learned − random (95% CI) |");
    println!("|---|---|---|---|---|");
    for share in [0.25, 0.5, 0.75] {
        let (learned_accuracy, random_accuracy, (low, high)) = at_share(&dev_rows, &learned_scores, share);
        let (rule_accuracy, ..) = at_share(&dev_rows, &words, share);
        println!("| {share:.2} | {learned_accuracy:.3} | {rule_accuracy:.3} | {random_accuracy:.3} | {:+.3} ({low:+.3} to {high:+.3}) |", learned_accuracy - random_accuracy);
    }
    Ok(())
}

/// The two kinds' whole-query gains as a query-level router on a mixed workload (gsm8k and
/// mmlu-stem dev questions together): at each share of questions on the cloud, the kind with the
/// larger gain goes first (within a kind, at random), against random routing of all at the same
/// share. Exact expected accuracies from both sides' recorded answers, paired bootstrap interval.
fn mixed_workload(open: &[Paired], choice: &[Paired], open_gain: f64, choice_gain: f64) {
    if open.is_empty() || choice.is_empty() {
        return;
    }
    let total = (open.len() + choice.len()) as f64;
    let (first, second) = if open_gain >= choice_gain { (open, choice) } else { (choice, open) };
    println!(
        "\nmixed workload, {} gsm8k (open, gain {open_gain:.3}) and {} mmlu-stem (multiple choice, gain {choice_gain:.3}) dev questions:",
        open.len(),
        choice.len()
    );
    println!("| cloud share | the larger gain first | random | difference (95% CI) |\n|---|---|---|---|");
    for share in [0.25, 0.5, 0.75] {
        let on_cloud = share * total;
        let first_share = (on_cloud / first.len() as f64).min(1.0);
        let second_share = ((on_cloud - first.len() as f64).max(0.0) / second.len() as f64).min(1.0);
        let expect = |rows: &[Paired], share: f64| rows.iter().map(|p| at_random(share, p.edge_right, p.cloud_right)).collect::<Vec<f64>>();
        let by_kind: Vec<f64> = [expect(first, first_share), expect(second, second_share)].concat();
        let random: Vec<f64> = [expect(first, share), expect(second, share)].concat();
        let differences: Vec<f64> = by_kind.iter().zip(&random).map(|(k, r)| k - r).collect();
        let (low, high) = bootstrap_interval(&differences);
        println!("| {share:.2} | {:.3} | {:.3} | {:+.3} ({low:+.3} to {high:+.3}) |", mean(&by_kind), mean(&random), mean(&differences));
    }
}

/// Gains at which the dev check escalates (the router's threshold runs from 0.15 up as budgets are
/// used).
const ESCALATION_THRESHOLDS: [f64; 7] = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65];

/// What training found for a kind of question's escalation model.
enum EscalationFit {
    /// Too few train questions: the weights keep the model they have.
    TooFew,
    /// On train the confidence does not tell right edge answers from wrong ones (the 95 %
    /// interval of its ROC AUC holds 0.5): no model, so that kind's answers are not escalated.
    NoSignal,
    Fitted(EscalationModel),
}

/// Fits the escalation model on the SDK's offline edge answers on train (their confidence, and
/// whether they and the cloud's chain-of-thought were right), then shows on dev what it escalates
/// at several thresholds against the SDK's own cloud answers.
fn fit_escalation(dataset: Dataset, train: &Path, dev: &Path, data: &Path) -> Result<EscalationFit> {
    let calls = |results: &Path| results.with_file_name("calls.jsonl");
    let train_pairing = Pairing { edge: "hybridflow-offline", cloud: "cloud-cot" };
    let questions = load_questions(dataset, "train", (train, &calls(train)), data, train_pairing)?;
    if questions.len() < 20 {
        println!("escalation: {} train questions have an offline SDK answer with log-probabilities; too few to fit, the weights keep theirs", questions.len());
        return Ok(EscalationFit::TooFew);
    }
    cascade_signal::describe("\nescalation, train", &questions);
    let confidence: Vec<f64> = questions.iter().map(cascade_signal::Question::confidence).collect();
    let (auc, (low, high)) = auc_with_interval(&confidence, &questions.iter().map(|q| q.edge_right).collect::<Vec<_>>());
    println!("ROC AUC of the confidence for \"the edge is right\" on train: {auc:.3} ({low:.3} to {high:.3})");
    if (low..=high).contains(&0.5) {
        println!("escalation: no signal on train; {} answers are not escalated", dataset.name());
        return Ok(EscalationFit::NoSignal);
    }
    let fit = |label: fn(&cascade_signal::Question) -> bool| Logistic::fit(&confidence, &questions.iter().map(label).collect::<Vec<_>>()).context("the escalation model cannot be fitted on this data");
    let model = EscalationModel {
        edge_right: fit(|q| q.edge_right)?,
        cloud_right: fit(|q| q.cloud_right)?,
        measured_on: format!(
            "{} train, {} questions: the SDK's offline edge answers (Qwen2.5-Coder-0.5B, `hybridflow-offline`) and cloud Qwen2.5-Coder-1.5B chain-of-thought (docs/bench/{0}-train); `cargo xtask train-query-router`",
            dataset.name(),
            questions.len()
        ),
    };
    println!("escalation model: P(edge right) = σ({:.3} + {:.3}·c), P(cloud right) = σ({:.3} + {:.3}·c), c = mean token log-probability", model.edge_right.bias, model.edge_right.slope, model.cloud_right.bias, model.cloud_right.slope);

    let dev_pairing = Pairing { edge: "hybridflow-offline", cloud: "hybridflow-default" };
    let dev_questions = load_questions(dataset, "dev", (dev, &calls(dev)), data, dev_pairing).unwrap_or_default();
    if dev_questions.len() < 20 {
        println!("escalation, dev: {} questions with offline SDK answers; no check", dev_questions.len());
        return Ok(EscalationFit::Fitted(model));
    }
    cascade_signal::describe("escalation, dev (cloud: the SDK's own answer)", &dev_questions);
    let dev_confidence: Vec<f64> = dev_questions.iter().map(cascade_signal::Question::confidence).collect();
    let (auc, (low, high)) = auc_with_interval(&dev_confidence, &dev_questions.iter().map(|q| q.edge_right).collect::<Vec<_>>());
    println!("ROC AUC of the confidence for \"the edge is right\" on dev: {auc:.3} ({low:.3} to {high:.3})");
    println!("\n| escalate when the gain exceeds | share to the cloud | cloud tokens (× the SDK's cloud answer) | accuracy | − random at that share (95 % CI) | − the SDK's cloud answer |\n|---|---|---|---|---|---|");
    for threshold in ESCALATION_THRESHOLDS {
        let escalated: Vec<bool> = dev_confidence.iter().map(|c| model.gain(*c) > threshold).collect();
        println!("| {threshold:.2} | {} |", cascade_row(&dev_questions, &escalated));
    }
    Ok(EscalationFit::Fitted(model))
}
