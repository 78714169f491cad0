using System.Diagnostics;
using FastInval.Reference;

namespace FastInval.Tests.Engine;

/// <summary>
/// Writers on several threads with no caller lock: two fill threads (<c>TryFill</c> with a token taken before the
/// entry's serial, on overlapping pages), one invalidating thread, one looking up. During the run every lookup checks
/// the no-torn and no-stale invariants; afterwards the engine, quiescent, must hold exactly entries some fill made
/// (one per identity, counts consistent), and must then behave exactly as the reference engine loaded with those
/// entries over a random suffix of fills, invalidations and lookups (so concurrent writers left no broken chain,
/// span mask or count behind).
/// </summary>
public class MultiWriterStressTests
{
    private const int Pages = 256;
    private const int SerialBits = 24;

    [Theory]
    [InlineData(4096)] // no eviction
    [InlineData(96)]   // constant eviction
    public void FillsFromTwoThreadsInvalidationsFromAThirdAndLookups_KeepEveryInvariant(int capacity)
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = capacity, DeviceTlbCapacity = 256 });
        var deadBefore = new long[Pages];
        long next = 1, violations = 0, lookups = 0, hits = 0, invalidations = 0;
        long[] fills = new long[2], stale = new long[2];
        string? firstViolation = null;
        using var stop = new CancellationTokenSource();

        void Report(string problem)
        {
            if (Interlocked.Increment(ref violations) == 1)
            {
                firstViolation = problem;
            }
        }

        void Filler(int index)
        {
            var rng = new Random(31 + index);
            while (!stop.IsCancellationRequested)
            {
                int page = rng.Next(Pages);
                ulong address = (ulong)page << 12;
                InvalidationToken token = engine.Iotlb.GetInvalidationToken(1, address);
                long serial = Interlocked.Increment(ref next);
                if (serial >= 1L << SerialBits)
                {
                    return;
                }

                // Output: serial in bits 12.., page in bits 40.. so an answer names both.
                ulong output = ((ulong)serial << 12) | ((ulong)page << 40);
                if (engine.Iotlb.TryFill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, address, output), in token))
                {
                    fills[index]++;
                }
                else
                {
                    stale[index]++;
                }

                // The device TLB shares the engine's writer lock: fill it too.
                engine.DeviceTlb.Fill(new DeviceTlbEntry((uint)index, 1, address, output & ~((1UL << 12) - 1)));
            }
        }

        void Reader()
        {
            var rng = new Random(5);
            while (!stop.IsCancellationRequested)
            {
                int page = rng.Next(Pages);
                long dead = Volatile.Read(ref deadBefore[page]);
                lookups++;
                if (!engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, ((ulong)page << 12) | 0x77, out Translation t))
                {
                    continue;
                }

                hits++;
                long serial = (long)((t.OutputAddress >> 12) & ((1UL << 28) - 1));
                int answerPage = (int)(t.OutputAddress >> 40);
                if ((t.OutputAddress & 0xFFF) != 0x77 || answerPage != page || t.InputBase != (ulong)page << 12)
                {
                    Report($"torn or misplaced answer {t} for page {page}");
                }
                else if (serial < dead)
                {
                    Report($"stale: page {page} serial {serial}, invalidated below {dead} before the lookup");
                }
            }
        }

        void Invalidator()
        {
            var rng = new Random(9);
            var statuses = new InvalidationStatus[2];
            while (!stop.IsCancellationRequested)
            {
                long deadNow = Interlocked.Read(ref next) + 1; // serials handed out so far are below this
                int first = rng.Next(Pages);
                int op = rng.Next(8);
                int last = op == 7 ? Pages - 1 : Math.Min(Pages - 1, first + rng.Next(op < 5 ? 1 : 32));
                if (op == 7)
                {
                    first = 0;
                    engine.Execute([InvalidationDescriptor.IotlbAddressSpace(1, 1), InvalidationDescriptor.DeviceTlbAllPasids(0)], statuses);
                }
                else
                {
                    engine.Execute(InvalidationDescriptor.IotlbRange(1, 1, (ulong)first << 12, ((ulong)last << 12) | 0xFFF));
                }

                for (int p = first; p <= last; p++)
                {
                    Volatile.Write(ref deadBefore[p], deadNow);
                }

                invalidations++;
            }
        }

        var threads = new[]
        {
            new Thread(() => Filler(0)), new Thread(() => Filler(1)), new Thread(Invalidator), new Thread(Reader),
        };
        foreach (Thread t in threads)
        {
            t.Start();
        }

        var sw = Stopwatch.StartNew();
        while (sw.ElapsedMilliseconds < 1500 || (sw.ElapsedMilliseconds < 15_000 && (fills[0] < 1000 || fills[1] < 1000 || invalidations < 500 || hits < 500)))
        {
            Thread.Sleep(20);
        }

        stop.Cancel();
        foreach (Thread t in threads)
        {
            t.Join();
        }

        Assert.True(violations == 0, $"{violations} violations in {lookups} lookups; first: {firstViolation}");
        Assert.True(fills[0] > 100 && fills[1] > 100, $"fills {fills[0]}/{fills[1]}");
        Assert.True(invalidations > 100 && hits > 100, $"invalidations {invalidations}, hits {hits}");

        // Quiescent: every entry is one some fill made, one per identity, and the counts agree with the contents.
        TranslationEntry[] entries = engine.Iotlb.ToArray();
        Assert.Equal(engine.Iotlb.Count, entries.Length);
        Assert.True(entries.Length <= capacity);
        Assert.Equal(entries.Length, entries.Select(e => e.InputAddress).Distinct().Count());
        foreach (TranslationEntry e in entries)
        {
            Assert.Equal(e.InputAddress >> 12, e.OutputAddress >> 40);
        }

        DeviceTlbEntry[] devEntries = engine.DeviceTlb.ToArray();
        Assert.Equal(engine.DeviceTlb.Count, devEntries.Length);

        // Then the engine must behave exactly as the reference holding the same entries.
        var reference = new ReferenceEngine();
        foreach (TranslationEntry e in entries)
        {
            Assert.Equal(FillResult.Inserted, reference.FillIotlb(in e));
        }

        foreach (DeviceTlbEntry e in devEntries)
        {
            Assert.Equal(FillResult.Inserted, reference.FillDeviceTlb(in e));
        }

        var suffixRng = new Random(77);
        for (int i = 0; i < 2000; i++)
        {
            int page = suffixRng.Next(Pages);
            ulong address = (ulong)page << 12;
            switch (suffixRng.Next(4))
            {
                case 0:
                case 1:
                {
                    var e = TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, address, (ulong)(i + 1) << 12 | ((ulong)page << 40));
                    bool known = reference.IotlbSnapshot().Any(x => x.InputAddress == address);
                    bool full = engine.Iotlb.Count == capacity;
                    FillResult fast = engine.Iotlb.Fill(in e);
                    FillResult expected = known ? FillResult.Replaced : full ? FillResult.InsertedAfterEviction : FillResult.Inserted;
                    Assert.Equal(expected, fast);
                    Assert.Equal(known ? FillResult.Replaced : FillResult.Inserted, reference.FillIotlb(in e));
                    if (full && !known)
                    {
                        SyncIotlb(engine, reference); // the fast cache chose a victim; the reference forgets the same one
                    }

                    break;
                }

                case 2:
                {
                    var d = InvalidationDescriptor.IotlbRange(1, 1, address, address + ((ulong)suffixRng.Next(8) << 12) + 0xFFF);
                    Assert.Equal(reference.Execute(in d), engine.Execute(in d));
                    break;
                }

                default:
                {
                    bool f = engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, address | 0x10, out Translation ft);
                    bool r = reference.TryLookupIotlb(TranslationStage.Stage1, 1, 1, address | 0x10, out Translation rt);
                    Assert.Equal(r, f);
                    Assert.Equal(rt, ft);
                    break;
                }
            }
        }

        Assert.Equal(EntryOrder.Sorted(engine.Iotlb.ToArray()), reference.IotlbSnapshot());
        Assert.Equal(reference.IotlbCount, engine.Iotlb.Count);
    }

    /// <summary>After an evicting fill, drops from the reference what the fast cache evicted (both hold a subset of the
    /// filled entries; the fast one chooses its victim).</summary>
    private static void SyncIotlb(InvalidationEngine engine, ReferenceEngine reference)
    {
        TranslationEntry[] fast = engine.Iotlb.ToArray();
        reference.ClearIotlb();
        foreach (TranslationEntry e in fast)
        {
            reference.FillIotlb(in e);
        }
    }
}
