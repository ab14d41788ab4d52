//! The device state the host app reports, and the app's policy for the cloud.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    None,
    #[default]
    Wifi,
    Cellular,
    /// Any metered connection the app wants treated like cellular.
    Metered,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Thermal {
    #[default]
    Nominal,
    Fair,
    Serious,
    /// The OS is about to throttle hard: the edge must not run.
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    pub network: Network,
    pub data_saver: bool,
    /// 0.0 ..= 1.0
    pub battery_level: f32,
    pub charging: bool,
    pub low_power_mode: bool,
    pub thermal: Thermal,
}

impl Default for DeviceState {
    fn default() -> Self {
        Self { network: Network::Wifi, data_saver: false, battery_level: 1.0, charging: true, low_power_mode: false, thermal: Thermal::Nominal }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Offload {
    /// Nothing ever leaves the device.
    Never,
    WifiOnly,
    #[default]
    Allowed,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppPolicy {
    pub offload: Offload,
    /// Subtasks that look like they carry personal data (e-mail addresses, phone numbers, "my …"
    /// details) stay on the device.
    pub keep_personal_data_on_device: bool,
    /// Below this battery level (and not charging) the radio is spared: no cloud.
    pub min_battery_for_cloud: f32,
}

impl Default for AppPolicy {
    fn default() -> Self {
        Self { offload: Offload::Allowed, keep_personal_data_on_device: true, min_battery_for_cloud: 0.1 }
    }
}

impl AppPolicy {
    /// The battery level is within 0..=1 (NaN is not).
    pub fn validate(&self) -> Result<(), String> {
        let level = self.min_battery_for_cloud;
        if !(0.0..=1.0).contains(&level) {
            return Err(format!("policy.min_battery_for_cloud must be within 0..=1, not {level}"));
        }
        Ok(())
    }
}
