using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastInval.Caches;

namespace FastInval.Tests.Layout;

public class LayoutTests
{
    [Fact]
    public void InvalidationDescriptor_Is32BlittableBytesWithTheDocumentedOffsets()
    {
        Assert.Equal(32, Unsafe.SizeOf<InvalidationDescriptor>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<InvalidationDescriptor>());
        (string Field, int Offset)[] expected =
        [
            ("Scope", 0), ("Flags", 1), ("Stages", 2), ("LevelHint", 3), ("GranuleHint", 4), ("ConfigKinds", 5),
            ("DomainId", 6), ("AddressSpaceId", 8), ("SourceId", 12), ("First", 16), ("Last", 24),
        ];
        foreach ((string field, int offset) in expected)
        {
            Assert.Equal(offset, (int)Marshal.OffsetOf<InvalidationDescriptor>(field));
        }
    }

    [Fact]
    public void InvalidationDescriptorBytes_RoundTripThroughASpan()
    {
        InvalidationDescriptor d = InvalidationDescriptor.IotlbRange(0x1234, 0xABCDE, 0x1000, 0x1FFF, leafOnly: true, levelHint: 3, granuleHint: Granule.Size4K);
        Span<byte> bytes = stackalloc byte[32];
        MemoryMarshal.Write(bytes, in d);
        Assert.Equal((byte)InvalidationScope.IotlbRange, bytes[0]);
        Assert.Equal(0x1234, BitConverter.ToUInt16(bytes[6..8]));
        Assert.Equal(0xABCDEu, BitConverter.ToUInt32(bytes[8..12]));
        Assert.Equal(0x1FFFUL, BitConverter.ToUInt64(bytes[24..32]));
        Assert.Equal(d, MemoryMarshal.Read<InvalidationDescriptor>(bytes));
    }

    [Fact]
    public void Value_TypesOfTheVocabularyContainNoReferences()
    {
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<TranslationEntry>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<Translation>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<DeviceTlbEntry>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<ConfigEntry>());
    }

    [Fact]
    public void TranslationTagFields_DoNotOverlapAndFillTheDocumentedBits()
    {
        ulong[] fields =
        [
            TranslationTag.AddressSpaceMask, TranslationTag.LevelMask, TranslationTag.SpaceMask, TranslationTag.GranuleMask,
            TranslationTag.LeafBit, TranslationTag.GlobalBit, TranslationTag.StageMask, TranslationTag.ValidBit,
        ];
        ulong seen = 0;
        foreach (ulong f in fields)
        {
            Assert.Equal(0UL, seen & f);
            seen |= f;
        }

        Assert.Equal(~(1UL << 23), seen); // bit 23 is the only reserved bit
        Assert.Equal(0x1F_FFFFUL, TranslationTag.AddressSpaceMask);
        Assert.Equal(TranslationTag.AddressSpaceNone, TranslationTag.EncodeAddressSpace(AddressSpace.None));
        Assert.Equal(AddressSpace.None, TranslationTag.DecodeAddressSpace(TranslationTag.AddressSpaceNone));
        Assert.Equal(AddressSpace.MaxId, TranslationTag.DecodeAddressSpace(AddressSpace.MaxId));
    }

    [Fact]
    public void ConfigTagFields_DoNotOverlap()
    {
        Assert.Equal(0UL, ConfigTag.KindMask & ConfigTag.DomainMask);
        Assert.Equal(0UL, ConfigTag.KindMask & ConfigTag.ValidBit);
        Assert.Equal(0UL, ConfigTag.DomainMask & ConfigTag.AddressSpaceMask);
        Assert.Equal((ulong)ConfigKinds.All << ConfigTag.KindShift, ConfigTag.KindMask);
    }

    [Theory]
    [InlineData(Granule.Size4K, 12, 3)]
    [InlineData(Granule.Size4K, 21, 2)]
    [InlineData(Granule.Size4K, 30, 1)]
    [InlineData(Granule.Size4K, 39, 0)]
    [InlineData(Granule.Size16K, 14, 3)]
    [InlineData(Granule.Size16K, 25, 2)]
    [InlineData(Granule.Size16K, 36, 1)]
    [InlineData(Granule.Size16K, 47, 0)]
    [InlineData(Granule.Size64K, 16, 3)]
    [InlineData(Granule.Size64K, 29, 2)]
    [InlineData(Granule.Size64K, 42, 1)]
    [InlineData(Granule.Size64K, 55, 0)]
    [InlineData(Granule.Size4K, 13, -1)]
    [InlineData(Granule.Size4K, 48, -1)]
    [InlineData(Granule.Size16K, 12, -1)]
    [InlineData(Granule.Size64K, 21, -1)]
    [InlineData(Granule.Any, 12, -1)]
    public void LevelForSize_FollowsTheGranuleGeometry(Granule g, int sizeLog2, int level) =>
        Assert.Equal(level, TranslationTag.LevelForSize(g, sizeLog2));
}
