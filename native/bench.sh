#!/usr/bin/env bash
# Times calls into libfastinval.so from C (bench/native/abi_bench.c) beside the same calls in process from .NET, and
# writes bench/results/<cpu>/native-abi.txt.
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
# The C rows and their in-process .NET peers, in interleaved rounds so that load on the machine falls on all alike; each
# row's best. Two peers run the same engine, entries, keys and batch through the .NET API: bench/FastInval.NativePeer,
# compiled ahead of time as libfastinval.so is (so C minus it is what the C ABI itself adds: transition, handle table,
# argument checks, result copy), and FastInval.Benchmarks --native-peer under the tiered JIT (so the AOT peer minus it is
# what ahead-of-time code costs against the JIT with dynamic PGO, whatever the ABI).
dotnet build bench/FastInval.Benchmarks -c Release -nologo -v q > "$out/bench-build.log" 2>&1 || { echo "bench build failed (see $out/bench-build.log)"; exit 1; }
aotcc=$(command -v clang || command -v gcc)
dotnet publish bench/FastInval.NativePeer -c Release -r "$(uname -m | sed 's/x86_64/linux-x64/;s/aarch64/linux-arm64/')" -nologo -v q \
  -p:CppCompilerAndLinker="$aotcc" -o "$out/peer-aot" > "$out/peer-aot-build.log" 2>&1 || { echo "AOT peer publish failed (see $out/peer-aot-build.log)"; exit 1; }
jit=(dotnet bench/FastInval.Benchmarks/bin/Release/net10.0/FastInval.Benchmarks.dll --native-peer)
rounds=${FASTINVAL_BENCH_ROUNDS:-3}
load=$(cut -d" " -f1-3 /proc/loadavg)
: > "$out/abi-c.txt"; : > "$out/abi-aot.txt"; : > "$out/abi-jit.txt"
for _ in $(seq "$rounds"); do
  "$out/abi_bench" >> "$out/abi-c.txt"
  "$out/peer-aot/FastInval.NativePeer" >> "$out/abi-aot.txt"
  "${jit[@]}" >> "$out/abi-jit.txt"
done
best() { awk -v n="$2" '$1 == n { if (b == "" || $2 < b) b = $2 } END { print b }' "$1"; }
{
  echo "# libfastinval.so called from C: $cpu (family $family model $model), $(nproc) vCPU, $(uname -r)"
  echo "# native/bench.sh, $(date -u "+%Y-%m-%d %H:%M") UTC, $rounds interleaved rounds of C, .NET AOT, .NET JIT, each the best of 7 runs; ns per call"
  echo "# load average at start: $load; at end: $(cut -d" " -f1-3 /proc/loadavg)"
  echo "# added = C - AOT: what the C ABI (transition, handle table, argument checks, result copy) adds to the same compiled code"
  echo "# aot-jit = AOT - JIT: what NativeAOT code costs against the tiered JIT with dynamic PGO (not the ABI)"
  printf "%-7s %10s %10s %10s %10s %10s\n" call "C ns" "AOT ns" "JIT ns" "added ns" "aot-jit"
  for n in empty counts lookup exec64; do
    c=$(best "$out/abi-c.txt" "$n"); a=$(best "$out/abi-aot.txt" "$n"); j=$(best "$out/abi-jit.txt" "$n")
    if [ -n "$a" ]; then
      printf "%-7s %10s %10s %10s %10.1f %10.1f\n" "$n" "$c" "$a" "$j" "$(awk -v c="$c" -v a="$a" 'BEGIN { print c - a }')" \
        "$(awk -v a="$a" -v j="$j" 'BEGIN { print a - j }')"
    else
      printf "%-7s %10s %10s %10s %10s %10s\n" "$n" "$c" "-" "-" "-" "-"
    fi
  done
} | tee "$dir/native-abi.txt"

# The user-space /dev/iommu: ioctl(IOMMU_HWPT_INVALIDATE) of a 1,024-entry VT-d S1 array through the preload and through
# the C ABI (bench/native/preload_bench.c, interleaved), then the same array through Iommufd.Ioctl in .NET
# (BenchmarkDotNet's IommufdInvalidateBenchmarks.Ioctl, short job, Entries=1024), in one run of this script.
"$cc" -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -I tests/native bench/native/preload_bench.c -ldl -o "$out/preload_bench"
{
  echo "# 1,024-entry VT-d S1 IOMMU_HWPT_INVALIDATE: $cpu (family $family model $model), $(nproc) vCPU, $(uname -r)"
  echo "# native/bench.sh, $(date -u "+%Y-%m-%d %H:%M") UTC; load average before the C rows: $(cut -d" " -f1-3 /proc/loadavg)"
  FASTINVAL_IOMMUFD_DEVICES=vtd:0x100 LD_PRELOAD="$PWD/$out/libiommufd-preload.so" LD_LIBRARY_PATH="$PWD/$out" \
    "$out/preload_bench"
  echo "# load average before the .NET row: $(cut -d" " -f1-3 /proc/loadavg)"
  dotnet run --project bench/FastInval.Benchmarks -c Release -- --filter '*IommufdInvalidateBenchmarks.Ioctl' -j short \
    --artifacts "$out/bdn-preload" > "$out/bdn-preload.log" 2>&1 || { echo "BenchmarkDotNet failed (see $out/bdn-preload.log)"; exit 1; }
  grep -E "^\| 'FastInval Ioctl' +\| 1024 " "$out/bdn-preload.log" | awk -F'|' '{gsub(/ /,"",$4); print ".NET     " $4 "/ioctl  (Iommufd.Ioctl, emulated user memory, IOTLB of 1,024 entries)"}'
} | tee "$dir/native-preload.txt"
