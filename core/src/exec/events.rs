//! What a query reports while it runs, for the caller's UI and for tests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::guard::Gate;
use crate::model::{Side, Usage};
use crate::plan::planner::DirectReason;
use crate::plan::ValidatedPlan;
use crate::route::Explanation;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A planner model was asked for a plan (absent when a short query skips planning).
    /// `served_by`: the edge's engine and device, or the cloud's model id.
    PlanningStarted { side: Side, reason: String, served_by: String },
    /// The validated plan. Subtasks may have started before it, while the plan streamed.
    PlanReady { plan: ValidatedPlan, direct: Option<DirectReason> },
    /// A subtask (attempt 1) or a retry or fallback of it (attempt > 1) started.
    SubtaskStarted { id: String, side: Side, reason: String, attempt: u32, explanation: Option<Explanation>, served_by: String },
    /// Generated text: of a subtask, or of the final answer (`id: None`).
    Token { subtask_id: Option<String>, text: String },
    /// Discard the answer's text streamed so far: the attempt that wrote it failed, or its edge
    /// answer was escalated. The next attempt (a retry, the fallback or the cloud's answer)
    /// streams the answer again from its start.
    AnswerReset,
    /// The edge's one-step answer was checked: `confidence` is the mean natural log-probability
    /// of its tokens (0 = certain). `escalated`: the query goes to the cloud, whose answer
    /// replaces the edge's (after `AnswerReset`); if the cloud then fails, the edge's answer is
    /// streamed again.
    AnswerChecked { confidence: f64, escalated: bool, reason: String, explanation: Option<Explanation> },
    SubtaskFinished { id: String, report: SubtaskReport },
    /// The final synthesis started (multi-step plans only).
    AnswerStarted { side: Side, reason: String, attempt: u32, explanation: Option<Explanation>, served_by: String },
    /// A cloud request of this step was not sent: the gate forbade it when its turn came. The
    /// step goes on on the edge, or fails if it cannot.
    CloudRefused { step: StepName, gate: Gate },
    /// Always the last event of a query that was not cancelled.
    Answer { text: String, truncated: bool, totals: Totals },
}

/// Which step of a query an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepName {
    Plan,
    Subtask { id: String },
    /// The final synthesis, or the answer of a one-step plan.
    Answer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SubtaskOutcome {
    Done { text: String },
    /// Every attempt failed (errors joined, most recent last).
    Failed { error: String },
    /// Not run because a subtask it needs failed.
    Skipped { failed_dependency: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubtaskReport {
    /// Side of the last attempt (`None` when skipped).
    pub side: Option<Side>,
    pub usage: Option<Usage>,
    pub latency: Duration,
    pub attempts: u32,
    pub outcome: SubtaskOutcome,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SideTotals {
    pub calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// What a whole query cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub edge: SideTotals,
    pub cloud: SideTotals,
    pub cloud_cost: f64,
    pub wall_time: Duration,
    pub subtasks: usize,
    pub subtasks_on_cloud: usize,
    pub failed_subtasks: usize,
}

impl Totals {
    pub(crate) fn add(&mut self, side: Side, usage: &Usage, cost: f64) {
        let totals = match side {
            Side::Edge => &mut self.edge,
            Side::Cloud => &mut self.cloud,
        };
        totals.calls += 1;
        totals.prompt_tokens += u64::from(usage.prompt_tokens);
        totals.completion_tokens += u64::from(usage.completion_tokens);
        self.cloud_cost += cost;
    }
}
