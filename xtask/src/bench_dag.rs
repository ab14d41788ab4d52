//! Scheduler benchmarks (docs/benchmarks.md): overhead per subtask, parallel vs sequential.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::future::BoxFuture;
use futures::StreamExt;
use hybridflow_core::exec::{Decomposition, EventSink, ExecConfig, Models, PlannerChoice, Scheduler};
use hybridflow_core::guard::CloudGuard;
use hybridflow_core::model::cloud::{CloudConfig, CloudModel};
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel};
use hybridflow_core::model::{
    catalog, CancelHandle, ChatModel, ChatRequest, FinishReason, ModelError, Side, StreamEvent, TokenCount, TokenStream, Usage,
};
use hybridflow_core::plan::planner::{stream_plan, PlanEvent, PlannerConfig};
use hybridflow_core::route::{ByDifficulty, Fixed, RoutePolicy};
use tokio_util::sync::CancellationToken;

/// Answers instantly: the plan below when asked to plan, one short line otherwise. Whatever time
/// a query takes with it is the scheduler's own.
struct InstantModel;

const PLAN: &str = r#"{"subtasks":[{"id":"s1","task":"a","depends_on":[],"kind":"math","difficulty":"easy","expected_tokens":8},{"id":"s2","task":"b","depends_on":[],"kind":"math","difficulty":"easy","expected_tokens":8},{"id":"s3","task":"c","depends_on":["s1"],"kind":"math","difficulty":"easy","expected_tokens":8},{"id":"s4","task":"d","depends_on":["s1","s2"],"kind":"math","difficulty":"easy","expected_tokens":8},{"id":"s5","task":"e","depends_on":["s3"],"kind":"math","difficulty":"easy","expected_tokens":8},{"id":"s6","task":"f","depends_on":["s4","s5"],"kind":"math","difficulty":"easy","expected_tokens":8}]}"#;

impl ChatModel for InstantModel {
    fn side(&self) -> Side {
        Side::Edge
    }
    fn name(&self) -> &str {
        "instant"
    }
    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        let text = if request.json_schema.is_some() { PLAN } else { "result" };
        let usage = Usage {
            prompt_tokens: 1,
            completion_tokens: 1,
            token_count: TokenCount::Reported,
            time_to_first_token: Some(Duration::ZERO),
            total_time: Duration::ZERO,
            decode_tokens_per_second: 0.0,
            finish_reason: FinishReason::Stop,
            token_logprobs: Vec::new(),
        };
        let events = futures::stream::iter([Ok(StreamEvent::Delta(text.to_owned())), Ok(StreamEvent::Finished(usage))]);
        Box::pin(async move { Ok(TokenStream::new(events.boxed(), CancelHandle::default())) })
    }
}

/// Multi-step questions written for this benchmark (not from an evaluation set).
const QUESTIONS: &[&str] = &[
    "A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?",
    "Which is larger, 17 times 3 or 8 times 7? Explain step by step.",
    "A train travels 120 km in 2 hours and a car travels 150 km in 3 hours. Which is faster, and by how many km per hour?",
    "Anna has 12 apples and gives a third to Ben. Ben already had 5 apples. How many apples do Anna and Ben each have now?",
    "What is the sum of the first five even numbers, and what is the product of the first three odd numbers?",
];

async fn answer(scheduler: &Scheduler, question: &str) -> Result<Duration> {
    let (sink, _events) = EventSink::channel();
    let started = Instant::now();
    scheduler.run(question, &sink, &CancellationToken::new()).await?;
    Ok(started.elapsed())
}

pub fn run(cloud_url: &str) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        overhead().await?;
        parallel_vs_sequential(cloud_url).await
    })
}

async fn overhead() -> Result<()> {
    let models = Models { edge: Some(Arc::new(InstantModel)), cloud: None };
    let config = ExecConfig { decomposition: Decomposition::LongQueries, planner: PlannerChoice::Edge, ..ExecConfig::default() };
    let scheduler = Scheduler::new(models, Arc::new(Fixed(Side::Edge)), CloudGuard::unlimited(false), config)?;
    let question = QUESTIONS[0];
    for _ in 0..50 {
        answer(&scheduler, question).await?; // warm-up
    }
    let rounds = 2000;
    let started = Instant::now();
    for _ in 0..rounds {
        answer(&scheduler, question).await?;
    }
    let per_query = started.elapsed() / rounds;
    // 6 subtasks + planning + synthesis = 8 steps.
    println!("scheduler overhead: {:.1} µs per query of 6 subtasks (plan parse, validation, prompts, events, synthesis), {:.1} µs per step, instant model, {rounds} queries",
        per_query.as_secs_f64() * 1e6, per_query.as_secs_f64() * 1e6 / 8.0);
    Ok(())
}

async fn parallel_vs_sequential(cloud_url: &str) -> Result<()> {
    let edge: Arc<dyn ChatModel> = Arc::new(EdgeModel::load(EdgeConfig::new(catalog::model_path(catalog::DEFAULT_EDGE_MODEL)), |_| {}).await?);
    let cloud: Arc<dyn ChatModel> = Arc::new(CloudModel::new(CloudConfig::new(cloud_url, "qwen2.5-coder-0.5b-instruct"))?);
    println!("\n| policy | question | subtasks | parallel s (tokens) | sequential s (tokens) | sequential / parallel |");
    println!("|---|---|---|---|---|---|");
    // One plan per question (cloud planner, greedy), executed both ways: the comparison is of
    // execution alone.
    let mut plans = Vec::new();
    for question in QUESTIONS {
        let mut events = stream_plan(cloud.clone(), question, &PlannerConfig::default());
        while let Some(event) = events.next().await {
            if let PlanEvent::Done { outcome, .. } = event {
                plans.push(outcome.plan);
            }
        }
    }
    let policies: [(&str, Arc<dyn RoutePolicy>); 2] = [("all cloud", Arc::new(Fixed(Side::Cloud))), ("by difficulty", Arc::new(ByDifficulty))];
    for (name, policy) in policies {
        let mut ratios = Vec::new();
        for (index, (question, plan)) in QUESTIONS.iter().zip(&plans).enumerate() {
            let mut times = Vec::new();
            let mut tokens = Vec::new();
            for sequential in [false, true] {
                let config = ExecConfig { sequential, ..ExecConfig::default() };
                let scheduler = Scheduler::new(Models { edge: Some(edge.clone()), cloud: Some(cloud.clone()) }, policy.clone(), CloudGuard::unlimited(true), config)?;
                let (sink, _events) = EventSink::channel();
                let started = Instant::now();
                let result = scheduler.run_plan(question, plan.clone(), &sink, &CancellationToken::new()).await?;
                times.push(started.elapsed().as_secs_f64());
                tokens.push(result.totals.edge.completion_tokens + result.totals.cloud.completion_tokens);
            }
            ratios.push(times[1] / times[0]);
            println!("| {name} | Q{} | {} | {:.1} ({}) | {:.1} ({}) | {:.2} |", index + 1, plan.subtasks.len(), times[0], tokens[0], times[1], tokens[1], times[1] / times[0]);
        }
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        println!("| {name} | mean | | | | {mean:.2} |");
    }
    Ok(())
}
