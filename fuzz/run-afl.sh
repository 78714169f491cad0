#!/usr/bin/env bash
# Fuzzes one FastInval target with AFL++ through SharpFuzz.
#
#   fuzz/run-afl.sh TARGET SECONDS [--update-corpus]
#
# Installs what it needs (Debian afl++, the SharpFuzz instrumenter as a local dotnet tool), publishes the fuzz host,
# instruments the product assembly, runs afl-fuzz for SECONDS with the target's seed corpus and the dictionary of the
# formats' magic values, prints AFL's statistics, and exits non-zero with a replay command when AFL saved a crash
# (an exception escaping the product, or an oracle failure turned into a crash by the host). With --update-corpus,
# new inputs are minimized with afl-cmin into fuzz/FastInval.Fuzz/Corpora/TARGET.
#
# Environment: FASTINVAL_FUZZ_REUSE_BIN=1 reuses an instrumented build from an earlier run in the same checkout
# (the CI smoke run publishes once for all targets).
set -euo pipefail
TARGET=${1:?usage: fuzz/run-afl.sh TARGET SECONDS [--update-corpus]}
SECS=${2:-60}
UPDATE=${3:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT="artifacts/fuzz/$TARGET"
BIN="artifacts/fuzz/bin"
CORPUS="fuzz/FastInval.Fuzz/Corpora/$TARGET"
[ -d "$CORPUS" ] || { echo "no corpus folder $CORPUS (targets: $(ls fuzz/FastInval.Fuzz/Corpora | tr '\n' ' '))" >&2; exit 2; }

if ! command -v afl-fuzz >/dev/null 2>&1; then
  echo "installing afl++ (Debian)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq afl++ >/dev/null
fi

if [ "${FASTINVAL_FUZZ_REUSE_BIN:-0}" != "1" ] || [ ! -f "$BIN/.instrumented" ]; then
  rm -rf "$BIN"
  dotnet tool restore >/dev/null
  dotnet publish fuzz/FastInval.Fuzz -c Release -o "$BIN" -v q -nologo >/dev/null
  # Instrument only the product (the engine and the server's protocol layer); the harness, the reference oracle,
  # SharpFuzz and the framework stay plain.
  dotnet tool run sharpfuzz "$BIN/FastInval.dll" >/dev/null
  dotnet tool run sharpfuzz "$BIN/FastInval.Host.dll" >/dev/null
  touch "$BIN/.instrumented"
fi

rm -rf "$OUT"
mkdir -p "$OUT"
DICT="fuzz/dictionaries/$TARGET.dict"
[ -f "$DICT" ] || DICT="fuzz/dictionaries/fastinval.dict"
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
echo "fuzzing $TARGET for ${SECS}s (dictionary $DICT)"
afl-fuzz -i "$CORPUS" -o "$OUT/findings" -t 10000 -m none -V "$SECS" -x "$DICT" \
  -- dotnet "$BIN/FastInval.Fuzz.dll" "$TARGET" > "$OUT/afl.log" 2>&1 || true

STATS="$OUT/findings/default/fuzzer_stats"
if [ ! -f "$STATS" ]; then
  echo "afl-fuzz did not start; last lines of its log:" >&2
  tail -20 "$OUT/afl.log" >&2
  exit 3
fi
grep -E "^(run_time|execs_done|execs_per_sec|corpus_count|edges_found|total_edges|bitmap_cvg|saved_crashes|saved_hangs|stability)" "$STATS" | sed "s/^/  $TARGET /"

CRASHES=$(find "$OUT/findings/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
if [ "$UPDATE" = "--update-corpus" ]; then
  QUEUE="$OUT/findings/default/queue"
  mkdir -p "$OUT/cmin"
  # afl-cmin wants the target program as an absolute path (a bare "dotnet" is "not found") and refuses to run in /tmp.
  DOTNET_EXE=$(readlink -f "$(command -v dotnet)")
  afl-cmin -i "$QUEUE" -o "$OUT/cmin" -t 10000 -m none -- "$DOTNET_EXE" "$BIN/FastInval.Fuzz.dll" "$TARGET" > "$OUT/cmin.log" 2>&1 ||
    { echo "afl-cmin failed; last lines of $OUT/cmin.log:" >&2; tail -5 "$OUT/cmin.log" >&2; }
  n=0
  for f in "$OUT/cmin"/*; do
    [ -f "$f" ] || continue
    h=$(sha1sum "$f" | cut -c1-12)
    [ -f "$CORPUS/afl-$h.bin" ] || { cp "$f" "$CORPUS/afl-$h.bin"; n=$((n + 1)); }
  done
  echo "  $TARGET corpus: $n new minimized inputs added to $CORPUS"
fi

if [ "$CRASHES" -gt 0 ]; then
  echo "$TARGET: $CRASHES crashing input(s) in $OUT/findings/default/crashes" >&2
  echo "replay with the uninstrumented build:" >&2
  echo "  dotnet build fuzz/FastInval.Fuzz -c Release && dotnet fuzz/FastInval.Fuzz/bin/Release/net10.0/FastInval.Fuzz.dll --replay $TARGET $OUT/findings/default/crashes" >&2
  exit 1
fi
echo "  $TARGET: no crashes"
