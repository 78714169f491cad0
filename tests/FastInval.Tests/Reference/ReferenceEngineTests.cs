using FastInval.Reference;

namespace FastInval.Tests.Reference;

/// <summary>
/// The oracle checked by hand against the spec notes (/work/shared/spec): if these fail, the reference is wrong,
/// whatever the fast engine says.
/// </summary>
public class ReferenceEngineTests
{
    private const ushort Did = 1;
    private const uint Pasid = 7;
    private const TranslationStage S1 = TranslationStage.Stage1;

    private static TranslationEntry Page(ulong va, uint asid = Pasid, bool global = false, ushort did = Did,
        TranslationStage stage = S1) =>
        TranslationEntry.Leaf(stage, did, asid, va, 0x80_0000_0000 + va, 12, AccessRights.ReadWrite, Granule.Size4K, global);

    private static bool Has(ReferenceEngine r, TranslationEntry e) =>
        Array.Exists(r.IotlbSnapshot(), x => x == EntryRules.Normalize(e));

    // vtd notes §4.1: page-selective invalidation covers 2^AM pages from ADDR aligned down to 2^AM·4 KiB.
    [Fact]
    public void Execute_VtdPsiWithAm2_RemovesPages4To7AndKeeps3And8()
    {
        var r = new ReferenceEngine();
        for (ulong page = 3; page <= 8; page++)
        {
            Assert.Equal(FillResult.Inserted, r.FillIotlb(Page(page << 12)));
        }

        const int Am = 2;
        ulong addr = 4UL << 12;
        ulong last = addr + ((1UL << Am) << 12) - 1;
        Assert.Equal(InvalidationStatus.Ok, r.Execute(InvalidationDescriptor.IotlbRange(Did, Pasid, addr, last)));

        Assert.True(Has(r, Page(3UL << 12)));
        for (ulong page = 4; page <= 7; page++)
        {
            Assert.False(Has(r, Page(page << 12)), $"page {page} must be gone");
            Assert.False(r.TryLookupIotlb(S1, Did, Pasid, (page << 12) + 0x10, out _));
        }

        Assert.True(Has(r, Page(8UL << 12)));
        Assert.Equal(2, r.IotlbCount);
    }

    // vtd notes §4.1 / QEMU clause B: a large page overlapping the block goes too, a neighbour block does not.
    [Fact]
    public void Execute_VtdPsiInsideLargePage_RemovesTheOverlappingLargePageOnly()
    {
        var r = new ReferenceEngine();
        var block = TranslationEntry.Leaf(S1, Did, Pasid, 0x20_0000, 0x4000_0000, 21);
        var nextBlock = TranslationEntry.Leaf(S1, Did, Pasid, 0x40_0000, 0x4020_0000, 21);
        r.FillIotlb(block);
        r.FillIotlb(nextBlock);

        Assert.Equal(InvalidationStatus.Ok, r.Execute(InvalidationDescriptor.IotlbRange(Did, Pasid, 0x3F_F000, 0x3F_FFFF)));

        Assert.False(Has(r, block));
        Assert.True(Has(r, nextBlock));
    }

    // vtd notes §4.2: IH = 1 says only leaves changed, so paging-structure entries covering the range may stay;
    // IH = 0 requires them to go too.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Execute_VtdPsiInvalidationHint_KeepsTablesOnlyWhenSet(bool ih)
    {
        var r = new ReferenceEngine();
        var page = Page(0x20_1000);
        var table2M = TranslationEntry.Table(S1, Did, Pasid, 0x20_0000, 0x7000, 21);
        var table1G = TranslationEntry.Table(S1, Did, Pasid, 0, 0x8000, 30);
        var table512G = TranslationEntry.Table(S1, Did, Pasid, 0, 0x9000, 39);
        foreach (var e in new[] { page, table2M, table1G, table512G })
        {
            Assert.Equal(FillResult.Inserted, r.FillIotlb(e));
        }

        r.Execute(InvalidationDescriptor.IotlbRange(Did, Pasid, 0x20_1000, 0x20_1FFF, leafOnly: ih));

        Assert.False(Has(r, page));
        Assert.Equal(ih, Has(r, table2M));
        Assert.Equal(ih, Has(r, table1G));
        Assert.Equal(ih, Has(r, table512G));
    }

    // smmu notes §2.1: TTL = 2, Leaf = 0 removes level-2 blocks and level-0/1 table entries; level-3 pages, level-2
    // table entries and level-1 blocks need not go (and the documented rule keeps them).
    [Fact]
    public void Execute_SmmuTtl2Leaf0_RemovesLevel2BlocksAndLevel01TablesOnly()
    {
        var r = new ReferenceEngine();
        const ulong A = 0x4020_0000;
        var page = TranslationEntry.Leaf(S1, Did, Pasid, A, 0x1_0000_0000, 12);
        var block2M = TranslationEntry.Leaf(S1, Did, Pasid, A, 0x1_0020_0000, 21);
        var block1G = TranslationEntry.Leaf(S1, Did, Pasid, 0x4000_0000, 0x1_4000_0000, 30);
        var table0 = TranslationEntry.Table(S1, Did, Pasid, 0, 0x9000, 39);
        var table1 = TranslationEntry.Table(S1, Did, Pasid, 0x4000_0000, 0xA000, 30);
        var table2 = TranslationEntry.Table(S1, Did, Pasid, A, 0xB000, 21);
        var block32M16K = TranslationEntry.Leaf(S1, Did, Pasid, 0x4000_0000, 0x2_0000_0000, 25, granule: Granule.Size16K);
        foreach (var e in new[] { page, block2M, block1G, table0, table1, table2, block32M16K })
        {
            Assert.Equal(FillResult.Inserted, r.FillIotlb(e));
        }

        // CMD_TLBI_NH_VA, TG = 4K, NUM = SCALE = 0, TTL = 2, Leaf = 0: one granule at A.
        var d = InvalidationDescriptor.IotlbRange(Did, Pasid, A, A + 0xFFF, leafOnly: false, includeGlobal: true,
            levelHint: 2, granuleHint: Granule.Size4K);
        Assert.Equal(InvalidationStatus.Ok, r.Execute(d));

        Assert.False(Has(r, block2M));
        Assert.False(Has(r, table0));
        Assert.False(Has(r, table1));
        Assert.True(Has(r, page));
        Assert.True(Has(r, table2));
        Assert.True(Has(r, block1G));
        Assert.True(Has(r, block32M16K), "TG = 4K only requires 4K-granule entries to go");
    }

    [Fact]
    public void Execute_SmmuTtl2Leaf1_KeepsEveryTableEntry()
    {
        var r = new ReferenceEngine();
        const ulong A = 0x4020_0000;
        var block2M = TranslationEntry.Leaf(S1, Did, Pasid, A, 0x1_0020_0000, 21);
        var table0 = TranslationEntry.Table(S1, Did, Pasid, 0, 0x9000, 39);
        r.FillIotlb(block2M);
        r.FillIotlb(table0);

        r.Execute(InvalidationDescriptor.IotlbRange(Did, Pasid, A, A + 0xFFF, leafOnly: true, levelHint: 2, granuleHint: Granule.Size4K));

        Assert.False(Has(r, block2M));
        Assert.True(Has(r, table0));
    }

    // Descriptor remarks clause 3 and smmu notes §2.1: TLBI_NH_ASID (ASIDE1) removes the non-global stage-1 entries of
    // (VMID, ASID) and keeps the global ones.
    [Fact]
    public void Execute_NhAsidStyleFlush_KeepsGlobalAndOtherAddressSpaces()
    {
        var r = new ReferenceEngine();
        var mine = Page(0x1000);
        var mineNested = Page(0x2000, stage: TranslationStage.Nested);
        var global = Page(0x3000, asid: AddressSpace.None, global: true);
        var other = Page(0x1000, asid: 8);
        var otherDomain = Page(0x1000, did: 2);
        var stage2 = TranslationEntry.Leaf(TranslationStage.Stage2, Did, AddressSpace.None, 0x1000, 0x5000);
        foreach (var e in new[] { mine, mineNested, global, other, otherDomain, stage2 })
        {
            Assert.Equal(FillResult.Inserted, r.FillIotlb(e));
        }

        Assert.Equal(InvalidationStatus.Ok, r.Execute(InvalidationDescriptor.IotlbAddressSpace(Did, Pasid)));

        Assert.False(Has(r, mine));
        Assert.False(Has(r, mineNested));
        Assert.True(Has(r, global));
        Assert.True(Has(r, other));
        Assert.True(Has(r, otherDomain));
        Assert.True(Has(r, stage2));
        Assert.True(r.TryLookupIotlb(S1, Did, Pasid, 0x3abc, out Translation t));
        Assert.True(t.Global);
        Assert.Equal(0x80_0000_3abcUL, t.OutputAddress);
    }

    // smmu notes §2.1: TLBI_NH_VA is by VMID+ASID+VA "plus global entries by VMID+VA".
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Execute_NhVaStyleRange_RemovesGlobalEntriesOnlyWithIncludeGlobal(bool includeGlobal)
    {
        var r = new ReferenceEngine();
        var mine = Page(0x5000);
        var globalIn = Page(0x5000, asid: 3, global: true);
        var globalOut = Page(0x6000, global: true);
        var otherAsid = Page(0x5000, asid: 8);
        foreach (var e in new[] { mine, globalIn, globalOut, otherAsid })
        {
            r.FillIotlb(e);
        }

        r.Execute(InvalidationDescriptor.IotlbRange(Did, Pasid, 0x5000, 0x5FFF, includeGlobal: includeGlobal));

        Assert.False(Has(r, mine));
        Assert.Equal(!includeGlobal, Has(r, globalIn));
        Assert.True(Has(r, globalOut));
        Assert.True(Has(r, otherAsid));
    }

    // Descriptor remarks: without MatchAddressSpace every address space and global entry of the domain is in (NH_VAA).
    [Fact]
    public void Execute_NhVaaStyleRange_RemovesEveryAddressSpaceAndGlobal()
    {
        var r = new ReferenceEngine();
        var entries = new[] { Page(0x5000), Page(0x5000, asid: 8), Page(0x5000, global: true), Page(0x5000, asid: AddressSpace.None) };
        foreach (var e in entries)
        {
            Assert.Equal(FillResult.Inserted, r.FillIotlb(e));
        }

        var keep = Page(0x5000, did: 2);
        r.FillIotlb(keep);
        r.Execute(InvalidationDescriptor.IotlbRangeAllAddressSpaces(Did, 0x5000, 0x5000, StageMask.FirstStage));

        Assert.Equal([EntryRules.Normalize(keep)], r.IotlbSnapshot());
    }

    [Fact]
    public void TryLookupIotlb_OverlappingSpans_SmallestSpanThenNonGlobalWins()
    {
        var r = new ReferenceEngine();
        var page = Page(0x20_1000);
        var blockGlobal = TranslationEntry.Leaf(S1, Did, 0, 0x20_0000, 0x7000_0000, 21, AccessRights.Read, global: true);
        var block = TranslationEntry.Leaf(S1, Did, Pasid, 0x20_0000, 0x6000_0000, 21, AccessRights.Write);
        r.FillIotlb(page);
        r.FillIotlb(blockGlobal);
        r.FillIotlb(block);

        Assert.True(r.TryLookupIotlb(S1, Did, Pasid, 0x20_1234, out Translation t));
        Assert.Equal(new Translation(0x80_0020_1234, 0x20_1000, AccessRights.ReadWrite, 12, false), t);

        Assert.True(r.TryLookupIotlb(S1, Did, Pasid, 0x20_2234, out t));
        Assert.Equal(new Translation(0x6000_2234, 0x20_0000, AccessRights.Write, 21, false), t);

        Assert.True(r.TryLookupIotlb(S1, Did, 9, 0x20_1234, out t));
        Assert.Equal(new Translation(0x7000_1234, 0x20_0000, AccessRights.Read, 21, true), t);

        Assert.True(r.TryLookupIotlb(S1, Did, AddressSpace.None, 0x20_1234, out t), "a global entry answers requests without PASID too");
        Assert.False(r.TryLookupIotlb(S1, Did, AddressSpace.MaxId + 1, 0x20_1234, out _), "an invalid address space misses");
        Assert.False(r.TryLookupIotlb(TranslationStage.Nested, Did, Pasid, 0x20_1234, out _));
        Assert.False(r.TryLookupIotlb(S1, 2, Pasid, 0x20_1234, out _));
        Assert.False(r.TryLookupIotlb(S1, Did, Pasid, 0x40_0000, out _));
    }

    [Fact]
    public void TryLookupIotlbTable_ExactSpanOnly_ReturnsTableAddressWithoutOffset()
    {
        var r = new ReferenceEngine();
        r.FillIotlb(TranslationEntry.Table(S1, Did, Pasid, 0x4000_0000, 0xABC_D000, 30));
        r.FillIotlb(TranslationEntry.Leaf(S1, Did, Pasid, 0x4000_0000, 0x1_0000_0000, 30));

        Assert.True(r.TryLookupIotlbTable(S1, Did, Pasid, 0x4012_3456, 30, out Translation t));
        Assert.Equal(new Translation(0xABC_D000, 0x4000_0000, AccessRights.None, 30, false), t);
        Assert.False(r.TryLookupIotlbTable(S1, Did, Pasid, 0x4012_3456, 21, out _));
        Assert.True(r.TryLookupIotlb(S1, Did, Pasid, 0x4012_3456, out t));
        Assert.Equal(0x1_0012_3456UL, t.OutputAddress);
    }

    [Fact]
    public void FillIotlb_SameIdentity_ReplacesOutputAndRights()
    {
        var r = new ReferenceEngine();
        Assert.Equal(FillResult.Inserted, r.FillIotlb(TranslationEntry.Leaf(S1, Did, Pasid, 0x1000, 0x2000)));
        Assert.Equal(FillResult.Replaced, r.FillIotlb(TranslationEntry.Leaf(S1, Did, Pasid, 0x1000, 0x9000, rights: AccessRights.Read)));
        Assert.Equal(FillResult.Inserted, r.FillIotlb(TranslationEntry.Table(S1, Did, Pasid, 0, 0x3000, 21)));
        Assert.Equal(FillResult.Inserted, r.FillIotlb(TranslationEntry.Leaf(S1, Did, Pasid, 0x1000, 0x2000, global: true)));
        Assert.Equal(FillResult.Replaced, r.FillIotlb(TranslationEntry.Leaf(S1, Did, 99, 0x1000, 0x4000, global: true)));

        TranslationEntry[] all = r.IotlbSnapshot();
        Assert.Equal(3, all.Length);
        Assert.Contains(TranslationEntry.Leaf(S1, Did, Pasid, 0x1000, 0x9000, rights: AccessRights.Read), all);
        Assert.Contains(TranslationEntry.Leaf(S1, Did, AddressSpace.None, 0x1000, 0x4000, global: true), all);
    }

    public static TheoryData<string, TranslationEntry> MalformedEntries() => new()
    {
        { "no stage", new TranslationEntry(0, Did, Pasid, 0x1000, 0x2000, 12, AccessRights.Read, Granule.Size4K, false, false) },
        { "two stages", new TranslationEntry((TranslationStage)3, Did, Pasid, 0x1000, 0x2000, 12, AccessRights.Read, Granule.Size4K, false, false) },
        { "granule any", new TranslationEntry(S1, Did, Pasid, 0x1000, 0x2000, 12, AccessRights.Read, Granule.Any, false, false) },
        { "4K granule, 16K span", TranslationEntry.Leaf(S1, Did, Pasid, 0x4000, 0x4000, 14) },
        { "leaf at level 0", TranslationEntry.Leaf(S1, Did, Pasid, 0, 0, 39) },
        { "table at level 3", TranslationEntry.Table(S1, Did, Pasid, 0x1000, 0x1000, 12) },
        { "input misaligned", TranslationEntry.Leaf(S1, Did, Pasid, 0x1000, 0x20_0000, 21) },
        { "leaf output misaligned", TranslationEntry.Leaf(S1, Did, Pasid, 0x20_0000, 0x1000, 21) },
        { "table output misaligned", TranslationEntry.Table(S1, Did, Pasid, 0x20_0000, 0x1800, 21) },
        { "stage 2 with an address space", TranslationEntry.Leaf(TranslationStage.Stage2, Did, 0, 0x1000, 0x1000) },
        { "stage 2 global", TranslationEntry.Leaf(TranslationStage.Stage2, Did, AddressSpace.None, 0x1000, 0x1000, global: true) },
        { "address space too wide", TranslationEntry.Leaf(S1, Did, AddressSpace.MaxId + 1, 0x1000, 0x1000) },
        { "rights above 12 bits", TranslationEntry.Leaf(S1, Did, Pasid, 0x1000, 0x1000, rights: (AccessRights)0x1000) },
    };

    [Theory]
    [MemberData(nameof(MalformedEntries))]
    public void FillIotlb_MalformedEntry_IsRejectedAndChangesNothing(string why, TranslationEntry entry)
    {
        var r = new ReferenceEngine();
        Assert.Equal(FillResult.Rejected, r.FillIotlb(entry));
        Assert.True(r.IotlbCount == 0, why);
    }

    [Fact]
    public void FillIotlb_TableOutputAlignedToGranuleOnly_IsAccepted()
    {
        var r = new ReferenceEngine();
        Assert.Equal(FillResult.Inserted, r.FillIotlb(TranslationEntry.Table(S1, Did, Pasid, 0x20_0000, 0x1000, 21)));
        Assert.Equal(FillResult.Inserted, r.FillIotlb(TranslationEntry.Table(S1, Did, Pasid, 0, 0x1_0000, 55, Granule.Size64K)));
        Assert.Equal(FillResult.Inserted, r.FillIotlb(TranslationEntry.Leaf(S1, Did, Pasid, 0, 0, 42, granule: Granule.Size64K)));
    }

    // vtd notes §1.5/§2.6: a device-TLB time-out (ITE) leaves the entries; an ICE is reported after the invalidation.
    [Fact]
    public void Execute_DeviceTlbUnderFaultPlan_TimeoutKeepsCompletionErrorRemovesInvalidSkipsOrdinal()
    {
        var plan = new FaultPlan { TimeoutOrdinals = [1], CompletionErrorOrdinals = [2] };
        var r = new ReferenceEngine(plan);
        var a = new DeviceTlbEntry(0x10, 5, 0x1000, 0x9000);
        var b = new DeviceTlbEntry(0x10, 5, 0x2000, 0xA000);
        var c = new DeviceTlbEntry(0x10, 5, 0x3000, 0xB000);
        var other = new DeviceTlbEntry(0x11, 5, 0x1000, 0x9000);
        foreach (var e in new[] { a, b, c, other })
        {
            Assert.Equal(FillResult.Inserted, r.FillDeviceTlb(e));
        }

        InvalidationDescriptor[] batch =
        [
            InvalidationDescriptor.DeviceTlb(0x10, 5, 0x1000, 0x1FFF),   // ordinal 0: ok
            InvalidationDescriptor.DeviceTlb(0x10, 5, 0x3000, 0x2000),   // First > Last: invalid, no ordinal
            InvalidationDescriptor.DeviceTlb(0x10, 5, 0x2000, 0x2FFF),   // ordinal 1: time-out
            InvalidationDescriptor.DeviceTlb(0x10, 5, 0x3000, 0x3FFF),   // ordinal 2: completion error
        ];
        var statuses = new InvalidationStatus[batch.Length];
        BatchResult result = r.Execute(batch, statuses);

        Assert.Equal([InvalidationStatus.Ok, InvalidationStatus.Invalid, InvalidationStatus.TimedOut, InvalidationStatus.CompletionError], statuses);
        Assert.Equal(new BatchResult(1, 1, 1, 1, 1), result);
        Assert.Equal(3UL, r.DeviceTlbInvalidations);
        Assert.Equal(EntryOrder.Sorted([b, other]), r.DeviceTlbSnapshot());
    }

    [Fact]
    public void Execute_DeviceTlbPasidFlush_KeepsGlobalUnlessIncludeGlobal()
    {
        var r = new ReferenceEngine();
        var mine = new DeviceTlbEntry(0x10, 5, 0x1000, 0x9000);
        var global = new DeviceTlbEntry(0x10, 6, 0x0, 0x0, sizeLog2: 16, global: true);
        r.FillDeviceTlb(mine);
        r.FillDeviceTlb(global);
        Assert.True(r.TryLookupDeviceTlb(0x10, 9, 0x1234, out Translation t));
        Assert.True(t.Global);
        Assert.True(r.TryLookupDeviceTlb(0x10, 5, 0x1234, out t));
        Assert.Equal(0x9234UL, t.OutputAddress);

        r.Execute(InvalidationDescriptor.DeviceTlb(0x10, 5));
        Assert.Equal([EntryRules.Normalize(global)], r.DeviceTlbSnapshot());
        r.Execute(InvalidationDescriptor.DeviceTlb(0x10, 5, includeGlobal: true));
        Assert.Equal(0, r.DeviceTlbCount);
    }

    // smmu notes: CFGI_STE_RANGE removes the STEs of a StreamID range; CFGI_CD removes one CD of one stream.
    [Fact]
    public void Execute_ConfigSourceRangeAndAddressSpace_RemovesOnlySelectedKindsAndIds()
    {
        var r = new ReferenceEngine();
        var ste10 = new ConfigEntry(ConfigKinds.StreamTableEntry, 0x10, AddressSpace.None, 1, 0xA);
        var ste11 = new ConfigEntry(ConfigKinds.StreamTableEntry, 0x11, AddressSpace.None, 1, 0xB);
        var ste12 = new ConfigEntry(ConfigKinds.StreamTableEntry, 0x12, AddressSpace.None, 1, 0xC);
        var cd10a = new ConfigEntry(ConfigKinds.ContextDescriptor, 0x10, 3, 1, 0xD);
        var cd10b = new ConfigEntry(ConfigKinds.ContextDescriptor, 0x10, 4, 1, 0xE);
        foreach (var e in new[] { ste10, ste11, ste12, cd10a, cd10b })
        {
            Assert.Equal(FillResult.Inserted, r.FillConfig(e));
        }

        r.Execute(InvalidationDescriptor.ConfigSources(ConfigKinds.StreamTableEntry, 0x10, 0x11));
        Assert.Equal(EntryOrder.Sorted([ste12, cd10a, cd10b]), r.ConfigSnapshot());

        r.Execute(InvalidationDescriptor.ConfigAddressSpace(ConfigKinds.ContextDescriptor, 3, sourceId: 0x10));
        Assert.Equal(EntryOrder.Sorted([ste12, cd10b]), r.ConfigSnapshot());
        Assert.True(r.TryLookupConfig(ConfigKinds.ContextDescriptor, 0x10, 4, out ConfigEntry found));
        Assert.Equal(cd10b, found);
    }

    [Fact]
    public void FillConfig_KindAndAddressSpaceRules_RejectOrReplace()
    {
        var r = new ReferenceEngine();
        Assert.Equal(FillResult.Rejected, r.FillConfig(new ConfigEntry(ConfigKinds.Context | ConfigKinds.PasidEntry, 1, AddressSpace.None, 1, 1)));
        Assert.Equal(FillResult.Rejected, r.FillConfig(new ConfigEntry(ConfigKinds.None, 1, AddressSpace.None, 1, 1)));
        Assert.Equal(FillResult.Rejected, r.FillConfig(new ConfigEntry(ConfigKinds.Context, 1, 0, 1, 1)));
        Assert.Equal(FillResult.Rejected, r.FillConfig(new ConfigEntry(ConfigKinds.PasidEntry, 1, AddressSpace.None, 1, 1)));
        Assert.Equal(FillResult.Inserted, r.FillConfig(new ConfigEntry(ConfigKinds.PasidEntry, 1, 0, 1, 1)));
        Assert.Equal(FillResult.Replaced, r.FillConfig(new ConfigEntry(ConfigKinds.PasidEntry, 1, 0, 2, 5)));
        Assert.Equal([new ConfigEntry(ConfigKinds.PasidEntry, 1, 0, 2, 5)], r.ConfigSnapshot());
    }

    public static TheoryData<string, InvalidationDescriptor> MalformedDescriptors() => new()
    {
        { "scope none", default },
        { "scope 5", new((InvalidationScope)5, 0, StageMask.All, 0, Granule.Any, 0, 0, 0, 0, 0, 0) },
        { "unknown flag", new(InvalidationScope.Iotlb, (InvalidationFlags)0x20, StageMask.All, 0, Granule.Any, 0, 0, 0, 0, 0, 0) },
        { "no stage", InvalidationDescriptor.IotlbAll(StageMask.None) },
        { "unknown stage", InvalidationDescriptor.IotlbAll((StageMask)8) },
        { "level 4", InvalidationDescriptor.IotlbRange(Did, Pasid, 0, 0xFFF, levelHint: 4, granuleHint: Granule.Size4K) },
        { "granule 4", InvalidationDescriptor.IotlbRange(Did, Pasid, 0, 0xFFF, granuleHint: (Granule)4) },
        { "level without granule", InvalidationDescriptor.IotlbRange(Did, Pasid, 0, 0xFFF, levelHint: 2) },
        { "hint outside a range", new(InvalidationScope.Iotlb, 0, StageMask.All, 0, Granule.Size4K, 0, 0, 0, 0, 0, 0) },
        { "range backwards", InvalidationDescriptor.IotlbRange(Did, Pasid, 0x2000, 0x1FFF) },
        { "device range backwards", InvalidationDescriptor.DeviceTlb(0x10, 5, 0x2000, 0x1FFF) },
        { "config sources backwards", InvalidationDescriptor.ConfigSources(ConfigKinds.All, 2, 1) },
        { "config without kind", InvalidationDescriptor.ConfigAll(ConfigKinds.None) },
        { "config unknown kind", InvalidationDescriptor.ConfigAll((ConfigKinds)0x20) },
        { "address space too wide", InvalidationDescriptor.IotlbAddressSpace(Did, AddressSpace.MaxId + 1) },
    };

    [Theory]
    [MemberData(nameof(MalformedDescriptors))]
    public void Execute_MalformedDescriptor_IsInvalidAndChangesNothing(string why, InvalidationDescriptor d)
    {
        var r = new ReferenceEngine();
        r.FillIotlb(Page(0x1000));
        r.FillDeviceTlb(new DeviceTlbEntry(0x10, 5, 0x1000, 0x9000));
        r.FillConfig(new ConfigEntry(ConfigKinds.Context, 1, AddressSpace.None, 1, 1));

        Assert.Equal(InvalidationStatus.Invalid, r.Execute(d));
        Assert.True(r.IotlbCount == 1 && r.DeviceTlbCount == 1 && r.ConfigCount == 1, why);
        Assert.Equal(0UL, r.DeviceTlbInvalidations);
    }

    // "Fields a scope does not use are ignored": an Iotlb (no address) scope with First > Last, or a Config descriptor
    // without MatchSource whose First > Last, is valid.
    [Fact]
    public void Execute_UnusedFieldsOutOfOrder_AreIgnored()
    {
        var r = new ReferenceEngine();
        r.FillIotlb(Page(0x1000));
        r.FillConfig(new ConfigEntry(ConfigKinds.Context, 1, AddressSpace.None, 1, 1));

        var iotlb = new InvalidationDescriptor(InvalidationScope.Iotlb, InvalidationFlags.MatchSource, StageMask.All, 0,
            Granule.Any, ConfigKinds.All, 0, AddressSpace.MaxId + 5, 0, 9, 1);
        var config = new InvalidationDescriptor(InvalidationScope.Config, InvalidationFlags.LeafOnly, (StageMask)0xFF, 0,
            Granule.Any, ConfigKinds.Context, 0, 0, 0, 9, 1);

        Assert.Equal(InvalidationStatus.Ok, r.Execute(iotlb));
        Assert.Equal(InvalidationStatus.Ok, r.Execute(config));
        Assert.Equal(0, r.IotlbCount);
        Assert.Equal(0, r.ConfigCount);
    }
}
