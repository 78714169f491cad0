using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using FastInval.Benchmarks.Infrastructure;

namespace FastInval.Benchmarks;

/// <summary>
/// The machine's limit for a tag flush: one core reading <see cref="Entries"/> × 8 bytes (the size of the IOTLB's tag
/// column, which a tag flush reads whole) from a 64-byte-aligned native array with the widest hardware-accelerated
/// vector, summing it so the loads stay. Its <c>ns/entry</c> is the time a flush of that many entries cannot beat;
/// <c>GB/s</c> is the read bandwidth at that size (the array sits in L1/L2/L3 at small sizes and in DRAM from a few
/// MiB up). The README divides this limit by the tag flush's <c>ns/entry</c> from the same run.
/// </summary>
[MemoryDiagnoser]
[NsPerEntryColumn]
[ReadBandwidthColumn]
public unsafe class MemoryBandwidthBenchmarks
{
    /// <summary>Bytes read per entry: the tag column's width.</summary>
    public const int BytesPerEntry = 8;

    [ParamsSource(nameof(ScalingSizes))]
    public int Entries;

    private ulong* _data;

    /// <summary>The cache sizes of the scaling series (<see cref="Sizes.Scaling"/>).</summary>
    public static IEnumerable<int> ScalingSizes => Sizes.Scaling;

    [GlobalSetup]
    public void Setup()
    {
        nuint bytes = (nuint)Entries * BytesPerEntry;
        _data = (ulong*)NativeMemory.AlignedAlloc(bytes, 64);
        for (int i = 0; i < Entries; i++)
        {
            _data[i] = (ulong)i * 0x9E37_79B9_7F4A_7C15UL;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_data);
        _data = null;
    }

    /// <summary>Sums the array (the checksum keeps every load).</summary>
    [Benchmark(Description = "Read 8 B/entry")]
    public ulong Read() => Sum(_data, Entries);

    /// <summary>A sum over <paramref name="count"/> 64-bit words with the widest accelerated vector, 4 vectors per
    /// step so that several loads are in flight (the same unrolling as the Vector512 scan kernel).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static ulong Sum(ulong* p, int count)
    {
        int i = 0;
        ulong total = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<ulong> a = default, b = default, c = default, d = default;
            for (; i + 32 <= count; i += 32)
            {
                a += Vector512.LoadAligned(p + i);
                b += Vector512.LoadAligned(p + i + 8);
                c += Vector512.LoadAligned(p + i + 16);
                d += Vector512.LoadAligned(p + i + 24);
            }

            total = Vector512.Sum(a + b + c + d);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<ulong> a = default, b = default, c = default, d = default;
            for (; i + 16 <= count; i += 16)
            {
                a += Vector256.LoadAligned(p + i);
                b += Vector256.LoadAligned(p + i + 4);
                c += Vector256.LoadAligned(p + i + 8);
                d += Vector256.LoadAligned(p + i + 12);
            }

            total = Vector256.Sum(a + b + c + d);
        }

        for (; i < count; i++)
        {
            total += p[i];
        }

        return total;
    }
}

/// <summary>"GB/s": bytes read per second, <see cref="MemoryBandwidthBenchmarks.BytesPerEntry"/> × Entries ÷ Mean.</summary>
public sealed class ReadBandwidthColumn : IColumn
{
    public string Id => nameof(ReadBandwidthColumn);

    public string ColumnName => "GB/s";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 1;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Bytes read per second (10^9), 8 bytes per entry";

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        BenchmarkReport? report = summary[benchmarkCase];
        object? entries = benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Name == NsPerEntryColumn.ParameterName)?.Value;
        if (report?.ResultStatistics is not { } stats || entries is not int n || stats.Mean <= 0)
        {
            return "-";
        }

        return ((double)n * MemoryBandwidthBenchmarks.BytesPerEntry / stats.Mean).ToString("0.0", CultureInfo.InvariantCulture);
    }
}

/// <summary>Adds the <see cref="ReadBandwidthColumn"/> to a benchmark class.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class ReadBandwidthColumnAttribute : ColumnConfigBaseAttribute
{
    public ReadBandwidthColumnAttribute()
        : base(new ReadBandwidthColumn())
    {
    }
}
