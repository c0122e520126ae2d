#!/bin/sh
# run.sh NAME SECONDS FUZZ_DIR CORPUS [libFuzzer options...]
#
# One libFuzzer run of FUZZ_DIR/fuzz_NAME for SECONDS seconds (what `make
# fuzz` and `make fuzz-short` call, from the repository root). CORPUS is a
# working copy: it gets the committed seeds of tests/fuzz/corpus/NAME
# first, and keeps what the run finds (`make fuzz-merge` takes the new
# inputs that add coverage into tests/fuzz/corpus/NAME). The run uses
# tests/fuzz/NAME.dict and writes crash, leak and timeout reproducers to
# FUZZ_DIR/artifacts/NAME-*; its whole output goes to FUZZ_DIR/NAME.log.
# Prints libFuzzer's final figures; exits non-zero on any finding.
set -eu

name=$1
secs=$2
dir=$3
corpus=$4
shift 4

case $name in
cid) maxlen=512 ;;
*) maxlen=65536 ;;
esac
bin=$dir/fuzz_$name
log=$dir/$name.log

mkdir -p "$corpus" "$dir/artifacts"
cp -R "tests/fuzz/corpus/$name/." "$corpus/"

# UBSan aborts through -fno-sanitize-recover; a stack with each report.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export UBSAN_OPTIONS

echo "fuzz_$name: ${secs}s on $corpus (log $log)"
set +e
"$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=30 \
	-dict="tests/fuzz/$name.dict" -artifact_prefix="$dir/artifacts/$name-" \
	-print_final_stats=1 "$@" "$corpus" >"$log" 2>&1
rc=$?
set -e

# The final status line ("#N DONE cov: .. ft: .. corp: ..") and the
# stat:: lines of -print_final_stats.
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs|^stat::' "$log" |
	sed "s/^/  fuzz_$name: /"
if [ "$rc" -ne 0 ]; then
	echo "fuzz_$name: FINDING (exit $rc); the end of $log:" >&2
	tail -n 80 "$log" >&2
	ls -l "$dir/artifacts/" >&2
	exit 1
fi
echo "fuzz_$name: no finding; corpus $(ls "$corpus" | wc -l) files"
