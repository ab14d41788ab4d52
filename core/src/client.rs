//! The SDK's entry point: one validated configuration becomes a ready engine (edge model loaded,
//! cloud client, budget store, router, scheduler). The terminal app and the FFI both build on it,
//! so every app gets the same wiring and the same checks.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::device::{AppPolicy, DeviceState, Offload};
use crate::exec::{Answer, EventSink, ExecConfig, ExecError, Models, Scheduler};
use crate::guard::{Budgets, CloudGuard, Ledger, Limits};
use crate::model::cloud::{CloudConfig, CloudError, CloudModel};
use crate::model::edge::{EdgeConfig, EdgeLoadError, GpuUse, LoadProgress};
use crate::model::{ChatModel, Side};
use crate::route::router::{LearnedRouter, RouterConfig, RouterStatistics};
use crate::route::{ByDifficulty, Fixed, RoutePolicy};
use crate::store::{now_unix_seconds, Store, StoreError, StoreWriter, Window, Spending};

/// How steps are assigned to a side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Routing {
    /// The learned, budget- and device-aware router.
    #[default]
    Learned,
    /// The planner's difficulty hint (hard steps to the cloud).
    ByDifficulty,
    EdgeOnly,
    CloudOnly,
}

#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// The edge model; `None` runs cloud only.
    pub edge: Option<EdgeConfig>,
    /// The cloud endpoint; `None` runs on the device only.
    pub cloud: Option<CloudConfig>,
    /// Where budgets and router statistics persist; `None` keeps them in memory (per-day and
    /// per-month limits then cannot be enforced and are rejected).
    pub state_dir: Option<PathBuf>,
    pub budgets: Budgets,
    pub policy: AppPolicy,
    pub routing: Routing,
    pub exec: ExecConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    EdgeLoad(#[from] EdgeLoadError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("budget store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("the client is closed")]
    Closed,
}

impl ClientConfig {
    /// Everything that can be checked before loading anything (the FFI's config decoder ends here).
    pub fn validate(&self) -> Result<(), ClientError> {
        let invalid = |message: String| Err(ClientError::InvalidConfig(message));
        if self.edge.is_none() && self.cloud.is_none() {
            return invalid("neither an edge model nor a cloud endpoint is configured".into());
        }
        if let Some(edge) = &self.edge {
            if edge.model_path.as_os_str().is_empty() {
                return invalid("the edge model path is empty".into());
            }
            if edge.max_concurrent_sequences == 0 {
                return invalid("max_concurrent_sequences must be at least 1".into());
            }
            if let Err(message) = edge.validate() {
                return invalid(message);
            }
            if edge.gpu == GpuUse::Vulkan && edge.gpu_state_dir.is_none() && self.state_dir.is_none() {
                return invalid("GPU use needs a state directory: the GPU probe records there whether a start crashed".into());
            }
        }
        if let Some(cloud) = &self.cloud {
            cloud.endpoint()?;
            if cloud.model.trim().is_empty() {
                return invalid("the cloud model name is empty".into());
            }
            for (name, price) in [("input", cloud.price.input_per_million), ("output", cloud.price.output_per_million)] {
                if !price.is_finite() || price < 0.0 {
                    return invalid(format!("the {name} price must be a finite, non-negative number, not {price}"));
                }
            }
            if cloud.timeouts.total.is_zero() || cloud.timeouts.connect.is_zero() {
                return invalid("cloud timeouts must be longer than zero".into());
            }
            if cloud.max_response_bytes == 0 {
                return invalid("max_response_bytes must be at least 1".into());
            }
            if cloud.retry.max_attempts == 0 {
                return invalid("retry.max_attempts must be at least 1".into());
            }
        }
        for (window, limits) in [("per_query", &self.budgets.per_query), ("per_day", &self.budgets.per_day), ("per_month", &self.budgets.per_month)] {
            if let Some(money) = limits.money {
                if !money.is_finite() || money < 0.0 {
                    return invalid(format!("budgets.{window}.money must be a finite, non-negative number, not {money}"));
                }
            }
            if window != "per_query" && self.state_dir.is_none() && *limits != Limits::default() {
                return invalid(format!("budgets.{window} needs a state_dir to persist spending in"));
            }
        }
        self.policy.validate().map_err(ClientError::InvalidConfig)?;
        check_policy_fits(&self.policy, self.routing, self.edge.is_some()).map_err(ClientError::InvalidConfig)?;
        let exec = &self.exec;
        if exec.max_query_chars == 0 || exec.subtask_max_tokens == 0 || exec.answer_max_tokens == 0 || exec.max_edge_generations == 0 || exec.attempts_per_side == 0
            || exec.max_queries_in_flight == 0 || exec.max_cloud_requests == 0
        {
            return invalid("limits on query size, tokens, generations, requests, queries and attempts must be at least 1".into());
        }
        if exec.planner_config.max_subtasks == 0 {
            return invalid("the plan size limit must be at least 1".into());
        }
        Ok(())
    }
}

/// A policy that never offloads contradicts a configuration that can only answer on the cloud.
fn check_policy_fits(policy: &AppPolicy, routing: Routing, has_edge: bool) -> Result<(), String> {
    if policy.offload != Offload::Never {
        return Ok(());
    }
    if routing == Routing::CloudOnly {
        return Err("policy.offload is Never, which contradicts routing CloudOnly".into());
    }
    if !has_edge {
        return Err("policy.offload is Never but no edge model is configured: nothing could answer".into());
    }
    Ok(())
}

/// Spending in the current day and month against the configured limits.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetStatus {
    pub budgets: Budgets,
    pub today: Spending,
    pub this_month: Spending,
    /// Set when the budget store was damaged and rebuilt: the day's and month's limits count as
    /// used up (no cloud) until [`Client::reset_budgets`].
    pub spending_unknown: Option<String>,
}

/// How long [`Client::close`] waits for a cancelled query's tasks to let go of the store.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A ready HybridFlow engine. Cheap to share: queries run concurrently.
pub struct Client {
    scheduler: Scheduler,
    guard: Arc<CloudGuard>,
    router: Option<Arc<LearnedRouter>>,
    store: Option<Arc<StoreWriter>>,
    routing: Routing,
    has_edge: bool,
}

impl Client {
    /// Validates the configuration, loads the edge model (reporting progress) and opens the store.
    pub async fn open(config: ClientConfig, progress: impl Fn(LoadProgress) + Send + Sync + 'static) -> Result<Self, ClientError> {
        config.validate()?;
        let store = match config.state_dir.clone() {
            // Opening may fsync and rebuild: off the async workers.
            Some(dir) => {
                let store = tokio::task::spawn_blocking(move || Store::open(&dir)).await.map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))??;
                if let Some(why) = store.recovered() {
                    log::warn!("budget store rebuilt: {why}; cloud use under day and month limits is blocked until the budgets are reset");
                }
                Some(Arc::new(StoreWriter::start(Arc::new(store))?))
            }
            None => None,
        };
        let has_edge = config.edge.is_some();
        let mut edge_config = config.edge;
        if let (Some(edge), Some(state_dir)) = (&mut edge_config, &config.state_dir) {
            // The GPU probe's marker must outlive a crash: it lives with the budgets.
            edge.gpu_state_dir.get_or_insert_with(|| state_dir.join("gpu"));
        }
        let edge: Option<Arc<dyn ChatModel>> = match edge_config {
            #[cfg(feature = "edge")]
            Some(edge) => Some(Arc::new(crate::model::edge::EdgeModel::load(edge, progress).await?)),
            #[cfg(not(feature = "edge"))]
            Some(_) => {
                drop(progress);
                return Err(ClientError::InvalidConfig("this build has no edge engine (feature `mistralrs` or `ggml`)".into()));
            }
            None => None,
        };
        let mut breaker = None;
        let mut price = Default::default();
        let cloud: Option<Arc<dyn ChatModel>> = match config.cloud {
            Some(cloud) => {
                price = cloud.price;
                let model = CloudModel::new(cloud)?;
                breaker = Some(model.breaker());
                Some(Arc::new(model))
            }
            None => None,
        };
        let ledger = Ledger::new(config.budgets, store.clone());
        let guard = Arc::new(CloudGuard::new(cloud.is_some(), config.policy, ledger, breaker.clone(), price));
        let mut router = None;
        let policy: Arc<dyn RoutePolicy> = match config.routing {
            Routing::Learned => {
                let learned = Arc::new(LearnedRouter::new(RouterConfig::default(), guard.clone(), store.clone(), breaker));
                router = Some(learned.clone());
                learned
            }
            Routing::ByDifficulty => Arc::new(ByDifficulty),
            Routing::EdgeOnly => Arc::new(Fixed(Side::Edge)),
            Routing::CloudOnly => Arc::new(Fixed(Side::Cloud)),
        };
        let scheduler = Scheduler::new(Models { edge, cloud }, policy, guard.clone(), config.exec)?;
        Ok(Self { scheduler, guard, router, store, routing: config.routing, has_edge })
    }

    /// Answers a query; events go to `events`, `cancel` stops every model call of it.
    pub async fn ask(&self, query: &str, events: &EventSink, cancel: &CancellationToken) -> Result<Answer, ExecError> {
        self.scheduler.run(query, events, cancel).await
    }

    /// The device state the cloud guard uses from the next request on (every routing).
    pub fn set_device_state(&self, state: DeviceState) {
        self.guard.set_device_state(state);
    }

    /// The app's policy for the cloud, from the next request on (every routing).
    pub fn set_policy(&self, policy: AppPolicy) -> Result<(), ClientError> {
        policy.validate().map_err(ClientError::InvalidConfig)?;
        check_policy_fits(&policy, self.routing, self.has_edge).map_err(ClientError::InvalidConfig)?;
        self.guard.set_policy(policy);
        Ok(())
    }

    pub async fn budget_status(&self) -> Result<BudgetStatus, ClientError> {
        let budgets = self.guard.ledger().budgets();
        let Some(store) = &self.store else {
            return Ok(BudgetStatus { budgets, today: Spending::default(), this_month: Spending::default(), spending_unknown: None });
        };
        // Behind the settlements already queued, so the figures include every finished request.
        let read = store.run(|store| {
            let now = now_unix_seconds();
            Ok::<_, StoreError>((store.window_totals(Window::Day, now)?, store.window_totals(Window::Month, now)?, store.spending_unknown()))
        });
        let (today, this_month, spending_unknown) = read.await.ok_or(ClientError::Closed)??;
        Ok(BudgetStatus { budgets, today, this_month, spending_unknown })
    }

    /// Forgets the day's and month's spending, and a "spending unknown" mark (the usage log stays,
    /// so replays still count once).
    pub async fn reset_budgets(&self) -> Result<(), ClientError> {
        match &self.store {
            Some(store) => Ok(store.run(|store| store.reset_budgets()).await.ok_or(ClientError::Closed)??),
            None => Ok(()),
        }
    }

    /// What the router has measured on this device (`None` for the fixed routings).
    pub fn router_statistics(&self) -> Option<RouterStatistics> {
        self.router.as_ref().map(|r| r.stats())
    }

    /// Ends the client: waits for the store's pending writes and releases the store, so another
    /// client can open the same state directory at once. Queries still running hold the engine
    /// until they end; callers cancel them first.
    pub async fn close(self) {
        let Self { scheduler, guard, router, store, .. } = self;
        drop((scheduler, guard, router));
        let Some(mut store) = store else { return };
        // The step tasks of a cancelled query hold the scheduler, and through it the store, until
        // the runtime drops them (an aborted task is dropped on a later turn, not at once): wait
        // until this is the last handle, so the directory is free when close returns. Bounded, in
        // case a task never ends; then the store closes when that task does.
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        loop {
            match Arc::try_unwrap(store) {
                Ok(last) => {
                    // Stopping the writer thread joins it: not on an async worker.
                    let _ = tokio::task::spawn_blocking(move || drop(last)).await;
                    return;
                }
                Err(shared) if std::time::Instant::now() < deadline => {
                    store = shared;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(_) => {
                    log::warn!("close: a query's task still holds the budget store; it is released when that task ends");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge_only() -> ClientConfig {
        ClientConfig { edge: Some(EdgeConfig::new("/models/m.gguf")), ..ClientConfig::default() }
    }

    fn rejected(config: ClientConfig) -> String {
        match config.validate() {
            Err(ClientError::InvalidConfig(message)) | Err(ClientError::Cloud(CloudError::InvalidConfig(message))) => message,
            other => panic!("accepted or wrong error: {other:?}"),
        }
    }

    #[test]
    fn each_bad_value_is_named() {
        assert!(edge_only().validate().is_ok());
        assert!(rejected(ClientConfig::default()).contains("neither"));
        let mut config = edge_only();
        config.cloud = Some(CloudConfig::new("http://api.example.com/v1", "m"));
        assert!(rejected(config).contains("https"));
        let mut config = edge_only();
        let mut cloud = CloudConfig::new("https://api.example.com/v1", "m");
        cloud.price.input_per_million = f64::NAN;
        config.cloud = Some(cloud);
        assert!(rejected(config).contains("input price"));
        let mut config = edge_only();
        config.budgets.per_month.money = Some(5.0);
        assert!(rejected(config).contains("per_month needs a state_dir"));
        let mut config = edge_only();
        config.budgets.per_query.money = Some(-1.0);
        assert!(rejected(config).contains("per_query.money"));
        let mut config = edge_only();
        config.policy.min_battery_for_cloud = f32::NAN;
        assert!(rejected(config).contains("min_battery_for_cloud"));
        let mut config = edge_only();
        config.policy.min_battery_for_cloud = 1.5;
        assert!(rejected(config).contains("min_battery_for_cloud"));
        let mut config = edge_only();
        config.exec.max_queries_in_flight = 0;
        assert!(rejected(config).contains("at least 1"));
    }

    #[test]
    fn a_never_offload_policy_that_leaves_nothing_to_answer_is_rejected() {
        let never = AppPolicy { offload: Offload::Never, ..AppPolicy::default() };
        let mut config = edge_only();
        config.cloud = Some(CloudConfig::new("https://api.example.com/v1", "m"));
        config.policy = never;
        assert!(config.validate().is_ok(), "edge only in practice: fine");
        config.routing = Routing::CloudOnly;
        assert!(rejected(config.clone()).contains("contradicts routing CloudOnly"));
        config.routing = Routing::Learned;
        config.edge = None;
        assert!(rejected(config).contains("no edge model"));
    }
}
