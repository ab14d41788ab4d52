//! The `HybridFlow` object apps hold, and the handle of a streaming query.
//!
//! Every call runs on the SDK's own tokio runtime; the foreign side only polls a future or
//! receives callbacks, which come from the SDK's one callback thread (see `callbacks`) so a slow
//! listener never stalls the engine. Dropping a future (a cancelled coroutine or Swift task),
//! cancelling or dropping a handle, or shutting the client down cancels the model calls behind it.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use futures::future::{BoxFuture, FutureExt, Shared};
use hybridflow_core::client::Client;
use hybridflow_core::exec::EventSink;
use hybridflow_core::model::edge::{self, EdgeEngine};
use hybridflow_core::store::Spending as CoreSpending;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::callbacks;
use crate::config::{AppPolicy, Budgets, DeviceState, HybridFlowConfig};
use crate::error::{panic_message, HybridFlowError};
use crate::events::{Answer, Event};
use crate::long;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hybridflow")
            .enable_all()
            .build()
            .expect("the HybridFlow runtime could not start (out of threads or file descriptors)")
    })
}

/// Runs `work` on the SDK's runtime. Dropping the returned future cancels `cancel`, which the
/// work observes; a panic in it becomes `Internal`.
async fn on_runtime<T: Send + 'static>(
    cancel: CancellationToken,
    work: impl Future<Output = Result<T, HybridFlowError>> + Send + 'static,
) -> Result<T, HybridFlowError> {
    let _cancel_on_drop = cancel.drop_guard();
    joined(runtime().spawn(work).await)
}

/// The outcome of a task of the runtime: a panic in it is `Internal`, an abort `Cancelled`.
fn joined<T>(outcome: Result<Result<T, HybridFlowError>, tokio::task::JoinError>) -> Result<T, HybridFlowError> {
    match outcome {
        Ok(result) => result,
        Err(error) if error.is_panic() => Err(HybridFlowError::Internal(panic_message(&*error.into_panic()))),
        Err(_) => Err(HybridFlowError::Cancelled),
    }
}

/// Runs a synchronous call, turning a panic into `Internal` instead of unwinding into the app.
/// Only for calls that neither block nor touch the disk.
fn guarded<T>(call: impl FnOnce() -> Result<T, HybridFlowError>) -> Result<T, HybridFlowError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
        .unwrap_or_else(|payload| Err(HybridFlowError::Internal(panic_message(&*payload))))
}

#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum LoadProgress {
    /// Reading the model file's header and checking memory.
    Checking { model_path: String },
    /// Loading the weights: the GGUF's architecture (e.g. "llama", "qwen2") and the file's size.
    Loading { architecture: String, file_bytes: i64 },
    /// The model answers from now on, run by `engine` on `device` ("CPU", or the GPU's name and
    /// driver); `gpu_unavailable` says why the GPU is not used although the configuration allowed it.
    Ready { load_time_ms: i64, engine: EdgeEngine, device: String, gpu_unavailable: Option<String> },
}

/// Receives model-load progress (called from the SDK's callback thread).
#[uniffi::export(callback_interface)]
pub trait LoadListener: Send + Sync {
    fn on_progress(&self, progress: LoadProgress);
}

/// Receives a streaming query's events in order (called from the SDK's callback thread).
#[uniffi::export(callback_interface)]
pub trait EventListener: Send + Sync {
    fn on_event(&self, event: Event);
}

#[derive(Clone, Debug, PartialEq, uniffi::Record)]
/// Cloud use in one budget window (a day or a month), as counted against its `Limits`.
pub struct Spending {
    /// Prompt and completion tokens sent to and received from the cloud.
    pub cloud_tokens: i64,
    /// At the endpoint's configured prices (`CloudEndpoint.inputPricePerMillionTokens`, ...).
    pub cost: f64,
    /// Wall time of cloud requests.
    pub cloud_time_ms: i64,
    pub cloud_requests: i64,
}

impl From<CoreSpending> for Spending {
    fn from(t: CoreSpending) -> Self {
        Self { cloud_tokens: long(t.cloud_tokens), cost: t.cost, cloud_time_ms: long(t.cloud_millis), cloud_requests: long(t.cloud_requests) }
    }
}

#[derive(Clone, Debug, uniffi::Record)]
/// Today's and this month's spending against the configured limits (days and months in UTC).
pub struct BudgetStatus {
    /// The limits in force (the configuration's).
    pub budgets: Budgets,
    pub today: Spending,
    pub this_month: Spending,
    /// Set when the budget store was damaged and rebuilt: the day's and month's limits count as
    /// used up (no cloud under them) until `resetBudgets`.
    pub spending_unknown: Option<String>,
}

/// What the router has measured on this device.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
/// Speeds are moving averages of measured calls, starting from priors for a mid-range phone and
/// a hosted model; they persist in the state directory.
pub struct RouterStatistics {
    /// Edge decoding speed.
    pub edge_tokens_per_second: f64,
    pub edge_first_token_ms: f64,
    /// Cloud decoding speed.
    pub cloud_tokens_per_second: f64,
    pub cloud_first_token_ms_wifi: f64,
    pub cloud_first_token_ms_cellular: f64,
    /// Moving average of failed cloud calls (0..=1).
    pub cloud_error_rate: f64,
    /// Model calls measured so far.
    pub observations: i64,
}

#[derive(uniffi::Object)]
pub struct HybridFlow {
    client: RwLock<Option<Arc<Client>>>,
    /// Parent of every query's token: shutting down cancels them all.
    closed: CancellationToken,
    /// Each call in progress holds a read lock; shutdown takes the write lock, so it waits for them.
    in_flight: Arc<tokio::sync::RwLock<()>>,
}

/// A call in progress on a client: the client, and the lock that makes shutdown wait for it.
struct Working {
    client: Arc<Client>,
    _in_flight: tokio::sync::OwnedRwLockReadGuard<()>,
}

impl HybridFlow {
    fn client(&self) -> Result<Arc<Client>, HybridFlowError> {
        self.client.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(HybridFlowError::Closed)
    }

    /// The client, for a call that shutdown must wait for.
    fn working(&self) -> Result<Working, HybridFlowError> {
        let in_flight = self.in_flight.clone().try_read_owned().map_err(|_| HybridFlowError::Closed)?;
        Ok(Working { client: self.client()?, _in_flight: in_flight })
    }
}

#[uniffi::export]
impl HybridFlow {
    /// Checks the configuration, loads the edge model (reporting progress) and opens the budget
    /// store. Cancelling the caller abandons the load.
    #[uniffi::constructor]
    pub async fn open(config: HybridFlowConfig, progress: Option<Box<dyn LoadListener>>) -> Result<Arc<Self>, HybridFlowError> {
        let core_config = config.to_core()?;
        // Invalid configurations fail here, before any thread or file is touched.
        guarded(|| Ok(core_config.validate()?))?;
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let progress: Option<Arc<dyn LoadListener>> = progress.map(Arc::from);
        let model_path = config.edge_model_path.clone().unwrap_or_default();
        on_runtime(cancel, async move {
            let report = move |p: edge::LoadProgress| {
                if let Some(listener) = progress.clone() {
                    let progress = match p {
                        edge::LoadProgress::Checking => LoadProgress::Checking { model_path: model_path.clone() },
                        edge::LoadProgress::Loading { architecture, file_bytes } => LoadProgress::Loading { architecture, file_bytes: long(file_bytes) },
                        edge::LoadProgress::Ready { load_time, engine, device, gpu_unavailable } => {
                            LoadProgress::Ready { load_time_ms: long(load_time.as_millis()), engine, device, gpu_unavailable }
                        }
                    };
                    callbacks::call(move || listener.on_progress(progress), |panic| log::warn!("the load listener failed: {panic}"));
                }
            };
            tokio::select! {
                client = Client::open(core_config, report) => {
                    let client = client?;
                    // Progress is reported before `open` returns.
                    callbacks::delivered().await;
                    Ok(Arc::new(Self { client: RwLock::new(Some(Arc::new(client))), closed: CancellationToken::new(), in_flight: Default::default() }))
                }
                _ = token.cancelled() => Err(HybridFlowError::Cancelled),
            }
        })
        .await
    }

    /// Answers a query. Cancelling the caller (coroutine, task) cancels the query.
    pub async fn ask(&self, query: String) -> Result<Answer, HybridFlowError> {
        let working = self.working()?;
        let cancel = self.closed.child_token();
        let token = cancel.clone();
        on_runtime(cancel, async move {
            // Nobody listens: the events of this call are dropped as they come.
            let (sink, _) = EventSink::channel();
            Ok(working.client.ask(&query, &sink, &token).await?.into())
        })
        .await
    }

    /// Starts a query whose events go to `listener`, in order, ending with `Event.Answer`.
    /// The handle's `answer()` completes after the last event was delivered.
    pub fn ask_streaming(&self, query: String, listener: Box<dyn EventListener>) -> Result<Arc<QueryHandle>, HybridFlowError> {
        let working = self.working()?;
        let cancel = self.closed.child_token();
        let token = cancel.clone();
        let listener: Arc<dyn EventListener> = Arc::from(listener);
        let task = runtime().spawn(async move {
            let (sink, mut events) = EventSink::channel();
            let listener_failure = Arc::new(Mutex::new(None::<String>));
            let forward = {
                let failure = listener_failure.clone();
                async move {
                    while let Some(event) = events.recv().await {
                        let (listener, failure) = (listener.clone(), failure.clone());
                        let event = Event::from(event);
                        callbacks::call(move || listener.on_event(event), move |panic| {
                            failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(panic);
                        });
                    }
                }
            };
            let forwarding = tokio::spawn(forward);
            let result = working.client.ask(&query, &sink, &token).await;
            drop(sink);
            let _ = forwarding.await;
            callbacks::delivered().await;
            let answer = result?;
            if let Some(panic) = listener_failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(HybridFlowError::Internal(format!("event listener: {panic}")));
            }
            Ok(answer.into())
        });
        let outcome = async move { joined(task.await) };
        Ok(Arc::new(QueryHandle { cancel, outcome: outcome.boxed().shared() }))
    }

    /// What the phone reports; the learned router's gates use it from the next step on.
    pub fn set_device_state(&self, state: DeviceState) -> Result<(), HybridFlowError> {
        guarded(|| {
            self.client()?.set_device_state(state.into());
            Ok(())
        })
    }

    pub fn set_policy(&self, policy: AppPolicy) -> Result<(), HybridFlowError> {
        guarded(|| {
            Ok(self.client()?.set_policy(policy.into())?)
        })
    }

    /// Today's and this month's cloud spending against the configured limits.
    pub async fn budget_status(&self) -> Result<BudgetStatus, HybridFlowError> {
        let working = self.working()?;
        on_runtime(CancellationToken::new(), async move {
            let status = working.client.budget_status().await?;
            Ok(BudgetStatus { budgets: status.budgets.into(), today: status.today.into(), this_month: status.this_month.into(), spending_unknown: status.spending_unknown })
        })
        .await
    }

    /// Forgets the day's and month's spending (and a "spending unknown" mark after a damaged store).
    pub async fn reset_budgets(&self) -> Result<(), HybridFlowError> {
        let working = self.working()?;
        on_runtime(CancellationToken::new(), async move { Ok(working.client.reset_budgets().await?) }).await
    }

    /// `null` unless the routing is `Learned`.
    pub async fn router_statistics(&self) -> Result<Option<RouterStatistics>, HybridFlowError> {
        let working = self.working()?;
        on_runtime(CancellationToken::new(), async move {
            Ok(working.client.router_statistics().map(|s| RouterStatistics {
                edge_tokens_per_second: s.edge_tokens_per_second,
                edge_first_token_ms: s.edge_first_token_seconds * 1e3,
                cloud_tokens_per_second: s.cloud_tokens_per_second,
                cloud_first_token_ms_wifi: s.cloud_first_token_seconds[0] * 1e3,
                cloud_first_token_ms_cellular: s.cloud_first_token_seconds[1] * 1e3,
                cloud_error_rate: s.cloud_error_rate,
                observations: long(s.observations),
            }))
        })
        .await
    }

    /// Cancels running queries, waits until they and the store's pending writes have ended, and
    /// releases the model and the state directory: a new client can open the same directory as
    /// soon as this returns. Idempotent; later calls on this object fail with `Closed`.
    pub async fn shutdown(&self) {
        self.closed.cancel();
        let client = self.client.write().unwrap_or_else(|p| p.into_inner()).take();
        let in_flight = self.in_flight.clone();
        let _ = runtime()
            .spawn(async move {
                // Held until the end: no new call can start on this object.
                let _no_more_calls = in_flight.write_owned().await;
                if let Some(client) = client.and_then(Arc::into_inner) {
                    client.close().await;
                }
            })
            .await;
    }
}

impl Drop for HybridFlow {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// A running streaming query. Dropping it (Kotlin `close()`, Swift release) cancels the query.
#[derive(uniffi::Object)]
pub struct QueryHandle {
    cancel: CancellationToken,
    outcome: Shared<BoxFuture<'static, Result<Answer, HybridFlowError>>>,
}

#[uniffi::export]
impl QueryHandle {
    /// Stops every model call of the query; `answer()` then fails with `Cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The final answer, once every event was delivered.
    pub async fn answer(&self) -> Result<Answer, HybridFlowError> {
        self.outcome.clone().await
    }
}

impl Drop for QueryHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
