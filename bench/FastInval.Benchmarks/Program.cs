using BenchmarkDotNet.Running;
using FastInval.Benchmarks.Infrastructure;

// Modes:
//   (BenchmarkDotNet options)         run benchmarks with the suite job, e.g. --filter '*Lookup*'
//   --verify                          sanity checks of the QEMU-style model and of every benchmark operation
//   --results <dir> [options]         run the suite and write its reports to <dir>/<cpu-slug>/ (bench/run.sh)
return args switch
{
    ["--verify", ..] => Verify.Run(),
    ["--results", string root, .. var options] => ResultsRunner.Run(root, options),
    _ => RunSwitcher(args),
};

static int RunSwitcher(string[] args)
{
    BenchmarkSwitcher.FromAssembly(typeof(SuiteConfig).Assembly).Run(args, SuiteConfig.Create(args));
    return 0;
}
