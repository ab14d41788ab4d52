//! Router features, computed on the device in microseconds. One function serves training and
//! inference, so the model never sees features at inference that differ from training (a flaw of
//! the prototype).

use crate::plan::{Difficulty, Subtask, SubtaskKind};

/// Buckets of the hashed n-gram features.
pub const HASH_BUCKETS: usize = 1 << 12;
/// Names of the dense features, in order (for the weights file and for people).
pub const DENSE_FEATURES: &[&str] = &[
    "kind_math", "kind_reasoning", "kind_knowledge", "kind_writing",
    "difficulty_easy", "difficulty_medium", "difficulty_hard",
    "log_task_chars", "log_expected_tokens", "depth", "fan_in", "fan_out", "numbers_in_task", "query_words",
];

/// Where a subtask sits in its plan.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GraphPosition {
    pub depth: usize,
    pub fan_in: usize,
    pub fan_out: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// (bucket, value), L2-normalised, buckets unique.
    pub sparse: Vec<(u32, f32)>,
    pub dense: [f32; 14],
}

/// FNV-1a of `prefix` then `text` (the prefix separates the kinds of n-gram).
pub(crate) fn fnv1a(prefix: u8, text: &str) -> u32 {
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

pub fn features(query: &str, subtask: &Subtask, position: GraphPosition) -> Features {
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
    let mut dense = [0f32; 14];
    dense[kind] = 1.0;
    dense[difficulty] = 1.0;
    dense[7] = (1.0 + subtask.task.chars().count() as f32).ln() / 8.0;
    dense[8] = (1.0 + subtask.expected_tokens as f32).ln() / 8.0;
    dense[9] = position.depth as f32 / 4.0;
    dense[10] = position.fan_in as f32 / 4.0;
    dense[11] = position.fan_out as f32 / 4.0;
    dense[12] = task_words.iter().filter(|w| w.chars().any(|c| c.is_ascii_digit())).count() as f32 / 8.0;
    dense[13] = (1.0 + words(query).len() as f32).ln() / 8.0;
    Features { sparse, dense }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_deterministic_normalised_and_reflect_the_hints() {
        let mut subtask = Subtask::new("s1", "Compute 12 times 7", &[]);
        subtask.kind = SubtaskKind::Math;
        subtask.difficulty = Difficulty::Hard;
        let a = features("How much?", &subtask, GraphPosition { depth: 1, fan_in: 2, fan_out: 0 });
        assert_eq!(a, features("How much?", &subtask, GraphPosition { depth: 1, fan_in: 2, fan_out: 0 }));
        let norm: f32 = a.sparse.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!((a.dense[0], a.dense[6], a.dense[10]), (1.0, 1.0, 0.5));
        assert!(a.dense[12] > 0.0, "numbers counted");
        assert!(DENSE_FEATURES.len() == a.dense.len());
    }
}
