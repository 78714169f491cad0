using System.Diagnostics;

namespace FastInval.Tests.Engine;

/// <summary>
/// DESIGN §3 under load: readers look up while one writer fills, replaces, evicts and invalidates (range probes,
/// tag scans, whole-cache resets). Every lookup checks the two invariants:
/// <list type="bullet">
/// <item>no torn entry: the answer's output encodes the serial of a fill of exactly the looked-up page;</item>
/// <item>no stale translation: if an invalidation covering the page completed before the lookup started, the answer was
/// filled after that invalidation.</item>
/// </list>
/// Bounded in time (1.5 s per case, longer only on a starved machine, never past 15 s) and in count.
/// </summary>
public class ConcurrencyStressTests
{
    private const int Pages = 512;
    private const int SerialBits = 22;

    [Theory]
    [InlineData(4096, 0)] // no eviction
    [InlineData(4096, 1)]
    [InlineData(64, 0)]   // constant eviction
    public void LookupsDuringInvalidation_NeverSeeStaleOrTornEntries(int capacity, int kernelIndex)
    {
        TagScanKernel kernel = kernelIndex == 0 ? TagScanKernels.Best : TagScanKernel.Scalar;
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = capacity, Kernel = kernel });
        var fillPage = new int[1 << SerialBits];          // serial -> page it was filled for
        var deadBefore = new long[Pages];                 // page -> serials below this are invalidated (published after the call returns)
        long violations = 0, lookups = 0, hits = 0;
        string? firstViolation = null;
        using var stop = new CancellationTokenSource();

        void Reader(int seed)
        {
            var rng = new Random(seed);
            while (!stop.IsCancellationRequested)
            {
                int page = rng.Next(Pages);
                long dead = Volatile.Read(ref deadBefore[page]);
                bool hit = engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, ((ulong)page << 12) | 0x123, out Translation t);
                Interlocked.Increment(ref lookups);
                if (!hit)
                {
                    continue;
                }

                Interlocked.Increment(ref hits);
                long serial = (long)(t.OutputAddress >> 12) & ((1 << SerialBits) - 1);
                string? problem = null;
                if ((t.OutputAddress & 0xFFF) != 0x123 || t.InputBase != (ulong)page << 12 || t.SizeLog2 != 12)
                {
                    problem = $"torn/misplaced answer {t} for page {page}";
                }
                else if (Volatile.Read(ref fillPage[serial]) != page)
                {
                    problem = $"answer serial {serial} belongs to page {fillPage[serial]}, looked up {page}";
                }
                else if (serial < dead)
                {
                    problem = $"stale: page {page} serial {serial} was invalidated before the lookup (dead below {dead})";
                }

                if (problem is not null && Interlocked.Increment(ref violations) == 1)
                {
                    firstViolation = problem;
                }
            }
        }

        var readers = new[] { new Thread(() => Reader(1)), new Thread(() => Reader(2)) };
        foreach (Thread r in readers)
        {
            r.Start();
        }

        var rng = new Random(7);
        long next = 1;
        int invalidations = 0;
        var sw = Stopwatch.StartNew();
        var statuses = new InvalidationStatus[4];
        // At least 1.5 s and the minimum counts below; on a starved machine up to 15 s (bounded in time and count).
        while (next < (1 << SerialBits) - Pages &&
               (sw.ElapsedMilliseconds < 1500 ||
                (sw.ElapsedMilliseconds < 15_000 && (invalidations < 200 || Interlocked.Read(ref lookups) < 20_000 || Interlocked.Read(ref hits) < 200))))
        {
            int op = rng.Next(10);
            if (op < 6)
            {
                int page = rng.Next(Pages);
                long serial = next++;
                Volatile.Write(ref fillPage[serial], page);
                engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, (ulong)page << 12, (ulong)serial << 12));
                continue;
            }

            long deadNow = next; // every fill so far has a smaller serial
            int first = rng.Next(Pages);
            int count = op switch { 9 => Pages, 8 => 1 + rng.Next(64), _ => 1 };
            if (op == 9)
            {
                InvalidationDescriptor d = rng.Next(2) == 0 ? InvalidationDescriptor.IotlbDomain(1) : InvalidationDescriptor.IotlbAll();
                engine.Execute([d, InvalidationDescriptor.IotlbAddressSpace(1, 1)], statuses);
                first = 0;
            }
            else
            {
                int last = Math.Min(Pages - 1, first + count - 1);
                count = last - first + 1;
                engine.Execute(InvalidationDescriptor.IotlbRange(1, 1, (ulong)first << 12, ((ulong)last << 12) | 0xFFF));
            }

            invalidations++;
            for (int p = first; p < first + count; p++)
            {
                Volatile.Write(ref deadBefore[p], deadNow);
            }
        }

        stop.Cancel();
        foreach (Thread r in readers)
        {
            r.Join();
        }

        Assert.True(violations == 0, $"{violations} violations in {lookups} lookups; first: {firstViolation}");
        Assert.True(lookups > 10_000, $"only {lookups} lookups ran");
        Assert.True(hits > 100, $"only {hits} hits");
        Assert.True(invalidations > 100, $"only {invalidations} invalidations ran");
    }
}
