//! Build script of the crates that link final artifacts (the FFI library, the terminal chat,
//! xtask): on Linux they look for shared libraries in their own directory first, where the
//! core's build script puts llama.cpp's (the ggml engine), as an app ships them side by side.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        // DT_RPATH (not RUNPATH): it also serves the libraries' own dependencies.
        println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,$ORIGIN");
    }
}
