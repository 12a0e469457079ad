//! `trace_binary`: arbitrary bytes (and, from the seeds, valid traces with mutated bytes) as
//! our binary trace format, read both ways the replay reads it: event by event, and through
//! the streaming fast path. An error is a fine answer; a panic, a hang or runaway memory is a
//! finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmp_benchmarks::trace::binary::{BinaryReader, EventSink};
use mmp_benchmarks::trace::{Event, EventSource, MemKind, TraceError};

/// A sink that looks at everything it is given.
struct Sum(u64);

impl EventSink for Sum {
    type Error = TraceError;
    fn mem(&mut self, _: MemKind, addr: u64, size: u32) {
        self.0 = self.0.wrapping_add(addr ^ u64::from(size));
    }
    fn other(&mut self, e: Event) -> Result<(), TraceError> {
        self.0 = self.0.wrapping_add(e.kind() as u64);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(mut r) = BinaryReader::new(data) {
        while let Ok(Some(_)) = r.next_event() {}
    }
    if let Ok(mut r) = BinaryReader::new(data) {
        let _ = r.for_each(&mut Sum(0));
    }
});
