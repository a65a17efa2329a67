//! Which custodian a hardware key (an age plugin identity) belongs to. Its
//! public half is on the token, so the only way to tell is to try it on the
//! envelopes it may open: tag-aware plugins (all real ones) say "not mine" to
//! the others without a PIN or touch. A failure is blamed on a custodian only
//! when that custodian's envelope is the one the key failed on and every other
//! candidate said "not mine"; otherwise on the key file, so one custodian's
//! broken token never costs another custodian their share.

use zeroize::Zeroizing;

use crate::crypto::{self, CustodianIdentity, DecryptOutcome, Passphrase};
use crate::manifest::CustodianEntry;

/// How a hardware key fared on the envelopes it may open.
pub(crate) enum HardwareTry<'c> {
    /// It opened this custodian's envelope.
    Opened(&'c CustodianEntry, Zeroizing<Vec<u8>>),
    /// It failed on this custodian's envelope, and only there.
    FailedOn(&'c CustodianEntry, String),
    /// It could not be used, or failed on several envelopes: the key file's fault.
    KeyProblem(String),
    /// None of the envelopes is its own.
    NoneMine,
}

/// Try `identity` on each (custodian, envelope), in order, until one opens.
pub(crate) fn try_hardware_key<'c, 'p>(
    identity: &CustodianIdentity,
    candidates: &[(&'c CustodianEntry, &[u8])],
    pin_for: &dyn Fn(&str) -> Option<&'p Passphrase>,
) -> HardwareTry<'c> {
    let mut failures: Vec<(&'c CustodianEntry, String)> = Vec::new();
    for (custodian, envelope) in candidates {
        let outcome = crypto::decrypt_as(
            envelope,
            identity,
            &custodian.name,
            pin_for(&custodian.name),
        );
        match outcome {
            DecryptOutcome::Plaintext(plaintext) => {
                return HardwareTry::Opened(custodian, plaintext)
            }
            DecryptOutcome::NotMine => {}
            DecryptOutcome::Failed(why) => {
                failures.push((custodian, format!("envelope is corrupted ({why})")))
            }
            DecryptOutcome::KeyFailed(why) => failures.push((
                custodian,
                format!("the hardware key could not be used ({why})"),
            )),
            // Missing plugin, hung plugin: every other try would end the same.
            DecryptOutcome::KeyUnavailable(why) => {
                return match candidates {
                    [(only, _)] => HardwareTry::FailedOn(
                        only,
                        format!("the hardware key could not be used ({why})"),
                    ),
                    _ => HardwareTry::KeyProblem(why),
                }
            }
        }
    }
    match failures.len() {
        0 => HardwareTry::NoneMine,
        1 => {
            let (custodian, why) = failures.remove(0);
            HardwareTry::FailedOn(custodian, why)
        }
        _ => HardwareTry::KeyProblem(
            failures
                .iter()
                .map(|(c, why)| format!("on custodian {}'s envelope: {why}", c.name))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}
