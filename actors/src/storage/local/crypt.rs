//! Encryption at rest for the local store. Every object, multipart part and
//! staged tus upload is sealed with a random data key of its own, in
//! AES-256-GCM segments of 64 KiB of plaintext framed by the STREAM
//! construction (`aead-stream`: a 32-bit big-endian position and a
//! last-segment flag in each nonce). A Range read opens only the segments
//! it touches, and a segment moved, dropped, cut short or altered fails to
//! open instead of yielding other bytes. AES-256-GCM is ring's (see
//! [`super::gcm`]). The data key is kept wrapped by a
//! key-encryption key (see [`super::keyring`]) in the object's metadata,
//! where `stowage keys rotate` re-wraps it without touching the object.

use std::io;
use std::os::unix::fs::FileExt;

use aead::AeadInOut;
use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::gcm::Aes256Gcm;
use super::keyring::{Keyring, WrappedKey, damaged};

/// Plaintext bytes a segment.
pub(super) const SEGMENT: usize = 64 << 10;
/// What sealing adds to each segment.
pub(super) const TAG: usize = 16;
/// A whole sealed segment on disk.
pub(super) const SEALED: usize = SEGMENT + TAG;

/// How a file's bytes are sealed, as its metadata records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Crypt {
    pub key: WrappedKey,
    /// Plaintext bytes a segment.
    pub segment: u32,
    /// The STREAM nonce prefixes, each from the segment it starts at: one,
    /// unless a resumed upload sealed again segments a crash had left
    /// unacknowledged (a position is never sealed twice under one prefix).
    pub epochs: Vec<Epoch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Epoch {
    pub from: u32,
    /// base64, 7 bytes.
    pub prefix: String,
}

impl Crypt {
    /// A new data key, wrapped by the current KEK, and its cipher.
    pub fn fresh(keyring: &Keyring) -> io::Result<(Crypt, Sealing)> {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let crypt = Crypt {
            key: keyring.wrap(&key)?,
            segment: SEGMENT as u32,
            epochs: vec![Epoch::starting_at(0)],
        };
        let sealing = Sealing::new(&key, &crypt.epochs)?;
        Ok((crypt, sealing))
    }

    /// The cipher for a stored file.
    pub fn open(&self, keyring: &Keyring) -> io::Result<Sealing> {
        if self.segment as usize != SEGMENT {
            return Err(damaged("the file was sealed in segments of another size"));
        }
        Sealing::new(&keyring.unwrap(&self.key)?, &self.epochs)
    }

    /// From segment `from` on, seal under a new nonce prefix.
    pub fn new_epoch(&mut self, from: u32) {
        self.epochs.retain(|e| e.from < from);
        self.epochs.push(Epoch::starting_at(from));
    }
}

impl Epoch {
    fn starting_at(from: u32) -> Self {
        let mut prefix = [0u8; 7];
        rand::rng().fill_bytes(&mut prefix);
        Self {
            from,
            prefix: B64.encode(prefix),
        }
    }
}

type Stream = StreamBE32<Aes256Gcm>;

/// A file's data key, ready to seal and open its segments.
pub(super) struct Sealing {
    aead: Aes256Gcm,
    /// By first segment, ascending.
    epochs: Vec<(u32, Stream)>,
}

/// The nonce's last byte in a tail record: STREAM uses only 0 and 1 there,
/// so a tail's nonce can never be a segment's.
const TAIL_FLAG: u8 = 2;

impl Sealing {
    fn new(key: &[u8; 32], epochs: &[Epoch]) -> io::Result<Self> {
        let aead = Aes256Gcm::new(key);
        let mut streams = Vec::with_capacity(epochs.len());
        for epoch in epochs {
            let prefix: [u8; 7] = B64
                .decode(&epoch.prefix)
                .ok()
                .and_then(|p| p.try_into().ok())
                .ok_or_else(|| damaged("a nonce prefix in the metadata is malformed"))?;
            streams.push((epoch.from, Stream::from_aead(aead.clone(), &prefix.into())));
        }
        if streams.first().is_none_or(|(from, _)| *from != 0) {
            return Err(damaged("the metadata's nonce prefixes do not start at 0"));
        }
        Ok(Self {
            aead,
            epochs: streams,
        })
    }

    fn stream(&self, index: u32) -> &Stream {
        let at = self.epochs.partition_point(|(from, _)| *from <= index);
        &self.epochs[at.saturating_sub(1)].1
    }

    /// Seals `buf` (one segment's plaintext) in place as segment `index`.
    pub fn seal(&self, index: u32, last: bool, buf: &mut dyn aead::Buffer) -> io::Result<()> {
        self.stream(index)
            .encrypt_in_place(index, last, &[], buf)
            .map_err(|_| io::Error::other("sealing a segment failed"))
    }

    /// Opens segment `index` in place; anything but the segment sealed
    /// there is an error.
    pub fn open(&self, index: u32, last: bool, buf: &mut Vec<u8>) -> io::Result<()> {
        self.stream(index)
            .decrypt_in_place(index, last, &[], buf)
            .map_err(|_| {
                damaged(&format!(
                    "segment {index} of a stored file fails authentication: the file is damaged \
                     or was altered"
                ))
            })
    }

    /// Seals a staged upload's unfinished last segment, the bytes from
    /// segment `index` on, as a record of its own: a random nonce each
    /// time, as the record is rewritten as the segment fills.
    pub fn seal_tail(&self, index: u32, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce[..11]);
        nonce[11] = TAIL_FLAG;
        let mut record = Vec::with_capacity(4 + 12 + plain.len() + TAG);
        record.extend_from_slice(&index.to_be_bytes());
        record.extend_from_slice(&nonce);
        let mut buf = plain.to_vec();
        self.aead
            .encrypt_in_place(&nonce.into(), &index.to_be_bytes(), &mut buf)
            .expect("a Vec grows to take the tag");
        record.extend_from_slice(&buf);
        record
    }

    /// Opens a tail record: the segment it starts and its plaintext.
    pub fn open_tail(&self, record: &[u8]) -> io::Result<(u32, Vec<u8>)> {
        let bad = || damaged("a staged upload's tail record fails authentication");
        if record.len() < 4 + 12 + TAG {
            return Err(bad());
        }
        let index = u32::from_be_bytes(record[..4].try_into().map_err(|_| bad())?);
        let nonce: [u8; 12] = record[4..16].try_into().map_err(|_| bad())?;
        let mut buf = record[16..].to_vec();
        self.aead
            .decrypt_in_place(&nonce.into(), &index.to_be_bytes(), &mut buf)
            .map_err(|_| bad())?;
        Ok((index, buf))
    }
}

/// The end of `out` from `start` on, as a buffer to seal in place.
struct Tail<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.out[self.start..]
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.out[self.start..]
    }
}

impl aead::Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> aead::Result<()> {
        self.out.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.out.truncate(self.start + len);
    }
}

/// Segments a file of `size` plaintext bytes seals into (an empty file is
/// one empty segment).
pub(super) fn segments(size: u64) -> u64 {
    size.div_ceil(SEGMENT as u64).max(1)
}

/// Bytes on disk for `size` bytes of plaintext.
pub(super) fn sealed_len(size: u64) -> u64 {
    size + segments(size) * TAG as u64
}

/// The position of segment `index` as the STREAM counter.
pub(super) fn position(index: u64) -> io::Result<u32> {
    u32::try_from(index).map_err(|_| io::Error::other("a file this large cannot be sealed"))
}

/// Seals a stream of plaintext into segments as it arrives. The last
/// (possibly full) segment is held back until the end is known, so that it
/// carries STREAM's last-segment flag.
pub(super) struct Sealer {
    sealing: Sealing,
    /// The next segment's position.
    index: u64,
    /// Plaintext not yet sealed: at most a segment.
    pending: Vec<u8>,
}

impl Sealer {
    pub fn new(sealing: Sealing) -> Self {
        Self::resume(sealing, 0, Vec::with_capacity(SEGMENT))
    }

    /// Goes on after `index` sealed segments, holding `pending`.
    pub fn resume(sealing: Sealing, index: u64, pending: Vec<u8>) -> Self {
        Self {
            sealing,
            index,
            pending,
        }
    }

    /// Takes `data`, appending every segment it completes (but the last)
    /// to `out`, sealed.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        while !data.is_empty() {
            if self.pending.len() == SEGMENT {
                self.seal_pending(false, out)?;
            }
            if self.pending.is_empty() && data.len() > SEGMENT {
                // A whole segment with more after it: sealed where it lands
                // in `out`, without a stop in `pending`.
                let start = out.len();
                out.extend_from_slice(&data[..SEGMENT]);
                let index = position(self.index)?;
                self.sealing.seal(index, false, &mut Tail { out, start })?;
                self.index += 1;
                data = &data[SEGMENT..];
                continue;
            }
            let n = (SEGMENT - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    /// Seals what is held as the last segment.
    pub fn finish(mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.seal_pending(true, out)
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) -> io::Result<()> {
        let index = position(self.index)?;
        self.sealing.seal(index, last, &mut self.pending)?;
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        self.index += 1;
        Ok(())
    }

    /// Segments sealed so far.
    pub fn sealed(&self) -> u64 {
        self.index
    }

    /// The plaintext held back.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    pub fn sealing(&self) -> &Sealing {
        &self.sealing
    }
}

/// Up to `max` bytes of plaintext from `start` of a sealed file holding
/// `size` bytes, opening only the segments they lie in. A file whose
/// length is not what `size` seals to has been cut or extended: an error.
pub(super) fn read_sealed(
    file: &std::fs::File,
    size: u64,
    sealing: &Sealing,
    start: u64,
    max: usize,
) -> io::Result<Vec<u8>> {
    let on_disk = file.metadata()?.len();
    if on_disk != sealed_len(size) {
        return Err(damaged(&format!(
            "a stored file holds {on_disk} bytes where {size} bytes seal to {}: it was cut short \
             or altered",
            sealed_len(size)
        )));
    }
    let end = size.min(start.saturating_add(max as u64));
    if start >= end {
        return Ok(Vec::new());
    }
    let (seg, count) = (SEGMENT as u64, segments(size));
    let (first, last) = (start / seg, (end - 1) / seg);
    let from = first * SEALED as u64;
    let to = ((last + 1) * SEALED as u64).min(on_disk);
    let mut sealed = vec![0u8; (to - from) as usize];
    file.read_exact_at(&mut sealed, from)?;
    let mut out = Vec::with_capacity((end - start) as usize);
    let mut buf = Vec::with_capacity(SEALED);
    for (i, chunk) in (first..=last).zip(sealed.chunks(SEALED)) {
        buf.clear();
        buf.extend_from_slice(chunk);
        sealing.open(position(i)?, i + 1 == count, &mut buf)?;
        let seg_start = i * seg;
        let lo = start.saturating_sub(seg_start) as usize;
        let hi = ((end - seg_start) as usize).min(buf.len());
        out.extend_from_slice(&buf[lo..hi]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealing() -> (Crypt, Sealing, Keyring, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(dir.path(), None).unwrap();
        let (crypt, sealing) = Crypt::fresh(&keyring).unwrap();
        (crypt, sealing, keyring, dir)
    }

    fn seal_all(sealing: Sealing, plain: &[u8], pieces: usize) -> Vec<u8> {
        let mut sealer = Sealer::new(sealing);
        let mut out = Vec::new();
        for piece in plain.chunks(pieces.max(1)) {
            sealer.push(piece, &mut out).unwrap();
        }
        sealer.finish(&mut out).unwrap();
        out
    }

    fn stored(bytes: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f
    }

    #[test]
    fn ranges_across_segment_boundaries_read_back() {
        let (crypt, sealing, keyring, _dir) = sealing();
        let plain: Vec<u8> = (0..SEGMENT * 3 + 1000)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let sealed = seal_all(sealing, &plain, 10_000);
        assert_eq!(sealed.len() as u64, sealed_len(plain.len() as u64));
        let file = stored(&sealed);
        let opened = crypt.open(&keyring).unwrap();
        let size = plain.len() as u64;
        for (start, len) in [
            (0, plain.len()),
            (SEGMENT - 3, 10),
            (SEGMENT * 2 - 1, SEGMENT + 2),
            (plain.len() - 1, 5),
            (5, 0),
        ] {
            let got = read_sealed(&file, size, &opened, start as u64, len).unwrap();
            let end = (start + len).min(plain.len());
            assert_eq!(got, &plain[start..end], "{start}+{len}");
        }
    }

    #[test]
    fn damage_is_an_error_never_other_bytes() {
        let (crypt, sealing, keyring, _dir) = sealing();
        let plain = vec![42u8; SEGMENT * 2 + 10];
        let sealed = seal_all(sealing, &plain, SEGMENT);
        let opened = crypt.open(&keyring).unwrap();
        let size = plain.len() as u64;
        let mut flipped = sealed.clone();
        flipped[SEALED + 100] ^= 1;
        assert!(read_sealed(&stored(&flipped), size, &opened, 0, plain.len()).is_err());
        // Only the damaged segment is refused.
        assert!(read_sealed(&stored(&flipped), size, &opened, 0, SEGMENT).is_ok());
        let mut swapped = sealed.clone();
        swapped[..SEALED].copy_from_slice(&sealed[SEALED..2 * SEALED]);
        swapped[SEALED..2 * SEALED].copy_from_slice(&sealed[..SEALED]);
        assert!(read_sealed(&stored(&swapped), size, &opened, 0, 10).is_err());
        // Cut at a segment boundary, with the size to match: the new last
        // segment was not sealed as last.
        let cut = &sealed[..2 * SEALED];
        assert!(read_sealed(&stored(cut), 2 * SEGMENT as u64, &opened, 0, 10).is_ok());
        assert!(
            read_sealed(
                &stored(cut),
                2 * SEGMENT as u64,
                &opened,
                SEGMENT as u64,
                10
            )
            .is_err()
        );
        assert!(read_sealed(&stored(cut), size, &opened, 0, 10).is_err());
    }

    #[test]
    fn large_pieces_seal_as_small_ones_do() {
        let (crypt, _, keyring, _dir) = sealing();
        let plain: Vec<u8> = (0..SEGMENT * 4 + 7).map(|i| (i % 253) as u8).collect();
        let small = seal_all(crypt.open(&keyring).unwrap(), &plain, 1000);
        for pieces in [SEGMENT, SEGMENT + 1, 3 * SEGMENT, plain.len()] {
            let large = seal_all(crypt.open(&keyring).unwrap(), &plain, pieces);
            assert!(large == small, "pieces of {pieces}");
        }
    }

    #[test]
    fn an_empty_file_is_one_sealed_segment() {
        let (crypt, sealing, keyring, _dir) = sealing();
        let sealed = seal_all(sealing, &[], 1);
        assert_eq!(sealed.len(), TAG);
        let opened = crypt.open(&keyring).unwrap();
        assert!(
            read_sealed(&stored(&sealed), 0, &opened, 0, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_new_epoch_seals_positions_anew() {
        let (mut crypt, sealing, keyring, _dir) = sealing();
        let mut first = b"segment zero".to_vec();
        sealing.seal(1, false, &mut first).unwrap();
        crypt.new_epoch(1);
        let again = crypt.open(&keyring).unwrap();
        let mut second = b"segment zero".to_vec();
        again.seal(1, false, &mut second).unwrap();
        assert_ne!(first, second, "same position, new prefix, other ciphertext");
        let mut zero = b"x".to_vec();
        sealing.seal(0, false, &mut zero).unwrap();
        again.open(0, false, &mut zero).unwrap();
        assert_eq!(zero, b"x");
        let tail = again.seal_tail(3, b"tail");
        assert_eq!(again.open_tail(&tail).unwrap(), (3, b"tail".to_vec()));
        let mut bad = tail.clone();
        bad[0] = 9;
        assert!(again.open_tail(&bad).is_err());
    }
}
