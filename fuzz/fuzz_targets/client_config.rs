#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hybridflow_fuzz::checks::check_config(data));
