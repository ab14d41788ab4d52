//! Escalation: after the edge has answered a whole query, whether to ask the cloud instead.
//!
//! The signal is the edge's confidence in its own answer: the mean natural log-probability of the
//! tokens it generated (on gsm8k dev it separates right from wrong edge answers with ROC AUC 0.73,
//! where the answer line alone or "stated an answer" are chance: docs/benchmarks.md). Two logistic
//! curves over that confidence, fitted on training questions, give P(edge right) and P(cloud right);
//! their difference is the escalation's quality, weighed by the router like any other step's gain.
//! The same [`confidence`] is computed here at run time and by the training command.

use serde::{Deserialize, Serialize};

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// P(right) = σ(bias + slope · confidence).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub bias: f64,
    pub slope: f64,
}

impl Logistic {
    pub fn probability(&self, confidence: f64) -> f64 {
        sigmoid(self.bias + self.slope * confidence)
    }

    /// Maximum-likelihood fit by Newton's method (two parameters; converges in a few steps).
    /// `None` when the data cannot be fitted (one class only, or no spread in `x`).
    pub fn fit(x: &[f64], y: &[bool]) -> Option<Self> {
        let positives = y.iter().filter(|v| **v).count();
        let spread = x.iter().copied().fold(f64::NEG_INFINITY, f64::max) - x.iter().copied().fold(f64::INFINITY, f64::min);
        if x.len() != y.len() || positives == 0 || positives == y.len() || spread.is_nan() || spread <= 1e-9 {
            return None;
        }
        let (mut bias, mut slope) = (0.0_f64, 0.0_f64);
        for _ in 0..100 {
            // Gradient and Hessian of the log-likelihood, with a tiny ridge for separable data.
            let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, 0.0, 1e-6, 0.0, 1e-6);
            for (xi, yi) in x.iter().zip(y) {
                let p = sigmoid(bias + slope * xi);
                let residual = f64::from(u8::from(*yi)) - p;
                let w = p * (1.0 - p);
                g0 += residual;
                g1 += residual * xi;
                h00 += w;
                h01 += w * xi;
                h11 += w * xi * xi;
            }
            g0 -= 1e-6 * bias;
            g1 -= 1e-6 * slope;
            let det = h00 * h11 - h01 * h01;
            if det.abs() < 1e-12 {
                return None;
            }
            let (step0, step1) = ((h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det);
            bias += step0;
            slope += step1;
            if step0.abs().max(step1.abs()) < 1e-9 {
                break;
            }
        }
        (bias.is_finite() && slope.is_finite()).then_some(Self { bias, slope })
    }
}

/// The escalation's learned part, with where it was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EscalationModel {
    /// P(the edge's answer is right | its confidence).
    pub edge_right: Logistic,
    /// P(the cloud's answer to the same query is right | the edge's confidence): harder questions
    /// lower both.
    pub cloud_right: Logistic,
    pub measured_on: String,
}

impl EscalationModel {
    /// How much more likely the cloud's answer is right than the edge's, given the edge's
    /// confidence: the quality of escalating.
    pub fn gain(&self, confidence: f64) -> f64 {
        self.cloud_right.probability(confidence) - self.edge_right.probability(confidence)
    }
}

/// The edge's confidence in an answer: the mean natural log-probability of its tokens
/// ([`crate::model::Usage::token_logprobs`]). `None` when the engine reported none (the ggml
/// engine, or a cloud answer).
pub fn confidence(token_logprobs: &[f32]) -> Option<f64> {
    (!token_logprobs.is_empty()).then(|| token_logprobs.iter().map(|v| f64::from(*v)).sum::<f64>() / token_logprobs.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_recovers_the_curve_that_generated_the_data() {
        let truth = Logistic { bias: 2.0, slope: 6.0 };
        // Deterministic sample: at each x, the share of positives is the true probability.
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..=40 {
            let xi = -0.8 + 0.02 * f64::from(i);
            let positives = (truth.probability(xi) * 50.0).round() as usize;
            for k in 0..50 {
                x.push(xi);
                y.push(k < positives);
            }
        }
        let fitted = Logistic::fit(&x, &y).unwrap();
        assert!((fitted.bias - truth.bias).abs() < 0.1, "{fitted:?}");
        assert!((fitted.slope - truth.slope).abs() < 0.3, "{fitted:?}");
    }

    #[test]
    fn one_class_or_no_spread_cannot_be_fitted() {
        assert_eq!(Logistic::fit(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(Logistic::fit(&[0.1, 0.1, 0.1, 0.1], &[true, false, true, false]), None);
        assert_eq!(Logistic::fit(&[], &[]), None);
    }

    #[test]
    fn low_confidence_means_a_larger_gain() {
        let model = EscalationModel { edge_right: Logistic { bias: 2.0, slope: 8.0 }, cloud_right: Logistic { bias: 0.8, slope: 1.0 }, measured_on: "test".into() };
        assert!(model.gain(-0.6) > model.gain(-0.1));
        assert!(model.gain(-0.6) > 0.0);
    }

    #[test]
    fn confidence_is_the_mean_log_probability() {
        assert_eq!(confidence(&[]), None);
        assert!((confidence(&[-0.5, 0.0, -1.0]).unwrap() + 0.5).abs() < 1e-9);
    }
}
