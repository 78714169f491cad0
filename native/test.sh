#!/usr/bin/env bash
# Runs every C test and C example built by native/build.sh, the .NET side of the C-ABI differential against the built
# libfastinval.so, and the Rust crate's tests. Prints one "native <name>: ok|FAIL" line per program and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
out=artifacts/native
ok=0; bad=0
run() {
  local name=$1; shift
  if "$@" > "$out/$name.log" 2>&1; then echo "native $name: ok"; ok=$((ok + 1))
  else echo "native $name: FAIL"; sed 's/^/    /' "$out/$name.log" | tail -40; bad=$((bad + 1)); fi
}
mkdir -p "$out/test" "$out/example" "$out/rust-example"
# Programs named preload_* are plain iommufd programs (open("/dev/iommu"), ioctl): they run under the preload.
preload="$PWD/$out/libiommufd-preload.so"
runall() {
  local kind=$1 p
  for p in "$out/$kind"s/*; do
    [ -x "$p" ] || continue
    case "$(basename "$p")" in
      preload_*) run "$kind/$(basename "$p")" env LD_PRELOAD="$preload" "$p" ;;
      *) run "$kind/$(basename "$p")" "$p" ;;
    esac
  done
}
runall test
runall example

# The differential: the same random batches through libfastinval.so (loaded by path) and the .NET API.
dotnet build tests/FastInval.Tests -c Release -nologo -v q > "$out/dotnet-build.log" 2>&1 || true
run "differential" env FASTINVAL_NATIVE_LIB="$PWD/$out/libfastinval.so" \
  dotnet test tests/FastInval.Tests -c Release --no-build --filter "FullyQualifiedName~NativeDifferential"
# The Rust crate's tests (std only, no registry) against the same library.
if command -v cargo >/dev/null 2>&1; then
  run "rust" env FASTINVAL_LIB_DIR="$PWD/$out" CARGO_TARGET_DIR="$PWD/$out/rust-target" \
    cargo test --offline --manifest-path bindings/rust/fastinval/Cargo.toml
  run "rust-example/vtd_vmm" env FASTINVAL_LIB_DIR="$PWD/$out" CARGO_TARGET_DIR="$PWD/$out/rust-target" \
    cargo run --offline -q --manifest-path bindings/rust/fastinval/Cargo.toml --example vtd_vmm
else
  echo "native rust: FAIL"; echo "    cargo is not installed"; bad=$((bad + 1))
fi
echo "$ok passed, $bad failed"
[ "$bad" -eq 0 ]
