//! The upload body: a file or a buffer sent in fixed-size chunks with an exact
//! length, so that hyper writes `Content-Length` (presigned PUTs refuse chunked
//! encoding) and memory stays at one chunk whatever the size.
//!
//! The body also feeds the running SHA-256 and the progress channel, and keeps
//! a local read error aside so the caller can tell it from a network error.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use crate::hash::Hasher;
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::transfer::ProgressSink;

/// The size of one chunk read from disk and handed to the connection.
pub(crate) const CHUNK: usize = 1024 * 1024;

/// What an upload body reports back once the request is over.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// A local read error, which ended the body early.
    pub(crate) io_error: Option<io::Error>,
    /// The digest of everything sent, when the body reached its end.
    pub(crate) sha256: Option<[u8; 32]>,
    /// Bytes handed to the connection so far (the upload's stall deadline).
    pub(crate) sent: u64,
}

pub(crate) enum Source {
    /// A file read in place (the local store's GET answers).
    #[cfg_attr(
        not(feature = "local"),
        expect(dead_code, reason = "client uploads read ahead with `Chunks`")
    )]
    File(tokio::fs::File),
    Bytes(Bytes),
    /// Chunks read ahead by a blocking thread (see [`read_ahead`]).
    Chunks(mpsc::Receiver<io::Result<Bytes>>),
}

/// Chunks read ahead of the connection.
const READ_AHEAD: usize = 2;

/// Reads `len` bytes of `file` on a blocking thread, [`READ_AHEAD`] chunks ahead
/// of the connection, so that reading the disk and writing the socket overlap
/// (a `tokio::fs::File` read waits for the previous write to the socket). The
/// thread stops when the receiver is dropped. Fewer bytes than `len` end the
/// stream early, which the body reports.
pub(crate) fn read_ahead(file: std::fs::File, len: u64) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = file;
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(CHUNK);
            let mut buf = BytesMut::zeroed(want);
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            left -= filled as u64;
            if tx.blocking_send(Ok(buf.freeze())).is_err() {
                return;
            }
        }
    });
    rx
}

pub(crate) struct UploadBody {
    source: Source,
    remaining: u64,
    sent: u64,
    total: u64,
    hasher: Option<Hasher>,
    progress: ProgressSink,
    outcome: Arc<Mutex<Outcome>>,
    buf: Option<BytesMut>,
}

impl UploadBody {
    pub(crate) fn new(
        source: Source,
        len: u64,
        sha256: bool,
        progress: ProgressSink,
    ) -> (Self, Arc<Mutex<Outcome>>) {
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        progress.set(0, Some(len));
        let body = Self {
            source,
            remaining: len,
            sent: 0,
            total: len,
            hasher: sha256.then(Hasher::new),
            progress,
            outcome: outcome.clone(),
            buf: None,
        };
        (body, outcome)
    }

    fn finish_chunk(&mut self, chunk: &Bytes) {
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        self.sent += chunk.len() as u64;
        self.remaining -= chunk.len() as u64;
        self.progress.set(self.sent, Some(self.total));
        let digest = if self.remaining == 0 {
            self.hasher.take().map(Hasher::finish)
        } else {
            None
        };
        if let Ok(mut outcome) = self.outcome.lock() {
            outcome.sent = self.sent;
            if digest.is_some() {
                outcome.sha256 = digest;
            }
        }
    }

    fn fail(&mut self, err: io::Error) -> io::Error {
        let shown = io::Error::new(err.kind(), "reading the upload source failed");
        if let Ok(mut outcome) = self.outcome.lock() {
            outcome.io_error = Some(err);
        }
        shown
    }
}

impl http_body::Body for UploadBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(CHUNK);
        let chunk = match &mut this.source {
            Source::Bytes(bytes) => bytes.split_to(want.min(bytes.len())),
            Source::File(file) => {
                let buf = this.buf.get_or_insert_with(|| BytesMut::zeroed(want));
                let mut read_buf = ReadBuf::new(&mut buf[..]);
                if let Err(e) = ready!(Pin::new(file).poll_read(cx, &mut read_buf)) {
                    return Poll::Ready(Some(Err(this.fail(e))));
                }
                let filled = read_buf.filled().len();
                let mut buf = this.buf.take().unwrap_or_default();
                buf.truncate(filled);
                buf.freeze()
            }
            Source::Chunks(rx) => match ready!(rx.poll_recv(cx)) {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Poll::Ready(Some(Err(this.fail(e)))),
                None => Bytes::new(),
            },
        };
        if chunk.is_empty() {
            let err = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the source ended {} bytes early", this.remaining),
            );
            return Poll::Ready(Some(Err(this.fail(err))));
        }
        this.finish_chunk(&chunk);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
