#!/usr/bin/env bash
# The long fuzzing run whose figures SECURITY.md records ("Fuzzing figures"):
# each target named (default: all) for SECONDS (default 600) seconds, starting
# from its committed seed corpus. New inputs go to a scratch corpus under
# $CARGO_TARGET_DIR (default fuzz/target), never into fuzz/corpus; a crash is
# written to fuzz/artifacts/<target>/ and ends that target's run.
#
#   SECONDS_PER_TARGET=600 fuzz/long-run.sh [TARGET...]
#
# Prints one line per target: executions, new units, and the crash count.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
seconds=${SECONDS_PER_TARGET:-600}
scratch=${CARGO_TARGET_DIR:-$here/target}/fuzz-run
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request_code drill_challenge drill_proof approval_code \
  enrolment_code manifest envelope audit_export vault_file)
mkdir -p "$scratch"
for t in "${targets[@]}"; do
  mkdir -p "$scratch/corpus/$t"
  log=$scratch/$t.log
  start=$(date -u +%FT%TZ)
  cargo +nightly fuzz run -O -a "$t" "$scratch/corpus/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=20 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1)
  echo "$t: started $start, exit $rc, executions ${execs:-?} (${took:-no final line}), crash artifacts $crashes"
done
