//! Where the model runs: on a Vulkan GPU when the configuration allows it and the probe
//! (`probe.rs`) lets it, else on the CPU, with the reason the GPU is not used.

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::backends::{self, GpuDevice};
use super::probe::{Admission, GpuProbe};
use super::worker::Worker;
use crate::model::edge::load::Placement;
use crate::model::edge::{EdgeConfig, EdgeLoadError, GpuUse};
use crate::model::ChatRequest;

/// Greedy steps compared between the GPU and the CPU before the GPU is trusted.
const PROBE_TOKENS: usize = 12;
/// How far below the CPU's best logit the GPU's choice may be: near-ties flip between correct
/// backends (0.03 apart on lavapipe, docs/benchmarks.md); a broken backend's choices are far off.
const NEAR_TIE_LOGITS: f32 = 0.5;
const PROBE_PROMPT: &str = "List the first five prime numbers, separated by commas.";

fn model_params_on_cpu() -> Result<LlamaModelParams, EdgeLoadError> {
    // An explicit empty device list: a loaded Vulkan backend must not take layers it was not given.
    LlamaModelParams::default().with_n_gpu_layers(0).with_devices(&[]).map_err(|e| EdgeLoadError::Engine(e.to_string()))
}

fn load_model(backend: &LlamaBackend, config: &EdgeConfig, params: &LlamaModelParams) -> Result<LlamaModel, EdgeLoadError> {
    LlamaModel::load_from_file(backend, &config.model_path, params)
        .map_err(|e| EdgeLoadError::Engine(format!("llama.cpp: {e}")))
}

/// Loads the model where the configuration and the probe allow: a Vulkan GPU, else the CPU.
pub(super) fn place_model(backend: &LlamaBackend, config: &EdgeConfig) -> Result<(LlamaModel, Placement), EdgeLoadError> {
    let on_cpu = |why: Option<String>| -> Result<(LlamaModel, Placement), EdgeLoadError> {
        let model = load_model(backend, config, &model_params_on_cpu()?)?;
        Ok((model, Placement { device: "CPU".into(), gpu_unavailable: why }))
    };
    if config.gpu == GpuUse::Off {
        return on_cpu(None);
    }
    let Some(state_dir) = &config.gpu_state_dir else {
        return on_cpu(Some("no state directory to record the GPU probe in".into()));
    };
    let probe = GpuProbe::new(state_dir, &config.gpu_deny_list);
    let in_progress = match probe.begin() {
        Ok(in_progress) => in_progress,
        Err(why) => return on_cpu(Some(why)),
    };
    // From here until `finish`/`abandon`, a crash in the driver is remembered by the marker.
    let device = match backends::vulkan_devices() {
        Ok(devices) => match devices.into_iter().next() {
            Some(device) => device,
            None => {
                probe.abandon(in_progress);
                return on_cpu(Some(
                    "no Vulkan GPU found (ggml skips CPU-type Vulkan devices unless GGML_VK_VISIBLE_DEVICES names them)".into(),
                ));
            }
        },
        Err(why) => {
            probe.abandon(in_progress);
            return on_cpu(Some(why));
        }
    };
    let model_name = config.model_name();
    let verified = match probe.admit(&device, &model_name) {
        Admission::Use { verified } => verified,
        Admission::Refuse(why) => {
            probe.abandon(in_progress);
            return on_cpu(Some(why));
        }
    };
    let gpu_params = LlamaModelParams::default()
        .with_n_gpu_layers(u32::MAX)
        .with_devices(&[device.index])
        .map_err(|e| EdgeLoadError::Engine(e.to_string()))?;
    let gpu_model = match load_model(backend, config, &gpu_params) {
        Ok(model) => model,
        Err(e) => {
            let why = format!("{} could not load the model: {e}", device.name);
            probe.finish(in_progress, &device, &model_name, Err(why.clone())).map_err(EdgeLoadError::Engine)?;
            return on_cpu(Some(why));
        }
    };
    let gpu_placement = Placement { device: describe(&device), gpu_unavailable: None };
    if verified {
        probe.abandon(in_progress);
        return Ok((gpu_model, gpu_placement));
    }
    let cpu_model = load_model(backend, config, &model_params_on_cpu()?)?;
    let outcome = compare_greedy_output(backend, &gpu_model, &cpu_model);
    probe.finish(in_progress, &device, &model_name, outcome.clone()).map_err(EdgeLoadError::Engine)?;
    match outcome {
        Ok(()) => Ok((gpu_model, gpu_placement)),
        Err(why) => Ok((cpu_model, Placement { device: "CPU".into(), gpu_unavailable: Some(why) })),
    }
}

fn describe(device: &GpuDevice) -> String {
    format!("{} ({})", device.name, device.description)
}

/// The probe's last step: the GPU and the CPU decode the same prompt in lockstep, both fed the
/// CPU's greedy token, and at every step the GPU's choice must be the CPU's or a near-tie on the
/// CPU (within [`NEAR_TIE_LOGITS`]): two correct backends round differently, so a small model's
/// near-ties may flip, while a broken driver's logits are far off.
fn compare_greedy_output(backend: &LlamaBackend, gpu: &LlamaModel, cpu: &LlamaModel) -> Result<(), String> {
    let request = ChatRequest::new(vec![crate::model::Message::user(PROBE_PROMPT)]);
    let mut on_gpu = Worker::new(backend, gpu).map_err(|e| e.to_string())?;
    let mut on_cpu = Worker::new(backend, cpu).map_err(|e| e.to_string())?;
    let prompt = on_cpu.prompt_tokens(&request).map_err(|e| e.to_string())?;
    on_gpu.prefill(&prompt).map_err(|e| e.to_string())?;
    on_cpu.prefill(&prompt).map_err(|e| e.to_string())?;
    let argmax = |logits: &[f32]| (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap_or(0);
    let (mut identical, mut largest_deviation, mut steps) = (0, 0.0f32, 0);
    for step in 0..PROBE_TOKENS {
        steps += 1;
        let (gpu_logits, cpu_logits) = (on_gpu.context.get_logits(), on_cpu.context.get_logits());
        let (gpu_best, cpu_best) = (argmax(gpu_logits), argmax(cpu_logits));
        let shortfall = cpu_logits[cpu_best] - cpu_logits[gpu_best];
        identical += usize::from(gpu_best == cpu_best);
        largest_deviation = largest_deviation.max((gpu_logits[cpu_best] - cpu_logits[cpu_best]).abs());
        if shortfall > NEAR_TIE_LOGITS {
            let piece = |token: usize| {
                String::from_utf8_lossy(&cpu.vocab().token_to_piece(LlamaToken::new(token as i32), false, None)).into_owned()
            };
            return Err(format!(
                "at token {step} the GPU chose {:?}, {shortfall:.2} logits below the CPU's {:?}",
                piece(gpu_best),
                piece(cpu_best)
            ));
        }
        let token = LlamaToken::new(cpu_best as i32);
        if cpu.vocab().is_eog(token) {
            break;
        }
        let position = prompt.len() + step;
        on_gpu.decode_one(token, position).map_err(|e| e.to_string())?;
        on_cpu.decode_one(token, position).map_err(|e| e.to_string())?;
    }
    log::info!(
        "GPU probe passed: the same greedy choice as the CPU at {identical} of {steps} steps, the rest near-ties; largest logit difference {largest_deviation:.2}"
    );
    Ok(())
}
