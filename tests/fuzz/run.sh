#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] - build the libFuzzer targets with clang (ASan + UBSan) and run each for
# SECONDS (default 60), two at a time, starting from the committed seed corpora. Prints each target's
# executions and coverage; exits non-zero when a target finds a crash, a leak or undefined behaviour
# (the input is kept in build-fuzz/artifacts/ and named in the output).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
build=build-fuzz
targets=(session profile tls admin mime)

if ! command -v clang >/dev/null || [ ! -d /usr/lib/llvm-14/lib/clang ]; then
  .ci/install-deps --fuzz
fi
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DSMTPFAULT_FUZZ=ON -DSMTPFAULT_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

mkdir -p "$build/artifacts" "$build/logs"
run_one() {
  local t="$1" work="$build/corpus/$1"
  rm -rf "$work" && mkdir -p "$work" && cp -r "tests/fuzz/corpus/$t/." "$work/"
  # -rss_limit_mb: the admin target runs a whole server; -max_len: commands, profiles and records fit.
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=16384 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "$work" >"$build/logs/$t.log" 2>&1
}
status=0
pids=()
for t in "${targets[@]}"; do
  run_one "$t" & pids+=($!)
  if [ "${#pids[@]}" -ge 2 ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done

for t in "${targets[@]}"; do
  log="$build/logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  # the last status line: "#N  REDUCE/NEW/pulse/DONE cov: C ft: F corp: ..." (none if the target died early)
  cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+).*/\1 edges, \2 features/p' "$log" | tail -n 1)
  corpus=$(find "$build/corpus/$t" -type f | wc -l)
  echo "fuzz_$t: ${execs:-?} executions in ${seconds}s, coverage ${cov:-?}, corpus $corpus inputs"
  if [ -z "$execs" ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$log"; then
    echo "fuzz_$t FAILED:"
    grep -E 'ERROR:|runtime error:|SUMMARY:|Test unit written' "$log" | head -20 || tail -5 "$log"
    status=1
  fi
done
exit "$status"
