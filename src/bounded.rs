//! Reading a whole file with a bound: a device such as `/dev/zero`, a
//! FIFO fed without end, or a file far larger than its kind ever is,
//! costs a bounded read and an error instead of all the machine's memory.

use std::path::Path;

/// A file's bytes, refused past `limit` before more is read.
pub fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    read_stream_at_most(std::fs::File::open(path)?, limit)
}

/// [`read_at_most`] for any reader (standard input).
pub fn read_stream_at_most(reader: impl std::io::Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut reader.take(limit.saturating_add(1)), &mut bytes)?;
    if bytes.len() as u64 > limit {
        let message = format!("larger than {limit} bytes, more than a file of its kind holds");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
    }
    Ok(bytes)
}

/// [`read_at_most`] as UTF-8 text.
pub fn read_text_at_most(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_at_most(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}
