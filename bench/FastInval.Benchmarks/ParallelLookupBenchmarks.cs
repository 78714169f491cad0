using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks;

/// <summary>
/// Lookup hits from one thread against the same lookups split over two threads (the benchmark thread and one helper
/// thread, started once and woken per operation), in a cache of <see cref="Entries"/> entries of the realistic mix.
/// Times are per lookup, so the two-thread row's ratio is the inverse of its speed-up: 0.5 is perfect scaling. Lookups
/// take no lock and write no shared line (the CLOCK reference bit is written only when it is clear), so they should
/// scale with cores; on a machine whose other core is busy they cannot.
/// </summary>
[MemoryDiagnoser]
public class ParallelLookupBenchmarks : IDisposable
{
    /// <summary>Lookups per benchmark operation (over all threads); reported times are divided by it.</summary>
    public const int LookupsPerOperation = 1 << 14;

    /// <summary>Precomputed requests, walked round-robin so that successive operations touch the whole cache.</summary>
    public const int QueryCount = 1 << 18;

    [ParamsSource(nameof(ScalingSizes))]
    public int Entries;

    /// <summary>The cache sizes of the scaling series (<see cref="Sizes.Scaling"/>).</summary>
    public static IEnumerable<int> ScalingSizes => Sizes.Scaling;

    private LookupQuery[] _queries = [];
    private InvalidationEngine? _engine;
    private Thread? _helper;
    private int _generation;
    private int _done;
    private volatile bool _stop;
    private ulong _helperSum;
    private int _cursor;
    private int _helperStart;

    [GlobalSetup]
    public void Setup()
    {
        TranslationEntry[] entries = Workload.Population(Entries, WorkloadShape.Realistic);
        _queries = Workload.Queries(entries, QueryCount);
        _engine = Workload.FastInval(entries, Entries, TagScanKernels.Best);
        _stop = false;
        _helper = new Thread(HelperLoop) { IsBackground = true, Name = "lookup helper" };
        _helper.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        Interlocked.Increment(ref _generation);
        _helper?.Join();
        _helper = null;
        _engine?.Dispose();
        _engine = null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }

    /// <summary>Every lookup on the benchmark thread.</summary>
    [Benchmark(Baseline = true, Description = "FastInval, 1 thread", OperationsPerInvoke = LookupsPerOperation)]
    public ulong OneThread() => Run(Advance(), LookupsPerOperation);

    /// <summary>The first half on the benchmark thread, the second half on the helper thread at the same time.</summary>
    [Benchmark(Description = "FastInval, 2 threads", OperationsPerInvoke = LookupsPerOperation)]
    public ulong TwoThreads()
    {
        int start = Advance();
        int target = Volatile.Read(ref _done) + 1;
        Volatile.Write(ref _helperStart, start + (LookupsPerOperation / 2));
        Interlocked.Increment(ref _generation);
        ulong sum = Run(start, LookupsPerOperation / 2);
        var spin = default(SpinWait);
        while (Volatile.Read(ref _done) != target)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }

        return sum + _helperSum;
    }

    private void HelperLoop()
    {
        int seen = Volatile.Read(ref _generation);
        while (true)
        {
            var spin = default(SpinWait);
            while (Volatile.Read(ref _generation) == seen)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }

            seen = Volatile.Read(ref _generation);
            if (_stop)
            {
                return;
            }

            _helperSum = Run(Volatile.Read(ref _helperStart), LookupsPerOperation / 2);
            Interlocked.Increment(ref _done);
        }
    }

    private int Advance()
    {
        int start = _cursor;
        _cursor = (start + LookupsPerOperation) % QueryCount;
        return start;
    }

    private ulong Run(int start, int count)
    {
        TranslationCache iotlb = _engine!.Iotlb;
        ulong sum = 0;
        foreach (ref readonly LookupQuery q in _queries.AsSpan(start, count))
        {
            if (iotlb.TryLookup(TranslationStage.Stage1, q.Domain, q.Pasid, q.Address, out Translation t))
            {
                sum += t.OutputAddress;
            }
        }

        return sum;
    }
}
