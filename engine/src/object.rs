//! Writing objects: split a byte stream into contents exactly as kopia does, then describe
//! multi-chunk objects with an indirect chunk list (FORMAT.md §10.2).
//!
//! * Each chunk becomes one content with the writer's prefix and compressor.
//! * No empty trailing chunk, but an empty stream is one empty content.
//! * One chunk → the object ID is the chunk's content ID. Several → the chunk list JSON is
//!   written as an object with the same prefix (`x` when the prefix is empty), split with the
//!   repository's default splitter and the metadata compressor; its ID gets one more `I`.
//! * Files larger than 2 GiB are written in 2 GiB parts (each its own object, splitter state
//!   restarting per part) and concatenated: the parts' chunk lists are flattened into one new
//!   `x` list, as kopia's parallel upload does.
//!
//! All of this runs on the calling (rayon/blocking) thread.

use std::io::Read;

use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::ids::ObjectId;
use arkiv_format::indirect::{IndirectEntry, IndirectObject};
use arkiv_format::splitter::{Splitter, SplitterKind};

use crate::content::writer::ContentWriter;
use crate::{Error, Result};

/// Files above this size are uploaded in parts of this size (kopia's
/// `ParallelUploadAboveSize` default, 2 GiB).
pub const PARALLEL_UPLOAD_ABOVE_SIZE: u64 = 2 << 30;
const READ_BUFFER: usize = 1 << 20;

/// How to write one object.
#[derive(Debug, Clone, Copy)]
pub struct ObjectWriteOptions {
    /// Content prefix (`None` for file data and symlink targets, `Some(b'k')` for listings).
    pub prefix: Option<u8>,
    /// Compression of the data chunks.
    pub compression: Option<CompressionAlgorithm>,
    /// Compression of chunk lists.
    pub metadata_compression: Option<CompressionAlgorithm>,
    /// Splitter of the data chunks.
    pub splitter: SplitterKind,
    /// The repository's default splitter (used for chunk lists).
    pub default_splitter: SplitterKind,
}

/// Streams `reader` into an object; returns its ID and length.
pub fn write_object(
    cw: &ContentWriter,
    reader: &mut dyn Read,
    opts: &ObjectWriteOptions,
) -> Result<(ObjectId, u64)> {
    let (entries, total) = write_chunks(cw, reader, opts)?;
    Ok((finish_object(cw, entries, opts)?, total))
}

/// Cuts a byte stream into chunk contents as it is pushed.
struct ChunkSink<'a> {
    cw: &'a ContentWriter,
    opts: &'a ObjectWriteOptions,
    splitter: Splitter,
    entries: Vec<IndirectEntry>,
    /// Bytes of the current chunk seen in earlier pushes.
    chunk: Vec<u8>,
    chunk_start: u64,
}

impl<'a> ChunkSink<'a> {
    fn new(cw: &'a ContentWriter, opts: &'a ObjectWriteOptions) -> Self {
        ChunkSink {
            cw,
            opts,
            splitter: Splitter::new(opts.splitter),
            entries: Vec::new(),
            chunk: Vec::new(),
            chunk_start: 0,
        }
    }

    fn emit(&mut self, data: &[u8]) -> Result<()> {
        let id = self
            .cw
            .write_content(data, self.opts.prefix, self.opts.compression)?;
        self.entries.push(IndirectEntry {
            start: self.chunk_start,
            length: data.len() as u64,
            object: ObjectId::direct(id),
        });
        self.chunk_start += data.len() as u64;
        Ok(())
    }

    fn push(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match self.splitter.find_boundary(data) {
                Some(k) => {
                    let (head, tail) = data.split_at(k.min(data.len()));
                    if self.chunk.is_empty() {
                        // The whole chunk is in this push: no copy.
                        self.emit(head)?;
                    } else {
                        let mut chunk = std::mem::take(&mut self.chunk);
                        chunk.extend_from_slice(head);
                        let r = self.emit(&chunk);
                        chunk.clear();
                        self.chunk = chunk;
                        r?;
                    }
                    data = tail;
                }
                None => {
                    self.chunk.extend_from_slice(data);
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// Writes the last chunk (an empty stream is one empty content).
    fn finish(mut self) -> Result<Vec<IndirectEntry>> {
        if !self.chunk.is_empty() || self.entries.is_empty() {
            let chunk = std::mem::take(&mut self.chunk);
            self.emit(&chunk)?;
        }
        Ok(self.entries)
    }
}

thread_local! {
    /// Each worker's read buffer, reused across files (allocating and zeroing 1 MiB per
    /// file showed up in profiles of many-small-file trees).
    static READ_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Splits `reader` into chunk contents; returns the chunk list and the length.
fn write_chunks(
    cw: &ContentWriter,
    reader: &mut dyn Read,
    opts: &ObjectWriteOptions,
) -> Result<(Vec<IndirectEntry>, u64)> {
    let mut buf = READ_BUF.with(std::cell::Cell::take);
    if buf.len() < READ_BUFFER {
        buf = vec![0u8; READ_BUFFER];
    }
    let result = write_chunks_with(cw, reader, opts, &mut buf);
    READ_BUF.with(|c| c.set(buf));
    result
}

fn write_chunks_with(
    cw: &ContentWriter,
    reader: &mut dyn Read,
    opts: &ObjectWriteOptions,
    buf: &mut [u8],
) -> Result<(Vec<IndirectEntry>, u64)> {
    let mut sink = ChunkSink::new(cw, opts);
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("(object source)", e)),
        };
        total += n as u64;
        sink.push(buf.get(..n).unwrap_or(&[]))?;
    }
    Ok((sink.finish()?, total))
}

/// Writes an in-memory byte string as an object.
pub fn write_object_bytes(
    cw: &ContentWriter,
    data: &[u8],
    opts: &ObjectWriteOptions,
) -> Result<ObjectId> {
    let mut sink = ChunkSink::new(cw, opts);
    sink.push(data)?;
    let entries = sink.finish()?;
    finish_object(cw, entries, opts)
}

/// Turns a chunk list into an object ID (direct for one chunk, else an indirect list).
fn finish_object(
    cw: &ContentWriter,
    entries: Vec<IndirectEntry>,
    opts: &ObjectWriteOptions,
) -> Result<ObjectId> {
    if let [only] = entries.as_slice() {
        return Ok(only.object);
    }
    write_indirect(cw, entries, opts.prefix, opts)
}

fn write_indirect(
    cw: &ContentWriter,
    entries: Vec<IndirectEntry>,
    prefix: Option<u8>,
    opts: &ObjectWriteOptions,
) -> Result<ObjectId> {
    let list = IndirectObject { entries }
        .encode()
        .map_err(|e| Error::format("chunk list", e))?;
    let list_opts = ObjectWriteOptions {
        prefix: Some(prefix.unwrap_or(b'x')),
        compression: opts.metadata_compression,
        metadata_compression: opts.metadata_compression,
        splitter: opts.default_splitter,
        default_splitter: opts.default_splitter,
    };
    let inner = write_object_bytes(cw, &list, &list_opts)?;
    ObjectId::indirect(inner).map_err(|e| Error::format("indirect object", e))
}

/// Writes a file of known size: directly up to 2 GiB, else in 2 GiB parts concatenated like
/// kopia. `open_at(offset)` returns a reader positioned at `offset`.
pub fn write_file_object(
    cw: &ContentWriter,
    size: u64,
    open_at: &mut dyn FnMut(u64) -> std::io::Result<Box<dyn Read>>,
    opts: &ObjectWriteOptions,
) -> Result<(ObjectId, u64)> {
    if size <= PARALLEL_UPLOAD_ABOVE_SIZE {
        let mut r = open_at(0).map_err(|e| Error::io("(file)", e))?;
        return write_object(cw, &mut r, opts);
    }
    let full_parts = size / PARALLEL_UPLOAD_ABOVE_SIZE;
    let mut parts: Vec<(Vec<IndirectEntry>, u64)> = Vec::new();
    for i in 0..=full_parts {
        let offset = i * PARALLEL_UPLOAD_ABOVE_SIZE;
        let r = open_at(offset).map_err(|e| Error::io("(file)", e))?;
        // the last part reads to EOF (the file may have grown)
        let mut r: Box<dyn Read> = if i < full_parts {
            Box::new(r.take(PARALLEL_UPLOAD_ABOVE_SIZE))
        } else {
            r
        };
        let (part_entries, len) = write_chunks(cw, &mut r, opts)?;
        // kopia writes each part as an object of its own (its chunk list included)
        let part_oid = finish_object(cw, part_entries.clone(), opts)?;
        if part_entries.len() > 1 {
            parts.push((part_entries, len));
        } else {
            parts.push((
                vec![IndirectEntry {
                    start: 0,
                    length: len,
                    object: part_oid,
                }],
                len,
            ));
        }
    }
    // Concatenate: flatten the parts' chunk lists with shifted offsets.
    let mut entries = Vec::new();
    let mut start = 0u64;
    for (part_entries, len) in parts {
        for e in part_entries {
            entries.push(IndirectEntry {
                start: e.start + start,
                ..e
            });
        }
        start += len;
    }
    let oid = write_indirect(cw, entries, Some(b'x'), opts)?;
    Ok((oid, start))
}
