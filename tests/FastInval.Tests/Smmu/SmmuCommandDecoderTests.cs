using FastInval.Smmu;

namespace FastInval.Tests.Smmu;

/// <summary>Command builders in the Linux driver's encoding (arm_smmu_cmdq_build_cmd), written from the field table.</summary>
/// <summary>Short names for <see cref="SmmuCommand"/>'s builders (the one encoder of the command layout).</summary>
internal static class Cmd
{
    public static SmmuCommand Of(SmmuOpcode op, ulong dw0 = 0, ulong dw1 = 0) => SmmuCommand.Of(op, dw0, dw1);

    public static SmmuCommand CfgiSte(uint sid, bool leaf = true) => SmmuCommand.CfgiSte(sid, leaf);

    public static SmmuCommand CfgiSteRange(uint sid, int range) => SmmuCommand.CfgiSteRange(sid, range);

    public static SmmuCommand CfgiCd(uint sid, uint ssid, bool leaf = true) => SmmuCommand.CfgiCd(sid, ssid, leaf);

    public static SmmuCommand CfgiCdAll(uint sid) => SmmuCommand.CfgiCdAll(sid);

    public static SmmuCommand NhAll(ushort vmid) => SmmuCommand.TlbiNhAll(vmid);

    public static SmmuCommand NhAsid(ushort vmid, ushort asid) => SmmuCommand.TlbiNhAsid(vmid, asid);

    public static SmmuCommand NhVa(ushort vmid, ushort asid, ulong va, bool leaf = false, int num = 0, int scale = 0, int ttl = 0, int tg = 0) =>
        SmmuCommand.TlbiNhVa(vmid, asid, va, leaf, num, scale, ttl, tg);

    public static SmmuCommand NhVaa(ushort vmid, ulong va, bool leaf = false, int num = 0, int scale = 0, int ttl = 0, int tg = 0) =>
        SmmuCommand.TlbiNhVaa(vmid, va, leaf, num, scale, ttl, tg);

    public static SmmuCommand S2Ipa(ushort vmid, ulong ipa, bool leaf = false, int num = 0, int scale = 0, int ttl = 0, int tg = 0) =>
        SmmuCommand.TlbiS2Ipa(vmid, ipa, leaf, num, scale, ttl, tg);

    public static SmmuCommand S12Vmall(ushort vmid) => SmmuCommand.TlbiS12Vmall(vmid);

    public static SmmuCommand NsnhAll() => SmmuCommand.TlbiNsnhAll();

    public static SmmuCommand AtcInv(uint sid, ulong address, int size, uint? ssid = null, bool global = false) =>
        SmmuCommand.AtcInv(sid, address, size, ssid, global);

    /// <summary>Linux's plain CMD_SYNC (CS = SEV, MSH = ISH, MSIAttr = OIWB): DW0 0x0FC02046 (a layout test checks it).</summary>
    public static SmmuCommand Sync() => SmmuCommand.Sync(2);
}

public class SmmuCommandDecoderTests
{
    private static readonly SmmuFeatures All = new();

    private static InvalidationDescriptor Desc(SmmuCommand c, SmmuFeatures? f = null)
    {
        SmmuDecodedCommand d = SmmuCommandDecoder.Decode(c, f ?? All);
        Assert.Equal(SmmuCommandError.None, d.Error);
        Assert.Equal(SmmuCommandKind.Invalidation, d.Kind);
        return d.Descriptor;
    }

    private static void Ill(SmmuCommand c, SmmuFeatures? f = null)
    {
        SmmuDecodedCommand d = SmmuCommandDecoder.Decode(c, f ?? All);
        Assert.Equal(SmmuCommandError.Illegal, d.Error);
        Assert.Equal(SmmuCommandKind.Rejected, d.Kind);
    }

    [Fact]
    public void Command_ReadsAndWrites16LittleEndianBytes()
    {
        SmmuCommand c = Cmd.NhVa(0x1234, 0xBEEF, 0xFFFF_8000_0012_3000, leaf: true, num: 3, scale: 5, ttl: 3, tg: 1);
        Span<byte> bytes = stackalloc byte[16];
        c.Write(bytes);
        Assert.Equal(0x12, bytes[0]);
        Assert.Equal(c, SmmuCommand.Read(bytes));
        Assert.Equal(0x1234, c.Vmid);
        Assert.Equal(0xBEEF, c.Asid);
        Assert.Equal(3, c.Num);
        Assert.Equal(5, c.Scale);
        Assert.Equal(3, c.Ttl);
        Assert.Equal(1, c.TranslationGranule);
        Assert.True(c.Leaf);
        Assert.Equal(0xFFFF_8000_0012_3000UL, c.Address);
    }

    [Fact]
    public void LinuxPlainSync_IsLegalAndCs0b11IsIllegal()
    {
        Assert.Equal(SmmuCommandKind.Sync, SmmuCommandDecoder.Decode(Cmd.Sync(), All).Kind);
        Ill(Cmd.Of(SmmuOpcode.Sync, 3UL << 12));
        Assert.Equal(SmmuCommandKind.Sync, SmmuCommandDecoder.Decode(Cmd.Of(SmmuOpcode.Sync, (1UL << 12) | (0xABCDUL << 32), 0x8000_1004), All).Kind);
        Ill(Cmd.Of(SmmuOpcode.Sync, 0, 0x8000_1004 | (1UL << 63))); // MSI address above bit 55
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x07)]
    [InlineData(0x08)]
    [InlineData(0x0F)]
    [InlineData(0x14)]
    [InlineData(0x18)]
    [InlineData(0x1A)]
    [InlineData(0x20)]
    [InlineData(0x21)]
    [InlineData(0x22)]
    [InlineData(0x23)]
    [InlineData(0x29)]
    [InlineData(0x2B)]
    [InlineData(0x31)]
    [InlineData(0x42)]
    [InlineData(0x47)]
    [InlineData(0x50)]
    [InlineData(0x60)]
    [InlineData(0x70)]
    [InlineData(0x80)]
    [InlineData(0xFF)]
    public void ReservedSecureEl2El3AndMpamOpcodes_AreIllegal(int opcode) => Ill(new SmmuCommand((ulong)opcode, 0));

    [Fact]
    public void CommandsForAbsentFeatures_AreIllegal()
    {
        var s2Only = new SmmuFeatures { Stage1 = false };
        Ill(Cmd.CfgiCd(1, 0), s2Only);
        Ill(Cmd.CfgiCdAll(1), s2Only);
        Ill(Cmd.NhAll(1), s2Only);
        Ill(Cmd.NhAsid(1, 2), s2Only);
        Ill(Cmd.NhVa(1, 2, 0x1000), s2Only);
        Ill(Cmd.NhVaa(1, 0x1000), s2Only);
        var s1Only = new SmmuFeatures { Stage2 = false };
        Ill(Cmd.S12Vmall(1), s1Only);
        Ill(Cmd.S2Ipa(1, 0x1000), s1Only);
        Ill(Cmd.AtcInv(1, 0, 0), new SmmuFeatures { Ats = false });
        Ill(Cmd.Of(SmmuOpcode.PriResp, 1UL << 32, 2UL << 12));
        Ill(Cmd.Of(SmmuOpcode.Resume, 1UL << 32));
        Ill(Cmd.Of(SmmuOpcode.StallTerm, 1UL << 32));
        Assert.Equal(SmmuCommandKind.PriResponse, SmmuCommandDecoder.Decode(Cmd.Of(SmmuOpcode.PriResp, 1UL << 32, 2UL << 12), new SmmuFeatures { Pri = true }).Kind);
        Ill(Cmd.Of(SmmuOpcode.PriResp, 1UL << 32, 3UL << 12), new SmmuFeatures { Pri = true });
        Assert.Equal(SmmuCommandKind.Resume, SmmuCommandDecoder.Decode(Cmd.Of(SmmuOpcode.Resume, (1UL << 32) | (1UL << 12), 7), new SmmuFeatures { Stall = true }).Kind);
        // Stage-2-only SMMUs still take NSNH_ALL and S2 commands; stage-1-only ones still take NH_* and NSNH_ALL.
        Assert.Equal(InvalidationScope.Iotlb, Desc(Cmd.NsnhAll(), s2Only).Scope);
        Assert.Equal(InvalidationScope.IotlbRange, Desc(Cmd.S2Ipa(1, 0x1000), s2Only).Scope);
        Assert.Equal(InvalidationScope.Iotlb, Desc(Cmd.NhAll(0), s1Only).Scope);
    }

    [Fact]
    public void Ssec_IsIllegalOnTheNonSecureQueueEvenWhenReservedFieldsAreIgnored()
    {
        var lax = new SmmuFeatures { StrictReservedFields = false };
        foreach (SmmuCommand c in new[] { Cmd.CfgiSte(1), Cmd.CfgiSteRange(1, 3), Cmd.CfgiCd(1, 2), Cmd.CfgiCdAll(1), Cmd.Of(SmmuOpcode.PrefetchConfig, 1UL << 32) })
        {
            var secure = new SmmuCommand(c.Dword0 | (1UL << 10), c.Dword1);
            Ill(secure);
            Ill(secure, lax);
        }
    }

    [Fact]
    public void ReservedBits_AreIllegalWhenStrictAndIgnoredWhenNot()
    {
        var lax = new SmmuFeatures { StrictReservedFields = false };
        SmmuCommand[] dirty =
        [
            new(Cmd.CfgiSte(1).Dword0 | (1UL << 11), 1),             // SSV on CFGI_STE
            new(Cmd.CfgiSte(1).Dword0, 1 | (1UL << 1)),               // DW1 bit 65
            new(Cmd.NhAll(1).Dword0 | (1UL << 48), 0),                // ASID on NH_ALL
            new(Cmd.NhVaa(1, 0x1000).Dword0 | (5UL << 48), 0x1000),   // ASID on NH_VAA
            new(Cmd.NsnhAll().Dword0 | (1UL << 32), 0),               // VMID on NSNH_ALL
            new(Cmd.S2Ipa(1, 0x1000).Dword0, 0x1000 | (1UL << 60)),   // IPA above bit 55
            new(Cmd.AtcInv(1, 0, 0).Dword0 | (1UL << 9), 0),          // Global without SSV
            new(Cmd.Sync().Dword0 | (1UL << 20), 0),                  // bit 20 of a SYNC
        ];
        foreach (SmmuCommand c in dirty)
        {
            Ill(c);
            Assert.Equal(SmmuCommandError.None, SmmuCommandDecoder.Decode(c, lax).Error);
        }
    }

    [Fact]
    public void EightBitAsidAndVmid_HaveRes0UpperBytes()
    {
        var narrow = new SmmuFeatures { Asid16 = false, Vmid16 = false };
        Ill(Cmd.NhAsid(0x100, 1), narrow);
        Ill(Cmd.NhAsid(1, 0x100), narrow);
        Assert.Equal(InvalidationScope.Iotlb, Desc(Cmd.NhAsid(0xFF, 0xFF), narrow).Scope);
        Ill(Cmd.NhAll(3), new SmmuFeatures { Stage2 = false }); // VMID is RES0 without stage 2
    }

    [Fact]
    public void Cfgi_ScopesFollowTheArchitecture()
    {
        InvalidationDescriptor ste = Desc(Cmd.CfgiSte(0x42));
        Assert.Equal(ConfigKinds.StreamTableEntry | ConfigKinds.ContextDescriptor, ste.ConfigKinds); // §4.3.1: its CDs too
        Assert.Equal((0x42UL, 0x42UL), (ste.First, ste.Last));
        InvalidationDescriptor range = Desc(Cmd.CfgiSteRange(0x1237, 3)); // 2^4 StreamIDs, aligned
        Assert.Equal((0x1230UL, 0x123FUL), (range.First, range.Last));
        InvalidationDescriptor range30 = Desc(Cmd.CfgiSteRange(0xDEAD_BEEF, 30));
        Assert.Equal((0x8000_0000UL, 0xFFFF_FFFFUL), (range30.First, range30.Last));
        InvalidationDescriptor all = Desc(Cmd.CfgiSteRange(0x1234, 31));
        Assert.Equal(InvalidationFlags.None, all.Flags);
        Assert.Equal(ConfigKinds.StreamTableEntry | ConfigKinds.ContextDescriptor, all.ConfigKinds);
        InvalidationDescriptor cd = Desc(Cmd.CfgiCd(7, 0x9));
        Assert.Equal(ConfigKinds.ContextDescriptor, cd.ConfigKinds);
        Assert.Equal(InvalidationFlags.MatchAddressSpace | InvalidationFlags.MatchSource, cd.Flags);
        Assert.Equal(9u, cd.AddressSpaceId);
        InvalidationDescriptor cdAll = Desc(Cmd.CfgiCdAll(7));
        Assert.Equal(InvalidationFlags.MatchSource, cdAll.Flags);
    }

    [Fact]
    public void Tlbi_ScopesFollowTheArchitecture()
    {
        Assert.Equal(InvalidationDescriptor.IotlbDomain(5, StageMask.FirstStage), Desc(Cmd.NhAll(5)));
        Assert.Equal(InvalidationDescriptor.IotlbAddressSpace(5, 9, StageMask.FirstStage), Desc(Cmd.NhAsid(5, 9)));
        Assert.Equal(InvalidationDescriptor.IotlbDomain(5, StageMask.All), Desc(Cmd.S12Vmall(5)));
        Assert.Equal(InvalidationDescriptor.IotlbAll(StageMask.All), Desc(Cmd.NsnhAll()));
        Assert.Equal(InvalidationDescriptor.IotlbRange(5, 9, 0x7000, 0x7FFF, leafOnly: true), Desc(Cmd.NhVa(5, 9, 0x7000, leaf: true)));
        Assert.Equal(InvalidationDescriptor.IotlbRangeAllAddressSpaces(5, 0x7000, 0x7FFF, StageMask.FirstStage), Desc(Cmd.NhVaa(5, 0x7000)));
        Assert.Equal(InvalidationDescriptor.IotlbRangeAllAddressSpaces(5, 0x4000_0000, 0x4000_0FFF, StageMask.Stage2), Desc(Cmd.S2Ipa(5, 0x4000_0000)));
    }

    [Theory]
    // 33 pages, leaf, 4K: Linux issues (NUM 0, SCALE 0, TTL 3) then (NUM 0, SCALE 5) — spec notes §2.2 example.
    [InlineData(0x10_0000UL, 0, 0, 3, 1, 0x10_0000UL, 0x10_0FFFUL)]
    [InlineData(0x10_1000UL, 0, 5, 3, 1, 0x10_1000UL, 0x12_0FFFUL)]
    // 100 pages: one command NUM 24, SCALE 2.
    [InlineData(0x40_0000UL, 24, 2, 0, 1, 0x40_0000UL, 0x46_3FFFUL)]
    // 1 page non-leaf bumped to 2 pages: NUM 1, SCALE 0, TTL 0.
    [InlineData(0x8000UL, 1, 0, 0, 1, 0x8000UL, 0x9FFFUL)]
    // 64K granule, 3 granules.
    [InlineData(0x3_0000UL, 2, 0, 3, 3, 0x3_0000UL, 0x5_FFFFUL)]
    // Saturates at the top of the address space instead of wrapping.
    [InlineData(0xFFFF_FFFF_FFFF_E000UL, 31, 31, 0, 3, 0xFFFF_FFFF_FFFF_E000UL, ulong.MaxValue)]
    public void RangeCommands_CoverNumPlusOneTimesTwoToScaleGranules(ulong va, int num, int scale, int ttl, int tg, ulong first, ulong last)
    {
        InvalidationDescriptor d = Desc(Cmd.NhVa(1, 2, va, leaf: ttl != 0, num, scale, ttl, tg));
        Assert.Equal((first, last), (d.First, d.Last));
        Assert.Equal((Granule)tg, d.GranuleHint);
        Assert.Equal(ttl, d.LevelHint);
    }

    [Fact]
    public void ReservedRangeCombinations_AreIllegal()
    {
        Ill(Cmd.NhVa(1, 2, 0x1000, num: 0, scale: 0, ttl: 0, tg: 1));
        Ill(Cmd.NhVa(1, 2, 0x4000, num: 0, scale: 0, ttl: 1, tg: 2)); // 16K + TTL 1 is TTL 0 without LPA2
        Ill(Cmd.S2Ipa(1, 0x1000, num: 0, scale: 0, ttl: 0, tg: 3));
        Ill(Cmd.NhVa(1, 2, 0x1000, num: 1, tg: 0));                    // NUM with TG = 0
        Ill(Cmd.NhVa(1, 2, 0x1000, ttl: 2, tg: 0));                    // TTL with TG = 0
        Ill(new SmmuCommand(Cmd.NhVa(1, 2, 0x1000, ttl: 3, tg: 1).Dword0, Cmd.NhVa(1, 2, 0x1000, ttl: 3, tg: 1).Dword1 | (1UL << 7))); // TTL128
        var noRil = new SmmuFeatures { RangeInvalidation = false };
        Ill(Cmd.NhVa(1, 2, 0x1000, ttl: 3, tg: 1), noRil);
        InvalidationDescriptor plain = Desc(Cmd.NhVa(1, 2, 0x1000), noRil);
        Assert.Equal((0x1000UL, 0x1FFFUL), (plain.First, plain.Last));
        // 16K + TTL 1 with a range is legal and hinted as "any level".
        InvalidationDescriptor d = Desc(Cmd.NhVa(1, 2, 0x4000, num: 1, ttl: 1, tg: 2));
        Assert.Equal(0, d.LevelHint);
    }

    [Theory]
    [InlineData(0x8000UL, 2, 0x8000UL, 0xBFFFUL)]      // pages 8..11
    [InlineData(0x7000UL, 4, 0x0UL, 0xFFFFUL)]         // pages 7..10 round out to 0..15
    [InlineData(0x12_3000UL, 0, 0x12_3000UL, 0x12_3FFFUL)]
    [InlineData(0x5000UL, 52, 0UL, ulong.MaxValue)]    // Size 52: everything
    public void AtcInv_CoversTheAlignedBlockOfItsSize(ulong address, int size, ulong first, ulong last)
    {
        InvalidationDescriptor d = Desc(Cmd.AtcInv(0x20, address, size, ssid: 3));
        Assert.Equal(InvalidationScope.DeviceTlb, d.Scope);
        Assert.Equal((first, last), (d.First, d.Last));
        Assert.Equal(3u, d.AddressSpaceId);
        Assert.Equal(0x20u, d.SourceId);
    }

    [Fact]
    public void AtcInvWithoutSsv_IsARequestWithoutPasidAndSizeAbove52IsIllegal()
    {
        InvalidationDescriptor d = Desc(Cmd.AtcInv(0x20, 0x1000, 0));
        Assert.Equal(AddressSpace.None, d.AddressSpaceId);
        Assert.True((d.Flags & InvalidationFlags.MatchAddressSpace) != 0);
        Ill(Cmd.AtcInv(0x20, 0, 53));
        Ill(Cmd.AtcInv(0x20, 0, 63));
        Ill(Cmd.AtcInv(0x20, 0, 0, ssid: 1), new SmmuFeatures { SubstreamIdBits = 0 });
        Assert.True((Desc(Cmd.AtcInv(0x20, 0, 0, ssid: 1, global: true)).Flags & InvalidationFlags.IncludeGlobal) != 0);
    }

    [Fact]
    public void EveryLegalInvalidationDecodesToADescriptorTheEngine_Accepts()
    {
        using var engine = new InvalidationEngine();
        SmmuCommand[] commands =
        [
            Cmd.CfgiSte(1), Cmd.CfgiSteRange(1, 0), Cmd.CfgiSteRange(1, 31), Cmd.CfgiCd(1, 1), Cmd.CfgiCdAll(1),
            Cmd.NhAll(1), Cmd.NhAsid(1, 1), Cmd.NhVa(1, 1, 0x1000), Cmd.NhVaa(1, 0x1000, leaf: true, num: 4, scale: 1, ttl: 2, tg: 1),
            Cmd.S12Vmall(1), Cmd.S2Ipa(1, 0x20_0000, num: 0, scale: 0, ttl: 2, tg: 1), Cmd.NsnhAll(),
            Cmd.AtcInv(1, 0, 52), Cmd.AtcInv(1, 0x4000, 2, ssid: 7, global: true),
        ];
        foreach (SmmuCommand c in commands)
        {
            Assert.Equal(InvalidationStatus.Ok, engine.Execute(Desc(c)));
        }
    }

    [Fact]
    public void NhVa_RemovesTheAsidAndGlobalEntriesOfTheRangeButKeepsOtherAsidsAndStage2()
    {
        using var engine = new InvalidationEngine();
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 2, 0x1000, 0xA000));
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 3, 0x1000, 0xB000));
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, AddressSpace.None, 0x1000, 0xC000, global: true));
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000, 0xD000));
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, 1, 2, 0x1000, 0xE000));
        engine.Execute(Desc(Cmd.NhVa(1, 2, 0x1000)));
        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 2, 0x1000, out _)); // asid 2 and the global are gone
        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Nested, 1, 2, 0x1000, out _));
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 3, 0x1000, out Translation t));
        Assert.Equal(0xB000UL, t.OutputAddress);
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000, out _));
    }
}
