//! Content trust: that an image is the one its publisher signed
//! ([`cosign`]: cosign-compatible signatures over the manifest digest),
//! and that a tag means now what its publisher says it means
//! ([`tags`]: a TUF repository of `repository:tag → digest`, with the
//! expiry and rollback protection the OS updates have). The admission
//! policy ([`crate::policy`]) says which images need which.

pub mod cosign;
pub mod tags;
