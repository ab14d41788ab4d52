//! The learned router with real models and the real cloud: once a hard budget limit is reached no
//! request reaches the cloud server (its own token counters prove it), and the user still gets an
//! answer from the edge.

use std::sync::Arc;

use hybridflow_core::device::AppPolicy;
use hybridflow_core::exec::{Event, ExecConfig, Models, Scheduler};
use hybridflow_core::guard::{Budgets, CloudGuard, Gate, Ledger, Limits};
use hybridflow_core::model::cloud::Price;
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel};
use hybridflow_core::model::{ChatModel, Side};
use hybridflow_core::route::router::{LearnedRouter, RouterConfig};
use hybridflow_core::store::{now_unix_seconds, Store, StoreWriter, UsageRecord};
use hybridflow_e2e::{default_edge_model, run_collecting, scratch_dir, test_cloud, test_cloud_token_counter};

const QUESTION: &str = "A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?";

async fn ask(edge: Arc<dyn ChatModel>, store: Arc<StoreWriter>) -> (String, Vec<Event>) {
    let cloud = test_cloud();
    let budgets = Budgets { per_day: Limits { money: Some(0.5), ..Limits::default() }, ..Budgets::default() };
    let price = Price { input_per_million: 0.15, output_per_million: 0.60 };
    let guard = Arc::new(CloudGuard::new(true, AppPolicy::default(), Ledger::new(budgets, Some(store.clone())), Some(cloud.breaker()), price));
    let router = LearnedRouter::new(RouterConfig::default(), guard.clone(), Some(store), Some(cloud.breaker()));
    let scheduler = Scheduler::new(Models { edge: Some(edge), cloud: Some(Arc::new(cloud)) }, Arc::new(router), guard.clone(), ExecConfig::default()).unwrap();
    let (answer, events) = run_collecting(&scheduler, QUESTION).await;
    guard.ledger().flushed().await;
    (answer.text, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cloud_request_once_the_daily_budget_is_spent() {
    let edge: Arc<dyn ChatModel> = Arc::new(EdgeModel::load(EdgeConfig::new(default_edge_model()), |_| {}).await.unwrap());
    let dir = scratch_dir("router-budget");

    // Control: with budget left, the query-level decision sends the whole query to the cloud.
    let fresh = Arc::new(StoreWriter::start(Arc::new(Store::open(&dir.join("fresh")).unwrap())).unwrap());
    let before = test_cloud_token_counter();
    let (_, events) = ask(edge.clone(), fresh.clone()).await;
    assert!(test_cloud_token_counter() > before, "control: the cloud was used while budget remained");
    assert!(events.iter().any(|e| matches!(e, Event::SubtaskStarted { side: Side::Cloud, explanation: Some(x), .. } if x.predicted_gain > x.threshold)), "{events:?}");
    assert!(fresh.store().records() > 0, "usage recorded");

    // Spent: 0.6 of a 0.5 daily budget already recorded today.
    let spent = Store::open(&dir.join("spent")).unwrap();
    spent.record("earlier", &UsageRecord { at_unix_seconds: now_unix_seconds(), side: Side::Cloud, prompt_tokens: 1000, completion_tokens: 1000, cost: 0.6, wall_millis: 1000, estimated: false }).unwrap();
    let spent = Arc::new(StoreWriter::start(Arc::new(spent)).unwrap());
    let before = test_cloud_token_counter();
    let (answer, events) = ask(edge, spent).await;
    assert_eq!(test_cloud_token_counter(), before, "a request reached the cloud after the budget was spent");
    assert!(!answer.trim().is_empty(), "the edge still answered");
    let gated = events.iter().filter(|e| matches!(e,
        Event::SubtaskStarted { side: Side::Edge, explanation: Some(x), .. } | Event::AnswerStarted { side: Side::Edge, explanation: Some(x), .. }
        if x.gate == Some(Gate::BudgetExhausted))).count();
    assert!(gated > 0, "the events say the budget decided: {events:?}");
    drop(fresh);
    std::fs::remove_dir_all(dir).unwrap();
}
