using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks;

/// <summary>
/// Fills of entries that are not cached (what a host does after a lookup miss and its page walk) into a cache of
/// <see cref="Entries"/> entries, <see cref="FillsPerOperation"/> per operation (times are per fill). The entries come
/// round-robin from a precomputed stream of 2 × <see cref="Entries"/> distinct entries of the realistic mix, so an
/// entry is never in the cache when it is filled again.
/// <list type="bullet">
/// <item>FastInval: capacity <see cref="Entries"/>, full from the start: every fill evicts one entry (CLOCK) — its
/// steady state.</item>
/// <item>QEMU-style (baseline): QEMU's own policy scaled to <see cref="Entries"/>: an update that finds the table full
/// empties it first (QEMU does this at 1024 entries). The reset is amortized over the fills; the table holds between
/// 0 and <see cref="Entries"/> entries. Every update allocates a key and an entry, as QEMU's g_malloc's do.</item>
/// </list>
/// </summary>
[MemoryDiagnoser]
public class FillBenchmarks
{
    /// <summary>Fills per benchmark operation; reported times are divided by it.</summary>
    public const int FillsPerOperation = 1024;

    [ParamsSource(nameof(ScalingSizes))]
    public int Entries;

    /// <summary>The cache sizes of the scaling series (<see cref="Sizes.Scaling"/>).</summary>
    public static IEnumerable<int> ScalingSizes => Sizes.Scaling;

    private TranslationEntry[] _stream = [];
    private int _cursor;
    private InvalidationEngine? _engine;
    private QemuStyleIotlb? _qemu;

    internal InvalidationEngine? Engine => _engine;

    internal QemuStyleIotlb? Qemu => _qemu;

    [GlobalSetup(Targets = [nameof(FastInval), nameof(FastInvalTryFill), nameof(FastInvalUnlocked)])]
    public void SetupFastInval()
    {
        SetupStream();
        _engine = Workload.FastInval(_stream.AsSpan(0, Entries), Entries, TagScanKernels.Best);
    }

    [GlobalSetup(Target = nameof(QemuStyle))]
    public void SetupQemuStyle()
    {
        SetupStream();
        _qemu = Workload.Qemu(_stream.AsSpan(0, Entries), maxSize: Entries);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _engine?.Dispose();
        _engine = null;
        _qemu = null;
    }

    /// <summary>Sum of the fill results (2 = inserted after an eviction, the expected steady state).</summary>
    [Benchmark(Description = "FastInval", OperationsPerInvoke = FillsPerOperation)]
    public int FastInval()
    {
        TranslationCache iotlb = _engine!.Iotlb;
        int sum = 0;
        foreach (ref readonly TranslationEntry e in NextEntries())
        {
            sum += (int)iotlb.Fill(in e);
        }

        return sum;
    }

    /// <summary>The DMA path's fill: a token per fill (as a lookup miss returns it), then <c>TryFill</c>; no
    /// invalidation runs, so every fill goes in. Sum of the fill results.</summary>
    [Benchmark(Description = "FastInval TryFill", OperationsPerInvoke = FillsPerOperation)]
    public int FastInvalTryFill()
    {
        TranslationCache iotlb = _engine!.Iotlb;
        int sum = 0;
        foreach (ref readonly TranslationEntry e in NextEntries())
        {
            InvalidationToken token = iotlb.GetInvalidationToken(e.DomainId, e.InputAddress);
            iotlb.TryFill(in e, in token, out FillResult result);
            sum += (int)result;
        }

        return sum;
    }

    /// <summary>The FastInval row without the writer lock that lets fills run on any thread (its cost is the difference).</summary>
    [Benchmark(Description = "FastInval, no writer lock", OperationsPerInvoke = FillsPerOperation)]
    public int FastInvalUnlocked()
    {
        TranslationCache iotlb = _engine!.Iotlb;
        int sum = 0;
        foreach (ref readonly TranslationEntry e in NextEntries())
        {
            sum += (int)iotlb.FillUnlocked(in e);
        }

        return sum;
    }

    /// <summary>Entries in the table after the fills.</summary>
    [Benchmark(Baseline = true, Description = "QEMU-style", OperationsPerInvoke = FillsPerOperation)]
    public int QemuStyle()
    {
        QemuStyleIotlb qemu = _qemu!;
        Workload.Fill(qemu, NextEntries());
        return qemu.Count;
    }

    private ReadOnlySpan<TranslationEntry> NextEntries()
    {
        int start = _cursor;
        _cursor = (start + FillsPerOperation) % _stream.Length;
        return _stream.AsSpan(start, FillsPerOperation);
    }

    private void SetupStream()
    {
        if (Entries % FillsPerOperation != 0)
        {
            throw new InvalidOperationException($"Entries must be a multiple of {FillsPerOperation}");
        }

        _stream = Workload.Population(2 * Entries, WorkloadShape.Realistic, Workload.Seed + 1);
        _cursor = Entries; // the first Entries of the stream are cached by the setup
    }
}
