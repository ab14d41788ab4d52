//! Hard gates. A gate that blocks the cloud always wins: when the edge cannot run (no edge model,
//! thermal critical) the cloud is used only if no gate blocks it, otherwise the step stays on the
//! edge or, without one, fails.

use serde::{Deserialize, Serialize};

use crate::device::{AppPolicy, DeviceState, Network, Offload, Thermal};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    NoCloudConfigured,
    PolicyNeverOffload,
    Offline,
    WifiOnly,
    DataSaver,
    LowBattery,
    LowPowerMode,
    PersonalData,
    CircuitOpen,
    /// A hard budget would be exceeded by this request (spent and reserved counted).
    BudgetExhausted,
    /// The budget store was damaged and rebuilt: what was spent is unknown, so limited windows
    /// count as used up until the app calls `reset_budgets`.
    SpendingUnknown,
    /// The edge cannot run: cloud forced.
    EdgeUnavailable,
    ThermalCritical,
}

/// What the gates allow for one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Both sides possible: the utility decides.
    Open,
    /// The cloud is removed, by this gate.
    EdgeOnly(Gate),
    /// The edge cannot run and no gate blocks the cloud: the cloud is used.
    CloudOnly(Gate),
}

/// Inputs of the gates besides the device and the policy.
#[derive(Clone, Copy, Debug)]
pub struct GateInputs {
    pub cloud_configured: bool,
    pub edge_loaded: bool,
    pub breaker_open: bool,
    pub personal_data: bool,
    pub budget_exhausted: bool,
    pub spending_unknown: bool,
}

pub fn evaluate(device: &DeviceState, policy: &AppPolicy, inputs: GateInputs) -> Verdict {
    if let Some(gate) = blocking_gate(device, policy, inputs) {
        return Verdict::EdgeOnly(gate);
    }
    if !inputs.edge_loaded {
        Verdict::CloudOnly(Gate::EdgeUnavailable)
    } else if device.thermal == Thermal::Critical {
        Verdict::CloudOnly(Gate::ThermalCritical)
    } else {
        Verdict::Open
    }
}

/// The first gate that forbids the cloud, if any.
fn blocking_gate(device: &DeviceState, policy: &AppPolicy, inputs: GateInputs) -> Option<Gate> {
    if !inputs.cloud_configured {
        Some(Gate::NoCloudConfigured)
    } else if policy.offload == Offload::Never {
        Some(Gate::PolicyNeverOffload)
    } else if device.network == Network::None {
        Some(Gate::Offline)
    } else if policy.offload == Offload::WifiOnly && device.network != Network::Wifi {
        Some(Gate::WifiOnly)
    } else if device.data_saver && device.network != Network::Wifi {
        Some(Gate::DataSaver)
    } else if !device.charging && device.battery_level < policy.min_battery_for_cloud {
        Some(Gate::LowBattery)
    } else if device.low_power_mode && !device.charging {
        Some(Gate::LowPowerMode)
    } else if policy.keep_personal_data_on_device && inputs.personal_data {
        Some(Gate::PersonalData)
    } else if inputs.breaker_open {
        Some(Gate::CircuitOpen)
    } else if inputs.spending_unknown {
        Some(Gate::SpendingUnknown)
    } else if inputs.budget_exhausted {
        Some(Gate::BudgetExhausted)
    } else {
        None
    }
}

/// A conservative look for personal data: e-mail addresses, phone-number-like digit runs, and
/// first-person details. False positives keep work on the device, which is the safe side.
pub fn looks_personal(text: &str) -> bool {
    let lower = text.to_lowercase();
    let email = text.split_whitespace().any(|w| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '.');
        w.split_once('@').is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
    });
    let digits_run = text
        .split(|c: char| !(c.is_ascii_digit() || c == ' ' || c == '-' || c == '+'))
        .any(|run| run.chars().filter(char::is_ascii_digit).count() >= 9);
    let first_person = ["my name", "my address", "my phone", "my email", "my password", "my account", "my diagnosis", "my salary"]
        .iter()
        .any(|p| lower.contains(p));
    email || digits_run || first_person
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: GateInputs = GateInputs { cloud_configured: true, edge_loaded: true, breaker_open: false, personal_data: false, budget_exhausted: false, spending_unknown: false };

    fn verdict(device: DeviceState, policy: AppPolicy, inputs: GateInputs) -> Verdict {
        evaluate(&device, &policy, inputs)
    }

    #[test]
    fn each_gate_removes_the_cloud() {
        let d = DeviceState::default();
        let p = AppPolicy::default();
        assert_eq!(verdict(d, p, OPEN), Verdict::Open);
        assert_eq!(verdict(d, p, GateInputs { cloud_configured: false, ..OPEN }), Verdict::EdgeOnly(Gate::NoCloudConfigured));
        assert_eq!(verdict(d, AppPolicy { offload: Offload::Never, ..p }, OPEN), Verdict::EdgeOnly(Gate::PolicyNeverOffload));
        assert_eq!(verdict(DeviceState { network: Network::None, ..d }, p, OPEN), Verdict::EdgeOnly(Gate::Offline));
        assert_eq!(verdict(DeviceState { network: Network::Cellular, ..d }, AppPolicy { offload: Offload::WifiOnly, ..p }, OPEN), Verdict::EdgeOnly(Gate::WifiOnly));
        assert_eq!(verdict(DeviceState { network: Network::Metered, data_saver: true, ..d }, p, OPEN), Verdict::EdgeOnly(Gate::DataSaver));
        assert_eq!(verdict(DeviceState { battery_level: 0.05, charging: false, ..d }, p, OPEN), Verdict::EdgeOnly(Gate::LowBattery));
        assert_eq!(verdict(DeviceState { low_power_mode: true, charging: false, ..d }, p, OPEN), Verdict::EdgeOnly(Gate::LowPowerMode));
        assert_eq!(verdict(d, p, GateInputs { personal_data: true, ..OPEN }), Verdict::EdgeOnly(Gate::PersonalData));
        assert_eq!(verdict(d, p, GateInputs { breaker_open: true, ..OPEN }), Verdict::EdgeOnly(Gate::CircuitOpen));
        assert_eq!(verdict(d, p, GateInputs { budget_exhausted: true, ..OPEN }), Verdict::EdgeOnly(Gate::BudgetExhausted));
        assert_eq!(verdict(d, p, GateInputs { spending_unknown: true, ..OPEN }), Verdict::EdgeOnly(Gate::SpendingUnknown));
    }

    #[test]
    fn gates_do_not_fire_when_their_condition_is_harmless() {
        let d = DeviceState::default();
        let p = AppPolicy::default();
        assert_eq!(verdict(DeviceState { battery_level: 0.05, charging: true, ..d }, p, OPEN), Verdict::Open);
        assert_eq!(verdict(DeviceState { data_saver: true, ..d }, p, OPEN), Verdict::Open, "data saver spares metered data only");
        assert_eq!(verdict(d, AppPolicy { keep_personal_data_on_device: false, ..p }, GateInputs { personal_data: true, ..OPEN }), Verdict::Open);
    }

    #[test]
    fn only_an_edge_that_cannot_run_forces_the_cloud() {
        let d = DeviceState::default();
        let p = AppPolicy::default();
        assert_eq!(verdict(d, p, GateInputs { edge_loaded: false, ..OPEN }), Verdict::CloudOnly(Gate::EdgeUnavailable));
        assert_eq!(verdict(DeviceState { thermal: Thermal::Critical, ..d }, p, OPEN), Verdict::CloudOnly(Gate::ThermalCritical));
        assert_eq!(verdict(DeviceState { thermal: Thermal::Serious, ..d }, p, OPEN), Verdict::Open);
        // Without a cloud there is nothing to force, and a gate that blocks the cloud is never
        // overridden by an edge that cannot run.
        assert_eq!(verdict(d, p, GateInputs { edge_loaded: false, cloud_configured: false, ..OPEN }), Verdict::EdgeOnly(Gate::NoCloudConfigured));
        assert_eq!(verdict(d, AppPolicy { offload: Offload::Never, ..p }, GateInputs { edge_loaded: false, ..OPEN }), Verdict::EdgeOnly(Gate::PolicyNeverOffload));
        assert_eq!(verdict(DeviceState { thermal: Thermal::Critical, network: Network::None, ..d }, p, OPEN), Verdict::EdgeOnly(Gate::Offline));
        assert_eq!(verdict(d, p, GateInputs { edge_loaded: false, personal_data: true, ..OPEN }), Verdict::EdgeOnly(Gate::PersonalData));
    }

    #[test]
    fn personal_data_detection() {
        assert!(looks_personal("Email the summary to jane.doe@example.com please"));
        assert!(looks_personal("Call me on +1 415 555 0100"));
        assert!(looks_personal("My name is Ada and I live in Paris"));
        assert!(!looks_personal("Compute 12 times 7 and add 150"));
        assert!(!looks_personal("Which planet has more moons?"));
    }
}
