//! The layer applier on a hostile layer tar: nothing outside the root may change (see hoist_fuzz::layer).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::layer(data));
