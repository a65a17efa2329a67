#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| breakglass::fuzzing::audit_export(data));
