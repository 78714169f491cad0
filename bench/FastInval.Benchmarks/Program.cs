using BenchmarkDotNet.Running;
using FastInval.Benchmarks.Infrastructure;

// Modes:
//   (BenchmarkDotNet options)         run benchmarks with the suite job, e.g. --filter '*Lookup*'
//   --verify                          sanity checks of the QEMU-style model and of every benchmark operation
//   --results <dir> [options]         run the suite and write its reports to <dir>/<cpu-slug>/ (bench/run.sh)
//   --footprint [file]                memory per cached translation, FastInval beside the QEMU-style port
//   --ci-check <baseline> [--update]  the CI gate: ratios and allocations of a short in-process run against a baseline
//   --native-peer                     the in-process rows beside bench/native/abi_bench.c's C ABI rows (native/bench.sh)
return args switch
{
    ["--verify", ..] => Verify.Run(),
    ["--results", string root, .. var options] => ResultsRunner.Run(root, options),
    ["--ci-check", string baseline, .. var options] => CiGate.Run(baseline, options),
    ["--cpu-slug"] => PrintCpuSlug(),
    ["--native-peer"] => NativePeer.Run(),
    ["--footprint"] => Footprint.Run(null),
    ["--footprint", string file] => Footprint.Run(file),
    _ => RunSwitcher(args),
};

static int RunSwitcher(string[] args)
{
    BenchmarkSwitcher.FromAssembly(typeof(SuiteConfig).Assembly).Run(args, SuiteConfig.Create(args));
    return 0;
}

static int PrintCpuSlug()
{
    Console.WriteLine(ResultsRunner.CpuSlug());
    return 0;
}
