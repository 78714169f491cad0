#!/usr/bin/env bash
# The C client (clients/c) as separate processes against `fastinval serve` started here: builds it with
# clients/c/build.sh (gcc, -std=c11 -Wall -Wextra -Werror), runs clients/c/example.c's program and the client tests
# (test_client: the fake-server part and, with --socket, the live part), then stops the server with SIGTERM.
# Prints the programs' "  ok"/"  FAIL" lines, plus one such line for each program's exit status and for the server's
# clean stop (exit 0, socket removed); .ci/run counts them. Usable alone: bash .ci/c-client.sh
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts/ci
cli=src/FastInval.Cli/bin/Release/net10.0/FastInval.Cli.dll
[ -f "$cli" ] || dotnet build src/FastInval.Cli -c Release -nologo -v q >/dev/null
if ! bash clients/c/build.sh; then
  echo "  FAIL clients/c/build.sh (gcc -std=c11 -Wall -Wextra -Werror)"; exit 1
fi
echo "  ok   clients/c/build.sh: the client, example and tests build with -std=c11 -Wall -Wextra -Werror"
dir=$(mktemp -d)
sock=$dir/fastinval.sock
dotnet "$cli" serve --socket "$sock" > artifacts/ci/serve-c.log 2>&1 &
serve_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.2; done
run() { # name, program and arguments: its output, then an ok/FAIL line for its exit status and summary line
  local name=$1; shift
  timeout -k 10 300 "$@" > "artifacts/ci/$name.log" 2>&1
  local rc=$?
  cat "artifacts/ci/$name.log"
  if [ "$rc" -eq 0 ] && grep -q "checks held" "artifacts/ci/$name.log"; then
    echo "  ok   $name: exit 0, every check held"
  else
    echo "  FAIL $name: exit $rc"
  fi
}
echo "--- the C example (clients/c/example.c)"
run c-example artifacts/clients/c/example --socket "$sock"
echo "--- the C client tests (clients/c/test_client.c)"
run c-client-tests artifacts/clients/c/test_client --socket "$sock"
kill -TERM "$serve_pid" 2>/dev/null
for _ in $(seq 100); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$serve_pid" 2>/dev/null && { echo "serve: still running 10 s after SIGTERM, killed"; kill -KILL "$serve_pid"; }
wait "$serve_pid"; serve_rc=$?
if [ "$serve_rc" -eq 0 ] && [ ! -e "$sock" ]; then
  echo "  ok   serve: clean stop on SIGTERM after the C clients (exit 0, socket removed)"
else
  echo "  FAIL serve: exit $serve_rc, socket left: $([ -e "$sock" ] && echo yes || echo no)"
fi
rmdir "$dir" 2>/dev/null
exit 0
