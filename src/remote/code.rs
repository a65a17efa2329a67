//! Single-line codes that survive chat, email and SMS: a version prefix naming
//! the kind, then base64url of (length ‖ payload ‖ 4-byte checksum). Whitespace
//! and line breaks inside a pasted code are ignored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::crypto;

/// The largest payload any code may carry; decoders refuse more.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// Which kind of code a line is; each has its own prefix, so a code pasted in the wrong place is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// A remote unseal request (`BGREQ2:`).
    Request,
    /// A custodian's approval of a request (`BGAPR1:`).
    Approval,
    /// A remote drill challenge (`BGDRC1:`).
    DrillChallenge,
    /// A custodian's drill proof (`BGDRP1:`).
    DrillProof,
    /// A passphrase custodian's public enrolment (`custodian enroll`).
    Enrolment,
}

const ALL_KINDS: [CodeKind; 5] = [
    CodeKind::Request,
    CodeKind::Approval,
    CodeKind::DrillChallenge,
    CodeKind::DrillProof,
    CodeKind::Enrolment,
];

impl CodeKind {
    fn prefix(self) -> &'static str {
        match self {
            CodeKind::Request => "BGREQ2:",
            CodeKind::Approval => "BGAPR1:",
            CodeKind::DrillChallenge => "BGDRC1:",
            CodeKind::DrillProof => "BGDRP1:",
            CodeKind::Enrolment => "BGENR1:",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            CodeKind::Request => "request code",
            CodeKind::Approval => "approval code",
            CodeKind::DrillChallenge => "drill challenge code",
            CodeKind::DrillProof => "drill proof code",
            CodeKind::Enrolment => "enrolment code",
        }
    }

    fn with_article(self) -> &'static str {
        match self {
            CodeKind::Request => "a request code",
            CodeKind::Approval => "an approval code",
            CodeKind::DrillChallenge => "a drill challenge code",
            CodeKind::DrillProof => "a drill proof code",
            CodeKind::Enrolment => "an enrolment code",
        }
    }

    /// The prefix without its version digit, e.g. `BGREQ`.
    fn family(self) -> &'static str {
        let prefix = self.prefix();
        &prefix[..prefix.len() - 2]
    }

    /// The version digit of this build's codes of this kind.
    fn version(self) -> u32 {
        let prefix = self.prefix();
        prefix[prefix.len() - 2..prefix.len() - 1]
            .parse()
            .expect("prefixes end in a digit and a colon")
    }
}

/// Why a pasted code was refused; each message says what to do.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// A code of another kind than the one expected.
    #[error("is {found}, not {expected}; paste the right one")]
    WrongKind {
        /// The kind pasted.
        found: &'static str,
        /// The kind expected.
        expected: &'static str,
    },
    /// No known prefix (expected noun, expected prefix).
    #[error("is not a breakglass {0}; paste the whole line starting with {1}")]
    NotACode(&'static str, &'static str),
    /// A newer format version than this build reads.
    #[error("is a {0} from a newer breakglass; upgrade breakglass")]
    NewerVersion(&'static str),
    /// An older format version this build no longer reads.
    #[error("is a {0} from an older breakglass; ask its sender to upgrade and make a new one")]
    OlderVersion(&'static str),
    /// The code is shorter than its length field says.
    #[error("is cut short ({have} of {need} bytes); copy the whole code again")]
    CutShort {
        /// Bytes present.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Bad base64 or a checksum mismatch.
    #[error("is damaged ({0}); copy the code again")]
    Damaged(&'static str),
}

fn checksum(kind: CodeKind, payload: &[u8]) -> [u8; 4] {
    let digest = crypto::sha256(&[kind.prefix().as_bytes(), payload]);
    digest[..4].try_into().expect("4 bytes")
}

/// Frames `payload` as a code of `kind`: prefix, base64url of (length, payload, 4-byte checksum).
pub fn encode(kind: CodeKind, payload: &[u8]) -> String {
    let mut raw = Vec::with_capacity(payload.len() + 8);
    raw.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    raw.extend_from_slice(payload);
    raw.extend_from_slice(&checksum(kind, payload));
    format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(raw))
}

/// Decode a pasted code of the expected kind, naming what is wrong with it.
pub fn decode(kind: CodeKind, text: &str) -> Result<Vec<u8>, CodeError> {
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '>')
        .collect();
    let Some(body) = compact.strip_prefix(kind.prefix()) else {
        for other in ALL_KINDS {
            if compact.starts_with(other.prefix()) {
                return Err(CodeError::WrongKind {
                    found: other.with_article(),
                    expected: kind.with_article(),
                });
            }
        }
        if let Some(rest) = compact.strip_prefix(kind.family()) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            return Err(match digits.parse::<u32>() {
                Ok(v) if v < kind.version() => CodeError::OlderVersion(kind.noun()),
                _ => CodeError::NewerVersion(kind.noun()),
            });
        }
        return Err(CodeError::NotACode(kind.noun(), kind.prefix()));
    };
    if body
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(CodeError::Damaged("it holds characters no code contains"));
    }
    // Decode whole 4-character groups, then the tail on its own: a cut code
    // ends in a partial group, which must read as "cut short", not "damaged".
    let whole = body.len() / 4 * 4;
    let mut raw = URL_SAFE_NO_PAD
        .decode(&body[..whole])
        .map_err(|_| CodeError::Damaged("it is not valid base64url"))?;
    let tail = &body[whole..];
    let tail_ok = match URL_SAFE_NO_PAD.decode(tail) {
        Ok(bytes) => {
            raw.extend_from_slice(&bytes);
            true
        }
        Err(_) => false,
    };
    if raw.len() < 4 {
        return Err(CodeError::CutShort {
            have: raw.len(),
            need: 8,
        });
    }
    let len = u32::from_be_bytes(raw[..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(CodeError::Damaged("its length field is implausible"));
    }
    let need = 4 + len + 4;
    if raw.len() < need {
        return Err(CodeError::CutShort {
            have: raw.len(),
            need,
        });
    }
    if !tail_ok {
        return Err(CodeError::Damaged("its last characters were changed"));
    }
    if raw.len() > need {
        return Err(CodeError::Damaged("it has extra characters at the end"));
    }
    let payload = &raw[4..4 + len];
    if raw[4 + len..] != checksum(kind, payload) {
        return Err(CodeError::Damaged(
            "checksum mismatch: a character was changed",
        ));
    }
    Ok(payload.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kinds_are_told_apart() {
        let code = encode(CodeKind::Approval, b"x");
        assert_eq!(
            decode(CodeKind::Request, &code),
            Err(CodeError::WrongKind {
                found: "an approval code",
                expected: "a request code"
            })
        );
        assert!(matches!(
            decode(CodeKind::Request, "hello"),
            Err(CodeError::NotACode(..))
        ));
        assert!(matches!(
            decode(CodeKind::Request, "BGREQ9:abc"),
            Err(CodeError::NewerVersion(_))
        ));
        assert!(matches!(
            decode(CodeKind::Request, "BGREQ1:abc"),
            Err(CodeError::OlderVersion(_))
        ));
        let challenge = encode(CodeKind::DrillChallenge, b"x");
        assert_eq!(
            decode(CodeKind::Request, &challenge),
            Err(CodeError::WrongKind {
                found: "a drill challenge code",
                expected: "a request code"
            })
        );
    }

    proptest! {
        #[test]
        fn round_trips_through_wrapping_and_indentation(payload in proptest::collection::vec(any::<u8>(), 0..600), width in 20usize..80) {
            let code = encode(CodeKind::Request, &payload);
            prop_assert!(!code.contains(char::is_whitespace));
            let wrapped: String = code
                .as_bytes()
                .chunks(width)
                .map(|c| format!("    {}\r\n", std::str::from_utf8(c).unwrap()))
                .collect();
            prop_assert_eq!(decode(CodeKind::Request, &wrapped).unwrap(), payload);
        }

        #[test]
        fn any_changed_character_is_caught(payload in proptest::collection::vec(any::<u8>(), 1..300), at in any::<usize>(), to in "[A-Za-z0-9_-]") {
            let code = encode(CodeKind::Approval, &payload);
            let prefix = "BGAPR1:".len();
            let i = prefix + at % (code.len() - prefix);
            let mut chars: Vec<char> = code.chars().collect();
            let replacement = to.chars().next().unwrap();
            prop_assume!(chars[i] != replacement);
            chars[i] = replacement;
            let changed: String = chars.into_iter().collect();
            prop_assert!(decode(CodeKind::Approval, &changed).is_err());
        }

        #[test]
        fn any_cut_is_caught(payload in proptest::collection::vec(any::<u8>(), 1..300), cut in 1usize..40) {
            let code = encode(CodeKind::Approval, &payload);
            let keep = code.len().saturating_sub(cut).max("BGAPR1:".len());
            let is_short = matches!(decode(CodeKind::Approval, &code[..keep]), Err(CodeError::CutShort { .. }));
            prop_assert!(is_short);
        }
    }
}
