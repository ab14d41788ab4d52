//! Same uniffi version as the runtime (the workspace pins both), so generated code always
//! matches the scaffolding in `hybridflow-ffi`.
fn main() {
    uniffi::uniffi_bindgen_main()
}
