using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks;

/// <summary>What a tag flush selects.</summary>
public enum FlushScope
{
    /// <summary>Every entry of one domain (VT-d IOTLB domain-selective, SMMU TLBI_S12_VMALL).</summary>
    Domain,

    /// <summary>Every non-global entry of one PASID of a domain (VT-d PASID-based IOTLB G=10b, SMMU TLBI_NH_ASID).</summary>
    Pasid,
}

/// <summary>
/// Tag flush (domain or PASID) over a cache of <see cref="Entries"/> entries of a realistic mix
/// (<see cref="WorkloadShape.Realistic"/>). The flushed domain or PASID holds <see cref="RefilledEntries"/> entries and
/// nothing else; every operation first refills them and then flushes, identically for every engine, so each
/// operation really removes entries. Rows: FastInval with each scan kernel (<see cref="TagScanKernels.Available"/>;
/// Scalar is the baseline) and the QEMU-style table (g_hash_table_foreach_remove over every entry).
/// </summary>
[MemoryDiagnoser]
[NsPerEntryColumn]
public class TagFlushBenchmarks
{
    /// <summary>Entries the flushed domain or PASID holds; refilled at the start of every operation.</summary>
    public const int RefilledEntries = 8;

    [ParamsSource(nameof(ScalingSizes))]
    public int Entries;

    /// <summary>The cache sizes of the scaling series (<see cref="Sizes.Scaling"/>).</summary>
    public static IEnumerable<int> ScalingSizes => Sizes.Scaling;

    [Params(FlushScope.Domain, FlushScope.Pasid)]
    public FlushScope Scope;

    private TranslationEntry[] _refill = [];
    private InvalidationDescriptor _flush;
    private InvalidationEngine? _engine;
    private QemuStyleIotlb? _qemu;

    internal InvalidationEngine? Engine => _engine;

    internal QemuStyleIotlb? Qemu => _qemu;

    [GlobalSetup(Target = nameof(Scalar))]
    public void SetupScalar() => SetupFastInval(TagScanKernel.Scalar);

    [GlobalSetup(Target = nameof(Vector128))]
    public void SetupVector128() => SetupFastInval(TagScanKernel.Vector128);

    [GlobalSetup(Target = nameof(Vector256))]
    public void SetupVector256() => SetupFastInval(TagScanKernel.Vector256);

    [GlobalSetup(Target = nameof(Vector512))]
    public void SetupVector512() => SetupFastInval(TagScanKernel.Vector512);

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

    [Benchmark(Baseline = true, Description = "TagScan.Scalar")]
    public int Scalar() => RefillAndFlushFastInval();

    [Benchmark(Description = "TagScan.Vector128")]
    public int Vector128() => RefillAndFlushFastInval();

    [Benchmark(Description = "TagScan.Vector256")]
    public int Vector256() => RefillAndFlushFastInval();

    [Benchmark(Description = "TagScan.Vector512")]
    public int Vector512() => RefillAndFlushFastInval();

    [Benchmark(Description = "QEMU-style")]
    public int QemuStyle()
    {
        QemuStyleIotlb qemu = _qemu!;
        Workload.Fill(qemu, _refill);
        return Scope == FlushScope.Domain
            ? qemu.InvalidateDomain(Workload.ReservedDomain)
            : qemu.InvalidatePasid(WorkloadShape.Realistic.DomainOf(0), Workload.ReservedPasid);
    }

    /// <summary>Refills the flushed set, flushes, and returns how many entries the flush removed.</summary>
    private int RefillAndFlushFastInval() => Workload.RefillAndExecute(_engine!, _refill, in _flush);

    private void SetupFastInval(TagScanKernel kernel)
    {
        SetupTarget();
        _engine = Workload.FastInval(Workload.Population(Entries, WorkloadShape.Realistic), Entries + RefilledEntries, kernel);
    }

    private void SetupTarget()
    {
        // Domain flush: a domain of its own. PASID flush: a PASID of its own inside the first (busy) domain.
        (ushort domain, _flush) = Scope == FlushScope.Domain
            ? (Workload.ReservedDomain, InvalidationDescriptor.IotlbDomain(Workload.ReservedDomain))
            : (WorkloadShape.Realistic.DomainOf(0), InvalidationDescriptor.IotlbAddressSpace(WorkloadShape.Realistic.DomainOf(0), Workload.ReservedPasid));
        _refill = Workload.Pages(domain, Workload.ReservedPasid, Workload.ReservedIova, RefilledEntries);
    }
}
