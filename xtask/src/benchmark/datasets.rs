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

    /// A split's file: `dev` is what strategies are evaluated on; `train` is for training routers
    /// and is never evaluated on (gsm8k has a file of its own; mmlu-stem's is carved from its
    /// dev file, see [`load`]).
    pub fn path(self, data_dir: &Path, split: &str) -> std::path::PathBuf {
        let file = if self == Self::MmluStem { "dev" } else { split };
        data_dir.join(self.name()).join(format!("{file}.jsonl"))
    }
}

/// mmlu-stem questions that may be evaluated: the first 400 of its file. Its train split is every
/// fifth question after them (235 questions, from the subjects the evaluated ones do not cover:
/// the file is sorted by subject), so a router trained there is checked on other subjects.
const MMLU_STEM_EVALUATED: usize = 400;

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
    let path = dataset.path(data_dir, split);
    match (dataset, split) {
        (Dataset::MmluStem, "train") => Ok(load_file(dataset, &path, usize::MAX)?.into_iter().skip(MMLU_STEM_EVALUATED).step_by(5).take(limit).collect()),
        (Dataset::MmluStem, _) => load_file(dataset, &path, limit.min(MMLU_STEM_EVALUATED)),
        _ => load_file(dataset, &path, limit),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmlu_stems_train_split_is_carved_after_the_questions_that_may_be_evaluated() {
        let data = std::env::temp_dir().join(format!("hybridflow-datasets-{}", std::process::id()));
        std::fs::create_dir_all(data.join("mmlu-stem")).unwrap();
        let lines: String = (0..420).map(|i| format!("{{\"id\":\"mmlu-stem-{i}\",\"problem\":\"q{i}\",\"answer\":\"a\",\"answer_id\":0}}\n")).collect();
        std::fs::write(data.join("mmlu-stem/dev.jsonl"), lines).unwrap();
        let ids = |split: &str, limit: usize| load(Dataset::MmluStem, &data, split, limit).unwrap().into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids("train", usize::MAX), ["mmlu-stem-400", "mmlu-stem-405", "mmlu-stem-410", "mmlu-stem-415"]);
        assert_eq!(ids("train", 2).len(), 2);
        let dev = ids("dev", usize::MAX);
        assert_eq!((dev.len(), dev.last().map(String::as_str)), (400, Some("mmlu-stem-399")), "evaluation never reaches the train split");
        std::fs::remove_dir_all(&data).unwrap();
    }
}
