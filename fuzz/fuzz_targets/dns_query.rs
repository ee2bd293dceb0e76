#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| husk_fuzz::dns_query::run(data));
