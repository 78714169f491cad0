using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>struct iommu_hwpt_vtd_s1_invalidate: the offsets of the one definition and its encoder.</summary>
public class VtdS1EntryLayoutTests
{
    [Fact]
    public void Entry_Is24BytesAddrNpagesFlagsLastLittleEndian()
    {
        Assert.Equal(24, VtdS1Invalidate.EntrySize);
        Assert.Equal((0, 8, 16, 20), (VtdS1Invalidate.AddressOffset, VtdS1Invalidate.PageCountOffset, VtdS1Invalidate.FlagsOffset,
            VtdS1Invalidate.LastWordOffset));
        byte[] entry = new byte[VtdS1Invalidate.EntrySize];
        VtdS1Invalidate.Write(entry, 0x0807_0605_0403_0201UL, 0x100F_0E0D_0C0B_0A09UL, 0x1413_1211u, 0x1817_1615u);
        Assert.Equal(Enumerable.Range(1, 24).Select(b => (byte)b), entry);
    }

    [Fact]
    public void Write_RefusesAShortSpanAndLeavesBytesAfterTheEntryAlone()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdS1Invalidate.Write(new byte[23], 0, 1));
        byte[] two = new byte[2 * VtdS1Invalidate.EntrySize];
        two.AsSpan().Fill(0xEE);
        VtdS1Invalidate.Write(two, 0x1000, 1, VtdS1Invalidate.FlagLeaf);
        Assert.All(two[VtdS1Invalidate.EntrySize..], b => Assert.Equal(0xEE, b));
        Assert.Equal(0u, BitConverter.ToUInt32(two, VtdS1Invalidate.LastWordOffset));
    }
}
