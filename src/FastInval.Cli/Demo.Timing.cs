using System.Diagnostics;
using System.Globalization;
using System.Reflection;

namespace FastInval.Cli;

internal static partial class Demo
{
    private const int TimingDomains = 16;
    private const int TimingPasid = 1;
    private const ushort FlushedDomain = 7;
    private const ushort PagedDomain = 5;
    private const ushort EmptyDomain = 99;
    private const int PageBatch = 1024;
    private const int FlushRepeats = 5;
    private const int PageRepeats = 20;

    /// <summary>What the timing run measured.</summary>
    private sealed record Timings(
        int Entries, long MemoryBytes, string Kernel,
        TimeSpan Fill, int FillsNotInserted,
        TimeSpan Lookup, int LookupHits, bool LookupsCorrect,
        double FlushNsPerEntry, TimeSpan FlushMedian, int FlushRemoved, int FlushScanned,
        double EmptyFlushNsPerEntry, TimeSpan EmptyFlushMedian, int EmptyFlushRemoved,
        TimeSpan PageBatchMedian, int PageBatchRemoved);

    private static void RunTimings(TextWriter o, SelfChecks checks, DemoSettings settings)
    {
        int entries = settings.TimingEntries;
        const int small = 1 << 16;
        if (entries <= 0 || entries % (TimingDomains * PageBatch) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(settings), $"TimingEntries must be a positive multiple of {TimingDomains * PageBatch}");
        }

        o.WriteLine();
        o.WriteLine("How fast: one thread, timed with Stopwatch.");

        // Warm-up: the same work at the small size, twice, with pauses, so that the runtime's tiered JIT has replaced
        // the first, unoptimized code of the hot methods before anything is timed.
        Measure(small);
        Thread.Sleep(250);
        Measure(small);
        Thread.Sleep(100);
        Timings big = Measure(entries);
        Timings cached = Measure(small);

        string accelerated = TagScanKernels.Accelerated.IsEmpty ? "none" : string.Join(", ", TagScanKernels.Accelerated);
        o.WriteLine($"  kernel:             {big.Kernel} (vector widths accelerated here: {accelerated})");
        o.WriteLine($"  CPU:                {MachineInfo.CpuName()} ({Environment.ProcessorCount} logical processors), .NET {Environment.Version}, {MachineInfo.Os()}");
        if (MachineInfo.EngineIsUnoptimized())
        {
            o.WriteLine("  NOTE:               the engine was compiled in Debug (JIT optimizations off), so these numbers are far too slow;");
            o.WriteLine("                      for representative ones run: dotnet run -c Release --project src/FastInval.Cli -- demo");
        }

        o.WriteLine($"  IOTLB of {N(big.Entries)} entries ({TimingDomains} domains x {N(big.Entries / TimingDomains)} pages of 4 KiB, {big.MemoryBytes / (1024.0 * 1024.0):F0} MiB pinned):");
        o.WriteLine($"    fill:                  {N(big.Entries)} entries in {Ms(big.Fill)} = {Rate(big.Entries, big.Fill)} fills/s ({Ns(big.Fill, big.Entries)} each)");
        o.WriteLine($"    lookup:                {N(big.Entries)} random DMA addresses in {Ms(big.Lookup)}, {(big.LookupHits == big.Entries ? "all" : N(big.LookupHits))} hit = {Rate(big.Entries, big.Lookup)} lookups/s ({Ns(big.Lookup, big.Entries)} each)");
        o.WriteLine($"    domain flush:          DID {FlushedDomain} ({N(big.FlushRemoved)} of {N(big.FlushScanned)} entries) in {Ms(big.FlushMedian)} = {Fixed(big.FlushNsPerEntry)} ns per cached entry");
        o.WriteLine($"    flush finding nothing: DID {EmptyDomain} (no entries) in {Ms(big.EmptyFlushMedian)} = {Fixed(big.EmptyFlushNsPerEntry)} ns per cached entry: the tag scan alone");
        o.WriteLine($"    page invalidation:     batches of {N(PageBatch)} one-page descriptors, {Us(big.PageBatchMedian)} per batch = {Rate(PageBatch, big.PageBatchMedian)} invalidations/s ({Ns(big.PageBatchMedian, PageBatch)} each)");
        o.WriteLine($"  IOTLB of {N(cached.Entries)} entries (fits in the CPU caches): fill {Ns(cached.Fill, cached.Entries)}, lookup {Ns(cached.Lookup, cached.Entries)}, " +
            $"domain flush {Fixed(cached.FlushNsPerEntry)} ns per entry, one-page invalidation {Ns(cached.PageBatchMedian, PageBatch)}");
        o.WriteLine($"  (flushes and batches: median of {FlushRepeats} and {PageRepeats} runs. The project's targets for a 2-core EPYC: fill <= 25 ns and lookup <= 12 ns");
        o.WriteLine("   at 64K entries; tag flush about 0.10 ns per entry and one-page invalidation <= 100 ns at 1M entries; measured by the benchmarks.)");

        foreach (Timings t in new[] { big, cached })
        {
            string at = $"at {N(t.Entries)} entries";
            checks.Check(t.FillsNotInserted == 0, $"{at}: every timing fill was inserted without eviction");
            checks.Check(t.LookupHits == t.Entries && t.LookupsCorrect, $"{at}: every timed lookup hit and returned the filled translation");
            checks.Check(t.FlushRemoved == t.Entries / TimingDomains, $"{at}: each timed domain flush removed the domain's {N(t.Entries / TimingDomains)} entries");
            checks.Check(t.EmptyFlushRemoved == 0, $"{at}: the flush of an absent domain removed nothing");
            checks.Check(t.PageBatchRemoved == PageBatch * PageRepeats, $"{at}: each timed batch removed its {N(PageBatch)} pages");
        }
    }

    private static ulong TimingOutput(ushort did, ulong page) => ((ulong)did << 36) | (page << 12);

    private static int FillDomain(InvalidationEngine engine, ushort did, int pages)
    {
        int notInserted = 0;
        for (ulong p = 0; p < (ulong)pages; p++)
        {
            if (engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, did, TimingPasid, p << 12, TimingOutput(did, p))) != FillResult.Inserted)
            {
                notInserted++;
            }
        }

        return notInserted;
    }

    private static Timings Measure(int entries)
    {
        int perDomain = entries / TimingDomains;
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = entries });
        var rng = new Random(20231212);

        // Fill.
        long start = Stopwatch.GetTimestamp();
        int notInserted = 0;
        for (ushort did = 1; did <= TimingDomains; did++)
        {
            notInserted += FillDomain(engine, did, perDomain);
        }

        TimeSpan fill = Stopwatch.GetElapsedTime(start);

        // Lookups of random addresses (all mapped), checked against the filled translations outside the timed loop.
        var dids = new ushort[entries];
        var addresses = new ulong[entries];
        ulong expected = 0;
        for (int i = 0; i < entries; i++)
        {
            dids[i] = (ushort)(1 + rng.Next(TimingDomains));
            ulong page = (ulong)rng.Next(perDomain);
            ulong offset = (ulong)rng.Next(4096);
            addresses[i] = (page << 12) | offset;
            expected += TimingOutput(dids[i], page) | offset;
        }

        int hits = 0;
        ulong sum = 0;
        start = Stopwatch.GetTimestamp();
        for (int i = 0; i < entries; i++)
        {
            if (engine.Iotlb.TryLookup(TranslationStage.Stage1, dids[i], TimingPasid, addresses[i], out Translation t))
            {
                hits++;
                sum += t.OutputAddress;
            }
        }

        TimeSpan lookup = Stopwatch.GetElapsedTime(start);

        // Domain flushes: one domain of sixteen, refilled (untimed) before each repetition.
        var flushTimes = new List<TimeSpan>();
        int flushRemoved = int.MaxValue, scanned = engine.Iotlb.Count;
        for (int r = 0; r < FlushRepeats; r++)
        {
            if (r > 0)
            {
                FillDomain(engine, FlushedDomain, perDomain);
            }

            int before = engine.Iotlb.Count;
            start = Stopwatch.GetTimestamp();
            engine.Execute(InvalidationDescriptor.IotlbDomain(FlushedDomain));
            flushTimes.Add(Stopwatch.GetElapsedTime(start));
            flushRemoved = Math.Min(flushRemoved, before - engine.Iotlb.Count);
        }

        FillDomain(engine, FlushedDomain, perDomain);
        TimeSpan flush = Median(flushTimes);

        // The same flush for a domain that has no entries: what the scan over every cached entry costs by itself.
        var emptyTimes = new List<TimeSpan>();
        int emptyRemoved = 0;
        for (int r = 0; r < FlushRepeats; r++)
        {
            int before = engine.Iotlb.Count;
            start = Stopwatch.GetTimestamp();
            engine.Execute(InvalidationDescriptor.IotlbDomain(EmptyDomain));
            emptyTimes.Add(Stopwatch.GetElapsedTime(start));
            emptyRemoved += before - engine.Iotlb.Count;
        }

        TimeSpan emptyFlush = Median(emptyTimes);

        // Page-selective invalidations: batches of 1,024 distinct random pages of one domain, refilled (untimed) after each.
        var batch = new InvalidationDescriptor[PageBatch];
        var statuses = new InvalidationStatus[PageBatch];
        var pages = new HashSet<ulong>();
        var pageTimes = new List<TimeSpan>();
        int pageRemoved = 0;
        for (int r = 0; r < PageRepeats; r++)
        {
            pages.Clear();
            while (pages.Count < PageBatch)
            {
                pages.Add((ulong)rng.Next(perDomain));
            }

            int k = 0;
            foreach (ulong page in pages)
            {
                batch[k++] = InvalidationDescriptor.IotlbRange(PagedDomain, TimingPasid, page << 12, (page << 12) | 0xFFF);
            }

            int before = engine.Iotlb.Count;
            start = Stopwatch.GetTimestamp();
            engine.Execute(batch, statuses);
            pageTimes.Add(Stopwatch.GetElapsedTime(start));
            pageRemoved += before - engine.Iotlb.Count;
            foreach (ulong page in pages)
            {
                engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, PagedDomain, TimingPasid, page << 12, TimingOutput(PagedDomain, page)));
            }
        }

        return new Timings(entries, engine.Iotlb.MemoryBytes, TagScanKernels.Name(engine.Kernel),
            fill, notInserted, lookup, hits, sum == expected,
            flush.TotalNanoseconds / scanned, flush, flushRemoved, scanned,
            emptyFlush.TotalNanoseconds / scanned, emptyFlush, emptyRemoved,
            Median(pageTimes), pageRemoved);
    }

    private static TimeSpan Median(List<TimeSpan> times)
    {
        times.Sort();
        return times[times.Count / 2];
    }

    private static string Fixed(double value) => value.ToString(value < 10 ? "F2" : value < 100 ? "F1" : "F0", CultureInfo.InvariantCulture);

    private static string Ms(TimeSpan t) => Fixed(t.TotalMilliseconds) + " ms";

    private static string Us(TimeSpan t) => Fixed(t.TotalMicroseconds) + " us";

    private static string Ns(TimeSpan t, int count) => Fixed(t.TotalNanoseconds / count) + " ns";

    private static string Rate(int count, TimeSpan t) =>
        t <= TimeSpan.Zero ? "n/a" : Fixed(count / t.TotalSeconds / 1e6) + " M";
}

/// <summary>What the timing section says about the machine and the build.</summary>
internal static class MachineInfo
{
    /// <summary>The CPU's "model name" from /proc/cpuinfo, else the process architecture.</summary>
    public static string CpuName()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
            {
                foreach (string line in File.ReadLines("/proc/cpuinfo"))
                {
                    if (line.StartsWith("model name", StringComparison.Ordinal))
                    {
                        int colon = line.IndexOf(':', StringComparison.Ordinal);
                        string name = colon >= 0 ? line[(colon + 1)..].Trim() : "";
                        if (name.Length > 0)
                        {
                            return name;
                        }
                    }
                }
            }
        }
        catch (IOException)
        {
            // fall through to the runtime's answer
        }
        catch (UnauthorizedAccessException)
        {
            // idem
        }

        return $"{System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture} CPU";
    }

    /// <summary>The operating system and architecture, e.g. "Linux X64".</summary>
    public static string Os() =>
        $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription.Trim()} {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}";

    /// <summary>True when the engine assembly was compiled without optimizations (a Debug build).</summary>
    public static bool EngineIsUnoptimized() =>
        typeof(InvalidationEngine).Assembly.GetCustomAttribute<DebuggableAttribute>()?.IsJITOptimizerDisabled == true;
}
