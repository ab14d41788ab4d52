//! The SDK's entry point: one validated configuration becomes a ready engine (edge model loaded,
//! cloud client, budget store, router, scheduler). The terminal app and the FFI both build on it,
//! so every app gets the same wiring and the same checks.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::device::{AppPolicy, DeviceState};
use crate::exec::{Answer, EventSink, ExecConfig, ExecError, Models, Scheduler};
use crate::model::cloud::{CloudConfig, CloudError, CloudModel};
use crate::model::edge::{EdgeConfig, EdgeLoadError, LoadProgress};
use crate::model::{ChatModel, Side};
use crate::route::router::{Budgets, LearnedRouter, Limits, RouterConfig, RouterStats};
use crate::route::{Accounted, ByDifficulty, Fixed, RoutePolicy};
use crate::store::{now_unix_seconds, Store, StoreError, Window, WindowTotals};

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

fn accounted<P: RoutePolicy + 'static>(policy: P, store: &Option<Arc<Store>>) -> Arc<dyn RoutePolicy> {
    match store {
        Some(store) => Arc::new(Accounted { policy, store: store.clone() }),
        None => Arc::new(policy),
    }
}

/// Spending in the current day and month against the configured limits.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetStatus {
    pub budgets: Budgets,
    pub today: WindowTotals,
    pub this_month: WindowTotals,
}

/// A ready HybridFlow engine. Cheap to share: queries run concurrently.
pub struct Client {
    scheduler: Scheduler,
    router: Option<Arc<LearnedRouter>>,
    store: Option<Arc<Store>>,
    budgets: Budgets,
}

impl Client {
    /// Validates the configuration, loads the edge model (reporting progress) and opens the store.
    pub async fn open(config: ClientConfig, progress: impl Fn(LoadProgress) + Send + Sync + 'static) -> Result<Self, ClientError> {
        config.validate()?;
        let store = match &config.state_dir {
            Some(dir) => {
                let store = Store::open(dir)?;
                if let Some(why) = store.recovered() {
                    log::warn!("budget store rebuilt: {why}");
                }
                Some(Arc::new(store))
            }
            None => None,
        };
        let edge: Option<Arc<dyn ChatModel>> = match config.edge {
            #[cfg(feature = "edge")]
            Some(edge) => Some(Arc::new(crate::model::edge::EdgeModel::load(edge, progress).await?)),
            #[cfg(not(feature = "edge"))]
            Some(_) => {
                drop(progress);
                return Err(ClientError::InvalidConfig("this build has no edge backend (feature `edge`)".into()));
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
        let mut router = None;
        let policy: Arc<dyn RoutePolicy> = match config.routing {
            Routing::Learned => {
                let learned = Arc::new(LearnedRouter::new(RouterConfig { budgets: config.budgets, price, ..RouterConfig::default() }, store.clone(), breaker));
                learned.set_policy(config.policy);
                router = Some(learned.clone());
                learned
            }
            Routing::ByDifficulty => accounted(ByDifficulty, &store),
            Routing::EdgeOnly => accounted(Fixed(Side::Edge), &store),
            Routing::CloudOnly => accounted(Fixed(Side::Cloud), &store),
        };
        let scheduler = Scheduler::new(Models { edge, cloud }, policy, config.exec)?;
        Ok(Self { scheduler, router, store, budgets: config.budgets })
    }

    /// Answers a query; events go to `events`, `cancel` stops every model call of it.
    pub async fn ask(&self, query: &str, events: &EventSink, cancel: &CancellationToken) -> Result<Answer, ExecError> {
        self.scheduler.run(query, events, cancel).await
    }

    /// The device state the learned router's gates use (ignored by the fixed routings).
    pub fn set_device_state(&self, state: DeviceState) {
        if let Some(router) = &self.router {
            router.set_device_state(state);
        }
    }

    pub fn set_policy(&self, policy: AppPolicy) -> Result<(), ClientError> {
        policy.validate().map_err(ClientError::InvalidConfig)?;
        if let Some(router) = &self.router {
            router.set_policy(policy);
        }
        Ok(())
    }

    /// Whether the device state and the policy reach the router (only the learned routing uses them).
    pub fn is_device_aware(&self) -> bool {
        self.router.is_some()
    }

    pub fn budget_status(&self) -> Result<BudgetStatus, ClientError> {
        let now = now_unix_seconds();
        let (today, this_month) = match &self.store {
            Some(store) => (store.window_totals(Window::Day, now)?, store.window_totals(Window::Month, now)?),
            None => Default::default(),
        };
        Ok(BudgetStatus { budgets: self.budgets, today, this_month })
    }

    /// Forgets the day's and month's spending (the usage log stays, so replays still count once).
    pub fn reset_budgets(&self) -> Result<(), ClientError> {
        match &self.store {
            Some(store) => Ok(store.reset_budgets()?),
            None => Ok(()),
        }
    }

    /// What the router has measured on this device (`None` for the fixed routings).
    pub fn router_stats(&self) -> Option<RouterStats> {
        self.router.as_ref().map(|r| r.stats())
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
        config.policy.calibration_probe_rate = 1.5;
        assert!(rejected(config).contains("calibration_probe_rate"));
        let mut config = edge_only();
        config.exec.max_queries_in_flight = 0;
        assert!(rejected(config).contains("at least 1"));
    }
}
