//! Direct I/O (`O_DIRECT`): what the filesystem backend's pack writes and the restore's
//! file writes share.
//!
//! A direct write skips the page cache: the kernel does not copy every byte into cache
//! pages (the largest cost of a restore onto ext4), and a backup does not fill the cache
//! with packs (on a Kubernetes node that cache is charged to the mover's memory limit, and
//! it evicts the applications' own pages). The kernel accepts a direct write only when the
//! buffer address, the file offset and the length are multiples of the logical block
//! size; [`ALIGN`] is a multiple of every common one.
//!
//! Whether to try direct I/O at all is the caller's option (`FilesystemOptions::direct_io`,
//! `RestoreOptions::direct_io`); the engine reads no environment. A filesystem that refuses
//! it (`EINVAL`: tmpfs, some FUSE mounts, or an alignment it does not accept) turns it off
//! for the rest of the run through a `Switch`, and the refused write is repeated
//! buffered.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Address, offset and length alignment of direct writes.
pub const ALIGN: usize = 4096;

/// The `custom_flags` of an `open` with or without direct I/O.
pub(crate) fn open_flags(direct: bool) -> i32 {
    if direct { libc::O_DIRECT } else { 0 }
}

/// Whether an I/O error is a refusal of direct I/O (`EINVAL`: by the filesystem, or for
/// the alignment), after which the write is repeated buffered.
pub(crate) fn is_refusal(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// Whether `dir` is on a local block filesystem (ext2/3/4, XFS, btrfs), where direct
/// writes pay off. Not on NFS (a direct write is a synchronous round trip) or tmpfs (a
/// page-cache copy all the same).
pub(crate) fn local_block_filesystem(dir: &Path) -> bool {
    use nix::sys::statfs::{BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, statfs};
    // EXT4_SUPER_MAGIC is also ext2's and ext3's.
    statfs(dir).is_ok_and(|s| {
        [EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC].contains(&s.filesystem_type())
    })
}

/// Turns `O_DIRECT` off on an open file.
pub(crate) fn clear_direct(f: &File) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_DIRECT))?;
    Ok(())
}

/// Whether direct I/O is (still) on: starts at the caller's option, is shared by clones,
/// and goes off for every user at the first refusal.
#[derive(Debug, Clone)]
pub(crate) struct Switch(Arc<AtomicBool>);

impl Switch {
    pub(crate) fn new(on: bool) -> Self {
        Switch(Arc::new(AtomicBool::new(on)))
    }

    pub(crate) fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    /// Direct I/O was refused (`e`): buffered writes from now on.
    pub(crate) fn refused(&self, e: &std::io::Error) {
        if self.0.swap(false, Ordering::Relaxed) {
            tracing::debug!("direct I/O refused ({e}); using buffered writes");
        }
    }
}

/// `len` zero bytes whose first byte sits on an [`ALIGN`] address.
pub(crate) struct AlignedBuf {
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeroed(len: usize) -> Self {
        let buf = vec![0u8; len + ALIGN];
        // `align_offset` may in theory give up (usize::MAX); the buffer is then unaligned
        // and the kernel refuses the direct write, which falls back to a buffered one.
        let at = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { buf, at, len }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        let (at, len) = (self.at, self.len);
        &mut self.buf[at..at + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_are_aligned_and_zeroed() {
        for len in [1, ALIGN, 3 * ALIGN + 5] {
            let mut b = AlignedBuf::zeroed(len);
            let s = b.as_mut_slice();
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr().align_offset(ALIGN), 0);
            assert!(s.iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn switch_is_shared_and_a_refusal_turns_it_off() {
        let s = Switch::new(true);
        let c = s.clone();
        assert!(c.is_on());
        s.refused(&std::io::Error::from_raw_os_error(libc::EINVAL));
        assert!(!c.is_on());
        c.set(true);
        assert!(s.is_on());
        assert!(!Switch::new(false).is_on());
        assert!(is_refusal(&std::io::Error::from_raw_os_error(libc::EINVAL)));
        assert!(!is_refusal(&std::io::Error::from_raw_os_error(
            libc::ENOSPC
        )));
    }
}
