//! Manifest, index, config and manifest.json parsing (see hoist_fuzz::documents).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::documents(data));
