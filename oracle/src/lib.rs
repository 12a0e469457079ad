//! # mmp-oracle: what the supervisor is checked against
//!
//! Beside the memory supervisor (`mmp-supervisor`), not in it: this crate holds its
//! reference model and the operation language its differential tests and fuzz target use,
//! and nothing in production depends on it.
//!
//! - [`model`]: the [`Model`](model::Model), the supervisor's policy kept per word in one map
//!   and updated by literal loops: slow and obviously correct. It implements the same
//!   [`Mmp`](mmp_supervisor::Mmp) trait as the supervisor.
//! - [`words`]: the model's word map, a `BTreeMap<u64, Word>` in copy-on-write chunks, so
//!   a harness can copy a model per input cheaply.
//! - [`ops`]: operations decoded from bytes ([`ops::Op`], with `arbitrary`), resolved into
//!   concrete calls ([`ops::Call`]) that one generic step runs on both, then compares
//!   results, invariants, digests after failures and the state of every word an operation
//!   could change ([`ops::Harness`]), and everything every so many operations. [`ops::fuzz_one`] is the whole body of the `supervisor_ops` fuzz
//!   target; the proptests in `tests/policy.rs` call [`ops::run_bytes`].

#![forbid(unsafe_code)]

pub mod model;
pub mod ops;
pub mod words;
