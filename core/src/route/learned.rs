//! What the router has learned offline, as a versioned JSON file embedded in the SDK: per kind of
//! query, the cloud's measured advantage on whole queries, what decomposing a query gains and
//! costs, and the escalation curves over the edge's confidence. `cargo xtask train-query-router`
//! reproduces it from benchmark results.
//!
//! Subtasks of a plan have no learned estimate: a logistic model over subtask features did no
//! better than random routing at its cloud share on 100 gsm8k dev questions, and no rule measured
//! beat every step on the cloud, so each step gets the same neutral value (docs/router.md).

use serde::{Deserialize, Serialize};

use super::escalation::EscalationModel;
use super::query_kind::QueryKind;

pub const WEIGHTS_FORMAT: &str = "hybridflow-router";
pub const WEIGHTS_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouterWeights {
    pub format: String,
    pub version: u32,
    /// The query-level numbers of open questions (measured on gsm8k), and of any query when no
    /// kind of its own is measured.
    #[serde(flatten)]
    pub open: QueryLevel,
    /// The query-level numbers of multiple-choice questions (measured on mmlu-stem's train split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_choice: Option<QueryLevel>,
}

/// What the router knows about answering a whole query of one kind in one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryLevel {
    /// The query-level decision's quality: how much more often the cloud than the edge answered a
    /// whole query right in the training data (no per-query feature predicted it better on held-out
    /// questions: docs/router.md). `cargo xtask train-query-router` measures it.
    #[serde(default)]
    pub whole_query: WholeQueryGain,
    /// Whether to escalate a whole query the edge answered, from its confidence; absent, the
    /// edge's answers are kept. `cargo xtask train-query-router` fits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationModel>,
    /// What answering through a plan (every step on the cloud) gains and costs; absent, queries
    /// of this kind are not decomposed unless the app asks for it (`Decomposition::LongQueries`).
    /// `cargo xtask train-query-router` measures it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decomposition: Option<DecompositionGain>,
}

/// Decomposition's measured advantage and cost, for the query-level decision's third option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecompositionGain {
    /// P(the plan's answer is right) − P(the edge's one-step answer is right), every step of the
    /// plan on the cloud.
    pub gain: f32,
    /// The plan's cloud tokens (planning, steps, synthesis; input and output) over one cloud
    /// chain-of-thought call's, on the same questions.
    pub token_ratio: f32,
    pub measured_on: String,
}

/// The cloud's advantage on whole queries, with where it was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WholeQueryGain {
    /// P(cloud right) − P(edge right), answering in one step.
    pub gain: f32,
    /// Mean tokens of the cloud's answer (the cost estimate of sending a query).
    pub answer_tokens: u32,
    pub measured_on: String,
}

/// Until measured: the cloud is taken to be better one time in four, with a mid-sized answer.
impl Default for WholeQueryGain {
    fn default() -> Self {
        Self { gain: 0.25, answer_tokens: 256, measured_on: "prior (not measured)".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("router weights are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("router weights have format {found:?} version {version}; this SDK reads {WEIGHTS_FORMAT:?} version {WEIGHTS_VERSION}")]
    Incompatible { found: String, version: u32 },
}

impl RouterWeights {
    /// The weights that ship with the SDK.
    pub fn builtin() -> Self {
        Self::from_json(include_str!("../../assets/router-weights.json")).expect("the shipped weights are valid")
    }

    pub fn from_json(json: &str) -> Result<Self, WeightsError> {
        let weights: Self = serde_json::from_str(json)?;
        if weights.format != WEIGHTS_FORMAT || weights.version != WEIGHTS_VERSION {
            return Err(WeightsError::Incompatible { found: weights.format, version: weights.version });
        }
        Ok(weights)
    }

    /// The query-level numbers for this kind of query.
    pub fn query_level(&self, kind: QueryKind) -> &QueryLevel {
        match (kind, &self.multiple_choice) {
            (QueryKind::MultipleChoice, Some(numbers)) => numbers,
            _ => &self.open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_weights_round_trip_and_incompatible_ones_are_rejected() {
        let weights = RouterWeights::builtin();
        assert_eq!(RouterWeights::from_json(&serde_json::to_string(&weights).unwrap()).unwrap(), weights);
        let mut old = weights.clone();
        old.version = 1;
        assert!(matches!(RouterWeights::from_json(&serde_json::to_string(&old).unwrap()), Err(WeightsError::Incompatible { .. })));
        assert!(RouterWeights::from_json("{").is_err());
    }
}
