#!/usr/bin/env bash
# Heartbridge fuzzing on stable Rust (libFuzzer through libfuzzer-sys).
#
#   bash fuzz/run.sh                 every target, 60 s each
#   bash fuzz/run.sh TARGET [SECS]   one target for SECS seconds (default 60),
#                                    then minimise its corpus
#   bash fuzz/run.sh all SECS        every target in turn, SECS seconds each
#   bash fuzz/run.sh seeds [TARGET]  add the seeds made from real data to the
#                                    corpus of every target (or of TARGET)
#   bash fuzz/run.sh build [TARGET]  build the instrumented target(s) only
#
# Targets: sync_body admin_json envelope invite identity case_seal handbook apply_remote
# relay bundle.
# One fuzzer at a time, at nice 10 (the machine is shared). New inputs go
# to fuzz/target/work/TARGET, then `-merge=1` minimises them together with
# fuzz/corpus/TARGET into a new fuzz/corpus/TARGET. Crashes, timeouts and
# out-of-memory inputs land in fuzz/crashes/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$PWD
TARGETS=(sync_body admin_json envelope invite identity case_seal handbook apply_remote relay bundle)
export CARGO_TARGET_DIR="$FUZZ_DIR/target"
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
# The coverage instrumentation cargo-fuzz would ask rustc for; every flag
# here is stable. --target keeps it off build scripts and proc macros.
SANCOV="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cllvm-args=-sanitizer-coverage-stack-depth"
# Limits: a single input runs at most 10 s and the process holds at most
# 2 GiB. libFuzzer's -malloc_limit_mb needs a sanitizer's allocator, so the
# limit on one allocation (256 MiB) is enforced by the targets' global
# allocator (fuzz/src/lib.rs, CappedAlloc).
LIMITS=(-timeout=10 -rss_limit_mb=2048)

bin() { echo "$CARGO_TARGET_DIR/$TRIPLE/release/$1"; }

build() {
  local args=()
  for t in "$@"; do args+=(--bin "$t"); done
  RUSTFLAGS="$SANCOV" nice -n 10 cargo build --release --target "$TRIPLE" "${args[@]}"
}

seeds() {
  # Plain build (no instrumentation): it only writes files.
  rm -rf "$FUZZ_DIR/target/seeds"
  nice -n 10 cargo run --quiet --example seeds -- "$FUZZ_DIR/target/seeds" "$FUZZ_DIR/../handbooks"
  local targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
  for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    cp "target/seeds/$t/"* "corpus/$t/"
  done
}

fuzz() {
  local t=$1 secs=$2
  local b work log
  b=$(bin "$t")
  work="target/work/$t"
  log="target/logs/$t-$(date -u +%Y%m%dT%H%M%SZ).log"
  mkdir -p "$work" "corpus/$t" "crashes/$t" target/logs
  echo "== $t for ${secs}s (log $log)"
  # The store target's profile lives in a temp dir: on tmpfs when there is
  # one, so its fsyncs cost nothing (it is still a real SQLite file).
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
  local start_cpu end_cpu
  start_cpu=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
  set +e
  nice -n 10 "$b" "${LIMITS[@]}" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="crashes/$t/" "$work" "corpus/$t" >"$log" 2>&1
  local rc=$?
  set -e
  end_cpu=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # Minimise: the smallest set of files with the same coverage.
  rm -rf "corpus/$t.new" && mkdir "corpus/$t.new"
  nice -n 10 "$b" "${LIMITS[@]}" -merge=1 "corpus/$t.new" "corpus/$t" "$work" \
    >>"$log" 2>&1
  rm -rf "corpus/$t" "$work" && mv "corpus/$t.new" "corpus/$t"
  local ticks
  ticks=$(getconf CLK_TCK)
  printf '%s\tsecs=%s\tcpu_s=%s\texecs=%s\tcorpus=%s\tcrashes=%s\texit=%s\n' \
    "$t" "$secs" "$(( (end_cpu - start_cpu) / ticks ))" "${execs:-?}" \
    "$(ls "corpus/$t" | wc -l)" "$(ls "crashes/$t" | wc -l)" "$rc" | tee -a target/logs/summary.tsv
  if [ "$rc" -ne 0 ]; then
    echo "$t: the fuzzer stopped on a finding; see $log and crashes/$t/" >&2
    tail -40 "$log" >&2
  fi
  return "$rc"
}

cmd=${1:-all}
secs=${2:-60}
case "$cmd" in
  seeds) shift; seeds "$@" ;;
  build) shift; build "${@:-${TARGETS[@]}}" ;;
  all)
    build "${TARGETS[@]}"
    status=0
    for t in "${TARGETS[@]}"; do fuzz "$t" "$secs" || status=1; done
    exit "$status" ;;
  *)
    if [[ ! " ${TARGETS[*]} " == *" $cmd "* ]]; then
      echo "unknown target $cmd; targets: ${TARGETS[*]}" >&2; exit 2
    fi
    build "$cmd"
    fuzz "$cmd" "$secs" ;;
esac
