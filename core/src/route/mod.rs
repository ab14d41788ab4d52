//! Stage 2, routing: which side runs each step. The scheduler only sees [`RoutePolicy`]:
//! [`router::LearnedRouter`] is the real one; [`Fixed`] and [`ByDifficulty`] are the baselines it is
//! measured against.
//!
//! - [`learned`]: the numbers learned offline (per kind of query) and their weights file;
//! - [`escalation`]: the edge's confidence in a whole-query answer, and what escalating it gains;
//! - [`query_kind`]: open or multiple-choice, which picks the query-level numbers;
//! - [`router`]: the steps' neutral quality, utility, budget-adaptive threshold,
//!   statistics, persistence.

pub mod escalation;
pub mod learned;
pub mod query_kind;
pub mod router;

use serde::{Deserialize, Serialize};

use crate::guard::{Gate, QueryBudget};
use crate::model::{Side, Usage};
use crate::plan::{Difficulty, Subtask, ValidatedPlan};

/// The step being routed.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// The whole query answered in one step, without a plan: the query-level decision.
    WholeQuery,
    /// The whole query again, on the cloud, after the edge answered it with this `confidence`
    /// ([`escalation::confidence`]): keep the edge's answer (edge) or replace it (cloud).
    Escalation { confidence: f64 },
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
    /// Whether a cloud model is configured. Whatever a policy decides, the cloud guard admits or
    /// refuses each cloud request when it is sent.
    pub cloud_available: bool,
    pub edge_available: bool,
    /// What the query has spent and reserved so far (per-query budgets).
    pub budget: &'a QueryBudget,
}

/// The numbers behind a learned decision, for the caller's UI and for audits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// How much more often the cloud's result makes the answer right: for a whole query the
    /// cloud's measured accuracy advantage over the edge, for an escalation the learned curves at
    /// the edge's confidence, for a step of a plan a neutral 0.5.
    pub quality: f64,
    /// Quality minus the weighted extra latency, money and energy.
    pub predicted_gain: f64,
    pub threshold: f64,
    /// Largest fraction used of any budget (query, day, month).
    pub budget_used: f64,
    /// The gate that decided, if one did.
    pub gate: Option<Gate>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouteDecision {
    pub side: Side,
    /// Why, in words for the user and the logs.
    pub reason: String,
    pub explanation: Option<Explanation>,
}

impl RouteDecision {
    pub fn new(side: Side, reason: impl Into<String>) -> Self {
        Self { side, reason: reason.into(), explanation: None }
    }
}

/// What one attempt of a step cost, reported back to the policy (budgets are kept by the cloud
/// guard, whatever the policy).
#[derive(Clone, Debug)]
pub struct Observation {
    pub side: Side,
    /// `None` when the attempt failed.
    pub usage: Option<Usage>,
    pub cost: f64,
}

/// The query-level decision's third option: plan the query into a graph, or answer it in one step.
#[derive(Clone, Debug, PartialEq)]
pub struct DecompositionDecision {
    pub decompose: bool,
    /// Why, in words for the user and the logs.
    pub reason: String,
}

pub trait RoutePolicy: Send + Sync {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision;
    /// Whether a query long enough to plan is decomposed (`Decomposition::WhenItPays`), asked
    /// before any model call with `request.step` the whole query. A policy with no estimate of
    /// what decomposing gains answers in one step.
    fn decompose(&self, _request: &RouteRequest<'_>) -> DecompositionDecision {
        DecompositionDecision { decompose: false, reason: "the routing policy has no estimate of what decomposing gains".into() }
    }
    /// Learns from what a step cost (speeds, error rate); the baselines ignore it.
    fn observe(&self, _observation: &Observation) {}
}

/// Everything on one side (when it is available).
#[derive(Clone, Copy, Debug)]
pub struct Fixed(pub Side);

impl RoutePolicy for Fixed {
    fn route(&self, request: &RouteRequest<'_>) -> RouteDecision {
        match (self.0, request.cloud_available, request.edge_available) {
            (Side::Cloud, true, _) | (Side::Edge, _, true) => RouteDecision::new(self.0, format!("policy: always {:?}", self.0).to_lowercase()),
            (Side::Cloud, false, _) => RouteDecision::new(Side::Edge, "no cloud configured"),
            (Side::Edge, _, false) => RouteDecision::new(Side::Cloud, "no edge model loaded"),
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
            Step::WholeQuery => (false, "no difficulty hint for an unplanned query"),
            Step::Escalation { .. } => (false, "no difficulty hint for an unplanned query"),
            Step::Subtask { subtask, .. } if subtask.difficulty == Difficulty::Hard => (true, "planner marked the subtask hard"),
            Step::Subtask { .. } => (false, "planner marked the subtask easy or medium"),
            Step::Synthesis { plan } if plan.subtasks.len() > 2 => (true, "combining many results"),
            Step::Synthesis { .. } => (false, "combining few results"),
        };
        match (wants_cloud && request.cloud_available, request.edge_available) {
            (true, _) | (false, false) => RouteDecision::new(Side::Cloud, why),
            (false, true) => RouteDecision::new(Side::Edge, if wants_cloud { "no cloud configured" } else { why }),
        }
    }
}
