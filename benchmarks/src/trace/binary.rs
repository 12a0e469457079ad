//! The binary trace format: compact, versioned, self-describing, streamed.
//!
//! # Layout
//! A 128-byte header, then the payload (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `MMPTRACE` |
//! | 8..10 | version (2; version 1, the same layout without context events, is read too) |
//! | 10 | address width in bits (32 or 48) |
//! | 11..16 | zero |
//! | 16..24 | payload length in bytes |
//! | 24..32 | payload checksum ([`checksum`]) |
//! | 32..40 | events in all |
//! | 40..128 | events of each kind, in [`EventKind`] order (11 counts) |
//!
//! Each event is a tag byte and its fields. The tag's low 4 bits are the kind: 0 domain,
//! 1 function, 2 grant, 3 cpu, 4 load, 5 store, 6 modify, 7 fetch, 8 call, 9 return,
//! 10 switch, 11 syscall, 12 insns, 13 thread, 14 interrupt, 15 interrupt return (13 to 15:
//! version 2). For a memory reference the high 4 bits are the size (1 to
//! 15; 0: the size follows as a varint) and the address is the zigzag varint difference from
//! the previous reference's address of its class (data or fetch). Other numbers are LEB128
//! varints; names are a varint length (at most [`MAX_NAME`]) and UTF-8 bytes; a grant's
//! permission is one byte (its 2 bits).
//!
//! The writer needs `Seek` to fill in the header at the end. The reader streams in 64 KiB
//! blocks, checks the checksum and the counts when the payload ends, and reports any error
//! with its byte offset.

use std::io::{Read, Seek, SeekFrom, Write};

use mmp_domains::Perm;

use super::{
    Event, EventKind, EventSource, KindCounts, MAX_MEM_SIZE, MemKind, Place, TraceError, TraceWidth,
};
use crate::tally::Key;

/// The magic bytes.
pub const MAGIC: [u8; 8] = *b"MMPTRACE";
/// The format version this build writes (it reads [`MIN_VERSION`] up to this one).
pub const VERSION: u16 = 2;
/// The oldest format version this build reads.
pub const MIN_VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 128;
/// The longest name a domain or function may have, in bytes.
pub const MAX_NAME: usize = 4096;
const BLOCK: usize = 64 * 1024;
const MAX_EVENT: usize = 48;

const K_DOMAIN: u8 = 0;
const K_FUNCTION: u8 = 1;
const K_GRANT: u8 = 2;
const K_CPU: u8 = 3;
const K_LOAD: u8 = 4;
const K_STORE: u8 = 5;
const K_MODIFY: u8 = 6;
const K_FETCH: u8 = 7;
const K_CALL: u8 = 8;
const K_RETURN: u8 = 9;
const K_SWITCH: u8 = 10;
const K_SYSCALL: u8 = 11;
const K_INSNS: u8 = 12;
const K_THREAD: u8 = 13;
const K_INTERRUPT: u8 = 14;
const K_IRET: u8 = 15;

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// The tag kind of a memory reference.
const fn mem_tag(kind: MemKind) -> u8 {
    match kind {
        MemKind::Load => K_LOAD,
        MemKind::Store => K_STORE,
        MemKind::Modify => K_MODIFY,
        MemKind::Fetch => K_FETCH,
    }
}

/// The memory reference of tag kind `k` (one of [`K_LOAD`] to [`K_FETCH`]).
/// The kind of a memory-reference tag `k` (one of `K_LOAD..=K_FETCH`) from its low two bits,
/// which are the kind's own index: no table and no branch.
#[inline(always)]
const fn mem_kind_of_low_bits(k: u8) -> MemKind {
    match k & 3 {
        0 => MemKind::Load,
        1 => MemKind::Store,
        2 => MemKind::Modify,
        _ => MemKind::Fetch,
    }
}
const _: () = assert!(
    K_LOAD & 3 == 0 && K_STORE & 3 == 1 && K_MODIFY & 3 == 2 && K_FETCH & 3 == 3,
    "a memory tag's low two bits are its kind's index"
);

const fn mem_kind(k: u8) -> MemKind {
    match k {
        K_LOAD => MemKind::Load,
        K_STORE => MemKind::Store,
        K_MODIFY => MemKind::Modify,
        _ => MemKind::Fetch,
    }
}

/// The payload checksum, fed in pieces whose lengths (all but the last) are multiples of 8:
/// each 8-byte little-endian word `w` (the last zero-padded) updates
/// `h = (h ^ w) * 0x9e3779b97f4a7c15` rotated left 29, from `h = 0`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checksum(u64);

impl Checksum {
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            self.0 = (self.0 ^ w).wrapping_mul(MUL).rotate_left(29);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0 ^ u64::from_le_bytes(b))
                .wrapping_mul(MUL)
                .rotate_left(29);
        }
    }

    /// The checksum so far.
    #[must_use]
    pub fn value(self) -> u64 {
        self.0
    }
}

/// [`Checksum`] of a whole payload.
#[must_use]
pub fn checksum(payload: &[u8]) -> u64 {
    let mut c = Checksum::default();
    c.update(payload);
    c.value()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Writes the binary format to a seekable writer.
#[derive(Debug)]
pub struct BinaryWriter<W: Write + Seek> {
    out: W,
    start: u64,
    width: TraceWidth,
    buf: Vec<u8>,
    sum: Checksum,
    payload: u64,
    counts: KindCounts,
    last_data: u64,
    last_fetch: u64,
}

impl<W: Write + Seek> BinaryWriter<W> {
    /// A writer at `out`'s current position, for addresses of `width`. Writes a
    /// placeholder header.
    ///
    /// # Errors
    /// The writer's error.
    pub fn new(mut out: W, width: TraceWidth) -> std::io::Result<Self> {
        let start = out.stream_position()?;
        out.write_all(&[0u8; HEADER_LEN])?;
        Ok(BinaryWriter {
            out,
            start,
            width,
            buf: Vec::with_capacity(2 * BLOCK),
            sum: Checksum::default(),
            payload: 0,
            counts: KindCounts::default(),
            last_data: 0,
            last_fetch: 0,
        })
    }

    /// Appends one event.
    ///
    /// # Errors
    /// The writer's error; `InvalidInput` for a name longer than [`MAX_NAME`] or a memory
    /// reference of size 0 or over [`MAX_MEM_SIZE`].
    pub fn write(&mut self, e: &Event) -> std::io::Result<()> {
        let b = &mut self.buf;
        let name = |b: &mut Vec<u8>, s: &str| -> std::io::Result<()> {
            if s.len() > MAX_NAME {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("name of {} bytes (at most {MAX_NAME})", s.len()),
                ));
            }
            put_varint(b, s.len() as u64);
            b.extend_from_slice(s.as_bytes());
            Ok(())
        };
        match e {
            Event::Domain { no, name: n } => {
                b.push(K_DOMAIN);
                put_varint(b, u64::from(*no));
                name(b, n)?;
            }
            Event::Function {
                addr,
                domain,
                name: n,
            } => {
                b.push(K_FUNCTION);
                put_varint(b, *addr);
                put_varint(b, u64::from(*domain));
                name(b, n)?;
            }
            Event::Grant {
                domain,
                addr,
                len,
                perm,
            } => {
                b.push(K_GRANT);
                put_varint(b, u64::from(*domain));
                put_varint(b, *addr);
                put_varint(b, *len);
                b.push(perm.bits() as u8);
            }
            Event::Cpu { cpu } => {
                b.push(K_CPU);
                put_varint(b, u64::from(*cpu));
            }
            Event::Mem { kind, addr, size } => {
                if *size == 0 || *size > MAX_MEM_SIZE {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "memory reference of 0 bytes",
                    ));
                }
                let k = mem_tag(*kind);
                let last = if *kind == MemKind::Fetch {
                    &mut self.last_fetch
                } else {
                    &mut self.last_data
                };
                let delta = addr.wrapping_sub(*last) as i64;
                *last = *addr;
                if *size < 16 {
                    b.push(k | ((*size as u8) << 4));
                } else {
                    b.push(k);
                    put_varint(b, u64::from(*size));
                }
                put_varint(b, zigzag(delta));
            }
            Event::Call { target } => {
                b.push(K_CALL);
                put_varint(b, *target);
            }
            Event::Return => b.push(K_RETURN),
            Event::Switch { domain } => {
                b.push(K_SWITCH);
                put_varint(b, u64::from(*domain));
            }
            Event::Syscall { no } => {
                b.push(K_SYSCALL);
                put_varint(b, u64::from(*no));
            }
            Event::Insns { count } => {
                b.push(K_INSNS);
                put_varint(b, *count);
            }
            Event::Thread { tid } => {
                b.push(K_THREAD);
                put_varint(b, u64::from(*tid));
            }
            Event::Interrupt { domain } => {
                b.push(K_INTERRUPT);
                put_varint(b, u64::from(*domain));
            }
            Event::InterruptReturn => b.push(K_IRET),
        }
        self.counts[e.kind()] += 1;
        if self.buf.len() >= BLOCK {
            self.sum.update(&self.buf[..BLOCK]);
            self.out.write_all(&self.buf[..BLOCK])?;
            self.payload += BLOCK as u64;
            self.buf.drain(..BLOCK);
        }
        Ok(())
    }

    /// Writes the rest of the payload and the header; returns the writer, positioned after
    /// the trace.
    ///
    /// # Errors
    /// The writer's error.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.sum.update(&self.buf);
        self.out.write_all(&self.buf)?;
        self.payload += self.buf.len() as u64;
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[10] = self.width.bits();
        h[16..24].copy_from_slice(&self.payload.to_le_bytes());
        h[24..32].copy_from_slice(&self.sum.value().to_le_bytes());
        h[32..40].copy_from_slice(&self.counts.total().to_le_bytes());
        for (k, c) in self.counts.iter() {
            let i = k.index();
            h[40 + 8 * i..48 + 8 * i].copy_from_slice(&c.to_le_bytes());
        }
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(self.start))?;
        self.out.write_all(&h)?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// What the header of a binary trace says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The address width.
    pub width: TraceWidth,
    /// Payload bytes.
    pub payload_len: u64,
    /// The payload checksum.
    pub checksum: u64,
    /// Events in all.
    pub events: u64,
    /// Events of each kind.
    pub counts: KindCounts,
}

/// Where [`BinaryReader::for_each`] sends events.
pub trait EventSink {
    /// The error that stops the stream (it must take the reader's errors).
    type Error: From<TraceError>;

    /// A memory reference.
    fn mem(&mut self, kind: MemKind, addr: u64, size: u32);

    /// A memory reference decoded in a run of them, `n` references into the run (from 0):
    /// a sink that counts references can leave the count to [`EventSink::mems_done`],
    /// which gets the run's length after it. [`EventSink::mem`] unless overridden.
    #[inline(always)]
    fn mem_in_run(&mut self, kind: MemKind, addr: u64, size: u32, n: u64) {
        let _ = n;
        self.mem(kind, addr, size);
    }

    /// The run of `n` references just given to [`EventSink::mem_in_run`] is over. Does
    /// nothing unless overridden.
    #[inline(always)]
    fn mems_done(&mut self, n: u64) {
        let _ = n;
    }

    /// Any other event.
    ///
    /// # Errors
    /// Whatever stops the stream.
    fn other(&mut self, e: Event) -> Result<(), Self::Error>;

    /// How far into its input the reader is, in bytes: called at least once per 64 KiB
    /// block (for progress bars). Does nothing unless overridden.
    fn position(&mut self, _bytes: u64) {}
}

/// A sink with nothing behind it: it folds each memory reference's address into a sum and
/// each other event's kind into a count, so that decoding cannot be optimised away. The
/// floor under a replay (the `replay` bench's `decode_only`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOnly {
    /// The wrapping sum of the memory references' addresses.
    pub addr_sum: u64,
    /// The sum of the other events' kind indices.
    pub other_kinds: u64,
}

impl EventSink for DecodeOnly {
    type Error = TraceError;

    fn mem(&mut self, _: MemKind, addr: u64, _: u32) {
        self.addr_sum = self.addr_sum.wrapping_add(addr);
    }

    fn other(&mut self, e: Event) -> Result<(), TraceError> {
        self.other_kinds += e.kind().index() as u64;
        Ok(())
    }
}

/// Whether `bytes` (a file's first bytes) start a binary trace.
#[must_use]
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Streams a binary trace from any reader.
#[derive(Debug)]
pub struct BinaryReader<R> {
    input: R,
    header: Header,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Payload bytes read from the input so far.
    read: u64,
    /// Payload offset of `buf[0]`.
    base: u64,
    sum: Checksum,
    counts: KindCounts,
    last_data: u64,
    last_fetch: u64,
    done: bool,
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> BinaryReader<R> {
    /// A reader of `input`; reads and checks the header.
    ///
    /// # Errors
    /// [`TraceError::BadMagic`], [`TraceError::Version`], [`TraceError::Truncated`] (a short
    /// header), [`TraceError::Parse`] (a bad width), [`TraceError::Io`].
    pub fn new(mut input: R) -> Result<Self, TraceError> {
        let mut h = [0u8; HEADER_LEN];
        let n = read_full(&mut input, &mut h).map_err(|source| TraceError::Io {
            place: Place::Byte(0),
            source,
        })?;
        if n < 8 || h[0..8] != MAGIC {
            return Err(TraceError::BadMagic {
                found: h[..n.min(8)].to_vec(),
            });
        }
        if n < HEADER_LEN {
            return Err(TraceError::Truncated {
                place: Place::Byte(n as u64),
                what: format!("a {HEADER_LEN}-byte header"),
            });
        }
        let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or([0; 8]));
        let version = u16::from_le_bytes([h[8], h[9]]);
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(TraceError::Version {
                version,
                supported: VERSION,
            });
        }
        let width = TraceWidth::from_bits(h[10]).ok_or_else(|| TraceError::Parse {
            place: Place::Byte(10),
            message: "address width must be 32 or 48".into(),
            text: format!("{}", h[10]),
        })?;
        let mut counts = KindCounts::default();
        for &k in EventKind::ALL {
            counts[k] = u64_at(40 + 8 * k.index());
        }
        let header = Header {
            width,
            payload_len: u64_at(16),
            checksum: u64_at(24),
            events: u64_at(32),
            counts,
        };
        Ok(BinaryReader {
            input,
            header,
            buf: vec![0; 2 * BLOCK + MAX_NAME + MAX_EVENT],
            pos: 0,
            end: 0,
            read: 0,
            base: 0,
            sum: Checksum::default(),
            counts: KindCounts::default(),
            last_data: 0,
            last_fetch: 0,
            done: false,
        })
    }

    /// The header.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn place(&self) -> Place {
        Place::Byte(HEADER_LEN as u64 + self.base + self.pos as u64)
    }

    /// Makes at least `n` unread bytes available, unless the payload ends first. Returns
    /// how many are available.
    #[cold]
    fn refill(&mut self, n: usize) -> Result<usize, TraceError> {
        while self.end - self.pos < n && self.read < self.header.payload_len {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.base += self.pos as u64;
                self.end -= self.pos;
                self.pos = 0;
            }
            let want = (self.header.payload_len - self.read).min(BLOCK as u64) as usize;
            let at = self.end;
            let got =
                read_full(&mut self.input, &mut self.buf[at..at + want]).map_err(|source| {
                    TraceError::Io {
                        place: Place::Byte(HEADER_LEN as u64 + self.read),
                        source,
                    }
                })?;
            self.sum.update(&self.buf[at..at + got]);
            self.read += got as u64;
            self.end += got;
            if got < want {
                return Err(TraceError::Truncated {
                    place: Place::Byte(HEADER_LEN as u64 + self.read),
                    what: format!(
                        "the header promises {} payload bytes",
                        self.header.payload_len
                    ),
                });
            }
        }
        Ok(self.end - self.pos)
    }

    fn bad(&self, at: usize, message: &str) -> TraceError {
        let hi = (at + 8).min(self.end);
        TraceError::Parse {
            place: Place::Byte(HEADER_LEN as u64 + self.base + at as u64),
            message: message.into(),
            text: self.buf[at..hi]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    }

    #[inline]
    fn varint(&mut self, start: usize) -> Result<u64, TraceError> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            if self.pos >= self.end {
                return Err(self.truncated_event(start));
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(self.bad(start, "varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(self.bad(start, "varint overflows 64 bits"));
            }
        }
    }

    fn truncated_event(&self, start: usize) -> TraceError {
        TraceError::Truncated {
            place: Place::Byte(HEADER_LEN as u64 + self.base + start as u64),
            what: "the payload ends inside an event".into(),
        }
    }

    fn small(&mut self, start: usize, what: &str) -> Result<u32, TraceError> {
        let v = self.varint(start)?;
        u32::try_from(v).map_err(|_| self.bad(start, &format!("{what} too large")))
    }

    fn name(&mut self, start: usize) -> Result<String, TraceError> {
        let len = self.varint(start)?;
        if len > MAX_NAME as u64 {
            return Err(self.bad(start, "name longer than 4096 bytes"));
        }
        let len = len as usize;
        if self.end - self.pos < len {
            // Names may straddle the buffered bytes: fetch more, keeping `start` valid.
            let shift = self.pos;
            let avail = self.refill(len)?;
            let _ = shift;
            if avail < len {
                return Err(self.truncated_event(start.min(self.pos)));
            }
        }
        let s = std::str::from_utf8(&self.buf[self.pos..self.pos + len])
            .map_err(|_| self.bad(start.min(self.pos), "name is not UTF-8"))?
            .to_string();
        self.pos += len;
        Ok(s)
    }

    fn finish_payload(&mut self) -> Result<(), TraceError> {
        self.done = true;
        let found = self.sum.value();
        if found != self.header.checksum {
            return Err(TraceError::Checksum {
                place: self.place(),
                expected: self.header.checksum,
                found,
            });
        }
        if let Some((kind, h)) = self
            .header
            .counts
            .iter()
            .find(|&(k, h)| h != self.counts[k])
        {
            return Err(TraceError::Parse {
                place: self.place(),
                message: format!(
                    "the header counts {h} {} events, the payload holds {}",
                    kind.name(),
                    self.counts[kind]
                ),
                text: String::new(),
            });
        }
        Ok(())
    }

    /// Streams the rest of the trace into `sink`: each memory reference to
    /// [`EventSink::mem`] without building an [`Event`], every other event to
    /// [`EventSink::other`]. Stops at the end of the payload (after checking the checksum
    /// and counts) or at the first error of either. This is the replay hot loop's reader;
    /// [`BinaryReader::read_event`] gives the same events one at a time.
    ///
    /// # Errors
    /// The reader's [`TraceError`] (converted) or the sink's error.
    pub fn for_each<S: EventSink>(&mut self, sink: &mut S) -> Result<(), S::Error> {
        loop {
            // Fast path: memory references with their sizes in their tags, while enough
            // bytes are buffered for the longest encoding.
            let mut pos = self.pos;
            let mut last_data = self.last_data;
            let mut last_fetch = self.last_fetch;
            let mut n = 0u64;
            if self.end >= MAX_EVENT {
                let lim = self.end - MAX_EVENT;
                let buf = &self.buf[..self.end];
                while pos <= lim {
                    let tag = buf[pos];
                    let k = tag & 0x0f;
                    if !(K_LOAD..=K_FETCH).contains(&k) || tag < 0x10 {
                        break;
                    }
                    let b0 = buf[pos + 1];
                    let (v, len) = if b0 < 0x80 {
                        (u64::from(b0), 2)
                    } else {
                        let b1 = buf[pos + 2];
                        if b1 < 0x80 {
                            (u64::from(b0 & 0x7f) | (u64::from(b1) << 7), 3)
                        } else {
                            let mut v = u64::from(b0 & 0x7f) | (u64::from(b1 & 0x7f) << 7);
                            let mut p = pos + 3;
                            let mut shift = 14;
                            loop {
                                let b = buf[p];
                                p += 1;
                                v |= u64::from(b & 0x7f) << shift;
                                if b < 0x80 || shift >= 63 {
                                    break;
                                }
                                shift += 7;
                            }
                            if buf[p - 1] >= 0x80 || (shift == 63 && buf[p - 1] > 1) {
                                // Malformed: the careful path reports it.
                                break;
                            }
                            (v, p - pos)
                        }
                    };
                    pos += len;
                    let size = u32::from(tag >> 4);
                    let d = unzigzag(v) as u64;
                    // Fetches and data references interleave unpredictably, so the kind is
                    // looked up, the address chosen by selects, and the sink called from one
                    // place: no branch on the kind.
                    let fetch = k == K_FETCH;
                    let addr = if fetch { last_fetch } else { last_data }.wrapping_add(d);
                    last_fetch = if fetch { addr } else { last_fetch };
                    last_data = if fetch { last_data } else { addr };
                    sink.mem_in_run(mem_kind_of_low_bits(k), addr, size, n);
                    n += 1;
                }
            }
            self.pos = pos;
            self.last_data = last_data;
            self.last_fetch = last_fetch;
            self.counts[EventKind::Mem] += n;
            sink.mems_done(n);
            sink.position(HEADER_LEN as u64 + self.base + self.pos as u64);
            match self.read_event()? {
                Some(Event::Mem { kind, addr, size }) => sink.mem(kind, addr, size),
                Some(e) => sink.other(e)?,
                None => return Ok(()),
            }
        }
    }

    /// The next event. See [`EventSource::next_event`].
    ///
    /// # Errors
    /// As [`EventSource::next_event`].
    #[inline]
    pub fn read_event(&mut self) -> Result<Option<Event>, TraceError> {
        if self.end - self.pos < MAX_EVENT && self.refill(MAX_EVENT)? == 0 {
            if self.done {
                return Ok(None);
            }
            self.finish_payload()?;
            return Ok(None);
        }
        if self.done {
            return Ok(None);
        }
        let start = self.pos;
        let tag = self.buf[start];
        self.pos += 1;
        let e = match tag & 0x0f {
            k @ (K_LOAD | K_STORE | K_MODIFY | K_FETCH) => {
                let size = match tag >> 4 {
                    0 => {
                        let s = self.varint(start)?;
                        u32::try_from(s)
                            .ok()
                            .filter(|&s| (16..=MAX_MEM_SIZE).contains(&s))
                            .ok_or_else(|| {
                                self.bad(
                                    start,
                                    &format!(
                                        "memory reference of {s} bytes (16 to {MAX_MEM_SIZE} \
                                         take a size varint)"
                                    ),
                                )
                            })?
                    }
                    s => u32::from(s),
                };
                let d = unzigzag(self.varint(start)?);
                let kind = mem_kind(k);
                let last = if kind == MemKind::Fetch {
                    &mut self.last_fetch
                } else {
                    &mut self.last_data
                };
                let addr = last.wrapping_add(d as u64);
                *last = addr;
                self.counts[EventKind::Mem] += 1;
                return Ok(Some(Event::Mem { kind, addr, size }));
            }
            _ if tag >> 4 != 0 => return Err(self.bad(start, "unknown event tag")),
            K_DOMAIN => {
                let no = self.small(start, "domain number")?;
                Event::Domain {
                    no,
                    name: self.name(start)?,
                }
            }
            K_FUNCTION => {
                let addr = self.varint(start)?;
                let domain = self.small(start, "domain number")?;
                Event::Function {
                    addr,
                    domain,
                    name: self.name(start)?,
                }
            }
            K_GRANT => {
                let domain = self.small(start, "domain number")?;
                let addr = self.varint(start)?;
                let len = self.varint(start)?;
                if self.pos >= self.end {
                    return Err(self.truncated_event(start));
                }
                let p = self.buf[self.pos];
                self.pos += 1;
                if p > 3 {
                    return Err(self.bad(start, "bad permission"));
                }
                Event::Grant {
                    domain,
                    addr,
                    len,
                    perm: Perm::from_bits(u64::from(p)),
                }
            }
            K_CPU => Event::Cpu {
                cpu: self.small(start, "CPU number")?,
            },
            K_CALL => Event::Call {
                target: self.varint(start)?,
            },
            K_RETURN => Event::Return,
            K_SWITCH => Event::Switch {
                domain: self.small(start, "domain number")?,
            },
            K_SYSCALL => Event::Syscall {
                no: self.small(start, "call number")?,
            },
            K_INSNS => Event::Insns {
                count: self.varint(start)?,
            },
            K_THREAD => Event::Thread {
                tid: self.small(start, "thread number")?,
            },
            K_INTERRUPT => Event::Interrupt {
                domain: self.small(start, "domain number")?,
            },
            K_IRET => Event::InterruptReturn,
            _ => return Err(self.bad(start, "unknown event tag")),
        };
        self.counts[e.kind()] += 1;
        Ok(Some(e))
    }
}

impl<R: Read> EventSource for BinaryReader<R> {
    fn width(&self) -> TraceWidth {
        self.header.width
    }

    fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        let r = self.read_event();
        if r.is_err() {
            self.done = true;
        }
        r
    }

    fn position(&self) -> u64 {
        HEADER_LEN as u64 + self.base + self.pos as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn sample() -> Vec<Event> {
        let mut v = vec![
            Event::Domain {
                no: 1,
                name: "vmlinux".into(),
            },
            Event::Function {
                addr: 0x10_0000,
                domain: 1,
                name: "x".repeat(MAX_NAME),
            },
            Event::Grant {
                domain: 1,
                addr: 0,
                len: 1 << 30,
                perm: Perm::ExecuteRead,
            },
            Event::Cpu { cpu: 3 },
            Event::Call { target: 0x10_0000 },
            Event::Return,
            Event::Switch { domain: 1 },
            Event::Syscall { no: 12 },
            Event::Insns { count: u64::MAX },
        ];
        for i in 0..100_000u64 {
            let kind = [
                MemKind::Load,
                MemKind::Store,
                MemKind::Modify,
                MemKind::Fetch,
            ][i as usize % 4];
            v.push(Event::Mem {
                kind,
                addr: (i * 0x9e37_79b9) & 0xffff_ffff_ffff,
                size: [1, 2, 4, 8, 3, 16, 64][i as usize % 7],
            });
        }
        v
    }

    fn encode(events: &[Event]) -> Vec<u8> {
        let mut w = BinaryWriter::new(Cursor::new(Vec::new()), TraceWidth::Bits48).unwrap();
        for e in events {
            w.write(e).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Event>, TraceError> {
        let mut r = BinaryReader::new(bytes)?;
        let mut v = Vec::new();
        while let Some(e) = r.next_event()? {
            v.push(e);
        }
        Ok(v)
    }

    #[test]
    fn events_round_trip_and_the_header_counts_them() {
        let ev = sample();
        let bytes = encode(&ev);
        let r = BinaryReader::new(&bytes[..]).unwrap();
        assert_eq!(r.header().events, ev.len() as u64);
        assert_eq!(r.header().counts[EventKind::Mem], 100_000);
        assert_eq!(r.header().width, TraceWidth::Bits48);
        assert_eq!(decode(&bytes).unwrap(), ev);
        // Compact: a memory reference is a few bytes.
        assert!(bytes.len() < 100_000 * 8, "{} bytes", bytes.len());
    }

    #[test]
    fn bad_magic_truncation_and_checksum_mismatch_are_errors() {
        let bytes = encode(&sample());
        let e = decode(b"ELF\x7fxxxxxxxx").unwrap_err();
        assert!(matches!(e, TraceError::BadMagic { .. }), "{e}");
        let e = decode(&bytes[..60]).unwrap_err();
        assert!(matches!(e, TraceError::Truncated { .. }), "{e}");
        for cut in [HEADER_LEN + 1, bytes.len() / 2, bytes.len() - 1] {
            let e = decode(&bytes[..cut]).unwrap_err();
            assert!(matches!(e, TraceError::Truncated { .. }), "{cut}: {e}");
            assert!(e.to_string().starts_with("byte "), "{e}");
        }
        let mut flipped = bytes.clone();
        let at = bytes.len() - 100;
        flipped[at] ^= 0x40;
        let e = decode(&flipped).unwrap_err();
        assert!(
            matches!(e, TraceError::Checksum { .. } | TraceError::Parse { .. }),
            "{e}"
        );
        let mut v2 = bytes.clone();
        v2[8] = 9;
        assert!(matches!(
            decode(&v2).unwrap_err(),
            TraceError::Version { .. }
        ));
    }

    #[test]
    fn a_payload_byte_changed_without_breaking_the_encoding_fails_the_checksum() {
        let ev = vec![Event::Insns { count: 5 }, Event::Insns { count: 6 }];
        let mut bytes = encode(&ev);
        let last = bytes.len() - 1;
        bytes[last] = 7;
        let e = decode(&bytes).unwrap_err();
        assert!(matches!(e, TraceError::Checksum { .. }), "{e}");
    }
}
