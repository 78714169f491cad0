using FastInval.Caches;
using FastInval.Kernels;

namespace FastInval.Tests.Kernels;

/// <summary>
/// Every kernel in <see cref="TagScanKernels.Available"/> × table lengths 0–257 × a match at each offset (the A1 recipe):
/// the kernel must report exactly the matching slots, and the engine's flush built on it must remove exactly those
/// entries and leave every other one answering lookups.
/// </summary>
public class TagScanKernelTests
{
    public static TheoryData<TagScanKernel> Kernels()
    {
        var data = new TheoryData<TagScanKernel>();
        foreach (TagScanKernel k in TagScanKernels.Available)
        {
            data.Add(k);
        }

        return data;
    }

    private static ulong Tag(uint domain, uint asid) =>
        TranslationTag.ValidBit | TranslationTag.Stage(StageMask.Stage1) | TranslationTag.LeafBit | TranslationTag.Space(domain) | asid;

    private static int[] Scan<TOp>(TagScanKernel kernel, in TOp op, ulong[] tags, ulong[] firsts, ulong[] lasts, int hitsLength = 16)
        where TOp : struct, IMatchOp
    {
        var result = new List<int>();
        var hits = new int[hitsLength];
        nuint i = 0;
        nuint end = (nuint)tags.Length;
        while (i < end)
        {
            nuint before = i;
            int n = TagScan.Run(kernel, in op, ref tags[0], ref firsts[0], ref lasts[0], i, end, hits, out i);
            Assert.True(i > before || n > 0, "the kernel made no progress");
            result.AddRange(hits.AsSpan(0, n).ToArray());
        }

        return result.ToArray();
    }

    private static (ulong[] Tags, ulong[] Firsts, ulong[] Lasts) Table(int length)
    {
        int padded = Math.Max(TagScan.Padding, (length + TagScan.Padding - 1) / TagScan.Padding * TagScan.Padding);
        var tags = new ulong[padded];
        var firsts = new ulong[padded];
        var lasts = new ulong[padded];
        for (int i = 0; i < length; i++)
        {
            tags[i] = Tag(1, 7);
            firsts[i] = (ulong)i << 12;
            lasts[i] = ((ulong)i << 12) + 0xFFF;
        }

        return (tags, firsts, lasts); // padding stays zero: invalid
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void TagOpEveryLengthAndOffset_ReportsExactlyTheMatchingSlot(TagScanKernel kernel)
    {
        var op = new TagOp(TranslationTag.ValidBit | TranslationTag.SpaceMask, TranslationTag.ValidBit | TranslationTag.Space(2),
            TranslationTag.Stage(StageMask.All));
        for (int length = 0; length <= 257; length++)
        {
            (ulong[] tags, ulong[] firsts, ulong[] lasts) = Table(length);
            Assert.Empty(Scan(kernel, in op, tags, firsts, lasts));
            for (int offset = 0; offset < length; offset++)
            {
                tags[offset] = Tag(2, 7);
                Assert.Equal([offset], Scan(kernel, in op, tags, firsts, lasts));
                tags[offset] = Tag(1, 7);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void TagOpAllSlotsMatching_ReportsEverySlotInOrderAcrossResumes(TagScanKernel kernel)
    {
        var op = new TagOp(TranslationTag.ValidBit | TranslationTag.SpaceMask, TranslationTag.ValidBit | TranslationTag.Space(1),
            TranslationTag.Stage(StageMask.All));
        for (int length = 0; length <= 257; length++)
        {
            (ulong[] tags, ulong[] firsts, ulong[] lasts) = Table(length);
            Assert.Equal(Enumerable.Range(0, length).ToArray(), Scan(kernel, in op, tags, firsts, lasts, hitsLength: TagScan.MinHits));
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void TagOp_AnyMaskExcludesSlotsOfOtherStages(TagScanKernel kernel)
    {
        var op = new TagOp(TranslationTag.ValidBit, TranslationTag.ValidBit, TranslationTag.Stage(StageMask.Stage2));
        for (int length = 1; length <= 64; length++)
        {
            (ulong[] tags, ulong[] firsts, ulong[] lasts) = Table(length);
            for (int offset = 0; offset < length; offset++)
            {
                tags[offset] = (tags[offset] & ~TranslationTag.StageMask) | TranslationTag.Stage(StageMask.Stage2);
                Assert.Equal([offset], Scan(kernel, in op, tags, firsts, lasts));
                tags[offset] = Tag(1, 7);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void TagOpAnyOfEveryOffset_MatchesAnyOfItsValues(TagScanKernel kernel)
    {
        static ulong Dom(uint d) => TranslationTag.ValidBit | TranslationTag.Space(d);
        for (int values = 1; values <= TagOpAnyOf.Capacity; values++)
        {
            ulong[] named = Enumerable.Range(0, values).Select(v => Dom(2 + (uint)v)).ToArray();
            var op = new TagOpAnyOf(TranslationTag.ValidBit | TranslationTag.SpaceMask, TranslationTag.StageMask, named);
            AnyOfAtEveryOffset(kernel, in op, values);
        }
    }

    private static void AnyOfAtEveryOffset(TagScanKernel kernel, in TagOpAnyOf op, int values)
    {
        for (int length = 0; length <= 257; length++)
        {
            (ulong[] tags, ulong[] firsts, ulong[] lasts) = Table(length);
            for (int offset = 0; offset < length; offset++)
            {
                uint d = 2 + (uint)(offset % values);
                tags[offset] = Tag(d, 7);
                int other = length - 1 - offset;
                if (other != offset)
                {
                    tags[other] = Tag(2 + (uint)values, 7); // a domain the operator does not name
                }

                Assert.Equal([offset], Scan(kernel, in op, tags, firsts, lasts));
                tags[offset] = Tag(1, 7);
                tags[other] = Tag(1, 7);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void RangeOpEveryOffsetSelects_OnlyTheOverlappingSpan(TagScanKernel kernel)
    {
        for (int length = 0; length <= 257; length++)
        {
            (ulong[] tags, ulong[] firsts, ulong[] lasts) = Table(length);
            for (int offset = 0; offset < length; offset++)
            {
                ulong lo = ((ulong)offset << 12) + 0x800; // inside slot `offset` only
                var op = new RangeOp(TranslationTag.ValidBit, TranslationTag.ValidBit, 0, 0, 0, 1, 0, 0, 0, 1,
                    TranslationTag.StageMask, lo, lo + 0x10);
                Assert.Equal([offset], Scan(kernel, in op, tags, firsts, lasts));
            }

            var all = new RangeOp(TranslationTag.ValidBit, TranslationTag.ValidBit, 0, 0, 0, 1, 0, 0, 0, 1, TranslationTag.StageMask, 0, ulong.MaxValue);
            Assert.Equal(Enumerable.Range(0, length).ToArray(), Scan(kernel, in all, tags, firsts, lasts));
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void RangeOp_UnsignedBoundsNearTheTopOfTheAddressSpace(TagScanKernel kernel)
    {
        (ulong[] tags, ulong[] firsts, ulong[] lasts) = Table(16);
        for (int i = 0; i < 16; i++)
        {
            firsts[i] = ulong.MaxValue - ((ulong)(16 - i) << 12) + 1; // top 16 pages; signed compares would get these wrong
            lasts[i] = firsts[i] + 0xFFF;
        }

        var op = new RangeOp(TranslationTag.ValidBit, TranslationTag.ValidBit, 0, 0, 0, 1, 0, 0, 0, 1, TranslationTag.StageMask,
            firsts[10], ulong.MaxValue);
        Assert.Equal([10, 11, 12, 13, 14, 15], Scan(kernel, in op, tags, firsts, lasts));
        var low = new RangeOp(TranslationTag.ValidBit, TranslationTag.ValidBit, 0, 0, 0, 1, 0, 0, 0, 1, TranslationTag.StageMask, 0, 1UL << 63);
        Assert.Empty(Scan(kernel, in low, tags, firsts, lasts));
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void EngineDomain_FlushEveryLengthAndOffsetRemovesExactlyThatEntry(TagScanKernel kernel)
    {
        for (int length = 1; length <= 257; length++)
        {
            using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = length, Kernel = kernel });
            for (int i = 0; i < length; i++)
            {
                Assert.Equal(FillResult.Inserted, engine.Iotlb.Fill(Entry(i)));
            }

            for (int offset = 0; offset < length; offset++)
            {
                Assert.Equal(InvalidationStatus.Ok, engine.Execute(InvalidationDescriptor.IotlbDomain((ushort)(offset + 1))));
                Assert.Equal(length - 1, engine.Iotlb.Count);
                for (int i = 0; i < length; i++)
                {
                    bool hit = engine.Iotlb.TryLookup(TranslationStage.Stage1, (ushort)(i + 1), 3, (ulong)i << 12, out Translation t);
                    Assert.Equal(i != offset, hit);
                    if (hit)
                    {
                        Assert.Equal(0x8000_0000UL + ((ulong)i << 12), t.OutputAddress);
                    }
                }

                Assert.Equal(FillResult.Inserted, engine.Iotlb.Fill(Entry(offset)));
            }
        }

        static TranslationEntry Entry(int i) =>
            TranslationEntry.Leaf(TranslationStage.Stage1, (ushort)(i + 1), 3, (ulong)i << 12, 0x8000_0000UL + ((ulong)i << 12));
    }
}
