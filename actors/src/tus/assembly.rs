//! The chunk-assembly actor: where a tus upload's bytes are hashed and
//! written. It runs on its own threads (an actix `SyncArbiter`), so file
//! writes and SHA-256 never block the HTTP workers, and the next chunk is
//! read from the socket while this one is written.
//!
//! Each message carries what it works on there and back (the hashers, the
//! staging file or part buffer): the actor keeps no state. A piece of the
//! body goes out as two messages at once, one hashing and one writing, on
//! two threads; the next piece goes only when both are back, so an upload's
//! bytes are written and hashed in order.

use std::io::{IoSlice, Write as _};
use std::sync::Arc;

use actix::{Actor, Handler, Message, MessageResult, SyncContext};
use bytes::{Bytes, BytesMut};
use sha2::{Digest as _, Sha256};

use super::headers::BodyHasher;

/// Where one upload's bytes go, and what has seen them.
pub struct Sink {
    /// The whole upload so far. On the local store it sees every byte as it
    /// is written; on S3 it sees a part's bytes when the part is cut, so its
    /// state always matches the parts stored.
    pub(crate) sha256: Sha256,
    /// This request's `Upload-Checksum`, when it sent one.
    pub(crate) checksum: Option<BodyHasher>,
    pub(crate) target: Target,
}

pub(crate) enum Target {
    /// The local store's staging file, positioned at the upload's offset.
    File(std::fs::File),
    /// S3: the bytes of the part being filled.
    Part(BytesMut),
}

impl Target {
    pub fn part(&mut self) -> Option<&mut BytesMut> {
        match self {
            Target::Part(b) => Some(b),
            Target::File(_) => None,
        }
    }
}

#[derive(Default)]
pub struct ChunkAssembler;

impl Actor for ChunkAssembler {
    type Context = SyncContext<Self>;
}

/// A piece of the request body: the chunks as they came off the socket,
/// never copied into one buffer.
pub(crate) type Chunk = Arc<[Bytes]>;

/// Hash a piece of the body. Sent side by side with [`Write`] for the same
/// piece, so hashing and writing run on two threads at once.
pub(crate) struct Digest {
    pub sha256: Sha256,
    pub checksum: Option<BodyHasher>,
    /// Whether the whole-upload hash sees the bytes now (the local store)
    /// or when a part is cut (S3).
    pub whole: bool,
    pub data: Chunk,
}

impl Message for Digest {
    type Result = (Sha256, Option<BodyHasher>);
}

impl Handler<Digest> for ChunkAssembler {
    type Result = MessageResult<Digest>;

    fn handle(&mut self, msg: Digest, _: &mut SyncContext<Self>) -> Self::Result {
        let Digest {
            mut sha256,
            mut checksum,
            whole,
            data,
        } = msg;
        for piece in data.iter() {
            if let Some(c) = &mut checksum {
                c.update(piece);
            }
            if whole {
                sha256.update(piece);
            }
        }
        MessageResult((sha256, checksum))
    }
}

/// Write a piece of the body to the upload's target.
pub(crate) struct Write {
    pub target: Target,
    pub data: Chunk,
}

impl Message for Write {
    type Result = std::io::Result<Target>;
}

impl Handler<Write> for ChunkAssembler {
    type Result = std::io::Result<Target>;

    fn handle(&mut self, msg: Write, _: &mut SyncContext<Self>) -> Self::Result {
        let Write { mut target, data } = msg;
        match &mut target {
            Target::File(file) => write_all_vectored(file, &data)?,
            Target::Part(buf) => {
                for piece in data.iter() {
                    buf.extend_from_slice(piece);
                }
            }
        }
        Ok(target)
    }
}

/// One `writev` per piece of the body where the kernel takes it all.
fn write_all_vectored(file: &mut std::fs::File, data: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = data.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// S3: a part was cut from the buffer; hash it into the whole upload.
pub(crate) struct Seal {
    pub sink: Box<Sink>,
    pub part: Bytes,
}

impl Message for Seal {
    type Result = Box<Sink>;
}

impl Handler<Seal> for ChunkAssembler {
    type Result = MessageResult<Seal>;

    fn handle(&mut self, msg: Seal, _: &mut SyncContext<Self>) -> Self::Result {
        let Seal { mut sink, part } = msg;
        sink.sha256.update(&part);
        MessageResult(sink)
    }
}
