//! The learned part of the router: logistic regression estimating the probability that running a
//! subtask on the cloud instead of the edge changes the final answer from wrong to right. Its
//! weights are a versioned JSON file; `cargo xtask train-router` reproduces them from profiled data.

use serde::{Deserialize, Serialize};

use super::escalation::EscalationModel;
use super::features::{Features, DENSE_FEATURES, HASH_BUCKETS};
use super::query_kind::QueryKind;

pub const WEIGHTS_FORMAT: &str = "hybridflow-router-logistic";
pub const WEIGHTS_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouterWeights {
    pub format: String,
    pub version: u32,
    /// Where the weights come from (data set, examples, command).
    pub trained_on: String,
    pub bias: f32,
    pub dense: Vec<f32>,
    pub sparse: Vec<f32>,
    /// How often, in the training data, a subtask whose two results disagreed was one where the
    /// cloud fixed the answer: the target of an on-device calibration probe that saw a
    /// disagreement (`route::calibration`).
    #[serde(default = "prior_helps_when_results_differ")]
    pub helps_when_results_differ: f32,
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

/// Until measured: a disagreement is taken to mean a better answer one time in four.
fn prior_helps_when_results_differ() -> f32 {
    0.25
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("router weights are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("router weights have format {found:?} version {version}; this SDK reads {WEIGHTS_FORMAT:?} version {WEIGHTS_VERSION}")]
    Incompatible { found: String, version: u32 },
    #[error("router weights have {dense} dense and {sparse} sparse values; expected {} and {}", DENSE_FEATURES.len(), HASH_BUCKETS)]
    Shape { dense: usize, sparse: usize },
}

/// One profiled subtask: its features and whether the cloud's result changed the outcome.
#[derive(Clone, Debug)]
pub struct Example {
    pub features: Features,
    pub cloud_helps: bool,
}

/// The logistic function (also the on-device calibration's, `route::calibration`).
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
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
        if weights.dense.len() != DENSE_FEATURES.len() || weights.sparse.len() != HASH_BUCKETS {
            return Err(WeightsError::Shape { dense: weights.dense.len(), sparse: weights.sparse.len() });
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

    /// The model's score before the sigmoid (what the on-device calibration rescales).
    pub fn logit(&self, features: &Features) -> f32 {
        let dense: f32 = self.dense.iter().zip(&features.dense).map(|(w, x)| w * x).sum();
        let sparse: f32 = features.sparse.iter().map(|(bucket, x)| self.sparse[*bucket as usize] * x).sum();
        self.bias + dense + sparse
    }

    /// P(cloud changes the outcome for the better), uncalibrated.
    pub fn predict(&self, features: &Features) -> f32 {
        sigmoid(f64::from(self.logit(features))) as f32
    }

    /// Trains by stochastic gradient descent on the log loss with L2 regularisation, positives
    /// weighted by the class ratio (they are rare). Deterministic: examples in the given order.
    pub fn train(examples: &[Example], epochs: usize, learning_rate: f32, l2: f32, trained_on: String) -> Self {
        let positives = examples.iter().filter(|e| e.cloud_helps).count().max(1) as f32;
        let negatives = (examples.len() as f32 - positives).max(1.0);
        let positive_weight = negatives / positives;
        let mut weights = Self {
            format: WEIGHTS_FORMAT.into(),
            version: WEIGHTS_VERSION,
            trained_on,
            bias: (positives / (positives + negatives)).ln() - (negatives / (positives + negatives)).ln(),
            dense: vec![0.0; DENSE_FEATURES.len()],
            sparse: vec![0.0; HASH_BUCKETS],
            helps_when_results_differ: prior_helps_when_results_differ(),
            open: QueryLevel::default(),
            multiple_choice: None,
        };
        for epoch in 0..epochs {
            let rate = learning_rate / (1.0 + epoch as f32 * 0.1);
            for example in examples {
                let target = if example.cloud_helps { 1.0 } else { 0.0 };
                let weight = if example.cloud_helps { positive_weight } else { 1.0 };
                let gradient = weight * (weights.predict(&example.features) - target);
                weights.bias -= rate * gradient;
                for (w, x) in weights.dense.iter_mut().zip(&example.features.dense) {
                    *w -= rate * (gradient * x + l2 * *w);
                }
                for (bucket, x) in &example.features.sparse {
                    let w = &mut weights.sparse[*bucket as usize];
                    *w -= rate * (gradient * x + l2 * *w);
                }
            }
        }
        weights
    }
}

/// Area under the ROC curve of `scores` against `labels` (ties count half).
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> f64 {
    let positives: Vec<f32> = scores.iter().zip(labels).filter(|(_, l)| **l).map(|(s, _)| *s).collect();
    let negatives: Vec<f32> = scores.iter().zip(labels).filter(|(_, l)| !**l).map(|(s, _)| *s).collect();
    if positives.is_empty() || negatives.is_empty() {
        return 0.5;
    }
    let mut wins = 0.0;
    for p in &positives {
        for n in &negatives {
            wins += if p > n { 1.0 } else if p == n { 0.5 } else { 0.0 };
        }
    }
    wins / (positives.len() * negatives.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Difficulty, Subtask};
    use crate::route::features::{features, GraphPosition};

    fn example(task: &str, difficulty: Difficulty, cloud_helps: bool) -> Example {
        let mut subtask = Subtask::new("s", task, &[]);
        subtask.difficulty = difficulty;
        Example { features: features("q", &subtask, GraphPosition::default()), cloud_helps }
    }

    #[test]
    fn training_learns_a_separable_signal_and_auc_measures_it() {
        let mut examples = Vec::new();
        for i in 0..40 {
            examples.push(example(&format!("integrate the polynomial {i}"), Difficulty::Hard, true));
            examples.push(example(&format!("name the colour {i}"), Difficulty::Easy, false));
            examples.push(example(&format!("name the animal {i}"), Difficulty::Easy, false));
        }
        let weights = RouterWeights::train(&examples, 20, 0.5, 1e-4, "test".into());
        let scores: Vec<f32> = examples.iter().map(|e| weights.predict(&e.features)).collect();
        let labels: Vec<bool> = examples.iter().map(|e| e.cloud_helps).collect();
        assert!(roc_auc(&scores, &labels) > 0.99);
        let round_trip = RouterWeights::from_json(&serde_json::to_string(&weights).unwrap()).unwrap();
        assert_eq!(round_trip, weights);
    }

    #[test]
    fn auc_of_known_orders() {
        assert_eq!(roc_auc(&[0.9, 0.8, 0.1], &[true, true, false]), 1.0);
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, false]), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), 0.5);
    }

    #[test]
    fn incompatible_weights_are_rejected() {
        let mut weights = RouterWeights::builtin();
        weights.version = 99;
        assert!(matches!(RouterWeights::from_json(&serde_json::to_string(&weights).unwrap()), Err(WeightsError::Incompatible { .. })));
        let mut weights = RouterWeights::builtin();
        weights.sparse.truncate(3);
        assert!(matches!(RouterWeights::from_json(&serde_json::to_string(&weights).unwrap()), Err(WeightsError::Shape { .. })));
        assert!(RouterWeights::from_json("{").is_err());
    }
}
