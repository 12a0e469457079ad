//! # mmp-benchmarks: workloads, baselines and (soon) trace replay
//!
//! The top of the MMP picture: clients that measure the model. This crate holds the
//! workloads the criterion benches in `benches/` share (seeded layouts and pre-generated
//! address streams), and the naive baselines they are compared with, so every bench and its
//! baseline see exactly the same inputs. Trace formats and the replay harness will join it.

pub mod baseline;
pub mod import;
pub mod plot;
pub mod replay;
pub mod rng;
pub mod synth;
pub mod trace;
pub mod workloads;
