using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;
using FastInval.Vtd;

namespace FastInval.Benchmarks;

/// <summary>
/// Descriptors through a VT-d invalidation queue: the guest writes <see cref="BatchSize"/> page-selective PASID-based
/// IOTLB descriptors (PIOTLB G=11b, AM = 0, one page each) and a wait descriptor (SW) into a 256-bit ring in guest
/// memory and rings IQT once; the unit processes all of them inside that register write. The invalidated pages belong to
/// a busy PASID of the realistic mix in a cache of <see cref="Entries"/> entries and are refilled at the start of every
/// operation, identically for both. "FastInval" is <see cref="VtdIommu"/> (fetch, decode, one engine batch up to the
/// wait, which probes the hash index page by page); "QEMU-style" (baseline) is <see cref="QemuStyleInvalidationQueue"/>
/// over <see cref="QemuStyleIotlb"/>, whose every page invalidation walks the whole table. Times are per descriptor
/// (<c>OperationsPerInvoke</c> = 65), and the descriptors/s column is their inverse.
/// </summary>
[MemoryDiagnoser]
[DescriptorsPerSecondColumn]
public class VtdQueueBenchmarks : IDisposable
{
    /// <summary>Page-selective descriptors per doorbell.</summary>
    public const int BatchSize = 64;

    /// <summary>Descriptors per operation: the batch and its wait.</summary>
    public const int Descriptors = BatchSize + 1;

    private const ulong Iqa = GuestRing.Iqa;

    /// <summary>1024: QEMU's own IOTLB limit (VTD_IOTLB_MAX_SIZE); 64K: a larger cache.</summary>
    [Params(1 << 10, 1 << 16)]
    public int Entries;

    private readonly GuestRing _fastRing = new();
    private readonly GuestRing _qemuRing = new();
    private TranslationEntry[] _refill = [];
    private VtdDescriptor[] _batch = [];
    private VtdIommu? _unit;
    private QemuStyleIotlb? _qemu;
    private QemuStyleInvalidationQueue? _queue;

    internal VtdIommu? Unit => _unit;

    internal QemuStyleIotlb? Qemu => _qemu;

    internal QemuStyleInvalidationQueue? Queue => _queue;

    internal uint FastStatus => BitConverter.ToUInt32(_fastRing.Status);

    internal uint QemuStatus => BitConverter.ToUInt32(_qemuRing.Status);

    private static ushort Domain => WorkloadShape.Realistic.DomainOf(0);

    private static uint Pasid => WorkloadShape.PasidOf(0);

    [GlobalSetup(Target = nameof(FastInval))]
    public void SetupFastInval()
    {
        SetupTarget();
        _unit = new VtdIommu(_fastRing.Reset(), new VtdOptions
        {
            Engine = new EngineOptions { IotlbCapacity = Entries + BatchSize, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 },
        });
        foreach (TranslationEntry e in Workload.Population(Entries, WorkloadShape.Realistic))
        {
            _unit.Engine.Iotlb.Fill(in e);
        }

        _unit.WriteRegister(VtdRegisters.Iqa, Iqa, 8);
        _unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
    }

    [GlobalSetup(Target = nameof(QemuStyle))]
    public void SetupQemuStyle()
    {
        SetupTarget();
        // QEMU empties its IOTLB when an update finds 1024 entries; the limit is off so the table holds Entries entries.
        _qemu = Workload.Qemu(Workload.Population(Entries, WorkloadShape.Realistic), QemuStyleIotlb.Unlimited);
        _queue = new QemuStyleInvalidationQueue(_qemuRing.Reset(), _qemu, Iqa, smts: true);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _unit?.Dispose();
        _unit = null;
        _qemu = null;
        _queue = null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }

    /// <summary>Entries removed.</summary>
    [Benchmark(Description = "FastInval", OperationsPerInvoke = Descriptors)]
    public int FastInval()
    {
        VtdIommu unit = _unit!;
        TranslationCache iotlb = unit.Engine.Iotlb;
        foreach (ref readonly TranslationEntry e in _refill.AsSpan())
        {
            iotlb.Fill(in e);
        }

        int before = iotlb.Count;
        unit.WriteRegister(VtdRegisters.Iqt, (ulong)(_fastRing.Write(_batch) << 5), 4);
        return before - iotlb.Count;
    }

    /// <summary>Entries removed.</summary>
    [Benchmark(Baseline = true, Description = "QEMU-style", OperationsPerInvoke = Descriptors)]
    public int QemuStyle()
    {
        QemuStyleIotlb qemu = _qemu!;
        Workload.Fill(qemu, _refill);
        int before = qemu.Count;
        _queue!.WriteTail((ulong)(_qemuRing.Write(_batch) << 5));
        return before - qemu.Count;
    }

    private void SetupTarget()
    {
        _refill = Workload.Pages(Domain, Pasid, Workload.ReservedIova, BatchSize);
        _batch = new VtdDescriptor[Descriptors];
        for (int i = 0; i < BatchSize; i++)
        {
            _batch[i] = GuestRing.PageInvalidation(Domain, Pasid, Workload.ReservedIova + ((ulong)i << 12));
        }

        _batch[BatchSize] = GuestRing.Wait();
    }
}
