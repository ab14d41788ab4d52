//! Same uniffi version as the runtime (the workspace pins both), so generated code always
//! matches the scaffolding in `hybridflow-ffi`. One command of its own, `reference`, writes the
//! API reference page from the same metadata.
mod reference;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("reference") => reference::run(&args[2..]),
        _ => {
            uniffi::uniffi_bindgen_main();
            Ok(())
        }
    }
}
