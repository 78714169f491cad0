#!/usr/bin/env bash
# Builds the Linux kernel's iommufd selftest (tools/testing/selftests/iommu/iommufd.c) from a kernel tree you give,
# unmodified, with gcc against that tree's exported uapi headers, and runs the tests around invalidation one by one
# (-r) under libiommufd-preload.so. Fetches nothing and copies nothing into this repository: the kernel's files are GPL
# and stay in your tree; the binary goes to a directory outside the repository ($KST_OUT, default /tmp/fastinval-kst).
#
#   native/build.sh
#   native/kselftest.sh /path/to/linux            # a checkout of v6.17 or later
#   native/kselftest.sh /path/to/linux iommufd.cmd_fail iommufd_ioas.mock_domain.get_hw_info   # chosen tests
#
# Prints "kselftest <test>: ok|FAIL" per test (the failing test's output below it) and "N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tree=${1:?usage: native/kselftest.sh LINUX_TREE [TEST...]}
shift
tree=$(cd "$tree" && pwd)
src="$tree/tools/testing/selftests/iommu/iommufd.c"
[ -f "$src" ] || { echo "no $src"; exit 2; }
preload="$repo/artifacts/native/libiommufd-preload.so"
[ -f "$preload" ] || { echo "no $preload: run native/build.sh first"; exit 2; }
out=${KST_OUT:-/tmp/fastinval-kst}
mkdir -p "$out"

# The exported uapi headers (<linux/iommufd.h>, <linux/vfio.h>) of the same tree, as the selftest Makefile uses them.
if [ ! -f "$tree/usr/include/linux/iommufd.h" ]; then
  echo "exporting the tree's uapi headers (make headers)"
  make -C "$tree" -s headers >/dev/null || { echo "make headers failed"; exit 2; }
fi
[ -f "$tree/usr/include/linux/vfio.h" ] ||
  echo "note: $tree/usr/include has no linux/vfio.h (used by the VFIO-compatibility tests only): the system's is used"
echo '#include <sys/capability.h>' | gcc -E -x c - >/dev/null 2>&1 ||
  { echo "no <sys/capability.h>: the selftest links libcap (apt-get install libcap-dev)"; exit 2; }
gcc -Wall -O2 -Wno-unused-function -D_GNU_SOURCE -isystem "$tree/usr/include" -I "$tree/tools/testing/selftests" \
  -I "$tree/tools/include" "$src" -lpthread -lcap -o "$out/iommufd" || { echo "iommufd.c did not build"; exit 2; }
echo "built $out/iommufd from $(git -C "$tree" describe --tags --always 2>/dev/null || echo "$tree")"

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(iommufd.cmd_fail iommufd.cmd_length iommufd.cmd_ex_fail iommufd_ioas.mock_domain.get_hw_info
         iommufd_ioas.mock_domain.alloc_hwpt_nested iommufd_viommu.mock_viommu.viommu_alloc_nested_iopf
         iommufd_viommu.mock_viommu.vdevice_cache)
fi
ok=0; bad=0
for t in "${tests[@]}"; do
  if (cd "$out" && timeout 120 env LD_PRELOAD="$preload" ./iommufd -r "$t") > "$out/$t.log" 2>&1; then
    echo "kselftest $t: ok"; ok=$((ok + 1))
  else
    echo "kselftest $t: FAIL"; sed 's/^/    /' "$out/$t.log" | tail -30; bad=$((bad + 1))
  fi
done
echo "$ok passed, $bad failed"
[ "$bad" -eq 0 ]
