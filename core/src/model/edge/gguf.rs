//! Reading a GGUF file's header before handing it to an engine, so a bad file gets a precise,
//! typed error instead of an engine failure (or a crash) halfway through loading.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;

use super::{EdgeEngine, EdgeLoadError};

const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// What the header says about a model file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufSummary {
    pub architecture: String,
    pub file_bytes: u64,
    pub tensor_count: usize,
}

/// Checks that `path` is a complete GGUF file of an architecture `engine` runs.
pub fn inspect(path: &Path, engine: EdgeEngine) -> Result<GgufSummary, EdgeLoadError> {
    let io_error = |source: std::io::Error| EdgeLoadError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => EdgeLoadError::MissingFile { path: path.to_owned() },
        _ => io_error(source),
    })?;
    let file_bytes = file.metadata().map_err(io_error)?.len();
    let mut reader = BufReader::new(file);

    let mut magic = [0u8; 4];
    if reader.read_exact(&mut magic).is_err() || &magic != GGUF_MAGIC {
        return Err(EdgeLoadError::NotGguf { path: path.to_owned() });
    }
    reader.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let content = gguf_file::Content::read(&mut reader).map_err(|e| corrupt(path, e.to_string()))?;

    let architecture = match content.metadata.get("general.architecture") {
        Some(value) => value.to_string().map_err(|e| corrupt(path, e.to_string()))?.clone(),
        None => return Err(corrupt(path, "no general.architecture in the metadata".into())),
    };

    let tensor_data_end = content
        .tensor_infos
        .values()
        .map(|info| {
            let blocks = info.shape.elem_count() / info.ggml_dtype.block_size();
            info.offset + (blocks * info.ggml_dtype.type_size()) as u64
        })
        .max()
        .unwrap_or(0)
        + content.tensor_data_offset;
    if file_bytes < tensor_data_end {
        return Err(EdgeLoadError::Truncated {
            path: path.to_owned(),
            expected_bytes: tensor_data_end,
            actual_bytes: file_bytes,
        });
    }
    if !engine.supported_architectures().contains(&architecture.as_str()) {
        return Err(EdgeLoadError::UnsupportedArchitecture { architecture, engine });
    }
    Ok(GgufSummary { architecture, file_bytes, tensor_count: content.tensor_infos.len() })
}

fn corrupt(path: &Path, reason: String) -> EdgeLoadError {
    EdgeLoadError::Corrupt { path: PathBuf::from(path), reason }
}
