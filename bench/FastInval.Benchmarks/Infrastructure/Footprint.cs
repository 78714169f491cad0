using System.Globalization;
using System.Text;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks.Infrastructure;

/// <summary>
/// <c>--footprint [file]</c>: memory per cached translation at every size of <see cref="Sizes.Scaling"/>, FastInval
/// beside the QEMU-style port, printed as a markdown table (and written to <c>file</c>).
/// <list type="bullet">
/// <item>FastInval: the IOTLB's pinned buffer (<see cref="TranslationCache.MemoryBytes"/>: every column, the hash
/// buckets, the seqlock stripes and the CLOCK bitmap) for a capacity of N, divided by the N entries it holds when full.
/// Nothing else grows with the entries.</item>
/// <item>QEMU-style: the managed heap that building the table with N entries retained (<see cref="GC.GetTotalMemory"/>
/// after a full collection, before and after), divided by N: one key object, one entry object and the dictionary's slot
/// and bucket per translation. The sizes of one key and one entry object are measured on their own.</item>
/// </list>
/// </summary>
internal static class Footprint
{
    public static int Run(string? output)
    {
        long keyBytes = Allocated(() => new QemuStyleIotlb.Key());
        long entryBytes = Allocated(() => new QemuStyleIotlb.Entry());
        var sb = new StringBuilder();
        sb.AppendLine("| Entries | FastInval B/entry | QEMU-style B/entry | key object | entry object | dictionary slot + bucket | QEMU-style ÷ FastInval |");
        sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|");
        Console.Write(sb.ToString());
        foreach (int n in Sizes.Scaling)
        {
            (double fast, double slow) = Measure(n);
            string row = string.Create(CultureInfo.InvariantCulture,
                $"| {n:N0} | {fast:0.0} | {slow:0.0} | {keyBytes} | {entryBytes} | {slow - keyBytes - entryBytes:0.0} | {slow / fast:0.00} |");
            Console.WriteLine(row);
            sb.AppendLine(row);
        }

        if (output is not null)
        {
            File.WriteAllText(output, sb.ToString());
        }

        return 0;
    }

    /// <summary>Bytes per cached translation at <paramref name="n"/> entries: FastInval's buffer, and the heap the
    /// QEMU-style table retains. Its own method, so that nothing of an earlier size is still reachable from a local.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static (double Fast, double Slow) Measure(int n)
    {
        TranslationEntry[] entries = Workload.Population(n, WorkloadShape.Realistic);
        double fast;
        using (InvalidationEngine engine = Workload.FastInval(entries, n, TagScanKernels.Best))
        {
            fast = (double)engine.Iotlb.MemoryBytes / engine.Iotlb.Count;
        }

        long before = GC.GetTotalMemory(forceFullCollection: true);
        QemuStyleIotlb qemu = Workload.Qemu(entries, QemuStyleIotlb.Unlimited);
        long after = GC.GetTotalMemory(forceFullCollection: true);
        double slow = (double)(after - before) / qemu.Count;
        GC.KeepAlive(qemu);
        GC.KeepAlive(entries);
        return (fast, slow);
    }

    /// <summary>Bytes allocated by one call of <paramref name="create"/> (after a warm-up call).</summary>
    private static long Allocated(Func<object> create)
    {
        GC.KeepAlive(create());
        long before = GC.GetAllocatedBytesForCurrentThread();
        object o = create();
        long after = GC.GetAllocatedBytesForCurrentThread();
        GC.KeepAlive(o);
        return after - before;
    }
}
