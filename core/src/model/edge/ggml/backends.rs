//! ggml's compute backends, each a shared library loaded only when it is chosen.
//!
//! llama.cpp's Vulkan backend creates a Vulkan instance as soon as it is registered, and on some
//! Android drivers that crashes the process before app code can catch anything. So ggml is built
//! with dynamic backends: nothing is registered at library load; the CPU backend (the best of its
//! per-ISA variants for this CPU) is loaded on first use, and Vulkan only when the app allowed the
//! GPU and the probe (`probe.rs`) lets it through.

use std::ffi::{c_int, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use llama_cpp_2::llama_backend::LlamaBackend;

use crate::model::edge::EdgeLoadError;

/// A ggml device that can hold a model's layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GpuDevice {
    /// Index in ggml's device list (for `LlamaModelParams::with_devices`).
    pub index: usize,
    /// ggml's name, such as "Vulkan0".
    pub name: String,
    /// The driver's description, such as "Mali-G78" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub description: String,
}

struct Loaded {
    backend: LlamaBackend,
    dir: PathBuf,
    /// `None` until Vulkan was asked for; then what loading it gave.
    vulkan: Mutex<Option<Result<Vec<GpuDevice>, String>>>,
}

static LOADED: OnceLock<Result<Loaded, String>> = OnceLock::new();

/// llama.cpp with its CPU backend, loaded once per process.
pub(crate) fn cpu() -> Result<&'static LlamaBackend, EdgeLoadError> {
    loaded().map(|loaded| &loaded.backend)
}

fn loaded() -> Result<&'static Loaded, EdgeLoadError> {
    LOADED
        .get_or_init(|| {
            forward_logs();
            let (dir, variants) = backends_dir().ok_or_else(|| {
                "ggml's backend libraries (libggml-cpu-*.so) are neither beside the HybridFlow library nor in the build's backends directory".to_owned()
            })?;
            let cpu = best_cpu_variant(&dir, variants)?;
            load_library(&cpu)?;
            let backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            log::info!("ggml CPU backend {} loaded", cpu.display());
            Ok(Loaded { backend, dir, vulkan: Mutex::new(None) })
        })
        .as_ref()
        .map_err(|e| EdgeLoadError::Engine(e.clone()))
}

/// Loads the Vulkan backend (once) and lists its GPU devices. This is the call that can crash on
/// a bad driver: callers run it under the probe's marker.
pub(crate) fn vulkan_devices() -> Result<Vec<GpuDevice>, String> {
    let loaded = loaded().map_err(|e| e.to_string())?;
    let mut vulkan = loaded.vulkan.lock().unwrap_or_else(|e| e.into_inner());
    vulkan
        .get_or_insert_with(|| {
            let library = loaded.dir.join(library_file_name("ggml-vulkan"));
            if !library.exists() {
                return Err(format!("this build has no Vulkan backend ({} is missing)", library.display()));
            }
            load_library(&library)?;
            Ok(gpu_devices("Vulkan"))
        })
        .clone()
}

fn gpu_devices(backend_name: &str) -> Vec<GpuDevice> {
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .filter(|device| device.backend == backend_name)
        .map(|device| GpuDevice { index: device.index, name: device.name, description: device.description })
        .collect()
}

fn load_library(path: &Path) -> Result<(), String> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated path; ggml returns null on failure and keeps the library loaded.
    let registered = unsafe { llama_cpp_sys_2::ggml_backend_load(c_path.as_ptr()) };
    if registered.is_null() {
        return Err(format!("ggml could not load {}", path.display()));
    }
    Ok(())
}

/// The CPU variant ggml would pick: each `libggml-cpu-<isa>.so` scores itself on this CPU
/// (0 = cannot run here); the highest score wins.
fn best_cpu_variant(dir: &Path, variants: Vec<PathBuf>) -> Result<PathBuf, String> {
    let mut best: Option<(c_int, PathBuf)> = None;
    for path in variants {
        // SAFETY: ggml's own CPU backend libraries; loading them runs no code but initialisers.
        let score = unsafe {
            libloading::Library::new(&path).ok().and_then(|library| {
                library
                    .get::<unsafe extern "C" fn() -> c_int>(b"ggml_backend_score\0")
                    .ok()
                    .map(|score| score())
            })
        };
        if let Some(score) = score.filter(|s| *s > 0) {
            if best.as_ref().is_none_or(|(top, _)| score > *top) {
                best = Some((score, path));
            }
        }
    }
    best.map(|(_, path)| path).ok_or_else(|| format!("no ggml CPU backend in {} runs on this CPU", dir.display()))
}

/// The per-ISA CPU backend libraries in `dir` (`libggml-cpu-*.so`).
fn cpu_variants(dir: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}ggml-cpu-", std::env::consts::DLL_PREFIX);
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(std::env::consts::DLL_SUFFIX)
        })
        .map(|entry| entry.path())
        .collect()
}

fn library_file_name(stem: &str) -> String {
    format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// Where the backend libraries are, with the CPU variants found there: beside the library
/// holding this code (how an app ships them: Android's jniLibs, an XCFramework), else where this
/// build put them.
fn backends_dir() -> Option<(PathBuf, Vec<PathBuf>)> {
    let beside_this_library = this_library_path().and_then(|path| path.parent().map(Path::to_path_buf));
    let built = llama_cpp_sys_2::BACKENDS_DIR.map(PathBuf::from);
    [beside_this_library, built].into_iter().flatten().find_map(|dir| {
        let variants = cpu_variants(&dir);
        (!variants.is_empty()).then_some((dir, variants))
    })
}

fn this_library_path() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables for an address inside this library.
    let found = unsafe { libc::dladdr(this_library_path as *const libc::c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated path owned by the loader.
    let path = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(path.to_string_lossy().into_owned()))
}

/// llama.cpp and ggml print to stderr by default; an app wants its own log (logcat, os_log).
fn forward_logs() {
    unsafe extern "C" fn to_log(level: llama_cpp_sys_2::ggml_log_level, text: *const std::ffi::c_char, _: *mut std::ffi::c_void) {
        if text.is_null() {
            return;
        }
        // SAFETY: ggml passes a NUL-terminated message.
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        match level {
            llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR => log::error!(target: "ggml", "{text}"),
            llama_cpp_sys_2::GGML_LOG_LEVEL_WARN => log::warn!(target: "ggml", "{text}"),
            _ => log::debug!(target: "ggml", "{text}"),
        }
    }
    // SAFETY: a plain function pointer with no user data, valid for the process's lifetime.
    unsafe { llama_cpp_sys_2::llama_log_set(Some(to_log), std::ptr::null_mut()) };
}
