#!/usr/bin/env python3
"""Open a breakglass vault without breakglass.

An independent implementation of FORMAT.md: the Python 3 standard library
(sqlite3, hashlib, hmac, subprocess) plus the stock `age` command-line tool.
It shares no code with the Rust crate. Usage:

    python3 recovery/recover.py --vault breakglass.db \\
        --identity alice.key --identity bob.key \\
        [--passphrase-file NAME=PATH]... --secret NAME \\
        [--check-with openssl [--fingerprint BG-…] [--require-endorsed]]

It prints the secret's active value to stdout (exactly its bytes; a newline
is added only when stdout is a terminal) and otherwise exits 1 with a
one-line reason. Identity files are anything `age -d -i` takes: age keys,
OpenSSH ed25519/RSA keys, age plugin identities (with the plugin installed).

Passphrase custodians need Argon2id, which the standard library lacks. The
script uses, in this order: the `argon2` Python module (argon2-cffi: Debian
`python3-argon2`, or `pip install argon2-cffi`), else the reference `argon2`
CLI (Debian `argon2`), which cannot take a salt holding a zero byte.

What it checks: each share against the commitment in the manifest, that the
combined key is the vault's (its age recipient), and each secret's framing
(vault id, name, version). What it does NOT check unless `--check-with
openssl` is given (the standard library has no Ed25519): the manifests'
signatures and epoch chain, and endorsement. With it, the last checkpoint
(its link to the row before it and its signature by the current epoch's key)
and the endorsed-versions digest it signed are checked too: a version whose
ciphertext differs from the endorsed one is refused, an unendorsed one gets a
warning (--require-endorsed refuses it). The fingerprint is always printed on
stderr; --fingerprint refuses a vault whose signed genesis key does not match
it. It never checks the rest of the audit chain, anchors, or a rollback of the
whole file to an older copy: use `breakglass audit verify` for those.

Importable helpers (used by check_vectors.py and check_codes.py): gf256_mul,
combine_shares, hkdf_sha256, bech32_encode, vault_age_identity,
share_commitment, parse_share_record, parse_secret_plaintext, fingerprint,
audit_row_hash, versions_digest, checkpoint_message, openssl_verify.
"""

import argparse
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unicodedata

SHARE_MAGIC = b"BGSHARE1"
SECRET_MAGIC = b"BGSECRT1"
SHARE_LEN = 33
COMMITMENT_LABEL = b"breakglass/v1/share-commitment"
HKDF_SALT = b"breakglass/v1/vault-seed"
LABEL_AGE = b"breakglass/v1/age-x25519-identity"
MANIFEST_LABEL = b"breakglass/v1/manifest\0"
FINGERPRINT_LABEL = b"breakglass/v1/fingerprint\0"
FINGERPRINT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
AUDIT_LABEL = b"breakglass/v1/audit-row\0"
CHECKPOINT_LABEL = b"breakglass/v1/checkpoint\0"
ENDORSED_VERSIONS_LABEL = b"breakglass/v1/endorsed-versions\0"
APPLICATION_ID = 0x42474C53
# What a pending Duo rotation holds until Duo answers: never a value.
AWAITING_PEER = b"awaiting-the-rotator's-value"
# The Argon2id parameters the binary accepts at most (KdfParams::CAP): a file
# asking for more would exhaust memory or time.
ARGON2_CAP = {"m_kib": 4 * 1024 * 1024, "t": 64, "p": 64}


class Fail(Exception):
    """A one-line reason to stop."""


def shown(text):
    """Text for the terminal: control and formatting characters (newlines,
    escape sequences, bidi overrides) from a hostile file are escaped, so one
    line stays one line and cannot redraw the screen."""
    return "".join("\\u{%x}" % ord(c) if unicodedata.category(c) in ("Cc", "Cf") else c
                   for c in str(text))


# ---- GF(256) Shamir (the AES field: x^8 + x^4 + x^3 + x + 1) ----

def gf256_mul(a, b):
    product = 0
    while b:
        if b & 1:
            product ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
        b >>= 1
    return product


def gf256_inv(a):
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(256)")
    # a^254 = a^-1 in GF(256)
    result, power, exponent = 1, a, 254
    while exponent:
        if exponent & 1:
            result = gf256_mul(result, power)
        power = gf256_mul(power, power)
        exponent >>= 1
    return result


def combine_shares(shares):
    """Lagrange interpolation at x = 0 of [(x, y_bytes), ...] (distinct x != 0)."""
    xs = [x for x, _ in shares]
    if len(set(xs)) != len(xs) or 0 in xs:
        raise ValueError("share indices must be distinct and non-zero")
    length = len(shares[0][1])
    secret = bytearray(length)
    for i, (xi, yi) in enumerate(shares):
        # l_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR.
        basis = 1
        for j, (xj, _) in enumerate(shares):
            if j != i:
                basis = gf256_mul(basis, gf256_mul(xj, gf256_inv(xj ^ xi)))
        for k in range(length):
            secret[k] ^= gf256_mul(yi[k], basis)
    return bytes(secret)


# ---- Keys ----

def hkdf_sha256(ikm, salt, info, length):
    """RFC 5869 HKDF with SHA-256."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values):
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            checksum ^= generator[i] if (top >> i) & 1 else 0
    return checksum


def bech32_encode(hrp, data):
    """BIP 173 Bech32 of `data` (bytes, regrouped to 5 bits), lowercase."""
    acc, bits, words = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            words.append((acc >> bits) & 31)
    if bits:
        words.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod(expanded + words + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32_CHARSET[w] for w in words + checksum)


def vault_age_identity(seed):
    """The epoch's age identity (AGE-SECRET-KEY-1...) from the 32-byte seed."""
    scalar = hkdf_sha256(seed, HKDF_SALT, LABEL_AGE, 32)
    return bech32_encode("age-secret-key-", scalar).upper()


def fingerprint(vault_id_hex, genesis_verify_key_hex):
    digest = hashlib.sha256(FINGERPRINT_LABEL + vault_id_hex.encode() + b"\0"
                            + genesis_verify_key_hex.encode()).digest()
    bits = int.from_bytes(digest[:10], "big")
    chars = "".join(FINGERPRINT_ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(16)))
    return "BG-" + "-".join(chars[i:i + 4] for i in range(0, 16, 4))


def compact_json(value):
    """JSON as serde_json writes it: no whitespace, keys in the given order,
    non-ASCII as UTF-8, control characters escaped."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# ---- Records ----

def share_commitment(vault_id, epoch, share):
    """hex SHA-256(label || vault_id || u64_be(epoch) || index || share)."""
    return hashlib.sha256(COMMITMENT_LABEL + vault_id + epoch.to_bytes(8, "big")
                          + share[:1] + share).hexdigest()


def parse_share_record(data):
    """BGSHARE1 || vault_id(16) || epoch(u64 BE) || K || index || len || name || share(33)."""
    if len(data) < 8 + 16 + 8 + 3 or data[:8] != SHARE_MAGIC:
        raise ValueError("not a share record")
    vault_id = data[8:24]
    epoch = int.from_bytes(data[24:32], "big")
    threshold, index, name_len = data[32], data[33], data[34]
    name = data[35:35 + name_len]
    share = data[35 + name_len:]
    if len(name) != name_len or len(share) != SHARE_LEN:
        raise ValueError("share record has the wrong length")
    return {"vault_id": vault_id, "epoch": epoch, "threshold": threshold,
            "index": index, "custodian": name.decode("utf-8"), "share": share}


def parse_secret_plaintext(data):
    """BGSECRT1 || vault_id(16) || version(u32 BE) || u16_be(len) || name || value."""
    if len(data) < 8 + 16 + 4 + 2 or data[:8] != SECRET_MAGIC:
        raise ValueError("not a secret record")
    vault_id = data[8:24]
    version = int.from_bytes(data[24:28], "big")
    name_len = int.from_bytes(data[28:30], "big")
    name = data[30:30 + name_len]
    if len(name) != name_len:
        raise ValueError("secret record is truncated")
    return vault_id, name.decode("utf-8"), version, data[30 + name_len:]


# ---- age ----

def age_decrypt(armored, identity_path=None, identity_text=None):
    """Decrypt (armored text or binary bytes) with the stock age CLI. A
    derived identity goes through a pipe, never argv, the environment or a
    file. Returns bytes, or None."""
    if shutil.which("age") is None:
        raise Fail("the `age` command is not installed (Debian: apt-get install age)")
    pass_fds, read_end = (), None
    if identity_text is not None:
        read_end, write_end = os.pipe()
        os.write(write_end, identity_text.encode() + b"\n")
        os.close(write_end)
        identity_path = "/dev/fd/%d" % read_end
        pass_fds = (read_end,)
    try:
        data = armored if isinstance(armored, bytes) else armored.encode()
        result = subprocess.run(["age", "-d", "-i", identity_path], input=data,
                                capture_output=True, pass_fds=pass_fds, check=False)
    finally:
        if read_end is not None:
            os.close(read_end)
    return result.stdout if result.returncode == 0 else None


def age_recipient_of(identity_text):
    read_end, write_end = os.pipe()
    os.write(write_end, identity_text.encode() + b"\n")
    os.close(write_end)
    try:
        result = subprocess.run(["age-keygen", "-y", "/dev/fd/%d" % read_end], capture_output=True,
                                pass_fds=(read_end,), check=False)
    finally:
        os.close(read_end)
    return result.stdout.decode().strip() if result.returncode == 0 else None


# ---- Passphrase custodians (Argon2id) ----

def argon2id_raw(passphrase, salt, m_kib, t, p, use="auto"):
    """Argon2id v1.3, 32 bytes, no secret or associated data. `use`: auto
    (the module, else the command), python (argon2-cffi) or cli (`argon2`)."""
    if use in ("auto", "python"):
        try:
            from argon2.low_level import Type, hash_secret_raw  # argon2-cffi
            return hash_secret_raw(passphrase, salt, time_cost=t, memory_cost=m_kib,
                                   parallelism=p, hash_len=32, type=Type.ID, version=19)
        except ImportError:
            if use == "python":
                raise Fail("--argon2 python: the argon2 module is not installed (Debian "
                           "`python3-argon2`, or `pip install argon2-cffi`)")
    if shutil.which("argon2") is None:
        raise Fail("a passphrase custodian needs Argon2id: install Debian `python3-argon2` "
                   "(or `pip install argon2-cffi`), or the `argon2` command")
    if len(passphrase) >= 128:
        raise Fail("this passphrase is 128 bytes or longer, which the `argon2` command cannot "
                   "take: install Debian `python3-argon2` (or `pip install argon2-cffi`)")
    if b"\0" in salt:
        raise Fail("this custodian's Argon2id salt holds a zero byte, which the `argon2` command "
                   "cannot take: install Debian `python3-argon2` (or `pip install argon2-cffi`)")
    # The passphrase goes on stdin; the salt (not secret) on the command line.
    result = subprocess.run(["argon2", salt, "-id", "-t", str(t), "-k", str(m_kib),
                             "-p", str(p), "-l", "32", "-r"], input=passphrase,
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise Fail("the argon2 command failed: " + result.stderr.decode(errors="replace").strip())
    return bytes.fromhex(result.stdout.decode().strip())


# ---- The vault ----

def read_vault(path, secret_name):
    """Everything recovery needs, read in one read transaction and then
    closed: a breakglass command committing meanwhile (a new epoch deletes the
    old envelopes) is seen wholly or not at all, and the vault is locked for
    milliseconds, not for the Argon2 and age work that follows."""
    if not os.path.isfile(path):
        raise Fail("vault %s: no such file; give the vault file with --vault" % path)
    from urllib.parse import quote
    uri = "file:%s?mode=ro" % quote(os.path.abspath(path))

    def snapshot(*connect, **options):
        db = sqlite3.connect(*connect, isolation_level=None, **options)
        try:
            return read_all(db)
        finally:
            db.close()

    def read_all(db):
        db.execute("BEGIN")
        if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            raise Fail("vault %s is not a breakglass vault (its SQLite application_id is not "
                       "0x42474C53)" % path)
        manifests = db.execute("SELECT epoch, body, signatures FROM manifests ORDER BY epoch")\
            .fetchall()
        if not manifests:
            raise Fail("vault %s has no manifest; it is not a breakglass vault" % path)
        envelopes = db.execute("SELECT custodian, share_index, envelope FROM envelopes "
                               "WHERE epoch = ?", (json.loads(manifests[-1][1])["epoch"],))\
            .fetchall()
        secret = db.execute("SELECT name FROM secrets WHERE name = ?", (secret_name,)).fetchone()
        active = db.execute("SELECT version, ciphertext FROM secret_versions WHERE secret = ? "
                            "AND state = 'active'", (secret_name,)).fetchall()
        columns = "seq, time, actor, action, subject, reason, details, prev_hash, hash"
        checkpoint = db.execute("SELECT %s FROM audit WHERE action = 'checkpoint' ORDER BY seq "
                                "DESC LIMIT 1" % columns).fetchone()
        before = checkpoint and db.execute("SELECT %s FROM audit WHERE seq = ?" % columns,
                                           (checkpoint[0] - 1,)).fetchone()
        has_endorsed = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                  "name = 'endorsed_versions'").fetchone()[0]
        endorsed = db.execute("SELECT secret, version, ciphertext_sha256, depositor FROM "
                              "endorsed_versions").fetchall() if has_endorsed else []
        db.execute("COMMIT")
        return {"manifests": manifests, "envelopes": envelopes,
                "secret_exists": secret is not None,
                "active": active, "checkpoint": checkpoint, "before_checkpoint": before,
                "endorsed_versions": endorsed}

    try:
        try:
            return snapshot(uri, uri=True, timeout=30)
        except sqlite3.OperationalError as e:
            if "unable to open" not in str(e) and "readonly" not in str(e):
                raise
            journal = path + "-journal"
            if os.path.isfile(journal) and os.path.getsize(journal) > 0:
                # A command was killed mid-write and left its rollback journal:
                # SQLite must roll it back before reading, which a read-only
                # open cannot. Do it on a private copy; the original stays as is.
                with tempfile.TemporaryDirectory() as work:
                    copy = os.path.join(work, "vault.db")
                    shutil.copyfile(path, copy)
                    shutil.copyfile(journal, copy + "-journal")
                    return snapshot(copy)
            # A copy on read-only media with no journal: read it as is.
            return snapshot(uri + "&immutable=1", uri=True)
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            raise Fail("vault %s stayed locked by another process for 30 s; retry when the "
                       "breakglass command using it has finished" % path)
        raise Fail("vault %s is not a breakglass vault (%s)" % (path, e))
    except sqlite3.DatabaseError as e:
        raise Fail("vault %s is not a breakglass vault (%s)" % (path, e))


def open_shares(envelopes, manifest, identities, passphrases, argon2_use="auto"):
    """Decrypt the envelopes the given keys open; check each share. Returns
    {custodian: share bytes} of good shares, and the problems found."""
    vault_id = bytes.fromhex(manifest["vault_id"])
    epoch = manifest["epoch"]
    custodians = {c["name"]: c for c in manifest["custodians"]}
    good, problems, opened = {}, [], set()

    def take(custodian, index, plaintext):
        entry = custodians.get(custodian)
        try:
            record = parse_share_record(plaintext)
        except ValueError as e:
            problems.append("custodian %s: envelope holds no valid share (%s)" % (custodian, e))
            return
        if entry is None:
            problems.append("custodian %s: not in the manifest" % custodian)
        elif (record["vault_id"], record["epoch"], record["custodian"], record["index"],
              record["share"][0], record["threshold"]) != (vault_id, epoch, custodian,
                                                           entry["index"], entry["index"],
                                                           manifest["threshold"]) \
                or index != entry["index"]:
            problems.append("custodian %s: the share is for another vault, epoch, custodian or "
                            "threshold" % custodian)
        elif share_commitment(vault_id, epoch, record["share"]) != entry["commitment"]:
            problems.append("custodian %s: the share does not match its commitment (tampered)"
                            % custodian)
        else:
            good[custodian] = record["share"]

    for label, path in identities:
        if not os.path.isfile(path):
            raise Fail("identity %s: no such file" % path)
        owner = custodian_of_key(path, manifest["custodians"])
        if owner is not None and owner not in opened:
            # Its custodian is known from the public key: only their envelope.
            row = [e for e in envelopes if e[0] == owner]
            plaintext = age_decrypt(row[0][2], identity_path=path) if row else None
            if plaintext is None:
                problems.append("custodian %s: their envelope does not open with their key %s "
                                "(damaged or tampered)" % (owner, label))
            else:
                opened.add(owner)
                take(owner, row[0][1], plaintext)
            continue
        matched = False
        for custodian, index, envelope in envelopes:
            if custodian in opened:
                continue
            plaintext = age_decrypt(envelope, identity_path=path)
            if plaintext is not None:
                opened.add(custodian)
                matched = True
                take(custodian, index, plaintext)
                break
        if not matched:
            problems.append("identity %s opens no envelope of epoch %d (another vault, an old "
                            "epoch, or a custodian who was removed)" % (label, epoch))
    for name, path in passphrases:
        entry = custodians.get(name)
        if entry is None or entry["kind"] != "passphrase" or not entry.get("kdf"):
            raise Fail("--passphrase-file %s: %s is not a passphrase custodian of this vault"
                       % (name, name))
        try:
            with open(path, "rb") as f:
                passphrase = f.read()
        except OSError as e:
            raise Fail("--passphrase-file %s: cannot read %s (%s)" % (name, path, e.strerror))
        if passphrase.endswith(b"\n"):  # one final newline (LF or CRLF) is not part of it
            passphrase = passphrase[:-1]
            if passphrase.endswith(b"\r"):
                passphrase = passphrase[:-1]
        kdf = entry["kdf"]
        params = kdf["params"]
        over = ["%s=%s" % (k, params.get(k)) for k in ("m_kib", "t", "p")
                if not isinstance(params.get(k), int) or not 1 <= params[k] <= ARGON2_CAP[k]]
        if over:
            raise Fail("custodian %s: Argon2id parameters %s are outside what breakglass accepts "
                       "(m_kib <= %d, t <= %d, p <= %d): the manifest was edited"
                       % (name, ", ".join(over), ARGON2_CAP["m_kib"], ARGON2_CAP["t"],
                          ARGON2_CAP["p"]))
        key = argon2id_raw(passphrase, bytes.fromhex(kdf["salt"]), params["m_kib"], params["t"],
                           params["p"], argon2_use)
        identity = bech32_encode("age-secret-key-", key).upper()
        for custodian, index, envelope in envelopes:
            if custodian == name:
                plaintext = age_decrypt(envelope, identity_text=identity)
                if plaintext is None:
                    problems.append("passphrase of %s does not open their envelope (wrong "
                                    "passphrase?)" % name)
                else:
                    opened.add(custodian)
                    take(custodian, index, plaintext)
    return good, problems


def custodian_of_key(path, custodians):
    """The custodian whose recipient is this key file's public key (age or
    OpenSSH keys), or None (a plugin identity, or no match)."""
    public = None
    for cmd in (["age-keygen", "-y", path], ["ssh-keygen", "-y", "-f", path]):
        if shutil.which(cmd[0]) is None:
            continue
        result = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, check=False)
        if result.returncode == 0 and result.stdout.strip():
            public = result.stdout.decode().split()
            break
    if not public:
        return None
    for c in custodians:
        if c["recipient"].split()[:2] == public[:2]:
            return c["name"]
    return None


def openssl_verify(key_hex, message, sig_hex):
    """Ed25519 verification with the `openssl` command (public data only)."""
    with tempfile.TemporaryDirectory() as work:
        key, msg, sig = (os.path.join(work, n) for n in ("key.der", "msg", "sig"))
        with open(key, "wb") as f:
            f.write(ED25519_SPKI_PREFIX + bytes.fromhex(key_hex))
        with open(msg, "wb") as f:
            f.write(message)
        with open(sig, "wb") as f:
            f.write(bytes.fromhex(sig_hex))
        return subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER",
                               "-inkey", key, "-rawin", "-in", msg, "-sigfile", sig],
                              capture_output=True, check=False).returncode == 0


def check_signatures(rows, tool):
    """Verify every manifest's Ed25519 signatures and the chain from epoch 1."""
    if tool != "openssl" or shutil.which("openssl") is None:
        raise Fail("--check-with openssl: the `openssl` command is not installed")
    previous = None
    for epoch, body, signatures in rows:
        manifest = json.loads(body)
        sigs = {s["key"]: s["sig"] for s in json.loads(signatures)}
        message = MANIFEST_LABEL + body.encode()
        key = manifest["verify_key"]
        if manifest["epoch"] != epoch or key not in sigs or \
                not openssl_verify(key, message, sigs[key]):
            raise Fail("manifest of epoch %d: its own signature does not verify (tampered)"
                       % epoch)
        if previous is None:
            if key != manifest["genesis_verify_key"]:
                raise Fail("manifest of epoch %d: the first key is not the genesis key" % epoch)
        else:
            old_key = previous[0]["verify_key"]
            linked = manifest.get("prev_manifest_hash") == \
                hashlib.sha256(previous[1].encode()).hexdigest()
            if not linked or old_key not in sigs or not openssl_verify(old_key, message,
                                                                       sigs[old_key]):
                raise Fail("manifest of epoch %d: not signed by epoch %d's key (tampered)"
                           % (epoch, previous[0]["epoch"]))
        previous = (manifest, body)


def audit_row_hash(row):
    """FORMAT.md §6.1: SHA-256(label || prev_hash || compact JSON of the row)."""
    seq, time, actor, action, subject, reason, details, prev_hash, _ = row
    return hashlib.sha256(AUDIT_LABEL + prev_hash.encode() + compact_json(
        [seq, time, actor, action, subject, reason, details])).hexdigest()


def put_str(text):
    data = text.encode()
    return len(data).to_bytes(4, "big") + data


def versions_digest(versions):
    """FORMAT.md §6.2: the endorsed-versions digest of (secret, version,
    ciphertext_sha256, depositor) items."""
    items = b"".join(put_str(v[0]) + v[1].to_bytes(4, "big") + put_str(v[2]) + put_str(v[3])
                     for v in sorted(versions, key=lambda v: (v[0].encode(), v[1], v[2], v[3])))
    count = len(versions)
    return {"count": count, "sha256": hashlib.sha256(
        ENDORSED_VERSIONS_LABEL + count.to_bytes(8, "big") + items).hexdigest()}


def checkpoint_message(body):
    """FORMAT.md §6.2, digest format: the signed bytes, keys in the spec's
    order (the stored details may order them otherwise)."""
    digests = body["endorsed"]
    signed = {"vault_id": body["vault_id"], "epoch": body["epoch"], "seq": body["seq"],
              "head": body["head"], "endorsed": {
                  part: {"count": digests[part]["count"], "sha256": digests[part]["sha256"]}
                  for part in ("versions", "settings")}}
    return CHECKPOINT_LABEL + compact_json(signed)


def check_endorsement(vault, manifest, secret, version, ciphertext):
    """With the manifest chain verified: is the active version the one the last
    checkpoint (signed by the current epoch's key) endorsed? Returns whether it
    is, and a line for stderr; raises Fail when the endorsed ciphertext differs
    (a planted value)."""
    checkpoint, before = vault["checkpoint"], vault["before_checkpoint"]
    if checkpoint is None or before is None:
        return False, "warning: the log holds no checkpoint, so nothing counts as endorsed"
    seq = checkpoint[0]

    def nothing(why):
        return False, ("warning: the last checkpoint (audit row %d) %s, so nothing counts as "
                       "endorsed" % (seq, why))
    if audit_row_hash(checkpoint) != checkpoint[8] or audit_row_hash(before) != before[8] \
            or checkpoint[7] != before[8]:
        return nothing("is not chained to the row before it (the log was edited)")
    try:
        details = json.loads(checkpoint[6])
        body, signature = details["body"], details["signature"]
        signs_before = body["vault_id"] == manifest["vault_id"] and body["seq"] == before[0] \
            and body["head"] == before[8]
    except (ValueError, KeyError, TypeError):
        signs_before = False
    if not signs_before:
        return nothing("does not sign the row before it")
    if body["epoch"] != manifest["epoch"]:
        return nothing("is from epoch %s, but the vault is at epoch %d (rows were erased)"
                       % (body["epoch"], manifest["epoch"]))
    if "endorsed" not in body or "versions" in body:
        return nothing("is in the older inline format, which this script does not check (run "
                       "`breakglass list`)")
    try:
        message = checkpoint_message(body)
    except (KeyError, TypeError):
        return nothing("is unreadable")
    if not openssl_verify(manifest["verify_key"], message, signature):
        return nothing("is not signed by epoch %d's key (forged)" % manifest["epoch"])
    endorsed = vault["endorsed_versions"]
    try:
        endorsed_digest = versions_digest(endorsed)
    except (AttributeError, TypeError, OverflowError):
        endorsed_digest = None
    if endorsed_digest != body["endorsed"]["versions"]:
        return nothing("signed a digest the endorsed_versions table does not hash to (the table "
                       "was edited)")
    digest = hashlib.sha256(ciphertext.encode()).hexdigest()
    for name, number, sha, _ in endorsed:
        if (name, number) == (secret, version):
            if sha != digest:
                raise Fail("secret %s version %d is not the ciphertext checkpoint %d endorsed "
                           "(the vault file was tampered with): nothing printed; restore from a "
                           "trusted copy" % (secret, version, seq))
            return True, ("checked: secret %s version %d is endorsed by the checkpoint at audit "
                          "row %d (epoch %d)" % (secret, version, seq, manifest["epoch"]))
    return False, ("warning: secret %s version %d is not endorsed by the last checkpoint (audit "
                   "row %d): deposited or rotated since the last quorum session, or planted in "
                   "the file; check it is genuine before using it" % (secret, version, seq))


def recover(args):
    vault = read_vault(args.vault, args.secret)
    rows = vault["manifests"]
    if args.check_with:
        check_signatures(rows, args.check_with)
    epoch, body, _ = rows[-1]
    manifest = json.loads(body)
    check_manifest_shape(manifest)
    vault_id = bytes.fromhex(manifest["vault_id"])
    vault_fingerprint = fingerprint(manifest["vault_id"], manifest["genesis_verify_key"])
    print("vault %s, epoch %d, %d of %d custodians" % (
        vault_fingerprint, manifest["epoch"], manifest["threshold"], len(manifest["custodians"])),
        file=sys.stderr)
    if args.fingerprint:
        if args.fingerprint.strip().upper() != vault_fingerprint:
            raise Fail("this vault's fingerprint is %s, not %s: it is another vault, or a "
                       "replaced one; nothing printed" % (vault_fingerprint, args.fingerprint))
    elif args.check_with:
        print("warning: compare the fingerprint %s with the one your custodians hold (or give "
              "--fingerprint): the signatures only prove the file is self-consistent"
              % vault_fingerprint, file=sys.stderr)
    identities = [(p, p) for p in args.identity]
    passphrases = []
    for spec in args.passphrase_file:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise Fail("--passphrase-file %s: give NAME=PATH" % spec)
        passphrases.append((name, path))
    good, problems = open_shares(vault["envelopes"], manifest, identities, passphrases,
                                 args.argon2)
    for problem in problems:
        print("warning: " + shown(problem), file=sys.stderr)
    threshold = manifest["threshold"]
    if len(good) < threshold:
        reason = "; ".join(problems) if problems else "each key given opened one envelope"
        raise Fail("%d good share(s) of the %d needed for vault %s epoch %d (%s): give more "
                   "custodians' keys with --identity or --passphrase-file"
                   % (len(good), threshold, fingerprint(manifest["vault_id"],
                                                        manifest["genesis_verify_key"]),
                      epoch, reason))
    chosen = sorted(good.items())[:threshold]
    seed = combine_shares([(share[0], share[1:]) for _, share in chosen])
    identity = vault_age_identity(seed)
    if age_recipient_of(identity) != manifest["vault_recipient"]:
        raise Fail("the shares of %s do not combine to this vault's key (a share is damaged)"
                   % ", ".join(name for name, _ in chosen))
    if not vault["secret_exists"]:
        raise Fail("secret %s: not in this vault; `sqlite3 %s 'SELECT name FROM secrets'` lists "
                   "them" % (args.secret, args.vault))
    active = vault["active"]
    if len(active) != 1:
        raise Fail("secret %s: %d active versions; the vault file was edited" % (args.secret,
                                                                              len(active)))
    version, ciphertext = active[0]
    if args.check_with:
        endorsed, line = check_endorsement(vault, manifest, args.secret, version, ciphertext)
        print(shown(line), file=sys.stderr)
        if args.require_endorsed and not endorsed:
            raise Fail("secret %s version %d is not endorsed (see the warning above) and "
                       "--require-endorsed was given: nothing printed" % (args.secret, version))
    plaintext = age_decrypt(ciphertext, identity_text=identity)
    if plaintext is None:
        raise Fail("secret %s version %d does not decrypt with this epoch's key (tampered, or "
                   "sealed to an older epoch)" % (args.secret, version))
    try:
        bound_id, bound_name, bound_version, value = parse_secret_plaintext(plaintext)
    except ValueError as e:
        raise Fail("secret %s version %d: %s (tampered)" % (args.secret, version, e))
    if (bound_id, bound_name, bound_version) != (vault_id, args.secret, version):
        raise Fail("secret %s version %d holds %s version %d (moved between rows: tampered)"
                   % (args.secret, version, bound_name, bound_version))
    if value == AWAITING_PEER:
        raise Fail("secret %s version %d holds the placeholder a Duo rotation keeps until Duo "
                   "answers, not a value: the vault file was edited" % (args.secret, version))
    return value


def check_manifest_shape(manifest):
    """The fields recovery relies on have the types FORMAT.md gives (a hostile
    edit gets one line, not a traceback)."""
    def integer(value, low, high):
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    custodians = manifest.get("custodians")
    ok = integer(manifest.get("epoch"), 1, 2 ** 63) and isinstance(custodians, list) \
        and integer(manifest.get("threshold"), 1, max(1, min(255, len(custodians)))) \
        and all(isinstance(c, dict) and isinstance(c.get("name"), str)
                and integer(c.get("index"), 1, 255) and isinstance(c.get("commitment"), str)
                and isinstance(c.get("recipient"), str) for c in custodians) \
        and all(isinstance(manifest.get(k), str) for k in (
            "vault_id", "genesis_verify_key", "verify_key", "vault_recipient"))
    if not ok:
        raise Fail("the newest manifest is malformed (epoch, threshold, custodians or keys): the "
                   "vault file was edited")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Recover a secret from a breakglass vault without breakglass (FORMAT.md). "
                    "Checks shares against their commitments and each secret's framing; does NOT "
                    "check signatures or endorsement (unless --check-with openssl) or the audit "
                    "log.")
    parser.add_argument("--vault", required=True, help="the vault file (SQLite)")
    parser.add_argument("--identity", action="append", default=[], metavar="FILE",
                        help="a custodian's age key, OpenSSH key or plugin identity (repeatable)")
    parser.add_argument("--passphrase-file", action="append", default=[], metavar="NAME=PATH",
                        help="a passphrase custodian's passphrase, from a file (repeatable)")
    parser.add_argument("--secret", required=True, metavar="NAME", help="the secret to print")
    parser.add_argument("--argon2", choices=["auto", "python", "cli"], default="auto",
                        help="Argon2id for passphrase custodians: the argon2 Python module "
                             "(argon2-cffi), the `argon2` command, or the first found (default)")
    parser.add_argument("--check-with", choices=["openssl"],
                        help="also verify, with openssl, the manifests' Ed25519 signatures and "
                             "that the active version is the one the last checkpoint endorsed")
    parser.add_argument("--fingerprint", metavar="BG-XXXX-XXXX-XXXX-XXXX",
                        help="the vault fingerprint the custodians hold; with --check-with, a "
                             "vault whose signed genesis key does not match is refused")
    parser.add_argument("--require-endorsed", action="store_true",
                        help="with --check-with: refuse a version the last checkpoint did not "
                             "endorse, instead of printing it with a warning")
    args = parser.parse_args(argv)
    if (args.fingerprint or args.require_endorsed) and not args.check_with:
        parser.error("--fingerprint and --require-endorsed need --check-with openssl: without "
                     "signatures neither proves anything")
    if not args.check_with:
        print("note: signatures and endorsement are not checked (see --check-with openssl), nor "
              "the audit log (see `breakglass audit verify`)", file=sys.stderr)
    try:
        value = recover(args)
    except Fail as e:
        print("error: %s" % shown(e), file=sys.stderr)
        return 1
    except Exception as e:  # a hostile file must give one line, never a traceback
        print("error: the vault file is malformed or unreadable (%s: %s)"
              % (type(e).__name__, shown(str(e))[:200]), file=sys.stderr)
        return 1
    sys.stdout.buffer.write(value)
    if sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
