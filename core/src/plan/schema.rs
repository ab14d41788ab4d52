//! The plan format.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What sort of work a subtask is; a routing feature and a hint for the prompt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubtaskKind {
    /// Arithmetic or symbolic calculation.
    Math,
    /// Logical deduction, comparison, planning.
    #[default]
    Reasoning,
    /// Recalling facts.
    Knowledge,
    /// Producing prose or code.
    Writing,
}

/// The planner's guess of how hard a subtask is for a small model; a routing feature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    Easy,
    #[default]
    Medium,
    Hard,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subtask {
    pub id: String,
    pub task: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub kind: SubtaskKind,
    #[serde(default)]
    pub difficulty: Difficulty,
    /// Planner's estimate of the answer's length, in tokens.
    #[serde(default = "default_expected_tokens")]
    pub expected_tokens: u32,
}

fn default_expected_tokens() -> u32 {
    96
}

impl Subtask {
    pub fn new(id: impl Into<String>, task: impl Into<String>, depends_on: &[&str]) -> Self {
        Self {
            id: id.into(),
            task: task.into(),
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
            kind: SubtaskKind::default(),
            difficulty: Difficulty::default(),
            expected_tokens: default_expected_tokens(),
        }
    }
}

/// A plan as the planner wrote it (not yet validated).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub subtasks: Vec<Subtask>,
}

/// The JSON schema of a plan, with at most `max_subtasks` subtasks.
pub fn plan_schema(max_subtasks: usize) -> Value {
    json!({
        "type": "object",
        "properties": {
            "subtasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_subtasks,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "task": {"type": "string"},
                        "depends_on": {"type": "array", "items": {"type": "string"}},
                        "kind": {"type": "string", "enum": ["math", "reasoning", "knowledge", "writing"]},
                        "difficulty": {"type": "string", "enum": ["easy", "medium", "hard"]},
                        "expected_tokens": {"type": "integer"}
                    },
                    "required": ["id", "task", "depends_on", "kind", "difficulty", "expected_tokens"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["subtasks"],
        "additionalProperties": false
    })
}
