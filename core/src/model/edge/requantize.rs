//! Model preparation: rewrite a GGUF's tensors of one quantization into another with candle's
//! quantized API. SmolLM2-135M ships as Q4_1, for which candle has no SIMD kernel (a scalar loop on
//! every CPU); Q8_0 has SIMD kernels on x86 and NEON, decodes faster and loses nothing measurable
//! (4-bit values re-expressed in 8 bits). See docs/benchmarks.md.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

/// Target formats with SIMD kernels in candle (and the `general.file_type` llama.cpp gives them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantization {
    Q8_0,
    Q4_0,
}

impl Quantization {
    fn ggml(self) -> GgmlDType {
        match self {
            Quantization::Q8_0 => GgmlDType::Q8_0,
            Quantization::Q4_0 => GgmlDType::Q4_0,
        }
    }

    /// `llama_ftype` value written to `general.file_type`.
    fn file_type(self) -> u32 {
        match self {
            Quantization::Q8_0 => 7,
            Quantization::Q4_0 => 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RequantizeError {
    #[error("cannot read or write a model file: {0}")]
    Io(#[from] std::io::Error),
    #[error("GGUF error: {0}")]
    Gguf(#[from] candle_core::Error),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequantizeReport {
    pub tensors: usize,
    pub converted: usize,
}

/// Writes `dst` with every Q4_1 tensor of `src` re-quantized to `target`; other tensors and all
/// metadata are copied. Writes to a temporary file first, so `dst` is never left half-written.
pub fn requantize_q4_1(
    src: &Path,
    dst: &Path,
    target: Quantization,
) -> Result<RequantizeReport, RequantizeError> {
    let mut reader = BufReader::new(File::open(src)?);
    let content = gguf_file::Content::read(&mut reader)?;

    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort(); // deterministic output
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(names.len());
    let mut converted = 0;
    for name in names {
        let tensor = content.tensor(&mut reader, name, &Device::Cpu)?;
        let tensor = if tensor.dtype() == GgmlDType::Q4_1 {
            converted += 1;
            QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, target.ggml())?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
    }

    let file_type = gguf_file::Value::U32(target.file_type());
    let mut metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        // candle writes with the default 32-byte alignment; the file type changes.
        .filter(|(key, _)| !matches!(key.as_str(), "general.alignment" | "general.file_type"))
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    metadata.push(("general.file_type", &file_type));
    metadata.sort_by_key(|(key, _)| *key);

    let partial = dst.with_extension("gguf.partial");
    {
        let mut out = BufWriter::new(File::create(&partial)?);
        let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        gguf_file::write(&mut out, &metadata, &tensor_refs)?;
        out.flush()?;
        out.get_ref().sync_all()?;
    }
    std::fs::rename(&partial, dst)?;
    Ok(RequantizeReport { tensors: tensors.len(), converted })
}
