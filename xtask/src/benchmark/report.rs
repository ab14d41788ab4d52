//! The results file → a Markdown report with one table per dataset, the headline ratios against
//! cloud-only chain-of-thought, and SVG plots (accuracy vs cloud tokens, vs measured latency, vs
//! modeled deployment latency).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};

use super::calls::{CallLog, CallRecord};
use super::datasets::{self, Dataset, Item};
use super::latency::{self, Profile};
use super::scoring;
use hybridflow_core::exec::prompts::task_of_step;
use hybridflow_core::model::Side;
use hybridflow_core::plan::{parse::parse_plan, validate::validate, planner::PlannerConfig};
use super::{monthly_token_budget, Record, RETIRED_STRATEGIES, STRATEGIES};
use crate::statistics::{bootstrap_interval, mean, quantile};

/// `a` minus `b` in accuracy over the questions both answered: the mean of the per-question
/// differences and its 95% bootstrap interval.
#[derive(Debug)]
pub struct PairedDifference {
    pub n: usize,
    pub mean: f64,
    pub interval: (f64, f64),
}

/// The results of `a` and of `b` on the questions both answered, in `a`'s order: statistics that
/// compare two strategies are read over the same questions.
fn on_common_questions<'r>(a: &[&'r Record], b: &[&'r Record]) -> (Vec<&'r Record>, Vec<&'r Record>) {
    let b_by_id: BTreeMap<&str, &Record> = b.iter().map(|r| (r.id.as_str(), *r)).collect();
    a.iter().filter_map(|r| b_by_id.get(r.id.as_str()).map(|other| (*r, *other))).unzip()
}

impl PairedDifference {
    /// Over results paired by [`on_common_questions`] (the callers need the paired results for
    /// their other figures too).
    fn of(a: &[&Record], b: &[&Record]) -> Self {
        let differences: Vec<f64> = a.iter().zip(b).map(|(a, b)| f64::from(u8::from(a.correct)) - f64::from(u8::from(b.correct))).collect();
        Self { n: differences.len(), mean: mean(&differences), interval: bootstrap_interval(&differences) }
    }
}

/// A decomposing strategy's right answers and results by the side that made the plan (the
/// result's call with a JSON schema), cloud first: where the plan is made separates the results
/// more than how the subtasks are routed.
fn by_planning_side(rows: &[&Record], calls: &CallLog) -> [(usize, usize); 2] {
    let mut counts = [(0, 0); 2];
    for record in rows {
        let plan = record.timeline.iter().filter_map(|span| calls.get(&span.key)).find(|call| call.json_schema.is_some());
        if let Some(plan) = plan {
            let (right, all) = &mut counts[usize::from(plan.side == Side::Edge)];
            *right += usize::from(record.correct);
            *all += 1;
        }
    }
    counts
}

/// Where a decomposing result's plan has more than one step and exactly one final step (nothing
/// depends on it): that step's recorded result, the answer the result would have had without its
/// synthesis, and the cloud tokens its synthesis spent. `None` for every other result.
fn final_step_result(record: &Record, calls: &CallLog) -> Option<(String, u64)> {
    let recorded: Vec<CallRecord> = record.timeline.iter().filter_map(|span| calls.get(&span.key)).collect();
    let plan = recorded.iter().find(|call| call.json_schema.is_some())?;
    let plan = validate(parse_plan(&plan.text).ok()?, PlannerConfig::default().max_subtasks).ok()?;
    let last = plan.single_final_step().filter(|_| plan.subtasks.len() > 1)?;
    let result = recorded.iter().rev().find(|call| task_of_step(&call.messages) == Some(last.task.as_str()))?;
    // The synthesis starts after every step has finished: the last call of the timeline.
    let synthesis = recorded.last().filter(|call| call.side == Side::Cloud);
    Some((result.text.clone(), synthesis.map_or(0, |call| u64::from(call.prompt_tokens + call.completion_tokens))))
}

/// The dataset's questions of both splits by id, to score a counterfactual answer.
fn questions(dataset: Dataset, data_dir: &Path) -> Result<BTreeMap<String, Item>> {
    let mut by_id = BTreeMap::new();
    for split in ["dev", "train"] {
        if dataset.path(data_dir, split).exists() {
            by_id.extend(datasets::load(dataset, data_dir, split, usize::MAX)?.into_iter().map(|item| (item.id.clone(), item)));
        }
    }
    Ok(by_id)
}

/// Issue 15's lean pipeline: does the synthesis earn its cloud tokens where one step already
/// answers? From the record (that step's result scored as the answer) and from
/// `hybridflow-edge-synthesis` (the synthesis run on the edge there), against every step on the
/// cloud.
fn synthesis_line(dataset: &str, strategies: &BTreeMap<&str, Vec<&Record>>, calls: &CallLog, data_dir: &Path) -> Option<String> {
    let all_cloud = strategies.get("hybridflow-cloud-only")?;
    let mut line = format!("**The synthesis where one step answers ({dataset}):** ");
    match Dataset::parse(dataset).and_then(|parsed| Ok((parsed, questions(parsed, data_dir)?))) {
        Err(e) => line.push_str(&format!("the counterfactual needs the questions ({e:#})")),
        Ok((parsed, items)) => {
            let (mut with, mut without, mut synthesis_tokens) = (Vec::new(), Vec::new(), 0);
            for record in all_cloud {
                let (Some((text, tokens)), Some(item)) = (final_step_result(record, calls), items.get(&record.id)) else { continue };
                with.push(f64::from(u8::from(record.correct)));
                without.push(f64::from(u8::from(scoring::score(parsed, item, &text).0)));
                synthesis_tokens += tokens;
            }
            let differences: Vec<f64> = without.iter().zip(&with).map(|(a, b)| a - b).collect();
            let interval = bootstrap_interval(&differences);
            line.push_str(&format!(
                "hybridflow-cloud-only's plan had one final step on {} of {} questions; there its synthesis was right on {}, the final step's own result (the answer without a synthesis, scored from the record) on {}: {:+.1} points (95% CI {:+.1} to {:+.1}), saving {:.0} cloud tokens a question",
                with.len(),
                all_cloud.len(),
                with.iter().sum::<f64>(),
                without.iter().sum::<f64>(),
                100.0 * mean(&differences),
                100.0 * interval.0,
                100.0 * interval.1,
                synthesis_tokens as f64 / with.len().max(1) as f64
            ));
        }
    }
    if let Some(on_edge) = strategies.get("hybridflow-edge-synthesis") {
        let (on_edge, all_cloud) = on_common_questions(on_edge, all_cloud);
        let paired = PairedDifference::of(&on_edge, &all_cloud);
        let tokens = |rows: &[&Record]| rows.iter().map(|r| r.cloud_tokens() as f64).sum::<f64>();
        line.push_str(&format!(
            "; hybridflow-edge-synthesis (that synthesis on the edge) vs hybridflow-cloud-only: {:+.1} points (95% CI {:+.1} to {:+.1}, paired over {} questions) at ×{:.2} its cloud tokens",
            100.0 * paired.mean,
            100.0 * paired.interval.0,
            100.0 * paired.interval.1,
            paired.n,
            tokens(&on_edge) / tokens(&all_cloud).max(1.0)
        ));
    }
    Some(line + ".")
}

pub struct Summary {
    pub n: usize,
    pub accuracy: f64,
    pub interval: (f64, f64),
    /// Measured latency over the results with no replayed call (NaN when there is none).
    pub latency_median: f64,
    pub latency_p90: f64,
    pub edge_tokens: f64,
    pub cloud_input: f64,
    pub cloud_output: f64,
    pub cost: f64,
    pub cloud_fraction: f64,
    /// Cloud tokens over all tokens (edge and cloud).
    pub cloud_token_share: f64,
    pub failures: usize,
    /// Questions whose response had no extractable answer.
    pub no_answer: usize,
    /// Questions where a call stopped at its token cap.
    pub hit_cap: usize,
    /// Questions with replayed calls (their latency excludes those calls).
    pub replayed: usize,
    /// Modeled deployment latency (median, p90), where the calls are in the record.
    pub modeled_median: f64,
    pub modeled_p90: f64,
}

/// A result's latency under `profile`, if every call behind it is in the record.
fn modeled(record: &Record, calls: &CallLog, profile: &Profile) -> Option<f64> {
    if record.timeline.is_empty() {
        return None;
    }
    let recorded: Option<Vec<CallRecord>> = record.timeline.iter().map(|span| calls.get(&span.key)).collect();
    let recorded = recorded?;
    Some(latency::modeled_latency(&record.timeline, |i| latency::call_seconds(profile, &recorded[i])))
}

pub fn summarise(records: &[&Record], modeled_latency: &dyn Fn(&Record) -> Option<f64>) -> Summary {
    let n = records.len();
    let correct: Vec<f64> = records.iter().map(|r| f64::from(u8::from(r.correct))).collect();
    // A replayed call takes no time, so measured latency is read only where every call ran.
    let latency: Vec<f64> = records.iter().filter(|r| r.replayed_calls == 0).map(|r| r.latency_s).collect();
    let modeled: Vec<f64> = records.iter().filter_map(|r| modeled_latency(r)).collect();
    let mean = |f: &dyn Fn(&Record) -> f64| records.iter().map(|r| f(r)).sum::<f64>() / n.max(1) as f64;
    let (steps, cloud_steps) = records.iter().fold((0usize, 0usize), |(s, c), r| {
        if r.subtasks > 0 {
            (s + r.subtasks, c + r.subtasks_on_cloud)
        } else {
            (s + 1, c + usize::from(r.cloud_output_tokens > 0))
        }
    });
    Summary {
        n,
        accuracy: mean(&|r| f64::from(u8::from(r.correct))),
        interval: bootstrap_interval(&correct),
        latency_median: quantile(&latency, 0.5),
        latency_p90: quantile(&latency, 0.9),
        edge_tokens: mean(&|r| r.edge_tokens as f64),
        cloud_input: mean(&|r| r.cloud_input_tokens as f64),
        cloud_output: mean(&|r| r.cloud_output_tokens as f64),
        cost: records.iter().map(|r| r.cloud_cost).sum(),
        cloud_fraction: cloud_steps as f64 / steps.max(1) as f64,
        cloud_token_share: cloud_token_share(records),
        failures: records.iter().filter(|r| r.error.is_some() || r.failed_subtasks > 0).count(),
        no_answer: records.iter().filter(|r| r.extracted.is_empty()).count(),
        hit_cap: records.iter().filter(|r| r.hit_token_cap).count(),
        replayed: records.iter().filter(|r| r.replayed_calls > 0).count(),
        modeled_median: quantile(&modeled, 0.5),
        modeled_p90: quantile(&modeled, 0.9),
    }
}

/// Cloud tokens over all tokens of the results.
fn cloud_token_share(records: &[&Record]) -> f64 {
    let cloud: u64 = records.iter().map(|r| r.cloud_tokens()).sum();
    let edge: u64 = records.iter().map(|r| r.edge_tokens).sum();
    cloud as f64 / (cloud + edge).max(1) as f64
}

/// Seconds for the table, a dash where nothing was measured.
fn seconds(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.1}")
    } else {
        "–".into()
    }
}

/// Lines drawn through some of a plot's points, by strategy name in order.
struct Lines<'a> {
    /// The SDK's budget sweep: offline, each monthly limit by rising size, no limit.
    sweep: &'a [&'a str],
    /// Dashed from the first to the second point: the expected accuracy of sending a random share
    /// of whole questions to the cloud (on the cloud-token axis only, where it is a straight line).
    edge_to_cloud: Option<(&'a str, &'a str)>,
}

/// One scatter plot: a point per strategy, labelled, and the lines through them.
fn scatter(title: &str, x_label: &str, points: &[(String, f64, f64)], lines: &Lines<'_>) -> String {
    let (width, height, margin) = (640.0, 420.0, 60.0);
    let x_max = points.iter().map(|p| p.1).fold(1e-9, f64::max) * 1.1;
    let x = |v: f64| margin + v / x_max * (width - 2.0 * margin);
    let y = |v: f64| height - margin - v * (height - 2.0 * margin);
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#);
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="20" font-size="14" text-anchor="middle">{title}</text>"#, width / 2.0);
    let _ = write!(svg, r#"<line x1="{margin}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/><line x1="{margin}" y1="{margin}" x2="{margin}" y2="{0}" stroke="black"/>"#, height - margin, width - margin);
    let _ = write!(svg, r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text><text x="15" y="{}" transform="rotate(-90 15 {})" text-anchor="middle">accuracy</text>"#, width / 2.0, height - 20.0, height / 2.0, height / 2.0);
    for tick in 0..=4 {
        let value = f64::from(tick) / 4.0;
        let _ = write!(svg, r#"<text x="{}" y="{}" text-anchor="end">{value:.2}</text>"#, margin - 5.0, y(value) + 4.0);
        let _ = write!(svg, r#"<text x="{}" y="{}" text-anchor="middle">{:.0}</text>"#, x(x_max * value), height - margin + 15.0, x_max * value);
    }
    let at = |name: &str| points.iter().find(|(label, _, _)| label == name).map(|(_, px, py)| (x(*px), y(*py)));
    if let Some(((x1, y1), (x2, y2))) = lines.edge_to_cloud.and_then(|(from, to)| Some((at(from)?, at(to)?))) {
        let _ = write!(svg, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="gray" stroke-dasharray="4 4"/>"#);
        let _ = write!(svg, r#"<text x="{}" y="52" fill="gray">dashed: a random share of questions to the cloud</text>"#, margin + 5.0);
    }
    let sweep: Vec<String> = lines.sweep.iter().filter_map(|name| at(name)).map(|(px, py)| format!("{px:.1},{py:.1}")).collect();
    if sweep.len() > 1 {
        let _ = write!(svg, r#"<polyline points="{}" fill="none" stroke="darkorange" stroke-width="2"/>"#, sweep.join(" "));
        let _ = write!(svg, r#"<text x="{}" y="38" fill="darkorange">the SDK's budget sweep (offline, monthly limits, no limit)</text>"#, margin + 5.0);
    }
    for (label, px, py) in points {
        let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="steelblue"/><text x="{:.1}" y="{:.1}">{label}</text>"#, x(*px), y(*py), x(*px) + 6.0, y(*py) - 6.0);
    }
    svg.push_str("</svg>\n");
    svg
}

pub fn run(results: &Path, calls: &Path, data_dir: &Path, out_dir: &Path, command: &str) -> Result<()> {
    let records: Vec<Record> = std::io::BufReader::new(std::fs::File::open(results).with_context(|| format!("reading {}", results.display()))?)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let call_log = CallLog::open(calls)?;
    // The test bed's speeds from every call behind the results, each once: a call replayed by
    // several results would otherwise weigh as many times, and the speeds would move whenever
    // results are added or removed.
    let keys: std::collections::BTreeSet<&str> = records.iter().flat_map(|r| r.timeline.iter().map(|span| span.key.as_str())).collect();
    let recorded: Vec<CallRecord> = keys.into_iter().filter_map(|key| call_log.get(key)).collect();
    let test_bed = latency::test_bed(&recorded);
    let deployment = latency::PHONE_AND_HOSTED;
    let modeled_deployment = |r: &Record| modeled(r, &call_log, &deployment);
    std::fs::create_dir_all(out_dir)?;
    let mut by_dataset: BTreeMap<&str, BTreeMap<&str, Vec<&Record>>> = BTreeMap::new();
    for record in &records {
        by_dataset.entry(record.dataset.as_str()).or_default().entry(record.strategy.as_str()).or_default().push(record);
    }
    let commits: std::collections::BTreeSet<&str> = records.iter().map(|r| r.commit.as_str()).collect();
    let mut md = String::from("# Benchmark results\n\n");
    let _ = writeln!(md, "Produced by `{command}` from `{}` (commits: {}).\n", results.display(), commits.into_iter().collect::<Vec<_>>().join(", "));
    // Every call ever made is in the record once (replays are not): their time is what the
    // benchmark cost, including calls of results since removed and run again.
    let made: Vec<CallRecord> = std::io::BufReader::new(std::fs::File::open(calls)?).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect();
    let hours = |side: Side| made.iter().filter(|c| c.side == side).map(|c| c.total_ms).sum::<f64>() / 3_600_000.0;
    let _ = writeln!(
        md,
        "Cost of the benchmark so far: {} model calls in the call record, {:.1} h on the edge and {:.1} h on the cloud (each call's measured time; edge and cloud ran on their own cores, at once in the decomposing strategies; model loading not counted).\n",
        made.len(),
        hours(Side::Edge),
        hours(Side::Cloud)
    );
    // The latency model, validated: the test bed's own speeds against the measured wall time, on
    // the results whose calls all ran (none replayed).
    let validated: Vec<(&str, f64)> = records
        .iter()
        .filter(|r| r.replayed_calls == 0 && r.latency_s > 0.0)
        .filter_map(|r| modeled(r, &call_log, &test_bed).map(|m| (r.strategy.as_str(), (m - r.latency_s) / r.latency_s)))
        .collect();
    let errors: Vec<f64> = validated.iter().map(|(_, e)| *e).collect();
    let absolute: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    let _ = writeln!(
        md,
        "Modeled latency: each question's calls on their recorded timeline, each lasting what its tokens take under a profile (`xtask/src/benchmark/latency.rs`). Deployment profile **{}**: edge prefill {:.0} and decode {:.0} tokens/s, cloud {:.2} s to the first token plus the prompt at {:.0} tokens/s, then {:.0} tokens/s. Validation with this test bed's own measured speeds (edge prefill {:.0}, decode {:.1} tokens/s; cloud {:.2} s to the first token plus the prompt at {:.0} tokens/s (fitted), then {:.1} tokens/s) against the measured wall time on {} results with no replayed call: median error {:+.1}%, median absolute error {:.1}%, worst {:.1}%.\n",
        deployment.name, deployment.edge_prefill_tps, deployment.edge_decode_tps, deployment.cloud_first_token_s, deployment.cloud_prefill_tps, deployment.cloud_decode_tps,
        test_bed.edge_prefill_tps, test_bed.edge_decode_tps, test_bed.cloud_first_token_s, test_bed.cloud_prefill_tps, test_bed.cloud_decode_tps,
        errors.len(), 100.0 * quantile(&errors, 0.5), 100.0 * quantile(&absolute, 0.5), 100.0 * absolute.iter().copied().fold(f64::NAN, f64::max)
    );
    // Where the error comes from: a strategy whose calls shared the machine with other work is
    // slower than the speeds measured over the whole record, which the model cannot know.
    let mut by_strategy: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    validated.iter().for_each(|(strategy, error)| by_strategy.entry(strategy).or_default().push(*error));
    let per_strategy: Vec<String> = by_strategy.iter().map(|(strategy, errors)| format!("{strategy} {:+.1}% ({})", 100.0 * quantile(errors, 0.5), errors.len())).collect();
    let _ = writeln!(md, "Median error of that validation by strategy (results): {}.\n", per_strategy.join(", "));
    md.push_str("Accuracy with its 95% bootstrap interval; latency per question end to end (s), median interpolated, measured over the results with no replayed call (– where every result has one); tokens are means per question; cost is the total at the configured price; cloud share by steps = steps (or single calls) run on the cloud, by tokens = cloud tokens over all tokens; failures = questions with an error or a failed subtask; no answer = no answer could be extracted from the response; at cap = a call stopped at its token limit; replayed = questions with calls served from the call record, whose latency excludes those calls.\n\n");
    for (dataset, strategies) in &by_dataset {
        let _ = writeln!(md, "## {dataset}\n");
        md.push_str("| strategy | n | accuracy (95% CI) | latency median / p90 s | modeled median / p90 s | edge tokens | cloud in / out tokens | cost | cloud share steps / tokens | failures | no answer | at cap | replayed |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        let mut token_points = Vec::new();
        let mut latency_points = Vec::new();
        let mut modeled_points = Vec::new();
        // The fixed strategies in their order, then the budget sweep by rising budget.
        let mut budgeted: Vec<&str> = strategies.keys().copied().filter(|s| monthly_token_budget(s).is_some()).collect();
        budgeted.sort_by_key(|s| monthly_token_budget(s));
        let in_order: Vec<&str> = STRATEGIES.iter().chain(&RETIRED_STRATEGIES).copied().chain(budgeted.iter().copied()).collect();
        let summaries: BTreeMap<&str, Summary> = strategies.iter().map(|(name, rows)| (*name, summarise(rows, &modeled_deployment))).collect();
        for &strategy in &in_order {
            let Some(s) = summaries.get(strategy) else { continue };
            let _ = writeln!(
                md,
                "| {strategy} | {} | {:.3} ({:.3}–{:.3}) | {} / {} | {} / {} | {:.0} | {:.0} / {:.0} | {:.5} | {:.2} / {:.2} | {} | {} | {} | {} |",
                s.n, s.accuracy, s.interval.0, s.interval.1, seconds(s.latency_median), seconds(s.latency_p90), seconds(s.modeled_median), seconds(s.modeled_p90), s.edge_tokens, s.cloud_input, s.cloud_output, s.cost, s.cloud_fraction, s.cloud_token_share, s.failures, s.no_answer, s.hit_cap, s.replayed
            );
            token_points.push((strategy.to_string(), s.cloud_input + s.cloud_output, s.accuracy));
            if s.latency_median.is_finite() {
                latency_points.push((strategy.to_string(), s.latency_median, s.accuracy));
            }
            if s.modeled_median.is_finite() {
                modeled_points.push((strategy.to_string(), s.modeled_median, s.accuracy));
            }
        }
        let headlines = ["hybridflow-default", "hybridflow-decomposed", "hybridflow-cloud-only", "hybridflow-edge-synthesis", "hybridflow-learned"].into_iter().chain(budgeted.iter().copied());
        for (hybrid_name, hybrid) in headlines.filter_map(|name| strategies.get(name).map(|rows| (name, rows))) {
            let Some(cloud) = strategies.get("cloud-cot") else { break };
            // Every ratio over the questions both ran: a strategy run on part of the dataset
            // is compared with cloud CoT on that part.
            let (hybrid, cloud) = on_common_questions(hybrid, cloud);
            let (h, c) = (summarise(&hybrid, &modeled_deployment), summarise(&cloud, &modeled_deployment));
            let paired = PairedDifference::of(&hybrid, &cloud);
            // Measured medians over different subsets of questions do not compare: only when
            // most results of both ran every call.
            let measured = if 2 * h.replayed <= h.n && 2 * c.replayed <= c.n {
                format!("×{:.2} measured", h.latency_median / c.latency_median)
            } else {
                format!("not measured ({} and {} of the results have replayed calls)", h.replayed, c.replayed)
            };
            let _ = writeln!(
                md,
                "\n**Headline ({dataset}):** {hybrid_name} vs cloud-only chain-of-thought: median latency {measured}, ×{:.2} modeled ({}), cloud tokens ×{:.2}, accuracy {:+.1} points (95% CI {:+.1} to {:+.1}, paired over {} questions).\n",
                h.modeled_median / c.modeled_median,
                deployment.name,
                (h.cloud_input + h.cloud_output) / (c.cloud_input + c.cloud_output).max(1e-9),
                100.0 * paired.mean,
                100.0 * paired.interval.0,
                100.0 * paired.interval.1,
                paired.n
            );
        }
        // Issue 15's test of the subtask router: it must beat the best zero-parameter rule and
        // random routing at its cloud-token share on the questions all of them ran. For each
        // router the SDK has shipped: the retired learned model (random was matched to it), the
        // final-steps rule that plans on the cloud (shipped on 2026-11-27) and the SDK's router
        // now. Against every step on the cloud: how much of decomposition's ceiling each keeps.
        for router_name in ["hybridflow-learned", "hybridflow-cloud-plan-rule", "hybridflow-decomposed"] {
            let Some(router) = strategies.get(router_name) else { continue };
            let comparisons: Vec<String> = ["hybridflow-random", "hybridflow-final-steps-rule", "hybridflow-cloud-plan-rule", "hybridflow-cloud-only"]
                .into_iter()
                .filter(|name| *name != router_name)
                .filter_map(|name| strategies.get(name).map(|rows| (name, rows)))
                .map(|(name, rows)| {
                    let (router, rows) = on_common_questions(router, rows);
                    let paired = PairedDifference::of(&router, &rows);
                    format!(
                        "vs {name} {:+.1} points (95% CI {:+.1} to {:+.1}, paired over {} questions; cloud-token share {:.2} against {:.2})",
                        100.0 * paired.mean,
                        100.0 * paired.interval.0,
                        100.0 * paired.interval.1,
                        paired.n,
                        cloud_token_share(&router),
                        cloud_token_share(&rows)
                    )
                })
                .collect();
            if !comparisons.is_empty() {
                let _ = writeln!(md, "\n**The subtask router ({router_name}) against its baselines ({dataset}):** accuracy {}.\n", comparisons.join("; "));
            }
        }
        let planning: Vec<String> = in_order
            .iter()
            .filter_map(|&name| strategies.get(name).map(|rows| (name, by_planning_side(rows, &call_log))))
            .filter(|(_, [cloud, edge])| cloud.1 + edge.1 > 0)
            .map(|(name, [cloud, edge])| format!("{name}: planned on the cloud {} of {} right, on the edge {} of {}", cloud.0, cloud.1, edge.0, edge.1))
            .collect();
        if !planning.is_empty() {
            let _ = writeln!(md, "\n**Where the plan was made ({dataset}):** {}.\n", planning.join("; "));
        }
        if let Some(line) = synthesis_line(dataset, strategies, &call_log, data_dir) {
            let _ = writeln!(md, "\n{line}\n");
        }
        let sweep: Vec<&str> = ["hybridflow-offline"].into_iter().chain(budgeted.iter().copied()).chain(["hybridflow-default"]).collect();
        let on_tokens = Lines { sweep: &sweep, edge_to_cloud: Some(("edge-cot", "cloud-cot")) };
        let on_latency = Lines { sweep: &sweep, edge_to_cloud: None };
        for (name, title, label, points, lines) in [
            ("tokens", "accuracy vs cloud tokens per question", "cloud tokens per question", &token_points, &on_tokens),
            ("latency", "accuracy vs median latency", "median latency (s)", &latency_points, &on_latency),
            ("modeled-latency", "accuracy vs modeled deployment latency", "median modeled latency (s)", &modeled_points, &on_latency),
        ] {
            if points.is_empty() {
                continue;
            }
            let file = format!("{dataset}-{name}.svg");
            std::fs::write(out_dir.join(&file), scatter(&format!("{dataset}: {title}"), label, points, lines))?;
            let _ = writeln!(md, "![{dataset}: {title}]({file})\n");
        }
    }
    std::fs::write(out_dir.join("README.md"), md)?;
    eprintln!("report written to {}", out_dir.join("README.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benchmark::datasets::Item;
    use crate::benchmark::record_from_totals;
    use hybridflow_core::exec::Totals;

    #[test]
    fn a_paired_difference_counts_only_the_questions_both_answered() {
        let answer = |id: &str, correct: bool| {
            let item = Item { id: id.into(), question: String::new(), answer: String::new(), answer_id: None };
            Record { correct, ..record_from_totals(&item, "s", &Totals::default(), std::time::Duration::ZERO) }
        };
        let a = [answer("q1", true), answer("q2", true), answer("q3", false), answer("only-a", true)];
        let b = [answer("q1", false), answer("q2", true), answer("q3", true), answer("only-b", false)];
        let paired_of = |a: &[&Record], b: &[&Record]| {
            let (a, b) = on_common_questions(a, b);
            PairedDifference::of(&a, &b)
        };
        let paired = paired_of(&a.iter().collect::<Vec<_>>(), &b.iter().collect::<Vec<_>>());
        assert_eq!(paired.n, 3);
        assert!(paired.mean.abs() < 1e-12, "one won, one lost, one tied");
        assert!(paired.interval.0 < 0.0 && paired.interval.1 > 0.0, "{paired:?}");
        let better = paired_of(&a.iter().collect::<Vec<_>>(), &[&answer("q1", false), &answer("q2", false)]);
        assert_eq!((better.n, better.mean), (2, 1.0));
    }

    #[test]
    fn the_budget_sweep_is_drawn_through_its_points_in_order() {
        let points: Vec<(String, f64, f64)> = [("edge-cot", 0.0, 0.3), ("cloud-cot", 400.0, 0.6), ("hybridflow-offline", 0.0, 0.3), ("hybridflow-budget-10000", 40.0, 0.33), ("hybridflow-default", 400.0, 0.6)]
            .iter()
            .map(|(name, x, y)| (name.to_string(), *x, *y))
            .collect();
        let sweep = ["hybridflow-offline", "hybridflow-budget-10000", "hybridflow-budget-25000", "hybridflow-default"];
        let svg = scatter("t", "x", &points, &Lines { sweep: &sweep, edge_to_cloud: Some(("edge-cot", "cloud-cot")) });
        let polyline = svg.split("<polyline points=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
        let xs: Vec<f64> = polyline.split(' ').map(|p| p.split(',').next().unwrap().parse().unwrap()).collect();
        assert_eq!(xs.len(), 3, "the missing budget is skipped: {polyline}");
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "offline, then the budget, then no limit: {polyline}");
        assert!(svg.contains("stroke-dasharray"));
        let without = scatter("t", "x", &points[..2], &Lines { sweep: &sweep, edge_to_cloud: None });
        assert!(!without.contains("<polyline") && !without.contains("stroke-dasharray"));
    }

    #[test]
    fn results_are_counted_by_the_side_that_made_their_plan() {
        let path = std::env::temp_dir().join(format!("hybridflow-report-calls-{}.jsonl", std::process::id()));
        let call = |key: &str, side: Side, plan: bool| CallRecord {
            key: key.into(),
            messages: vec![hybridflow_core::model::Message::user("q")],
            json_schema: plan.then(|| serde_json::json!({"type": "object"})),
            ..CallRecord::for_test(side)
        };
        let lines: Vec<String> = [call("cloud-plan", Side::Cloud, true), call("edge-plan", Side::Edge, true), call("edge-step", Side::Edge, false)]
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let calls = CallLog::open(&path).unwrap();
        let result = |id: &str, correct: bool, keys: &[&str]| {
            let item = Item { id: id.into(), question: String::new(), answer: String::new(), answer_id: None };
            let timeline = keys.iter().map(|k| crate::benchmark::calls::CallSpan { key: (*k).into(), side: Side::Edge, start_s: 0.0, end_s: 0.0, replayed: false }).collect();
            Record { correct, timeline, ..record_from_totals(&item, "s", &Totals::default(), std::time::Duration::ZERO) }
        };
        let rows = [result("q1", true, &["cloud-plan", "edge-step"]), result("q2", false, &["edge-step", "edge-plan"]), result("q3", true, &["edge-plan"]), result("direct", true, &["edge-step"])];
        let counts = by_planning_side(&rows.iter().collect::<Vec<_>>(), &calls);
        let _ = std::fs::remove_file(&path);
        assert_eq!(counts, [(1, 1), (1, 2)], "cloud: 1 of 1 right; edge: 1 of 2; an unplanned result counts nowhere");
    }

    #[test]
    fn without_the_synthesis_the_answer_is_the_one_final_steps_result() {
        use hybridflow_core::exec::prompts::{step_messages, synthesis_messages};
        use hybridflow_core::plan::Subtask;
        let path = std::env::temp_dir().join(format!("hybridflow-report-final-step-{}.jsonl", std::process::id()));
        let plan_call = |key: &str, plan: &str| CallRecord { key: key.into(), json_schema: Some(serde_json::json!({"type": "object"})), text: plan.into(), ..CallRecord::for_test(Side::Cloud) };
        let step = |key: &str, subtask: &Subtask, text: &str| CallRecord {
            key: key.into(),
            messages: step_messages("Q?", subtask, &[] as &[(&Subtask, &str)], &[] as &[(&Subtask, &str)], 0),
            text: text.into(),
            ..CallRecord::for_test(Side::Cloud)
        };
        let (first, last) = (Subtask::new("s1", "Find the price", &[]), Subtask::new("s2", "Add the tax", &["s1"]));
        let synthesis = CallRecord { key: "synthesis".into(), messages: synthesis_messages("Q?", &[]), prompt_tokens: 300, completion_tokens: 20, ..CallRecord::for_test(Side::Cloud) };
        let chain = r#"{"subtasks":[{"id":"s1","task":"Find the price","depends_on":[]},{"id":"s2","task":"Add the tax","depends_on":["s1"]}]}"#;
        let fork = r#"{"subtasks":[{"id":"s1","task":"Find the price","depends_on":[]},{"id":"s2","task":"Add the tax","depends_on":[]}]}"#;
        let records = [plan_call("chain", chain), plan_call("fork", fork), step("s1", &first, "10"), step("s2", &last, "Answer: 11"), synthesis];
        std::fs::write(&path, records.iter().map(|c| serde_json::to_string(c).unwrap() + "\n").collect::<String>()).unwrap();
        let calls = CallLog::open(&path).unwrap();
        let result = |keys: &[&str]| {
            let item = Item { id: "q".into(), question: String::new(), answer: String::new(), answer_id: None };
            let timeline = keys.iter().map(|k| crate::benchmark::calls::CallSpan { key: (*k).into(), side: Side::Cloud, start_s: 0.0, end_s: 0.0, replayed: false }).collect();
            Record { timeline, ..record_from_totals(&item, "s", &Totals::default(), std::time::Duration::ZERO) }
        };
        let chained = final_step_result(&result(&["chain", "s1", "s2", "synthesis"]), &calls);
        let forked = final_step_result(&result(&["fork", "s1", "s2", "synthesis"]), &calls);
        let _ = std::fs::remove_file(&path);
        assert_eq!(chained, Some(("Answer: 11".to_string(), 320)), "the last step's text and the synthesis' cloud tokens");
        assert_eq!(forked, None, "two final steps: the synthesis has something to combine");
    }
}
