//! The Dockerfile parser, render/parse round trip, expansion and .dockerignore (see hoist_fuzz::dockerfile).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::dockerfile::run(data));
