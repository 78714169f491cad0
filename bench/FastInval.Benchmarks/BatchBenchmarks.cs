using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks;

/// <summary>
/// A batch of <see cref="BatchSize"/> mixed tag flushes (half domain flushes of domains of their own, half PASID flushes
/// of PASIDs of their own inside busy domains, interleaved) in a cache of <see cref="Entries"/> entries of the realistic
/// mix. Each flushed domain or PASID holds <see cref="EntriesPerTarget"/> entries, refilled at the start of every
/// operation. "one batch" hands the whole span to <c>Execute(ReadOnlySpan, Span)</c>, which coalesces tag flushes into
/// shared scans; "one at a time" (baseline) calls <c>Execute(in descriptor)</c> per descriptor. Both use the engine's
/// best kernel. Times are per batch.
/// </summary>
[MemoryDiagnoser]
public class BatchBenchmarks
{
    /// <summary>Descriptors per batch.</summary>
    public const int BatchSize = 64;

    /// <summary>Entries each flushed domain or PASID holds.</summary>
    public const int EntriesPerTarget = 4;

    [Params(1 << 16, 1 << 20)]
    public int Entries;

    private TranslationEntry[] _refill = [];
    private InvalidationDescriptor[] _batch = [];
    private InvalidationStatus[] _statuses = [];
    private InvalidationEngine? _engine;

    internal InvalidationEngine? Engine => _engine;

    internal ReadOnlySpan<InvalidationStatus> Statuses => _statuses;

    [GlobalSetup]
    public void Setup()
    {
        WorkloadShape shape = WorkloadShape.Realistic;
        _batch = new InvalidationDescriptor[BatchSize];
        _statuses = new InvalidationStatus[BatchSize];
        var refill = new List<TranslationEntry>(BatchSize * EntriesPerTarget);
        for (int i = 0; i < BatchSize; i++)
        {
            ushort domain;
            uint pasid;
            if (i % 2 == 0)
            {
                domain = (ushort)(Workload.ReservedDomain + i);
                pasid = Workload.ReservedPasid;
                _batch[i] = InvalidationDescriptor.IotlbDomain(domain);
            }
            else
            {
                domain = shape.DomainOf(i * shape.PasidsPerDomain % shape.AddressSpaces);
                pasid = Workload.ReservedPasid + (uint)i;
                _batch[i] = InvalidationDescriptor.IotlbAddressSpace(domain, pasid);
            }

            refill.AddRange(Workload.Pages(domain, pasid, Workload.ReservedIova, EntriesPerTarget));
        }

        _refill = [.. refill];
        _engine = Workload.FastInval(Workload.Population(Entries, shape), Entries + _refill.Length, TagScanKernels.Best);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _engine?.Dispose();
        _engine = null;
    }

    /// <summary>Entries removed.</summary>
    [Benchmark(Baseline = true, Description = "one at a time")]
    public int OneAtATime()
    {
        InvalidationEngine engine = _engine!;
        int before = Refill(engine);
        foreach (ref readonly InvalidationDescriptor d in _batch.AsSpan())
        {
            engine.Execute(in d);
        }

        return before - engine.Iotlb.Count;
    }

    /// <summary>Entries removed.</summary>
    [Benchmark(Description = "one batch")]
    public int OneBatch()
    {
        InvalidationEngine engine = _engine!;
        int before = Refill(engine);
        engine.Execute(_batch, _statuses);
        return before - engine.Iotlb.Count;
    }

    private int Refill(InvalidationEngine engine)
    {
        TranslationCache iotlb = engine.Iotlb;
        foreach (ref readonly TranslationEntry e in _refill.AsSpan())
        {
            iotlb.Fill(in e);
        }

        return iotlb.Count;
    }
}
