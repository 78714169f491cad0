#!/usr/bin/env bash
# Runs the whole benchmark suite in Release and writes BenchmarkDotNet's GitHub-markdown and JSON reports, the memory
# footprint table and a summary.md to bench/results/<cpu-slug>/, replacing that CPU's previous results, then draws the
# plots (tag-flush.png, lookup-fill.png, page-inval.png) from those reports into the same folder. The sanity checks
# (--verify) run first; a failure stops the run. Extra arguments go to BenchmarkDotNet, e.g.
#   bench/run.sh --filter '*TagFlush*'       (replaces only the reports of the classes that ran; no footprint)
# Run it on a quiet machine: other work on the same cores shows up in every figure. The full run takes about 30 min.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

project=bench/FastInval.Benchmarks
dotnet build "$project" -c Release -nologo -v q
dotnet build bench/FastInval.Plots -c Release -nologo -v q
dotnet run --project "$project" -c Release --no-build -- --verify
dotnet run --project "$project" -c Release --no-build -- --results bench/results "$@"
slug=$(dotnet run --project "$project" -c Release --no-build -- --cpu-slug)
dotnet run --project bench/FastInval.Plots -c Release --no-build -- "bench/results/$slug"
