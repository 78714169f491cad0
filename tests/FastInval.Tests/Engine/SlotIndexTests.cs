using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using FastInval.Caches;

namespace FastInval.Tests.Engine;

/// <summary>
/// The one-line hash index of <see cref="SlotStore"/>: collisions of home bucket and fingerprint, full buckets and
/// their overflow counts, CLOCK eviction order, every page size, the layout header, the index lines a fill touches,
/// and torn-read protection under a concurrent writer. Store-level tests choose the hashes themselves, so collisions
/// are certain rather than likely.
/// </summary>
public class SlotIndexTests
{
    private const ulong Valid = TranslationTag.ValidBit;

    private static ulong TagOf(int key) => Valid | ((ulong)(uint)key << TranslationTag.SpaceShift);

    [Fact]
    public void IndexBucketAnd_RecordHaveTheDocumentedSizesAndNoReferences()
    {
        Assert.Equal(64, Unsafe.SizeOf<IndexBucket>());
        Assert.Equal(32, Unsafe.SizeOf<SlotRecord>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<IndexBucket>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<SlotRecord>());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(1 << 16)]
    public void LayoutHeader_NamesTheVersionSizesAndLineOffsetsOfEveryRegion(int capacity)
    {
        using var store = new SlotStore(capacity, StoreKind.DeviceTlb);
        ReadOnlySpan<byte> h = store.Header;
        Assert.Equal(SlotStore.LayoutMagic, BinaryPrimitives.ReadUInt64LittleEndian(h));
        Assert.Equal(SlotStore.LayoutVersion, BinaryPrimitives.ReadUInt32LittleEndian(h[8..]));
        Assert.Equal((uint)StoreKind.DeviceTlb, BinaryPrimitives.ReadUInt32LittleEndian(h[12..]));
        Assert.Equal((uint)capacity, BinaryPrimitives.ReadUInt32LittleEndian(h[16..]));
        Assert.Equal((uint)store.PaddedCapacity, BinaryPrimitives.ReadUInt32LittleEndian(h[20..]));
        Assert.Equal((uint)store.BucketCount, BinaryPrimitives.ReadUInt32LittleEndian(h[24..]));
        Assert.Equal((uint)SlotStore.Ways, BinaryPrimitives.ReadUInt32LittleEndian(h[28..]));
        Assert.True(store.BucketCount * SlotStore.SlotsPerBucket >= capacity);
        Assert.True(System.Numerics.BitOperations.IsPow2(store.BucketCount));

        // Regions in order: tag, first, last (8 bytes per padded slot), records (32), spare stack (4), bitmap, index.
        uint p = (uint)store.PaddedCapacity;
        uint[] expectedLines = [1, 0, 0, 0, 0, 0, 0];
        uint[] sizes = [p * 8, p * 8, p * 8, p * 32, p * 4, (p + 63) / 64 * 8];
        for (int i = 1; i < expectedLines.Length; i++)
        {
            expectedLines[i] = expectedLines[i - 1] + ((sizes[i - 1] + 63) / 64);
        }

        for (int i = 0; i < expectedLines.Length; i++)
        {
            Assert.Equal(expectedLines[i], BinaryPrimitives.ReadUInt32LittleEndian(h[(32 + (4 * i))..]));
        }

        uint end = BinaryPrimitives.ReadUInt32LittleEndian(h[60..]);
        Assert.True(end * 64L >= (expectedLines[^1] * 64L) + (store.BucketCount * 64L));
        Assert.True(end * 64L <= store.Bytes);
    }

    [Fact]
    public void EntriesSharingOneHomeBucketAndFingerprintOverflowInOrderAnd_AreAllFound()
    {
        using var store = new SlotStore(64, StoreKind.Iotlb); // 16 buckets
        const ulong hash = 0xAB00_0000_0000_0003UL;           // home 3, fingerprint 0xAB for every key
        var slots = new int[20];
        for (int k = 0; k < slots.Length; k++)
        {
            slots[k] = store.Allocate(out bool dead, out ulong deadTag);
            Assert.False(dead);
            Assert.Equal(0UL, deadTag);
            store.Link(hash, slots[k], TagOf(k), 0x1000, 0x1FFF, 0xA000UL + (ulong)k);
        }

        // 8 ways in bucket 3, 8 in bucket 4, 4 in bucket 5: overflow counts 12 and 4, then 0.
        Assert.Equal((12u, 8), store.BucketState(3));
        Assert.Equal((4u, 8), store.BucketState(4));
        Assert.Equal((0u, 4), store.BucketState(5));
        for (int k = 0; k < slots.Length; k++)
        {
            Assert.True(store.TryRead(hash, ulong.MaxValue, TagOf(k), 0x1000, 0, out ulong tag, out ulong value));
            Assert.Equal(TagOf(k), tag);
            Assert.Equal(0xA000UL + (ulong)k, value);
        }

        // Same hash, same fingerprint, other key or other span: exact misses, never a neighbour's entry.
        Assert.False(store.TryRead(hash, ulong.MaxValue, TagOf(20), 0x1000, 0, out _, out _));
        Assert.False(store.TryRead(hash, ulong.MaxValue, TagOf(3), 0x2000, 0, out _, out _));
        Assert.False(store.TryRead(hash, ulong.MaxValue, TagOf(3), 0x1000, 0x2FFF, out _, out _));

        // Remove the overflowed entries last-in first: the counts fall back to zero, the rest stays reachable.
        for (int k = slots.Length - 1; k >= 8; k--)
        {
            store.Unlink(hash, slots[k]);
            Assert.False(store.TryRead(hash, ulong.MaxValue, TagOf(k), 0x1000, 0, out _, out _));
        }

        Assert.Equal((0u, 8), store.BucketState(3));
        Assert.Equal((0u, 0), store.BucketState(4));
        for (int k = 0; k < 8; k++)
        {
            Assert.True(store.TryRead(hash, ulong.MaxValue, TagOf(k), 0x1000, 0, out _, out ulong value));
            Assert.Equal(0xA000UL + (ulong)k, value);
        }
    }

    [Fact]
    public void RemovingFromAFullHomeBucket_KeepsTheOverflowedEntryReachableAndReusesTheFreeWay()
    {
        using var store = new SlotStore(64, StoreKind.Iotlb);
        const ulong hash = 0x1100_0000_0000_000FUL; // home 15, the last bucket: the path wraps to bucket 0
        var slots = new int[9];
        for (int k = 0; k < 9; k++)
        {
            slots[k] = store.Allocate(out _, out _);
            store.Link(hash, slots[k], TagOf(k), 0, 0xFFF, (ulong)k);
        }

        Assert.Equal((1u, 8), store.BucketState(15));
        Assert.Equal((0u, 1), store.BucketState(0));
        Assert.Equal(0, store.BucketHolding(slots[8]));

        store.Unlink(hash, slots[2]); // a way frees in the home bucket; the 9th entry stays where it is
        Assert.Equal((1u, 7), store.BucketState(15));
        Assert.True(store.TryRead(hash, ulong.MaxValue, TagOf(8), 0, 0, out _, out ulong v8));
        Assert.Equal(8UL, v8);

        int again = store.Allocate(out _, out _);
        Assert.Equal(slots[2], again); // the spare slot is reused
        store.Link(hash, again, TagOf(9), 0, 0xFFF, 9);
        Assert.Equal(15, store.BucketHolding(again)); // in the home bucket's free way, not past it
        Assert.Equal((1u, 8), store.BucketState(15));

        store.Unlink(hash, slots[8]);
        Assert.Equal((0u, 8), store.BucketState(15));
        Assert.Equal((0u, 0), store.BucketState(0));
        Assert.True(store.TryRead(hash, ulong.MaxValue, TagOf(9), 0, 0, out _, out ulong v9));
        Assert.Equal(9UL, v9);
    }

    [Fact]
    public void KilledSlot_IsInvisibleAndAFillOfTheSameKeyBesideItIsFoundThenReuseUnlinksIt()
    {
        using var store = new SlotStore(8, StoreKind.Iotlb);
        const ulong hash = 0x5500_0000_0000_0001UL;
        int first = store.Allocate(out _, out _);
        store.Link(hash, first, TagOf(1), 0, 0xFFF, 111);
        store.Kill(first);
        Assert.False(store.TryRead(hash, ulong.MaxValue, TagOf(1), 0, 0, out _, out _));
        Assert.Equal(-1, store.Find(hash, ulong.MaxValue, TagOf(1), 0, 0xFFF, out _));
        int holder = store.BucketHolding(first);
        Assert.True(holder >= 0); // a dead slot stays in its bucket until reused

        // A fresh slot above the high-water mark would be next, but the dead one is spare: it comes back first.
        int reused = store.Allocate(out bool wasDead, out ulong deadTag);
        Assert.True(wasDead);
        Assert.Equal(first, reused);
        Assert.Equal(TagOf(1) & ~Valid, deadTag);
        store.UnlinkDead(hash, reused);
        Assert.Equal(-1, store.BucketHolding(reused));
        store.Link(0x7700_0000_0000_0002UL, reused, TagOf(2), 0x5000, 0x5FFF, 222);
        Assert.True(store.TryRead(0x7700_0000_0000_0002UL, ulong.MaxValue, TagOf(2), 0x5000, 0, out _, out ulong v));
        Assert.Equal(222UL, v);
        Assert.Equal((0u, 0), store.BucketState(1));
    }

    [Fact]
    public void AKilledEntryWhoseTag_IsZeroWithoutItsValidBitIsStillReportedDeadAndUnlinkedOnReuse()
    {
        using var store = new SlotStore(8, StoreKind.Iotlb);
        const ulong hash = 0x3300_0000_0000_0002UL;
        int slot = store.Allocate(out _, out _);
        store.Link(hash, slot, TagOf(0), 0, 0xFFF, 7); // TagOf(0) is the valid bit alone
        store.Kill(slot);

        int reused = store.Allocate(out bool dead, out ulong deadTag);
        Assert.Equal(slot, reused);
        Assert.True(dead);
        Assert.Equal(0UL, deadTag);
        store.UnlinkDead(hash, reused);
        Assert.Equal(-1, store.BucketHolding(reused));

        // An unlinked slot comes back from the spare stack as not dead: there is nothing left to unlink.
        store.Link(hash, reused, TagOf(0), 0, 0xFFF, 8);
        store.Unlink(hash, reused);
        Assert.Equal(reused, store.Allocate(out bool deadAgain, out _));
        Assert.False(deadAgain);
        Assert.Equal((0u, 0), store.BucketState(store.HomeOf(hash)));
    }

    [Fact]
    public void Eviction_IsClockInSlotOrderSkippingEntriesHitSinceTheLastSweep()
    {
        using var cache = new TranslationCache(16);
        for (ulong p = 0; p < 16; p++)
        {
            Assert.Equal(FillResult.Inserted, cache.Fill(Page(p)));
        }

        for (ulong p = 0; p < 16; p += 2)
        {
            Assert.True(cache.TryLookup(TranslationStage.Stage1, 1, 1, p << 12, out _)); // even pages referenced
        }

        // The hand sweeps slots 0, 1, …: even pages get a second chance, odd pages go, one per fill.
        for (ulong n = 0; n < 8; n++)
        {
            Assert.Equal(FillResult.InsertedAfterEviction, cache.Fill(Page(100 + n)));
            HashSet<ulong> present = [.. cache.ToArray().Select(e => e.InputAddress >> 12)];
            Assert.Equal(16, present.Count);
            for (ulong odd = 1; odd < 16; odd += 2)
            {
                Assert.Equal(odd > (2 * n) + 1, present.Contains(odd));
            }

            Assert.All(Enumerable.Range(0, 8), i => Assert.Contains((ulong)(2 * i), present));
        }

        // Second sweep: the even pages' bits were cleared by the first, so they are next, in slot order.
        Assert.Equal(FillResult.InsertedAfterEviction, cache.Fill(Page(200)));
        Assert.DoesNotContain(cache.ToArray(), e => e.InputAddress == 0);
        Assert.Contains(cache.ToArray(), e => e.InputAddress == 2UL << 12);
        Assert.Equal(16, cache.Count);
    }

    [Fact]
    public void EveryPageAnd_BlockSizeOfEveryGranuleIsFoundAtAnyOffsetAndTheSmallestSpanWins()
    {
        using var cache = new TranslationCache(64);
        (Granule Granule, byte Size)[] sizes =
        [
            (Granule.Size4K, 12), (Granule.Size4K, 21), (Granule.Size4K, 30),
            (Granule.Size16K, 14), (Granule.Size16K, 25), (Granule.Size16K, 36),
            (Granule.Size64K, 16), (Granule.Size64K, 29), (Granule.Size64K, 42),
        ];
        for (int i = 0; i < sizes.Length; i++)
        {
            (Granule g, byte s) = sizes[i];
            ulong input = (ulong)(i + 1) << 44; // one 16 TiB region per size: no overlap
            var e = new TranslationEntry(TranslationStage.Stage1, 5, 7, input, (ulong)(i + 1) << 43, s, AccessRights.ReadWrite, g, false, false);
            Assert.Equal(FillResult.Inserted, cache.Fill(in e));
        }

        for (int i = 0; i < sizes.Length; i++)
        {
            (_, byte s) = sizes[i];
            ulong input = (ulong)(i + 1) << 44;
            foreach (ulong offset in new ulong[] { 0, 0x123, (1UL << s) - 1 })
            {
                Assert.True(cache.TryLookup(TranslationStage.Stage1, 5, 7, input + offset, out Translation t), $"size {s} offset {offset:X}");
                Assert.Equal(s, t.SizeLog2);
                Assert.Equal(((ulong)(i + 1) << 43) + offset, t.OutputAddress);
            }

            Assert.False(cache.TryLookup(TranslationStage.Stage1, 5, 7, input + (1UL << s), out _));
            Assert.False(cache.TryLookup(TranslationStage.Stage1, 5, 8, input, out _)); // other PASID
        }

        // A 4 KiB page inside the 2 MiB block answers there; the block answers elsewhere.
        ulong block = 2UL << 44;
        Assert.Equal(FillResult.Inserted, cache.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 5, 7, block + 0x5000, 0x77000)));
        Assert.True(cache.TryLookup(TranslationStage.Stage1, 5, 7, block + 0x5010, out Translation small));
        Assert.Equal((byte)12, small.SizeLog2);
        Assert.Equal(0x77010UL, small.OutputAddress);
        Assert.True(cache.TryLookup(TranslationStage.Stage1, 5, 7, block + 0x6010, out Translation big));
        Assert.Equal((byte)21, big.SizeLog2);
    }

    [Fact]
    public void DeviceTlbSpansFrom4KTo2Pow62_AreEachFoundWithTheirSpan()
    {
        using var atc = new DeviceTlb(128);
        for (int s = 12; s <= 62; s++)
        {
            Assert.Equal(FillResult.Inserted, atc.Fill(new DeviceTlbEntry((uint)s, 3, 0, 0, (byte)s, AccessRights.Read)));
        }

        for (int s = 12; s <= 62; s++)
        {
            Assert.True(atc.TryLookup((uint)s, 3, (1UL << s) - 1, out Translation t), $"span {s}");
            Assert.Equal((byte)s, t.SizeLog2);
            Assert.Equal((1UL << s) - 1, t.OutputAddress);
            Assert.False(atc.TryLookup((uint)s, 3, 1UL << s, out _));
        }
    }

    [Fact]
    public void A_FillAt1MTouchesTwoIndexLinesTheNewEntrysBucketAndTheVictims()
    {
        const int capacity = 1 << 20;
        using var cache = new TranslationCache(capacity);
        var rng = new Random(11);
        for (int i = 0; i < capacity; i++)
        {
            cache.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, (ushort)(i & 127), 1, (ulong)i << 12, (ulong)rng.Next(1 << 20) << 12));
        }

        SlotStore store = cache.Table.Store;
        Assert.True(store.IsFull);
        const int fills = 100_000;
        long before = store.IndexLineTouches;
        for (int i = 0; i < fills; i++)
        {
            FillResult r = cache.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, (ushort)(i & 127), 2, (ulong)i << 12, 0x1000));
            Assert.Equal(FillResult.InsertedAfterEviction, r);
        }

        double perFill = (store.IndexLineTouches - before) / (double)fills;
        // Exactly 2 without overflow (the new entry's home bucket, the victim's); each overflowed probe adds one line.
        Assert.InRange(perFill, 2.0, 2.2);
    }

    [Fact]
    public void Readers_NeverSeeATornOrForeignRecordWhileAWriterMovesSlotsBetweenKeys()
    {
        // Few slots, many keys and colliding hashes: the writer evicts and reuses slots for other keys all the time, so a
        // reader holding a stale way would read another key's record unless the bucket version catches it.
        const int keys = 64;
        using var store = new SlotStore(24, StoreKind.Iotlb); // 8 buckets, 64 ways
        static ulong HashOf(int key) => ((ulong)(key * 37 % 251 + 1) << 56) | (uint)(key % 3); // homes 0..2 only
        static ulong ValueOf(int key, long serial) => ((ulong)serial << 16) | ((ulong)key << 4) | ((ulong)(key ^ serial) & 0xF);

        var live = new int[keys];
        Array.Fill(live, -1);
        long violations = 0, hits = 0, reads = 0;
        string? first = null;
        using var stop = new CancellationTokenSource();

        void Reader(int seed)
        {
            var rng = new Random(seed);
            while (!stop.IsCancellationRequested)
            {
                int key = rng.Next(keys);
                ulong tag = TagOf(key);
                bool hit = store.TryRead(HashOf(key), ulong.MaxValue, tag, (ulong)key << 12, 0, out ulong foundTag, out ulong value);
                Interlocked.Increment(ref reads);
                if (!hit)
                {
                    continue;
                }

                Interlocked.Increment(ref hits);
                long serial = (long)(value >> 16);
                if (foundTag != tag || value != ValueOf(key, serial))
                {
                    if (Interlocked.Increment(ref violations) == 1)
                    {
                        first = $"key {key}: tag {foundTag:X}, value {value:X}";
                    }
                }
            }
        }

        var readers = new[] { new Thread(() => Reader(1)) { IsBackground = true }, new Thread(() => Reader(2)) { IsBackground = true } };
        foreach (Thread t in readers)
        {
            t.Start();
        }

        var wrng = new Random(3);
        long s = 0;
        var sw = Stopwatch.StartNew();
        try
        {
            while ((sw.ElapsedMilliseconds < 1500 || Interlocked.Read(ref hits) < 100_000) && sw.ElapsedMilliseconds < 15_000)
            {
                int key = wrng.Next(keys);
                ulong hash = HashOf(key);
                s++;
                if (live[key] >= 0 && wrng.Next(4) == 0)
                {
                    store.Update(store.BucketHolding(live[key]), live[key], TagOf(key), ValueOf(key, s)); // replace in place
                    continue;
                }

                if (live[key] >= 0)
                {
                    if (wrng.Next(2) == 0)
                    {
                        store.Unlink(hash, live[key]);
                    }
                    else
                    {
                        store.Kill(live[key]);
                    }

                    live[key] = -1;
                    continue;
                }

                if (store.IsFull)
                {
                    int victim = store.ClockVictim();
                    int owner = Array.IndexOf(live, victim);
                    store.Unlink(HashOf(owner), victim);
                    live[owner] = -1;
                }

                int slot = store.Allocate(out bool dead, out ulong deadTag);
                if (dead)
                {
                    // Key 0's tag is 0 once its valid bit is cleared: only the dead flag says the slot is still linked.
                    int oldKey = (int)TranslationTag.SpaceOf(deadTag);
                    store.UnlinkDead(HashOf(oldKey), slot);
                }

                store.Link(hash, slot, TagOf(key), (ulong)key << 12, ((ulong)key << 12) | 0xFFF, ValueOf(key, s));
                live[key] = slot;
            }
        }
        finally
        {
            stop.Cancel();
            foreach (Thread t in readers)
            {
                t.Join();
            }
        }

        Assert.True(violations == 0, $"{violations} torn or foreign reads in {reads}; first: {first}");
        Assert.True(hits >= 100_000, $"only {hits} hits in {reads} reads");
        Assert.True(s > 10_000, $"only {s} writer steps");
    }

    private static TranslationEntry Page(ulong p) => TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, p << 12, (p + 1) << 12);
}
