using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;
using FastInval.Uapi;

namespace FastInval.Benchmarks;

/// <summary>
/// A guest's VT-d stage-1 invalidation array of <see cref="ArrayEntries"/> one-page entries (struct
/// iommu_hwpt_vtd_s1_invalidate: consecutive 4 KiB pages, npages 1) end to end through
/// <see cref="Iommufd.Ioctl"/>(IOMMU_HWPT_INVALIDATE): dispatch, header checks, the VT-d driver's per-entry validation
/// and address-mask conversion, and the engine's execution, on a nested domain whose IOTLB holds <see cref="Entries"/>
/// entries of the realistic mix. Alongside, the QEMU-style table handles the same array as QEMU's vIOMMU handles the same
/// page-selective PASID-based IOTLB descriptors: vtd_hash_remove_by_page_piotlb over every entry, once per entry.
/// </summary>
/// <remarks>
/// Rows: the baseline refills the 1,024 pages and then invalidates them (so each op really removes them); "refill +
/// Ioctl" does the same through iommufd; "Ioctl" is the ioctl alone in steady state (the pages are gone after the first
/// op, each entry still probes its block); "Ioctl, ATS device" adds one attached ATS device, so each entry also invalidates
/// its device TLB. QEMU's own table empties itself at 1,024 entries (<see cref="QemuStyleIotlb.QemuMaxSize"/>), which the
/// 1K row keeps; the 64K row lifts the limit, as the other scaling benchmarks do.
/// </remarks>
[MemoryDiagnoser]
[EntriesPerSecondColumn]
public class IommufdInvalidateBenchmarks : IDisposable
{
    /// <summary>Entries in one invalidation array.</summary>
    public const int ArrayEntries = 1024;

    [Params(1 << 10, 1 << 16)]
    public int Entries;

    private Iommufd? _fd;
    private InvalidationEngine? _engine;
    private byte[] _header = [];
    private byte[] _array = [];
    private TranslationEntry[] _refill = [];
    private QemuStyleIotlb? _qemu;
    private ushort _did;

    internal InvalidationEngine? Engine => _engine;

    internal QemuStyleIotlb? Qemu => _qemu;

    [GlobalSetup(Targets = [nameof(RefillAndIoctl), nameof(Ioctl)])]
    public void SetupFastInval() => SetupIommufd(ats: false);

    [GlobalSetup(Target = nameof(IoctlWithAtsDevice))]
    public void SetupFastInvalAts() => SetupIommufd(ats: true);

    [GlobalSetup(Target = nameof(QemuStyle))]
    public void SetupQemuStyle()
    {
        BuildArray(did: 2);
        _qemu = Workload.Qemu(Workload.Population(Entries, WorkloadShape.Realistic),
            Entries <= QemuStyleIotlb.QemuMaxSize ? QemuStyleIotlb.QemuMaxSize : QemuStyleIotlb.Unlimited);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _fd?.Dispose();
        _fd = null;
        _engine = null;
        _qemu = null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }

    [Benchmark(Baseline = true, Description = "QEMU-style")]
    public int QemuStyle()
    {
        QemuStyleIotlb qemu = _qemu!;
        Workload.Fill(qemu, _refill);
        int removed = 0;
        ReadOnlySpan<byte> array = _array;
        for (int i = 0; i < ArrayEntries; i++)
        {
            // A PASID-based IOTLB descriptor per entry: ADDR and AM as the guest driver encodes one page-selective range.
            ulong addr = BinaryPrimitives.ReadUInt64LittleEndian(array[(i * 24)..]);
            ulong npages = BinaryPrimitives.ReadUInt64LittleEndian(array[((i * 24) + 8)..]);
            int am = npages <= 1 ? 0 : 64 - BitOperations.LeadingZeroCount(npages - 1);
            removed += qemu.InvalidatePasidPage(_did, 0, addr & ~((4096UL << am) - 1), am);
        }

        return removed;
    }

    [Benchmark(Description = "FastInval refill + Ioctl")]
    public int RefillAndIoctl()
    {
        TranslationCache iotlb = _engine!.Iotlb;
        foreach (ref readonly TranslationEntry e in _refill.AsSpan())
        {
            iotlb.Fill(in e);
        }

        int before = iotlb.Count;
        return _fd!.Ioctl(IommufdRequest.HwptInvalidate, _header) == 0 ? before - iotlb.Count : -1;
    }

    [Benchmark(Description = "FastInval Ioctl")]
    public int Ioctl() => _fd!.Ioctl(IommufdRequest.HwptInvalidate, _header) == 0 ? (int)BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(24)) : -1;

    [Benchmark(Description = "FastInval Ioctl, ATS device")]
    public int IoctlWithAtsDevice() => _fd!.Ioctl(IommufdRequest.HwptInvalidate, _header) == 0 ? (int)BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(24)) : -1;

    private void SetupIommufd(bool ats)
    {
        var memory = new UserMemory();
        _fd = new Iommufd(memory, new IommufdOptions
        {
            EngineOptions = new EngineOptions
            {
                IotlbCapacity = Entries + ArrayEntries,
                DeviceTlbCapacity = 2 * ArrayEntries,
                ConfigCacheCapacity = 64,
                Kernel = TagScanKernels.Best,
            },
        });
        _engine = _fd.Engine(IommuKind.IntelVtd);
        foreach (ref readonly TranslationEntry e in Workload.Population(Entries, WorkloadShape.Realistic).AsSpan())
        {
            if (_engine.Iotlb.Fill(in e) == FillResult.Rejected)
            {
                throw new InvalidOperationException($"FastInval rejected a generated entry: {e}");
            }
        }

        uint device = _fd.AddDevice(IommuKind.IntelVtd, 0x0100, ats);
        byte[] ioas = Struct(12);
        Must(_fd.Ioctl(IommufdRequest.IoasAlloc, ioas));
        byte[] parent = Struct(48, (8, device), (12, U32(ioas, 8)), (4, (uint)HwptAllocFlags.NestParent));
        Must(_fd.Ioctl(IommufdRequest.HwptAlloc, parent));
        byte[] s1 = new byte[24];
        BinaryPrimitives.WriteUInt64LittleEndian(s1.AsSpan(8), 0x1000_0000);
        BinaryPrimitives.WriteUInt32LittleEndian(s1.AsSpan(16), 48);
        byte[] nested = Struct(48, (8, device), (12, U32(parent, 16)), (24, HwptDataType.VtdS1), (28, 24));
        BinaryPrimitives.WriteUInt64LittleEndian(nested.AsSpan(32), memory.Map(s1));
        Must(_fd.Ioctl(IommufdRequest.HwptAlloc, nested));
        uint nestedId = U32(nested, 16);
        Must(_fd.AttachDevice(device, nestedId));
        _fd.TryGetDomainId(nestedId, out ushort did);
        BuildArray(did);
        if (ats)
        {
            for (int i = 0; i < ArrayEntries; i++)
            {
                _engine.DeviceTlb.Fill(new DeviceTlbEntry(0x0100, AddressSpace.None, Workload.ReservedIova + ((ulong)i << 12), (ulong)i << 12));
            }
        }

        _header = Struct(32, (4, nestedId), (16, InvalidateDataType.VtdS1), (20, 24), (24, ArrayEntries));
        BinaryPrimitives.WriteUInt64LittleEndian(_header.AsSpan(8), memory.Map(_array));
    }

    private void BuildArray(ushort did)
    {
        _did = did;
        _array = new byte[ArrayEntries * 24];
        for (int i = 0; i < ArrayEntries; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_array.AsSpan(i * 24), Workload.ReservedIova + ((ulong)i << 12));
            BinaryPrimitives.WriteUInt64LittleEndian(_array.AsSpan((i * 24) + 8), 1);
        }

        _refill = Workload.Pages(did, 0, Workload.ReservedIova, ArrayEntries);
    }

    private static byte[] Struct(int size, params (int Offset, uint Value)[] fields)
    {
        byte[] a = new byte[size];
        BinaryPrimitives.WriteUInt32LittleEndian(a, (uint)size);
        foreach ((int offset, uint value) in fields)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(offset), value);
        }

        return a;
    }

    private static uint U32(byte[] a, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(a.AsSpan(offset));

    private static void Must(int rc)
    {
        if (rc != 0)
        {
            throw new InvalidOperationException($"iommufd setup failed: {Errno.Name(rc)}");
        }
    }
}

/// <summary>"M entries/s": invalidation-array entries handled per second, <see cref="IommufdInvalidateBenchmarks.ArrayEntries"/>
/// per op divided by the mean.</summary>
public sealed class EntriesPerSecondColumn : IColumn
{
    public string Id => nameof(EntriesPerSecondColumn);

    public string ColumnName => "M entries/s";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => $"{IommufdInvalidateBenchmarks.ArrayEntries} array entries per op divided by Mean, in millions per second";

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) =>
        summary[benchmarkCase]?.ResultStatistics is { } stats && stats.Mean > 0
            ? (IommufdInvalidateBenchmarks.ArrayEntries * 1000.0 / stats.Mean).ToString("0.00", CultureInfo.InvariantCulture)
            : "-";
}

/// <summary>Adds the <see cref="EntriesPerSecondColumn"/> to a benchmark class.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class EntriesPerSecondColumnAttribute : BenchmarkDotNet.Attributes.ColumnConfigBaseAttribute
{
    public EntriesPerSecondColumnAttribute()
        : base(new EntriesPerSecondColumn())
    {
    }
}
