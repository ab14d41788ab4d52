//! Cancelling a query stops its work at every stage (planning, a subtask, the synthesis): the
//! real edge engine goes idle. The one part that cannot stop is a prompt pass already running in
//! mistral.rs (it has no way to interrupt a forward pass); these tests cancel while each stage
//! decodes, and docs/reliability.md gives the measured length of the prompt passes.

use std::sync::Arc;
use std::time::Duration;

use hybridflow_core::exec::{Decomposition, Event, EventSink, ExecConfig, ExecError, Models, PlannerChoice, Scheduler};
use hybridflow_core::guard::CloudGuard;
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel};
use hybridflow_core::model::ChatModel;
use hybridflow_core::plan::planner::{plan_request, PlannerConfig};
use hybridflow_core::plan::validate::validate;
use hybridflow_core::plan::{Plan, Subtask, ValidatedPlan};
use hybridflow_core::route::ByDifficulty;
use hybridflow_e2e::{default_edge_model, process_cpu_time};
use tokio_util::sync::CancellationToken;

const QUESTION: &str = "A shop sells pens at 3 dollars each and notebooks at 5 dollars each. Ana buys 4 pens and 2 notebooks and pays with a 50 dollar bill. How much change does she get?";

async fn edge_only_scheduler(edge: Arc<EdgeModel>, subtask_max_tokens: u32) -> Arc<Scheduler> {
    let models = Models { edge: Some(edge), cloud: None };
    let config = ExecConfig { decomposition: Decomposition::LongQueries, planner: PlannerChoice::Edge, subtask_max_tokens, answer_max_tokens: 400, ..ExecConfig::default() };
    Arc::new(Scheduler::new(models, Arc::new(ByDifficulty), CloudGuard::unlimited(false), config).unwrap())
}

async fn load_edge() -> Arc<EdgeModel> {
    Arc::new(EdgeModel::load(EdgeConfig::new(default_edge_model()), |_| {}).await.unwrap())
}

fn two_step_plan() -> ValidatedPlan {
    let plan = Plan {
        subtasks: vec![
            Subtask::new("cost", "Write a long, detailed explanation of how much 4 pens at 3 dollars and 2 notebooks at 5 dollars cost.", &[]),
            Subtask::new("change", "Write a long, detailed explanation of the change from a 50 dollar bill.", &["cost"]),
        ],
    };
    validate(plan, 6).unwrap()
}

async fn cpu_over(window: Duration) -> Duration {
    let before = process_cpu_time();
    tokio::time::sleep(window).await;
    process_cpu_time() - before
}

/// Runs the query, waits for `stage` and then `delay` (so the stage is decoding), cancels, and
/// returns (CPU while the stage decoded, CPU after cancelling) over equal windows.
async fn cancel_at(scheduler: Arc<Scheduler>, plan: Option<ValidatedPlan>, stage: fn(&Event) -> bool, delay: Duration) -> (Duration, Duration) {
    let (sink, mut events) = EventSink::channel();
    let cancel = CancellationToken::new();
    let run = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            match plan {
                Some(plan) => scheduler.run_plan(QUESTION, plan, &sink, &cancel).await,
                None => scheduler.run(QUESTION, &sink, &cancel).await,
            }
        })
    };
    loop {
        let event = events.recv().await.expect("the stage is reached before the query ends");
        if stage(&event) {
            break;
        }
    }
    tokio::time::sleep(delay).await;
    let busy = cpu_over(Duration::from_secs(1)).await;
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_millis(500), run).await.expect("cancel returns at once").unwrap();
    assert!(matches!(result, Err(ExecError::Cancelled)), "{result:?}");
    tokio::time::sleep(Duration::from_millis(300)).await; // the engine notices at its next token
    let idle = cpu_over(Duration::from_secs(1)).await;
    (busy, idle)
}

fn assert_stopped(stage: &str, (busy, idle): (Duration, Duration)) {
    assert!(busy > Duration::from_millis(500), "{stage}: generation should keep a core busy: {busy:?}");
    assert!(idle * 4 < busy, "{stage}: work went on after cancel: {idle:?} CPU vs {busy:?} while generating");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_during_planning_stops_the_planner() {
    let edge = load_edge().await;
    // One planning call first, as an app's earlier queries would: the planner's instructions are
    // then in the engine's prefix cache and the query's prompt pass is short, so 2 s after
    // planning starts the planner is decoding its JSON.
    let warm = edge.stream(plan_request("How many legs do three spiders have in total?", &PlannerConfig::default()).with_max_tokens(1)).await.unwrap();
    warm.collect_text().await.unwrap();
    let scheduler = edge_only_scheduler(edge, 192).await;
    let cpu = cancel_at(scheduler, None, |e| matches!(e, Event::PlanningStarted { .. }), Duration::from_secs(2)).await;
    assert_stopped("planning", cpu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_during_a_subtask_stops_it() {
    let scheduler = edge_only_scheduler(load_edge().await, 400).await;
    let cpu = cancel_at(scheduler, Some(two_step_plan()), |e| matches!(e, Event::SubtaskStarted { .. }), Duration::from_millis(500)).await;
    assert_stopped("subtask", cpu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_during_the_synthesis_stops_it() {
    // Short subtasks keep the synthesis prompt short; it is cancelled once it streams its answer.
    let scheduler = edge_only_scheduler(load_edge().await, 48).await;
    let cpu = cancel_at(scheduler, Some(two_step_plan()), |e| matches!(e, Event::Token { subtask_id: None, .. }), Duration::ZERO).await;
    assert_stopped("synthesis", cpu);
}
