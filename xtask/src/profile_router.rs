//! Router training data: for questions of the gsm8k TRAIN split (never the dev files), plan with
//! the cloud, run every subtask on both sides (each with its own side's parents), then synthesise
//! the answer from all-edge results and from all-cloud results, and, for each subtask, with that
//! one result swapped. Label: the cloud's result of this subtask decided correctness — swapped in
//! for the edge's it turned a wrong answer right, or swapped out for the edge's it turned a right
//! answer wrong.
//! The synthesis runs on the cloud (the stronger model) so that the label reflects the subtask's
//! result rather than a weak combiner. Also recorded: whether the two results of the subtask agree
//! (what the device can observe; see `route::calibration`). Appends one JSON line per subtask;
//! resumable (questions already in the file are skipped).

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use hybridflow_core::exec::prompts;
use hybridflow_core::model::cloud::{CloudConfig, CloudModel, CloudTimeouts};
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel};
use hybridflow_core::model::{catalog, ChatModel, ChatRequest, Message};
use hybridflow_core::plan::planner::{stream_plan, PlanEvent, PlannerConfig};
use hybridflow_core::plan::Subtask;
use hybridflow_core::route::calibration::results_agree;
use serde::{Deserialize, Serialize};

use crate::benchmark::datasets::{self, Dataset, Item};
use crate::benchmark::scoring;


#[derive(Serialize, Deserialize)]
pub struct ProfiledSubtask {
    pub question_id: String,
    pub query: String,
    pub subtask: Subtask,
    pub depth: usize,
    pub fan_in: usize,
    pub fan_out: usize,
    pub edge_completion_tokens: u32,
    pub cloud_completion_tokens: u32,
    pub edge_seconds: f64,
    pub cloud_seconds: f64,
    pub correct_all_edge: bool,
    /// All edge results but this subtask's from the cloud; `None` when the all-edge answer was
    /// already right (nothing to fix).
    pub correct_with_cloud: Option<bool>,
    pub correct_all_cloud: bool,
    /// All cloud results but this subtask's from the edge; `None` when the all-cloud answer was
    /// wrong (nothing to break).
    pub correct_with_edge: Option<bool>,
    pub cloud_helps: bool,
    /// Whether the edge's and the cloud's results of this subtask agree (`results_agree`).
    pub results_agree: bool,
    /// The cloud model's name, for the data's provenance.
    pub cloud_model: String,
}

async fn generate(model: &dyn ChatModel, messages: Vec<Message>, max_tokens: u32) -> Result<(String, u32, f64)> {
    let started = Instant::now();
    let completion = model.stream(ChatRequest::new(messages).with_max_tokens(max_tokens)).await?.collect_text().await?;
    Ok((completion.text, completion.usage.completion_tokens, started.elapsed().as_secs_f64()))
}

pub fn run(questions: usize, cloud_url: &str, cloud_model: &str, data: &Path, out: &Path) -> Result<()> {
    let done: HashSet<String> = std::fs::File::open(out)
        .map(|f| std::io::BufReader::new(f).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str::<ProfiledSubtask>(&l).ok()).map(|r| r.question_id).collect())
        .unwrap_or_default();
    let items = datasets::load_file(Dataset::Gsm8k, data, questions)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut output = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let edge: Arc<dyn ChatModel> = Arc::new(EdgeModel::load(EdgeConfig::new(catalog::model_path(catalog::DEFAULT_EDGE_MODEL)), |_| {}).await?);
        // Profiling is offline work on a shared machine: wait for slow answers rather than lose them.
        let mut cloud_config = CloudConfig::new(cloud_url, cloud_model);
        cloud_config.timeouts = CloudTimeouts { first_token: Duration::from_secs(300), between_tokens: Duration::from_secs(60), total: Duration::from_secs(900), ..CloudTimeouts::default() };
        let cloud: Arc<dyn ChatModel> = Arc::new(CloudModel::new(cloud_config)?);
        for (index, item) in items.iter().enumerate() {
            if done.contains(&item.id) {
                continue;
            }
            let started = Instant::now();
            let progress = format!("[{}/{}] {}", index + 1, items.len(), item.id);
            match profile_question(edge.as_ref(), &cloud, cloud_model, item).await {
                // A question's records are written together, so a resumed run never sees half of one.
                Ok(Some(records)) => {
                    for record in &records {
                        writeln!(output, "{}", serde_json::to_string(record)?)?;
                    }
                    output.flush()?;
                    let verdict = |right: bool| if right { "right" } else { "wrong" };
                    eprintln!(
                        "{progress}: {} subtasks, all-edge {}, all-cloud {}, {:.0} s",
                        records.len(),
                        verdict(records[0].correct_all_edge),
                        verdict(records[0].correct_all_cloud),
                        started.elapsed().as_secs_f64()
                    );
                }
                Ok(None) => eprintln!("{progress}: no multi-step plan, skipped"),
                Err(error) => eprintln!("{progress}: failed ({error:#}); it is retried by the next run"),
            }
        }
        Ok(())
    })
}

/// Profiles one question: its records, or `None` when the planner answered it directly.
async fn profile_question(edge: &dyn ChatModel, cloud: &Arc<dyn ChatModel>, cloud_model: &str, item: &Item) -> Result<Option<Vec<ProfiledSubtask>>> {
    let mut plan_events = stream_plan(cloud.clone(), &item.question, &PlannerConfig::default());
    let mut plan = None;
    while let Some(event) = plan_events.next().await {
        if let PlanEvent::Done { outcome, .. } = event {
            plan = outcome.direct.is_none().then_some(outcome.plan);
        }
    }
    let Some(plan) = plan else { return Ok(None) };
    let mut edge_results: Vec<(String, u32, f64)> = Vec::new();
    let mut cloud_results: Vec<(String, u32, f64)> = Vec::new();
    // Each side's subtask sees its own side's parents' results (plans are in dependency order).
    let step_messages = |subtask: &Subtask, results: &[(String, u32, f64)]| {
        let result_of = |id: &str| plan.subtasks.iter().position(|s| s.id == id).map(|i| results[i].0.clone()).unwrap_or_default();
        let parents: Vec<(&Subtask, String)> = subtask.depends_on.iter().filter_map(|d| plan.get(d).map(|p| (p, result_of(d)))).collect();
        let further: Vec<(&Subtask, String)> = plan.further_ancestors(&subtask.id).into_iter().map(|a| (a, result_of(&a.id))).collect();
        prompts::step_messages(&item.question, subtask, &parents, &further, 256)
    };
    for subtask in &plan.subtasks {
        let edge_result = generate(edge, step_messages(subtask, &edge_results), 192).await?;
        let cloud_result = generate(cloud.as_ref(), step_messages(subtask, &cloud_results), 192).await?;
        edge_results.push(edge_result);
        cloud_results.push(cloud_result);
    }
    let correct = |text: &str| scoring::score(Dataset::Gsm8k, item, text).0;
    // Every result from `base` except subtask `swap`'s, which comes from the other side.
    let synthesise = |base: &[(String, u32, f64)], other: &[(String, u32, f64)], swap: Option<usize>| {
        let results: Vec<(&Subtask, Result<&str, &str>)> =
            plan.subtasks.iter().enumerate().map(|(i, s)| (s, Ok(if Some(i) == swap { other[i].0.as_str() } else { base[i].0.as_str() }))).collect();
        prompts::synthesis_messages(&item.question, &results)
    };
    let correct_all_edge = correct(&generate(cloud.as_ref(), synthesise(&edge_results, &cloud_results, None), 192).await?.0);
    let correct_all_cloud = correct(&generate(cloud.as_ref(), synthesise(&cloud_results, &edge_results, None), 192).await?.0);
    let mut records = Vec::new();
    for (i, subtask) in plan.subtasks.iter().enumerate() {
        let correct_with_cloud =
            if correct_all_edge { None } else { Some(correct(&generate(cloud.as_ref(), synthesise(&edge_results, &cloud_results, Some(i)), 192).await?.0)) };
        let correct_with_edge =
            if correct_all_cloud { Some(correct(&generate(cloud.as_ref(), synthesise(&cloud_results, &edge_results, Some(i)), 192).await?.0)) } else { None };
        let record = ProfiledSubtask {
            question_id: item.id.clone(),
            query: item.question.clone(),
            subtask: subtask.clone(),
            depth: plan.depth(&subtask.id),
            fan_in: subtask.depends_on.len(),
            fan_out: plan.fan_out(&subtask.id),
            edge_completion_tokens: edge_results[i].1,
            cloud_completion_tokens: cloud_results[i].1,
            edge_seconds: edge_results[i].2,
            cloud_seconds: cloud_results[i].2,
            correct_all_edge,
            correct_with_cloud,
            correct_all_cloud,
            correct_with_edge,
            cloud_helps: correct_with_cloud == Some(true) || correct_with_edge == Some(false),
            results_agree: results_agree(&edge_results[i].0, &cloud_results[i].0),
            cloud_model: cloud_model.to_owned(),
        };
        records.push(record);
    }
    Ok(Some(records))
}
