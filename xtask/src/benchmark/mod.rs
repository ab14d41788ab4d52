//! The benchmark: one dataset through every strategy with the same models and prompts, one JSON
//! line per (question, strategy) appended to the results file, so an interrupted run resumes
//! where it stopped. Every model call goes through the call record ([`calls`]): greedy calls seen
//! before are replayed, and each result lists the calls behind it. `report` turns the results
//! into the Markdown report and its plots.

pub mod calls;
pub mod datasets;
pub mod latency;
pub mod report;
pub mod scoring;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hybridflow_core::device::{AppPolicy, DeviceState, Network};
use hybridflow_core::exec::{Decomposition, EventSink, ExecConfig, Models, Scheduler, Totals};
use hybridflow_core::guard::{Budgets, CloudGuard, Ledger, Limits};
use hybridflow_core::model::cloud::{CloudConfig, CloudModel, Price};
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel};
use hybridflow_core::model::{catalog, ChatModel, ChatRequest, Message, Side};
use hybridflow_core::route::router::{LearnedRouter, RouterConfig};
use hybridflow_core::route::{ByDifficulty, Fixed, RouteDecision, RoutePolicy, RouteRequest, Step};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use datasets::{Dataset, Item};

/// Query-level routing of the RouteLLM kind is not among them: it needs no run of its own, as a
/// whole-query router's result is the chosen side's chain-of-thought result, already recorded for
/// both sides (`cargo xtask train-query-router` scores it exactly).
pub const STRATEGIES: [&str; 16] = [
    "edge-direct",
    "edge-cot",
    "cloud-direct",
    "cloud-cot",
    "edge-cascade",
    "hybridflow-default",
    "hybridflow-offline",
    "hybridflow-final-steps-rule",
    "hybridflow-cloud-plan-rule",
    "hybridflow-decomposed",
    "hybridflow-threshold",
    "hybridflow-random",
    "hybridflow-chained",
    "hybridflow-edge-only",
    "hybridflow-cloud-only",
    "hybridflow-edge-synthesis",
];

const DIRECT: &str = "Answer with the final answer only, on one line, with no explanation.";
const COT: &str = "Think step by step, briefly. End with a last line of the form 'Answer: <final answer>'.";
/// Token cap of a single chain-of-thought call, set from measured answer lengths so the cap does
/// not decide a baseline (docs/benchmarks.md): the longest measured answer on gsm8k and mmlu-stem
/// is 761 tokens; at 384, cloud CoT stopped at the cap on 23 of 200 gsm8k questions.
const CHAIN_OF_THOUGHT_MAX_TOKENS: u32 = 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub dataset: String,
    pub id: String,
    pub strategy: String,
    pub correct: bool,
    pub extracted: String,
    pub latency_s: f64,
    pub edge_tokens: u64,
    pub cloud_input_tokens: u64,
    pub cloud_output_tokens: u64,
    pub cloud_cost: f64,
    pub subtasks: usize,
    pub subtasks_on_cloud: usize,
    pub failed_subtasks: usize,
    pub error: Option<String>,
    pub commit: String,
    /// The full response that was scored.
    #[serde(default)]
    pub response: String,
    /// The model calls behind this result (keys into the call record) and when they ran, in the
    /// order they started.
    #[serde(default)]
    pub timeline: Vec<calls::CallSpan>,
    /// Of those, how many were replayed from the record (their latency is the recorded one, not
    /// measured again: `latency_s` covers only what ran).
    #[serde(default)]
    pub replayed_calls: u64,
    /// Whether a call behind this result stopped at its token cap.
    #[serde(default)]
    pub hit_token_cap: bool,
}

impl Record {
    /// The cloud's input and output tokens.
    pub fn cloud_tokens(&self) -> u64 {
        self.cloud_input_tokens + self.cloud_output_tokens
    }
}

/// Sends each step to the cloud with a fixed probability, seeded by the query and the step, so
/// a rerun makes the same choices (the baseline for "is the learned router better than chance
/// at the same cloud fraction").
struct RandomRouter {
    cloud_fraction: f64,
}

impl RoutePolicy for RandomRouter {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision {
        let step = match request.step {
            Step::WholeQuery => "query".to_string(),
            Step::Escalation { .. } => "escalation".to_string(),
            Step::Plan => "plan".to_string(),
            Step::Subtask { subtask, .. } => subtask.id.clone(),
            Step::Synthesis { .. } => "synthesis".to_string(),
        };
        // FNV-1a of query and step, mapped to [0, 1).
        let hash = format!("{}\u{0}{step}", request.query).bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let draw = (hash >> 11) as f64 / (1u64 << 53) as f64;
        let side = if draw < self.cloud_fraction && request.cloud_available { Side::Cloud } else { Side::Edge };
        RouteDecision::new(side, format!("random draw {draw:.2} vs {:.2}", self.cloud_fraction))
    }
}

/// Cloud tokens and all tokens per strategy so far (the results file's and this run's): the random
/// baseline is matched to the subtask router's share of cloud tokens, not of steps (a plan or a
/// synthesis on the cloud costs many times a short step).
#[derive(Default)]
struct TokenShares(HashMap<String, (u64, u64)>);

impl TokenShares {
    fn add(&mut self, record: &Record) {
        let cloud = record.cloud_tokens();
        let (cloud_tokens, all_tokens) = self.0.entry(record.strategy.clone()).or_default();
        *cloud_tokens += cloud;
        *all_tokens += cloud + record.edge_tokens;
    }

    fn share(&self, strategy: &str) -> Option<f64> {
        self.0.get(strategy).filter(|(_, all)| *all > 0).map(|(cloud, all)| *cloud as f64 / *all as f64)
    }

    /// The random baseline's probability of sending a step to the cloud: the subtask router's
    /// cloud-token share so far (the retired learned router's where its results exist, as on
    /// gsm8k, else the shipped rule's), corrected by how far random's own share has fallen short
    /// of it (or gone past it), so that over a run the two shares meet.
    fn random_cloud_probability(&self) -> f64 {
        let target = self.share("hybridflow-learned").or_else(|| self.share("hybridflow-decomposed")).unwrap_or(0.5);
        let own = self.share("hybridflow-random").unwrap_or(target);
        (2.0 * target - own).clamp(0.0, 1.0)
    }
}

/// Strategies whose results stay in the record but can no longer run: `hybridflow-learned`
/// routed a plan's subtasks with the logistic subtask model the SDK shipped until it did no better
/// than random at its cloud share (docs/router.md); `hybridflow-random` is matched to its share.
pub const RETIRED_STRATEGIES: [&str; 1] = ["hybridflow-learned"];

/// The best zero-parameter rule found in the profiled data (docs/router.md: the last step on the
/// cloud scores as well as the learned router): the steps nothing depends on and the synthesis on
/// the cloud; every inner step on the edge; planning on `plan_on` (`hybridflow-final-steps-rule`
/// plans on the edge, `hybridflow-cloud-plan-rule` on the cloud, as the learned router does).
struct FinalStepsRule {
    plan_on: Side,
}

impl RoutePolicy for FinalStepsRule {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision {
        let (side, why) = match request.step {
            Step::WholeQuery => (Side::Cloud, "rule: an unplanned query"),
            Step::Escalation { .. } => (Side::Edge, "rule: the edge's answer stands"),
            Step::Plan => (self.plan_on, "rule: the planning side"),
            Step::Subtask { subtask, plan: Some(plan) } if plan.fan_out(&subtask.id) == 0 => (Side::Cloud, "rule: nothing depends on this step"),
            Step::Subtask { .. } => (Side::Edge, "rule: an inner step"),
            Step::Synthesis { .. } => (Side::Cloud, "rule: the synthesis"),
        };
        RouteDecision::new(side, why)
    }
}

/// Every step on the cloud, except a synthesis that only has one final step to restate: that one
/// on the edge (`hybridflow-edge-synthesis`, issue 15's lean pipeline: does the cloud's synthesis
/// earn its tokens when one step already answers?).
struct EdgeSynthesis;

impl RoutePolicy for EdgeSynthesis {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision {
        match request.step {
            Step::Synthesis { plan } if plan.single_final_step().is_some() => {
                RouteDecision::new(Side::Edge, "one final step: the synthesis on the edge")
            }
            _ => RouteDecision::new(Side::Cloud, "every other step on the cloud"),
        }
    }
}

/// HybridFlow as an app runs it: one engine for every question (router statistics and spending
/// carry over), the default configuration (decomposition off), state persisted
/// beside the results. `hybridflow-default` sets no budget; `hybridflow-budget-<tokens>` sets a
/// monthly cloud-token limit, so a run over the questions measures one point of the budget sweep;
/// `hybridflow-offline` is the default on a phone with no network: every answer is the edge's,
/// with its confidence recorded (the escalation model's training data).
struct DefaultEngine {
    scheduler: Scheduler,
}

/// The monthly cloud-token limit a `hybridflow-budget-<tokens>` strategy names.
pub fn monthly_token_budget(strategy: &str) -> Option<u64> {
    strategy.strip_prefix("hybridflow-budget-")?.parse().ok()
}

pub fn is_strategy(strategy: &str) -> bool {
    STRATEGIES.contains(&strategy) || monthly_token_budget(strategy).is_some()
}

fn unknown_strategy(strategy: &str) -> anyhow::Error {
    anyhow::anyhow!("unknown strategy {strategy}; known: {}, hybridflow-budget-<monthly cloud tokens>", STRATEGIES.join(", "))
}

fn record_from_totals(item: &Item, strategy: &str, totals: &Totals, latency: Duration) -> Record {
    Record {
        dataset: String::new(),
        id: item.id.clone(),
        strategy: strategy.into(),
        correct: false,
        extracted: String::new(),
        latency_s: latency.as_secs_f64(),
        edge_tokens: totals.edge.prompt_tokens + totals.edge.completion_tokens,
        cloud_input_tokens: totals.cloud.prompt_tokens,
        cloud_output_tokens: totals.cloud.completion_tokens,
        cloud_cost: totals.cloud_cost,
        subtasks: totals.subtasks,
        subtasks_on_cloud: totals.subtasks_on_cloud,
        failed_subtasks: totals.failed_subtasks,
        error: None,
        commit: String::new(),
        response: String::new(),
        timeline: Vec::new(),
        replayed_calls: 0,
        hit_token_cap: false,
    }
}

struct Bench {
    edge: Arc<dyn ChatModel>,
    cloud: Arc<dyn ChatModel>,
    price: Price,
    token_shares: TokenShares,
    dataset: Dataset,
    /// Where the default engine keeps its state (each budgeted engine: beside it, named for it).
    state_dir: std::path::PathBuf,
    default_engines: HashMap<String, DefaultEngine>,
}

impl Bench {
    /// The question with the instruction, capped for it.
    fn single_request(item: &Item, instruction: &str) -> ChatRequest {
        ChatRequest::new(vec![Message::user(format!("{}\n\n{instruction}", item.question))]).with_max_tokens(if instruction == DIRECT { 48 } else { CHAIN_OF_THOUGHT_MAX_TOKENS })
    }

    async fn single_call(&self, side: Side, item: &Item, instruction: &str, strategy: &str) -> (Record, String) {
        self.call(side, item, Self::single_request(item, instruction), strategy).await
    }

    async fn call(&self, side: Side, item: &Item, request: ChatRequest, strategy: &str) -> (Record, String) {
        let model = if side == Side::Edge { &self.edge } else { &self.cloud };
        let started = Instant::now();
        let mut totals = Totals::default();
        let outcome = match model.stream(request).await {
            Ok(stream) => stream.collect_text().await,
            Err(e) => Err(e),
        };
        let text = match outcome {
            Ok(completion) => {
                let usage = &completion.usage;
                let sides = if side == Side::Edge { &mut totals.edge } else { &mut totals.cloud };
                sides.calls = 1;
                sides.prompt_tokens = u64::from(usage.prompt_tokens);
                sides.completion_tokens = u64::from(usage.completion_tokens);
                if side == Side::Cloud {
                    totals.cloud_cost = self.price.cost(usage);
                }
                completion.text
            }
            Err(e) => {
                let mut record = record_from_totals(item, strategy, &totals, started.elapsed());
                record.error = Some(e.to_string());
                return (record, String::new());
            }
        };
        (record_from_totals(item, strategy, &totals, started.elapsed()), text)
    }

    /// Default device and policy, no budgets, the benchmark cloud's price.
    fn guard(&self) -> Arc<CloudGuard> {
        Arc::new(CloudGuard::new(true, AppPolicy::default(), Ledger::new(Budgets::default(), None), None, self.price))
    }

    async fn hybrid(&self, item: &Item, strategy: &str, policy: Arc<dyn RoutePolicy>, sequential: bool) -> (Record, String) {
        let models = Models { edge: Some(self.edge.clone()), cloud: Some(self.cloud.clone()) };
        let config = ExecConfig { decomposition: Decomposition::LongQueries, sequential, ..ExecConfig::default() };
        let scheduler = match Scheduler::new(models, policy, self.guard(), config) {
            Ok(s) => s,
            Err(e) => panic!("scheduler: {e}"),
        };
        Self::ask(&scheduler, item, strategy).await
    }

    async fn ask(scheduler: &Scheduler, item: &Item, strategy: &str) -> (Record, String) {
        let (sink, _events) = EventSink::channel();
        let started = Instant::now();
        let question = format!("{}\n\n{COT}", item.question);
        match scheduler.run(&question, &sink, &CancellationToken::new()).await {
            Ok(answer) => (record_from_totals(item, strategy, &answer.totals, started.elapsed()), answer.text),
            Err(e) => {
                let mut record = record_from_totals(item, strategy, &Totals::default(), started.elapsed());
                record.error = Some(e.to_string());
                (record, String::new())
            }
        }
    }

    /// The engine an app would hold, created once and kept for every question: the default
    /// configuration over a store that persists.
    fn default_engine(&mut self, strategy: &str) -> Result<&DefaultEngine> {
        if !self.default_engines.contains_key(strategy) {
            let (budgets, state_dir) = match monthly_token_budget(strategy) {
                None if strategy == "hybridflow-default" => (Budgets::default(), self.state_dir.clone()),
                None => (Budgets::default(), self.state_dir.with_extension(format!("state-{strategy}"))),
                Some(tokens) => (
                    Budgets { per_month: Limits { cloud_tokens: Some(tokens), ..Limits::default() }, ..Budgets::default() },
                    self.state_dir.with_extension(format!("state-{strategy}")),
                ),
            };
            let store = Arc::new(hybridflow_core::store::Store::open(&state_dir)?);
            let writer = Arc::new(hybridflow_core::store::StoreWriter::start(store)?);
            let guard = Arc::new(CloudGuard::new(true, AppPolicy::default(), Ledger::new(budgets, Some(writer.clone())), None, self.price));
            if strategy == "hybridflow-offline" {
                guard.set_device_state(DeviceState { network: Network::None, ..DeviceState::default() });
            }
            let router = Arc::new(LearnedRouter::new(RouterConfig::default(), guard.clone(), Some(writer), None));
            let models = Models { edge: Some(self.edge.clone()), cloud: Some(self.cloud.clone()) };
            self.default_engines.insert(strategy.to_string(), DefaultEngine { scheduler: Scheduler::new(models, router, guard, ExecConfig::default())? });
        }
        Ok(&self.default_engines[strategy])
    }

    /// Chain-of-thought on the edge; the whole query goes to the cloud when the edge gives no
    /// explicit final answer (no answer line, or cut at its token cap). The edge call records its
    /// tokens' log-probabilities, the confidence signal `cargo xtask cascade-signal` measures.
    async fn cascade(&self, item: &Item, strategy: &str) -> (Record, String) {
        let (edge, edge_text) = self.call(Side::Edge, item, Self::single_request(item, COT).with_token_logprobs(), strategy).await;
        if edge.error.is_none() && scoring::states_an_answer(self.dataset, item, &edge_text) {
            return (edge, edge_text);
        }
        let (mut cloud, cloud_text) = self.single_call(Side::Cloud, item, COT, strategy).await;
        cloud.edge_tokens += edge.edge_tokens;
        cloud.latency_s += edge.latency_s;
        (cloud, cloud_text)
    }

    async fn run(&mut self, item: &Item, strategy: &str) -> Result<(Record, String)> {
        // The SDK's router with decomposition on (every step on the cloud while budgets allow), new per question.
        let router = || Arc::new(LearnedRouter::new(RouterConfig::default(), self.guard(), None, None));
        Ok(match strategy {
            "edge-direct" => self.single_call(Side::Edge, item, DIRECT, strategy).await,
            "edge-cot" => self.single_call(Side::Edge, item, COT, strategy).await,
            "cloud-direct" => self.single_call(Side::Cloud, item, DIRECT, strategy).await,
            "cloud-cot" => self.single_call(Side::Cloud, item, COT, strategy).await,
            "edge-cascade" => self.cascade(item, strategy).await,
            shipped if matches!(shipped, "hybridflow-default" | "hybridflow-offline") || monthly_token_budget(shipped).is_some() => {
                Self::ask(&self.default_engine(strategy)?.scheduler, item, strategy).await
            }
            "hybridflow-final-steps-rule" => self.hybrid(item, strategy, Arc::new(FinalStepsRule { plan_on: Side::Edge }), false).await,
            "hybridflow-cloud-plan-rule" => self.hybrid(item, strategy, Arc::new(FinalStepsRule { plan_on: Side::Cloud }), false).await,
            "hybridflow-decomposed" => self.hybrid(item, strategy, router(), false).await,
            "hybridflow-threshold" => self.hybrid(item, strategy, Arc::new(ByDifficulty), false).await,
            "hybridflow-random" => {
                let cloud_fraction = self.token_shares.random_cloud_probability();
                self.hybrid(item, strategy, Arc::new(RandomRouter { cloud_fraction }), false).await
            }
            "hybridflow-chained" => self.hybrid(item, strategy, router(), true).await,
            "hybridflow-edge-only" => self.hybrid(item, strategy, Arc::new(Fixed(Side::Edge)), false).await,
            // Every step of the plan on the cloud: what decomposition scores when no step is left
            // to the edge, the ceiling a subtask router is measured against.
            "hybridflow-cloud-only" => self.hybrid(item, strategy, Arc::new(Fixed(Side::Cloud)), false).await,
            "hybridflow-edge-synthesis" => self.hybrid(item, strategy, Arc::new(EdgeSynthesis), false).await,
            other => return Err(unknown_strategy(other)),
        })
    }
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_owned())
}

pub struct Options<'a> {
    pub dataset: &'a str,
    pub questions: usize,
    pub strategies: Vec<String>,
    pub cloud_url: &'a str,
    pub cloud_model: &'a str,
    pub price: Price,
    pub data_dir: &'a Path,
    /// `dev` (evaluation) or `train` (data for training routers).
    pub split: &'a str,
    pub out: &'a Path,
    /// The call record (read, replayed from, appended to).
    pub calls: &'a Path,
    /// The edge model, under the models directory or absolute.
    pub edge_model: &'a str,
}

/// Runs every (question, strategy) pair not yet in `out`, appending each result as it finishes.
pub fn run(options: Options<'_>) -> Result<()> {
    let dataset = Dataset::parse(options.dataset)?;
    for strategy in &options.strategies {
        if !is_strategy(strategy) {
            return Err(unknown_strategy(strategy));
        }
    }
    let items = datasets::load(dataset, options.data_dir, options.split, options.questions)?;
    let earlier: Vec<Record> = std::fs::File::open(options.out)
        .map(|f| {
            std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<Record>(&l).ok())
                .filter(|r| r.dataset == dataset.name())
                .collect()
        })
        .unwrap_or_default();
    let mut token_shares = TokenShares::default();
    earlier.iter().for_each(|r| token_shares.add(r));
    let done: HashSet<(String, String)> = earlier.into_iter().map(|r| (r.id, r.strategy)).collect();
    if let Some(parent) = options.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut output = std::fs::OpenOptions::new().create(true).append(true).open(options.out)?;
    let commit = git_commit();
    let total = items.len() * options.strategies.len();
    // Done earlier: this run's pairs only (the results file also holds other strategies' rows).
    let done_before = items.iter().flat_map(|item| options.strategies.iter().map(move |s| (item.id.clone(), s.clone()))).filter(|pair| done.contains(pair)).count();
    let mut finished = done_before;
    let started = Instant::now();
    tokio::runtime::Runtime::new()?.block_on(async {
        let edge: Arc<dyn ChatModel> = Arc::new(EdgeModel::load(EdgeConfig::new(catalog::model_path(options.edge_model)), |_| {}).await?);
        let mut cloud_config = CloudConfig::new(options.cloud_url, options.cloud_model);
        cloud_config.price = options.price;
        let cloud: Arc<dyn ChatModel> = Arc::new(CloudModel::new(cloud_config)?);
        let log = calls::CallLog::open(options.calls)?;
        let timeline = Arc::new(calls::Timeline::default());
        let edge: Arc<dyn ChatModel> = Arc::new(calls::Recorded::new(edge, log.clone(), timeline.clone()));
        let cloud: Arc<dyn ChatModel> = Arc::new(calls::Recorded::new(cloud, log.clone(), timeline.clone()));
        let state_dir = options.out.with_extension("state");
        let mut bench = Bench { edge, cloud, price: options.price, token_shares, dataset, state_dir, default_engines: HashMap::new() };
        for item in &items {
            for strategy in &options.strategies {
                if done.contains(&(item.id.clone(), strategy.clone())) {
                    continue;
                }
                timeline.restart();
                let (mut record, text) = bench.run(item, strategy).await?;
                let (correct, extracted) = scoring::score(dataset, item, &text);
                record.dataset = dataset.name().into();
                record.correct = correct;
                record.extracted = extracted;
                record.commit = commit.clone();
                record.timeline = timeline.take();
                record.replayed_calls = record.timeline.iter().filter(|span| span.replayed).count() as u64;
                record.hit_token_cap = record.timeline.iter().any(|span| log.get(&span.key).is_some_and(|c| c.finish_reason == hybridflow_core::model::FinishReason::Length));
                record.response = text;
                bench.token_shares.add(&record);
                writeln!(output, "{}", serde_json::to_string(&record)?)?;
                output.flush()?;
                finished += 1;
                let per_item = started.elapsed().as_secs_f64() / (finished - done_before) as f64;
                eprintln!(
                    "[{finished}/{total}] {} {strategy}: {} in {:.1} s, {} of {} calls replayed (about {:.0} min left)",
                    item.id,
                    if correct { "right" } else { "wrong" },
                    record.latency_s,
                    record.replayed_calls,
                    record.timeline.len(),
                    per_item * (total - finished) as f64 / 60.0
                );
            }
        }
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(strategy: &str, cloud_tokens: u64, edge_tokens: u64) -> Record {
        let item = Item { id: "q".into(), question: String::new(), answer: String::new(), answer_id: None };
        Record { cloud_output_tokens: cloud_tokens, edge_tokens, ..record_from_totals(&item, strategy, &Totals::default(), Duration::ZERO) }
    }

    #[test]
    fn random_is_steered_to_the_subtask_routers_cloud_token_share() {
        let mut shares = TokenShares::default();
        assert_eq!(shares.random_cloud_probability(), 0.5, "nothing measured yet");
        shares.add(&result("hybridflow-decomposed", 200, 800));
        assert!((shares.random_cloud_probability() - 0.2).abs() < 1e-9, "the shipped rule's share");
        shares.add(&result("hybridflow-learned", 300, 700));
        assert!((shares.random_cloud_probability() - 0.3).abs() < 1e-9, "the learned router's share, where it ran");
        shares.add(&result("hybridflow-random", 500, 500));
        assert!((shares.random_cloud_probability() - 0.1).abs() < 1e-9, "random overshot: it is steered down");
        shares.add(&result("hybridflow-random", 0, 3000));
        assert!((shares.random_cloud_probability() - 0.475).abs() < 1e-9, "random fell short (0.125): it is steered up");
        shares.add(&result("hybridflow-learned", 9000, 0));
        assert_eq!(shares.random_cloud_probability(), 1.0, "clamped to a probability");
    }

    #[test]
    fn a_budget_strategy_names_its_monthly_cloud_tokens() {
        assert_eq!(monthly_token_budget("hybridflow-budget-30000"), Some(30_000));
        assert!(is_strategy("hybridflow-budget-15000") && is_strategy("hybridflow-default"));
        for not_one in ["hybridflow-budget-", "hybridflow-budget-30k", "hybridflow-budget--5", "budget-100"] {
            assert!(!is_strategy(not_one), "{not_one}");
        }
    }

    #[test]
    fn only_a_synthesis_with_one_final_step_to_restate_goes_to_the_edge() {
        let plan = |depends: &[&str]| {
            let subtasks = vec![hybridflow_core::plan::Subtask::new("s1", "a", &[]), hybridflow_core::plan::Subtask::new("s2", "b", depends)];
            hybridflow_core::plan::validate::validate(hybridflow_core::plan::Plan { subtasks }, 6).unwrap()
        };
        let (chain, fork) = (plan(&["s1"]), plan(&[]));
        let budget = hybridflow_core::guard::QueryBudget::new();
        let side = |step: Step<'_>| EdgeSynthesis.route(&RouteRequest { query: "q", step, cloud_available: true, edge_available: true, budget: &budget }).side;
        assert_eq!(side(Step::Synthesis { plan: &chain }), Side::Edge);
        assert_eq!(side(Step::Synthesis { plan: &fork }), Side::Cloud, "two results to combine");
        assert_eq!(side(Step::Plan), Side::Cloud);
        assert_eq!(side(Step::Subtask { subtask: chain.get("s2").unwrap(), plan: Some(&chain) }), Side::Cloud);
    }
}
