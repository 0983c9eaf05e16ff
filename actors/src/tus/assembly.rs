//! The chunk-assembly actor: where a tus upload's bytes are hashed and
//! written. It runs on its own threads (an actix `SyncArbiter`), so file
//! writes and SHA-256 never block the HTTP workers, and the next chunk is
//! read from the socket while this one is written.
//!
//! Each message carries the upload's [`Sink`] there and back: the actor
//! keeps no state, and one upload never has two messages in flight, so its
//! bytes are written in order.

use std::io::Write;

use actix::{Actor, Handler, Message, MessageResult, SyncContext};
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

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

/// Take in a chunk of the request body.
pub(crate) struct Absorb {
    pub sink: Box<Sink>,
    pub data: Bytes,
}

impl Message for Absorb {
    type Result = std::io::Result<Box<Sink>>;
}

impl Handler<Absorb> for ChunkAssembler {
    type Result = std::io::Result<Box<Sink>>;

    fn handle(&mut self, msg: Absorb, _: &mut SyncContext<Self>) -> Self::Result {
        let Absorb { mut sink, data } = msg;
        if let Some(checksum) = &mut sink.checksum {
            checksum.update(&data);
        }
        match &mut sink.target {
            Target::File(file) => {
                sink.sha256.update(&data);
                file.write_all(&data)?;
            }
            Target::Part(buf) => buf.extend_from_slice(&data),
        }
        Ok(sink)
    }
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
