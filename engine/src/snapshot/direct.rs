//! The data of a restored file: written through the page cache, or with `O_DIRECT`.
//!
//! Large files restored onto a local block filesystem (ext4, XFS, btrfs) are written with
//! `O_DIRECT` from an aligned staging buffer: the kernel's copy of every byte into freshly
//! allocated page-cache pages was the largest cost of a restore onto ext4 (31 % of a
//! profile), and the bytes would only be flushed later anyway. Small files, other
//! filesystems (NFS, where a direct write is a synchronous round trip; tmpfs, where it
//! is a page-cache copy all the same; FUSE) and `RestoreOptions::direct_io` off keep
//! buffered writes. A filesystem that refuses direct I/O (`EINVAL` on open or write) turns
//! it off for the rest of the restore; the refused write is repeated buffered. The pieces
//! shared with the filesystem backend live in [`crate::direct_io`].
//!
//! Either way, whole chunks of zeros become holes, as before: the file stays sparse.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::direct_io::{
    ALIGN, AlignedBuf, Switch, clear_direct, is_refusal, local_block_filesystem,
};

/// Files at least this long are written with direct I/O (when the target allows it).
pub(super) const DIRECT_MIN: u64 = 1 << 20;

/// Bytes staged per direct write (a multiple of [`ALIGN`]).
const STAGE: usize = 1 << 20;

/// Whether a restore writes large files with `O_DIRECT`: decided once for the target,
/// turned off by the first refusal (for every clone).
#[derive(Debug, Clone)]
pub(super) struct DirectPolicy(Switch);

impl DirectPolicy {
    /// On when `wanted` and `dir` is on a local block filesystem.
    pub(super) fn for_target(dir: &Path, wanted: bool) -> Self {
        DirectPolicy::new(wanted && local_block_filesystem(dir))
    }

    pub(super) fn new(on: bool) -> Self {
        DirectPolicy(Switch::new(on))
    }

    /// Whether a file of `size` bytes should be written with direct I/O.
    pub(super) fn wants(&self, size: u64) -> bool {
        size >= DIRECT_MIN && self.0.is_on()
    }

    pub(super) fn refused(&self, e: &std::io::Error) {
        self.0.refused(e);
    }
}

/// Bytes waiting for an aligned direct write: they belong at file offset `start`
/// (always a multiple of [`ALIGN`]) and end at the writer's position.
struct Staging {
    buf: AlignedBuf,
    start: u64,
    len: usize,
}

impl Staging {
    fn new() -> Self {
        Staging {
            buf: AlignedBuf::zeroed(STAGE),
            start: 0,
            len: 0,
        }
    }

    fn area(&mut self) -> &mut [u8] {
        self.buf.as_mut_slice()
    }
}

/// Writes a file's chunks in order: buffered, or staged for aligned direct writes.
pub(super) struct DataWriter {
    /// File length so far (written bytes and holes).
    pos: u64,
    /// End of the last bytes written (a file that ends in a hole is extended at the end).
    written_end: u64,
    /// Present while the file is written with `O_DIRECT`.
    staging: Option<Staging>,
    policy: Option<DirectPolicy>,
    #[cfg(test)]
    refuse_next_direct_write: bool,
}

impl DataWriter {
    /// A writer for a file opened without `O_DIRECT`.
    pub(super) fn buffered() -> Self {
        DataWriter {
            pos: 0,
            written_end: 0,
            staging: None,
            policy: None,
            #[cfg(test)]
            refuse_next_direct_write: false,
        }
    }

    /// A writer for a file opened with `O_DIRECT`; a refusal is reported to `policy`.
    pub(super) fn direct(policy: DirectPolicy) -> Self {
        DataWriter {
            staging: Some(Staging::new()),
            policy: Some(policy),
            ..DataWriter::buffered()
        }
    }

    /// Appends the next chunk; a chunk of zeros becomes a hole.
    pub(super) fn write(&mut self, f: &File, data: &[u8]) -> std::io::Result<()> {
        let zeros = data.iter().all(|&b| b == 0);
        if self.staging.is_none() {
            if !zeros {
                f.write_all_at(data, self.pos)?;
                self.written_end = self.pos + data.len() as u64;
            }
            self.pos += data.len() as u64;
            return Ok(());
        }
        if zeros {
            return self.skip_zeros(f, data.len() as u64);
        }
        let mut rest = data;
        while !rest.is_empty() {
            rest = self.stage(rest);
            if self.staged() == STAGE {
                self.flush(f, STAGE)?;
            }
        }
        Ok(())
    }

    /// Writes what is staged and sets the final length; the file is then complete.
    pub(super) fn finish(&mut self, f: &File) -> std::io::Result<()> {
        let staged = self.staged();
        if staged > 0 {
            // The last block is padded with zeros; the length is set below.
            let padded = staged.next_multiple_of(ALIGN);
            if let Some(s) = &mut self.staging {
                s.area()[staged..padded].fill(0);
            }
            self.flush(f, padded)?;
        }
        if self.written_end != self.pos {
            f.set_len(self.pos)?;
        }
        Ok(())
    }

    fn staged(&self) -> usize {
        self.staging.as_ref().map_or(0, |s| s.len)
    }

    /// Copies as much of `data` as fits into the staging area; returns the rest.
    fn stage<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let Some(s) = &mut self.staging else {
            return data;
        };
        let n = (STAGE - s.len).min(data.len());
        let (now, rest) = data.split_at(n);
        let from = s.len;
        s.area()[from..from + n].copy_from_slice(now);
        s.len += n;
        self.pos += n as u64;
        rest
    }

    /// A run of `len` zero bytes: the part up to the next aligned offset is staged (zeros
    /// are data there), whole blocks after it are skipped, the unaligned end is staged.
    fn skip_zeros(&mut self, f: &File, len: u64) -> std::io::Result<()> {
        let to_boundary = (ALIGN as u64 - self.pos % ALIGN as u64) % ALIGN as u64;
        let head = to_boundary.min(len);
        self.stage_zeros(head as usize);
        let rest = len - head;
        if rest == 0 {
            return Ok(());
        }
        // Now at an aligned offset: what is staged is whole blocks.
        let staged = self.staged();
        if staged > 0 {
            self.flush(f, staged)?;
        }
        let skipped = rest - rest % ALIGN as u64;
        self.pos += skipped;
        if let Some(s) = &mut self.staging {
            s.start = self.pos;
        }
        self.stage_zeros((rest % ALIGN as u64) as usize);
        Ok(())
    }

    fn stage_zeros(&mut self, n: usize) {
        if let Some(s) = &mut self.staging {
            // n is below ALIGN, and a full area is flushed before more is staged.
            let from = s.len;
            s.area()[from..from + n].fill(0);
            s.len += n;
            self.pos += n as u64;
        }
    }

    /// Writes the first `n` staged bytes (a multiple of [`ALIGN`]) at their offset and
    /// starts a new staging area after them. A refused direct write turns direct I/O off
    /// (for this file and the rest of the restore) and is repeated buffered.
    fn flush(&mut self, f: &File, n: usize) -> std::io::Result<()> {
        #[cfg(test)]
        let refuse = std::mem::take(&mut self.refuse_next_direct_write);
        let Some(s) = &mut self.staging else {
            return Ok(());
        };
        let start = s.start;
        let bytes = &s.area()[..n];
        #[cfg(test)]
        let first = if refuse {
            Err(std::io::Error::from_raw_os_error(libc::EINVAL))
        } else {
            f.write_all_at(bytes, start)
        };
        #[cfg(not(test))]
        let first = f.write_all_at(bytes, start);
        match first {
            Ok(()) => {}
            Err(e) if is_refusal(&e) => {
                if let Some(p) = &self.policy {
                    p.refused(&e);
                }
                clear_direct(f)?;
                f.write_all_at(bytes, start)?;
            }
            Err(e) => return Err(e),
        }
        s.start = start + n as u64;
        s.len = 0;
        self.written_end = s.start;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

    /// Opens a new file, with `O_DIRECT` if `direct` and the filesystem allows it (else
    /// buffered: the writer's arithmetic is the same either way).
    fn open(path: &Path, direct: bool) -> File {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(crate::direct_io::open_flags(direct))
            .open(path)
            .or_else(|_| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
            })
            .unwrap()
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect()
    }

    /// Writes `chunks` with a direct and a buffered writer; both files must hold the
    /// chunks' concatenation.
    fn check(chunks: &[Vec<u8>]) {
        let dir = tempfile::tempdir().unwrap();
        let want: Vec<u8> = chunks.concat();
        for direct in [true, false] {
            let path = dir.path().join(format!("f-{direct}"));
            let f = open(&path, direct);
            let mut w = if direct {
                DataWriter::direct(DirectPolicy::new(true))
            } else {
                DataWriter::buffered()
            };
            for c in chunks {
                w.write(&f, c).unwrap();
            }
            w.finish(&f).unwrap();
            drop(f);
            let got = std::fs::read(&path).unwrap();
            assert_eq!(got.len(), want.len(), "direct={direct}");
            assert!(got == want, "direct={direct}: contents differ");
        }
    }

    #[test]
    fn unaligned_chunks_round_trip() {
        check(&[pattern(1, 1)]);
        check(&[pattern(ALIGN, 2)]);
        check(&[pattern(STAGE, 3), pattern(STAGE, 4)]);
        check(&[
            pattern(3_000_001, 5),
            pattern(777, 6),
            pattern(2 * STAGE + 5, 7),
        ]);
        check(&[]);
    }

    #[test]
    fn zero_chunks_in_every_position() {
        let z = |n| vec![0u8; n];
        check(&[z(5 * ALIGN + 17)]);
        check(&[z(3 * STAGE), pattern(100, 1)]);
        check(&[pattern(100, 1), z(3 * STAGE + 9), pattern(ALIGN + 3, 2)]);
        check(&[pattern(ALIGN - 1, 1), z(2), pattern(10, 2)]);
        check(&[pattern(ALIGN - 1, 1), z(1), pattern(10, 2)]);
        check(&[pattern(STAGE - 5, 1), z(STAGE), z(7)]);
        check(&[pattern(12_345, 1), z(4 * STAGE + 123)]);
    }

    #[test]
    fn zero_runs_stay_holes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let f = open(&path, true);
        let mut w = DataWriter::direct(DirectPolicy::new(true));
        let hole = 64 << 20;
        w.write(&f, &pattern(5000, 1)).unwrap();
        w.write(&f, &vec![0u8; hole]).unwrap();
        w.write(&f, &pattern(5000, 2)).unwrap();
        w.finish(&f).unwrap();
        let m = f.metadata().unwrap();
        assert_eq!(m.len(), (hole + 10_000) as u64);
        // Filesystems without holes allocate it all; every usual local one has them.
        assert!(
            m.blocks() * 512 < 1 << 20,
            "{} bytes allocated for a 64 MiB hole",
            m.blocks() * 512
        );
    }

    #[test]
    fn refused_direct_write_is_repeated_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = open(&path, true);
        let policy = DirectPolicy::new(true);
        let mut w = DataWriter::direct(policy.clone());
        w.refuse_next_direct_write = true;
        let data = pattern(3 * STAGE + 100, 9);
        w.write(&f, &data).unwrap();
        w.finish(&f).unwrap();
        assert!(!policy.wants(u64::MAX), "a refusal turns direct I/O off");
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn small_files_and_off_policy_stay_buffered() {
        let policy = DirectPolicy::new(true);
        assert!(!policy.wants(DIRECT_MIN - 1));
        assert!(policy.wants(DIRECT_MIN));
        assert!(!DirectPolicy::new(false).wants(DIRECT_MIN));
    }
}
