//! # mmp-benchmarks: traces, the replay harness, workloads and baselines
//!
//! The top of the MMP picture: clients that measure the model. The replay engine drives the
//! hardware model (`mmp-machine`) directly, with no supervisor in between, since a trace
//! says what the hardware saw; the `supervisor` and `memguard` benches use the layers above
//! as dev-dependencies. [`trace`] holds the event model, our binary format and text form;
//! [`import`] reads other tools' traces (ftrace, uftrace, ltrace, Valgrind lackey), one
//! registered format each; [`kernel`] holds the embedded real-kernel trace and layout;
//! [`synth`] generates the MMP kernel paper's boot trace
//! and a coarse-layout memory workload; [`replay`] drives the machine from any of them and
//! reports crossings, PLB behaviour, table references and footprints, and faults; [`plot`]
//! draws the SVGs of `mmp-replay`; [`tally`] counts by enum. The workloads the criterion benches in `benches/` share
//! (seeded layouts, pre-generated address streams) and the naive baselines they are
//! compared with live here too, so every bench and its baseline see the same inputs.

pub mod baseline;
pub mod import;
pub mod kernel;
pub mod plot;
pub mod replay;
pub mod rng;
pub mod synth;
pub mod tally;
pub mod trace;
pub mod workloads;
