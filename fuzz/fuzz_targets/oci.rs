//! OCI archive and OCI layout reading, unpacking and copying (see hoist_fuzz::archive).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_fuzz::oci(data));
