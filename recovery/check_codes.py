#!/usr/bin/env python3
"""Check codes and anchors the binary made against FORMAT.md, independently
(recover.py's helpers, the standard library, and openssl for Ed25519):

    python3 recovery/check_codes.py --vault V [--request FILE] [--anchor FILE]
                                    [--approval FILE --request-key FILE]
                                    [--proof FILE --identity KEY]

--request: a BGREQ2/BGDRC1 code (§7.1): framing, checksum, payload layout,
  the manifest section (the vault's current manifest, `manifest_sha256`) and
  each envelope's hash; prints the read-back words (§7.3) on stdout.
--anchor: a signed BGANCHOR1 line (§6.3): fingerprint, the row's hash, and the
  epoch key's signature.
--approval (with --request and --request-key, the request's ephemeral age
  identity from the requester's state directory): a BGAPR1 approval (§7.2):
  its plaintext framing, request id and hash, and the share record against the
  manifest and its commitment.
--proof: a BGDRP1 drill proof (§7.4): the signature by the manifest's
  proof_key, and (with the custodian's --identity) that the key derives from
  their share.
Exits 1 with one line naming the first mismatch.
"""

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sqlite3
import sys
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recover  # noqa: E402

ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


class Mismatch(Exception):
    pass


def decode_code(text, prefixes):
    text = "".join(text.split())
    prefix, sep, body = text.partition(":")
    if not sep or prefix + ":" not in prefixes:
        raise Mismatch("not a %s code" % " or ".join(prefixes))
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    length = int.from_bytes(raw[:4], "big")
    payload, checksum = raw[4:4 + length], raw[4 + length:]
    if len(payload) != length or len(checksum) != 4:
        raise Mismatch("code framing: length field %d, %d bytes" % (length, len(raw)))
    if hashlib.sha256((prefix + ":").encode() + payload).digest()[:4] != checksum:
        raise Mismatch("code checksum")
    return prefix + ":", payload


def dearmor(text):
    lines = [l for l in text.strip().splitlines() if not l.startswith("-----")]
    return base64.b64decode("".join(lines))


verify = recover.openssl_verify


def ed25519_public(seed):
    """The public key of a 32-byte Ed25519 seed, through openssl (stdin only)."""
    der = subprocess.run(["openssl", "pkey", "-inform", "DER", "-pubout", "-outform", "DER"],
                         input=ED25519_PKCS8_PREFIX + seed, capture_output=True, check=True).stdout
    return der[-32:].hex()


def check_request(text, db, manifest_row):
    prefix, p = decode_code(text, ["BGREQ2:", "BGDRC1:"])
    at = [0]

    def take(n):
        chunk = p[at[0]:at[0] + n]
        if len(chunk) != n:
            raise Mismatch("request payload is truncated")
        at[0] += n
        return chunk

    def chunk32():
        return take(int.from_bytes(take(4), "big"))

    core = chunk32()
    start = at[0]
    body, signatures = chunk32(), chunk32()
    links = int.from_bytes(take(2), "big")
    take(104 * links)
    section = p[start:at[0]]
    envelopes = {}
    for _ in range(take(1)[0]):
        name = take(take(1)[0]).decode()
        envelopes[name] = chunk32()
    if at[0] != len(p):
        raise Mismatch("request payload has %d bytes after the envelopes" % (len(p) - at[0]))
    request = json.loads(core)
    if list(request) != ["v", "purpose", "vault_id", "fingerprint", "epoch", "threshold",
                         "request_id", "requester", "reason", "created", "expires", "recipient",
                         "manifest_sha256", "envelopes"]:
        raise Mismatch("request core fields: %s" % list(request))
    if recover.compact_json(request) != core:
        raise Mismatch("request core is not compact JSON in field order")
    if (prefix == "BGDRC1:") != (request["purpose"] == "drill"):
        raise Mismatch("prefix %s with purpose %s" % (prefix, request["purpose"]))
    epoch, stored_body, stored_sigs = manifest_row
    if (body.decode(), signatures.decode(), request["epoch"]) != (stored_body, stored_sigs, epoch):
        raise Mismatch("the request's manifest section is not the vault's current manifest")
    if hashlib.sha256(section).hexdigest() != request["manifest_sha256"]:
        raise Mismatch("manifest_sha256")
    for name, binary in envelopes.items():
        row = db.execute("SELECT envelope FROM envelopes WHERE epoch = ? AND custodian = ?",
                         (epoch, name)).fetchone()
        if row is None or dearmor(row[0]) != binary:
            raise Mismatch("envelope of %s is not the vault's, dearmored" % name)
        if hashlib.sha256(binary).hexdigest() != request["envelopes"].get(name):
            raise Mismatch("envelope hash of %s" % name)
    if list(envelopes) != sorted(envelopes, key=str.encode):
        raise Mismatch("the payload's envelopes are not in ascending name order")
    if sorted(envelopes) != sorted(request["envelopes"]):
        raise Mismatch("envelope names differ between core and payload")
    digest = recover.argon2id_raw(core, b"breakglass/v1/read-back-words", 65536, 3, 1)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "src", "remote", "bip39-english.txt")) as f:
        words = [w.strip() for w in f if w.strip()]
    bits = int.from_bytes(digest[:16], "big")
    return [words[(bits >> (128 - 11 * (i + 1))) & 0x7FF] for i in range(6)], request, core


def check_approval(text, request, core, request_key, manifest):
    """§7.2: an approval opens with the request's ephemeral key and holds
    BGAPPR2, the request id and hash, and a share record that matches the
    manifest and its commitment. Returns the approving custodian."""
    _, payload = decode_code(text, ["BGAPR1:"])
    plaintext = recover.age_decrypt(payload, identity_text=request_key)
    if plaintext is None:
        raise Mismatch("approval does not open with the request's key")
    if plaintext[:8] != b"BGAPPR2\0":
        raise Mismatch("approval plaintext magic")
    if plaintext[8:24] != bytes.fromhex(request["request_id"]):
        raise Mismatch("approval request_id")
    if plaintext[24:56] != hashlib.sha256(core).digest():
        raise Mismatch("approval request hash")
    try:
        record = recover.parse_share_record(plaintext[56:])
    except ValueError as e:
        raise Mismatch("approval share record: %s" % e)
    entry = next((c for c in manifest["custodians"] if c["name"] == record["custodian"]), None)
    vault_id = bytes.fromhex(manifest["vault_id"])
    if entry is None or (record["vault_id"], record["epoch"], record["index"]) != \
            (vault_id, manifest["epoch"], entry["index"]):
        raise Mismatch("approval share record is not for this vault, epoch and custodian")
    if recover.share_commitment(vault_id, manifest["epoch"], record["share"]) \
            != entry["commitment"]:
        raise Mismatch("approval share of %s does not match its commitment" % entry["name"])
    return entry["name"]


def check_anchor(line, db, manifests):
    parts = line.split()
    if len(parts) != 5 or parts[0] != "BGANCHOR1" or ":" not in parts[4]:
        raise Mismatch("not a signed BGANCHOR1 line")
    _, fp, seq, head, signed = parts
    epoch, sig = signed.split(":", 1)
    first = json.loads(manifests[0][1])
    if fp != recover.fingerprint(first["vault_id"], first["genesis_verify_key"]):
        raise Mismatch("anchor fingerprint")
    row = db.execute("SELECT hash FROM audit WHERE seq = ?", (int(seq),)).fetchone()
    if row is None or row[0] != head:
        raise Mismatch("anchor head is not audit row %s's hash" % seq)
    key = {e: json.loads(b)["verify_key"] for e, b, _ in manifests}[int(epoch)]
    message = b"breakglass/v1/anchor\0" + ("%s %s %s %s" % (fp, epoch, seq, head)).encode()
    if not verify(key, message, sig):
        raise Mismatch("anchor signature")


def check_proof(text, manifest, share_of_identity):
    _, payload = decode_code(text, ["BGDRP1:"])
    proof = json.loads(payload)
    st = proof["statement"]
    order = ["v", "vault_id", "epoch", "custodian", "at", "challenge", "remote"]
    if list(st) != order:
        raise Mismatch("proof statement fields: %s" % list(st))
    entry = next((c for c in manifest["custodians"] if c["name"] == st["custodian"]), None)
    if entry is None or not entry.get("proof_key"):
        raise Mismatch("no proof_key for %s" % st["custodian"])
    message = b"breakglass/v1/drill-proof\0" + recover.compact_json(st)
    if not verify(entry["proof_key"], message, proof["signature"]):
        raise Mismatch("drill proof signature by %s's proof_key" % st["custodian"])
    if share_of_identity:
        share = share_of_identity
        vault_id = bytes.fromhex(manifest["vault_id"])
        seed = recover.hkdf_sha256(share, b"breakglass/v1/share-proof-key",
                                   vault_id + manifest["epoch"].to_bytes(8, "big") + share[:1], 32)
        if ed25519_public(seed) != entry["proof_key"]:
            raise Mismatch("proof_key of %s does not derive from their share" % st["custodian"])


def envelopes_of(db, epoch):
    return db.execute("SELECT custodian, share_index, envelope FROM envelopes WHERE epoch = ?",
                      (epoch,)).fetchall()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vault", required=True)
    parser.add_argument("--request")
    parser.add_argument("--anchor")
    parser.add_argument("--proof")
    parser.add_argument("--identity")
    parser.add_argument("--approval")
    parser.add_argument("--request-key")
    args = parser.parse_args()
    if args.approval and not (args.request and args.request_key):
        parser.error("--approval needs --request and --request-key")
    try:
        manifests = recover.read_vault(args.vault, "")["manifests"]
        current = json.loads(manifests[-1][1])
        # A checking tool run on a quiet vault: plain reads are enough here.
        db = sqlite3.connect("file:%s?mode=ro" % quote(os.path.abspath(args.vault)), uri=True)
        if args.request:
            with open(args.request) as f:
                words, request, core = check_request(f.read(), db, manifests[-1])
            print(" ".join(words))
            if args.approval:
                with open(args.request_key) as f:
                    request_key = f.read().strip()
                with open(args.approval) as f:
                    custodian = check_approval(f.read(), request, core, request_key, current)
                print("ok: approval by %s" % custodian)
        if args.anchor:
            with open(args.anchor) as f:
                check_anchor(f.read().strip(), db, manifests)
            print("ok: anchor")
        if args.proof:
            share = None
            if args.identity:
                envelopes = envelopes_of(db, current["epoch"])
                good, problems = recover.open_shares(envelopes, current,
                                                     [(args.identity, args.identity)], [])
                if not good:
                    raise Mismatch("identity: %s" % "; ".join(problems))
                share = next(iter(good.values()))
            with open(args.proof) as f:
                check_proof(f.read(), current, share)
            print("ok: drill proof")
    except (Mismatch, recover.Fail) as e:
        print("error: %s" % recover.shown(e), file=sys.stderr)
        return 1
    except Exception as e:  # a malformed code or file: one line, never a traceback
        print("error: malformed input (%s: %s)" % (type(e).__name__, recover.shown(e)[:200]),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
