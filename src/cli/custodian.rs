//! The custodian's commands: `approve` a request and answer a drill challenge,
//! with only their own key and the code. Everything is checked before the
//! read-back words are asked for.

use std::path::Path;

use breakglass::crypto::Passphrase;
use breakglass::remote::ParsedRequest;
use breakglass::vault::{check_request, ApproveInput, ApproverKey, CheckedRequest};
use breakglass::{Access, Vault, VaultError};

use super::args::{ApproveArgs, ChallengeAnswerArgs};
use super::{input, open, refuse_existing, render, write_new_file, EXIT_OK};

/// Tries at the words prompt before a mismatch is treated as an altered request.
const WORD_TRIES: usize = 3;

/// The custodian's key: identity files, a passphrase file, or a passphrase
/// asked on the terminal (before anything else is asked). Beside identity
/// files, a passphrase file is a hardware key's PIN.
fn approver_key(
    identities: &[std::path::PathBuf],
    passphrase_file: Option<&String>,
    custodian: Option<&String>,
) -> Result<(ApproverKey, Option<(String, Passphrase)>), VaultError> {
    if !identities.is_empty() {
        let pin = passphrase_file
            .map(|spec| input::passphrase_files(std::slice::from_ref(spec)))
            .transpose()?
            .and_then(|mut pins| pins.pop());
        return Ok((
            ApproverKey::Identities(input::identity_files(identities)?),
            pin,
        ));
    }
    if let Some(spec) = passphrase_file {
        let (name, passphrase) = input::passphrase_files(std::slice::from_ref(spec))?
            .pop()
            .expect("one spec gives one passphrase");
        return Ok((ApproverKey::Passphrase(name, passphrase), None));
    }
    if let Some(name) = custodian {
        let passphrase = input::existing_passphrase(name)?;
        return Ok((ApproverKey::Passphrase(name.clone(), passphrase), None));
    }
    Err(VaultError::Invalid(
        "say who you are: --identity FILE, --passphrase-file NAME=PATH, or --custodian NAME".into(),
    ))
}

/// Read a code from a file or `-` (stdin); a code pasted as the argument is named.
fn read_code(source: &str, flag: &str, what: &str) -> Result<String, VaultError> {
    input::code_file(Path::new(source), flag, what, &mut false).map(|(_, text)| text)
}

/// Check the code against the custodian's key (and a `--vault` copy, only if
/// one was named explicitly).
fn check<'a>(
    request: &'a ParsedRequest,
    (key, pin): (ApproverKey, Option<(String, Passphrase)>),
    envelope: Option<&std::path::PathBuf>,
    vault: Option<&Vault>,
) -> Result<CheckedRequest<'a>, VaultError> {
    let envelope = match envelope {
        Some(p) => Some((
            format!("envelope {}", p.display()),
            input::text(Some(p), "envelope file")?,
        )),
        None => None,
    };
    check_request(
        ApproveInput {
            request,
            key,
            envelope,
            pin,
        },
        vault,
        &mut input::Terminal::default(),
    )
}

/// Pin after the code was written: a failed write changes nothing here.
fn remember(checked: &CheckedRequest<'_>) {
    if let Err(e) = checked.remember() {
        errln!("warning: {e}");
    }
}

fn vault_copy(vault_flag: bool, path: &Path) -> Result<Option<Vault>, VaultError> {
    vault_flag.then(|| open(path, Access::ReadOnly)).transpose()
}

/// `approve`: check everything, show the request, then ask for the words (up
/// to three tries on a terminal) and write the approval code.
pub fn approve(a: ApproveArgs, vault_flag: bool, path: &Path) -> Result<i32, VaultError> {
    let text = read_code(&a.request, "--request", "request code")?;
    let request = ParsedRequest::parse(&text)
        .map_err(|e| VaultError::Invalid(format!("{}: {e}", a.request)))?;
    refuse_existing(&a.out)?;
    let key = approver_key(
        &a.identities,
        a.passphrase_file.as_ref(),
        a.custodian.as_ref(),
    )?;
    let vault = vault_copy(vault_flag, path)?;
    let checked = check(&request, key, a.envelope.as_ref(), vault.as_ref())?;
    let details = render::request_details(&request, &checked.custodian, checked.first_use);
    errln!("{details}");
    let id = &request.request.request_id;
    let approval = match &a.words {
        Some(words) => checked.approve(words).map_err(|e| match e {
            VaultError::WordsMismatch(_) => VaultError::Invalid(format!(
                "request {id}: the words given with --words do not match; compare them with the requester by voice, word by word. If they still differ, the request may have been altered in transit — do not approve, call the requester back"
            )),
            other => other,
        })?,
        None => {
            let mut attempt = 1;
            // What the question is about: the request, then why it is asked again.
            let mut about = details.clone();
            loop {
                let typed = input::line(&about, "Type the read-back words you heard from the requester: ")?
                    .ok_or_else(|| {
                        VaultError::Invalid(
                            "no terminal to type the read-back words; pass --words \"W1 W2 W3 W4 W5 W6\" as heard from the requester".into(),
                        )
                    })?;
                match checked.approve(&typed) {
                    Ok(approval) => break approval,
                    Err(VaultError::WordsMismatch(_)) if attempt < WORD_TRIES => {
                        about = render::words_mismatch(attempt, WORD_TRIES);
                        errln!("{about}");
                        attempt += 1;
                    }
                    Err(VaultError::WordsMismatch(_)) => {
                        return Err(VaultError::Invalid(format!(
                            "request {id}: the read-back words still do not match after {WORD_TRIES} tries; the request may have been altered in transit — do not approve, call the requester back"
                        )))
                    }
                    Err(other) => return Err(other),
                }
            }
        }
    };
    write_new_file(&a.out, format!("{}\n", approval.code).as_bytes())?;
    remember(&checked);
    render::approval(&approval, &request, &a.out, a.json);
    Ok(EXIT_OK)
}

/// `drill --challenge`: prove the share against a challenge from the vault
/// side; nothing of the share leaves this machine, so no words are needed.
pub fn answer_challenge(
    a: ChallengeAnswerArgs<'_>,
    vault_flag: bool,
    path: &Path,
) -> Result<i32, VaultError> {
    let text = read_code(a.challenge, "--challenge", "drill challenge code")?;
    let challenge = ParsedRequest::parse_challenge(&text)
        .map_err(|e| VaultError::Invalid(format!("{}: {e}", a.challenge)))?;
    let out = a.out.ok_or_else(|| {
        VaultError::Invalid("--challenge needs --out FILE for the proof code".into())
    })?;
    refuse_existing(out)?;
    let key = approver_key(a.identities, a.passphrase_file, a.custodian)?;
    let vault = vault_copy(vault_flag, path)?;
    let checked = check(&challenge, key, a.envelope, vault.as_ref())?;
    let proof = checked.prove()?;
    write_new_file(out, format!("{}\n", proof.code()).as_bytes())?;
    remember(&checked);
    render::drill_proof(&proof, out, a.json);
    Ok(EXIT_OK)
}
