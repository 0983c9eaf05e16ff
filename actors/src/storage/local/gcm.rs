//! AES-256-GCM from `ring` (already in the tree through rustls) behind the
//! RustCrypto AEAD traits, so that `aead-stream`'s STREAM framing runs on
//! ring's assembly (AES-NI or VAES with carry-less multiplication, in one
//! pass). The portable `aes-gcm` crate cost a second core's worth of work
//! on the tus path: measured in the README ("Encryption at rest").

use aead::array::Array;
use aead::array::typenum::{U12, U16};
use aead::inout::InOutBuf;
use aead::{AeadCore, AeadInOut, Error, Nonce, Tag, TagPosition};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};

#[derive(Clone)]
pub(super) struct Aes256Gcm(LessSafeKey);

impl Aes256Gcm {
    pub fn new(key: &[u8; 32]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, key).expect("AES-256 takes a 32-byte key");
        Self(LessSafeKey::new(key))
    }
}

fn ring_nonce(nonce: &Array<u8, U12>) -> ring::aead::Nonce {
    let bytes: [u8; 12] = (*nonce).into();
    ring::aead::Nonce::assume_unique_for_key(bytes)
}

impl AeadCore for Aes256Gcm {
    type NonceSize = U12;
    type TagSize = U16;
    const TAG_POSITION: TagPosition = TagPosition::Postfix;
}

impl AeadInOut for Aes256Gcm {
    fn encrypt_inout_detached(
        &self,
        nonce: &Nonce<Self>,
        associated_data: &[u8],
        buffer: InOutBuf<'_, '_, u8>,
    ) -> Result<Tag<Self>, Error> {
        let data = buffer.into_out_with_copied_in();
        let tag = self
            .0
            .seal_in_place_separate_tag(ring_nonce(nonce), Aad::from(associated_data), data)
            .map_err(|_| Error)?;
        Tag::<Self>::try_from(tag.as_ref()).map_err(|_| Error)
    }

    fn decrypt_inout_detached(
        &self,
        nonce: &Nonce<Self>,
        associated_data: &[u8],
        buffer: InOutBuf<'_, '_, u8>,
        tag: &Tag<Self>,
    ) -> Result<(), Error> {
        let data = buffer.into_out_with_copied_in();
        let tag: [u8; 16] = (*tag).into();
        self.0
            .open_in_place_separate_tag(
                ring_nonce(nonce),
                Aad::from(associated_data),
                tag.into(),
                data,
                0..,
            )
            .map(|_| ())
            .map_err(|_| Error)
    }
}

#[cfg(test)]
mod tests {
    use aead::AeadInOut;

    use super::*;

    /// Test case 14 of the GCM specification: a zero key, nonce and block.
    #[test]
    fn agrees_with_the_published_vector() {
        let cipher = Aes256Gcm::new(&[0; 32]);
        let mut buf = vec![0u8; 16];
        cipher
            .encrypt_in_place(&[0u8; 12].into(), &[], &mut buf)
            .unwrap();
        assert_eq!(
            hex::encode(&buf),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
        cipher
            .decrypt_in_place(&[0u8; 12].into(), &[], &mut buf)
            .unwrap();
        assert_eq!(buf, [0u8; 16]);
        buf.extend_from_slice(&[0; 16]);
        assert!(
            cipher
                .decrypt_in_place(&[0u8; 12].into(), &[], &mut buf)
                .is_err()
        );
    }
}
