//! Line-at-a-time reading of untrusted text inputs, shared by the text form and the
//! importers: a line longer than [`MAX_LINE`] is an error naming it, so no input makes a
//! reader hold more than that.

use std::borrow::Cow;
use std::io::{BufRead, Read};

use super::{Place, TraceError};

/// Lines longer than this are errors (a reader never holds more of its input).
pub const MAX_LINE: usize = 1 << 20;

/// Shortens an offending line for an error message.
pub(crate) fn shorten(s: &str) -> Cow<'_, str> {
    const MAX: usize = 200;
    let s = s.trim_end();
    if s.len() <= MAX {
        return Cow::Borrowed(s);
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", &s[..end]))
}

/// An input read one line at a time, counting lines and bytes.
#[derive(Debug)]
pub(crate) struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    /// Lines read so far (the number of the last one).
    pub(crate) line_no: u64,
    /// Bytes read so far.
    pub(crate) pos: u64,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(input: R) -> Self {
        Lines {
            input,
            buf: Vec::new(),
            line_no: 0,
            pos: 0,
        }
    }

    /// Reads the next line into [`Lines::text`]; `false` at the end of the input.
    pub(crate) fn next_line(&mut self) -> Result<bool, TraceError> {
        self.buf.clear();
        let n = (&mut self.input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| TraceError::Io {
                place: Place::Line(self.line_no + 1),
                source,
            })?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        self.pos += n as u64;
        if self.buf.len() > MAX_LINE && self.buf.last() != Some(&b'\n') {
            return Err(TraceError::Parse {
                place: Place::Line(self.line_no),
                message: format!("line longer than {MAX_LINE} bytes"),
                text: shorten(&String::from_utf8_lossy(&self.buf)).into_owned(),
            });
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(true)
    }

    /// The line last read (without its end; invalid UTF-8 replaced).
    pub(crate) fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.buf)
    }
}
