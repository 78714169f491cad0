using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks;

/// <summary>What a lookup benchmark asks for.</summary>
public enum LookupPattern
{
    /// <summary>Random cached entries at random offsets, independent of each other (throughput of hits).</summary>
    Hit,

    /// <summary>Entries of the same shape that are not cached (every lookup misses at every span probed).</summary>
    Miss,

    /// <summary>Hits where the next request is chosen by the previous answer (latency: no two lookups overlap).</summary>
    Dependent,
}

/// <summary>
/// Lookups in a cache holding <see cref="Entries"/> entries of the realistic mix: requests (see <see cref="Pattern"/>)
/// precomputed, walked <see cref="LookupsPerOperation"/> at a time (times are per lookup).
/// FastInval: <see cref="TranslationCache.TryLookup(TranslationStage, ushort, uint, ulong, out Translation)"/>.
/// QEMU-style: vtd_lookup_iotlb (levels 1..3), the baseline.
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

    [Params(LookupPattern.Hit, LookupPattern.Miss, LookupPattern.Dependent)]
    public LookupPattern Pattern;

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
        if (Pattern == LookupPattern.Dependent)
        {
            return FastInvalDependent(iotlb);
        }

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

    private ulong FastInvalDependent(TranslationCache iotlb)
    {
        LookupQuery[] queries = _queries;
        int i = _cursor;
        ulong sum = 0;
        for (int n = 0; n < LookupsPerOperation; n++)
        {
            ref readonly LookupQuery q = ref queries[i];
            iotlb.TryLookup(TranslationStage.Stage1, q.Domain, q.Pasid, q.Address, out Translation t);
            sum += t.OutputAddress;
            i = Step(i, t.OutputAddress);
        }

        _cursor = i;
        return sum;
    }

    /// <summary>The next request index: one on, plus a term the JIT cannot know is zero (output addresses are below 2^63),
    /// so the next request's load waits for this answer.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static int Step(int i, ulong output) => (i + 1 + (int)(output >> 63)) & (QueryCount - 1);

    /// <summary>The same lookups without the lifetime guard that makes a lookup racing Dispose safe (its cost is the
    /// difference to the FastInval row).</summary>
    [Benchmark(Description = "FastInval, no lifetime guard", OperationsPerInvoke = LookupsPerOperation)]
    public ulong FastInvalUnguarded()
    {
        TranslationCache iotlb = _engine!.Iotlb;
        if (Pattern == LookupPattern.Dependent)
        {
            LookupQuery[] all = _queries;
            int i = _cursor;
            ulong total = 0;
            for (int n = 0; n < LookupsPerOperation; n++)
            {
                ref readonly LookupQuery q = ref all[i];
                iotlb.TryLookupUnguarded(TranslationStage.Stage1, q.Domain, q.Pasid, q.Address, out Translation t);
                total += t.OutputAddress;
                i = Step(i, t.OutputAddress);
            }

            _cursor = i;
            return total;
        }

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
        if (Pattern == LookupPattern.Dependent)
        {
            return QemuStyleDependent(qemu);
        }

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

    private ulong QemuStyleDependent(QemuStyleIotlb qemu)
    {
        LookupQuery[] queries = _queries;
        int i = _cursor;
        ulong sum = 0;
        for (int n = 0; n < LookupsPerOperation; n++)
        {
            ref readonly LookupQuery q = ref queries[i];
            ulong output = qemu.Lookup(Workload.SourceIdOf(q.Domain), q.Pasid, q.Address) is { } entry ? Workload.Translate(entry, q.Address) : 0;
            sum += output;
            i = Step(i, output);
        }

        _cursor = i;
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
        // Misses: entries of the same shape from another seed, minus the few that happen to be cached.
        TranslationEntry[] asked = Pattern == LookupPattern.Miss ? Workload.Absent(entries, QueryCount) : entries;
        _queries = Workload.Queries(asked, QueryCount);
        _cursor = 0;
        return entries;
    }
}
