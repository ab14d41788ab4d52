//! Tolerant, incremental plan parsing.
//!
//! Small models wrap JSON in code fences, add prose after it, stop mid-object, write ids as
//! numbers or a single dependency as a bare string. Rather than parse the whole text as one JSON
//! value, a scanner finds each complete subtask object inside the plan's array as soon as its
//! closing brace arrives: the same code serves a finished text and a stream, so the subtasks a
//! stream started are exactly those the final parse contains.

use serde_json::Value;

use super::schema::{Difficulty, Plan, Subtask, SubtaskKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no subtask object found in the planner output")]
    NoSubtasks,
}

/// Feeds planner output in pieces; yields each subtask once its object is complete.
#[derive(Debug, Default)]
pub struct PlanStreamParser {
    text: String,
    /// Byte offset where scanning resumes.
    cursor: usize,
    /// Open brackets, innermost last.
    stack: Vec<u8>,
    in_string: bool,
    escaped: bool,
    /// Start of the subtask object being read, if any.
    object_start: Option<usize>,
    /// The root value closed: whatever follows is trailing prose.
    root_closed: bool,
    subtasks: Vec<Subtask>,
}

impl PlanStreamParser {
    pub fn push(&mut self, piece: &str) -> Vec<Subtask> {
        self.text.push_str(piece);
        let before = self.subtasks.len();
        self.scan();
        self.subtasks[before..].to_vec()
    }

    /// All subtasks read so far, as a plan; an error when there is none.
    pub fn finish(self) -> Result<Plan, ParseError> {
        if self.subtasks.is_empty() {
            return Err(ParseError::NoSubtasks);
        }
        Ok(Plan { subtasks: self.subtasks })
    }

    fn scan(&mut self) {
        let bytes = self.text.as_bytes();
        while self.cursor < bytes.len() && !self.root_closed {
            let at = self.cursor;
            let byte = bytes[at];
            self.cursor += 1;
            if self.in_string {
                match (self.escaped, byte) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' if !self.stack.is_empty() => self.in_string = true,
                b'{' | b'[' => {
                    // A subtask is an object directly inside the plan's array: the root array, or
                    // an array that is a value of the root object.
                    let in_plan_array = byte == b'{'
                        && self.stack.last() == Some(&b'[')
                        && (self.stack.len() == 1 || (self.stack.len() == 2 && self.stack[0] == b'{'));
                    if in_plan_array {
                        self.object_start = Some(at);
                    }
                    self.stack.push(byte);
                }
                b'}' | b']' => {
                    let Some(open) = self.stack.pop() else { continue };
                    if open == b'{' && byte == b'}' {
                        if let Some(start) = self.object_start.filter(|_| self.stack.last() == Some(&b'[')) {
                            self.object_start = None;
                            let index = self.subtasks.len();
                            if let Ok(value) = serde_json::from_str::<Value>(&self.text[start..=at]) {
                                self.subtasks.push(subtask_from_value(&value, index));
                            }
                        }
                    }
                    if self.stack.is_empty() {
                        self.root_closed = true;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Parses a complete (or cut) planner output.
pub fn parse_plan(text: &str) -> Result<Plan, ParseError> {
    let mut parser = PlanStreamParser::default();
    parser.push(text);
    parser.finish()
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a subtask leniently: ids and dependencies as strings or numbers, a single dependency
/// without its array, unknown kinds as the default. Missing fields are left for validation.
fn subtask_from_value(value: &Value, index: usize) -> Subtask {
    let field = |names: &[&str]| names.iter().find_map(|n| value.get(*n));
    let id = field(&["id"]).and_then(text_of).filter(|s| !s.is_empty()).unwrap_or_else(|| format!("s{}", index + 1));
    let task = field(&["task", "description", "step"]).and_then(text_of).unwrap_or_default();
    let depends_on = match field(&["depends_on", "dependencies", "deps"]) {
        Some(Value::Array(items)) => items.iter().filter_map(text_of).collect(),
        Some(single) => text_of(single).into_iter().filter(|s| !s.is_empty()).collect(),
        None => Vec::new(),
    };
    let word = |names: &[&str]| field(names).and_then(Value::as_str).map(str::to_ascii_lowercase);
    let kind = match word(&["kind", "type"]).as_deref() {
        Some("math") => SubtaskKind::Math,
        Some("knowledge") => SubtaskKind::Knowledge,
        Some("writing") => SubtaskKind::Writing,
        _ => SubtaskKind::Reasoning,
    };
    let difficulty = match word(&["difficulty"]).as_deref() {
        Some("easy") => Difficulty::Easy,
        Some("hard") => Difficulty::Hard,
        _ => Difficulty::Medium,
    };
    let expected_tokens = field(&["expected_tokens"]).and_then(Value::as_u64).map_or(96, |n| n.clamp(1, 4096) as u32);
    Subtask { id, task, depends_on, kind, difficulty, expected_tokens }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{"subtasks":[{"id":"a","task":"Find x","depends_on":[],"kind":"math","difficulty":"easy","expected_tokens":20},{"id":"b","task":"Use x, say \"}\"","depends_on":["a"],"kind":"writing","difficulty":"hard","expected_tokens":50}]}"#;

    #[test]
    fn parses_a_clean_plan() {
        let plan = parse_plan(PLAN).unwrap();
        assert_eq!(plan.subtasks.len(), 2);
        assert_eq!(plan.subtasks[1].task, "Use x, say \"}\"");
        assert_eq!(plan.subtasks[1].depends_on, vec!["a"]);
        assert_eq!((plan.subtasks[0].kind, plan.subtasks[1].difficulty), (SubtaskKind::Math, Difficulty::Hard));
    }

    #[test]
    fn tolerates_fences_prose_and_trailing_text() {
        let wrapped = format!("Sure! Here is the plan:\n```json\n{PLAN}\n```\nLet me know {{if}} [you] need more.");
        assert_eq!(parse_plan(&wrapped).unwrap(), parse_plan(PLAN).unwrap());
    }

    #[test]
    fn a_cut_plan_keeps_its_complete_subtasks() {
        let cut = &PLAN[..PLAN.find(r#"{"id":"b""#).unwrap() + 12];
        let plan = parse_plan(cut).unwrap();
        assert_eq!(plan.subtasks.len(), 1);
        assert_eq!(plan.subtasks[0].id, "a");
        assert_eq!(parse_plan("{\"subtasks\": [{\"id\": \"a\", \"ta"), Err(ParseError::NoSubtasks));
        assert_eq!(parse_plan("no json here"), Err(ParseError::NoSubtasks));
    }

    #[test]
    fn lenient_fields() {
        let plan = parse_plan(r#"[{"id":1,"description":"first"},{"task":"second","depends_on":1,"kind":"Poetry"}]"#).unwrap();
        assert_eq!(plan.subtasks[0].id, "1");
        assert_eq!(plan.subtasks[0].task, "first");
        assert_eq!(plan.subtasks[1].id, "s2");
        assert_eq!(plan.subtasks[1].depends_on, vec!["1"]);
        assert_eq!(plan.subtasks[1].kind, SubtaskKind::Reasoning);
        assert_eq!(plan.subtasks[1].expected_tokens, 96);
    }

    #[test]
    fn streaming_yields_each_subtask_once_when_complete() {
        let mut parser = PlanStreamParser::default();
        let mut seen = Vec::new();
        for chunk in PLAN.as_bytes().chunks(7) {
            for subtask in parser.push(std::str::from_utf8(chunk).unwrap()) {
                seen.push((subtask.id.clone(), seen.len()));
            }
        }
        assert_eq!(seen.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(parser.finish().unwrap(), parse_plan(PLAN).unwrap());
    }

    #[test]
    fn first_subtask_arrives_before_the_plan_ends() {
        let mut parser = PlanStreamParser::default();
        let split = PLAN.find(r#",{"id":"b""#).unwrap();
        assert_eq!(parser.push(&PLAN[..split]).len(), 1);
        assert_eq!(parser.push(&PLAN[split..]).len(), 1);
    }
}
