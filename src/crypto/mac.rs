//! Message authentication and plain digests for request signing by peers'
//! protocols (Duo's Admin API signs with HMAC-SHA512 over a canonical string
//! that carries SHA-512 digests; its older v2 signatures use HMAC-SHA1).
//! RustCrypto `hmac` 0.12, `sha2` 0.10 and `sha1` 0.10: the generation `age`
//! 0.12 already builds.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha512};

/// HMAC-SHA512 of `msg` under `key`, as lowercase hex (128 characters).
pub fn hmac_sha512_hex(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC accepts a key of any length");
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

/// HMAC-SHA1 of `msg` under `key`, as lowercase hex (40 characters). Only for
/// peers' legacy signature schemes; never for anything of our own.
pub fn hmac_sha1_hex(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts a key of any length");
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

/// SHA-512 of `data`, as lowercase hex (128 characters).
pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test case 2 (HMAC-SHA-512) and RFC 2202 test case 2 (HMAC-SHA-1).
    #[test]
    fn rfc_test_vectors() {
        assert_eq!(
            hmac_sha512_hex(b"Jefe", b"what do ya want for nothing?"),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        assert_eq!(
            hmac_sha1_hex(b"Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn sha512_of_empty_and_abc() {
        assert_eq!(
            sha512_hex(b""),
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
             47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
        );
        assert_eq!(
            sha512_hex(b"abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }
}
