//! The evaluation sets in `../shared/data/` (their scoring is in [`super::scoring`]).

use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context, Result};
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

    /// A split's file: `dev` is what strategies are evaluated on; `train` (gsm8k only) is for
    /// training routers and is never evaluated on.
    pub fn path(self, data_dir: &Path, split: &str) -> std::path::PathBuf {
        data_dir.join(self.name()).join(format!("{split}.jsonl"))
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

/// The first `limit` items of one split of the dataset.
pub fn load(dataset: Dataset, data_dir: &Path, split: &str, limit: usize) -> Result<Vec<Item>> {
    load_file(dataset, &dataset.path(data_dir, split), limit)
}

/// The first `limit` items of a file in the dataset's format (the gsm8k train split, for one).
pub fn load_file(dataset: Dataset, path: &Path, limit: usize) -> Result<Vec<Item>> {
    let file = std::fs::File::open(path).with_context(|| {
        format!(
            "reading {}: the evaluation sets come from the project's sibling folder ../shared/data (see its README), or from --data <dir> holding <dataset>/<split>.jsonl",
            path.display()
        )
    })?;
    let mut items = Vec::new();
    for line in std::io::BufReader::new(file).lines().take(limit) {
        let value: Value = serde_json::from_str(&line?)?;
        let text = |key: &str| value.get(key).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default();
        let question = if dataset == Dataset::Gsm8k { text("question") } else { text("problem") };
        items.push(Item { id: text("id"), question, answer: text("answer"), answer_id: value.get("answer_id").and_then(Value::as_u64).map(|n| n as usize) });
    }
    Ok(items)
}
