//! Stage 2, routing: which side runs each step. The scheduler only sees [`RoutePolicy`]; the
//! simple policies here are the baselines the learned router is measured against.

use crate::model::Side;
use crate::plan::{Difficulty, Subtask, ValidatedPlan};

/// The step being routed.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// Writing the plan.
    Plan,
    Subtask { subtask: &'a Subtask, plan: Option<&'a ValidatedPlan> },
    /// Combining the subtask results into the answer.
    Synthesis { plan: &'a ValidatedPlan },
}

#[derive(Clone, Copy, Debug)]
pub struct RouteRequest<'a> {
    pub query: &'a str,
    pub step: Step<'a>,
    /// Whether a cloud model is configured (gates come with the learned router).
    pub cloud_available: bool,
    pub edge_available: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouteDecision {
    pub side: Side,
    /// Why, in words for the user and the logs.
    pub reason: String,
}

pub trait RoutePolicy: Send + Sync {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision;
}

/// Everything on one side (when it is available).
#[derive(Clone, Copy, Debug)]
pub struct Fixed(pub Side);

impl RoutePolicy for Fixed {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision {
        match (self.0, request.cloud_available, request.edge_available) {
            (Side::Cloud, true, _) | (Side::Edge, _, true) => RouteDecision { side: self.0, reason: format!("policy: always {:?}", self.0).to_lowercase() },
            (Side::Cloud, false, _) => RouteDecision { side: Side::Edge, reason: "no cloud configured".into() },
            (Side::Edge, _, false) => RouteDecision { side: Side::Cloud, reason: "no edge model loaded".into() },
        }
    }
}

/// The planner's difficulty hint decides: hard subtasks (and planning, and the synthesis of a
/// multi-step plan) go to the cloud, the rest stays on the device.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByDifficulty;

impl RoutePolicy for ByDifficulty {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision {
        let (wants_cloud, why) = match request.step {
            Step::Plan => (true, "planning a multi-step query"),
            Step::Subtask { subtask, .. } if subtask.difficulty == Difficulty::Hard => (true, "planner marked the subtask hard"),
            Step::Subtask { .. } => (false, "planner marked the subtask easy or medium"),
            Step::Synthesis { plan } if plan.subtasks.len() > 2 => (true, "combining many results"),
            Step::Synthesis { .. } => (false, "combining few results"),
        };
        match (wants_cloud && request.cloud_available, request.edge_available) {
            (true, _) | (false, false) => RouteDecision { side: Side::Cloud, reason: why.into() },
            (false, true) => RouteDecision { side: Side::Edge, reason: if wants_cloud { "no cloud configured".into() } else { why.into() } },
        }
    }
}
