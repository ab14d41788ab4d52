//! [`EdgeModel`]: the checks every engine shares (the configuration, the GGUF header, memory),
//! then the engine the configuration names, behind one [`ChatModel`].

use std::time::Instant;

use futures::future::BoxFuture;

#[cfg(feature = "mistralrs")]
use super::mistralrs::MistralRsEngine;
use super::{estimated_memory_bytes, gguf, EdgeConfig, EdgeEngine, EdgeLoadError, EdgeModelInfo, GpuUse, LoadProgress};
use crate::model::{ChatModel, ChatRequest, ModelError, Side, TokenStream};

/// The on-device model. Cheap to share (`Arc`); requests from many tasks may run at once.
pub struct EdgeModel {
    engine: Engine,
    info: EdgeModelInfo,
}

enum Engine {
    #[cfg(feature = "mistralrs")]
    MistralRs(MistralRsEngine),
    #[cfg(feature = "ggml")]
    Ggml(super::ggml::GgmlEngine),
}

/// Where an engine put the model.
pub(super) struct Placement {
    pub device: String,
    pub gpu_unavailable: Option<String>,
}

fn available_memory_bytes() -> u64 {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let available = system.available_memory();
    match system.cgroup_limits() {
        Some(cgroup) => available.min(cgroup.free_memory),
        None => available,
    }
}

impl EdgeModel {
    /// Loads the model, reporting progress. The blocking parts run off the async threads.
    pub async fn load(
        config: EdgeConfig,
        progress: impl Fn(LoadProgress) + Send + Sync + 'static,
    ) -> Result<Self, EdgeLoadError> {
        config.validate().map_err(EdgeLoadError::InvalidConfig)?;
        let started = Instant::now();
        progress(LoadProgress::Checking);
        let (path, engine) = (config.model_path.clone(), config.engine);
        let summary = tokio::task::spawn_blocking(move || gguf::inspect(&path, engine))
            .await
            .map_err(|e| EdgeLoadError::Engine(e.to_string()))??;

        let required_bytes = estimated_memory_bytes(summary.file_bytes);
        let available_bytes = config
            .memory_budget_bytes
            .map_or_else(available_memory_bytes, |budget| budget.min(available_memory_bytes()));
        if required_bytes > available_bytes {
            return Err(EdgeLoadError::InsufficientMemory { required_bytes, available_bytes });
        }

        progress(LoadProgress::Loading { architecture: summary.architecture.clone(), file_bytes: summary.file_bytes });
        let (engine, placement) = match config.engine {
            #[cfg(feature = "mistralrs")]
            EdgeEngine::MistralRs => {
                let engine = Engine::MistralRs(MistralRsEngine::load(&config).await?);
                // A Vulkan request in a build without ggml; with Metal the GPU is used anyway.
                let gpu_unavailable = (config.gpu == GpuUse::Vulkan && !cfg!(feature = "metal"))
                    .then(|| "this build has no ggml engine, the one with a Vulkan backend".to_owned());
                (engine, Placement { device: MistralRsEngine::device().to_owned(), gpu_unavailable })
            }
            #[cfg(feature = "ggml")]
            EdgeEngine::Ggml => {
                let (engine, placement) = super::ggml::GgmlEngine::load(&config).await?;
                (Engine::Ggml(engine), placement)
            }
            #[cfg(not(feature = "mistralrs"))]
            EdgeEngine::MistralRs => unreachable!("validate() rejects the mistral.rs engine in builds without it"),
            #[cfg(not(feature = "ggml"))]
            EdgeEngine::Ggml => unreachable!("validate() rejects the ggml engine in builds without it"),
        };

        let load_time = started.elapsed();
        let name = config.model_name();
        match &placement.gpu_unavailable {
            Some(why) => log::warn!("edge model {name} on the CPU: the GPU is not used: {why}"),
            None => log::info!("edge model {name} ({}) loaded by {} on {} in {load_time:?}", summary.architecture, config.engine, placement.device),
        }
        progress(LoadProgress::Ready {
            load_time,
            engine: config.engine,
            device: placement.device.clone(),
            gpu_unavailable: placement.gpu_unavailable.clone(),
        });
        Ok(Self {
            engine,
            info: EdgeModelInfo {
                name,
                architecture: summary.architecture,
                file_bytes: summary.file_bytes,
                load_time,
                engine: config.engine,
                device: placement.device,
                gpu_unavailable: placement.gpu_unavailable,
            },
        })
    }

    pub fn info(&self) -> &EdgeModelInfo {
        &self.info
    }
}

impl ChatModel for EdgeModel {
    fn side(&self) -> Side {
        Side::Edge
    }

    fn name(&self) -> &str {
        &self.info.name
    }

    fn served_by(&self) -> String {
        format!("{} on {}", self.info.engine, self.info.device)
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        match &self.engine {
            #[cfg(feature = "mistralrs")]
            Engine::MistralRs(engine) => engine.stream(request),
            #[cfg(feature = "ggml")]
            Engine::Ggml(engine) => engine.stream(request),
        }
    }
}
