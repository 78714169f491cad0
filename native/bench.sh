#!/usr/bin/env bash
# Times calls into libfastinval.so from C (bench/native/abi_bench.c) and writes bench/results/<cpu>/native-abi.txt.
# Needs native/build.sh first. Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/native
cc=$(command -v gcc || command -v clang)
"$cc" -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$out" bench/native/abi_bench.c -L"$out" -lfastinval \
  -Wl,-rpath,"$PWD/$out" -o "$out/abi_bench"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
family=$(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
model=$(grep -m1 '^model' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
vendor=$(grep -m1 vendor_id /proc/cpuinfo | cut -d: -f2 | tr -d " ")
case "$vendor" in AuthenticAMD) prefix=amd-epyc ;; *) prefix=$(echo "$vendor" | tr "[:upper:]" "[:lower:]") ;; esac
dir=bench/results/${prefix}-family${family}-model${model}
mkdir -p "$dir"
{
  echo "# libfastinval.so called from C: $cpu (family $family model $model), $(nproc) vCPU, $(uname -r)"
  echo "# native/bench.sh, $(date -u +%Y-%m-%d), best of 7 runs, ns per call; load average at start: $(cut -d" " -f1-3 /proc/loadavg)"
  "$out/abi_bench"
} | tee "$dir/native-abi.txt"
