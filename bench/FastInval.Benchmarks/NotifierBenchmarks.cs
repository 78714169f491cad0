using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks;

/// <summary>What the batch shapes of <see cref="NotifierBenchmarks"/> hold.</summary>
public enum NotifierWork
{
    /// <summary>64 mixed tag flushes (the <see cref="BatchBenchmarks"/> batch): scans dominate.</summary>
    TagFlushes,

    /// <summary>64 single-page range invalidations of one PASID (what a guest's unmap sends): hash probes, the cheapest
    /// descriptors, where a per-record cost shows most.</summary>
    Pages,
}

/// <summary>
/// <c>Execute(span, statuses)</c> of a 64-descriptor batch in a cache of <see cref="Entries"/> entries of the realistic
/// mix, refilled first, with no notifier (baseline), with one notifier subscribed (it reads every record), and with one
/// filtered notifier (the domain and PASID of the batch's second descriptor: all 64 records pass it in Pages, one in
/// TagFlushes). Times are per batch; the ratio is the notifier's cost.
/// </summary>
[MemoryDiagnoser]
public class NotifierBenchmarks
{
    /// <summary>Descriptors per batch.</summary>
    public const int BatchSize = 64;

    [Params(1 << 16)]
    public int Entries;

    [Params(NotifierWork.TagFlushes, NotifierWork.Pages)]
    public NotifierWork Work;

    private readonly Sink _sink = new();
    private TranslationEntry[] _refill = [];
    private InvalidationDescriptor[] _batch = [];
    private InvalidationStatus[] _statuses = [];
    private InvalidationEngine? _engine;

    /// <summary>The subscribed notifier (each row builds its own engine, so that rows differ only in the subscription): sums the records' first addresses, so that every record is read.</summary>
    private sealed class Sink : IInvalidationNotifier
    {
        public ulong Checksum;

        public void OnInvalidated(ReadOnlySpan<InvalidationRecord> records)
        {
            ulong sum = 0;
            foreach (ref readonly InvalidationRecord r in records)
            {
                sum += r.Descriptor.First + r.SourceIndex;
            }

            Checksum += sum;
        }
    }

    /// <summary>The engine of the "no notifier" row (and of <c>--verify</c>, which subscribes by itself).</summary>
    [GlobalSetup(Target = nameof(NoNotifier))]
    public void Setup()
    {
        WorkloadShape shape = WorkloadShape.Realistic;
        _batch = new InvalidationDescriptor[BatchSize];
        _statuses = new InvalidationStatus[BatchSize];
        var refill = new List<TranslationEntry>();
        ushort busy = shape.DomainOf(0);
        for (int i = 0; i < BatchSize; i++)
        {
            if (Work == NotifierWork.Pages)
            {
                ulong address = Workload.ReservedIova + ((ulong)i << 12);
                _batch[i] = InvalidationDescriptor.IotlbRange(busy, Workload.ReservedPasid, address, address + 0xFFF);
                refill.AddRange(Workload.Pages(busy, Workload.ReservedPasid, address, 1));
            }
            else if (i % 2 == 0)
            {
                var domain = (ushort)(Workload.ReservedDomain + i);
                _batch[i] = InvalidationDescriptor.IotlbDomain(domain);
                refill.AddRange(Workload.Pages(domain, Workload.ReservedPasid, Workload.ReservedIova, BatchBenchmarks.EntriesPerTarget));
            }
            else
            {
                ushort domain = shape.DomainOf(i * shape.PasidsPerDomain % shape.AddressSpaces);
                uint pasid = Workload.ReservedPasid + (uint)i;
                _batch[i] = InvalidationDescriptor.IotlbAddressSpace(domain, pasid);
                refill.AddRange(Workload.Pages(domain, pasid, Workload.ReservedIova, BatchBenchmarks.EntriesPerTarget));
            }
        }

        _refill = [.. refill];
        _engine = Workload.FastInval(Workload.Population(Entries, shape), Entries + _refill.Length, TagScanKernels.Best);
    }

    /// <summary>The same engine, with the notifier subscribed.</summary>
    [GlobalSetup(Target = nameof(OneNotifier))]
    public void SetupNotified()
    {
        Setup();
        _engine!.Notifiers.Subscribe(_sink);
    }

    /// <summary>The same engine, with the filtered notifier subscribed.</summary>
    [GlobalSetup(Target = nameof(OneFilteredNotifier))]
    public void SetupFiltered()
    {
        Setup();
        _engine!.Notifiers.Subscribe(_sink, new NotifierFilter { DomainId = _batch[1].DomainId, AddressSpaceId = _batch[1].AddressSpaceId });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _engine?.Dispose();
        _engine = null;
    }

    /// <summary>Entries removed.</summary>
    [Benchmark(Baseline = true, Description = "no notifier")]
    public int NoNotifier() => Run(_engine!);

    /// <summary>Entries removed.</summary>
    [Benchmark(Description = "1 notifier")]
    public int OneNotifier() => Run(_engine!);

    /// <summary>Entries removed.</summary>
    [Benchmark(Description = "1 filtered notifier")]
    public int OneFilteredNotifier() => Run(_engine!);

    internal ulong Checksum => _sink.Checksum;

    private int Run(InvalidationEngine engine)
    {
        TranslationCache iotlb = engine.Iotlb;
        foreach (ref readonly TranslationEntry e in _refill.AsSpan())
        {
            iotlb.Fill(in e);
        }

        int before = iotlb.Count;
        engine.Execute(_batch, _statuses);
        return before - iotlb.Count;
    }
}
