//! With the ggml engine: llama.cpp's shared libraries (llama, ggml and its backends, which the
//! engine loads at run time) are copied next to the binaries and the FFI library cargo builds,
//! under the names the loader asks for, so each runs as an app ships it: one directory.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_BACKENDS_DIR");
    let Some(backends) = std::env::var_os("DEP_LLAMA_BACKENDS_DIR").map(PathBuf::from) else {
        return; // built without the ggml engine
    };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <profile dir>/build/<crate>-<hash>/out.
    let profile_dir = out_dir.ancestors().nth(3).expect("OUT_DIR is inside the target directory");
    let libraries = backends.parent().expect("the backends directory is inside llama.cpp's build").join("lib");
    for dir in [&libraries, &backends] {
        println!("cargo:rerun-if-changed={}", dir.display());
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // The names binaries ask for: libllama.so.0 on Linux, libllama.so on Android (no
            // versioned sonames there); the backend modules are plain .so files, with dots in
            // the ARM variants' names (libggml-cpu-armv8.0_1.so).
            let soname_version = name.rsplit_once(".so.").map(|(_, version)| version);
            let wanted = name.starts_with("lib")
                && (name.ends_with(".so") || soname_version.is_some_and(|v| v.chars().all(|c| c.is_ascii_digit())));
            if wanted {
                copy_if_changed(&entry.path(), &profile_dir.join(&name));
            }
        }
    }
}

fn copy_if_changed(source: &Path, target: &Path) {
    let stamp = |path: &Path| std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()));
    let up_to_date = match (stamp(source), stamp(target)) {
        (Some((source_len, source_time)), Some((target_len, target_time))) => source_len == target_len && source_time <= target_time,
        _ => false,
    };
    if !up_to_date {
        // Through a temporary name: a running test may have the old file mapped.
        let temporary = target.with_extension("tmp-copy");
        std::fs::copy(source, &temporary).unwrap_or_else(|e| panic!("cannot copy {}: {e}", source.display()));
        std::fs::rename(&temporary, target).unwrap_or_else(|e| panic!("cannot replace {}: {e}", target.display()));
    }
}
