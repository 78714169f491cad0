using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastInval.Smmu;
using static FastInval.Smmu.SmmuCommandLayout;

namespace FastInval.Tests.Smmu;

/// <summary>The SMMUv3 command layout table, the struct it describes, and the builders that encode with it.</summary>
public class SmmuCommandLayoutTests
{
    [Fact]
    public void Command_Is16BlittableBytesDword0ThenDword1()
    {
        Assert.Equal(Size, Unsafe.SizeOf<SmmuCommand>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<SmmuCommand>());
        Assert.Equal(0, (int)Marshal.OffsetOf<SmmuCommand>(nameof(SmmuCommand.Dword0)));
        Assert.Equal(8, (int)Marshal.OffsetOf<SmmuCommand>(nameof(SmmuCommand.Dword1)));
        Span<byte> bytes = stackalloc byte[Size];
        new SmmuCommand(0x0807_0605_0403_0201UL, 0x100F_0E0D_0C0B_0A09UL).Write(bytes);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], bytes.ToArray());
    }

    [Theory]
    [InlineData("Opcode", OpcodeShift, OpcodeMask, 0, 8)]
    [InlineData("Global", GlobalShift, GlobalMask, 9, 1)]
    [InlineData("SSec", SSecShift, SSecMask, 10, 1)]
    [InlineData("Ssv", SsvShift, SsvMask, 11, 1)]
    [InlineData("SubstreamId", SubstreamIdShift, SubstreamIdMask, 12, 20)]
    [InlineData("Num", NumShift, NumMask, 12, 5)]
    [InlineData("Scale", ScaleShift, ScaleMask, 20, 5)]
    [InlineData("CompletionSignal", CompletionSignalShift, CompletionSignalMask, 12, 2)]
    [InlineData("MsiShareability", MsiShareabilityShift, MsiShareabilityMask, 22, 2)]
    [InlineData("MsiAttributes", MsiAttributesShift, MsiAttributesMask, 24, 4)]
    [InlineData("Vmid", VmidShift, VmidMask, 32, 16)]
    [InlineData("Asid", AsidShift, AsidMask, 48, 16)]
    [InlineData("StreamId", StreamIdShift, StreamIdMask, 32, 32)]
    [InlineData("MsiData", MsiDataShift, MsiDataMask, 32, 32)]
    [InlineData("Leaf", LeafShift, LeafMask, 0, 1)]
    [InlineData("Range", RangeShift, RangeMask, 0, 5)]
    [InlineData("AtcSize", AtcSizeShift, AtcSizeMask, 0, 6)]
    [InlineData("Ttl128", Ttl128Shift, Ttl128Mask, 7, 1)]
    [InlineData("Ttl", TtlShift, TtlMask, 8, 2)]
    [InlineData("TranslationGranule", TranslationGranuleShift, TranslationGranuleMask, 10, 2)]
    [InlineData("PrgIndex", PrgIndexShift, PrgIndexMask, 0, 9)]
    [InlineData("PriResponse", PriResponseShift, PriResponseMask, 12, 2)]
    [InlineData("StallTag", StallTagShift, StallTagMask, 0, 16)]
    public void EachField_IsTheContiguousBitRangeOfTheArchitecture(string field, int shift, ulong mask, int lowBit, int width)
    {
        // The architecture's positions (SMMUv3 4.1-4.7), written out once more here as the check.
        Assert.True(lowBit == shift, field);
        ulong expected = width == 64 ? ulong.MaxValue : ((1UL << width) - 1) << lowBit;
        Assert.Equal(expected, mask);
    }

    [Fact]
    public void AddressMasks_CoverTheDocumentedBits()
    {
        Assert.Equal(0xFFFF_FFFF_FFFF_F000UL, AddressMask);                 // [127:76]
        Assert.Equal(0x00FF_FFFF_FFFF_F000UL, IpaAddressMask);              // [119:76]
        Assert.Equal(0x00FF_FFFF_FFFF_FFFCUL, MsiAddressMask);              // [119:66]
    }

    [Fact]
    public void Builders_GiveTheEncodingsLinuxWrites()
    {
        // arm_smmu_cmdq_build_cmd: a CMD_SYNC with CS = SEV, MSH = ISH, MSIAttr = OIWB is DW0 0x0FC02046 (skip_err's
        // replacement entry); with CS = IRQ and an MSI address, DW0 0x0FC01046 | data << 32.
        Assert.Equal(new SmmuCommand(0x0FC0_2046UL, 0), SmmuCommand.Sync(2));
        Assert.Equal(new SmmuCommand(0x0000_0007_0FC0_1046UL, 0x8000_0040UL), SmmuCommand.Sync(1, 0x8000_0040, 7));
        Assert.Equal(new SmmuCommand(0x0002_0001_0000_0012UL | (3UL << 12), 0x4000UL | 1 | (2UL << 8) | (1UL << 10)),
            SmmuCommand.TlbiNhVa(vmid: 1, asid: 2, va: 0x4000, leaf: true, num: 3, ttl: 2, tg: 1));
        Assert.Equal(new SmmuCommand(0x0000_0100_0000_0A40UL | (5UL << 12), 0x2000UL | 1), SmmuCommand.AtcInv(0x100, 0x2000, 1, substreamId: 5, global: true));
        Assert.Equal(new SmmuCommand(0x0000_0027_0000_0004UL, 31), SmmuCommand.CfgiSteRange(0x27, 31));
    }

    [Fact]
    public void Accessors_ReadBackWhatTheBuildersWrote()
    {
        SmmuCommand va = SmmuCommand.TlbiNhVa(0xBEEF, 0xCAFE, 0x1234_5000, leaf: true, num: 31, scale: 31, ttl: 3, tg: 3);
        Assert.Equal(((byte)SmmuOpcode.TlbiNhVa, (ushort)0xBEEF, (ushort)0xCAFE, 0x1234_5000UL), (va.Opcode, va.Vmid, va.Asid, va.Address));
        Assert.Equal((true, 31, 31, 3, 3), (va.Leaf, va.Num, va.Scale, va.Ttl, va.TranslationGranule));
        SmmuCommand atc = SmmuCommand.AtcInv(0xFFFF_FFFF, ulong.MaxValue, 63, substreamId: 0xF_FFFF, global: true);
        Assert.Equal((0xFFFF_FFFFu, 0xF_FFFFu, true, true, 63, 0xFFFF_FFFF_FFFF_F000UL),
            (atc.StreamId, atc.SubstreamId, atc.SubstreamValid, atc.Global, atc.AtcSize, atc.Address));
        SmmuCommand sync = SmmuCommand.Sync(1, ulong.MaxValue, 0xDEAD_BEEF);
        Assert.Equal((1, 3, 0xF, 0xDEAD_BEEFu, MsiAddressMask), (sync.CompletionSignal, sync.MsiShareability, sync.MsiAttributes, sync.MsiData, sync.MsiAddress));
        Assert.Equal(0x27u, SmmuCommand.CfgiCd(0x27, 9).StreamId);
        Assert.Equal(9u, SmmuCommand.CfgiCd(0x27, 9).SubstreamId);
        Assert.Equal(0x00FF_FFFF_FFFF_F000UL, SmmuCommand.TlbiS2Ipa(1, ulong.MaxValue).Address);
    }

    [Fact]
    public void EveryBuilderOutputDecodesAsTheCommandIt_Names()
    {
        var f = new SmmuFeatures();
        SmmuCommand[] built =
        [
            SmmuCommand.CfgiSte(1), SmmuCommand.CfgiSteRange(0, 3), SmmuCommand.CfgiAll(), SmmuCommand.CfgiCd(1, 2),
            SmmuCommand.CfgiCdAll(1), SmmuCommand.TlbiNhAll(1), SmmuCommand.TlbiNhAsid(1, 2), SmmuCommand.TlbiNhVa(1, 2, 0x1000),
            SmmuCommand.TlbiNhVaa(1, 0x1000), SmmuCommand.TlbiS2Ipa(1, 0x1000), SmmuCommand.TlbiS12Vmall(1),
            SmmuCommand.TlbiNsnhAll(), SmmuCommand.AtcInv(1, 0x1000, 0),
        ];
        foreach (SmmuCommand c in built)
        {
            Assert.Equal(SmmuCommandKind.Invalidation, SmmuCommandDecoder.Decode(c, f).Kind);
        }

        Assert.Equal(SmmuCommandKind.Sync, SmmuCommandDecoder.Decode(SmmuCommand.Sync(0), f).Kind);
        Assert.Equal(SmmuCommandKind.Sync, SmmuCommandDecoder.Decode(SmmuCommand.Sync(1, 0x8000_0000, 1), f).Kind);
    }
}
