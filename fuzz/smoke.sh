#!/usr/bin/env bash
# CI smoke run: every fuzz target (every folder of fuzz/FastInval.Fuzz/Corpora, AmdViQueue included) under AFL++ for a short
# time (default 30 s each; 8 targets + one build stay under 5 min), one instrumented build shared by all.
# Prints "fuzz <target>: ok|FAIL" per target and exits non-zero if any target crashed or failed to run.
set -uo pipefail
SECS=${1:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
status=0
first=1
for dir in fuzz/FastInval.Fuzz/Corpora/*/; do
  target=$(basename "$dir")
  if [ $first -eq 1 ]; then reuse=0; first=0; else reuse=1; fi
  if FASTINVAL_FUZZ_REUSE_BIN=$reuse bash fuzz/run-afl.sh "$target" "$SECS"; then
    echo "fuzz $target: ok"
  else
    echo "fuzz $target: FAIL"
    status=1
  fi
done
exit $status
