#!/usr/bin/env bash
# Builds the C ABI into artifacts/native/: libfastinval.so (NativeAOT), fastinval.h, libiommufd-preload.so (the user-space
# /dev/iommu, native/preload), the C tests (tests/native) and the C examples (examples/c) as executables under
# artifacts/native/tests and artifacts/native/examples. Programs named preload_*.c are plain iommufd programs: they are
# built without libfastinval.so and run under LD_PRELOAD=libiommufd-preload.so. Also builds the C client of
# `fastinval serve` (clients/c/build.sh: artifacts/clients/c). Run native/test.sh after.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/native
mkdir -p "$out/tests" "$out/examples"

# A C compiler (gcc or clang) for the tests, and clang or gcc as the NativeAOT linker; installed when missing.
pick() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 && { echo "$c"; return 0; }; done; return 1; }
if ! pick gcc clang clang-14 >/dev/null || ! pick g++ clang++ clang++-14 >/dev/null; then
  echo "installing gcc/g++"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc g++) >/dev/null
fi
cc=$(pick gcc clang clang-14)
cxx=$(pick g++ clang++ clang++-14)
aotcc=$(pick clang clang-14 gcc)

case "$(uname -m)" in
  x86_64) rid=linux-x64 ;;
  aarch64) rid=linux-arm64 ;;
  *) echo "unsupported machine $(uname -m)"; exit 1 ;;
esac

start=$(date +%s)
dotnet publish src/FastInval.Native -c Release -r "$rid" -nologo -v q -p:CppCompilerAndLinker="$aotcc" -o "$out/publish"
cp "$out/publish/libfastinval.so" "$out/libfastinval.so"
cp native/include/fastinval.h "$out/fastinval.h"
echo "libfastinval.so published in $(( $(date +%s) - start )) s (linker $aotcc)"

# The header alone must compile cleanly as C11 and as C++17.
printf '#include "fastinval.h"\nint fastinval_header_check;\n' > "$out/header-check.c"
cp "$out/header-check.c" "$out/header-check.cpp"
"$cc" -std=c11 -Wall -Wextra -Werror -pedantic -I"$out" -c "$out/header-check.c" -o "$out/header-check-c.o"
"$cxx" -std=c++17 -Wall -Wextra -Werror -pedantic -I"$out" -c "$out/header-check.cpp" -o "$out/header-check-cpp.o"
echo "fastinval.h: C11 and C++17 clean"

cflags=(-std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I"$out" -I tests/native)

# The user-space /dev/iommu: loads libfastinval.so itself (lazily, from its own directory), so it does not link it.
"$cc" "${cflags[@]}" -fPIC -shared -fvisibility=hidden native/preload/iommufd_preload.c -ldl -lpthread \
  -o "$out/libiommufd-preload.so"
echo "libiommufd-preload.so built"

for src in tests/native/*.c; do
  name=$(basename "$src" .c)
  case "$name" in
    preload_*) "$cc" "${cflags[@]}" "$src" -lpthread -o "$out/tests/$name" ;;
    *) "$cc" "${cflags[@]}" "$src" -L"$out" -lfastinval -lpthread -Wl,-rpath,'$ORIGIN/..' -o "$out/tests/$name" ;;
  esac
done
for src in examples/c/*.c; do
  name=$(basename "$src" .c)
  case "$name" in
    preload_*) "$cc" "${cflags[@]}" "$src" -o "$out/examples/$name" ;;
    *) "$cc" "${cflags[@]}" "$src" -L"$out" -lfastinval -Wl,-rpath,'$ORIGIN/..' -o "$out/examples/$name" ;;
  esac
done
echo "built: $(ls "$out/tests" | tr '\n' ' ')| examples: $(ls "$out/examples" | tr '\n' ' ')"

# The C client of `fastinval serve` (clients/c): libc only, built with the same warnings into artifacts/clients/c.
bash clients/c/build.sh
