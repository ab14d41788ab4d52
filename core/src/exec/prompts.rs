//! Prompts of the execution stage. A subtask sees the query, its own task, its parents' results in
//! full and its further ancestors' results shortened to a token budget (the prototype passed only
//! the parents, so a grandchild lost what it needed).

use crate::model::Message;
use crate::plan::Subtask;

const STEP_SYSTEM: &str = "You solve one step of a larger question. Answer only your step, briefly \
and precisely, using the results of earlier steps. Show the key number or fact of your result.";
const SYNTHESIS_SYSTEM: &str = "Combine the results of the steps into the final answer to the \
question. Be concise and end with the final answer.";

/// What ends a step's prompt, before its task.
const YOUR_STEP: &str = "\nYour step: ";

/// Characters per token, for budgets (English text averages about four).
const CHARS_PER_TOKEN: usize = 4;

fn shorten(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// A direct answer is the query alone, under the model's own default system prompt: asking for
/// brevity cut the 0.5B edge's reasoning and its gsm8k accuracy by 7 points (docs/benchmarks.md).
pub fn direct_messages(query: &str) -> Vec<Message> {
    vec![Message::user(query)]
}

/// `parents` and `further` pair a subtask with its result (borrowed or owned text).
pub fn step_messages(query: &str, subtask: &Subtask, parents: &[(&Subtask, impl AsRef<str>)], further: &[(&Subtask, impl AsRef<str>)], context_tokens: usize) -> Vec<Message> {
    let mut prompt = format!("Question: {query}\n");
    if !parents.is_empty() || !further.is_empty() {
        prompt.push_str("\nResults of earlier steps:\n");
        if !further.is_empty() {
            let each = (context_tokens * CHARS_PER_TOKEN / further.len()).max(40);
            for (ancestor, result) in further.iter().rev() {
                prompt.push_str(&format!("- {}\n  {}\n", ancestor.task, shorten(result.as_ref(), each)));
            }
        }
        for (parent, result) in parents {
            prompt.push_str(&format!("- {}\n  {}\n", parent.task, result.as_ref().trim()));
        }
    }
    prompt.push_str(YOUR_STEP);
    prompt.push_str(&subtask.task);
    vec![Message::system(STEP_SYSTEM), Message::user(prompt)]
}

/// `results` pairs each subtask with its result, or `Err` with why it has none.
pub fn synthesis_messages(query: &str, results: &[(&Subtask, Result<&str, &str>)]) -> Vec<Message> {
    let mut prompt = format!("Question: {query}\n\nStep results:\n");
    for (subtask, result) in results {
        match result {
            Ok(text) => prompt.push_str(&format!("- {}\n  {}\n", subtask.task, text.trim())),
            Err(why) => prompt.push_str(&format!("- {}\n  (no result: {why})\n", subtask.task)),
        }
    }
    prompt.push_str("\nFinal answer to the question:");
    vec![Message::system(SYNTHESIS_SYSTEM), Message::user(prompt)]
}

/// The task of a recorded step prompt ([`step_messages`]), `None` for any other prompt: the
/// benchmark reads which subtask a recorded call ran.
pub fn task_of_step(messages: &[Message]) -> Option<&str> {
    match messages {
        [system, user] if system.content == STEP_SYSTEM => user.content.rsplit_once(YOUR_STEP).map(|(_, task)| task),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_in_full_further_ancestors_shortened() {
        let grand = Subtask::new("a", "Find the base price", &[]);
        let parent = Subtask::new("b", "Apply the discount", &["a"]);
        let child = Subtask::new("c", "Add tax", &["b"]);
        let long = "x".repeat(5000);
        let messages = step_messages("Q?", &child, &[(&parent, &long)], &[(&grand, &long)], 50);
        let prompt = &messages[1].content;
        assert!(prompt.contains(&long), "parent result in full");
        assert!(prompt.contains(&format!("{}…", "x".repeat(199))), "ancestor cut to 50 tokens");
        assert!(prompt.find("Find the base price").unwrap() < prompt.find("Apply the discount").unwrap());
        assert!(prompt.ends_with("Your step: Add tax"));
        assert_eq!(task_of_step(&messages), Some("Add tax"));
        assert_eq!(task_of_step(&synthesis_messages("Q?", &[(&child, Ok("1"))])), None);
    }

    #[test]
    fn synthesis_lists_results_and_failures() {
        let a = Subtask::new("a", "A", &[]);
        let b = Subtask::new("b", "B", &[]);
        let prompt = &synthesis_messages("Q?", &[(&a, Ok("42")), (&b, Err("timed out"))])[1].content;
        assert!(prompt.contains("42") && prompt.contains("(no result: timed out)"));
    }
}
