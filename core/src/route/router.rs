//! The budget-aware, device-aware router (docs/router.md has the formulas).
//!
//! For a step: gates first (they can only take the cloud away, unless the edge cannot run); then
//! `gain = q - λt·(t_cloud - t_edge) - λm·cost - λe·energy`, where `q` is how much more often the
//! cloud's result makes the answer right (learned offline for whole queries and escalations, the
//! same neutral value for every step of a plan) and the rest is predicted from live statistics
//! measured on this device; the cloud is chosen when `gain > threshold(budget used)`.
//! Deterministic: identical inputs and statistics give identical decisions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::learned::RouterWeights;
use super::query_kind::QueryKind;
use super::{DecompositionDecision, Explanation, Observation, RouteDecision, RoutePolicy, RouteRequest, Step};
use crate::device::Network;
use crate::guard::{CloudGuard, Gate, Spend, Verdict};
use crate::model::cloud::{BreakerSnapshot, CircuitBreaker};
use crate::model::Side;
use crate::store::StoreWriter;

/// Weights turning time, money and energy into units of "probability of a better answer".
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UtilityWeights {
    /// Per second of extra latency.
    pub per_second: f64,
    /// Per unit of money.
    pub per_money: f64,
    /// Per joule of extra energy on the phone (doubled on an empty battery, halved while charging).
    pub per_joule: f64,
    /// Threshold with no budget used; it rises to 1 (never) as the most used budget runs out.
    pub base_threshold: f64,
}

impl Default for UtilityWeights {
    fn default() -> Self {
        Self { per_second: 0.01, per_money: 20.0, per_joule: 0.002, base_threshold: 0.15 }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouterConfig {
    pub weights: RouterWeights,
    pub utility: UtilityWeights,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self { weights: RouterWeights::builtin(), utility: UtilityWeights::default() }
    }
}

/// Exponentially weighted means of what was measured on this device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouterStatistics {
    pub edge_tokens_per_second: f64,
    pub edge_first_token_seconds: f64,
    pub cloud_tokens_per_second: f64,
    /// Time to first token by network type: wifi, cellular, metered.
    pub cloud_first_token_seconds: [f64; 3],
    pub cloud_error_rate: f64,
    pub observations: u64,
    /// The cloud's circuit breaker, so a dead endpoint stays avoided across a restart.
    #[serde(default)]
    pub breaker: BreakerSnapshot,
}

impl Default for RouterStatistics {
    /// Priors until the device has measured itself: a mid-range phone, a hosted model.
    fn default() -> Self {
        Self {
            edge_tokens_per_second: 20.0,
            edge_first_token_seconds: 0.5,
            cloud_tokens_per_second: 60.0,
            cloud_first_token_seconds: [0.6, 1.2, 1.2],
            cloud_error_rate: 0.0,
            observations: 0,
            breaker: BreakerSnapshot::default(),
        }
    }
}

const EWMA: f64 = 0.2;

fn blend(mean: &mut f64, sample: f64) {
    if sample.is_finite() && sample > 0.0 {
        *mean += EWMA * (sample - *mean);
    }
}

fn network_index(network: Network) -> usize {
    match network {
        Network::Wifi | Network::None => 0,
        Network::Cellular => 1,
        Network::Metered => 2,
    }
}

/// Power draws for the energy estimate (watts): CPU decoding, radio by network.
const COMPUTE_WATTS: f64 = 2.0;
const RADIO_WATTS: [f64; 3] = [0.6, 1.2, 1.2];

pub struct LearnedRouter {
    config: RouterConfig,
    /// Device state, policy, breaker and budgets: the same guard that admits each cloud request.
    guard: Arc<CloudGuard>,
    /// Persists the statistics (off the async workers).
    writer: Option<Arc<StoreWriter>>,
    breaker: Option<Arc<CircuitBreaker>>,
    stats: Mutex<RouterStatistics>,
}

impl LearnedRouter {
    /// `store` holds the statistics saved last; `breaker` is the cloud model's circuit breaker,
    /// whose state persists with them.
    pub fn new(config: RouterConfig, guard: Arc<CloudGuard>, store: Option<Arc<StoreWriter>>, breaker: Option<Arc<CircuitBreaker>>) -> Self {
        let stats = store.as_ref().and_then(|w| w.store().load_stats::<RouterStatistics>().ok().flatten()).unwrap_or_default();
        if let Some(breaker) = &breaker {
            breaker.restore(&stats.breaker);
        }
        Self { config, guard, writer: store, breaker, stats: Mutex::new(stats) }
    }

    pub fn stats(&self) -> RouterStatistics {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The threshold for a budget use in 0..=1: smooth (quadratic), from the base to 1.
    pub fn threshold(&self, budget_used: f64) -> f64 {
        let base = self.config.utility.base_threshold;
        base + (1.0 - base) * budget_used.clamp(0.0, 1.0).powi(2)
    }

    fn decide(&self, request: &RouteRequest<'_>, quality: f64, expected_tokens: u32) -> RouteDecision {
        let device = self.guard.device();
        let stats = self.stats();
        let utility = &self.config.utility;

        // The expected size, for the utility and the threshold (admission reserves the worst case).
        let prompt_tokens = (request.query.len() / 4) as u64 + 200;
        let tokens = u64::from(expected_tokens);
        let step_money = self.guard.price().cost_of(prompt_tokens, tokens);
        // An escalation's edge answer is already written: only the cloud's time is extra.
        let t_edge = if matches!(request.step, Step::Escalation { .. }) { 0.0 } else { stats.edge_first_token_seconds + tokens as f64 / stats.edge_tokens_per_second.max(0.1) };
        let t_cloud = stats.cloud_first_token_seconds[network_index(device.network)] + tokens as f64 / stats.cloud_tokens_per_second.max(0.1);
        let step = Spend { tokens: prompt_tokens + tokens, money: step_money, time: Duration::from_secs_f64(t_cloud) };
        let mut texts = vec![request.query];
        if let Step::Subtask { subtask, .. } = request.step {
            texts.push(&subtask.task);
        }
        let view = self.guard.evaluate(&texts, request.edge_available, request.budget, step);
        let (verdict, budget) = (view.verdict, view.budget);

        let battery_factor = if device.charging { 0.5 } else { 1.0 + (1.0 - f64::from(device.battery_level)).clamp(0.0, 1.0) };
        let energy = RADIO_WATTS[network_index(device.network)] * t_cloud - COMPUTE_WATTS * t_edge;
        let gain = quality - utility.per_second * (t_cloud - t_edge) - utility.per_money * step_money - utility.per_joule * battery_factor * energy;
        let threshold = self.threshold(budget.used);
        let explanation = |gate: Option<Gate>| Explanation { quality, predicted_gain: gain, threshold, budget_used: budget.used, gate };

        let (side, reason, gate) = match verdict {
            Verdict::CloudOnly(gate) => (Side::Cloud, format!("gate {gate:?}: the edge cannot run"), Some(gate)),
            Verdict::EdgeOnly(gate) => (Side::Edge, format!("gate {gate:?}"), Some(gate)),
            Verdict::Open if gain > threshold => (Side::Cloud, format!("gain {gain:.3} > threshold {threshold:.3}"), None),
            Verdict::Open => (Side::Edge, format!("gain {gain:.3} <= threshold {threshold:.3}"), None),
        };
        RouteDecision { side, reason, explanation: Some(explanation(gate)) }
    }

    fn save(&self, stats: RouterStatistics) {
        if let Some(writer) = &self.writer {
            writer.submit(move |store| {
                if let Err(e) = store.save_stats(&stats) {
                    log::warn!("cannot save router statistics: {e}");
                }
            });
        }
    }
}

/// The quality of every step of a plan (planning, each subtask, the synthesis): a neutral value
/// that sends them to the cloud while the budgets are fresh and the gates allow, and to the edge
/// once the rising threshold passes it. No subtask routing measured here beat it: a logistic model
/// did no better than random routing at its cloud share, and the final-steps rule (inner steps on
/// the edge) lost to random routing on mmlu-stem and to every step on the cloud on both datasets
/// (docs/router.md, "Steps of a plan").
const STEP_QUALITY: f64 = 0.5;

impl RoutePolicy for LearnedRouter {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision {
        match request.step {
            Step::Subtask { subtask, .. } => self.decide(request, STEP_QUALITY, subtask.expected_tokens),
            Step::WholeQuery | Step::Escalation { .. } => {
                let kind = QueryKind::of(request.query);
                let numbers = self.config.weights.query_level(kind);
                let tokens = numbers.whole_query.answer_tokens;
                let mut decision = match (request.step, &numbers.escalation) {
                    (Step::Escalation { confidence }, Some(model)) => self.decide(request, model.gain(confidence), tokens),
                    (Step::Escalation { .. }, None) => RouteDecision::new(Side::Edge, "no escalation model: the edge's answer stands"),
                    _ => self.decide(request, f64::from(numbers.whole_query.gain), tokens),
                };
                if kind == QueryKind::MultipleChoice {
                    decision.reason = format!("multiple-choice question: {}", decision.reason);
                }
                decision
            }
            Step::Plan => self.decide(request, STEP_QUALITY, 256),
            Step::Synthesis { .. } => self.decide(request, STEP_QUALITY, 192),
        }
    }

    /// Decompose only where the plan is measured to beat one cloud call on both counts: more
    /// often right, and at least as much gain per cloud token (so a budget buys no less accuracy
    /// through the plan), and only when the whole query would go to the cloud anyway (gates,
    /// budgets and threshold as for any query).
    fn decompose(&self, request: &RouteRequest<'_>) -> DecompositionDecision {
        let numbers = self.config.weights.query_level(QueryKind::of(request.query));
        let no = |reason: String| DecompositionDecision { decompose: false, reason };
        let Some(plan) = &numbers.decomposition else { return no("what decomposing gains is not measured for this kind of query".into()) };
        let one_call = &numbers.whole_query;
        let whole_query = self.decide(request, f64::from(one_call.gain), one_call.answer_tokens);
        if whole_query.side != Side::Cloud {
            return no(format!("the whole query stays on the edge ({})", whole_query.reason));
        }
        let per_call = plan.gain / plan.token_ratio.max(f32::EPSILON);
        let decompose = plan.gain > one_call.gain && per_call >= one_call.gain;
        let reason = format!(
            "a plan gains {:.3} over the edge at ×{:.2} one cloud call's tokens ({per_call:.3} per call's worth), one cloud call {:.3}",
            plan.gain, plan.token_ratio, one_call.gain
        );
        DecompositionDecision { decompose, reason }
    }

    fn observe(&self, observation: &Observation) {
        let device = self.guard.device();
        let snapshot = {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.observations += 1;
            match (observation.side, &observation.usage) {
                (Side::Edge, Some(usage)) => {
                    blend(&mut stats.edge_tokens_per_second, usage.decode_tokens_per_second);
                    blend(&mut stats.edge_first_token_seconds, usage.time_to_first_token.map_or(0.0, |t| t.as_secs_f64()));
                }
                (Side::Cloud, Some(usage)) => {
                    blend(&mut stats.cloud_tokens_per_second, usage.decode_tokens_per_second);
                    let ttft = usage.time_to_first_token.map_or(0.0, |t| t.as_secs_f64());
                    blend(&mut stats.cloud_first_token_seconds[network_index(device.network)], ttft);
                    stats.cloud_error_rate *= 1.0 - EWMA;
                }
                (Side::Cloud, None) => stats.cloud_error_rate += EWMA * (1.0 - stats.cloud_error_rate),
                (Side::Edge, None) => {}
            }
            if let Some(breaker) = &self.breaker {
                stats.breaker = breaker.snapshot();
            }
            stats.clone()
        };
        self.save(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{AppPolicy, DeviceState, Thermal};
    use crate::guard::budget::cloud_record;
    use crate::guard::{Budgets, Ledger, Limits, QueryBudget};
    use crate::store::Store;
    use crate::model::cloud::Price;
    use crate::model::{FinishReason, TokenCount, Usage};
    use crate::plan::validate::{validate, ValidatedPlan};
    use crate::plan::Subtask;
    use crate::route::learned::QueryLevel;

    fn temp_store(name: &str) -> (Arc<Store>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("hybridflow-router-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Arc::new(Store::open(&dir).unwrap()), dir)
    }

    /// A two-step plan: `s1` feeds `s2`, whose result nothing uses.
    fn two_step_plan() -> ValidatedPlan {
        let first = Subtask::new("s1", "Add the two odd numbers", &[]);
        let mut last = Subtask::new("s2", "Prove that the sum of two odd numbers is even", &["s1"]);
        last.expected_tokens = 64;
        validate(crate::plan::Plan { subtasks: vec![first, last] }, 6).unwrap()
    }

    /// Routes the step `id` of the two-step plan.
    fn route_in_plan(router: &LearnedRouter, id: &str, budget: &QueryBudget) -> RouteDecision {
        let plan = two_step_plan();
        route_step(router, Step::Subtask { subtask: plan.get(id).unwrap(), plan: Some(&plan) }, budget)
    }

    /// Routes the plan's final step (the cloud's, while the gates and budgets allow).
    fn route(router: &LearnedRouter, budget: &QueryBudget) -> RouteDecision {
        route_in_plan(router, "s2", budget)
    }

    fn route_step(router: &LearnedRouter, step: Step<'_>, budget: &QueryBudget) -> RouteDecision {
        router.route(&RouteRequest { query: "Is the sum of two odd numbers even? Explain.", step, cloud_available: true, edge_available: true, budget })
    }

    const PRICE: Price = Price { input_per_million: 1.0, output_per_million: 2.0 };

    fn guard(budgets: Budgets, store: Option<Arc<StoreWriter>>) -> Arc<CloudGuard> {
        Arc::new(CloudGuard::new(true, AppPolicy::default(), Ledger::new(budgets, store), None, PRICE))
    }

    /// A router with the shipped weights and no budgets.
    fn router() -> LearnedRouter {
        LearnedRouter::new(RouterConfig::default(), guard(Budgets::default(), None), None, None)
    }

    fn fresh() -> Arc<QueryBudget> {
        QueryBudget::new()
    }

    /// Spends `tokens` in the query (and the store's windows, if the ledger has a store).
    fn spend(guard: &CloudGuard, query: &Arc<QueryBudget>, id: &str, tokens: u64, cost: f64) {
        let reservation = guard.ledger().reserve(query, Spend::default()).unwrap();
        reservation.settle(id.into(), cloud_record(tokens, 0, cost, Duration::from_millis(100), false));
    }

    #[test]
    fn threshold_rises_smoothly_to_never() {
        let router = LearnedRouter::new(RouterConfig::default(), CloudGuard::unlimited(true), None, None);
        let points: Vec<f64> = (0..=10).map(|i| router.threshold(f64::from(i) / 10.0)).collect();
        assert_eq!(points[0], UtilityWeights::default().base_threshold);
        assert_eq!(points[10], 1.0);
        assert!(points.windows(2).all(|w| w[1] > w[0]), "strictly increasing: {points:?}");
        assert!(points.windows(2).all(|w| w[1] - w[0] < 0.2), "no jumps: {points:?}");
    }

    #[test]
    fn identical_inputs_give_identical_decisions() {
        let router = router();
        let first = route(&router, &fresh());
        for _ in 0..100 {
            assert_eq!(route(&router, &fresh()), first);
        }
        let explanation = first.explanation.unwrap();
        assert_eq!(explanation.quality, STEP_QUALITY);
        assert_eq!(first.side == Side::Cloud, explanation.predicted_gain > explanation.threshold);
    }

    #[test]
    fn every_step_of_a_plan_goes_to_the_cloud_while_the_budgets_allow() {
        let router = router();
        let plan = two_step_plan();
        let steps = [
            Step::Plan,
            Step::Subtask { subtask: plan.get("s1").unwrap(), plan: Some(&plan) },
            Step::Subtask { subtask: plan.get("s2").unwrap(), plan: Some(&plan) },
            // While the plan streams: the same decision, its place in the graph is not used.
            Step::Subtask { subtask: plan.get("s2").unwrap(), plan: None },
            Step::Synthesis { plan: &plan },
        ];
        for step in steps {
            let decision = route_step(&router, step, &fresh());
            assert_eq!((decision.side, decision.explanation.unwrap().quality), (Side::Cloud, STEP_QUALITY), "{decision:?}");
        }
    }

    #[test]
    fn device_state_gates_the_cloud_and_the_decision_says_which() {
        let router = router();
        router.guard.set_device_state(DeviceState { network: Network::None, ..DeviceState::default() });
        let decision = route(&router, &fresh());
        assert_eq!((decision.side, decision.explanation.unwrap().gate), (Side::Edge, Some(Gate::Offline)));
        router.guard.set_device_state(DeviceState { thermal: Thermal::Critical, ..DeviceState::default() });
        assert_eq!(route_in_plan(&router, "s1", &fresh()).side, Side::Cloud, "a critical edge forces the cloud");
        router.guard.set_policy(AppPolicy { offload: crate::device::Offload::Never, ..AppPolicy::default() });
        assert_eq!(route_in_plan(&router, "s1", &fresh()).side, Side::Edge, "but never against the policy");
        router.guard.set_device_state(DeviceState::default());
        assert_eq!(route(&router, &fresh()).side, Side::Edge);
    }

    #[test]
    fn a_query_budget_raises_the_threshold_then_blocks_the_cloud() {
        let guard = guard(Budgets { per_query: Limits { cloud_tokens: Some(2_000), ..Limits::default() }, ..Budgets::default() }, None);
        let router = LearnedRouter::new(RouterConfig::default(), guard.clone(), None, None);
        let query = fresh();
        let unused = route(&router, &query).explanation.unwrap();
        spend(&guard, &query, "a", 1_000, 0.0);
        let half = route(&router, &query).explanation.unwrap();
        assert!(half.threshold > unused.threshold && (half.budget_used - 0.5).abs() < 1e-9);
        spend(&guard, &query, "b", 900, 0.0); // the next step (~300 tokens) would exceed the limit
        let blocked = route(&router, &query);
        assert_eq!((blocked.side, blocked.explanation.unwrap().gate), (Side::Edge, Some(Gate::BudgetExhausted)));
    }

    #[test]
    fn a_whole_query_goes_to_the_cloud_while_its_measured_gain_clears_the_rising_threshold() {
        let guard = guard(Budgets { per_query: Limits { cloud_tokens: Some(4_000), ..Limits::default() }, ..Budgets::default() }, None);
        let router = LearnedRouter::new(RouterConfig::default(), guard.clone(), None, None);
        let query = fresh();
        let unused = route_step(&router, Step::WholeQuery, &query);
        let explanation = unused.explanation.unwrap();
        assert_eq!(explanation.quality, f64::from(RouterWeights::builtin().open.whole_query.gain), "the measured whole-query gain");
        assert_eq!(unused.side, Side::Cloud, "{unused:?}");
        // Three quarters used: the threshold is above the gain, the query stays on the edge.
        spend(&guard, &query, "a", 3_000, 0.0);
        let late = route_step(&router, Step::WholeQuery, &query);
        let explanation = late.explanation.unwrap();
        assert!(explanation.threshold > explanation.predicted_gain, "{late:?}");
        assert_eq!((late.side, explanation.gate), (Side::Edge, None));
        // Offline: the gate decides, whatever the gain.
        router.guard.set_device_state(DeviceState { network: Network::None, ..DeviceState::default() });
        let offline = route_step(&router, Step::WholeQuery, &fresh());
        assert_eq!((offline.side, offline.explanation.unwrap().gate), (Side::Edge, Some(Gate::Offline)));
    }

    #[test]
    fn a_plan_is_chosen_only_where_it_beats_one_cloud_call_on_accuracy_and_per_token() {
        use crate::route::learned::DecompositionGain;
        let with_plan = |gain: f32, token_ratio: f32| {
            let mut weights = RouterWeights::builtin();
            weights.open.whole_query.gain = 0.3;
            weights.open.decomposition = Some(DecompositionGain { gain, token_ratio, measured_on: "test".into() });
            LearnedRouter::new(RouterConfig { weights, ..RouterConfig::default() }, guard(Budgets::default(), None), None, None)
        };
        let budget = fresh();
        let decide = |router: &LearnedRouter| router.decompose(&RouteRequest { query: "Is the sum of two odd numbers even? Explain.", step: Step::WholeQuery, cloud_available: true, edge_available: true, budget: &budget });
        let pays = decide(&with_plan(0.4, 1.2));
        assert!(pays.decompose, "more often right, 0.33 a call's worth of tokens against 0.3: {pays:?}");
        assert!(pays.reason.starts_with("a plan gains 0.400 over the edge at ×1.20"), "{pays:?}");
        assert!(!decide(&with_plan(0.4, 2.0)).decompose, "right more often, but 0.2 a call's worth of tokens");
        assert!(!decide(&with_plan(0.06, 6.3)).decompose, "as measured on gsm8k: less often right");
        let mut unmeasured = RouterWeights::builtin();
        unmeasured.open.decomposition = None;
        let router = LearnedRouter::new(RouterConfig { weights: unmeasured, ..RouterConfig::default() }, guard(Budgets::default(), None), None, None);
        assert!(!decide(&router).decompose);
        // Where the whole query would stay on the edge, so does the plan.
        let offline = with_plan(0.4, 1.2);
        offline.guard.set_device_state(DeviceState { network: Network::None, ..DeviceState::default() });
        let gated = decide(&offline);
        assert!(!gated.decompose && gated.reason.contains("Offline"), "{gated:?}");
    }

    #[test]
    fn a_multiple_choice_query_is_routed_by_the_numbers_of_its_kind() {
        use crate::route::learned::WholeQueryGain;
        let builtin = RouterWeights::builtin();
        let multiple_choice = QueryLevel { whole_query: WholeQueryGain { gain: 0.01, answer_tokens: 100, measured_on: "test".into() }, escalation: None, decomposition: None };
        let weights = RouterWeights { multiple_choice: Some(multiple_choice), ..builtin.clone() };
        let router = LearnedRouter::new(RouterConfig { weights, ..RouterConfig::default() }, guard(Budgets::default(), None), None, None);
        let budget = fresh();
        let ask = |query: &str, step: Step<'_>| router.route(&RouteRequest { query, step, cloud_available: true, edge_available: true, budget: &budget });
        let choice = "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth";
        let open = "Which planet is the largest in the solar system?";
        let (choice_decision, open_decision) = (ask(choice, Step::WholeQuery), ask(open, Step::WholeQuery));
        assert_eq!(choice_decision.explanation.unwrap().quality, 0.01_f32 as f64, "{choice_decision:?}");
        assert_eq!(open_decision.explanation.unwrap().quality, f64::from(builtin.open.whole_query.gain));
        assert_eq!((choice_decision.side, open_decision.side), (Side::Edge, Side::Cloud), "a small gain does not clear the threshold");
        assert!(choice_decision.reason.starts_with("multiple-choice question: gain"), "the events say which numbers decided: {choice_decision:?}");
        // The open questions' escalation model is not applied to a kind that has none of its own.
        let escalation = ask(choice, Step::Escalation { confidence: -5.0 });
        assert_eq!((escalation.side, escalation.explanation), (Side::Edge, None), "{escalation:?}");
    }

    #[test]
    fn an_unsure_edge_answer_is_escalated_while_its_gain_clears_the_rising_threshold() {
        use crate::route::escalation::{EscalationModel, Logistic};
        let model = EscalationModel { edge_right: Logistic { bias: 3.0, slope: 10.0 }, cloud_right: Logistic { bias: 0.5, slope: 1.0 }, measured_on: "test".into() };
        let builtin = RouterWeights::builtin();
        let weights = RouterWeights { open: QueryLevel { escalation: Some(model.clone()), ..builtin.open.clone() }, ..builtin };
        let guard = guard(Budgets { per_query: Limits { cloud_tokens: Some(4_000), ..Limits::default() }, ..Budgets::default() }, None);
        let router = LearnedRouter::new(RouterConfig { weights, ..RouterConfig::default() }, guard.clone(), None, None);
        let query = fresh();
        let unsure = route_step(&router, Step::Escalation { confidence: -0.8 }, &query);
        let sure = route_step(&router, Step::Escalation { confidence: -0.05 }, &query);
        assert_eq!(unsure.explanation.unwrap().quality, model.gain(-0.8), "the learned escalation gain");
        assert_eq!((unsure.side, sure.side), (Side::Cloud, Side::Edge), "{unsure:?} {sure:?}");
        // Most of the budget used: the threshold passes even the unsure answer's gain.
        spend(&guard, &query, "a", 3_600, 0.0);
        let late = route_step(&router, Step::Escalation { confidence: -0.8 }, &query);
        assert_eq!(late.side, Side::Edge, "{late:?}");
        // Without a fitted model the edge's answer stands.
        let plain = LearnedRouter::new(RouterConfig { weights: RouterWeights { open: QueryLevel { escalation: None, ..RouterWeights::builtin().open }, ..RouterWeights::builtin() }, ..RouterConfig::default() }, guard, None, None);
        assert_eq!(route_step(&plain, Step::Escalation { confidence: -5.0 }, &fresh()).side, Side::Edge);
    }

    #[test]
    fn daily_budgets_and_statistics_persist_across_a_restart() {
        let (store, dir) = temp_store("persist");
        let budgets = Budgets { per_day: Limits { money: Some(0.01), ..Limits::default() }, ..Budgets::default() };
        let usage = |tps: f64| Usage {
            prompt_tokens: 100,
            completion_tokens: 50,
            token_count: TokenCount::Reported,
            time_to_first_token: Some(Duration::from_millis(300)),
            total_time: Duration::from_secs(1),
            decode_tokens_per_second: tps,
            finish_reason: FinishReason::Stop,
            token_logprobs: Vec::new(),
        };
        {
            let writer = Arc::new(StoreWriter::start(store.clone()).unwrap());
            let guard = guard(budgets, Some(writer.clone()));
            let router = LearnedRouter::new(RouterConfig::default(), guard.clone(), Some(writer), None);
            let query = fresh();
            assert_eq!(route(&router, &query).side, Side::Cloud);
            router.observe(&Observation { side: Side::Edge, usage: Some(usage(5.0)), cost: 0.0 });
            for id in ["q:s0:c", "q:s1:c", "q:s2:c", "q:s0:c"] {
                spend(&guard, &query, id, 150, 0.004); // the last one replays the first
            }
            futures::executor::block_on(guard.ledger().flushed());
        }
        drop(store);
        let store = Arc::new(Store::open(&dir).unwrap());
        let day = store.window_totals(crate::store::Window::Day, crate::store::now_unix_seconds()).unwrap();
        assert_eq!(day.cloud_requests, 3, "the replayed record counted once");
        let writer = Arc::new(StoreWriter::start(store).unwrap());
        let router = LearnedRouter::new(RouterConfig::default(), guard(budgets, Some(writer.clone())), Some(writer), None);
        assert!(router.stats().edge_tokens_per_second < RouterStatistics::default().edge_tokens_per_second, "measured edge speed restored");
        let decision = route(&router, &fresh());
        assert_eq!((decision.side, decision.explanation.unwrap().gate), (Side::Edge, Some(Gate::BudgetExhausted)), "0.012 spent of 0.01 today");
        drop(router);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
