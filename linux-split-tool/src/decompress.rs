//! Module files as distributions ship them: plain ELF (`.ko`), xz (`.ko.xz`) or zstd
//! (`.ko.zst`), told apart by their first bytes, not their names. Decompression is pure Rust
//! (`lzma-rust2` without its unsafe optimizations, `ruzstd`) and bounded, so a corrupt or
//! hostile file gives an error, never a panic or an unbounded allocation.

use std::borrow::Cow;
use std::io::Read;

use crate::module::ModuleError;

/// How a module file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// xz (magic `FD 37 7A 58 5A 00`).
    Xz,
    /// zstd (magic `28 B5 2F FD`).
    Zstd,
}

/// The most bytes a module may decompress to (the largest distribution modules are tens of
/// MiB).
pub const MAX_MODULE_BYTES: u64 = 512 << 20;

/// The compression `bytes` starts with ([`Compression::None`] for anything unrecognised,
/// which the ELF reader then judges).
#[must_use]
pub fn detect(bytes: &[u8]) -> Compression {
    if bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The module's ELF bytes: `bytes` itself, or its decompression.
///
/// # Errors
/// [`ModuleError`] naming `file` for a corrupt or truncated stream, or one that decompresses
/// to more than `limit` bytes.
pub fn decompress<'a>(
    file: &str,
    bytes: &'a [u8],
    limit: u64,
) -> Result<Cow<'a, [u8]>, ModuleError> {
    let err = |what: String| ModuleError {
        file: file.to_string(),
        what,
    };
    let mut out = Vec::new();
    let read = match detect(bytes) {
        Compression::None => return Ok(Cow::Borrowed(bytes)),
        Compression::Xz => lzma_rust2::XzReader::new(bytes, true)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| err(format!("corrupt xz stream: {e}"))),
        Compression::Zstd => {
            let dec = ruzstd::decoding::StreamingDecoder::new(bytes)
                .map_err(|e| err(format!("corrupt zstd stream: {e}")))?;
            dec.take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| err(format!("corrupt zstd stream: {e}")))
        }
    };
    read?;
    if out.len() as u64 > limit {
        return Err(err(format!("decompresses to more than {limit} bytes")));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut w = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1))
            .expect("valid options");
        w.write_all(data).expect("in memory");
        w.finish().expect("in memory")
    }

    fn zst(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn each_format_is_detected_by_magic_and_round_trips() {
        let data: Vec<u8> = b"\x7fELF module body "
            .iter()
            .copied()
            .cycle()
            .take(10_000)
            .collect();
        assert_eq!(detect(&data), Compression::None);
        assert!(matches!(
            decompress("a.ko", &data, MAX_MODULE_BYTES).unwrap(),
            Cow::Borrowed(_)
        ));
        for (c, packed) in [
            (Compression::Xz, xz(&data)),
            (Compression::Zstd, zst(&data)),
        ] {
            assert_eq!(detect(&packed), c);
            assert_eq!(
                decompress("a.ko.x", &packed, MAX_MODULE_BYTES)
                    .unwrap()
                    .as_ref(),
                &data[..]
            );
        }
    }

    #[test]
    fn corrupt_truncated_and_oversized_streams_are_errors_naming_the_file() {
        let data = vec![7u8; 50_000];
        for packed in [xz(&data), zst(&data)] {
            let cut = &packed[..packed.len() / 2];
            let e = decompress("m.ko.xz", cut, MAX_MODULE_BYTES).unwrap_err();
            assert_eq!(e.file, "m.ko.xz");
            let e = decompress("big.ko.zst", &packed, 1000).unwrap_err();
            assert!(e.what.contains("more than 1000"), "{e}");
            // Flipped bytes never panic.
            for i in (0..packed.len()).step_by(3) {
                let mut b = packed.clone();
                b[i] ^= 0x55;
                let _ = decompress("flipped", &b, MAX_MODULE_BYTES);
            }
        }
    }
}
