//! cosign-compatible signatures (being written).
