//! The decomposition prompt. Its examples are written for HybridFlow (none comes from an
//! evaluation set) and show the three shapes a plan takes: a single step for a simple question,
//! a chain, and independent branches that join.

use crate::model::Message;

const INSTRUCTIONS: &str = "You split a question into the smallest set of steps that answer it. \
Reply with JSON only: {\"subtasks\": [...]}. Each subtask has an id (s1, s2, ...), a task that can be \
done on its own given the results of the subtasks it depends on, depends_on (ids of earlier \
subtasks whose results it needs; empty when none), kind (math, reasoning, knowledge or writing), \
difficulty (easy, medium or hard) and expected_tokens (length of its answer). Steps that do not \
need each other must not depend on each other, so they can run in parallel. A simple question \
is one subtask whose task is the question itself. Use at most MAX subtasks.";

const EXAMPLES: &[(&str, &str)] = &[
    (
        "What is the boiling point of water at sea level in Fahrenheit?",
        r#"{"subtasks":[{"id":"s1","task":"What is the boiling point of water at sea level in Fahrenheit?","depends_on":[],"kind":"knowledge","difficulty":"easy","expected_tokens":20}]}"#,
    ),
    (
        "A bakery sells muffins for $3 and cookies for $1.50. Dana buys 4 muffins and 6 cookies and pays with a $50 bill. How much change does she get?",
        r#"{"subtasks":[{"id":"s1","task":"Compute the cost of 4 muffins at $3 each.","depends_on":[],"kind":"math","difficulty":"easy","expected_tokens":30},{"id":"s2","task":"Compute the cost of 6 cookies at $1.50 each.","depends_on":[],"kind":"math","difficulty":"easy","expected_tokens":30},{"id":"s3","task":"Add the two costs and subtract the total from $50 to get the change.","depends_on":["s1","s2"],"kind":"math","difficulty":"easy","expected_tokens":40}]}"#,
    ),
    (
        "Which planet has more moons, the largest planet in the solar system or the planet with the most prominent rings? Explain briefly.",
        r#"{"subtasks":[{"id":"s1","task":"Name the largest planet in the solar system and its number of known moons.","depends_on":[],"kind":"knowledge","difficulty":"medium","expected_tokens":40},{"id":"s2","task":"Name the planet with the most prominent rings and its number of known moons.","depends_on":[],"kind":"knowledge","difficulty":"medium","expected_tokens":40},{"id":"s3","task":"Compare the two moon counts and say which planet has more, with a one-sentence explanation.","depends_on":["s1","s2"],"kind":"reasoning","difficulty":"easy","expected_tokens":60}]}"#,
    ),
];

/// Messages asking a model to plan `query` in at most `max_subtasks` subtasks.
pub fn planning_messages(query: &str, max_subtasks: usize) -> Vec<Message> {
    let mut messages = vec![Message::system(INSTRUCTIONS.replace("MAX", &max_subtasks.to_string()))];
    for (question, plan) in EXAMPLES {
        messages.push(Message::user(*question));
        messages.push(Message::assistant(*plan));
    }
    messages.push(Message::user(query));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse::parse_plan;
    use crate::plan::validate::validate;

    #[test]
    fn examples_are_valid_plans() {
        for (_, plan) in EXAMPLES {
            let validated = validate(parse_plan(plan).unwrap(), 8).unwrap();
            assert!(validated.diagnostics.is_empty(), "{plan}");
        }
    }

    #[test]
    fn the_query_comes_last() {
        let messages = planning_messages("Why is the sky blue?", 5);
        assert_eq!(messages.last().unwrap().content, "Why is the sky blue?");
        assert!(messages[0].content.contains("at most 5 subtasks"));
    }
}
