//! Scoring: the final answer extracted from a response and matched exactly (no model judge), by
//! rules that can be audited against the recorded text.
//!
//! - Numbers (gsm8k, AIME): the number on the last "Answer:" line (after its last `=` if it has
//!   one), else the last number of the response. Thousands separators, the Unicode minus, a
//!   leading currency sign, fractions and trailing units are read; step numbers ("step 3") and
//!   clock times ("3:30") are not answers.
//! - Options (mmlu-stem): the letter right after the last "Answer:" (or "answer is"), else the
//!   last letter written as an option ("(B)", "B.", "option B"), else the option's text. A letter
//!   that is not one of the question's options is never accepted.

use super::datasets::{Dataset, Item};

/// Returns (correct, what was extracted; empty when nothing could be).
pub fn score(dataset: Dataset, item: &Item, response: &str) -> (bool, String) {
    match dataset {
        Dataset::Gsm8k | Dataset::Aime => {
            let got = final_number(response);
            let want = item.answer.trim().replace(',', "").parse::<f64>().ok();
            let correct = matches!((got, want), (Some(g), Some(w)) if (g - w).abs() <= 1e-9 * w.abs().max(1.0));
            (correct, got.map_or_else(String::new, |n| n.to_string()))
        }
        Dataset::MmluStem => {
            let valid = option_letters(&item.question);
            match (chosen_letter(response, &valid), item.answer_id) {
                (Some(letter), Some(index)) => ((letter as usize - 'A' as usize) == index, letter.to_string()),
                _ => {
                    let found = !item.answer.trim().is_empty() && normalise(response).contains(&normalise(&item.answer));
                    (found, if found { item.answer.clone() } else { String::new() })
                }
            }
        }
        Dataset::Livebench => {
            // The final line (or what follows the last "answer:") holds the items.
            let tail = response.rsplit_once("nswer:").map_or_else(|| response.trim().lines().last().unwrap_or(""), |(_, t)| t);
            let got: Vec<String> = tail.split(',').map(normalise).filter(|s| !s.is_empty()).collect();
            let want: Vec<String> = item.answer.split(',').map(normalise).collect();
            (got == want, got.join(", "))
        }
    }
}

/// Whether a response states its final answer explicitly (an answer line with a number, or with
/// one of the options): the edge-first cascade escalates when it does not.
pub fn states_an_answer(dataset: Dataset, item: &Item, response: &str) -> bool {
    let markers = answer_markers(response);
    let Some(&at) = markers.last() else { return false };
    let line = response[at..].lines().next().unwrap_or("");
    match dataset {
        Dataset::Gsm8k | Dataset::Aime => !numbers(line).is_empty(),
        Dataset::MmluStem => letter_after(line, &option_letters(&item.question)).is_some(),
        Dataset::Livebench => !line.trim().is_empty(),
    }
}

fn normalise(text: &str) -> String {
    text.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ").trim_matches(|c: char| c == '.' || c == '*').to_owned()
}

/// Byte offsets just past each "answer" marker: "answer:", "answer is", "answer =", with any
/// markdown emphasis around it ("**Answer:**").
fn answer_markers(text: &str) -> Vec<usize> {
    let lower = text.to_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find("answer") {
        let start = from + at;
        let mut end = start + "answer".len();
        from = end;
        // "answered", "answers": not a marker.
        if lower[end..].chars().next().is_some_and(char::is_alphanumeric) {
            continue;
        }
        let rest = &lower[end..];
        let skipped = rest.len() - rest.trim_start_matches(['*', ' ', '_']).len();
        end += skipped;
        let rest = &lower[end..];
        if let Some(stripped) = rest.strip_prefix(':').or_else(|| rest.strip_prefix('=')).or_else(|| rest.strip_prefix("is")) {
            end += rest.len() - stripped.len();
            found.push(end);
        }
    }
    found
}

/// The final numeric answer of a response.
pub fn final_number(text: &str) -> Option<f64> {
    if let Some(&at) = answer_markers(text).last() {
        let line = text[at..].lines().next().unwrap_or("");
        let line = line.rsplit_once('=').map_or(line, |(_, after)| after);
        if let Some(&first) = numbers(line).first() {
            return Some(first);
        }
    }
    numbers(text).last().copied()
}

/// The numbers of a text, in order.
pub fn numbers(text: &str) -> Vec<f64> {
    let chars: Vec<char> = text.chars().map(|c| if c == '\u{2212}' { '-' } else { c }).collect();
    let digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !digit(i) || (i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '.')) {
            i += 1;
            continue;
        }
        let start = i;
        let mut literal = String::new();
        while digit(i) {
            literal.push(chars[i]);
            i += 1;
        }
        // Thousands separators: a comma followed by exactly three digits.
        while chars.get(i) == Some(&',') && digit(i + 1) && digit(i + 2) && digit(i + 3) && !digit(i + 4) {
            literal.extend(&chars[i + 1..i + 4]);
            i += 4;
        }
        if chars.get(i) == Some(&'.') && digit(i + 1) {
            literal.push('.');
            i += 1;
            while digit(i) {
                literal.push(chars[i]);
                i += 1;
            }
        }
        // A clock time is not an answer number.
        if chars.get(i) == Some(&':') && digit(i + 1) && digit(i + 2) {
            i += 3;
            continue;
        }
        let Ok(mut value) = literal.parse::<f64>() else { continue };
        if chars.get(i) == Some(&'/') && digit(i + 1) {
            let mut denominator = String::new();
            i += 1;
            while digit(i) {
                denominator.push(chars[i]);
                i += 1;
            }
            match denominator.parse::<f64>() {
                Ok(d) if d != 0.0 => value /= d,
                _ => continue,
            }
        }
        // A minus sign right before the number, not a hyphen joining words ("x-3", "18-dollar").
        let sign_at = if start >= 2 && chars[start - 1] == '-' { Some(start - 1) } else if start >= 3 && chars[start - 1] == '$' && chars[start - 2] == '-' { Some(start - 2) } else { None };
        let sign_at = if start == 1 && chars[0] == '-' { Some(0) } else { sign_at };
        if let Some(at) = sign_at {
            if at == 0 || !chars[at - 1].is_alphanumeric() {
                value = -value;
            }
        }
        // "step 3", "part 2", "#4": labels, not quantities.
        let before: String = chars[..start].iter().collect();
        let word = before.trim_end().rsplit(|c: char| !c.is_alphanumeric() && c != '#').next().unwrap_or("").to_lowercase();
        if matches!(word.as_str(), "step" | "part" | "question" | "#") || before.trim_end().ends_with('#') {
            continue;
        }
        found.push(value);
    }
    found
}

/// The option letters a multiple-choice question offers ("A. …", "(B) …", "C) …" at the start of
/// a line); A–D when none are found.
pub fn option_letters(question: &str) -> Vec<char> {
    let letters: Vec<char> = question
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix('(').unwrap_or(line);
            let mut chars = line.chars();
            let letter = chars.next()?;
            let next = chars.next()?;
            (letter.is_ascii_uppercase() && matches!(next, '.' | ')' | ':')).then_some(letter)
        })
        .collect();
    if letters.is_empty() {
        vec!['A', 'B', 'C', 'D']
    } else {
        letters
    }
}

/// The option letter at the start of `rest` (after an answer marker), among `valid`.
fn letter_after(rest: &str, valid: &[char]) -> Option<char> {
    let rest = rest.trim_start_matches([' ', '*', '(', '[', '_', '"', '\'']);
    let mut chars = rest.chars();
    let letter = chars.next()?;
    let after = chars.next();
    (valid.contains(&letter) && !after.is_some_and(char::is_alphanumeric)).then_some(letter)
}

/// The option letter a response chose, among `valid`.
pub fn chosen_letter(text: &str, valid: &[char]) -> Option<char> {
    if let Some(letter) = answer_markers(text).iter().rev().find_map(|&at| letter_after(&text[at..], valid)) {
        return Some(letter);
    }
    // A letter written as an option: "(B)", "B.", "B)", "option B".
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len()).rev().find_map(|i| {
        let c = chars[i];
        if !valid.contains(&c) || (i > 0 && chars[i - 1].is_alphanumeric()) || chars.get(i + 1).is_some_and(|n| n.is_alphanumeric()) {
            return None;
        }
        let before: String = chars[..i].iter().collect::<String>().to_lowercase();
        let bracketed = i > 0 && chars[i - 1] == '(' && chars.get(i + 1) == Some(&')');
        let dotted = matches!(chars.get(i + 1), Some('.' | ')')) && (i == 0 || chars[i - 1].is_whitespace());
        let named = before.trim_end().ends_with("option") || before.trim_end().ends_with("choice");
        (bracketed || dotted || named).then_some(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(answer: &str, answer_id: Option<usize>) -> Item {
        Item { id: "x".into(), question: "Which?\nA. one\nB. two\nC. three\nD. four".into(), answer: answer.into(), answer_id }
    }

    fn number(response: &str) -> Option<f64> {
        final_number(response)
    }

    #[test]
    fn numbers_from_the_failures_seen() {
        // Cases the previous last-number rule scored wrong (issue 16), and what they should give.
        assert_eq!(number("Add the pens (step 3) to the notebooks: 12 + 16 = 28. Answer: 28 (see step 3)"), Some(28.0));
        assert_eq!(number("She leaves at 3:30 and buys 18 eggs."), Some(18.0), "a clock time is not the answer");
        assert_eq!(number("Each ticket is an 18-dollar ticket"), Some(18.0), "a hyphen is not a minus");
        assert_eq!(number("The temperature drops to \u{2212}4 degrees."), Some(-4.0), "Unicode minus");
        assert_eq!(number("so the total is $1,200."), Some(1200.0));
        assert_eq!(number("Answer: $70,000 profit"), Some(70000.0));
        assert_eq!(number("Answer: 3/4 of the cake"), Some(0.75));
        assert_eq!(number("Answer: 50%"), Some(50.0));
        assert_eq!(number("Step 1: 16 - 3 - 4 = 9. Step 2: 9 * 2 = 18.\nAnswer: 9 * 2 = 18 dollars"), Some(18.0), "after the last =");
        assert_eq!(number("**Answer:** 7"), Some(7.0));
        assert_eq!(number("The answer is 42."), Some(42.0));
        assert_eq!(number("He answered 3 questions, then 5 more."), Some(5.0), "'answered' is not a marker");
        assert_eq!(number("1,2,3 are the first numbers"), Some(3.0), "a list, not a thousands separator");
        assert_eq!(number("no number here"), None);
        assert_eq!(number("x-3 is a variable name and then 4"), Some(4.0));
    }

    #[test]
    fn gsm8k_scoring_uses_the_answer_line() {
        let want = Item { id: "g".into(), question: String::new(), answer: "28".into(), answer_id: None };
        assert!(score(Dataset::Gsm8k, &want, "4 pens cost 12, 2 notebooks 10; 50 - 22 = 28.\nAnswer: 28").0);
        assert!(!score(Dataset::Gsm8k, &want, "Answer: 22, so 28 is wrong").0, "the answer line decides");
        assert_eq!(score(Dataset::Gsm8k, &want, "I cannot tell").1, "", "nothing extracted");
    }

    #[test]
    fn an_explicit_answer_is_recognised_for_the_cascade() {
        let gsm = Item { id: "g".into(), question: String::new(), answer: "28".into(), answer_id: None };
        assert!(states_an_answer(Dataset::Gsm8k, &gsm, "50 - 22 = 28\nAnswer: 28"));
        assert!(!states_an_answer(Dataset::Gsm8k, &gsm, "First, 4 pens cost 12 dollars. Then the notebooks cost"), "cut at the cap");
        assert!(!states_an_answer(Dataset::Gsm8k, &gsm, "Answer: I am not sure"));
        assert!(states_an_answer(Dataset::MmluStem, &item("4", Some(1)), "so it is four.\nAnswer: B"));
        assert!(!states_an_answer(Dataset::MmluStem, &item("4", Some(1)), "Answer: G"));
    }

    #[test]
    fn option_letters_from_the_failures_seen() {
        let valid = ['A', 'B', 'C', 'D'];
        assert_eq!(chosen_letter("Answer: B. I think", &valid), Some('B'), "the letter right after Answer:");
        assert_eq!(chosen_letter("I answered quickly. The answer is (C).", &valid), Some('C'));
        assert_eq!(chosen_letter("**Answer:** D", &valid), Some('D'));
        assert_eq!(chosen_letter("Answer: G", &valid), None, "not an option");
        assert_eq!(chosen_letter("A car moves at 3 m/s, so option B fits.", &valid), Some('B'), "'A' as an article is not a choice");
        assert_eq!(chosen_letter("Then H and G are both possible.", &valid), None);
        assert_eq!(option_letters("Q?\n(A) x\n(B) y\n(C) z"), vec!['A', 'B', 'C']);
        assert_eq!(option_letters("Q with no options"), valid.to_vec());
    }

    #[test]
    fn scoring_follows_the_data_readme() {
        assert!(score(Dataset::Gsm8k, &Item { answer: "1200".into(), answer_id: None, ..item("", None) }, "so the total is $1,200.").0);
        assert!(!score(Dataset::Gsm8k, &Item { answer: "12".into(), answer_id: None, ..item("", None) }, "12 apples, minus 5 is 7").0);
        assert!(score(Dataset::MmluStem, &item("4", Some(1)), "The degree is 4. Answer: B. 4").0);
        assert!(!score(Dataset::MmluStem, &item("4", Some(1)), "Answer: C").0);
        assert!(score(Dataset::MmluStem, &item("0,4", Some(3)), "the zeros are 0,4").0);
        assert!(score(Dataset::Livebench, &item("collecting, thriller", None), "Reasoning...\nAnswer: Collecting,  Thriller.").0);
        assert!(!score(Dataset::Livebench, &item("a, b", None), "Answer: a").0);
    }
}
