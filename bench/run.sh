#!/usr/bin/env bash
# Runs the whole benchmark suite in Release and writes BenchmarkDotNet's GitHub-markdown and JSON reports, plus a
# summary.md, to bench/results/<cpu-slug>/, replacing that CPU's previous results. The sanity checks (--verify) run
# first; a failure stops the run. Extra arguments go to BenchmarkDotNet, e.g.
#   bench/run.sh --filter '*TagFlush*'       (replaces only the reports of the classes that ran)
# Run it on a quiet machine: other work on the same cores shows up in every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

project=bench/FastInval.Benchmarks
dotnet build "$project" -c Release -nologo -v q
dotnet run --project "$project" -c Release --no-build -- --verify
dotnet run --project "$project" -c Release --no-build -- --results bench/results "$@"
