#!/usr/bin/env bash
# Make the seed corpora in fuzz/corpus/<target>/ from real outputs of the real
# binary: a 2-of-3 vault (age custodians plus one passphrase enrolment), a
# secret, a remote request and its approval, a remote drill challenge and its
# proof, a JSONL audit export and an anchor, and the vault file itself with
# a few mutations of it.
#
#   fuzz/seeds.sh [path/to/breakglass]   (default: target/release/breakglass)
#
# Approvals are sealed to the requester's per-request key, which the fuzz
# harness does not have; the script re-seals each real approval plaintext to
# the harness's fixed key (breakglass::fuzzing::FUZZ_IDENTITY) with `age`, so
# that mutations of it reach the decoder behind the age layer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bg=${1:-$here/../target/release/breakglass}
bg=$(cd "$(dirname "$bg")" && pwd)/$(basename "$bg")
corpus=$here/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export BREAKGLASS_STATE_DIR=$work/state NO_COLOR=1
unset BREAKGLASS_VAULT
fuzz_key=$(grep -o 'AGE-SECRET-KEY-1[A-Z0-9]*' "$here/../src/fuzzing.rs")
echo "$fuzz_key" > fuzz.key
fuzz_pub=$(age-keygen -y fuzz.key)

for n in alice bob carol; do
  age-keygen -o $n.key 2>/dev/null
  age-keygen -y $n.key > $n.pub
  mkdir -p home-$n && cp $n.key home-$n/me.key
done
printf 'correct horse battery staple fuzz\n' > pass.txt
setsid --wait "$bg" custodian enroll --passphrase --name dave --passphrase-file pass.txt \
  --insecure-test-only-kdf --json > enrol.json
enrol=$(python3 -c 'import json,sys; print(json.load(open("enrol.json"))["code"])')

v=(--vault "$work/vault.db")
setsid --wait "$bg" "${v[@]}" init --threshold 2 --insecure-test-only-kdf \
  --custodian "alice=$(cat alice.pub)" --custodian "bob=$(cat bob.pub)" \
  --custodian "carol=$(cat carol.pub)" --custodian "dave=$enrol" >/dev/null
printf 'fuzz-seed-value' | setsid --wait "$bg" "${v[@]}" put vpn --kind password >/dev/null
setsid --wait "$bg" "${v[@]}" request --reason "fuzz seed" --json --out request.txt > request.json
words=$(python3 -c 'import json; print(" ".join(json.load(open("request.json"))["words"]))')
for n in alice bob; do
  cp request.txt home-$n/
  (cd home-$n && BREAKGLASS_STATE_DIR=$work/home-$n/state setsid --wait "$bg" approve \
    --request request.txt --identity me.key --words "$words" --out approval.txt >/dev/null)
done
# The request's own key, kept before the unseal uses up its pending record.
grep -rho 'AGE-SECRET-KEY-1[A-Z0-9]*' state | head -1 > request.key
setsid --wait "$bg" "${v[@]}" unseal --request request.txt --approval home-alice/approval.txt \
  --approval home-bob/approval.txt --reveal vpn --json >/dev/null
setsid --wait "$bg" "${v[@]}" drill --remote --out challenge.txt >/dev/null
cp challenge.txt home-carol/
(cd home-carol && BREAKGLASS_STATE_DIR=$work/home-carol/state setsid --wait "$bg" drill \
  --challenge challenge.txt --identity me.key --out proof.txt >/dev/null)
setsid --wait "$bg" "${v[@]}" drill --proof home-carol/proof.txt >/dev/null
setsid --wait "$bg" "${v[@]}" audit export --out export.jsonl >/dev/null 2>&1 \
  || setsid --wait "$bg" "${v[@]}" audit export > export.jsonl
setsid --wait "$bg" "${v[@]}" audit head > anchor.txt

for t in request_code drill_challenge drill_proof approval_code enrolment_code manifest \
  envelope audit_export vault_file; do
  mkdir -p "$corpus/$t"
done
seed() { cat > "$corpus/$1/$2"; }

# Codes as pasted, and their payloads (what the harness also wraps in a code).
payload() { python3 - "$1" <<'PY'
import base64, sys
body = open(sys.argv[1]).read().strip().split(":", 1)[1]
raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
n = int.from_bytes(raw[:4], "big")
sys.stdout.buffer.write(raw[4:4 + n])
PY
}
seed request_code real-request.txt < request.txt
payload request.txt | seed request_code real-request.payload
seed drill_challenge real-challenge.txt < challenge.txt
payload challenge.txt | seed drill_challenge real-challenge.payload
seed drill_proof real-proof.txt < home-carol/proof.txt
payload home-carol/proof.txt | seed drill_proof real-proof.payload
echo "$enrol" | seed enrolment_code real-enrolment.txt
echo "$enrol" > enrol.txt
payload enrol.txt | seed enrolment_code real-enrolment.payload

# Approvals: the real code, and its plaintext re-sealed to the fuzz key.
seed approval_code real-approval.txt < home-alice/approval.txt
payload home-alice/approval.txt > sealed.age
age -d -i request.key sealed.age > approval.plain
seed approval_code real-approval-plaintext.bin < approval.plain
age -r "$fuzz_pub" approval.plain | seed approval_code resealed-approval.age
python3 - <<PY
import base64, hashlib
p = open("$corpus/approval_code/resealed-approval.age", "rb").read()
c = hashlib.sha256(b"BGAPR1:" + p).digest()[:4]
raw = len(p).to_bytes(4, "big") + p + c
open("$corpus/approval_code/resealed-approval.txt", "w").write(
    "BGAPR1:" + base64.urlsafe_b64encode(raw).decode().rstrip("=") + "\n")
PY

# Envelopes: a share record (from the approval) and an age envelope to the fuzz key.
tail -c +57 approval.plain | seed envelope real-share-record.bin
tail -c +57 approval.plain | age -r "$fuzz_pub" | seed envelope resealed-share-record.age
tail -c +57 approval.plain | age -a -r "$fuzz_pub" | seed envelope resealed-share-record.armored
python3 - <<PY
import os
vid = os.urandom(16)
name = b"vpn"
rec = b"BGSECRT1" + vid + (1).to_bytes(4, "big") + len(name).to_bytes(2, "big") + name + b"fuzz-seed-value"
open("$corpus/envelope/secret-record.bin", "wb").write(rec)
PY

setsid --wait "$bg" "${v[@]}" custodian export alice --out alice-envelope.age >/dev/null
seed envelope real-envelope-alice.age < alice-envelope.age

# Manifests: every row of the vault's chain (epoch, body, signatures).
sqlite3 vault.db "select epoch, body, signatures from manifests order by epoch" -separator $'\n' \
  | seed manifest real-chain.txt

# Audit: the export, the anchor, and the export followed by its anchor.
seed audit_export real-export.jsonl < export.jsonl
seed audit_export real-anchor.txt < anchor.txt
cat export.jsonl anchor.txt | seed audit_export real-export-with-anchor.txt

# The vault file, vacuumed small (512-byte pages), and mutations of it.
# VACUUM leaves out an empty sqlite_sequence, which the schema check expects:
# a throwaway AUTOINCREMENT table brings it back.
sqlite3 vault.db "pragma page_size=512; vacuum; create table t(i integer primary key autoincrement);
  drop table t;" >/dev/null
"$bg" "${v[@]}" status >/dev/null
cp vault.db "$corpus/vault_file/real-vault.vault"
python3 - "$corpus/vault_file" <<'PY'
import random, sys
d = sys.argv[1]
real = open(d + "/real-vault.vault", "rb").read()
rng = random.Random(12)
open(d + "/truncated-half.vault", "wb").write(real[: len(real) // 2])
b = bytearray(real); b[16:18] = b"\xff\xff"; open(d + "/bad-page-size.vault", "wb").write(b)
b = bytearray(real); b[28:32] = b"\xff\xff\xff\x7f"; open(d + "/huge-page-count.vault", "wb").write(b)
for i in range(2):
    b = bytearray(real)
    for _ in range(8):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    open(d + "/bitflips-%d.vault" % i, "wb").write(b)
PY
du -sh "$corpus"
