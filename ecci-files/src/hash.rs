//! SHA-256 off the IO path: a thread hashes the chunks a transfer hands it, so
//! that hashing overlaps with the network instead of taking turns with it.
//!
//! Chunks are `Bytes`, so handing one over is a reference count, and the
//! channel is bounded: memory stays at a few chunks whatever the size.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Chunks waiting for the hashing thread.
const QUEUE: usize = 4;

/// A running SHA-256, on its own thread when one can be started.
pub(crate) enum Hasher {
    Thread {
        tx: SyncSender<Bytes>,
        thread: JoinHandle<[u8; 32]>,
    },
    Inline(Sha256),
}

impl Hasher {
    pub(crate) fn new() -> Self {
        let (tx, rx) = sync_channel::<Bytes>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("ecci-sha256".to_owned())
            .spawn(move || {
                let mut h = Sha256::new();
                for chunk in rx {
                    h.update(&chunk);
                }
                h.finalize().into()
            });
        match spawned {
            Ok(thread) => Hasher::Thread { tx, thread },
            Err(_) => Hasher::Inline(Sha256::new()),
        }
    }

    /// Adds `chunk`. Blocks the calling thread only while the hashing thread is
    /// [`QUEUE`] chunks behind, which it is only when hashing is slower than the
    /// network and the disk.
    pub(crate) fn update(&mut self, chunk: &Bytes) {
        match self {
            Hasher::Thread { tx, .. } => {
                if tx.send(chunk.clone()).is_err() {
                    // The thread is gone, with the bytes so far (it cannot
                    // fail; still): a digest of the rest alone would be
                    // wrong, so the digest is made one that matches nothing
                    // sent, and a receiver refuses the bytes rather than
                    // accepting them unchecked.
                    *self = Hasher::Inline(Sha256::new_with_prefix(b"\x00lost"));
                }
            }
            Hasher::Inline(h) => h.update(chunk),
        }
    }

    /// The digest of everything added.
    pub(crate) fn finish(self) -> [u8; 32] {
        match self {
            Hasher::Thread { tx, thread } => {
                drop(tx);
                match thread.join() {
                    Ok(digest) => digest,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Hasher::Inline(h) => h.finalize().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_digest_as_inline() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut h = Hasher::new();
        for chunk in data.chunks(999) {
            h.update(&Bytes::copy_from_slice(chunk));
        }
        let expected: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(h.finish(), expected);
        assert_eq!(
            Hasher::new().finish(),
            <[u8; 32]>::from(Sha256::digest(b""))
        );
    }
}
