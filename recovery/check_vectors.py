#!/usr/bin/env python3
"""Check the format's test vectors (tests/vectors/vault-2of3.json) with the
independent Python implementation in recover.py: a second implementation of
FORMAT.md that shares no code with the Rust crate.

    python3 recovery/check_vectors.py tests/vectors/vault-2of3.json

Prints one line per group checked and exits 1 naming the first mismatch.
Argon2id vectors need the argon2 module or command (see recover.py); the
checkpoint signature needs openssl; each is skipped, and said so, without.
"""

import hashlib
import itertools
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recover  # noqa: E402  (this directory's recover.py)

SETTINGS_LABEL = b"breakglass/v1/endorsed-settings\0"
READ_BACK_SALT = b"breakglass/v1/read-back-words"


class Mismatch(Exception):
    pass


def expect(what, want, got):
    if want != got:
        raise Mismatch("%s: the vectors say %r, Python computes %r" % (what, want, got))


compact = recover.compact_json
put_str = recover.put_str


def put_opt(value, put):
    return b"\0" if value is None else b"\1" + put(value)


def versions_digest(versions):
    return recover.versions_digest([(v["secret"], v["version"], v["ciphertext_sha256"],
                                     v["depositor"]) for v in versions])


def settings_digest(settings):
    def item(s):
        out = put_str(s["secret"]) + put_opt(s["apply_cmd"], put_str)
        out += put_opt(s["gen_length"], lambda n: n.to_bytes(4, "big"))
        out += put_opt(s["gen_charset"], put_str)
        out += put_opt(s["max_age_days"], lambda n: n.to_bytes(4, "big"))
        out += put_opt(s["expires"], put_str)
        if s.get("rotator") is not None:
            out += b"\1" + put_str(s["rotator"]) + put_str(s.get("rotator_config") or "")
        return out
    # Sorted by secret bytes; the secret is the table's key, so that is total.
    if len({s["secret"] for s in settings}) != len(settings):
        raise Mismatch("settings digest: two settings for one secret")
    count = len(settings)
    items = b"".join(item(s) for s in sorted(settings, key=lambda s: s["secret"].encode()))
    return {"count": count,
            "sha256": hashlib.sha256(SETTINGS_LABEL + count.to_bytes(8, "big") + items).hexdigest()}


def age_recipient(identity):
    if shutil.which("age-keygen") is None:
        return None
    return recover.age_recipient_of(identity)


def check(v):
    vault_id = bytes.fromhex(v["vault_id"])
    epoch, threshold = v["epoch"], v["threshold"]
    seed = bytes.fromhex(v["seed"])
    custodians = v["custodians"]

    # Shares: the record in each envelope, its commitment, and every K-subset.
    for c in custodians:
        share = bytes.fromhex(c["share"])
        record = recover.parse_share_record(bytes.fromhex(c["envelope_plaintext"]))
        expect("%s envelope plaintext" % c["name"],
               (vault_id, epoch, threshold, c["index"], c["name"], share),
               (record["vault_id"], record["epoch"], record["threshold"], record["index"],
                record["custodian"], record["share"]))
        expect("%s commitment" % c["name"], c["commitment"],
               recover.share_commitment(vault_id, epoch, share))
    for pair in itertools.combinations(custodians, threshold):
        shares = [(c["index"], bytes.fromhex(c["share"])[1:]) for c in pair]
        expect("seed from %s" % "+".join(c["name"] for c in pair), seed,
               recover.combine_shares(shares))
    named = [c for c in custodians if c["name"] in v["combined"]["from"]]
    expect("combined seed", v["combined"]["seed"],
           recover.combine_shares([(c["index"], bytes.fromhex(c["share"])[1:])
                                   for c in named]).hex())
    one = bytes.fromhex(custodians[0]["share"])
    if recover.combine_shares([(one[0], one[1:])]) == seed:
        raise Mismatch("one share alone gave the seed")
    print("ok: shares, commitments, envelope plaintexts, combined seed")

    # Keys.
    keys = v["keys"]
    expect("vault age identity", keys["age_identity"], recover.vault_age_identity(seed))
    recipient = age_recipient(keys["age_identity"])
    if recipient is not None:
        expect("vault age recipient", keys["age_recipient"], recipient)
    expect("fingerprint", keys["fingerprint"],
           recover.fingerprint(v["vault_id"], keys["ed25519_verify_key"]))
    for c in custodians:
        if "identity" in c and c["kind"] != "passphrase":
            got = age_recipient(c["identity"])
            if got is not None:
                expect("%s recipient" % c["name"], c["recipient"], got)
    print("ok: vault age identity (HKDF, bech32), fingerprint, custodian recipients")

    for c in custodians:
        if c["kind"] != "passphrase":
            continue
        params = c["kdf"]["params"]
        try:
            raw = recover.argon2id_raw(c["passphrase"].encode(), bytes.fromhex(c["kdf"]["salt"]),
                                       params["m_kib"], params["t"], params["p"])
        except recover.Fail as e:
            print("skipped: passphrase custodian %s (%s)" % (c["name"], e))
            continue
        expect("%s Argon2id output" % c["name"], c["argon2id_output"], raw.hex())
        identity = recover.bech32_encode("age-secret-key-", raw).upper()
        expect("%s identity" % c["name"], c["identity"], identity)
        got = age_recipient(identity)
        if got is not None:
            expect("%s recipient" % c["name"], c["recipient"], got)
        print("ok: passphrase custodian %s (Argon2id, identity, recipient)" % c["name"])

    # The secret's plaintext framing.
    s = v["secret"]
    expect("secret plaintext", (vault_id, s["name"], s["version"], s["value"].encode()),
           recover.parse_secret_plaintext(bytes.fromhex(s["plaintext"])))
    print("ok: secret plaintext framing")

    # The audit chain.
    prev = "0" * 64
    for row in v["audit"]:
        expect("audit row %d prev_hash" % row["seq"], row["prev_hash"], prev)
        prev = recover.audit_row_hash(tuple(row[k] for k in (
            "seq", "time", "actor", "action", "subject", "reason", "details", "prev_hash",
            "hash")))
        expect("audit row %d hash" % row["seq"], row["hash"], prev)
    print("ok: audit row hashes")

    # The checkpoint: its digests, the exact signed bytes, the signature.
    cp = v["checkpoint"]
    body = cp["body"]
    expect("endorsed versions digest", body["endorsed"]["versions"],
           versions_digest(cp["endorsed_versions"]))
    expect("endorsed settings digest", body["endorsed"]["settings"],
           settings_digest(cp["endorsed_settings"]))
    message = recover.checkpoint_message(body)
    expect("checkpoint message", cp["message"], message.hex())
    if shutil.which("openssl"):
        ok = recover.openssl_verify(keys["ed25519_verify_key"], message, cp["signature"])
        if not ok:
            raise Mismatch("checkpoint signature: openssl does not verify it")
        print("ok: checkpoint digests, message and signature (openssl)")
    else:
        print("ok: checkpoint digests and message (signature skipped: no openssl)")

    # The read-back words: Argon2id (64 MiB) of the request, 6 x 11 bits.
    rb = v["read_back_words"]
    a = rb["argon2id"]
    try:
        digest = recover.argon2id_raw(rb["request_core"].encode(), a["salt"].encode(), a["m_kib"],
                                      a["t"], a["p"])
    except recover.Fail as e:
        print("skipped: read-back words (%s)" % e)
        return
    expect("read-back hash", rb["hash"], digest.hex())
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "src", "remote", "bip39-english.txt")) as f:
        words = [w.strip() for w in f if w.strip()]
    bits = int.from_bytes(digest[:16], "big")
    expect("read-back words", rb["words"],
           [words[(bits >> (128 - 11 * (i + 1))) & 0x7FF] for i in range(6)])
    print("ok: read-back words")


def main():
    if len(sys.argv) != 2:
        print("usage: check_vectors.py VECTORS.json", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1]) as f:
            vectors = json.load(f)
        check(vectors)
    except Mismatch as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as e:
        print("error: %s: %s" % (sys.argv[1], e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
