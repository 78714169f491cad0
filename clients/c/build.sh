#!/usr/bin/env bash
# Builds the C client of `fastinval serve` (clients/c: C11, libc only) with gcc (or clang) and
# -std=c11 -Wall -Wextra -Werror -pedantic into artifacts/clients/c/: libfastinval_client.a, the example and the tests.
# The client needs only the struct definitions of native/include/fastinval.h, not libfastinval.so.
#   clients/c/build.sh && artifacts/clients/c/example --socket PATH && artifacts/clients/c/test_client --socket PATH
set -euo pipefail
cd "$(dirname "$0")/../.."
out=artifacts/clients/c
mkdir -p "$out"
cc=${CC:-}
if [ -z "$cc" ]; then
  for c in gcc clang; do command -v "$c" >/dev/null 2>&1 && { cc=$c; break; }; done
fi
[ -n "$cc" ] || { echo "clients/c/build.sh: no C compiler (gcc or clang)"; exit 1; }
cflags=(-std=c11 -O2 -g -Wall -Wextra -Werror -pedantic -Inative/include -Iclients/c)
"$cc" "${cflags[@]}" -c clients/c/fastinval_client.c -o "$out/fastinval_client.o"
ar rcs "$out/libfastinval_client.a" "$out/fastinval_client.o"
"$cc" "${cflags[@]}" clients/c/example.c "$out/libfastinval_client.a" -o "$out/example"
"$cc" "${cflags[@]}" clients/c/test_client.c "$out/libfastinval_client.a" -o "$out/test_client"
echo "clients/c: built $out/example and $out/test_client ($cc)"
