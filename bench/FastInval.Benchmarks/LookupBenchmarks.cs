using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks;

/// <summary>
/// Lookup hits in a cache holding <see cref="Entries"/> entries of the realistic mix: requests for random cached
/// entries at random offsets, precomputed, walked <see cref="LookupsPerOperation"/> at a time (times are per lookup).
/// FastInval: <see cref="TranslationCache.TryLookup"/>. QEMU-style: vtd_lookup_iotlb (levels 1..3), the baseline.
/// </summary>
[MemoryDiagnoser]
public class LookupBenchmarks
{
    /// <summary>Lookups per benchmark operation; reported times are divided by it.</summary>
    public const int LookupsPerOperation = 1024;

    /// <summary>Precomputed requests, walked round-robin so that successive operations touch the whole cache.</summary>
    public const int QueryCount = 1 << 16;

    [ParamsSource(nameof(ScalingSizes))]
    public int Entries;

    /// <summary>The cache sizes of the scaling series (<see cref="Sizes.Scaling"/>).</summary>
    public static IEnumerable<int> ScalingSizes => Sizes.Scaling;

    private LookupQuery[] _queries = [];
    private int _cursor;
    private InvalidationEngine? _engine;
    private QemuStyleIotlb? _qemu;

    [GlobalSetup(Targets = [nameof(FastInval), nameof(FastInvalUnguarded)])]
    public void SetupFastInval()
    {
        TranslationEntry[] entries = SetupQueries();
        _engine = Workload.FastInval(entries, Entries, TagScanKernels.Best);
    }

    [GlobalSetup(Target = nameof(QemuStyle))]
    public void SetupQemuStyle()
    {
        TranslationEntry[] entries = SetupQueries();
        // QEMU empties its IOTLB at 1024 entries; the limit is off here so the table really holds Entries entries.
        _qemu = Workload.Qemu(entries, QemuStyleIotlb.Unlimited);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _engine?.Dispose();
        _engine = null;
        _qemu = null;
    }

    /// <summary>Sum of the translated addresses (a checksum that keeps the lookups alive).</summary>
    [Benchmark(Description = "FastInval", OperationsPerInvoke = LookupsPerOperation)]
    public ulong FastInval()
    {
        TranslationCache iotlb = _engine!.Iotlb;
        ReadOnlySpan<LookupQuery> queries = NextQueries();
        ulong sum = 0;
        foreach (ref readonly LookupQuery q in queries)
        {
            if (iotlb.TryLookup(TranslationStage.Stage1, q.Domain, q.Pasid, q.Address, out Translation t))
            {
                sum += t.OutputAddress;
            }
        }

        return sum;
    }

    /// <summary>The same lookups without the lifetime guard that makes a lookup racing Dispose safe (its cost is the
    /// difference to the FastInval row).</summary>
    [Benchmark(Description = "FastInval, no lifetime guard", OperationsPerInvoke = LookupsPerOperation)]
    public ulong FastInvalUnguarded()
    {
        TranslationCache iotlb = _engine!.Iotlb;
        ReadOnlySpan<LookupQuery> queries = NextQueries();
        ulong sum = 0;
        foreach (ref readonly LookupQuery q in queries)
        {
            if (iotlb.TryLookupUnguarded(TranslationStage.Stage1, q.Domain, q.Pasid, q.Address, out Translation t))
            {
                sum += t.OutputAddress;
            }
        }

        return sum;
    }

    /// <summary>Sum of the translated addresses (a checksum that keeps the lookups alive).</summary>
    [Benchmark(Baseline = true, Description = "QEMU-style", OperationsPerInvoke = LookupsPerOperation)]
    public ulong QemuStyle()
    {
        QemuStyleIotlb qemu = _qemu!;
        ReadOnlySpan<LookupQuery> queries = NextQueries();
        ulong sum = 0;
        foreach (ref readonly LookupQuery q in queries)
        {
            if (qemu.Lookup(Workload.SourceIdOf(q.Domain), q.Pasid, q.Address) is { } entry)
            {
                sum += Workload.Translate(entry, q.Address);
            }
        }

        return sum;
    }

    private ReadOnlySpan<LookupQuery> NextQueries()
    {
        int start = _cursor;
        _cursor = (start + LookupsPerOperation) % QueryCount;
        return _queries.AsSpan(start, LookupsPerOperation);
    }

    private TranslationEntry[] SetupQueries()
    {
        TranslationEntry[] entries = Workload.Population(Entries, WorkloadShape.Realistic);
        _queries = Workload.Queries(entries, QueryCount);
        _cursor = 0;
        return entries;
    }
}
