//! The configuration as Kotlin and Swift see it (flat records with defaults), and its decoding
//! into the core's types. Decoding checks everything up front: a bad value is an
//! `InvalidConfig` naming the field, never a crash later.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use hybridflow_core::client::Routing;
use hybridflow_core::client::ClientConfig;
use hybridflow_core::device;
pub use hybridflow_core::exec::Decomposition;
use hybridflow_core::exec::ExecConfig;
use hybridflow_core::guard as core_budget;
pub use hybridflow_core::device::{Network, Offload, Thermal};
pub use hybridflow_core::model::cloud::TrustRoots;
use hybridflow_core::model::cloud::{self, CloudConfig, Price};
pub use hybridflow_core::model::edge::{EdgeEngine, GpuUse};
use hybridflow_core::model::edge::EdgeConfig;

use crate::error::HybridFlowError;
use crate::long;

#[derive(Clone, Debug, uniffi::Record)]
pub struct HybridFlowConfig {
    /// GGUF file of the on-device model; `None` runs cloud only.
    #[uniffi(default = None)]
    pub edge_model_path: Option<String>,
    /// The engine that runs it; `None`: ggml with `gpu = Vulkan` (the engine with a Vulkan
    /// backend), else mistral.rs (ggml in the lean Android library, which has only ggml).
    #[uniffi(default = None)]
    pub edge_engine: Option<EdgeEngine>,
    /// `None`: `Off`. `Vulkan` needs the ggml engine and a `state_dir` (the GPU probe records
    /// there whether a start crashed); in a library without ggml (iOS, Android's armeabi-v7a)
    /// the model loads on the CPU and `LoadProgress.Ready.gpuUnavailable` says why.
    #[uniffi(default = None)]
    pub gpu: Option<GpuUse>,
    /// GPUs never to use: lower-case substrings of their driver description (e.g. "mali-g71").
    #[uniffi(default = None)]
    pub gpu_deny_list: Option<Vec<String>>,
    /// The cloud model; `None` runs on the edge only.
    #[uniffi(default = None)]
    pub cloud: Option<CloudEndpoint>,
    /// Where budgets and router statistics persist (the app's files directory); `None` keeps
    /// them in memory, which allows only per-query limits.
    #[uniffi(default = None)]
    pub state_dir: Option<String>,
    /// Limits on cloud use; the default has none. Daily and monthly limits need `state_dir`.
    #[uniffi(default)]
    pub budgets: Budgets,
    /// `None`: offload allowed, personal data kept on the device, no cloud under 10% battery.
    #[uniffi(default = None)]
    pub policy: Option<AppPolicy>,
    /// `None`: the learned router.
    #[uniffi(default = None)]
    pub routing: Option<Routing>,
    /// `None`: `Never`, every query answered in one step on the side the router picks.
    #[uniffi(default = None)]
    pub decomposition: Option<Decomposition>,
    /// Longest query accepted, in characters (at least 1).
    #[uniffi(default = 8000)]
    pub max_query_chars: i32,
    /// Most subtasks a plan may have (at least 1).
    #[uniffi(default = 6)]
    pub max_subtasks: i32,
    /// Edge generations running at once (a phone decodes one well; at least 1).
    #[uniffi(default = 1)]
    pub max_edge_generations: i32,
    /// Queries running at once; one more fails with `Busy` (at least 1).
    #[uniffi(default = 16)]
    pub max_queries_in_flight: i32,
    /// Cloud requests in flight at once, across queries; more wait for a slot (at least 1).
    #[uniffi(default = 4)]
    pub max_cloud_requests: i32,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct CloudEndpoint {
    /// OpenAI-compatible API root, e.g. `https://api.example.com/v1` (http only for loopback).
    pub base_url: String,
    /// The `model` of each chat completion request.
    pub model: String,
    /// Sent as a bearer token; never logged, printed or stored by the SDK.
    #[uniffi(default = None)]
    pub api_key: Option<Arc<ApiKey>>,
    /// Price of prompt tokens, for `Spending.cost` and money limits (any currency).
    #[uniffi(default = 0.0)]
    pub input_price_per_million_tokens: f64,
    /// Price of completion tokens.
    #[uniffi(default = 0.0)]
    pub output_price_per_million_tokens: f64,
    /// Whole-request deadline, retries included; unset: 120 s.
    #[uniffi(default = None)]
    pub timeout_ms: Option<i64>,
    /// Attempts per cloud request on connection errors, 429 and 5xx (at least 1); unset: 3.
    #[uniffi(default = None)]
    pub max_attempts: Option<i32>,
    /// Which certificate authorities are trusted; unset: the platform's, except on Android
    /// (bundled Mozilla roots, as a JNA-loaded library cannot reach the platform verifier).
    #[uniffi(default = None)]
    pub trust_roots: Option<TrustRoots>,
    /// PEM certificates trusted in addition to those roots (a private CA).
    #[uniffi(default = None)]
    pub extra_root_certificates_pem: Option<String>,
}

/// The engine that runs the edge model.
#[uniffi::remote(Enum)]
pub enum EdgeEngine {
    /// mistral.rs: the CPU, or Metal in the iOS build.
    MistralRs,
    /// ggml (llama.cpp): the CPU, or a Vulkan GPU with `GpuUse.Vulkan` (Android).
    Ggml,
}

/// Whether the edge model may run on a Vulkan GPU (ggml engine only).
#[uniffi::remote(Enum)]
pub enum GpuUse {
    /// The CPU only; Vulkan is never loaded.
    Off,
    /// A Vulkan GPU that passes the probe; the CPU otherwise, with the reason in `LoadProgress.Ready`.
    Vulkan,
}

/// Whether queries are split into a graph of subtasks run on both sides.
#[uniffi::remote(Enum)]
pub enum Decomposition {
    /// Each query is answered in one step, on the edge or the cloud as the router decides.
    Never,
    /// The default: a query of more than 8 words is planned into subtasks when the router
    /// predicts a plan pays for itself (more often right than one cloud call, for no less gain per
    /// cloud token), else answered in one step (`DirectReason.NotWorthDecomposing`, with the
    /// numbers). With the measurements the SDK ships, no query is planned.
    WhenItPays,
    /// Every query of more than 8 words is planned into subtasks, each routed like a query (on
    /// the cloud while budgets and gates allow); independent subtasks run in parallel.
    LongQueries,
}

/// The certificate authorities the cloud's TLS certificate is checked against.
#[uniffi::remote(Enum)]
pub enum TrustRoots {
    /// The operating system's verifier and store.
    Platform,
    /// Mozilla's root store, compiled into the SDK.
    Bundled,
}

/// An API key, opaque to the app once made: its `toString()` / `description` / debug output is
/// redacted, and the SDK's copy is wiped from memory when the last reference goes. (The string
/// it was made from belongs to the app's runtime, which the SDK cannot wipe.)
#[derive(uniffi::Object)]
#[uniffi::export(Debug, Display)]
pub struct ApiKey(cloud::ApiKey);

#[uniffi::export]
impl ApiKey {
    #[uniffi::constructor]
    pub fn new(key: String) -> Arc<Self> {
        Arc::new(Self(cloud::ApiKey::new(key)))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Hard limits on cloud use; `None` is no limit.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct Limits {
    /// Prompt plus completion tokens.
    #[uniffi(default = None)]
    pub cloud_tokens: Option<i64>,
    /// At the endpoint's prices.
    #[uniffi(default = None)]
    pub money: Option<f64>,
    /// Wall time of cloud requests.
    #[uniffi(default = None)]
    pub cloud_time_ms: Option<i64>,
}

/// Limits per query, per UTC day and per UTC month. A request the limits cannot afford does
/// not go to the cloud (the step runs on the edge), and the router's threshold rises as a budget
/// is used up.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct Budgets {
    #[uniffi(default)]
    pub per_query: Limits,
    #[uniffi(default)]
    pub per_day: Limits,
    #[uniffi(default)]
    pub per_month: Limits,
}

/// How steps are assigned to a side.
#[uniffi::remote(Enum)]
pub enum Routing {
    /// The learned, budget- and device-aware router.
    Learned,
    /// Hard subtasks (by the planner's hint) to the cloud.
    ByDifficulty,
    /// Every step on the edge.
    EdgeOnly,
    /// Every step on the cloud while the gates allow it, the edge otherwise.
    CloudOnly,
}

/// Whether queries may leave the device.
#[uniffi::remote(Enum)]
pub enum Offload {
    /// Nothing ever leaves the device.
    Never,
    /// The cloud only on Wi-Fi.
    WifiOnly,
    /// The cloud on any connection (the default).
    Allowed,
}

#[derive(Clone, Copy, Debug, uniffi::Record)]
pub struct AppPolicy {
    /// Unset: `Allowed`.
    #[uniffi(default = None)]
    pub offload: Option<Offload>,
    /// Subtasks that look like personal data stay on the device.
    #[uniffi(default = true)]
    pub keep_personal_data_on_device: bool,
    /// Below this battery level (0..=1, not charging) the cloud is not used.
    #[uniffi(default = 0.1)]
    pub min_battery_for_cloud: f32,
}

/// The phone's connection.
#[uniffi::remote(Enum)]
pub enum Network {
    /// No connection: the edge only.
    None,
    Wifi,
    Cellular,
    /// Any other metered connection.
    Metered,
}

/// The phone's thermal state.
#[uniffi::remote(Enum)]
pub enum Thermal {
    Nominal,
    Fair,
    Serious,
    /// The edge is not used while the cloud is allowed.
    Critical,
}

/// What the app reports about the phone (ConnectivityManager, BatteryManager, PowerManager;
/// NWPathMonitor, UIDevice, ProcessInfo).
#[derive(Clone, Copy, Debug, uniffi::Record)]
pub struct DeviceState {
    pub network: Network,
    /// The user's data saver: no cloud except on Wi-Fi.
    #[uniffi(default = false)]
    pub data_saver: bool,
    /// 0..=1; below `AppPolicy.minBatteryForCloud`, and not charging, no cloud.
    #[uniffi(default = 1.0)]
    pub battery_level: f32,
    #[uniffi(default = true)]
    pub charging: bool,
    /// Low power (battery saver) mode: no cloud unless charging.
    #[uniffi(default = false)]
    pub low_power_mode: bool,
    /// Unset (unknown): `Nominal`.
    #[uniffi(default = None)]
    pub thermal: Option<Thermal>,
}

fn optional_path(value: &Option<String>) -> Option<PathBuf> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from)
}

/// A count or duration from Kotlin or Swift, which have signed integers: negative is refused;
/// zero is left to the core's validation, which names the field.
fn non_negative<T: TryFrom<i64>>(field: &str, value: i64) -> Result<T, HybridFlowError> {
    T::try_from(value).map_err(|_| HybridFlowError::InvalidConfig(format!("{field} must not be negative (got {value})")))
}

impl Limits {
    fn to_core(&self, window: &str) -> Result<core_budget::Limits, HybridFlowError> {
        Ok(core_budget::Limits {
            cloud_tokens: self.cloud_tokens.map(|v| non_negative(&format!("{window}.cloud_tokens"), v)).transpose()?,
            money: self.money,
            cloud_time: self.cloud_time_ms.map(|v| non_negative(&format!("{window}.cloud_time_ms"), v).map(Duration::from_millis)).transpose()?,
        })
    }
}

impl Budgets {
    fn to_core(&self) -> Result<core_budget::Budgets, HybridFlowError> {
        Ok(core_budget::Budgets {
            per_query: self.per_query.to_core("per_query")?,
            per_day: self.per_day.to_core("per_day")?,
            per_month: self.per_month.to_core("per_month")?,
        })
    }
}

impl From<core_budget::Limits> for Limits {
    fn from(limits: core_budget::Limits) -> Self {
        Self { cloud_tokens: limits.cloud_tokens.map(long), money: limits.money, cloud_time_ms: limits.cloud_time.map(|t| long(t.as_millis())) }
    }
}

impl From<core_budget::Budgets> for Budgets {
    fn from(budgets: core_budget::Budgets) -> Self {
        Self { per_query: budgets.per_query.into(), per_day: budgets.per_day.into(), per_month: budgets.per_month.into() }
    }
}

impl From<AppPolicy> for device::AppPolicy {
    fn from(policy: AppPolicy) -> Self {
        Self {
            offload: policy.offload.unwrap_or(Offload::Allowed),
            keep_personal_data_on_device: policy.keep_personal_data_on_device,
            min_battery_for_cloud: policy.min_battery_for_cloud,
        }
    }
}

impl From<DeviceState> for device::DeviceState {
    fn from(state: DeviceState) -> Self {
        Self {
            network: state.network,
            data_saver: state.data_saver,
            // NaN from a broken sensor reading counts as empty: the cautious side for the radio.
            battery_level: if state.battery_level.is_nan() { 0.0 } else { state.battery_level.clamp(0.0, 1.0) },
            charging: state.charging,
            low_power_mode: state.low_power_mode,
            thermal: state.thermal.unwrap_or(Thermal::Nominal),
        }
    }
}

impl HybridFlowConfig {
    /// The core's configuration; [`ClientConfig::validate`] then checks the values (a negative
    /// count is refused here, as the core's types cannot hold it).
    pub fn to_core(&self) -> Result<ClientConfig, HybridFlowError> {
        let edge = optional_path(&self.edge_model_path).map(|path| {
            let mut edge = EdgeConfig::new(path);
            edge.gpu = self.gpu.unwrap_or_default();
            edge.engine = self.edge_engine.unwrap_or(match edge.gpu {
                // The engine with a Vulkan backend, where the build has it.
                GpuUse::Vulkan if cfg!(feature = "ggml") => EdgeEngine::Ggml,
                _ => EdgeEngine::default(),
            });
            edge.gpu_deny_list = self.gpu_deny_list.clone().unwrap_or_default();
            edge
        });
        let cloud = self.cloud.as_ref().map(|endpoint| {
            let mut cloud = CloudConfig::new(endpoint.base_url.trim(), endpoint.model.trim());
            cloud.api_key = endpoint.api_key.as_ref().map(|key| key.0.clone()).filter(|key| !key.is_empty());
            cloud.price = Price { input_per_million: endpoint.input_price_per_million_tokens, output_per_million: endpoint.output_price_per_million_tokens };
            if let Some(timeout) = endpoint.timeout_ms {
                cloud.timeouts.total = Duration::from_millis(non_negative("timeout_ms", timeout)?);
            }
            if let Some(attempts) = endpoint.max_attempts {
                cloud.retry.max_attempts = non_negative("max_attempts", attempts.into())?;
            }
            if let Some(roots) = endpoint.trust_roots {
                cloud.trust_roots = roots;
            }
            cloud.extra_root_certificates_pem = endpoint.extra_root_certificates_pem.clone();
            Ok::<_, HybridFlowError>(cloud)
        });
        let mut exec = ExecConfig {
            decomposition: self.decomposition.unwrap_or_default(),
            max_query_chars: non_negative("max_query_chars", self.max_query_chars.into())?,
            max_edge_generations: non_negative("max_edge_generations", self.max_edge_generations.into())?,
            max_queries_in_flight: non_negative("max_queries_in_flight", self.max_queries_in_flight.into())?,
            max_cloud_requests: non_negative("max_cloud_requests", self.max_cloud_requests.into())?,
            ..ExecConfig::default()
        };
        exec.planner_config.max_subtasks = non_negative("max_subtasks", self.max_subtasks.into())?;
        Ok(ClientConfig {
            edge,
            cloud: cloud.transpose()?,
            state_dir: optional_path(&self.state_dir),
            budgets: self.budgets.to_core()?,
            policy: self.policy.map_or_else(device::AppPolicy::default, Into::into),
            routing: self.routing.unwrap_or_default(),
            exec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HybridFlowConfig {
        HybridFlowConfig {
            edge_model_path: Some("model.gguf".into()),
            edge_engine: None,
            gpu: None,
            gpu_deny_list: None,
            cloud: Some(CloudEndpoint {
                base_url: "https://api.example.com/v1".into(),
                model: "m".into(),
                api_key: None,
                input_price_per_million_tokens: 0.0,
                output_price_per_million_tokens: 0.0,
                timeout_ms: None,
                max_attempts: None,
                trust_roots: None,
                extra_root_certificates_pem: None,
            }),
            state_dir: None,
            budgets: Budgets::default(),
            policy: None,
            routing: None,
            decomposition: None,
            max_query_chars: 8000,
            max_subtasks: 6,
            max_edge_generations: 1,
            max_queries_in_flight: 16,
            max_cloud_requests: 4,
        }
    }

    #[test]
    fn unset_settings_take_the_cores_defaults_and_set_ones_arrive() {
        let core = config().to_core().unwrap();
        let defaults = CloudConfig::new("https://api.example.com/v1", "m");
        let cloud = core.cloud.unwrap();
        assert_eq!(cloud.timeouts.total, defaults.timeouts.total, "one timeout default: the core's");
        assert_eq!(cloud.retry.max_attempts, defaults.retry.max_attempts);
        let mut set = config();
        let endpoint = set.cloud.as_mut().unwrap();
        (endpoint.timeout_ms, endpoint.max_attempts, endpoint.trust_roots) = (Some(5_000), Some(1), Some(TrustRoots::Bundled));
        set.max_cloud_requests = 2;
        let core = set.to_core().unwrap();
        let cloud = core.cloud.unwrap();
        assert_eq!((cloud.timeouts.total, cloud.retry.max_attempts, cloud.trust_roots), (Duration::from_secs(5), 1, TrustRoots::Bundled));
        assert_eq!(core.exec.max_cloud_requests, 2);
    }

    #[test]
    fn the_edge_engine_and_gpu_settings_arrive_in_the_core() {
        let unset = config().to_core().unwrap().edge.unwrap();
        assert_eq!((unset.engine, unset.gpu, unset.gpu_deny_list.len()), (EdgeEngine::MistralRs, GpuUse::Off, 0));
        let mut set = config();
        (set.gpu, set.gpu_deny_list) = (Some(GpuUse::Vulkan), Some(vec!["mali-g71".into()]));
        set.state_dir = Some("/data/app/files".into());
        let edge = set.to_core().unwrap().edge.unwrap();
        assert_eq!((edge.engine, edge.gpu, edge.gpu_deny_list), (EdgeEngine::Ggml, GpuUse::Vulkan, vec!["mali-g71".to_owned()]), "the GPU picks the engine that has one");
        set.edge_engine = Some(EdgeEngine::MistralRs);
        assert!(set.to_core().unwrap().validate().is_err(), "mistral.rs has no Vulkan backend");
    }

    #[test]
    fn negative_counts_are_invalid_config_naming_the_field() {
        let mut negative = config();
        negative.max_cloud_requests = -1;
        assert!(matches!(negative.to_core(), Err(HybridFlowError::InvalidConfig(m)) if m.contains("max_cloud_requests")));
        let mut negative = config();
        negative.budgets.per_day.cloud_tokens = Some(-5);
        assert!(matches!(negative.to_core(), Err(HybridFlowError::InvalidConfig(m)) if m.contains("per_day.cloud_tokens")));
        let mut negative = config();
        negative.cloud.as_mut().unwrap().timeout_ms = Some(-1);
        assert!(matches!(negative.to_core(), Err(HybridFlowError::InvalidConfig(m)) if m.contains("timeout_ms")));
    }
}
