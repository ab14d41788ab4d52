//! A learned per-query model for `train-query-router`'s check of RouteLLM-style routing: hashed
//! word and character n-grams of a task and its query plus a few dense features, scored by
//! logistic regression; and ROC AUC. Analysis only: the SDK's router ships measured numbers and a
//! rule, not this model (docs/router.md says why).

use hybridflow_core::plan::{Difficulty, Subtask, SubtaskKind};
use hybridflow_core::route::escalation::sigmoid;

/// Buckets of the hashed n-gram features.
pub const HASH_BUCKETS: usize = 1 << 12;
/// Names of the dense features, in order.
pub const DENSE_FEATURES: [&str; 11] = [
    "kind_math", "kind_reasoning", "kind_knowledge", "kind_writing",
    "difficulty_easy", "difficulty_medium", "difficulty_hard",
    "log_task_chars", "log_expected_tokens", "numbers_in_task", "query_words",
];

#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// (bucket, value), L2-normalised, buckets unique.
    pub sparse: Vec<(u32, f32)>,
    pub dense: [f32; DENSE_FEATURES.len()],
}

/// FNV-1a of `prefix` then `text` (the prefix separates the kinds of n-gram).
fn fnv1a(prefix: u8, text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in std::iter::once(prefix).chain(text.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

pub fn features(query: &str, subtask: &Subtask) -> Features {
    let mut counts: std::collections::BTreeMap<u32, f32> = std::collections::BTreeMap::new();
    let mut add = |prefix: u8, gram: &str| *counts.entry(fnv1a(prefix, gram) % HASH_BUCKETS as u32).or_default() += 1.0;
    let task_words = words(&subtask.task);
    for word in &task_words {
        add(b't', word);
    }
    for pair in task_words.windows(2) {
        add(b'b', &format!("{} {}", pair[0], pair[1]));
    }
    let lower = subtask.task.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    for gram in chars.windows(3) {
        add(b'c', &gram.iter().collect::<String>());
    }
    for word in words(query) {
        add(b'q', &word);
    }
    let norm = counts.values().map(|v| v * v).sum::<f32>().sqrt().max(1.0);
    let sparse = counts.into_iter().map(|(bucket, count)| (bucket, count / norm)).collect();

    let kind = match subtask.kind {
        SubtaskKind::Math => 0,
        SubtaskKind::Reasoning => 1,
        SubtaskKind::Knowledge => 2,
        SubtaskKind::Writing => 3,
    };
    let difficulty = match subtask.difficulty {
        Difficulty::Easy => 4,
        Difficulty::Medium => 5,
        Difficulty::Hard => 6,
    };
    let mut dense = [0f32; DENSE_FEATURES.len()];
    dense[kind] = 1.0;
    dense[difficulty] = 1.0;
    dense[7] = (1.0 + subtask.task.chars().count() as f32).ln() / 8.0;
    dense[8] = (1.0 + subtask.expected_tokens as f32).ln() / 8.0;
    dense[9] = task_words.iter().filter(|w| w.chars().any(|c| c.is_ascii_digit())).count() as f32 / 8.0;
    dense[10] = (1.0 + words(query).len() as f32).ln() / 8.0;
    Features { sparse, dense }
}

/// One example: its features and whether the cloud helped.
#[derive(Clone, Debug)]
pub struct Example {
    pub features: Features,
    pub cloud_helps: bool,
}

/// Logistic regression over [`Features`].
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub bias: f32,
    pub dense: [f32; DENSE_FEATURES.len()],
    pub sparse: Vec<f32>,
}

impl Model {
    /// The score before the sigmoid.
    pub fn logit(&self, features: &Features) -> f32 {
        let dense: f32 = self.dense.iter().zip(&features.dense).map(|(w, x)| w * x).sum();
        let sparse: f32 = features.sparse.iter().map(|(bucket, x)| self.sparse[*bucket as usize] * x).sum();
        self.bias + dense + sparse
    }

    /// P(the cloud helps).
    pub fn predict(&self, features: &Features) -> f32 {
        sigmoid(f64::from(self.logit(features))) as f32
    }

    /// Trains by stochastic gradient descent on the log loss with L2 regularisation, positives
    /// weighted by the class ratio (they are rare). Deterministic: examples in the given order.
    pub fn train(examples: &[Example], epochs: usize, learning_rate: f32, l2: f32) -> Self {
        let positives = examples.iter().filter(|e| e.cloud_helps).count().max(1) as f32;
        let negatives = (examples.len() as f32 - positives).max(1.0);
        let positive_weight = negatives / positives;
        let mut model = Self {
            bias: (positives / (positives + negatives)).ln() - (negatives / (positives + negatives)).ln(),
            dense: [0.0; DENSE_FEATURES.len()],
            sparse: vec![0.0; HASH_BUCKETS],
        };
        for epoch in 0..epochs {
            let rate = learning_rate / (1.0 + epoch as f32 * 0.1);
            for example in examples {
                let target = if example.cloud_helps { 1.0 } else { 0.0 };
                let weight = if example.cloud_helps { positive_weight } else { 1.0 };
                let gradient = weight * (model.predict(&example.features) - target);
                model.bias -= rate * gradient;
                for (w, x) in model.dense.iter_mut().zip(&example.features.dense) {
                    *w -= rate * (gradient * x + l2 * *w);
                }
                for (bucket, x) in &example.features.sparse {
                    let w = &mut model.sparse[*bucket as usize];
                    *w -= rate * (gradient * x + l2 * *w);
                }
            }
        }
        model
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

    #[test]
    fn features_are_deterministic_normalised_and_reflect_the_hints() {
        let mut subtask = Subtask::new("s1", "Compute 12 times 7", &[]);
        subtask.kind = SubtaskKind::Math;
        subtask.difficulty = Difficulty::Hard;
        let a = features("How much?", &subtask);
        assert_eq!(a, features("How much?", &subtask));
        let norm: f32 = a.sparse.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!((a.dense[0], a.dense[6]), (1.0, 1.0));
        assert!(a.dense[9] > 0.0, "numbers counted");
    }

    fn example(task: &str, difficulty: Difficulty, cloud_helps: bool) -> Example {
        let mut subtask = Subtask::new("s", task, &[]);
        subtask.difficulty = difficulty;
        Example { features: features("q", &subtask), cloud_helps }
    }

    #[test]
    fn training_learns_a_separable_signal_and_auc_measures_it() {
        let mut examples = Vec::new();
        for i in 0..40 {
            examples.push(example(&format!("integrate the polynomial {i}"), Difficulty::Hard, true));
            examples.push(example(&format!("name the colour {i}"), Difficulty::Easy, false));
            examples.push(example(&format!("name the animal {i}"), Difficulty::Easy, false));
        }
        let model = Model::train(&examples, 20, 0.5, 1e-4);
        let scores: Vec<f32> = examples.iter().map(|e| model.predict(&e.features)).collect();
        let labels: Vec<bool> = examples.iter().map(|e| e.cloud_helps).collect();
        assert!(roc_auc(&scores, &labels) > 0.99);
    }

    #[test]
    fn auc_of_known_orders() {
        assert_eq!(roc_auc(&[0.9, 0.8, 0.1], &[true, true, false]), 1.0);
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, false]), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), 0.5);
    }
}
