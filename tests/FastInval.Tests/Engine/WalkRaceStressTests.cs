using System.Diagnostics;
using Xunit.Abstractions;

namespace FastInval.Tests.Engine;

/// <summary>
/// The DMA path of a VMM under a guest that remaps: walker threads translate through a mutable model of a guest page
/// table (lookup; on a miss take the token, read the PTE, spend a while "walking", fill), while a writer thread changes
/// PTEs and invalidates each change. Invariant: once the invalidation of a PTE change has returned, no lookup that starts
/// afterwards returns a translation older than that change. Plain <c>Fill</c> breaks it (a walk that read the old PTE
/// fills after the invalidation); <c>TryFill</c> with the miss's token must not.
/// </summary>
/// <remarks>Bounded in CI (2 s per case, up to 15 s on a starved machine until a walk has raced an invalidation). Set <c>FASTINVAL_WALK_RACE_LOOKUPS</c> to a lookup count to run longer
/// (until that many lookups, at most one hour).</remarks>
public class WalkRaceStressTests
{
    public const string LongModeVariable = "FASTINVAL_WALK_RACE_LOOKUPS";
    private const int Pages = 64;
    private const ushort Domain = 1;
    private const uint Pasid = 1;

    private readonly ITestOutputHelper _output;

    public WalkRaceStressTests(ITestOutputHelper output) => _output = output;

    internal sealed record RaceOutcome(long Lookups, long Hits, long Fills, long StaleFills, long Invalidations, long Violations, string? FirstViolation);

    /// <summary>Runs the race; <paramref name="stopAtFirstViolation"/> ends it early once a violation is seen.</summary>
    internal static RaceOutcome Run(bool useTryFill, bool callerLock, TimeSpan duration, long minLookups, bool stopAtFirstViolation, int walkers = 2)
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 1024 });
        TranslationCache iotlb = engine.Iotlb;
        // QEMU's shape: lookup and fill under the caller's lock, the walk outside it. Without it, the engine's writer
        // lock alone serializes fills and invalidations.
        var gate = new object();
        var pte = new long[Pages];         // the guest page table: page -> serial of its current mapping
        var published = new long[Pages];   // page -> serial whose invalidation has returned: no lookup may see an older one
        for (int p = 0; p < Pages; p++)
        {
            // Serials of page p are p, p + Pages, p + 2·Pages, ...: each serial names one page and grows with each change.
            pte[p] = p;
            published[p] = p;
        }

        long lookups = 0, hits = 0, fills = 0, staleFills = 0, violations = 0;
        string? firstViolation = null;
        using var stop = new CancellationTokenSource();

        void Walker(int seed)
        {
            var rng = new Random(seed);
            long myLookups = 0, myHits = 0, myFills = 0;
            while (!stop.IsCancellationRequested)
            {
                int page = rng.Next(Pages);
                long floor = Volatile.Read(ref published[page]);
                ulong address = ((ulong)page << 12) | 0x5A8;
                if ((++myLookups & 0xFFFF) == 0)
                {
                    Interlocked.Add(ref lookups, 0x10000); // progress for the long mode
                }

                if (iotlb.TryLookup(TranslationStage.Stage1, Domain, Pasid, address, out Translation t, out InvalidationToken token))
                {
                    myHits++;
                    long serial = (long)(t.OutputAddress >> 12);
                    string? problem = null;
                    if ((t.OutputAddress & 0xFFF) != 0x5A8 || serial % Pages != page)
                    {
                        problem = $"torn or misplaced answer {t} for page {page}";
                    }
                    else if (serial < floor)
                    {
                        problem = $"stale: page {page} maps serial {serial}, but the change to serial {floor} was invalidated before the lookup began";
                    }

                    if (problem is not null)
                    {
                        if (Interlocked.Increment(ref violations) == 1)
                        {
                            firstViolation = problem;
                        }

                        if (stopAtFirstViolation)
                        {
                            stop.Cancel();
                        }
                    }

                    continue;
                }

                // The walk: read the PTE, then take a while (a multi-level walk in guest memory), then fill.
                long walked = Volatile.Read(ref pte[page]);
                Thread.SpinWait(rng.Next(1, 64));
                var entry = TranslationEntry.Leaf(TranslationStage.Stage1, Domain, Pasid, (ulong)page << 12, (ulong)walked << 12);
                bool locked = false;
                try
                {
                    if (callerLock)
                    {
                        Monitor.Enter(gate, ref locked);
                    }

                    if (!useTryFill)
                    {
                        iotlb.Fill(in entry);
                        myFills++;
                    }
                    else if (iotlb.TryFill(in entry, in token))
                    {
                        myFills++;
                    }
                    else
                    {
                        Interlocked.Increment(ref staleFills); // rare: counted at once, the writer waits for one
                    }
                }
                finally
                {
                    if (locked)
                    {
                        Monitor.Exit(gate);
                    }
                }
            }

            Interlocked.Add(ref lookups, myLookups & 0xFFFF);
            Interlocked.Add(ref hits, myHits);
            Interlocked.Add(ref fills, myFills);
        }

        var threads = new Thread[walkers];
        for (int i = 0; i < walkers; i++)
        {
            int seed = 100 + i;
            threads[i] = new Thread(() => Walker(seed)) { IsBackground = true };
            threads[i].Start();
        }

        var rng = new Random(5);
        long invalidations = 0;
        var sw = Stopwatch.StartNew();
        var statuses = new InvalidationStatus[2];
        var batch = new InvalidationDescriptor[2];
        long lookupsSeen = 0;
        while (!stop.IsCancellationRequested)
        {
            if ((invalidations & 63) == 0)
            {
                lookupsSeen = Volatile.Read(ref lookups);
                // Past the duration, a TryFill run also waits (up to 15 s) for a walk that raced an invalidation.
                bool raced = !useTryFill || Volatile.Read(ref staleFills) > 0 || sw.Elapsed >= TimeSpan.FromSeconds(15);
                if (sw.Elapsed >= duration && ((minLookups == 0 && raced) || sw.Elapsed >= TimeSpan.FromHours(1)))
                {
                    break;
                }

                if (minLookups > 0 && sw.Elapsed >= duration && lookupsSeen >= minLookups && raced)
                {
                    break;
                }
            }

            int page = rng.Next(Pages);
            long serial = pte[page] + Pages;
            Volatile.Write(ref pte[page], serial); // the guest changes the PTE...
            bool writerLocked = false;
            try
            {
                if (callerLock)
                {
                    Monitor.Enter(gate, ref writerLocked);
                }

                // ...and invalidates it: one page, sometimes a wider range or the whole address space.
                int kind = rng.Next(16);
                InvalidationDescriptor d = kind switch
                {
                    0 => InvalidationDescriptor.IotlbAddressSpace(Domain, Pasid),
                    1 => InvalidationDescriptor.IotlbRange(Domain, Pasid, 0, ((ulong)Pages << 12) - 1),
                    _ => InvalidationDescriptor.IotlbRange(Domain, Pasid, (ulong)page << 12, ((ulong)page << 12) | 0xFFF),
                };
                if (kind == 2)
                {
                    // Through the batch path too, next to an unrelated domain's flush.
                    batch[0] = InvalidationDescriptor.IotlbDomain(7);
                    batch[1] = d;
                    engine.Execute(batch, statuses);
                }
                else
                {
                    engine.Execute(in d);
                }
            }
            finally
            {
                if (writerLocked)
                {
                    Monitor.Exit(gate);
                }
            }

            Volatile.Write(ref published[page], serial); // the invalidation has returned
            invalidations++;
        }

        stop.Cancel();
        foreach (Thread t in threads)
        {
            t.Join();
        }

        return new RaceOutcome(lookups, hits, fills, staleFills, invalidations, violations, firstViolation);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TryFill_NeverLeavesAStaleTranslationAfterAnInvalidationReturns(bool callerLock)
    {
        long minLookups = long.TryParse(Environment.GetEnvironmentVariable(LongModeVariable), out long n) ? n : 0;
        RaceOutcome o = Run(useTryFill: true, callerLock, TimeSpan.FromSeconds(2), minLookups, stopAtFirstViolation: false);
        _output.WriteLine($"TryFill (caller lock: {callerLock}): {o}");
        Assert.True(o.Violations == 0, $"{o.Violations} violations; first: {o.FirstViolation}; {o}");
        Assert.True(o.Lookups > 20_000, $"only {o.Lookups} lookups ran");
        Assert.True(o.Hits > 1_000, $"only {o.Hits} hits");
        Assert.True(o.Invalidations > 1_000, $"only {o.Invalidations} invalidations");
        Assert.True(o.StaleFills > 0, $"no walk raced an invalidation, so the test proved nothing: {o}");
        if (minLookups > 0)
        {
            Assert.True(o.Lookups >= minLookups, $"{o.Lookups} lookups < {minLookups}");
        }
    }

    [Fact]
    public void TheSameRaceWithPlain_FillIsCaught()
    {
        // Shows the harness has teeth: the window TryFill closes is real and this test's invariant sees it.
        RaceOutcome o = Run(useTryFill: false, callerLock: true, TimeSpan.FromSeconds(20), 0, stopAtFirstViolation: true);
        _output.WriteLine($"Fill: {o}");
        Assert.True(o.Violations > 0, $"plain Fill raced {o.Invalidations} invalidations without a stale answer: {o}");
        Assert.Contains("stale", o.FirstViolation);
    }
}
