//! Online calibration with the real models: subtasks kept on the edge are also run on the real
//! cloud (its own token counters prove the requests), the answer still comes from the edge, every
//! probe updates the persisted calibration and is counted in the budgets, and a gate that takes
//! the cloud away takes the probes with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hybridflow_core::device::{AppPolicy, DeviceState, Network};
use hybridflow_core::exec::{Decomposition, Event, ExecConfig, Models, Scheduler};
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel};
use hybridflow_core::model::{ChatModel, Side};
use hybridflow_core::route::router::{LearnedRouter, RouterConfig, UtilityWeights};
use hybridflow_core::guard::{Budgets, CloudGuard, Ledger};
use hybridflow_core::model::cloud::Price;
use hybridflow_core::store::{now_unix_seconds, Store, StoreWriter, Window};
use hybridflow_e2e::{default_edge_model, run_collecting, scratch_dir, test_cloud, test_cloud_token_counter};

const QUESTION: &str = "A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?";

/// A router that keeps every step on the edge (threshold 1: the gain never exceeds it) and probes
/// every subtask it keeps there, with its guard.
fn edge_router(store: Arc<StoreWriter>, cloud_breaker: Arc<hybridflow_core::model::cloud::CircuitBreaker>) -> (Arc<LearnedRouter>, Arc<CloudGuard>) {
    let policy = AppPolicy { calibration_probe_rate: 1.0, ..AppPolicy::default() };
    let guard = Arc::new(CloudGuard::new(true, policy, Ledger::new(Budgets::default(), Some(store.clone())), Some(cloud_breaker.clone()), Price::default()));
    let config = RouterConfig { utility: UtilityWeights { base_threshold: 1.0, ..UtilityWeights::default() }, ..RouterConfig::default() };
    (Arc::new(LearnedRouter::new(config, guard.clone(), Some(store), Some(cloud_breaker))), guard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_reach_the_cloud_calibrate_and_persist_but_respect_gates() {
    let edge: Arc<dyn ChatModel> = Arc::new(EdgeModel::load(EdgeConfig::new(default_edge_model()), |_| {}).await.unwrap());
    let dir = scratch_dir("router-calibration");
    let store = Arc::new(StoreWriter::start(Arc::new(Store::open(&dir).unwrap())).unwrap());
    let cloud = test_cloud();
    let (router, guard) = edge_router(store.clone(), cloud.breaker());
    let scheduler = Scheduler::new(Models { edge: Some(edge.clone()), cloud: Some(Arc::new(cloud)) }, router.clone(), guard.clone(), ExecConfig { decomposition: Decomposition::LongQueries, ..ExecConfig::default() }).unwrap();

    let before = test_cloud_token_counter();
    let (answer, events) = run_collecting(&scheduler, QUESTION).await;
    assert!(!answer.text.trim().is_empty());
    let subtasks: Vec<Side> = events.iter().filter_map(|e| match e { Event::SubtaskStarted { side, .. } => Some(*side), _ => None }).collect();
    assert!(!subtasks.is_empty() && subtasks.iter().all(|s| *s == Side::Edge), "every step stays on the edge: {subtasks:?}");
    assert!(answer.totals.cloud.prompt_tokens == 0, "the answer itself used no cloud");

    // Probes run in the background after their subtask: wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(180);
    while router.stats().calibration.observations < subtasks.len() as u64 {
        assert!(Instant::now() < deadline, "{} of {} probes finished", router.stats().calibration.observations, subtasks.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let calibration = router.stats().calibration;
    assert_eq!(calibration.observations, subtasks.len() as u64);
    assert!(test_cloud_token_counter() > before, "the probes reached the real cloud");
    guard.ledger().flushed().await;
    let today = store.store().window_totals(Window::Day, now_unix_seconds()).unwrap();
    assert_eq!(today.cloud_requests, subtasks.len() as u64, "each probe counted once in the budgets");
    scheduler.stop_probes().await;
    drop((scheduler, router, guard, store));

    // After a restart the calibration is what it was.
    let store = Arc::new(StoreWriter::start(Arc::new(Store::open(&dir).unwrap())).unwrap());
    let cloud = test_cloud();
    let (restarted, guard) = edge_router(store.clone(), cloud.breaker());
    assert_eq!(restarted.stats().calibration, calibration);

    // Offline: no probe leaves the device.
    guard.set_device_state(DeviceState { network: Network::None, ..DeviceState::default() });
    let scheduler = Scheduler::new(Models { edge: Some(edge), cloud: Some(Arc::new(cloud)) }, restarted.clone(), guard, ExecConfig { decomposition: Decomposition::LongQueries, ..ExecConfig::default() }).unwrap();
    let before = test_cloud_token_counter();
    run_collecting(&scheduler, QUESTION).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(test_cloud_token_counter(), before, "a probe reached the cloud while offline");
    assert_eq!(restarted.stats().calibration, calibration);
    drop(scheduler);
    std::fs::remove_dir_all(dir).unwrap();
}
