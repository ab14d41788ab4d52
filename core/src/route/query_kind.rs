//! What kind of question a query is, for the query-level numbers. Multiple-choice questions (the
//! options listed on lines of their own, "A." "B." "C." …) are not answered like open ones: on
//! mmlu-stem the edge's confidence in its answer is inverted compared with gsm8k
//! (docs/router.md), so each kind has its own measured whole-query gain and escalation model.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryKind {
    Open,
    MultipleChoice,
}

impl QueryKind {
    /// Multiple choice when lines start with the options A, B and C in that order, each written
    /// "A." "A)" "A:" or "(A)".
    pub fn of(query: &str) -> Self {
        let mut next = 'A';
        for line in query.lines() {
            let line = line.trim_start();
            let mut chars = line.strip_prefix('(').unwrap_or(line).chars();
            if let (Some(letter), Some('.' | ')' | ':')) = (chars.next(), chars.next()) {
                if letter == next {
                    if next == 'C' {
                        return Self::MultipleChoice;
                    }
                    next = char::from(next as u8 + 1);
                }
            }
        }
        Self::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_options_make_a_multiple_choice_query() {
        let mmlu = "Find the degree of Q(sqrt(2)) over Q.\n\nA. 0\nB. 4\nC. 2\nD. 6\n\nPlease select the correct answer.";
        assert_eq!(QueryKind::of(mmlu), QueryKind::MultipleChoice);
        assert_eq!(QueryKind::of("Which gas?\n(A) oxygen\n(B) argon\n(C) neon"), QueryKind::MultipleChoice);
        assert_eq!(QueryKind::of("Pick one:\nA) red\n  B) blue\nC) green"), QueryKind::MultipleChoice);
    }

    #[test]
    fn questions_without_listed_options_are_open() {
        assert_eq!(QueryKind::of("Janet's ducks lay 16 eggs per day. How much does she make?"), QueryKind::Open);
        assert_eq!(QueryKind::of("A. Smith paid 3 dollars.\nB. Jones paid 5.\nWho paid more?"), QueryKind::Open, "two lettered lines are not options");
        assert_eq!(QueryKind::of("A. one\nC. three\nB. two"), QueryKind::Open, "options run in order");
        assert_eq!(QueryKind::of("Answer A, B or C."), QueryKind::Open);
        assert_eq!(QueryKind::of(""), QueryKind::Open);
    }
}
