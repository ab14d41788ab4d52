//! Whether this device may use its GPU through Vulkan, decided so that a driver that crashes the
//! process does it at most once.
//!
//! Before Vulkan is touched a "probe in progress" marker is written (and fsynced); it is removed
//! once the GPU has loaded the model and its greedy output matched the CPU's. A marker found at
//! start means the last attempt never finished (the process died inside the driver): that is
//! recorded as a verdict and Vulkan is not tried again by this SDK version. Passing and failing
//! verdicts are recorded too, so the full check runs once per device, model and SDK version.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::backends::GpuDevice;

const MARKER: &str = "vulkan-probe-in-progress";
const VERDICT: &str = "vulkan-verdict.json";

/// What the last probe on this device concluded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
enum Verdict {
    /// The GPU loaded `model` and matched the CPU.
    Passed { device: String, model: String, sdk_version: String },
    /// The GPU's output differed, or it could not load the model.
    Failed { device: String, model: String, sdk_version: String, reason: String },
    /// A probe never finished: the process died while Vulkan was starting.
    Crashed { sdk_version: String },
}

/// The probe's state directory, with the vendor/driver deny list the app configured.
pub(crate) struct GpuProbe {
    dir: PathBuf,
    deny_list: Vec<String>,
}

/// What to do with the GPU for this model.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Use the GPU. `verified` is false when the output check still has to run.
    Use { verified: bool },
    /// Stay on the CPU, for this reason (shown to the app).
    Refuse(String),
}

/// While it lives, a crash is attributed to Vulkan. [`GpuProbe::finish`] consumes it.
#[must_use]
pub(crate) struct InProgress {
    marker: PathBuf,
}

impl GpuProbe {
    pub(crate) fn new(dir: &Path, deny_list: &[String]) -> Self {
        Self { dir: dir.to_owned(), deny_list: deny_list.iter().map(|d| d.to_lowercase()).collect() }
    }

    fn sdk_version() -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }

    /// Called before Vulkan is loaded. Refuses after an unfinished probe or a recorded crash;
    /// otherwise writes the marker.
    pub(crate) fn begin(&self) -> Result<InProgress, String> {
        let marker = self.dir.join(MARKER);
        if marker.exists() {
            self.record(&Verdict::Crashed { sdk_version: Self::sdk_version() })?;
            let _ = fs::remove_file(&marker);
            return Err(crashed_reason());
        }
        if let Some(Verdict::Crashed { sdk_version }) = self.verdict() {
            if sdk_version == Self::sdk_version() {
                return Err(crashed_reason());
            }
        }
        fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        write_durably(&marker, b"vulkan starting\n")?;
        Ok(InProgress { marker })
    }

    /// Whether `device` may serve `model`, from the deny list and any earlier verdict.
    pub(crate) fn admit(&self, device: &GpuDevice, model: &str) -> Admission {
        let description = device.description.to_lowercase();
        if let Some(denied) = self.deny_list.iter().find(|entry| description.contains(entry.as_str())) {
            return Admission::Refuse(format!("{} ({}) is on the GPU deny list (\"{denied}\")", device.name, device.description));
        }
        match self.verdict() {
            Some(Verdict::Passed { device: d, model: m, sdk_version })
                if d == device.description && m == model && sdk_version == Self::sdk_version() =>
            {
                Admission::Use { verified: true }
            }
            Some(Verdict::Failed { device: d, model: m, sdk_version, reason })
                if d == device.description && m == model && sdk_version == Self::sdk_version() =>
            {
                Admission::Refuse(format!("an earlier probe of {} failed: {reason}", device.description))
            }
            _ => Admission::Use { verified: false },
        }
    }

    /// Ends a probe: records its outcome and removes the marker.
    pub(crate) fn finish(&self, probe: InProgress, device: &GpuDevice, model: &str, outcome: Result<(), String>) -> Result<(), String> {
        let (device, model, sdk_version) = (device.description.clone(), model.to_owned(), Self::sdk_version());
        let verdict = match outcome {
            Ok(()) => Verdict::Passed { device, model, sdk_version },
            Err(reason) => Verdict::Failed { device, model, sdk_version, reason },
        };
        self.record(&verdict)?;
        self.abandon(probe);
        Ok(())
    }

    /// Ends a probe that recorded nothing (Vulkan had no usable device, or the check was skipped).
    pub(crate) fn abandon(&self, probe: InProgress) {
        if let Err(e) = fs::remove_file(&probe.marker) {
            log::warn!("cannot remove the Vulkan probe marker {}: {e}", probe.marker.display());
        }
    }

    fn verdict(&self) -> Option<Verdict> {
        let text = fs::read(self.dir.join(VERDICT)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn record(&self, verdict: &Verdict) -> Result<(), String> {
        fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let json = serde_json::to_vec(verdict).map_err(|e| e.to_string())?;
        let temporary = self.dir.join(format!("{VERDICT}.tmp"));
        write_durably(&temporary, &json)?;
        fs::rename(&temporary, self.dir.join(VERDICT)).map_err(|e| format!("cannot record the Vulkan verdict: {e}"))?;
        sync_dir(&self.dir)
    }
}

fn crashed_reason() -> String {
    "an earlier Vulkan start did not finish (the process died in the GPU driver); the CPU is used".to_owned()
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut file = File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// A new or renamed file survives a power cut only once its directory is synced too.
fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(description: &str) -> GpuDevice {
        GpuDevice { index: 1, name: "Vulkan0".into(), description: description.into() }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hybridflow-probe-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_marker_left_by_a_dead_process_turns_vulkan_off_for_good() {
        let dir = temp_dir("crash");
        let probe = GpuProbe::new(&dir, &[]);
        let in_progress = probe.begin().expect("first start may try Vulkan");
        std::mem::forget(in_progress); // the process "dies" here: the marker stays
        assert!(dir.join(MARKER).exists());
        let refused = probe.begin().err().expect("the next start refuses");
        assert!(refused.contains("did not finish"), "{refused}");
        assert!(!dir.join(MARKER).exists(), "the marker became a verdict");
        assert!(probe.begin().is_err(), "and later starts still refuse");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_check_runs_once_per_device_and_model_and_failures_are_remembered() {
        let dir = temp_dir("verdicts");
        let probe = GpuProbe::new(&dir, &[]);
        let gpu = device("Adreno 740");
        assert!(matches!(probe.admit(&gpu, "m.gguf"), Admission::Use { verified: false }));
        let started = probe.begin().unwrap();
        probe.finish(started, &gpu, "m.gguf", Ok(())).unwrap();
        assert!(!dir.join(MARKER).exists());
        assert!(matches!(probe.admit(&gpu, "m.gguf"), Admission::Use { verified: true }));
        assert!(matches!(probe.admit(&gpu, "other.gguf"), Admission::Use { verified: false }));
        let started = probe.begin().unwrap();
        probe.finish(started, &gpu, "other.gguf", Err("output differed".into())).unwrap();
        match probe.admit(&gpu, "other.gguf") {
            Admission::Refuse(reason) => assert!(reason.contains("output differed"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_deny_list_matches_the_driver_description_case_insensitively() {
        let dir = temp_dir("deny");
        let probe = GpuProbe::new(&dir, &["mali-g7".into()]);
        assert!(matches!(probe.admit(&device("Mali-G78 MC14"), "m.gguf"), Admission::Refuse(_)));
        assert!(matches!(probe.admit(&device("Adreno 740"), "m.gguf"), Admission::Use { .. }));
    }
}
