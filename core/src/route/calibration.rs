//! Online calibration of the learned quality estimate on this device.
//!
//! The shipped weights were trained against one test cloud; the app's cloud may be stronger or
//! weaker, so the probability `q` they predict is recalibrated from outcomes observed here:
//! `q = σ(slope · logit + intercept)` (Platt scaling), starting at the identity and moved by one
//! gradient step of the log loss per observation, persisted with the router's statistics.
//!
//! The outcome comes from calibration probes: now and then a subtask routed to the edge (with
//! every gate open) also runs on the cloud, unseen by the user. The device cannot know which
//! result is right, only whether the two agree; training measured how often a disagreement meant
//! the cloud fixed the answer (`RouterWeights::helps_when_results_differ`), so the target of a
//! probe is that rate when the results differ and 0 when they agree: the same label as training,
//! in expectation.

use serde::{Deserialize, Serialize};

use super::learned::sigmoid;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub slope: f64,
    pub intercept: f64,
    pub observations: u64,
}

impl Default for Calibration {
    fn default() -> Self {
        Self { slope: 1.0, intercept: 0.0, observations: 0 }
    }
}

impl Calibration {
    /// The calibrated probability for the learned model's logit.
    pub fn apply(&self, logit: f64) -> f64 {
        sigmoid(self.slope * logit + self.intercept)
    }

    /// One gradient step of the log loss towards `target` (a probability). The rate decays with
    /// the number of observations so that a few early probes cannot swing the router, and the
    /// parameters stay in a range where the learned ranking still matters.
    pub fn update(&mut self, logit: f64, target: f64) {
        if !logit.is_finite() || !target.is_finite() {
            return;
        }
        let rate = 0.5 / (1.0 + self.observations as f64 / 20.0);
        let error = self.apply(logit) - target.clamp(0.0, 1.0);
        self.slope = (self.slope - rate * error * logit).clamp(0.2, 5.0);
        self.intercept = (self.intercept - rate * error).clamp(-8.0, 8.0);
        self.observations += 1;
    }
}

/// The last number in the text (commas dropped): how gsm8k answers are scored, and what two
/// results of an arithmetic subtask are compared by.
pub fn last_number(text: &str) -> Option<f64> {
    text.replace(',', "")
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter_map(|t| t.trim_matches('.').parse::<f64>().ok())
        .next_back()
}

/// Whether two results of the same subtask say the same thing: the same final number when either
/// has one, else mostly the same words (Jaccard similarity of word sets of at least one half).
pub fn results_agree(a: &str, b: &str) -> bool {
    match (last_number(a), last_number(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0),
        (None, None) => {
            let words = |text: &str| -> std::collections::HashSet<String> {
                text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
            };
            let (a, b) = (words(a), words(b));
            let union = a.union(&b).count();
            union == 0 || a.intersection(&b).count() * 2 >= union
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_until_observed() {
        let calibration = Calibration::default();
        assert!((calibration.apply(0.0) - 0.5).abs() < 1e-12);
        assert!((calibration.apply(2.0) - sigmoid(2.0)).abs() < 1e-12);
    }

    #[test]
    fn converges_towards_the_observed_rate_and_keeps_the_order() {
        // The model says 50 % everywhere it is asked; the device sees the cloud help 10 % of the time.
        let mut calibration = Calibration::default();
        for i in 0..400 {
            calibration.update(0.0, if i % 10 == 0 { 1.0 } else { 0.0 });
        }
        assert!((calibration.apply(0.0) - 0.1).abs() < 0.05, "{}", calibration.apply(0.0));
        assert!(calibration.apply(1.0) > calibration.apply(-1.0), "the slope stays positive");
        assert_eq!(calibration.observations, 400);
    }

    #[test]
    fn non_finite_inputs_change_nothing() {
        let mut calibration = Calibration::default();
        calibration.update(f64::NAN, 1.0);
        calibration.update(1.0, f64::INFINITY);
        assert_eq!(calibration, Calibration::default());
    }

    #[test]
    fn extracts_the_last_number() {
        assert_eq!(last_number("3 pens cost $6, so he pays 1,016."), Some(1016.0));
        assert_eq!(last_number("The answer is -4.5."), Some(-4.5));
        assert_eq!(last_number("no digits"), None);
    }

    #[test]
    fn agreement_compares_final_numbers_then_words() {
        assert!(results_agree("So she has 12 apples.", "The total is 12."));
        assert!(!results_agree("The total is 12.", "The total is 14."));
        assert!(!results_agree("The total is 12.", "I cannot tell."));
        assert!(results_agree("Paris is the capital", "the capital is Paris"));
        assert!(!results_agree("Paris is the capital", "Berlin, surely, in Germany"));
    }
}
