//! The configuration as Kotlin and Swift see it (flat records with defaults), and its decoding
//! into the core's types. Decoding checks everything up front: a bad value is an
//! `InvalidConfig` naming the field, never a crash later.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hybridflow_core::client::{ClientConfig, Routing as CoreRouting};
use hybridflow_core::device;
use hybridflow_core::exec::ExecConfig;
use hybridflow_core::guard as core_budget;
use hybridflow_core::model::cloud::{self, CloudConfig, Price};
use hybridflow_core::model::edge::EdgeConfig;

#[derive(Clone, Debug, uniffi::Record)]
pub struct HybridFlowConfig {
    /// GGUF file of the on-device model; `None` runs cloud only.
    #[uniffi(default = None)]
    pub edge_model_path: Option<String>,
    #[uniffi(default = None)]
    pub cloud: Option<CloudEndpoint>,
    /// Where budgets and router statistics persist (the app's files directory); `None` keeps
    /// them in memory, which allows only per-query limits.
    #[uniffi(default = None)]
    pub state_dir: Option<String>,
    #[uniffi(default)]
    pub budgets: Budgets,
    /// `None`: offload allowed, personal data kept on the device, no cloud under 10% battery.
    #[uniffi(default = None)]
    pub policy: Option<AppPolicy>,
    /// `None`: the learned router.
    #[uniffi(default = None)]
    pub routing: Option<Routing>,
    /// Longest query accepted, in characters.
    #[uniffi(default = 8000)]
    pub max_query_chars: u32,
    /// Most subtasks a plan may have.
    #[uniffi(default = 6)]
    pub max_subtasks: u32,
    /// Edge generations running at once (a phone decodes one well).
    #[uniffi(default = 1)]
    pub max_edge_generations: u32,
    /// Queries running at once; one more fails with `Busy`.
    #[uniffi(default = 16)]
    pub max_queries_in_flight: u32,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct CloudEndpoint {
    /// OpenAI-compatible API root, e.g. `https://api.example.com/v1` (http only for loopback).
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token; never logged, printed or stored by the SDK.
    #[uniffi(default = None)]
    pub api_key: Option<Arc<ApiKey>>,
    #[uniffi(default = 0.0)]
    pub input_price_per_million_tokens: f64,
    #[uniffi(default = 0.0)]
    pub output_price_per_million_tokens: f64,
    /// Whole-request deadline.
    #[uniffi(default = 60000)]
    pub timeout_ms: u64,
    /// PEM certificates trusted in addition to the system's (a private CA).
    #[uniffi(default = None)]
    pub extra_root_certificates_pem: Option<String>,
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
    #[uniffi(default = None)]
    pub cloud_tokens: Option<u64>,
    #[uniffi(default = None)]
    pub money: Option<f64>,
    #[uniffi(default = None)]
    pub cloud_time_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct Budgets {
    #[uniffi(default)]
    pub per_query: Limits,
    #[uniffi(default)]
    pub per_day: Limits,
    #[uniffi(default)]
    pub per_month: Limits,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, uniffi::Enum)]
pub enum Routing {
    /// The learned, budget- and device-aware router.
    #[default]
    Learned,
    /// Hard subtasks (by the planner's hint) to the cloud.
    ByDifficulty,
    EdgeOnly,
    CloudOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Offload {
    /// Nothing ever leaves the device.
    Never,
    WifiOnly,
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
    /// Share (0..=1) of the subtasks kept on the device that also run on the cloud, unseen, to
    /// calibrate the router here (counted in the budgets); 0 turns it off.
    #[uniffi(default = 0.05)]
    pub calibration_probe_rate: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Network {
    None,
    Wifi,
    Cellular,
    Metered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Thermal {
    Nominal,
    Fair,
    Serious,
    Critical,
}

/// What the app reports about the phone (ConnectivityManager, BatteryManager, PowerManager;
/// NWPathMonitor, UIDevice, ProcessInfo).
#[derive(Clone, Copy, Debug, uniffi::Record)]
pub struct DeviceState {
    pub network: Network,
    #[uniffi(default = false)]
    pub data_saver: bool,
    /// 0..=1
    #[uniffi(default = 1.0)]
    pub battery_level: f32,
    #[uniffi(default = true)]
    pub charging: bool,
    #[uniffi(default = false)]
    pub low_power_mode: bool,
    /// Unset (unknown): `Nominal`.
    #[uniffi(default = None)]
    pub thermal: Option<Thermal>,
}

fn optional_path(value: &Option<String>) -> Option<PathBuf> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from)
}

impl From<&Limits> for core_budget::Limits {
    fn from(limits: &Limits) -> Self {
        Self { cloud_tokens: limits.cloud_tokens, money: limits.money, cloud_time: limits.cloud_time_ms.map(Duration::from_millis) }
    }
}

impl From<&Budgets> for core_budget::Budgets {
    fn from(budgets: &Budgets) -> Self {
        Self { per_query: (&budgets.per_query).into(), per_day: (&budgets.per_day).into(), per_month: (&budgets.per_month).into() }
    }
}

impl From<core_budget::Limits> for Limits {
    fn from(limits: core_budget::Limits) -> Self {
        Self { cloud_tokens: limits.cloud_tokens, money: limits.money, cloud_time_ms: limits.cloud_time.map(|t| t.as_millis() as u64) }
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
            offload: match policy.offload.unwrap_or(Offload::Allowed) {
                Offload::Never => device::Offload::Never,
                Offload::WifiOnly => device::Offload::WifiOnly,
                Offload::Allowed => device::Offload::Allowed,
            },
            keep_personal_data_on_device: policy.keep_personal_data_on_device,
            min_battery_for_cloud: policy.min_battery_for_cloud,
            calibration_probe_rate: policy.calibration_probe_rate,
        }
    }
}

impl From<DeviceState> for device::DeviceState {
    fn from(state: DeviceState) -> Self {
        Self {
            network: match state.network {
                Network::None => device::Network::None,
                Network::Wifi => device::Network::Wifi,
                Network::Cellular => device::Network::Cellular,
                Network::Metered => device::Network::Metered,
            },
            data_saver: state.data_saver,
            // NaN from a broken sensor reading counts as empty: the cautious side for the radio.
            battery_level: if state.battery_level.is_nan() { 0.0 } else { state.battery_level.clamp(0.0, 1.0) },
            charging: state.charging,
            low_power_mode: state.low_power_mode,
            thermal: match state.thermal.unwrap_or(Thermal::Nominal) {
                Thermal::Nominal => device::Thermal::Nominal,
                Thermal::Fair => device::Thermal::Fair,
                Thermal::Serious => device::Thermal::Serious,
                Thermal::Critical => device::Thermal::Critical,
            },
        }
    }
}

impl HybridFlowConfig {
    /// The core's configuration; [`ClientConfig::validate`] then checks the values.
    pub fn to_core(&self) -> ClientConfig {
        let edge = optional_path(&self.edge_model_path).map(EdgeConfig::new);
        let cloud = self.cloud.as_ref().map(|endpoint| {
            let mut cloud = CloudConfig::new(endpoint.base_url.trim(), endpoint.model.trim());
            cloud.api_key = endpoint.api_key.as_ref().map(|key| key.0.clone()).filter(|key| !key.is_empty());
            cloud.price = Price { input_per_million: endpoint.input_price_per_million_tokens, output_per_million: endpoint.output_price_per_million_tokens };
            cloud.timeouts.total = Duration::from_millis(endpoint.timeout_ms);
            cloud.extra_root_certificates_pem = endpoint.extra_root_certificates_pem.clone();
            cloud
        });
        let mut exec = ExecConfig {
            max_query_chars: self.max_query_chars as usize,
            max_edge_generations: self.max_edge_generations as usize,
            max_queries_in_flight: self.max_queries_in_flight as usize,
            ..ExecConfig::default()
        };
        exec.planner_config.max_subtasks = self.max_subtasks as usize;
        ClientConfig {
            edge,
            cloud,
            state_dir: optional_path(&self.state_dir),
            budgets: (&self.budgets).into(),
            policy: self.policy.map_or_else(device::AppPolicy::default, Into::into),
            routing: match self.routing.unwrap_or_default() {
                Routing::Learned => CoreRouting::Learned,
                Routing::ByDifficulty => CoreRouting::ByDifficulty,
                Routing::EdgeOnly => CoreRouting::EdgeOnly,
                Routing::CloudOnly => CoreRouting::CloudOnly,
            },
            exec,
        }
    }
}
