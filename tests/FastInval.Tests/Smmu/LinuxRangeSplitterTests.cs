using System.Numerics;
using FastInval.Smmu;

namespace FastInval.Tests.Smmu;

/// <summary>
/// Linux's range splitter (__arm_smmu_tlb_inv_range, spec/smmuv3-command-queue.md §2.2) as a model: for random
/// (iova, size, granule, leaf) the commands it emits decode to ranges that together cover [iova, iova + size) exactly
/// (plus the one page a non-leaf NUM=0/SCALE=0 bump adds), never overlap each other, and each carries the TG and TTL
/// Linux chose.
/// </summary>
public class LinuxRangeSplitterTests
{
    /// <summary>The splitter: commands for [iova, iova + size) with the given smallest page size and walk granule.</summary>
    internal static List<SmmuCommand> Split(ushort vmid, ushort asid, ulong iova, ulong size, int pageShift, ulong granule, bool leaf, bool ril)
    {
        var commands = new List<SmmuCommand>();
        if (size == 0)
        {
            return commands;
        }

        if (!ril)
        {
            for (ulong a = iova; a < iova + size; a += granule)
            {
                commands.Add(Cmd.NhVa(vmid, asid, a, leaf));
            }

            return commands;
        }

        int tg = (pageShift - 10) / 2;
        ulong numPages = size >> pageShift;
        int ttl = 0;
        if (leaf)
        {
            ttl = 4 - ((BitOperations.Log2(granule) - 3) / (pageShift - 3));
        }
        else if ((numPages & 31) == 1)
        {
            numPages++; // avoid NUM=0, SCALE=0, TTL=0 (reserved)
        }

        ulong address = iova;
        while (address < iova + size && numPages != 0)
        {
            int scale = BitOperations.TrailingZeroCount(numPages);
            ulong num = (numPages >> scale) & 31;
            commands.Add(Cmd.NhVa(vmid, asid, address, leaf, (int)num - 1, scale, ttl, tg));
            ulong pages = num << scale;
            numPages -= pages;
            address += pages << pageShift;
        }

        return commands;
    }

    [Theory]
    [InlineData(12, true)]
    [InlineData(12, false)]
    [InlineData(14, true)]
    [InlineData(16, false)]
    public void RandomRanges_AreCoveredExactly(int pageShift, bool leaf)
    {
        var r = new Random(pageShift * 31 + (leaf ? 1 : 0));
        for (int i = 0; i < 2000; i++)
        {
            ulong pages = (ulong)r.Next(1, 5000);
            ulong iova = (ulong)r.Next(0, 1 << 20) << pageShift;
            ulong size = pages << pageShift;
            ulong granule = leaf ? 1UL << (r.Next(2) == 0 ? pageShift : pageShift + (pageShift - 3)) : 1UL << pageShift;
            List<SmmuCommand> commands = Split(1, 2, iova, size, pageShift, granule, leaf, ril: true);
            ulong expectedEnd = iova + size;
            if (!leaf && (pages & 31) == 1)
            {
                expectedEnd += 1UL << pageShift; // the bump
            }

            ulong cursor = iova;
            foreach (SmmuCommand c in commands)
            {
                SmmuDecodedCommand d = SmmuCommandDecoder.Decode(c, new SmmuFeatures());
                Assert.Equal(SmmuCommandError.None, d.Error);
                Assert.Equal(cursor, d.Descriptor.First);           // contiguous, no overlap, no hole
                Assert.Equal((Granule)((pageShift - 10) / 2), d.Descriptor.GranuleHint);
                Assert.Equal(leaf, (d.Descriptor.Flags & InvalidationFlags.LeafOnly) != 0);
                cursor = d.Descriptor.Last + 1;
            }

            Assert.Equal(expectedEnd, cursor);
            Assert.True(commands.Count <= 13, $"{commands.Count} commands for {pages} pages");
        }
    }

    [Fact]
    public void Worked_ExamplesOfTheNotes()
    {
        // 33 × 4 KiB, leaf: (A, NUM 0, SCALE 0, TTL 3) then (A + 4 KiB, NUM 0, SCALE 5).
        List<SmmuCommand> c = Split(1, 2, 0x10_0000, 33UL << 12, 12, 0x1000, leaf: true, ril: true);
        Assert.Equal(2, c.Count);
        Assert.Equal((0, 0, 3), (c[0].Num, c[0].Scale, c[0].Ttl));
        Assert.Equal((0, 5, 0x10_1000UL), (c[1].Num, c[1].Scale, c[1].Address));
        // 100 pages: one command, NUM 24, SCALE 2.
        c = Split(1, 2, 0, 100UL << 12, 12, 0x1000, leaf: true, ril: true);
        Assert.Equal((24, 2), (Assert.Single(c).Num, c[0].Scale));
        // 1 page, non-leaf: bumped to 2 pages. SCALE is the lowest set bit of the count (1) and NUM = (2 >> 1) − 1 = 0;
        // the notes write "NUM 1, SCALE 0", which covers the same two pages but is not what the arithmetic emits.
        c = Split(1, 2, 0, 1UL << 12, 12, 0x1000, leaf: false, ril: true);
        Assert.Equal((0, 1, 0), (Assert.Single(c).Num, c[0].Scale, c[0].Ttl));
        // Without RIL: one plain command per granule.
        c = Split(1, 2, 0x4000, 3UL << 12, 12, 0x1000, leaf: true, ril: false);
        Assert.Equal(3, c.Count);
        Assert.All(c, x => Assert.Equal(0, x.TranslationGranule));
    }

    [Fact]
    public void SplitterOutputThroughTheQueue_RemovesExactlyTheRange()
    {
        using var rig = new SmmuRig(log2Size: 6);
        for (ulong p = 0; p < 200; p++)
        {
            rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 2, p << 12, p << 12));
        }

        List<SmmuCommand> commands = Split(1, 2, 37UL << 12, 101UL << 12, 12, 0x1000, leaf: true, ril: true);
        commands.Add(Cmd.Sync());
        rig.Submit([.. commands]);
        for (ulong p = 0; p < 200; p++)
        {
            Assert.Equal(p is < 37 or >= 138, rig.Engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 2, p << 12, out _));
        }
    }
}
