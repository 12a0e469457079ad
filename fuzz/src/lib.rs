//! What the fuzz targets share.

#![forbid(unsafe_code)]

use mmp_benchmarks::import::{self, InputFormat, ReadOptions};

/// Most events a target reads from one input: far more than a few kilobytes can hold, so
/// reaching it means a reader produced events from nothing (a finding, as a panic).
pub const MAX_EVENTS: usize = 10_000_000;

/// Reads `data` in `format` (detected when `None`) to its end or its first error.
///
/// # Panics
/// If the reader yields more than [`MAX_EVENTS`] events.
pub fn read_all(data: &[u8], format: Option<InputFormat>) {
    read_all_with(data, format, &ReadOptions::default());
}

/// [`read_all`] with reading options (a uftrace recording's symbols).
///
/// # Panics
/// As [`read_all`].
pub fn read_all_with(data: &[u8], format: Option<InputFormat>, options: &ReadOptions) {
    let Ok(mut r) = import::from_reader_with(std::io::Cursor::new(data.to_vec()), format, options)
    else {
        return;
    };
    for _ in 0..MAX_EVENTS {
        match r.next_event() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
    panic!("{MAX_EVENTS} events from {} bytes", data.len());
}
