using System.Diagnostics;

namespace FastInval.Benchmarks.Infrastructure;

/// <summary>
/// The in-process peer of <c>bench/native/abi_bench.c</c> (<c>--native-peer</c>, run by <c>native/bench.sh</c>): the same
/// engine (default options: a 65,536-entry IOTLB), the same 4,096 cached pages, the same lookup key sequence and the same
/// 64-descriptor batch, timed the same way (best of 7 runs of a fixed iteration count, ns per call), through the .NET API
/// instead of the C ABI. Each row is run once untimed first, so that the JIT has tiered the loop up; the C side needs
/// no warm-up. The same file is compiled twice: here, under the tiered JIT, and ahead of time in
/// <c>bench/FastInval.NativePeer</c>, as <c>libfastinval.so</c> is. The C row minus the AOT row is what the C ABI adds to
/// a call; the AOT row minus the JIT row is what ahead-of-time code costs, ABI or not.
/// </summary>
internal static class NativePeer
{
    private static ulong s_sink;

    public static int Run()
    {
        using var engine = new InvalidationEngine();
        TranslationCache iotlb = engine.Iotlb;
        for (ulong p = 0; p < 4096; p++)
        {
            var e = new TranslationEntry(TranslationStage.Stage1, 1, 1, p << 12, 0x1_0000_0000UL + (p << 12), 12,
                AccessRights.Read | AccessRights.Write, Granule.Size4K, global: false, isTable: false);
            if (iotlb.Fill(in e) == FillResult.Rejected)
            {
                Console.Error.WriteLine("native peer: fill rejected");
                return 1;
            }
        }

        // Pages nobody caches: the batch's cost without refills, as on the C side.
        var batch = new InvalidationDescriptor[64];
        for (int i = 0; i < batch.Length; i++)
        {
            ulong first = (ulong)(8192 + i) << 12;
            batch[i] = InvalidationDescriptor.IotlbRange(1, 1, first, first + 0xFFF);
        }

        var statuses = new InvalidationStatus[64];
        Print("lookup", Best(() => Lookups(iotlb, 10_000_000)));
        Print("exec64", Best(() => Executes(engine, batch, statuses, 100_000)));
        return 0;
    }

    // The loops are written out (no delegate per call), as the C side's are.
    private static double Lookups(TranslationCache iotlb, long iterations)
    {
        ulong sink = 0;
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < iterations; i++)
        {
            sink += iotlb.TryLookup(TranslationStage.Stage1, 1, 1, (ulong)(i & 4095) << 12, out Translation t) ? t.OutputAddress : 0;
        }

        double ns = Stopwatch.GetElapsedTime(t0).TotalNanoseconds / iterations;
        s_sink += sink;
        return ns;
    }

    private static double Executes(InvalidationEngine engine, InvalidationDescriptor[] batch, InvalidationStatus[] statuses, long iterations)
    {
        ulong sink = 0;
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < iterations; i++)
        {
            sink += (ulong)engine.Execute(batch, statuses).Ok;
        }

        double ns = Stopwatch.GetElapsedTime(t0).TotalNanoseconds / iterations;
        s_sink += sink;
        return ns;
    }

    /// <summary>One untimed run (the JIT tiers the loop and the calls up), then the best of 7.</summary>
    private static double Best(Func<double> run)
    {
        run();
        double best = double.MaxValue;
        for (int k = 0; k < 7; k++)
        {
            best = Math.Min(best, run());
        }

        return best;
    }

    private static void Print(string name, double ns) => Console.WriteLine($"{name,-7} {ns,8:F1} ns/op");
}
