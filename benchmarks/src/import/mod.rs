//! Importers of other tools' trace output, and the choice of a reader for a file.
//!
//! Each importer streams its input one line at a time and turns it into trace [`Event`]s:
//! - [`ftrace::FtraceReader`]: the kernel's `function` tracer;
//! - [`ftrace::FtraceGraphReader`]: the kernel's `function_graph` tracer;
//! - [`uftrace::UftraceReader`]: `uftrace replay` (with `--libname`);
//! - [`ltrace::LtraceReader`]: `ltrace -f -T -i`;
//! - [`lackey::LackeyReader`]: Valgrind's lackey with `--trace-mem=yes`.
//!
//! [`open`] and [`from_reader`] pick the reader for an input, by [`detect`]ing its format
//! unless one is named. Each format is one line of [`InputFormat`]'s list, naming the
//! `Format` (name, detection hooks, reader) its module defines: adding an importer is
//! adding its module and that line.
//!
//! # The shared mapping
//! - Domains are numbered 1, 2, ... in order of first appearance; a [`Event::Domain`] comes
//!   before the first event that uses the number. At most 255 domains.
//! - Functions get synthetic word addresses: domain `d`'s code starts at `d << 24`; its
//!   `k`-th function (in first-seen order within the domain) is at `(d << 24) + 16 + 4k` (the
//!   first 16 bytes are left for the replay engine's stubs), so at most `(1 << 22) - 4`
//!   functions a domain. A [`Event::Function`] comes before the first event that uses the
//!   address.
//! - Threads (or CPUs) map onto replay CPUs 0, 1, ... in first-seen order, at most 64. A
//!   [`Event::Cpu`] comes whenever a line's events run on another CPU than the previous
//!   line's; the stream starts on CPU 0.
//! - Before a CPU's first control event a [`Event::Switch`] names the domain running on it.
//! - Calls and returns nest properly on each CPU: an importer never returns from a call it
//!   did not emit on that CPU.
//!
//! Lines that start with `#` and blank lines are skipped everywhere; each importer also
//! skips its tool's known decorations. Any other line that does not parse is a
//! [`TraceError::Parse`] naming its line, after which the reader yields nothing more.

pub mod ftrace;
pub mod heap;
pub mod lackey;
pub mod ltrace;
pub mod uftrace;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Cursor, Read};
use std::path::Path;

use crate::trace::binary::{BinaryReader, is_binary};
use crate::trace::lines::{Lines, shorten};
use crate::trace::text::{HEADER as TEXT_HEADER, TextReader};
use crate::trace::{DomainNo, Event, EventSource, Place, TraceError, TraceWidth};

/// How many bytes of an input [`detect`] looks at (the first 64 KiB).
pub const DETECT_BYTES: usize = 64 * 1024;

/// How one input format is recognised and read. Each importer's module defines the
/// `Format` of what it reads beside its reader, and [`InputFormat`]'s list names them all, so
/// adding an importer is its module and one line there.
#[derive(Clone, Copy)]
pub(crate) struct Format {
    /// Its name on the command line.
    pub(crate) name: &'static str,
    /// Whether an input's first bytes carry the format's magic number.
    pub(crate) magic: fn(&[u8]) -> bool,
    /// Whether a line (trimmed) is a header that names the format outright.
    pub(crate) header: fn(&str) -> bool,
    /// Whether a data line has the format's shape.
    pub(crate) sniff: fn(&str) -> bool,
    /// Where [`detect`] tries `sniff` among the formats: lower first, since a line of one
    /// format can look like another's (ftrace's `function` lines hold no marker that
    /// `function_graph` lines lack).
    pub(crate) sniff_rank: u8,
    /// The reader of an input in the format.
    pub(crate) open: fn(Input, &ReadOptions) -> Result<Reader, TraceError>,
}

/// What a reader may be given beyond its input.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The recording's symbols, for the calls `uftrace replay` leaves unattributed (see
    /// [`uftrace::Symbols`]); other formats ignore them.
    pub uftrace_symbols: Option<uftrace::Symbols>,
    /// For a lackey trace: the heap log of the same run and the layout to derive from it
    /// (see [`lackey`]); without it lackey's layout grants 4 KiB pages. Other formats
    /// ignore it.
    pub lackey_heap: Option<lackey::HeapLayout>,
}

/// An input, as a format's reader takes it.
pub(crate) type Input = Box<dyn BufRead + Send>;
/// A reader of some format.
pub(crate) type Reader = Box<dyn EventSource + Send>;

/// A format hook that never matches.
pub(crate) fn never<T: ?Sized>(_: &T) -> bool {
    false
}

/// Defines [`InputFormat`] and its list from one table: variant, docs and the importer's
/// [`Format`].
macro_rules! input_formats {
    ($( $(#[$doc:meta])* $variant:ident => $format:expr ),* $(,)?) => {
        /// The formats an input can be read in.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum InputFormat {
            $( $(#[$doc])* $variant, )*
        }

        impl InputFormat {
            /// How many formats there are.
            pub const COUNT: usize = [$(stringify!($variant)),*].len();

            /// Every format, in the order their names are listed.
            pub const ALL: [InputFormat; InputFormat::COUNT] = [$(InputFormat::$variant),*];

            /// How the format is recognised and read.
            pub(crate) const fn format(self) -> &'static Format {
                match self {
                    $( InputFormat::$variant => &$format, )*
                }
            }
        }
    };
}

input_formats! {
    /// The mmp binary trace format ([`crate::trace::binary`]).
    Binary => BINARY,
    /// The mmp text form ([`crate::trace::text`]).
    Text => TEXT,
    /// The kernel's `function` tracer ([`ftrace::FtraceReader`]).
    Ftrace => ftrace::FUNCTION,
    /// The kernel's `function_graph` tracer ([`ftrace::FtraceGraphReader`]).
    FtraceGraph => ftrace::GRAPH,
    /// `uftrace replay` ([`uftrace::UftraceReader`]).
    Uftrace => uftrace::FORMAT,
    /// `ltrace -f -T -i` ([`ltrace::LtraceReader`]).
    Ltrace => ltrace::FORMAT,
    /// Valgrind lackey `--trace-mem=yes` ([`lackey::LackeyReader`]).
    Lackey => lackey::FORMAT,
}

impl InputFormat {
    /// Its name on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        self.format().name
    }
}

/// Our binary format: known by its magic number.
const BINARY: Format = Format {
    name: "binary",
    magic: is_binary,
    header: never,
    sniff: never,
    sniff_rank: u8::MAX,
    open: |r, _| Ok(Box::new(BinaryReader::new(r)?)),
};

/// Our text form: its `mmp-trace` header, or a line that starts with an event keyword.
const TEXT: Format = Format {
    name: "text",
    magic: never,
    header: |t| t.starts_with(TEXT_HEADER),
    sniff: |l| {
        l.split_whitespace()
            .next()
            .is_some_and(|first| TEXT_KEYWORDS.contains(&first))
    },
    sniff_rank: 0,
    open: |r, _| Ok(Box::new(TextReader::new(r)?)),
};

/// The names of all formats, comma separated.
fn format_names() -> String {
    InputFormat::ALL
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl std::fmt::Display for InputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is none of [`InputFormat::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trace format `{0}` (one of: {names})", names = format_names())]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for InputFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InputFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// The text form's event keywords.
const TEXT_KEYWORDS: [&str; 13] = [
    "domain", "function", "grant", "cpu", "load", "store", "modify", "fetch", "call", "return",
    "switch", "syscall", "insns",
];

/// How many non-comment lines [`detect`] tries before giving up.
const DETECT_LINES: usize = 200;

/// The format of an input from its first bytes (up to [`DETECT_BYTES`] of them), if it is
/// recognisably one: the binary magic; the text form's `mmp-trace` header or an event keyword;
/// an ftrace `# tracer: function` / `# tracer: function_graph` header; uftrace's `# DURATION`
/// header; otherwise the shape of the first lines that look like one format's
/// (`TASK-PID [CPU] ... callee <-caller`, ` N) ... | f() {`, `DURATION [TID] | f() {`,
/// `PID [0x..] obj->f(`, lackey's `==PID==` banner or `I  hex,size`).
#[must_use]
pub fn detect(head: &[u8]) -> Option<InputFormat> {
    if let Some(&f) = InputFormat::ALL.iter().find(|f| (f.format().magic)(head)) {
        return Some(f);
    }
    let head = &head[..head.len().min(DETECT_BYTES)];
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<&str> = text.lines().collect();
    if !head.ends_with(b"\n") && lines.len() > 1 {
        lines.pop(); // a cut line
    }
    // Headers first: they name the format outright.
    for l in &lines {
        let t = l.trim();
        if let Some(&f) = InputFormat::ALL.iter().find(|f| (f.format().header)(t)) {
            return Some(f);
        }
    }
    let mut by_rank: Vec<InputFormat> = InputFormat::ALL.to_vec();
    by_rank.sort_by_key(|f| f.format().sniff_rank);
    lines
        .iter()
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .take(DETECT_LINES)
        .find_map(|l| by_rank.iter().copied().find(|f| (f.format().sniff)(l)))
}

/// Opens `path` and returns the reader of its `format`, or of the format [`detect`] finds in
/// its first 64 KiB when `format` is `None`.
///
/// # Errors
/// [`TraceError::Io`] (naming the path) when the file cannot be opened or read;
/// [`TraceError::Parse`] at line 1 naming the path when the format cannot be told; the
/// reader's own errors from its constructor (the binary header, the text form's first line).
pub fn open(
    path: &Path,
    format: Option<InputFormat>,
) -> Result<Box<dyn EventSource + Send>, TraceError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| TraceError::Io {
        place: Place::Byte(0),
        source: std::io::Error::new(e.kind(), format!("{shown}: {e}")),
    })?;
    reader_for(
        std::io::BufReader::new(file),
        format,
        Some(&shown),
        &ReadOptions::default(),
    )
}

/// The reader of `input` in `format`, or in the format [`detect`] finds in its first 64 KiB
/// when `format` is `None` (those bytes are read ahead, then replayed to the reader).
///
/// # Errors
/// As [`open`]'s, the input being called `input`.
pub fn from_reader<R: BufRead + Send + 'static>(
    input: R,
    format: Option<InputFormat>,
) -> Result<Box<dyn EventSource + Send>, TraceError> {
    reader_for(input, format, None, &ReadOptions::default())
}

/// [`from_reader`] with [`ReadOptions`].
///
/// # Errors
/// As [`from_reader`]'s.
pub fn from_reader_with<R: BufRead + Send + 'static>(
    input: R,
    format: Option<InputFormat>,
    options: &ReadOptions,
) -> Result<Box<dyn EventSource + Send>, TraceError> {
    reader_for(input, format, None, options)
}

fn reader_for<R: BufRead + Send + 'static>(
    mut input: R,
    format: Option<InputFormat>,
    name: Option<&str>,
    options: &ReadOptions,
) -> Result<Box<dyn EventSource + Send>, TraceError> {
    let named = |what: &dyn std::fmt::Display| match name {
        Some(n) => format!("{n}: {what}"),
        None => what.to_string(),
    };
    if let Some(f) = format {
        return make(input, f, options);
    }
    let mut head = Vec::new();
    (&mut input)
        .take(DETECT_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| TraceError::Io {
            place: Place::Byte(0),
            source: std::io::Error::new(e.kind(), named(&e)),
        })?;
    let Some(f) = detect(&head) else {
        let first = String::from_utf8_lossy(&head);
        let first = first.lines().next().unwrap_or("");
        let message = match ftrace::tracer(first) {
            // ftrace's output of a tracer that records no function calls (`nop`, `wakeup`)
            Some(t) => format!(
                "ftrace's `{t}` tracer records no function calls: record with the `function` \
                 or `function_graph` tracer"
            ),
            None => format!(
                "cannot tell the trace format{}; name one of: {}",
                if head.is_empty() {
                    " of an empty input"
                } else {
                    ""
                },
                format_names()
            ),
        };
        return Err(TraceError::Parse {
            place: Place::Line(1),
            message: named(&message),
            text: shorten(first).into_owned(),
        });
    };
    make(Cursor::new(head).chain(input), f, options)
}

fn make<R: BufRead + Send + 'static>(
    input: R,
    format: InputFormat,
    options: &ReadOptions,
) -> Result<Box<dyn EventSource + Send>, TraceError> {
    (format.format().open)(Box::new(input), options)
}

// ---------------------------------------------------------------------------------------
// The machinery the importers share.

/// At most this many domains (domain 256's code would not fit 32 bits).
pub const MAX_DOMAINS: usize = 255;
/// At most this many functions a domain.
pub const MAX_FUNCTIONS: usize = (1 << 22) - 4;
/// At most this many replay CPUs.
pub const MAX_CPUS: usize = 64;

/// The synthetic entry address of function `k` (0-based, first-seen order) of domain `d`.
#[must_use]
pub const fn function_addr(d: DomainNo, k: u32) -> u64 {
    ((d as u64) << 24) + 16 + 4 * (k as u64)
}

/// The events an importer has produced and not yet handed out, and the numbering of
/// domains, functions and CPUs they use.
#[derive(Debug, Default)]
struct Out {
    queue: VecDeque<Event>,
    domains: HashMap<String, DomainNo>,
    /// Each domain's name (index `d - 1`).
    names: Vec<String>,
    /// Each domain's functions (index `d - 1`): name to address.
    functions: Vec<HashMap<String, u64>>,
    cpus: HashMap<u64, u32>,
    cpu: u32,
}

impl Out {
    fn push(&mut self, e: Event) {
        self.queue.push_back(e);
    }

    /// The number of domain `name`, declaring it when first seen.
    fn domain(&mut self, name: &str) -> Result<DomainNo, String> {
        if let Some(&d) = self.domains.get(name) {
            return Ok(d);
        }
        if self.functions.len() >= MAX_DOMAINS {
            return Err(format!(
                "too many domains (at most {MAX_DOMAINS}): `{name}`"
            ));
        }
        self.functions.push(HashMap::new());
        let no = DomainNo::try_from(self.functions.len()).map_err(|_| "too many domains")?;
        self.domains.insert(name.to_string(), no);
        self.names.push(name.to_string());
        self.push(Event::Domain {
            no,
            name: name.to_string(),
        });
        Ok(no)
    }

    /// The name of domain `d`, if declared.
    fn domain_name(&self, d: DomainNo) -> Option<&str> {
        let i = usize::try_from(d).ok()?.checked_sub(1)?;
        self.names.get(i).map(String::as_str)
    }

    /// The address of function `name` of domain `d`, declaring it when first seen.
    fn function(&mut self, d: DomainNo, name: &str) -> Result<u64, String> {
        let table = usize::try_from(d)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.functions.get_mut(i))
            .ok_or_else(|| format!("domain {d} is undeclared"))?;
        if let Some(&a) = table.get(name) {
            return Ok(a);
        }
        if table.len() >= MAX_FUNCTIONS {
            return Err(format!(
                "too many functions in domain {d} (at most {MAX_FUNCTIONS}): `{name}`"
            ));
        }
        let k = u32::try_from(table.len()).map_err(|_| "too many functions")?;
        let addr = function_addr(d, k);
        table.insert(name.to_string(), addr);
        self.push(Event::Function {
            addr,
            domain: d,
            name: name.to_string(),
        });
        Ok(addr)
    }

    /// Makes the following events run on the replay CPU of thread (or CPU) `key`, numbering
    /// it when first seen, with a [`Event::Cpu`] when it is not the current one.
    fn enter(&mut self, key: u64) -> Result<(), String> {
        let cpu = match self.cpus.get(&key) {
            Some(&c) => c,
            None => {
                if self.cpus.len() >= MAX_CPUS {
                    return Err(format!("more than {MAX_CPUS} threads or CPUs (at `{key}`)"));
                }
                let c = u32::try_from(self.cpus.len()).map_err(|_| "too many CPUs")?;
                self.cpus.insert(key, c);
                c
            }
        };
        if cpu != self.cpu {
            self.cpu = cpu;
            self.push(Event::Cpu { cpu });
        }
        Ok(())
    }
}

/// What an importer does with each line of its input.
trait LineParser {
    /// Turns one line (not blank, not a `#` comment) into events; an error message if it
    /// does not parse.
    fn line(&mut self, line: &str, out: &mut Out) -> Result<(), String>;

    /// Events before the first line's.
    fn start(&mut self, _out: &mut Out) {}

    /// Events at the end of the input; an error message if the input ended where it must
    /// not.
    fn finish(&mut self, _out: &mut Out) -> Result<(), String> {
        Ok(())
    }
}

/// The streaming driver every importer wraps: reads lines, hands them to its parser, and
/// hands out the events one at a time.
#[derive(Debug)]
struct Driver<R, P> {
    lines: Lines<R>,
    parser: P,
    out: Out,
    width: TraceWidth,
    failed: bool,
    finished: bool,
}

impl<R: BufRead, P: LineParser> Driver<R, P> {
    /// A driver of `input`.
    fn new(input: R, mut parser: P, width: TraceWidth) -> Self {
        let mut out = Out::default();
        parser.start(&mut out);
        Driver {
            lines: Lines::new(input),
            parser,
            out,
            width,
            failed: false,
            finished: false,
        }
    }

    fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        loop {
            if let Some(e) = self.out.queue.pop_front() {
                return Ok(Some(e));
            }
            if self.failed || self.finished {
                return Ok(None);
            }
            match self.lines.next_line() {
                Ok(true) => {}
                Ok(false) => {
                    self.finished = true;
                    if let Err(message) = self.parser.finish(&mut self.out) {
                        self.failed = true;
                        self.out.queue.clear();
                        return Err(TraceError::Parse {
                            place: Place::Line(self.lines.line_no),
                            message,
                            text: String::new(),
                        });
                    }
                    continue;
                }
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
            let line = self.lines.text();
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if let Err(message) = self.parser.line(&line, &mut self.out) {
                self.failed = true;
                self.out.queue.clear();
                return Err(TraceError::Parse {
                    place: Place::Line(self.lines.line_no),
                    message,
                    text: shorten(&line).into_owned(),
                });
            }
        }
    }
}

/// Implements [`EventSource`] (and a constructor) for an importer wrapping a [`Driver`].
macro_rules! importer {
    ($name:ident, $parser:ty, $width:expr) => {
        impl<R: std::io::BufRead> $name<R> {
            /// A reader of `input`. Nothing is read until the first event is asked for.
            pub fn new(input: R) -> Self {
                $name($crate::import::Driver::new(
                    input,
                    <$parser>::default(),
                    $width,
                ))
            }
        }

        impl<R: std::io::BufRead> $crate::trace::EventSource for $name<R> {
            fn width(&self) -> $crate::trace::TraceWidth {
                self.0.width
            }

            fn next_event(
                &mut self,
            ) -> Result<Option<$crate::trace::Event>, $crate::trace::TraceError> {
                self.0.next_event()
            }

            fn position(&self) -> u64 {
                self.0.lines.pos
            }
        }
    };
}
use importer;

// ---------------------------------------------------------------------------------------
// Small parsing helpers.

/// Whether `s` is a non-empty run of ASCII digits.
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is a number with an optional fraction (`123`, `15.904541`).
fn is_decimal(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    all_digits(int) && parts.next().is_none_or(all_digits)
}

/// Splits off a trailing `/* comment */` (returns the text before it, trimmed).
fn strip_trailing_comment(s: &str) -> &str {
    let s = s.trim();
    if s.ends_with("*/")
        && let Some(i) = s.find("/*")
    {
        return s[..i].trim_end();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in InputFormat::ALL {
            assert_eq!(f.to_string().parse::<InputFormat>(), Ok(f));
        }
        let e = "ftrace_graph".parse::<InputFormat>().unwrap_err();
        assert!(e.to_string().contains("ftrace-graph"), "{e}");
    }

    #[test]
    fn addresses_follow_the_layout() {
        assert_eq!(function_addr(1, 0), 0x0100_0010);
        assert_eq!(function_addr(2, 3), 0x0200_001c);
        assert_eq!(function_addr(255, (MAX_FUNCTIONS - 1) as u32), 0xffff_fffc);
    }

    #[test]
    fn out_limits_domains_cpus_and_functions() {
        let mut o = Out::default();
        for i in 0..MAX_DOMAINS {
            assert_eq!(o.domain(&format!("d{i}")), Ok(i as u32 + 1));
        }
        assert!(
            o.domain("one more")
                .unwrap_err()
                .contains("too many domains")
        );
        assert_eq!(o.domain("d0"), Ok(1));
        for k in 0..MAX_CPUS as u64 {
            o.enter(1000 + k).unwrap();
        }
        assert!(o.enter(5).is_err());
        assert_eq!(o.function(2, "f"), Ok(function_addr(2, 0)));
        assert_eq!(o.function(2, "f"), Ok(function_addr(2, 0)));
        assert_eq!(o.function(2, "g"), Ok(function_addr(2, 1)));
        assert!(o.function(0, "g").is_err());
        assert!(o.function(256, "g").is_err());
    }

    #[test]
    fn long_lines_are_errors() {
        let mut s = vec![b'x'; crate::trace::lines::MAX_LINE + 10];
        s.push(b'\n');
        let mut l = Lines::new(&s[..]);
        assert!(l.next_line().is_err());
        let mut l = Lines::new(&b"a\r\nb"[..]);
        assert!(l.next_line().unwrap());
        assert_eq!(l.text(), "a");
        assert!(l.next_line().unwrap());
        assert_eq!(l.text(), "b");
        assert!(!l.next_line().unwrap());
        assert_eq!(l.pos, 4);
    }

    #[test]
    fn helpers() {
        assert!(
            is_decimal("15.904541") && is_decimal("17") && !is_decimal("1.") && !is_decimal("")
        );
        assert_eq!(strip_trailing_comment("} /* foo */"), "}");
        assert_eq!(strip_trailing_comment("f(); /* = 0 */"), "f();");
        assert_eq!(strip_trailing_comment("f() {"), "f() {");
    }
}
