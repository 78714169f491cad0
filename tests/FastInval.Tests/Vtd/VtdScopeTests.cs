using FastInval.Reference;
using FastInval.Vtd;

namespace FastInval.Tests.Vtd;

/// <summary>What each descriptor granularity removes from the unit's caches, submitted through the queue.</summary>
public class VtdScopeTests
{
    private static TranslationEntry S2(ushort did, ulong iova, byte size = 12) =>
        TranslationEntry.Leaf(TranslationStage.Stage2, did, AddressSpace.None, iova, iova, size);

    private static TranslationEntry S1(ushort did, uint pasid, ulong va, byte size = 12, bool global = false,
        TranslationStage stage = TranslationStage.Stage1) =>
        TranslationEntry.Leaf(stage, did, global ? AddressSpace.None : pasid, va, va, size, global: global);

    /// <summary>Fills a fresh unit, submits the descriptors and a wait, and returns what is left of one cache, sorted.</summary>
    private static T[] Left<T>(IEnumerable<T> fill, Func<InvalidationEngine, T, FillResult> add, Func<InvalidationEngine, T[]> snapshot,
        Comparison<T> order, VtdDescriptor[] submit)
    {
        using var rig = new VtdRig();
        rig.Enable();
        foreach (T e in fill)
        {
            Assert.NotEqual(FillResult.Rejected, add(rig.Engine, e));
        }

        rig.Submit([.. submit, VtdRig.StatusWait(0)]);
        Assert.Equal(0u, rig.Fsts);
        return Sorted(order, snapshot(rig.Engine));
    }

    private static T[] Sorted<T>(Comparison<T> order, params T[] entries)
    {
        Array.Sort(entries, order);
        return entries;
    }

    private static TranslationEntry[] Run(IEnumerable<TranslationEntry> fill, params VtdDescriptor[] submit) =>
        Left(fill, (e, x) => e.Iotlb.Fill(x), e => e.Iotlb.ToArray(), EntryOrder.Compare, submit);

    private static ConfigEntry[] RunConfig(IEnumerable<ConfigEntry> fill, params VtdDescriptor[] submit) =>
        Left(fill, (e, x) => e.ConfigCache.Fill(x), e => e.ConfigCache.ToArray(), EntryOrder.Compare, submit);

    private static DeviceTlbEntry[] RunAtc(IEnumerable<DeviceTlbEntry> fill, params VtdDescriptor[] submit) =>
        Left(fill, (e, x) => e.DeviceTlb.Fill(x), e => e.DeviceTlb.ToArray(), EntryOrder.Compare, submit);

    private static TranslationEntry[] Sorted(params TranslationEntry[] entries) => Sorted(EntryOrder.Compare, entries);

    private static ConfigEntry[] Sorted(params ConfigEntry[] entries) => Sorted(EntryOrder.Compare, entries);

    private static DeviceTlbEntry[] Sorted(params DeviceTlbEntry[] entries) => Sorted(EntryOrder.Compare, entries);

    // ---- IOTLB (type 0x2) --------------------------------------------------------------------------------------

    [Fact]
    public void IotlbPageSelective_RemovesSecondStagePagesOfTheAlignedAmBlockOnly()
    {
        var pages = Enumerable.Range(0, 16).Select(p => S2(1, (ulong)p << 12)).ToList();
        pages.Add(S2(2, 0x5000));
        TranslationEntry[] left = Run(pages, Dsc.Iotlb(3, did: 1, addr: 0x6000, am: 2)); // pages 4..7
        Assert.Equal(Sorted([.. pages.Where(e => e.DomainId == 2 || e.InputAddress < 0x4000 || e.InputAddress > 0x7000)]), left);
    }

    [Fact]
    public void IotlbPageSelective_RemovesLargePagesContainingTheBlock_AndBlocksPartlyCovered()
    {
        TranslationEntry big = S2(1, 0x4000_0000, 30), mid = S2(1, 0x20_0000, 21), far = S2(1, 0x8000_0000, 30);
        Assert.Equal([far], Run([big, mid, far], Dsc.Iotlb(3, 1, 0x4012_3000), Dsc.Iotlb(3, 1, 0x0, am: 10))); // 0–4 MiB
    }

    [Fact]
    public void IotlbPageSelective_WithIh_KeepsPagingStructureEntries()
    {
        TranslationEntry table = TranslationEntry.Table(TranslationStage.Stage2, 1, AddressSpace.None, 0x20_0000, 0x7000, 21);
        TranslationEntry leaf = S2(1, 0x21_0000);
        Assert.Equal([table], Run([table, leaf], Dsc.Iotlb(3, 1, 0x21_0000, ih: true)));
        Assert.Empty(Run([table, leaf], Dsc.Iotlb(3, 1, 0x21_0000, ih: false)));
    }

    [Fact]
    public void IotlbPageSelective_RemovesEveryFirstStageAndNestedEntryOfTheDomain_AtAnyAddress()
    {
        TranslationEntry fs = S1(1, 5, 0x7777_0000), nested = S1(1, 6, 0x1234_5000, stage: TranslationStage.Nested),
            global = S1(1, 0, 0x9000_0000, global: true), otherDomain = S1(2, 5, 0x7777_0000),
            fsTable = TranslationEntry.Table(TranslationStage.Stage1, 1, 5, 0, 0x1000, 39), s2Far = S2(1, 0x9000_0000);
        Assert.Equal(Sorted(otherDomain, s2Far),
            Run([fs, nested, global, otherDomain, fsTable, s2Far], Dsc.Iotlb(3, 1, 0x1000, ih: true)));
    }

    [Fact]
    public void IotlbDomainAndGlobal_RemoveEveryStage()
    {
        TranslationEntry[] all = [S2(1, 0), S1(1, 5, 0), S1(1, 0, 0x1000, global: true), S2(2, 0), S1(2, 5, 0, stage: TranslationStage.Nested)];
        Assert.Equal(Sorted(all[3], all[4]), Run(all, Dsc.Iotlb(2, 1)));
        Assert.Empty(Run(all, Dsc.Iotlb(1, 7)));
    }

    // ---- PASID-based IOTLB (type 0x6) ------------------------------------------------------------------------

    [Fact]
    public void PasidPageSelective_RemovesFirstStageEntriesOfThePasidAndGlobalsInTheBlock_NotSecondStage()
    {
        TranslationEntry inBlock = S1(1, 5, 0x3000), nestedIn = S1(1, 5, 0x2000, stage: TranslationStage.Nested),
            outside = S1(1, 5, 0x8000), otherPasid = S1(1, 6, 0x3000), globalIn = S1(1, 0, 0x1000, global: true),
            globalOut = S1(1, 0, 0x9000, global: true), stage2 = S2(1, 0x3000), largeContaining = S1(1, 5, 0x20_0000, 21),
            otherDomain = S1(2, 5, 0x3000);
        TranslationEntry[] left = Run([inBlock, nestedIn, outside, otherPasid, globalIn, globalOut, stage2, largeContaining, otherDomain],
            Dsc.PIotlb(3, 1, 5, 0x2000, am: 2), Dsc.PIotlb(3, 1, 5, 0x3F_F000));
        Assert.Equal(Sorted(outside, otherPasid, globalOut, stage2, otherDomain), left);
    }

    [Fact]
    public void PasidPageSelective_WithIh_KeepsFirstStagePagingStructureEntries()
    {
        TranslationEntry table = TranslationEntry.Table(TranslationStage.Stage1, 1, 5, 0, 0x1000, 21), leaf = S1(1, 5, 0x1000);
        Assert.Equal([table], Run([table, leaf], Dsc.PIotlb(3, 1, 5, 0x1000, ih: true)));
        Assert.Empty(Run([table, leaf], Dsc.PIotlb(3, 1, 5, 0x1000)));
    }

    [Fact]
    public void PasidSelective_RemovesNonGlobalEntriesOfThePasid_KeepsGlobalsAndSecondStage()
    {
        TranslationEntry mine = S1(1, 5, 0x3000), myTable = TranslationEntry.Table(TranslationStage.Stage1, 1, 5, 0, 0x1000, 39),
            nested = S1(1, 5, 0x1_0000, stage: TranslationStage.Nested), global = S1(1, 0, 0x1000, global: true),
            other = S1(1, 6, 0x3000), stage2 = S2(1, 0x3000);
        Assert.Equal(Sorted(global, other, stage2), Run([mine, myTable, nested, global, other, stage2], Dsc.PIotlb(2, 1, 5)));
    }

    // ---- configuration caches (types 0x1, 0x4, 0x7) -----------------------------------------------------------

    private static ConfigEntry Ctx(uint sid, ushort did) => new(ConfigKinds.Context, sid, AddressSpace.None, did, sid);

    private static ConfigEntry Pe(uint sid, uint pasid, ushort did) => new(ConfigKinds.PasidEntry, sid, pasid, did, pasid);

    private static ConfigEntry Ir(uint index) => new(ConfigKinds.InterruptEntry, index, AddressSpace.None, 0, index);

    [Fact]
    public void ContextCache_DomainSelectiveMatchesTheDid_GlobalEverything_OthersKindsStay()
    {
        ConfigEntry[] fill = [Ctx(0x10, 1), Ctx(0x11, 2), Ctx(0x12, 1), Pe(0x10, 5, 1), Ir(3)];
        Assert.Equal(Sorted(Ctx(0x11, 2), Pe(0x10, 5, 1), Ir(3)), RunConfig(fill, Dsc.Cc(2, did: 1)));
        Assert.Equal(Sorted(Pe(0x10, 5, 1), Ir(3)), RunConfig(fill, Dsc.Cc(1)));
    }

    [Theory]
    [InlineData(0, new uint[] { 0xA5 })]
    [InlineData(1, new uint[] { 0xA1, 0xA5 })]
    [InlineData(2, new uint[] { 0xA1, 0xA3, 0xA5, 0xA7 })]
    [InlineData(3, new uint[] { 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7 })]
    public void ContextCache_DeviceSelective_FunctionMaskIgnoresLowSidBits_WhateverTheDid(int fm, uint[] removed)
    {
        ConfigEntry[] fill = [.. Enumerable.Range(0x9F, 10).Select(s => Ctx((uint)s, (ushort)(s % 3)))];
        ConfigEntry[] left = RunConfig(fill, Dsc.Cc(3, did: 0x77, sid: 0xA5, fm: fm));
        Assert.Equal(Sorted([.. fill.Where(e => !removed.Contains(e.SourceId))]), left);
    }

    [Fact]
    public void PasidCache_DomainPasidAndGlobalGranularities()
    {
        ConfigEntry[] fill = [Pe(0x10, 5, 1), Pe(0x11, 5, 1), Pe(0x10, 6, 1), Pe(0x10, 5 + 0x100, 2), Ctx(0x10, 1)];
        Assert.Equal(Sorted(Pe(0x10, 6, 1), Pe(0x10, 0x105, 2), Ctx(0x10, 1)), RunConfig(fill, Dsc.Pc(1, 1, 5)));
        Assert.Equal(Sorted(Pe(0x10, 0x105, 2), Ctx(0x10, 1)), RunConfig(fill, Dsc.Pc(0, 1, 999)));
        Assert.Equal([Ctx(0x10, 1)], RunConfig(fill, Dsc.Pc(3)));
    }

    [Fact]
    public void InterruptEntryCache_GlobalAndAlignedIndexBlocks()
    {
        ConfigEntry[] fill = [.. Enumerable.Range(0, 20).Select(i => Ir((uint)i)), Ctx(5, 0)];
        Assert.Equal(Sorted([.. fill.Where(e => e.Kind != ConfigKinds.InterruptEntry || e.SourceId is < 8 or > 11)]),
            RunConfig(fill, Dsc.Iec(selective: true, im: 2, iidx: 10)));
        Assert.Equal([Ctx(5, 0)], RunConfig(fill, Dsc.Iec()));
    }

    // ---- device TLBs (types 0x3, 0x8) --------------------------------------------------------------------------

    private static DeviceTlbEntry Atc(uint sid, uint pasid, ulong address, byte size = 12, bool global = false) =>
        new(sid, global ? AddressSpace.None : pasid, address, address, size, global: global);

    [Fact]
    public void DeviceTlb_RequestWithoutPasid_RemovesNoPasidEntriesInRange_AndEveryPasidEntryOfTheDevice()
    {
        DeviceTlbEntry inRange = Atc(0x10, AddressSpace.None, 0x4000), outRange = Atc(0x10, AddressSpace.None, 0x10_0000),
            pasidFar = Atc(0x10, 5, 0x8000_0000), otherDevice = Atc(0x11, AddressSpace.None, 0x4000);
        Assert.Equal(Sorted(outRange, otherDevice), RunAtc([inRange, outRange, pasidFar, otherDevice], Dsc.DevTlb(0x10, 0x4000, mask: 2)));
    }

    [Fact]
    public void DeviceTlb_SizeBit_CoversTheEncodedBlock_AndFlushAllCoversEverything()
    {
        DeviceTlbEntry[] fill = [.. Enumerable.Range(0, 8).Select(p => Atc(0x10, AddressSpace.None, (ulong)p << 12)), Atc(0x10, AddressSpace.None, 0xFFFF_F000_0000, 28)];
        Assert.Equal(Sorted([.. fill.Where(e => e.InputAddress is < 0x4000 or > 0x7000)]), RunAtc(fill, Dsc.DevTlb(0x10, 0x4000, mask: 2)));
        Assert.Empty(RunAtc(fill, Dsc.DevTlb(0x10, 0, mask: 52)));
    }

    [Fact]
    public void PasidDeviceTlb_OnePasid_OrEveryPasidWithGlobalInvalidate()
    {
        DeviceTlbEntry mine = Atc(0x10, 5, 0x4000), other = Atc(0x10, 6, 0x4000), global = Atc(0x10, 0, 0x4000, global: true),
            noPasid = Atc(0x10, AddressSpace.None, 0x4000), outside = Atc(0x10, 5, 0x9000), otherDevice = Atc(0x11, 5, 0x4000);
        DeviceTlbEntry[] fill = [mine, other, global, noPasid, outside, otherDevice];
        Assert.Equal(Sorted(other, global, noPasid, outside, otherDevice), RunAtc(fill, Dsc.PDevTlb(0x10, 5, 0x4000, sizeOrder: 1)));
        Assert.Equal(Sorted(outside, otherDevice), RunAtc(fill, Dsc.PDevTlb(0x10, 5, 0x4000, sizeOrder: 1, global: true)));
    }
}
