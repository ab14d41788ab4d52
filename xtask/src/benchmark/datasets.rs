//! The evaluation sets in `../shared/data/` and their scoring rules (from its README): extract the
//! final answer and match exactly, no model judge.

use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hybridflow_core::route::calibration::last_number;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    Gsm8k,
    MmluStem,
    Livebench,
    Aime,
}

impl Dataset {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "gsm8k" => Self::Gsm8k,
            "mmlu-stem" => Self::MmluStem,
            "livebench-reasoning" => Self::Livebench,
            "aime24-25" => Self::Aime,
            other => bail!("unknown dataset {other} (gsm8k, mmlu-stem, livebench-reasoning, aime24-25)"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gsm8k => "gsm8k",
            Self::MmluStem => "mmlu-stem",
            Self::Livebench => "livebench-reasoning",
            Self::Aime => "aime24-25",
        }
    }

    /// The evaluation file (dev split; the gsm8k train split is for router training only).
    pub fn path(self, data_dir: &Path) -> std::path::PathBuf {
        data_dir.join(self.name()).join("dev.jsonl")
    }
}

#[derive(Clone, Debug)]
pub struct Item {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// mmlu-stem: index of the right option.
    pub answer_id: Option<usize>,
}

/// The first `limit` items of the dataset's evaluation file.
pub fn load(dataset: Dataset, data_dir: &Path, limit: usize) -> Result<Vec<Item>> {
    load_file(dataset, &dataset.path(data_dir), limit)
}

/// The first `limit` items of a file in the dataset's format (the gsm8k train split, for one).
pub fn load_file(dataset: Dataset, path: &Path, limit: usize) -> Result<Vec<Item>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut items = Vec::new();
    for line in std::io::BufReader::new(file).lines().take(limit) {
        let value: Value = serde_json::from_str(&line?)?;
        let text = |key: &str| value.get(key).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default();
        let question = if dataset == Dataset::Gsm8k { text("question") } else { text("problem") };
        items.push(Item { id: text("id"), question, answer: text("answer"), answer_id: value.get("answer_id").and_then(Value::as_u64).map(|n| n as usize) });
    }
    Ok(items)
}

/// The option letter the answer chose: after the last "answer", else the last standalone letter.
fn chosen_letter(text: &str) -> Option<char> {
    let standalone = |s: &str| -> Option<char> {
        let chars: Vec<char> = s.chars().collect();
        (0..chars.len()).rev().find_map(|i| {
            let c = chars[i];
            let before = i == 0 || !chars[i - 1].is_alphanumeric();
            let after = i + 1 == chars.len() || !chars[i + 1].is_alphanumeric();
            (c.is_ascii_uppercase() && c <= 'J' && before && after).then_some(c)
        })
    };
    let lower = text.to_lowercase();
    lower.rfind("answer").and_then(|at| standalone(&text[at..])).or_else(|| standalone(text))
}

fn normalise(text: &str) -> String {
    text.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ").trim_matches(|c: char| c == '.' || c == '*').to_owned()
}

/// Returns (correct, what was extracted).
pub fn score(dataset: Dataset, item: &Item, response: &str) -> (bool, String) {
    match dataset {
        Dataset::Gsm8k | Dataset::Aime => {
            let got = last_number(response);
            let want = item.answer.trim().parse::<f64>().ok();
            (got.is_some() && got == want, got.map_or_else(String::new, |n| n.to_string()))
        }
        Dataset::MmluStem => match (chosen_letter(response), item.answer_id) {
            (Some(letter), Some(index)) => ((letter as usize - 'A' as usize) == index, letter.to_string()),
            _ => {
                let found = normalise(response).contains(&normalise(&item.answer));
                (found, if found { item.answer.clone() } else { String::new() })
            }
        },
        Dataset::Livebench => {
            // The final line (or what follows the last "answer:") holds the items.
            let tail = response.rsplit_once("nswer:").map_or_else(|| response.trim().lines().last().unwrap_or(""), |(_, t)| t);
            let got: Vec<String> = tail.split(',').map(normalise).filter(|s| !s.is_empty()).collect();
            let want: Vec<String> = item.answer.split(',').map(normalise).collect();
            (got == want, got.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(answer: &str, answer_id: Option<usize>) -> Item {
        Item { id: "x".into(), question: String::new(), answer: answer.into(), answer_id }
    }

    #[test]
    fn scoring_follows_the_data_readme() {
        assert!(score(Dataset::Gsm8k, &item("1200", None), "so the total is $1,200.").0);
        assert!(!score(Dataset::Gsm8k, &item("12", None), "12 apples, minus 5 is 7").0);
        assert!(score(Dataset::MmluStem, &item("4", Some(1)), "The degree is 4. Answer: B. 4").0);
        assert!(!score(Dataset::MmluStem, &item("4", Some(1)), "Answer: C").0);
        assert!(score(Dataset::MmluStem, &item("0,4", Some(3)), "the zeros are 0,4").0);
        assert!(score(Dataset::Livebench, &item("collecting, thriller", None), "Reasoning...\nAnswer: Collecting,  Thriller.").0);
        assert!(!score(Dataset::Livebench, &item("a, b", None), "Answer: a").0);
    }
}
