using System.Numerics;
using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks;

/// <summary>
/// Page-selective invalidation within a PASID (VT-d PASID-based IOTLB G=11b, AM = log2 <see cref="Pages"/>;
/// SMMU TLBI_NH_VA over the same range) in a cache of <see cref="Entries"/> entries. The invalidated pages belong to a
/// busy address space of the realistic mix; every operation first refills them (<see cref="Pages"/> fills) and then
/// invalidates the naturally aligned block, identically for both engines. FastInval probes its hash index block by
/// block; the QEMU-style table runs vtd_hash_remove_by_page_piotlb over every entry (the baseline).
/// </summary>
[MemoryDiagnoser]
public class PageInvalidationBenchmarks
{
    [ParamsSource(nameof(ScalingSizes))]
    public int Entries;

    /// <summary>The cache sizes of the scaling series (<see cref="Sizes.Scaling"/>).</summary>
    public static IEnumerable<int> ScalingSizes => Sizes.Scaling;

    [Params(1, 512)]
    public int Pages;

    private TranslationEntry[] _refill = [];
    private InvalidationDescriptor _invalidate;
    private InvalidationEngine? _engine;
    private QemuStyleIotlb? _qemu;

    internal InvalidationEngine? Engine => _engine;

    internal QemuStyleIotlb? Qemu => _qemu;

    private static ushort Domain => WorkloadShape.Realistic.DomainOf(0);

    private static uint Pasid => WorkloadShape.PasidOf(0);

    [GlobalSetup(Target = nameof(FastInval))]
    public void SetupFastInval()
    {
        SetupTarget();
        _engine = Workload.FastInval(Workload.Population(Entries, WorkloadShape.Realistic), Entries + Pages, TagScanKernels.Best);
    }

    [GlobalSetup(Target = nameof(QemuStyle))]
    public void SetupQemuStyle()
    {
        SetupTarget();
        // QEMU empties its IOTLB at 1024 entries; the limit is off here so the table really holds Entries entries.
        _qemu = Workload.Qemu(Workload.Population(Entries, WorkloadShape.Realistic), QemuStyleIotlb.Unlimited);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _engine?.Dispose();
        _engine = null;
        _qemu = null;
    }

    [Benchmark(Description = "FastInval")]
    public int FastInval() => Workload.RefillAndExecute(_engine!, _refill, in _invalidate);

    [Benchmark(Baseline = true, Description = "QEMU-style")]
    public int QemuStyle()
    {
        QemuStyleIotlb qemu = _qemu!;
        Workload.Fill(qemu, _refill);
        return qemu.InvalidatePasidPage(Domain, Pasid, Workload.ReservedIova, BitOperations.Log2((uint)Pages));
    }

    private void SetupTarget()
    {
        if (!BitOperations.IsPow2(Pages))
        {
            throw new InvalidOperationException("Pages must be a power of two (an AM block)");
        }

        _refill = Workload.Pages(Domain, Pasid, Workload.ReservedIova, Pages);
        _invalidate = InvalidationDescriptor.IotlbRange(Domain, Pasid, Workload.ReservedIova,
            Workload.ReservedIova + ((ulong)Pages << 12) - 1);
    }
}
