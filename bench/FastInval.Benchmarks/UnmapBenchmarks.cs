using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;
using FastInval.Vtd;

namespace FastInval.Benchmarks;

/// <summary>
/// End to end: a guest unmaps 1 GiB that it had mapped in 4 KiB pages, batch by batch. Before every operation
/// (<c>[IterationSetup]</c>, outside the time) the IOTLB holds all <see cref="Pages"/> pages of that GiB (one PASID of
/// a domain of its own) beside a background of <see cref="Background"/> entries of the realistic mix. One operation is
/// the whole unmap: <see cref="Doorbells"/> doorbells, each <see cref="BatchSize"/> page-selective PASID-based IOTLB
/// descriptors (G=11b, AM = 0) and a wait, written into a 256-bit invalidation queue in guest memory. Times are per page
/// (<c>OperationsPerInvoke</c> = <see cref="Pages"/>), and "pages/s" is the number of cached translations invalidated per
/// second.
/// <list type="bullet">
/// <item><c>FastInval, VT-d queue</c>: <see cref="VtdIommu"/> (fetch, decode, one engine batch per doorbell).</item>
/// <item><c>FastInval, engine batches</c>: the same <see cref="BatchSize"/> descriptors per batch handed straight to
/// <c>InvalidationEngine.Execute(span, statuses)</c>, without the ring: the engine's share of the first row.</item>
/// <item><c>QEMU-style</c> (baseline): <see cref="QemuStyleInvalidationQueue"/> over <see cref="QemuStyleIotlb"/> with QEMU's
/// own limit of 1,024 entries (VTD_IOTLB_MAX_SIZE): the table can hold only the last 1,024 pages mapped, and each page
/// invalidation walks it. Without the limit, each of the 262,144 invalidations would walk 262,144 entries.</item>
/// </list>
/// </summary>
[MemoryDiagnoser]
[InvocationCount(1)]
[DescriptorsPerSecondColumn("pages/s")]
public class UnmapBenchmarks : IDisposable
{
    /// <summary>4 KiB pages in 1 GiB.</summary>
    public const int Pages = 1 << 18;

    /// <summary>Page descriptors per doorbell (Linux batches up to 64 invalidation descriptors per submission).</summary>
    public const int BatchSize = 64;

    /// <summary>Doorbells per unmap.</summary>
    public const int Doorbells = Pages / BatchSize;

    /// <summary>Entries of the realistic mix cached beside the unmapped GiB.</summary>
    public const int Background = 1 << 20;

    private const ulong Iqa = GuestRing.Iqa;
    private const ulong GuestIova = 0x40_0000_0000;   // 1 GiB aligned, above every background address

    private readonly GuestRing _ring = new();
    private TranslationEntry[] _mapping = [];
    private VtdDescriptor[] _descriptors = [];
    private InvalidationDescriptor[] _engineDescriptors = [];
    private readonly InvalidationStatus[] _statuses = new InvalidationStatus[BatchSize];
    private VtdIommu? _unit;
    private InvalidationEngine? _engine;
    private QemuStyleIotlb? _qemu;
    private QemuStyleInvalidationQueue? _queue;

    internal TranslationCache? Iotlb => _unit?.Engine.Iotlb ?? _engine?.Iotlb;

    internal QemuStyleIotlb? Qemu => _qemu;

    private static ushort Domain => Workload.ReservedDomain;

    private static uint Pasid => Workload.ReservedPasid;

    [GlobalSetup(Target = nameof(FastInvalQueue))]
    public void SetupQueue()
    {
        SetupDescriptors();
        _unit = new VtdIommu(_ring.Reset(), new VtdOptions { Engine = Options() });
        FillBackground(_unit.Engine.Iotlb);
        _unit.WriteRegister(VtdRegisters.Iqa, Iqa, 8);
        _unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
    }

    [GlobalSetup(Target = nameof(FastInvalEngine))]
    public void SetupEngine()
    {
        SetupDescriptors();
        _engine = new InvalidationEngine(Options());
        FillBackground(_engine.Iotlb);
    }

    [GlobalSetup(Target = nameof(QemuStyle))]
    public void SetupQemuStyle()
    {
        SetupDescriptors();
        _qemu = new QemuStyleIotlb(QemuStyleIotlb.QemuMaxSize);
        _queue = new QemuStyleInvalidationQueue(_ring.Reset(), _qemu, Iqa, smts: true);
    }

    /// <summary>Maps the GiB again: every page cached (outside the measured time).</summary>
    [IterationSetup]
    public void Map()
    {
        if (Iotlb is { } iotlb)
        {
            foreach (ref readonly TranslationEntry e in _mapping.AsSpan())
            {
                iotlb.Fill(in e);
            }
        }
        else if (_qemu is { } qemu)
        {
            Workload.Fill(qemu, _mapping);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _unit?.Dispose();
        _unit = null;
        _engine?.Dispose();
        _engine = null;
        _qemu = null;
        _queue = null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }

    /// <summary>Entries left in the IOTLB (the background).</summary>
    [Benchmark(Description = "FastInval, VT-d queue", OperationsPerInvoke = Pages)]
    public int FastInvalQueue()
    {
        VtdIommu unit = _unit!;
        ReadOnlySpan<VtdDescriptor> all = _descriptors;
        for (int b = 0; b < Doorbells; b++)
        {
            int tail = _ring.Write(all.Slice(b * (BatchSize + 1), BatchSize + 1));
            unit.WriteRegister(VtdRegisters.Iqt, (ulong)tail << 5, 4);
        }

        return unit.Engine.Iotlb.Count;
    }

    /// <summary>Entries left in the IOTLB (the background).</summary>
    [Benchmark(Description = "FastInval, engine batches", OperationsPerInvoke = Pages)]
    public int FastInvalEngine()
    {
        InvalidationEngine engine = _engine!;
        ReadOnlySpan<InvalidationDescriptor> all = _engineDescriptors;
        for (int b = 0; b < Doorbells; b++)
        {
            engine.Execute(all.Slice(b * BatchSize, BatchSize), _statuses);
        }

        return engine.Iotlb.Count;
    }

    /// <summary>Entries left in the table.</summary>
    [Benchmark(Baseline = true, Description = "QEMU-style", OperationsPerInvoke = Pages)]
    public int QemuStyle()
    {
        QemuStyleInvalidationQueue queue = _queue!;
        ReadOnlySpan<VtdDescriptor> all = _descriptors;
        for (int b = 0; b < Doorbells; b++)
        {
            int tail = _ring.Write(all.Slice(b * (BatchSize + 1), BatchSize + 1));
            queue.WriteTail((ulong)tail << 5);
        }

        return _qemu!.Count;
    }

    private static EngineOptions Options() =>
        new() { IotlbCapacity = Background + Pages, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 };

    private static void FillBackground(TranslationCache iotlb)
    {
        foreach (TranslationEntry e in Workload.Population(Background, WorkloadShape.Realistic))
        {
            if (iotlb.Fill(in e) == FillResult.Rejected)
            {
                throw new InvalidOperationException($"FastInval rejected a generated entry: {e}");
            }
        }
    }

    private void SetupDescriptors()
    {
        _mapping = Workload.Pages(Domain, Pasid, GuestIova, Pages);
        _descriptors = new VtdDescriptor[Doorbells * (BatchSize + 1)];
        _engineDescriptors = new InvalidationDescriptor[Pages];
        for (int page = 0; page < Pages; page++)
        {
            ulong address = GuestIova + ((ulong)page << 12);
            int slot = ((page / BatchSize) * (BatchSize + 1)) + (page % BatchSize);
            _descriptors[slot] = GuestRing.PageInvalidation(Domain, Pasid, address);
            _engineDescriptors[page] = InvalidationDescriptor.IotlbRange(Domain, Pasid, address, address + 0xFFF);
            if (page % BatchSize == BatchSize - 1)
            {
                _descriptors[slot + 1] = GuestRing.Wait();
            }
        }
    }
}
