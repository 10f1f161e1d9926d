#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS, one after another.
#
#   fuzz/run.sh SECONDS [target...]        (default: all targets)
#
# Plain cargo on stable Rust: libfuzzer-sys links libFuzzer, and the RUSTFLAGS below add
# the SanitizerCoverage instrumentation cargo-fuzz would (no AddressSanitizer: that needs
# nightly; Rust's bounds checks, debug assertions and overflow checks stay on instead).
# The targets build for an explicit --target so build scripts are not instrumented.
# Not --locked: fuzz/Cargo.lock follows tandem-server's dependencies when they change.
#
# Each target first replays fuzz/regressions/<target>/ (inputs that once failed), then
# fuzzes with fuzz/corpus/<target>/ (generated, not committed) plus the committed
# fuzz/seeds/<target>/. Crashes, timeouts and out-of-memory inputs are written to
# fuzz/artifacts/<target>/ and make the script exit 1 after all targets ran.
#
# Environment: FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT (seconds per input, default 10),
# FUZZ_EXTRA (more libFuzzer flags, e.g. "-jobs=1").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
all_targets=(resp inline rdb aof config glob stream list lua_decode script)

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [target...]   targets: ${all_targets[*]}" >&2
    exit 2
fi
seconds="$1"
shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "unknown target: $t" >&2; exit 2; }
done

rss_mb="${FUZZ_RSS_MB:-2048}"
per_input_timeout="${FUZZ_TIMEOUT:-10}"
host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"

cd "$here"
build_start=$(date +%s)
cargo build --release --target "$host" --bins
echo "fuzz: build took $(( $(date +%s) - build_start )) s"
bin_dir="$here/target/$host/release"

# Files the aof and config targets write go to a scratch dir (tmpfs when there is one),
# removed when the script exits, however it exits.
scratch_base=/dev/shm
[ -d "$scratch_base" ] && [ -w "$scratch_base" ] || scratch_base="${TMPDIR:-/tmp}"
scratch="$(mktemp -d -p "$scratch_base" tandem-fuzz.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
export TANDEM_FUZZ_SCRATCH="$scratch"

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="$here/corpus/$t"
    artifacts="$here/artifacts/$t"
    log="$here/artifacts/$t.log"
    mkdir -p "$corpus" "$artifacts"
    flags=(-rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -timeout="$per_input_timeout"
        -artifact_prefix="$artifacts/" -print_final_stats=1)

    regressions=("$here/regressions/$t"/*)
    if [ -e "${regressions[0]}" ]; then
        if ! "$bin_dir/$t" "${flags[@]}" "${regressions[@]}" >"$log.regressions" 2>&1; then
            echo "fuzz: $t: a regression input fails again (see $log.regressions)"
            failed+=("$t(regression)")
        fi
    fi

    echo "fuzz: $t: running for $seconds s"
    # shellcheck disable=SC2086 # FUZZ_EXTRA is a list of flags
    if "$bin_dir/$t" "${flags[@]}" -max_total_time="$seconds" ${FUZZ_EXTRA:-} \
        "$corpus" "$here/seeds/$t" >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
        grep -E -m1 -A4 "panicked at|ERROR: libFuzzer" "$log" || true
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\)\/\([0-9a-zA-Z]*\).*/cov \1, features \2, corpus \3 (\4)/p' <<<"$last")
    line="$t: $status; ${execs:-?} execs (${rate:-?}/s), ${cov:-no stats}, peak rss ${rss:-?} MB"
    echo "fuzz: $line"
    summary+=("$line")
done

echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in $here/artifacts/)"
    exit 1
fi
