//! What a query reports, as Kotlin and Swift see it: the core's events flattened into records
//! (typed enums for every closed set of values, plain strings only for free text such as a
//! routing reason or an error, milliseconds for durations).

use hybridflow_core::exec::{self, StepName};
pub use hybridflow_core::guard::Gate;
pub use hybridflow_core::model::Side;
pub use hybridflow_core::plan::{Difficulty, SubtaskKind};
use hybridflow_core::plan::{self, planner};
use hybridflow_core::route;

use crate::{int, long};

/// Where a step runs.
#[uniffi::remote(Enum)]
pub enum Side {
    Edge,
    Cloud,
}

/// One node of a plan's graph.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PlannedSubtask {
    /// Unique within the plan; events name the subtask by it.
    pub id: String,
    /// What the subtask asks, in the planner's words.
    pub task: String,
    /// Ids of the subtasks whose results it needs; it starts when they are done.
    pub depends_on: Vec<String>,
    pub kind: SubtaskKind,
    /// The planner's hint of how hard the subtask is for a small model.
    pub difficulty: Difficulty,
}

/// What sort of work a subtask is.
#[uniffi::remote(Enum)]
pub enum SubtaskKind {
    Math,
    Reasoning,
    Knowledge,
    Writing,
}

/// How hard a subtask is for a small model, by the planner's hint.
#[uniffi::remote(Enum)]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

/// Why a query was answered in one step instead of by a plan. Prints as a sentence (Kotlin
/// `toString()`, Swift `description`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
#[uniffi::export(Display)]
pub enum DirectReason {
    /// Decomposition is off (`Decomposition.Never`): no planning call was made.
    DecompositionOff,
    /// Short enough not to need a plan (no planning call was made).
    ShortQuery,
    /// The router predicts no gain from a plan for this query (`Decomposition.WhenItPays`, the
    /// default; no planning call was made); `why` gives its numbers.
    NotWorthDecomposing { why: String },
    /// The planner answered with a single subtask.
    SingleStep,
    /// The planner failed; the query was answered directly instead.
    PlannerFailed { error: String },
    /// The planner's output held no usable subtask.
    UnusablePlan { error: String },
}

impl std::fmt::Display for DirectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DecompositionOff => write!(f, "decomposition off: answered in one step"),
            Self::ShortQuery => write!(f, "short query: answered without a plan"),
            Self::NotWorthDecomposing { why } => write!(f, "a plan would not pay: {why}"),
            Self::SingleStep => write!(f, "the planner found a single step"),
            Self::PlannerFailed { error } => write!(f, "the planner failed: {error}"),
            Self::UnusablePlan { error } => write!(f, "unusable plan: {error}"),
        }
    }
}

impl From<&planner::DirectReason> for DirectReason {
    fn from(reason: &planner::DirectReason) -> Self {
        match reason {
            planner::DirectReason::DecompositionOff => Self::DecompositionOff,
            planner::DirectReason::ShortQuery => Self::ShortQuery,
            planner::DirectReason::NotWorthDecomposing { why } => Self::NotWorthDecomposing { why: why.clone() },
            planner::DirectReason::SingleStep => Self::SingleStep,
            planner::DirectReason::PlannerFailed { error } => Self::PlannerFailed { error: error.clone() },
            planner::DirectReason::UnusablePlan { error, .. } => Self::UnusablePlan { error: error.clone() },
        }
    }
}

/// A reason the cloud is not used (or, for `EdgeUnavailable` and `ThermalCritical`, is the only
/// side left).
#[uniffi::remote(Enum)]
pub enum Gate {
    /// The configuration has no cloud endpoint.
    NoCloudConfigured,
    /// `AppPolicy.offload` is `Never`.
    PolicyNeverOffload,
    /// `DeviceState.network` is `None`.
    Offline,
    /// `AppPolicy.offload` is `WifiOnly` and the phone is not on Wi-Fi.
    WifiOnly,
    /// Data saver on, not on Wi-Fi.
    DataSaver,
    /// Battery under `AppPolicy.minBatteryForCloud`, not charging.
    LowBattery,
    /// Low power mode, not charging.
    LowPowerMode,
    /// The text looks like personal data (an e-mail address, a phone number) and the policy
    /// keeps it on the device.
    PersonalData,
    /// The cloud failed repeatedly and is rested for a while (the circuit breaker).
    CircuitOpen,
    /// A budget limit would be exceeded by this request (spent and reserved counted).
    BudgetExhausted,
    /// The budget store was damaged and rebuilt: limited budgets count as used up until
    /// `resetBudgets`.
    SpendingUnknown,
    /// No edge model is loaded: the cloud is the only side.
    EdgeUnavailable,
    /// The phone is critically hot: the cloud is used instead of the edge.
    ThermalCritical,
}

/// Which step of a query an event is about.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum QueryStep {
    /// The planning call.
    Plan,
    Subtask { id: String },
    /// The final synthesis, or the answer of a one-step plan.
    Answer,
}

impl From<StepName> for QueryStep {
    fn from(step: StepName) -> Self {
        match step {
            StepName::Plan => QueryStep::Plan,
            StepName::Subtask { id } => QueryStep::Subtask { id },
            StepName::Answer => QueryStep::Answer,
        }
    }
}

/// Why the router chose a side: the learned estimate against the budget-raised threshold, or
/// the gate that decided.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct RouteExplanation {
    /// How much more often the cloud's result makes the answer right: for a whole query the
    /// cloud's measured accuracy advantage over the edge, for an escalation the learned curves at
    /// the edge's confidence, for a step of a plan (planning, a subtask, the synthesis) 0.5.
    pub quality: f64,
    /// `quality` minus the weighted extra latency, money and energy of the cloud.
    pub predicted_gain: f64,
    /// The cloud is chosen when `predictedGain` exceeds it; it rises as budgets are used.
    pub threshold: f64,
    /// Largest fraction used of any budget (query, day, month), 0..=1.
    pub budget_used: f64,
    /// The gate that decided, if one did (then the estimate did not).
    pub gate: Option<Gate>,
}

/// How a subtask ended.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SubtaskOutcome {
    /// The subtask's result text.
    Done { result: String },
    /// Every attempt failed (errors joined, most recent last).
    Failed { error: String },
    /// Not run because a subtask it needs (`failed_dependency`) failed.
    Skipped { failed_dependency: String },
}

impl From<exec::SubtaskOutcome> for SubtaskOutcome {
    fn from(outcome: exec::SubtaskOutcome) -> Self {
        match outcome {
            exec::SubtaskOutcome::Done { text } => Self::Done { result: text },
            exec::SubtaskOutcome::Failed { error } => Self::Failed { error },
            exec::SubtaskOutcome::Skipped { failed_dependency } => Self::Skipped { failed_dependency },
        }
    }
}

/// Model calls of one side for one query (planning, subtasks, answer, escalation, retries).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct SideTotals {
    pub calls: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// What one query used.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Totals {
    pub edge: SideTotals,
    pub cloud: SideTotals,
    /// At the endpoint's prices.
    pub cloud_cost: f64,
    /// From the call to the answer.
    pub wall_time_ms: i64,
    /// Subtasks of the plan (0 for a one-step answer).
    pub subtasks: i32,
    pub subtasks_on_cloud: i32,
    pub failed_subtasks: i32,
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Answer {
    /// The answer, as streamed by the `Token` events without a subtask id.
    pub text: String,
    /// The answer stopped at its token limit and may be cut short.
    pub truncated: bool,
    /// The subtasks the query was split into; empty for a one-step answer.
    pub plan: Vec<PlannedSubtask>,
    /// Why the query was answered in one step, when it was.
    pub direct_reason: Option<DirectReason>,
    /// Calls, tokens, cost and time the query used.
    pub totals: Totals,
}

/// What a query reports while it runs, in order (bindings/README.md, "Events, in order").
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum Event {
    /// The planning call started on `side` (a long query, planned because the router predicts a
    /// plan pays or because the app asked for plans), for `reason` (where the router chose the
    /// plan, it starts with "a plan pays (…)" and its numbers).
    /// `served_by`: the edge's engine and device ("ggml on Vulkan0 (…)"), or the cloud's model id.
    PlanningStarted { side: Side, reason: String, served_by: String },
    /// Subtasks may start before this, while the plan streams.
    PlanReady { subtasks: Vec<PlannedSubtask>, direct_reason: Option<DirectReason> },
    /// A subtask started (attempt > 1: a retry or a fallback to the other side).
    SubtaskStarted { id: String, side: Side, reason: String, attempt: i32, explanation: Option<RouteExplanation>, served_by: String },
    /// Generated text of a subtask, or of the final answer (`subtask_id` null).
    Token { subtask_id: Option<String>, text: String },
    /// Discard the answer text streamed so far: the attempt that wrote it failed, or the edge's
    /// answer was escalated; the next attempt (a retry, the fallback or the cloud's answer)
    /// streams the answer again from its start.
    AnswerReset,
    /// The edge's one-step answer was checked. `confidence`: the mean natural log-probability of
    /// its tokens (0 = certain, lower = less sure). `escalated`: the query goes to the cloud,
    /// whose answer replaces the edge's (`AnswerReset` follows); if the cloud is then refused or
    /// fails, the edge's answer is streamed again.
    AnswerChecked { confidence: f64, escalated: bool, reason: String, explanation: Option<RouteExplanation> },
    /// A subtask ended: `latencyMs` spans all its attempts, the tokens are the last attempt's
    /// (0 when it failed).
    SubtaskFinished {
        id: String,
        /// Side of the last attempt; null when skipped.
        side: Option<Side>,
        outcome: SubtaskOutcome,
        latency_ms: i64,
        attempts: i32,
        prompt_tokens: i32,
        completion_tokens: i32,
    },
    /// The final answer started: the synthesis of a plan's results, or the one-step answer.
    AnswerStarted { side: Side, reason: String, attempt: i32, explanation: Option<RouteExplanation>, served_by: String },
    /// A cloud request of this step was not sent: `gate` forbade it when its turn came. The step
    /// goes on on the edge, or fails if it cannot.
    CloudRefused { step: QueryStep, gate: Gate },
    /// Always the last event of a query that was not cancelled.
    /// `truncated`: the answer stopped at its token limit and may be cut short.
    Answer { text: String, truncated: bool, totals: Totals },
}

fn planned(subtasks: &[plan::Subtask]) -> Vec<PlannedSubtask> {
    subtasks
        .iter()
        .map(|s| PlannedSubtask {
            id: s.id.clone(),
            task: s.task.clone(),
            depends_on: s.depends_on.clone(),
            kind: s.kind,
            difficulty: s.difficulty,
        })
        .collect()
}

fn direct_reason(reason: &Option<planner::DirectReason>) -> Option<DirectReason> {
    reason.as_ref().map(DirectReason::from)
}

fn explanation(explanation: Option<route::Explanation>) -> Option<RouteExplanation> {
    explanation.map(|e| RouteExplanation {
        quality: e.quality,
        predicted_gain: e.predicted_gain,
        threshold: e.threshold,
        budget_used: e.budget_used,
        gate: e.gate,
    })
}

impl From<exec::SideTotals> for SideTotals {
    fn from(t: exec::SideTotals) -> Self {
        Self { calls: int(t.calls), prompt_tokens: long(t.prompt_tokens), completion_tokens: long(t.completion_tokens) }
    }
}

impl From<exec::Totals> for Totals {
    fn from(t: exec::Totals) -> Self {
        Self {
            edge: t.edge.into(),
            cloud: t.cloud.into(),
            cloud_cost: t.cloud_cost,
            wall_time_ms: long(t.wall_time.as_millis()),
            subtasks: int(t.subtasks),
            subtasks_on_cloud: int(t.subtasks_on_cloud),
            failed_subtasks: int(t.failed_subtasks),
        }
    }
}

impl From<exec::Answer> for Answer {
    fn from(answer: exec::Answer) -> Self {
        Self { direct_reason: direct_reason(&answer.direct), plan: planned(&answer.plan.subtasks), text: answer.text, truncated: answer.truncated, totals: answer.totals.into() }
    }
}

impl From<exec::Event> for Event {
    fn from(event: exec::Event) -> Self {
        match event {
            exec::Event::PlanningStarted { side, reason, served_by } => Event::PlanningStarted { side, reason, served_by },
            exec::Event::PlanReady { plan, direct } => Event::PlanReady { subtasks: planned(&plan.subtasks), direct_reason: direct_reason(&direct) },
            exec::Event::SubtaskStarted { id, side, reason, attempt, explanation: e, served_by } => {
                Event::SubtaskStarted { id, side, reason, attempt: int(attempt), explanation: explanation(e), served_by }
            }
            exec::Event::Token { subtask_id, text } => Event::Token { subtask_id, text },
            exec::Event::AnswerReset => Event::AnswerReset,
            exec::Event::AnswerChecked { confidence, escalated, reason, explanation: e } => Event::AnswerChecked { confidence, escalated, reason, explanation: explanation(e) },
            exec::Event::SubtaskFinished { id, report } => {
                Event::SubtaskFinished {
                    id,
                    side: report.side,
                    outcome: report.outcome.into(),
                    latency_ms: long(report.latency.as_millis()),
                    attempts: int(report.attempts),
                    prompt_tokens: report.usage.as_ref().map_or(0, |u| int(u.prompt_tokens)),
                    completion_tokens: report.usage.as_ref().map_or(0, |u| int(u.completion_tokens)),
                }
            }
            exec::Event::AnswerStarted { side, reason, attempt, explanation: e, served_by } => {
                Event::AnswerStarted { side, reason, attempt: int(attempt), explanation: explanation(e), served_by }
            }
            exec::Event::CloudRefused { step, gate } => Event::CloudRefused { step: step.into(), gate },
            exec::Event::Answer { text, truncated, totals } => Event::Answer { text, truncated, totals: totals.into() },
        }
    }
}
