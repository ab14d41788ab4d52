//! The learned, budget-aware, device-aware router (docs/router.md has the formulas).
//!
//! For a step: gates first (they can only take the cloud away, unless the edge cannot run); then
//! `gain = q - λt·(t_cloud - t_edge) - λm·cost - λe·energy`, where `q` is the learned probability
//! that the cloud's result changes the outcome for the better and the rest is predicted from live
//! statistics measured on this device; the cloud is chosen when `gain > threshold(budget used)`.
//! Deterministic: identical inputs and statistics give identical decisions.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::calibration::Calibration;
use super::features::{features, fnv1a, GraphPosition};
use super::gates::{self, Gate, GateInputs, Verdict};
use super::learned::RouterWeights;
use super::{account, CalibrationProbe, Explanation, Observation, RouteDecision, RoutePolicy, RouteRequest, Step};
use crate::device::{AppPolicy, DeviceState, Network};
use crate::exec::Totals;
use crate::model::cloud::{BreakerSnapshot, CircuitBreaker, Price};
use crate::model::Side;
use crate::plan::Subtask;
use crate::store::{now_unix_seconds, Store, Window};

/// Hard limits on cloud use; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub cloud_tokens: Option<u64>,
    pub money: Option<f64>,
    pub cloud_time: Option<Duration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Budgets {
    pub per_query: Limits,
    pub per_day: Limits,
    pub per_month: Limits,
}

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
    pub budgets: Budgets,
    /// The cloud's price, to project a step's cost before running it.
    pub price: Price,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self { weights: RouterWeights::builtin(), utility: UtilityWeights::default(), budgets: Budgets::default(), price: Price::default() }
    }
}

/// Exponentially weighted means of what was measured on this device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouterStats {
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
    /// The on-device correction of the learned estimate.
    #[serde(default)]
    pub calibration: Calibration,
}

impl Default for RouterStats {
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
            calibration: Calibration::default(),
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
    store: Option<Arc<Store>>,
    breaker: Option<Arc<CircuitBreaker>>,
    device: RwLock<DeviceState>,
    policy: RwLock<AppPolicy>,
    edge_loaded: RwLock<bool>,
    stats: Mutex<RouterStats>,
}

/// Budget use: the largest consumed fraction of any limit, and whether a step would break one.
#[derive(Clone, Copy, Debug, PartialEq)]
struct BudgetCheck {
    used: f64,
    would_exceed: bool,
}

fn check_limits(limits: &Limits, tokens: u64, money: f64, time: Duration, step_tokens: u64, step_money: f64, step_time: Duration) -> BudgetCheck {
    let mut check = BudgetCheck { used: 0.0, would_exceed: false };
    let mut consider = |used: f64, step: f64, limit: f64| {
        if limit <= 0.0 {
            check.used = 1.0;
            check.would_exceed = true;
            return;
        }
        check.used = check.used.max((used / limit).min(1.0));
        check.would_exceed |= used + step > limit;
    };
    if let Some(limit) = limits.cloud_tokens {
        consider(tokens as f64, step_tokens as f64, limit as f64);
    }
    if let Some(limit) = limits.money {
        consider(money, step_money, limit);
    }
    if let Some(limit) = limits.cloud_time {
        consider(time.as_secs_f64(), step_time.as_secs_f64(), limit.as_secs_f64());
    }
    check
}

impl LearnedRouter {
    /// `store` persists budgets and statistics (statistics are loaded from it); `breaker` is the
    /// cloud model's circuit breaker.
    pub fn new(config: RouterConfig, store: Option<Arc<Store>>, breaker: Option<Arc<CircuitBreaker>>) -> Self {
        let stats = store.as_ref().and_then(|s| s.load_stats::<RouterStats>().ok().flatten()).unwrap_or_default();
        if let Some(breaker) = &breaker {
            breaker.restore(&stats.breaker);
        }
        Self {
            config,
            store,
            breaker,
            device: RwLock::new(DeviceState::default()),
            policy: RwLock::new(AppPolicy::default()),
            edge_loaded: RwLock::new(true),
            stats: Mutex::new(stats),
        }
    }

    pub fn set_device_state(&self, state: DeviceState) {
        *self.device.write().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub fn set_policy(&self, policy: AppPolicy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    pub fn set_edge_loaded(&self, loaded: bool) {
        *self.edge_loaded.write().unwrap_or_else(|p| p.into_inner()) = loaded;
    }

    pub fn stats(&self) -> RouterStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Budget use across the query's, the day's and the month's limits for a step of this size.
    fn budget(&self, spent: &Totals, step_tokens: u64, step_money: f64, step_time: Duration) -> BudgetCheck {
        let budgets = &self.config.budgets;
        let query_tokens = spent.cloud.prompt_tokens + spent.cloud.completion_tokens;
        let mut checks = vec![check_limits(&budgets.per_query, query_tokens, spent.cloud_cost, Duration::ZERO, step_tokens, step_money, step_time)];
        if let Some(store) = &self.store {
            let now = now_unix_seconds();
            for (window, limits) in [(Window::Day, &budgets.per_day), (Window::Month, &budgets.per_month)] {
                match store.window_totals(window, now) {
                    Ok(totals) => checks.push(check_limits(limits, totals.cloud_tokens, totals.cost, Duration::from_millis(totals.cloud_millis), step_tokens, step_money, step_time)),
                    // Unreadable totals under a limit count as exhausted: fail closed on money.
                    Err(_) if *limits != Limits::default() => checks.push(BudgetCheck { used: 1.0, would_exceed: true }),
                    Err(_) => {}
                }
            }
        }
        BudgetCheck {
            used: checks.iter().map(|c| c.used).fold(0.0, f64::max),
            would_exceed: checks.iter().any(|c| c.would_exceed),
        }
    }

    /// The threshold for a budget use in 0..=1: smooth (quadratic), from the base to 1.
    pub fn threshold(&self, budget_used: f64) -> f64 {
        let base = self.config.utility.base_threshold;
        base + (1.0 - base) * budget_used.clamp(0.0, 1.0).powi(2)
    }

    fn decide(&self, request: &RouteRequest<'_>, subtask: Option<(&Subtask, GraphPosition)>, expected_tokens: u32) -> RouteDecision {
        let device = *self.device.read().unwrap_or_else(|p| p.into_inner());
        let policy = *self.policy.read().unwrap_or_else(|p| p.into_inner());
        let stats = self.stats();
        let utility = &self.config.utility;

        let prompt_tokens = (request.query.len() / 4) as u64 + 200;
        let tokens = u64::from(expected_tokens);
        let step_money = self.config.price.cost_of(prompt_tokens, tokens);
        let t_edge = stats.edge_first_token_seconds + tokens as f64 / stats.edge_tokens_per_second.max(0.1);
        let t_cloud = stats.cloud_first_token_seconds[network_index(device.network)] + tokens as f64 / stats.cloud_tokens_per_second.max(0.1);
        let budget = self.budget(request.spent, prompt_tokens + tokens, step_money, Duration::from_secs_f64(t_cloud));

        let personal = subtask.is_some_and(|(s, _)| gates::looks_personal(&s.task)) || gates::looks_personal(request.query);
        let verdict = gates::evaluate(&device, &policy, GateInputs {
            cloud_configured: request.cloud_available,
            edge_loaded: request.edge_available && *self.edge_loaded.read().unwrap_or_else(|p| p.into_inner()),
            breaker_open: self.breaker.as_ref().is_some_and(|b| !b.allows_request()),
            personal_data: personal,
            budget_exhausted: budget.would_exceed,
        });

        let logit = subtask.map(|(s, position)| f64::from(self.config.weights.logit(&features(request.query, s, position))));
        // Planning and synthesis have no learned estimate: a neutral probability.
        let quality = logit.map_or(0.5, |logit| stats.calibration.apply(logit));
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
        // Probe only while every budget is less than half used: learning never eats the end of one.
        let probe = match (verdict, side, logit, subtask) {
            (Verdict::Open, Side::Edge, Some(logit), Some((s, _))) if budget.used < 0.5 && sampled(request.query, &s.task, f64::from(policy.calibration_probe_rate)) => {
                Some(CalibrationProbe { logit })
            }
            _ => None,
        };
        RouteDecision { side, reason, explanation: Some(explanation(gate)), probe }
    }

    fn save(&self, stats: &RouterStats) {
        if let Some(store) = &self.store {
            if let Err(e) = store.save_stats(stats) {
                log::warn!("cannot save router statistics: {e}");
            }
        }
    }
}

/// A deterministic sample of `rate` of the subtasks: the same query and task are always (or never)
/// probed, so decisions stay identical for identical inputs.
fn sampled(query: &str, task: &str, rate: f64) -> bool {
    f64::from(fnv1a(0xff, &format!("{query}\u{1f}{task}"))) / 4_294_967_296.0 < rate
}

impl RoutePolicy for LearnedRouter {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision {
        match request.step {
            Step::Subtask { subtask, plan } => {
                let position = plan.map_or_else(GraphPosition::default, |p| GraphPosition {
                    depth: p.depth(&subtask.id),
                    fan_in: subtask.depends_on.len(),
                    fan_out: p.fan_out(&subtask.id),
                });
                self.decide(request, Some((subtask, position)), subtask.expected_tokens)
            }
            Step::Plan => self.decide(request, None, 256),
            Step::Synthesis { .. } => self.decide(request, None, 192),
        }
    }

    fn observe(&self, observation: &Observation) {
        let device = *self.device.read().unwrap_or_else(|p| p.into_inner());
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
        if let Some(store) = &self.store {
            account(store, observation);
        }
        self.save(&snapshot);
    }

    /// Moves the calibration towards the probe's outcome and persists it.
    fn calibrate(&self, probe: &CalibrationProbe, results_agree: bool) {
        let target = if results_agree { 0.0 } else { f64::from(self.config.weights.helps_when_results_differ) };
        let snapshot = {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.calibration.update(probe.logit, target);
            stats.clone()
        };
        self.save(&snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Thermal;
    use crate::model::{FinishReason, TokenCount, Usage};
    use crate::plan::{Difficulty, SubtaskKind};
    use crate::route::features::{DENSE_FEATURES, HASH_BUCKETS};

    fn temp_store(name: &str) -> (Arc<Store>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("hybridflow-router-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Arc::new(Store::open(&dir).unwrap()), dir)
    }

    fn hard_subtask() -> Subtask {
        let mut s = Subtask::new("s1", "Prove that the sum of two odd numbers is even", &[]);
        s.kind = SubtaskKind::Reasoning;
        s.difficulty = Difficulty::Hard;
        s.expected_tokens = 64;
        s
    }

    fn route(router: &LearnedRouter, subtask: &Subtask, spent: &Totals) -> RouteDecision {
        router.route(&RouteRequest {
            query: "Is the sum of two odd numbers even? Explain.",
            step: Step::Subtask { subtask, plan: None },
            cloud_available: true,
            edge_available: true,
            spent,
        })
    }

    /// Weights that follow the planner's difficulty hint only, so that these tests do not depend on
    /// what the shipped weights learned.
    fn difficulty_weights() -> RouterWeights {
        let mut dense = vec![0.0; DENSE_FEATURES.len()];
        dense[DENSE_FEATURES.iter().position(|f| *f == "difficulty_easy").unwrap()] = -1.5;
        dense[DENSE_FEATURES.iter().position(|f| *f == "difficulty_hard").unwrap()] = 1.5;
        RouterWeights { bias: -1.0, dense, sparse: vec![0.0; HASH_BUCKETS], trained_on: "test".into(), ..RouterWeights::builtin() }
    }

    fn cheap_cloud() -> RouterConfig {
        RouterConfig { weights: difficulty_weights(), price: Price { input_per_million: 1.0, output_per_million: 2.0 }, ..RouterConfig::default() }
    }

    #[test]
    fn threshold_rises_smoothly_to_never() {
        let router = LearnedRouter::new(RouterConfig::default(), None, None);
        let points: Vec<f64> = (0..=10).map(|i| router.threshold(f64::from(i) / 10.0)).collect();
        assert_eq!(points[0], UtilityWeights::default().base_threshold);
        assert_eq!(points[10], 1.0);
        assert!(points.windows(2).all(|w| w[1] > w[0]), "strictly increasing: {points:?}");
        assert!(points.windows(2).all(|w| w[1] - w[0] < 0.2), "no jumps: {points:?}");
    }

    #[test]
    fn identical_inputs_give_identical_decisions() {
        let router = LearnedRouter::new(cheap_cloud(), None, None);
        let subtask = hard_subtask();
        let first = route(&router, &subtask, &Totals::default());
        for _ in 0..100 {
            assert_eq!(route(&router, &subtask, &Totals::default()), first);
        }
        let explanation = first.explanation.unwrap();
        assert!(explanation.quality > 0.0 && explanation.quality < 1.0);
        assert_eq!(first.side == Side::Cloud, explanation.predicted_gain > explanation.threshold);
    }

    #[test]
    fn hard_subtasks_go_to_the_cloud_and_easy_ones_stay() {
        let router = LearnedRouter::new(cheap_cloud(), None, None);
        assert_eq!(route(&router, &hard_subtask(), &Totals::default()).side, Side::Cloud);
        let mut easy = hard_subtask();
        easy.difficulty = Difficulty::Easy;
        assert_eq!(route(&router, &easy, &Totals::default()).side, Side::Edge);
    }

    #[test]
    fn device_state_gates_the_cloud_and_the_decision_says_which() {
        let router = LearnedRouter::new(cheap_cloud(), None, None);
        router.set_device_state(DeviceState { network: Network::None, ..DeviceState::default() });
        let decision = route(&router, &hard_subtask(), &Totals::default());
        assert_eq!((decision.side, decision.explanation.unwrap().gate), (Side::Edge, Some(Gate::Offline)));
        router.set_device_state(DeviceState { thermal: Thermal::Critical, ..DeviceState::default() });
        let mut easy = hard_subtask();
        easy.difficulty = Difficulty::Easy;
        assert_eq!(route(&router, &easy, &Totals::default()).side, Side::Cloud, "a critical edge forces the cloud");
        router.set_device_state(DeviceState::default());
        router.set_policy(AppPolicy { offload: crate::device::Offload::Never, ..AppPolicy::default() });
        assert_eq!(route(&router, &hard_subtask(), &Totals::default()).side, Side::Edge);
    }

    #[test]
    fn a_query_budget_raises_the_threshold_then_blocks_the_cloud() {
        let config = RouterConfig { budgets: Budgets { per_query: Limits { cloud_tokens: Some(2_000), ..Limits::default() }, ..Budgets::default() }, ..cheap_cloud() };
        let router = LearnedRouter::new(config, None, None);
        let mut spent = Totals::default();
        let fresh = route(&router, &hard_subtask(), &spent).explanation.unwrap();
        spent.cloud.prompt_tokens = 1_000;
        let half = route(&router, &hard_subtask(), &spent).explanation.unwrap();
        assert!(half.threshold > fresh.threshold && (half.budget_used - 0.5).abs() < 1e-9);
        spent.cloud.prompt_tokens = 1_900; // the next step (~300 tokens) would exceed the limit
        let blocked = route(&router, &hard_subtask(), &spent);
        assert_eq!((blocked.side, blocked.explanation.unwrap().gate), (Side::Edge, Some(Gate::BudgetExhausted)));
    }

    #[test]
    fn daily_budgets_and_statistics_persist_across_a_restart() {
        let (store, dir) = temp_store("persist");
        let config = RouterConfig { budgets: Budgets { per_day: Limits { money: Some(0.01), ..Limits::default() }, ..Budgets::default() }, ..cheap_cloud() };
        let usage = |tps: f64| Usage {
            prompt_tokens: 100,
            completion_tokens: 50,
            token_count: TokenCount::Reported,
            time_to_first_token: Some(Duration::from_millis(300)),
            total_time: Duration::from_secs(1),
            decode_tokens_per_second: tps,
            finish_reason: FinishReason::Stop,
        };
        {
            let router = LearnedRouter::new(config.clone(), Some(store.clone()), None);
            assert_eq!(route(&router, &hard_subtask(), &Totals::default()).side, Side::Cloud);
            router.observe(&Observation { request_id: "q:s1:1".into(), side: Side::Edge, usage: Some(usage(5.0)), cost: 0.0 });
            for i in 0..3 {
                router.observe(&Observation { request_id: format!("q:s{i}:c"), side: Side::Cloud, usage: Some(usage(80.0)), cost: 0.004 });
            }
            router.observe(&Observation { request_id: "q:s0:c".into(), side: Side::Cloud, usage: Some(usage(80.0)), cost: 0.004 }); // replay
        }
        drop(store);
        let store = Arc::new(Store::open(&dir).unwrap());
        let day = store.window_totals(Window::Day, now_unix_seconds()).unwrap();
        assert_eq!(day.cloud_requests, 3, "the replayed record counted once");
        let router = LearnedRouter::new(config, Some(store), None);
        assert!(router.stats().edge_tokens_per_second < RouterStats::default().edge_tokens_per_second, "measured edge speed restored");
        let decision = route(&router, &hard_subtask(), &Totals::default());
        assert_eq!((decision.side, decision.explanation.unwrap().gate), (Side::Edge, Some(Gate::BudgetExhausted)), "0.012 spent of 0.01 today");
        drop(router);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn easy_subtask(n: usize) -> Subtask {
        let mut s = Subtask::new("s1", &format!("Add {n} and {}", n + 1), &[]);
        s.difficulty = Difficulty::Easy;
        s
    }

    fn probed(router: &LearnedRouter) -> usize {
        (0..200).filter(|n| route(router, &easy_subtask(*n), &Totals::default()).probe.is_some()).count()
    }

    #[test]
    fn calibration_probes_sample_edge_decisions_with_open_gates_only() {
        let router = LearnedRouter::new(cheap_cloud(), None, None);
        assert_eq!(route(&router, &hard_subtask(), &Totals::default()).probe, None, "a cloud decision needs no probe");
        let default_share = probed(&router);
        assert!((2..=25).contains(&default_share), "about 5% of 200 edge decisions: {default_share}");
        router.set_policy(AppPolicy { calibration_probe_rate: 1.0, ..AppPolicy::default() });
        assert_eq!(probed(&router), 200);
        assert_eq!(route(&router, &easy_subtask(7), &Totals::default()), route(&router, &easy_subtask(7), &Totals::default()), "deterministic");
        router.set_device_state(DeviceState { network: Network::None, ..DeviceState::default() });
        assert_eq!(probed(&router), 0, "a gate that takes the cloud away takes the probes too");
        router.set_device_state(DeviceState::default());
        router.set_policy(AppPolicy { calibration_probe_rate: 0.0, ..AppPolicy::default() });
        assert_eq!(probed(&router), 0, "rate 0 turns calibration off");
    }

    #[test]
    fn probe_outcomes_recalibrate_the_quality_and_persist() {
        let (store, dir) = temp_store("calibration");
        let probe = |router: &LearnedRouter| route(router, &easy_subtask(1), &Totals::default());
        let before = {
            let router = LearnedRouter::new(cheap_cloud(), Some(store.clone()), None);
            let before = probe(&router).explanation.unwrap().quality;
            let logit = f64::from(router.config.weights.logit(&features("Is the sum of two odd numbers even? Explain.", &easy_subtask(1), GraphPosition::default())));
            // The cloud keeps disagreeing with the edge: the probability moves towards the rate
            // at which a disagreement meant a fixed answer in training.
            for _ in 0..50 {
                router.calibrate(&CalibrationProbe { logit }, false);
            }
            before
        };
        let target = f64::from(cheap_cloud().weights.helps_when_results_differ);
        drop(store);
        let router = LearnedRouter::new(cheap_cloud(), Some(Arc::new(Store::open(&dir).unwrap())), None);
        assert_eq!(router.stats().calibration.observations, 50, "restored after a restart");
        let after = probe(&router).explanation.unwrap().quality;
        assert!((after - target).abs() < 0.5 * (before - target).abs(), "{before} -> {after}, towards {target}");
        // Agreement pulls it back down.
        for _ in 0..200 {
            router.calibrate(&CalibrationProbe { logit: 0.0 }, true);
        }
        assert!(probe(&router).explanation.unwrap().quality < after);
        drop(router);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
