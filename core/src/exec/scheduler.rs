//! The DAG scheduler and the final synthesis (see the module documentation of `exec`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::events::{Event, StepName, SubtaskOutcome, SubtaskReport, Totals};
use super::failure::{FailureCause, StepFailure};
use super::prompts;

use crate::guard::{AdmittedCloud, CloudGuard, QueryBudget};
use crate::model::{ChatModel, ChatRequest, FinishReason, Message, ModelError, Side, StreamEvent, TokenStream, Usage};
use crate::plan::planner::{self, DirectReason, PlanEvent, PlanOutcome, PlannerConfig};
use crate::plan::{Subtask, ValidatedPlan};
use crate::route::escalation;
use crate::route::{Observation, RouteDecision, RoutePolicy, RouteRequest, Step};

/// Which model writes the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlannerChoice {
    Edge,
    Cloud,
    /// Whatever the routing policy picks for [`Step::Plan`].
    Routed,
}

/// Whether queries are split into a graph of subtasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Decomposition {
    /// Every query is answered in one step, on the side the routing policy picks for the whole
    /// query.
    Never,
    /// The default: a query longer than the planner's `direct_max_words` is planned when the
    /// routing policy predicts a plan pays for it (the query-level decision's third option,
    /// [`RoutePolicy::decompose`]), else answered in one step. With the shipped measurements no
    /// query is planned: on the benchmark a plan gains less per cloud token than one cloud call
    /// (docs/router.md).
    #[default]
    WhenItPays,
    /// Every query longer than the planner's `direct_max_words` is planned into subtasks.
    LongQueries,
}

#[derive(Clone, Debug)]
pub struct ExecConfig {
    pub decomposition: Decomposition,
    pub planner: PlannerChoice,
    pub planner_config: PlannerConfig,
    pub subtask_max_tokens: u32,
    /// Cap of an answer (a direct answer or the synthesis). 1,024 covers the chain-of-thought
    /// answers measured on gsm8k and mmlu-stem (docs/benchmarks.md: longest 761 tokens); 384 cut
    /// 13 of 200 and 17 of 200 of them.
    pub answer_max_tokens: u32,
    pub max_edge_generations: usize,
    /// Attempts on the routed side before trying the other side once.
    pub attempts_per_side: u32,
    /// Token budget for the results of a subtask's ancestors beyond its parents.
    pub ancestor_context_tokens: usize,
    /// Run ready subtasks one at a time, in plan order (the prototype's chain mode; benchmarks).
    pub sequential: bool,
    /// Longest query accepted, in characters (it is repeated in every step's prompt).
    pub max_query_chars: usize,
    /// Queries running at once on this scheduler; one more is refused with `Busy`, so a flood
    /// of calls cannot grow memory without bound.
    pub max_queries_in_flight: usize,
    /// Cloud requests in flight at once, across queries (more wait for a slot).
    pub max_cloud_requests: usize,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            decomposition: Decomposition::default(),
            planner: PlannerChoice::Routed,
            planner_config: PlannerConfig::default(),
            subtask_max_tokens: 192,
            answer_max_tokens: 1024,
            max_edge_generations: 1,
            attempts_per_side: 2,
            ancestor_context_tokens: 256,
            sequential: false,
            max_query_chars: 8_000,
            max_queries_in_flight: 16,
            max_cloud_requests: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no model is available (neither an edge model nor a cloud endpoint)")]
    NoModel,
    #[error("the query is empty")]
    EmptyQuery,
    #[error("the query has {chars} characters; the limit is {limit}")]
    QueryTooLong { chars: usize, limit: usize },
    #[error("cancelled")]
    Cancelled,
    #[error("no answer could be produced: {reason}")]
    AnswerFailed { cause: FailureCause, reason: String },
    #[error("{limit} queries are already running; try again when one has finished")]
    Busy { limit: usize },
}

/// The final answer with what it cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub text: String,
    /// The answer stopped at its token limit (`answer_max_tokens`): it may be cut short.
    pub truncated: bool,
    pub plan: ValidatedPlan,
    pub direct: Option<DirectReason>,
    pub totals: Totals,
}

/// Where a query's events go. Sending never blocks; a caller that stopped listening is ignored.
#[derive(Clone, Debug)]
pub struct EventSink(mpsc::UnboundedSender<Event>);

impl EventSink {
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    fn emit(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

/// The models a scheduler may use; at least one is needed.
#[derive(Clone, Default)]
pub struct Models {
    pub edge: Option<Arc<dyn ChatModel>>,
    pub cloud: Option<Arc<dyn ChatModel>>,
}

impl Models {
    fn get(&self, side: Side) -> Option<&Arc<dyn ChatModel>> {
        match side {
            Side::Edge => self.edge.as_ref(),
            Side::Cloud => self.cloud.as_ref(),
        }
    }
}

struct Shared {
    models: Models,
    policy: Arc<dyn RoutePolicy>,
    guard: Arc<CloudGuard>,
    config: ExecConfig,
    edge_slots: Semaphore,
    cloud_slots: Arc<Semaphore>,
    query_slots: Arc<Semaphore>,
}

/// Runs queries: plan, subtasks as their parents finish, synthesis.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

/// One generation on one side that succeeded.
struct StepRun {
    side: Side,
    text: String,
    usage: Usage,
    cost: f64,
}

/// What one step asks of a model.
struct StepCall {
    /// The subtask's id; `None` for the synthesis.
    id: Option<String>,
    /// Its tokens are the answer's (the synthesis, or a one-step plan's only subtask).
    is_answer: bool,
    messages: Vec<Message>,
    max_tokens: u32,
}

impl StepCall {
    fn name(&self) -> &str {
        self.id.as_deref().unwrap_or("answer")
    }

    /// A one-step answer (an answer with a subtask id, not the synthesis): on the edge it reports
    /// its confidence, and the cloud may replace it ([`Step::Escalation`]).
    fn escalable(&self) -> bool {
        self.is_answer && self.id.is_some()
    }
}

/// The outcome of a step with all its attempts.
struct StepResult {
    run: Result<StepRun, StepFailure>,
    /// The edge's answer that an escalation replaced with the cloud's (its cost counts too).
    replaced: Option<StepRun>,
    /// Attempts made; usage of failed ones is unknown (their stream broke), only successes count.
    attempts: u32,
    last_side: Side,
    latency: Duration,
}

#[derive(Debug)]
enum Status {
    Running(AbortHandle),
    Done(String),
    /// Failed, or skipped because of the failure it carries.
    Failed(StepFailure),
}

fn other(side: Side) -> Side {
    match side {
        Side::Edge => Side::Cloud,
        Side::Cloud => Side::Edge,
    }
}

impl Scheduler {
    /// `guard` admits every cloud request, whatever `policy` decides.
    pub fn new(models: Models, policy: Arc<dyn RoutePolicy>, guard: Arc<CloudGuard>, config: ExecConfig) -> Result<Self, ExecError> {
        if models.edge.is_none() && models.cloud.is_none() {
            return Err(ExecError::NoModel);
        }
        let edge_slots = Semaphore::new(config.max_edge_generations.max(1));
        let cloud_slots = Arc::new(Semaphore::new(config.max_cloud_requests.max(1)));
        let query_slots = Arc::new(Semaphore::new(config.max_queries_in_flight.max(1)));
        Ok(Self { shared: Arc::new(Shared { models, policy, guard, config, edge_slots, cloud_slots, query_slots }) })
    }

    /// What the routing policy is asked about `step`, with the sides this scheduler has.
    fn request<'a>(&self, query: &'a str, step: Step<'a>, budget: &'a QueryBudget) -> RouteRequest<'a> {
        let models = &self.shared.models;
        RouteRequest { query, step, cloud_available: models.cloud.is_some(), edge_available: models.edge.is_some(), budget }
    }

    fn route(&self, query: &str, step: Step<'_>, budget: &QueryBudget) -> RouteDecision {
        let models = &self.shared.models;
        let decision = self.shared.policy.route(&self.request(query, step, budget));
        // A policy cannot send work to a side that does not exist (the guard still admits the
        // cloud request or refuses it).
        if models.get(decision.side).is_some() {
            decision
        } else {
            RouteDecision { side: other(decision.side), reason: format!("{} (its side is unavailable)", decision.reason), explanation: decision.explanation }
        }
    }

    /// Whether `query` is planned: `Err` with why it is answered in one step without a planning
    /// call; `Ok` with the router's reason when it chose the plan (`None`: the app asked for plans).
    fn whether_to_plan(&self, query: &str, budget: &QueryBudget) -> Result<Option<String>, DirectReason> {
        let config = &self.shared.config;
        match config.decomposition {
            Decomposition::Never => return Err(DirectReason::DecompositionOff),
            _ if !planner::needs_planning(query, &config.planner_config) => return Err(DirectReason::ShortQuery),
            Decomposition::LongQueries => return Ok(None),
            Decomposition::WhenItPays => {}
        }
        let decision = self.shared.policy.decompose(&self.request(query, Step::WholeQuery, budget));
        log::debug!("decompose: {} ({})", decision.decompose, decision.reason);
        if decision.decompose {
            Ok(Some(decision.reason))
        } else {
            Err(DirectReason::NotWorthDecomposing { why: decision.reason })
        }
    }

    /// Starts the planner on the side the configuration or the router picks (the edge when the
    /// cloud's guard refuses it), saying why in `PlanningStarted`; `Err` when no planner side
    /// exists. `why_plan`: the router's reason for planning, when it chose to.
    fn start_planning(
        &self,
        query: &str,
        query_id: &str,
        budget: &Arc<QueryBudget>,
        events: &EventSink,
        why_plan: Option<String>,
    ) -> Result<(Side, BoxStream<'static, PlanEvent>), DirectReason> {
        let config = &self.shared.config;
        let decision = match config.planner {
            PlannerChoice::Routed => self.route(query, Step::Plan, budget),
            PlannerChoice::Edge => RouteDecision::new(Side::Edge, "configured planner"),
            PlannerChoice::Cloud => RouteDecision::new(Side::Cloud, "configured planner"),
        };
        let (mut side, mut reason) = (decision.side, decision.reason);
        let mut planner_model = self.shared.models.get(side).cloned();
        if let Some(cloud) = planner_model.take_if(|_| side == Side::Cloud) {
            let request = planner::plan_request(query, &config.planner_config);
            match self.shared.guard.admit(format!("{query_id}:plan"), &request, budget) {
                Ok(permit) => planner_model = Some(Arc::new(AdmittedCloud::new(cloud, permit))),
                Err(gate) => {
                    log::debug!("planning: the cloud was refused by gate {gate:?}");
                    events.emit(Event::CloudRefused { step: StepName::Plan, gate });
                    (side, reason) = (Side::Edge, format!("the cloud was refused (gate {gate:?})"));
                    planner_model = self.shared.models.edge.clone();
                }
            }
        }
        let Some(model) = planner_model else {
            return Err(DirectReason::PlannerFailed { error: "the configured planner side is unavailable".to_string() });
        };
        // The app sees why the query is planned, where the router chose it.
        if let Some(why) = &why_plan {
            reason = format!("a plan pays ({why}); planning: {reason}");
        }
        log::debug!("planning on the {side:?}: {reason}");
        events.emit(Event::PlanningStarted { side, reason, served_by: model.served_by() });
        Ok((side, planner::stream_plan(model, query, &config.planner_config)))
    }

    /// Answers `query`, reporting progress to `events`.
    pub async fn run(&self, query: &str, events: &EventSink, cancel: &CancellationToken) -> Result<Answer, ExecError> {
        self.run_cancellable(query, None, events, cancel).await
    }

    /// Executes a given plan for `query` (no planning call): to compare execution modes on the
    /// same plan, or to replay one.
    pub async fn run_plan(&self, query: &str, plan: ValidatedPlan, events: &EventSink, cancel: &CancellationToken) -> Result<Answer, ExecError> {
        self.run_cancellable(query, Some(plan), events, cancel).await
    }

    async fn run_cancellable(&self, query: &str, plan: Option<ValidatedPlan>, events: &EventSink, cancel: &CancellationToken) -> Result<Answer, ExecError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(ExecError::EmptyQuery);
        }
        let (chars, limit) = (query.chars().count(), self.shared.config.max_query_chars);
        if chars > limit {
            return Err(ExecError::QueryTooLong { chars, limit });
        }
        let Ok(_query_slot) = self.shared.query_slots.clone().try_acquire_owned() else {
            return Err(ExecError::Busy { limit: self.shared.config.max_queries_in_flight });
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(ExecError::Cancelled),
            answer = self.run_to_answer(query, plan, events) => answer,
        }
    }

    async fn run_to_answer(&self, query: &str, given_plan: Option<ValidatedPlan>, events: &EventSink) -> Result<Answer, ExecError> {
        let started = Instant::now();
        let query_id = new_query_id();
        let config = &self.shared.config;
        let mut totals = Totals::default();
        let budget = QueryBudget::new();

        // Either a plan is already known (given, or a direct answer), or a planner streams one.
        let mut plan_stream = None;
        let mut plan: Option<(ValidatedPlan, Option<DirectReason>)> = match given_plan {
            Some(given) => {
                let direct = given.is_direct().then_some(DirectReason::SingleStep);
                Some((given, direct))
            }
            None => match self.whether_to_plan(query, &budget).and_then(|why_plan| self.start_planning(query, &query_id, &budget, events, why_plan)) {
                Ok(planning) => {
                    plan_stream = Some(planning);
                    None
                }
                Err(reason) => Some((planner::direct_plan(query), Some(reason))),
            },
        };
        if let Some((known, direct)) = &plan {
            events.emit(Event::PlanReady { plan: known.clone(), direct: direct.clone() });
        }
        // Subtasks seen so far while the plan streams (the validated plan replaces them).
        let mut streamed: Vec<Subtask> = Vec::new();
        let mut status: HashMap<String, Status> = HashMap::new();
        let mut running: JoinSet<(String, StepResult)> = JoinSet::new();
        // Subtasks whose result stopped at the token limit (a one-step answer may be one).
        let mut cut_by_token_limit: HashSet<String> = HashSet::new();

        loop {
            self.start_ready(&query_id, query, &budget, &streamed, plan.as_ref(), &mut status, &mut running, events, &mut totals);
            if let Some((validated, _)) = &plan {
                if validated.subtasks.iter().all(|s| matches!(status.get(&s.id), Some(Status::Done(_) | Status::Failed(_)))) {
                    break;
                }
            }
            tokio::select! {
                planned = async { plan_stream.as_mut().expect("polled only while planning").1.next().await }, if plan_stream.is_some() => {
                    let side = plan_stream.as_ref().expect("planning").0;
                    let (outcome, usage) = match planned {
                        Some(PlanEvent::Subtask(subtask)) => {
                            streamed.push(subtask);
                            continue;
                        }
                        Some(PlanEvent::Done { outcome, usage }) => (outcome, usage),
                        // Not produced by `stream_plan`, but a plan must always come: answer directly.
                        None => {
                            let error = "the planner stream ended without a plan".to_string();
                            (PlanOutcome { plan: planner::direct_plan(query), direct: Some(DirectReason::PlannerFailed { error }) }, None)
                        }
                    };
                    let cost = usage.as_ref().map_or(0.0, |u| self.shared.models.get(side).map_or(0.0, |m| m.cost(u)));
                    if let Some(usage) = &usage {
                        totals.add(side, usage, cost);
                    }
                    self.shared.policy.observe(&Observation { side, usage, cost });
                    plan_stream = None;
                    // Subtasks started early but dropped from the final plan stop now.
                    for (id, state) in &status {
                        if let Status::Running(handle) = state {
                            if outcome.plan.get(id).is_none() {
                                handle.abort();
                            }
                        }
                    }
                    status.retain(|id, _| outcome.plan.get(id).is_some());
                    events.emit(Event::PlanReady { plan: outcome.plan.clone(), direct: outcome.direct.clone() });
                    plan = Some((outcome.plan, outcome.direct));
                }
                finished = running.join_next(), if !running.is_empty() => {
                    let Some(Ok((id, result))) = finished else { continue }; // aborted: dropped from the plan
                    totals.subtasks += 1;
                    let outcome = match result.run {
                        Ok(run) => {
                            if let Some(replaced) = &result.replaced {
                                totals.add(replaced.side, &replaced.usage, replaced.cost);
                            }
                            totals.add(run.side, &run.usage, run.cost);
                            if run.usage.finish_reason == FinishReason::Length {
                                cut_by_token_limit.insert(id.clone());
                            }
                            if run.side == Side::Cloud {
                                totals.subtasks_on_cloud += 1;
                            }
                            let report = SubtaskReport { side: Some(run.side), usage: Some(run.usage), latency: result.latency, attempts: result.attempts, outcome: SubtaskOutcome::Done { text: run.text.clone() } };
                            status.insert(id.clone(), Status::Done(run.text));
                            report
                        }
                        Err(failure) => {
                            totals.failed_subtasks += 1;
                            let error = failure.message.clone();
                            status.insert(id.clone(), Status::Failed(failure));
                            SubtaskReport { side: Some(result.last_side), usage: None, latency: result.latency, attempts: result.attempts, outcome: SubtaskOutcome::Failed { error } }
                        }
                    };
                    events.emit(Event::SubtaskFinished { id, report: outcome });
                }
            }
        }

        let (validated, direct) = plan.expect("the loop ends only with a final plan");
        let result_of = |id: &str| match status.get(id) {
            Some(Status::Done(text)) => Ok(text.as_str()),
            Some(Status::Failed(failure)) => Err(failure.clone()),
            _ => Err(StepFailure { cause: FailureCause::Model, message: format!("{id} did not run") }),
        };
        let answer_failed = |failure: StepFailure| ExecError::AnswerFailed { cause: failure.cause, reason: failure.message };
        let (text, truncated) = if validated.is_direct() {
            let id = &validated.subtasks[0].id;
            (result_of(id).map_err(answer_failed)?.to_owned(), cut_by_token_limit.contains(id))
        } else {
            let results: Vec<(&Subtask, Result<&str, &str>)> =
                validated.subtasks.iter().map(|s| (s, result_of(&s.id).map_err(|_| "failed or skipped"))).collect();
            let messages = prompts::synthesis_messages(query, &results);
            let decision = self.route(query, Step::Synthesis { plan: &validated }, &budget);
            let call = StepCall { id: None, is_answer: true, messages, max_tokens: config.answer_max_tokens };
            let attempts = self.attempt_plan(&decision);
            let result = self.execute(&query_id, &budget, &call, decision, attempts, 0, events).await;
            let run = result.run.map_err(answer_failed)?;
            totals.add(run.side, &run.usage, run.cost);
            (run.text, run.usage.finish_reason == FinishReason::Length)
        };
        totals.wall_time = started.elapsed();
        events.emit(Event::Answer { text: text.clone(), truncated, totals: totals.clone() });
        Ok(Answer { text, truncated, plan: validated, direct, totals })
    }

    /// Starts every subtask that can run now. Before the plan is final, a streamed subtask may
    /// start when it is within the size limit, has a task and a new id, and every subtask it needs
    /// was streamed before it and is done: validation never changes such a subtask.
    #[allow(clippy::too_many_arguments)]
    fn start_ready(
        &self,
        query_id: &str,
        query: &str,
        budget: &Arc<QueryBudget>,
        streamed: &[Subtask],
        plan: Option<&(ValidatedPlan, Option<DirectReason>)>,
        status: &mut HashMap<String, Status>,
        running: &mut JoinSet<(String, StepResult)>,
        events: &EventSink,
        totals: &mut Totals,
    ) {
        let config = &self.shared.config;
        if config.sequential && !running.is_empty() {
            return;
        }
        let candidates: Vec<&Subtask> = match plan {
            Some((validated, _)) => validated.subtasks.iter().collect(),
            None => {
                let mut seen = std::collections::HashSet::new();
                streamed
                    .iter()
                    .take(config.planner_config.max_subtasks)
                    .take_while(|s| !s.task.trim().is_empty() && seen.insert(s.id.as_str()))
                    .collect()
            }
        };
        let validated = plan.map(|(v, _)| v);
        for (position, subtask) in candidates.iter().enumerate() {
            if status.contains_key(&subtask.id) {
                continue;
            }
            let earlier = &candidates[..position];
            let mut ready = true;
            for dep in &subtask.depends_on {
                match status.get(dep) {
                    Some(Status::Done(_)) if validated.is_some() || earlier.iter().any(|e| &e.id == dep) => {}
                    Some(Status::Failed(failure)) if validated.is_some() => {
                        // A subtask it needs failed: skip it (and, through this, its dependents).
                        status.insert(subtask.id.clone(), Status::Failed(failure.clone()));
                        totals.failed_subtasks += 1;
                        events.emit(Event::SubtaskFinished {
                            id: subtask.id.clone(),
                            report: SubtaskReport { side: None, usage: None, latency: Duration::ZERO, attempts: 0, outcome: SubtaskOutcome::Skipped { failed_dependency: dep.clone() } },
                        });
                        ready = false;
                        break;
                    }
                    _ => {
                        ready = false;
                        break;
                    }
                }
            }
            if !ready || status.contains_key(&subtask.id) {
                continue;
            }
            let messages = match validated {
                Some(v) if v.is_direct() => prompts::direct_messages(query),
                _ => {
                    let result = |id: &str| match status.get(id) {
                        Some(Status::Done(text)) => text.clone(),
                        _ => String::new(),
                    };
                    let find = |id: &str| candidates.iter().find(|c| c.id == id).copied();
                    let parents: Vec<(&Subtask, String)> = subtask.depends_on.iter().filter_map(|d| find(d).map(|p| (p, result(d)))).collect();
                    let further: Vec<(&Subtask, String)> = validated
                        .map(|v| v.further_ancestors(&subtask.id).into_iter().map(|a| (a, result(&a.id))).collect())
                        .unwrap_or_default();
                    prompts::step_messages(query, subtask, &parents, &further, config.ancestor_context_tokens)
                }
            };
            // A one-step plan's only subtask is the answer: its tokens are the answer's, and its
            // side is the query-level decision.
            let is_answer = validated.is_some_and(ValidatedPlan::is_direct);
            let step = if is_answer { Step::WholeQuery } else { Step::Subtask { subtask, plan: validated } };
            let decision = self.route(query, step, budget);
            let scheduler = self.clone();
            let query = query.to_owned();
            let query_id = query_id.to_owned();
            let budget = budget.clone();
            let id = subtask.id.clone();
            let sink = events.clone();
            let max_tokens = if is_answer { config.answer_max_tokens } else { config.subtask_max_tokens };
            let call = StepCall { id: Some(id.clone()), is_answer, messages, max_tokens };
            let handle = running.spawn(async move {
                let routed = decision.side;
                let attempts = scheduler.attempt_plan(&decision);
                let result = scheduler.execute(&query_id, &budget, &call, decision, attempts, 0, &sink).await;
                let result = scheduler.escalate_if_unsure(&query, &query_id, &budget, &call, routed, result, &sink).await;
                (id, result)
            });
            status.insert(subtask.id.clone(), Status::Running(handle));
            if config.sequential {
                return;
            }
        }
    }

    /// The attempts of a routed step: the routed side up to `attempts_per_side` times, then the
    /// other side once.
    fn attempt_plan(&self, decision: &RouteDecision) -> Vec<(Side, String)> {
        let mut plan: Vec<(Side, String)> = (0..self.shared.config.attempts_per_side.max(1))
            .map(|n| (decision.side, if n == 0 { decision.reason.clone() } else { "retry after an error".into() }))
            .collect();
        if self.shared.models.get(other(decision.side)).is_some() {
            plan.push((other(decision.side), format!("fallback to the {:?} after errors", other(decision.side)).to_lowercase()));
        }
        plan
    }

    /// After the edge answered a whole query as routed: asks the policy whether its confidence
    /// warrants the cloud ([`Step::Escalation`]), and if so streams the cloud's answer in place of
    /// the edge's. If the cloud is refused or fails, the edge's answer stands and is streamed again.
    #[allow(clippy::too_many_arguments)]
    async fn escalate_if_unsure(&self, query: &str, query_id: &str, budget: &Arc<QueryBudget>, call: &StepCall, routed: Side, first: StepResult, events: &EventSink) -> StepResult {
        let confidence = match &first.run {
            Ok(edge) if call.escalable() && routed == Side::Edge && edge.side == Side::Edge && self.shared.models.cloud.is_some() => escalation::confidence(&edge.usage.token_logprobs),
            _ => None,
        };
        let Some(confidence) = confidence else { return first };
        let decision = self.route(query, Step::Escalation { confidence }, budget);
        let escalated = decision.side == Side::Cloud;
        log::debug!("{}: the edge's confidence {confidence:.3}: {} ({})", call.name(), if escalated { "escalated to the cloud" } else { "kept" }, decision.reason);
        events.emit(Event::AnswerChecked { confidence, escalated, reason: decision.reason.clone(), explanation: decision.explanation });
        if !escalated {
            return first;
        }
        events.emit(Event::AnswerReset);
        let reason = format!("escalated: {}", decision.reason);
        let attempts = vec![(Side::Cloud, reason); self.shared.config.attempts_per_side.max(1) as usize];
        let second = self.execute(query_id, budget, call, decision, attempts, first.attempts, events).await;
        let (first_run, second_run) = (first.run.expect("checked above"), second.run);
        let (run, replaced) = match second_run {
            Ok(cloud) => (cloud, Some(first_run)),
            Err(failure) => {
                log::warn!("{}: the escalation failed ({}); the edge's answer stands", call.name(), failure.message);
                events.emit(Event::AnswerReset);
                events.emit(Event::Token { subtask_id: None, text: first_run.text.clone() });
                (first_run, None)
            }
        };
        StepResult { last_side: run.side, run: Ok(run), replaced, attempts: first.attempts + second.attempts, latency: first.latency + second.latency }
    }

    /// Runs one step (a subtask, or the synthesis when `call.id` is `None`) through `plan`, the
    /// sides to try in order, until one succeeds. The tokens of a step that `is_answer` are
    /// streamed as the answer's (no subtask id). Each cloud attempt is admitted by the guard when
    /// its turn comes; after a refusal the step makes no other cloud attempt. Attempts are
    /// numbered after `earlier_attempts` (an escalation continues its edge answer's numbering).
    #[allow(clippy::too_many_arguments)]
    async fn execute(&self, query_id: &str, budget: &Arc<QueryBudget>, call: &StepCall, decision: RouteDecision, plan: Vec<(Side, String)>, earlier_attempts: u32, events: &EventSink) -> StepResult {
        let started = Instant::now();
        let StepCall { id, is_answer, messages, max_tokens, .. } = call;
        let (is_answer, max_tokens) = (*is_answer, *max_tokens);
        let step_name = || id.clone().map_or(StepName::Answer, |id| StepName::Subtask { id });
        let mut errors = Vec::new();
        let mut cause = FailureCause::Model;
        let mut attempts = earlier_attempts;
        let mut last_side = decision.side;
        let mut cloud_refused = false;
        let mut used_cloud = false;
        let mut explanation = decision.explanation;
        let mut outcome = None;
        for (side, reason) in plan {
            let Some(model) = self.shared.models.get(side) else { continue };
            if side == Side::Cloud && cloud_refused {
                continue;
            }
            let mut request = ChatRequest::new(messages.clone()).with_max_tokens(max_tokens);
            if side == Side::Edge && call.escalable() && self.shared.models.cloud.is_some() {
                request = request.with_token_logprobs();
            }
            let _slot = match side {
                Side::Edge => self.shared.edge_slots.acquire().await,
                Side::Cloud => self.shared.cloud_slots.acquire().await,
            }
            .expect("never closed");
            let request_id = format!("{query_id}:{}:{}", id.as_deref().unwrap_or("answer"), attempts + 1);
            // Admitted at the moment of sending: after the wait for a slot, with today's gates.
            let permit = match side {
                Side::Edge => None,
                Side::Cloud => match self.shared.guard.admit(request_id.clone(), &request, budget) {
                    Ok(permit) => Some(permit),
                    Err(gate) => {
                        log::debug!("{}: the cloud was refused by gate {gate:?}", id.as_deref().unwrap_or("answer"));
                        events.emit(Event::CloudRefused { step: step_name(), gate });
                        errors.push(format!("cloud: refused by gate {gate:?}"));
                        cause = FailureCause::CloudRefused(gate);
                        cloud_refused = true;
                        continue;
                    }
                },
            };
            attempts += 1;
            last_side = side;
            let explanation = explanation.take();
            log::debug!("{} attempt {}: on the {side:?}, {reason}", id.as_deref().unwrap_or("answer"), attempts);
            let served_by = model.served_by();
            match &id {
                Some(id) => events.emit(Event::SubtaskStarted { id: id.clone(), side, reason, attempt: attempts, explanation, served_by }),
                None => events.emit(Event::AnswerStarted { side, reason, attempt: attempts, explanation, served_by }),
            }
            used_cloud |= permit.is_some();
            let stream = match permit {
                Some(permit) => permit.stream(model.as_ref(), request.clone()).await,
                None => model.stream(request.clone()).await,
            };
            let token_id = if is_answer { None } else { id.as_deref() };
            let mut streamed = false;
            match generate(stream, token_id, events, &mut streamed).await {
                Ok((text, usage)) => {
                    let cost = model.cost(&usage);
                    self.shared.policy.observe(&Observation { side, usage: Some(usage.clone()), cost });
                    outcome = Some(StepRun { side, text, usage, cost });
                    break;
                }
                Err(error) => {
                    self.shared.policy.observe(&Observation { side, usage: None, cost: 0.0 });
                    log::warn!("step {} failed on the {side:?}: {error}", id.as_deref().unwrap_or("answer"));
                    errors.push(format!("{side:?}: {error}").to_lowercase());
                    cause = FailureCause::from(&error);
                    if is_answer && streamed {
                        // The user saw part of an answer that will not be; the next attempt
                        // streams it again from the start.
                        events.emit(Event::AnswerReset);
                    }
                }
            }
        }
        if used_cloud {
            // What the cloud cost is durable before the step is reported.
            self.shared.guard.ledger().flushed().await;
        }
        let run = outcome.ok_or_else(|| StepFailure { cause, message: errors.join("; ") });
        StepResult { run, replaced: None, attempts: attempts - earlier_attempts, last_side, latency: started.elapsed() }
    }
}

/// A query id unique in this process and across restarts (time + counter), for exactly-once
/// accounting of its steps.
fn new_query_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Reads one generation, forwarding its text as events.
/// Streams a generation's text as `Token` events; `streamed` says whether any was sent, also
/// when the generation then fails.
async fn generate(stream: Result<TokenStream, ModelError>, id: Option<&str>, events: &EventSink, streamed: &mut bool) -> Result<(String, Usage), ModelError> {
    let mut stream = stream?;
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(delta) => {
                *streamed = true;
                text.push_str(&delta);
                events.emit(Event::Token { subtask_id: id.map(str::to_owned), text: delta });
            }
            StreamEvent::Finished(usage) => return Ok((text, usage)),
        }
    }
    Err(ModelError::Engine("stream ended without a usage record".into()))
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
