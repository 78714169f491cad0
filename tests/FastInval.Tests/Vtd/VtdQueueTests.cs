using System.Collections.Immutable;
using FastInval.Tests.Memory;
using FastInval.Vtd;

namespace FastInval.Tests.Vtd;

/// <summary>The invalidation queue: enabling, head/tail, wrap, bad tails and widths, fetch errors, IQE and its recovery.</summary>
public class VtdQueueTests
{
    /// <summary>The guest-memory implementation the unit runs over (the derived classes run every test over the others).</summary>
    protected virtual GuestMemoryKind Kind => GuestMemoryKind.Managed;

    private static readonly TranslationEntry Page = TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x5000, 0x9000);

    private static bool Cached(VtdRig rig) => rig.Engine.Iotlb.TryLookup(TranslationStage.Stage2, 1, AddressSpace.None, 0x5000, out _);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void IqtWrite_ProcessesEveryDescriptorUpToTheTail_AndIqhFollows(bool wide)
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Enable(wide);
        rig.Engine.Iotlb.Fill(Page);
        rig.Submit(Dsc.Iotlb(3, 1, 0x5000), VtdRig.StatusWait(0));
        Assert.False(Cached(rig));
        Assert.Equal(2u, rig.StatusAt(0));
        Assert.Equal(2, rig.Head);
        Assert.Equal(2UL * (ulong)rig.Width, rig.Read64(Reg.Iqh));
        Assert.Equal(0u, rig.Fsts);
        Assert.Equal(2UL, rig.Unit.DescriptorFetches);
    }

    [Fact]
    public void IqtWrite_WhileQueuedInvalidationIsDisabled_ProcessesNothingUntilEnabled()
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Write64(Reg.Iqa, VtdRig.QueueBase | (1UL << 11));
        rig.Put(0, VtdRig.StatusWait(0, 7));
        rig.Write32(Reg.Iqt, 32);
        Assert.Equal(0u, rig.StatusAt(0));
        Assert.Equal(0UL, rig.Read64(Reg.Iqh));
        rig.Write32(Reg.Gcmd, Reg.Qie); // tail already programmed (as Windows does): processed at enable
        Assert.Equal(Reg.Qie, rig.Read32(Reg.Gsts) & Reg.Qie);
        Assert.Equal(7u, rig.StatusAt(0));
        Assert.Equal(32UL, rig.Read64(Reg.Iqh));
    }

    [Fact]
    public void Disable_ResetsIqhToZero_KeepsIqt()
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Enable();
        rig.Submit(VtdRig.StatusWait(0), VtdRig.StatusWait(4));
        rig.Disable();
        Assert.Equal(0u, rig.Read32(Reg.Gsts) & Reg.Qie);
        Assert.Equal(0UL, rig.Read64(Reg.Iqh));
        Assert.Equal(64UL, rig.Read64(Reg.Iqt));
    }

    [Fact]
    public void Iqa_IsLatchedWhileEnabled_WritesAreIgnored()
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Enable(wide: true, qs: 1);
        ulong before = rig.Read64(Reg.Iqa);
        rig.Write64(Reg.Iqa, 0xDEAD_0000);
        Assert.Equal(before, rig.Read64(Reg.Iqa));
        rig.Disable();
        rig.Write64(Reg.Iqa, 0xDEAD_0000UL | 0x7F8 | (1UL << 11) | 3); // reserved bits 10:3 read 0
        Assert.Equal(0xDEAD_0000UL | (1UL << 11) | 3, rig.Read64(Reg.Iqa));
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(true, 1)]
    [InlineData(false, 2)]
    public void Submit_AcrossTheEndOfTheQueue_WrapsToSlotZero(bool wide, int qs)
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Enable(wide, qs);
        int slots = rig.Slots;
        Assert.Equal((4096 << qs) / rig.Width, slots);
        // Move head and tail to the last two slots with no-op waits.
        for (int i = 0; i < slots - 2; i++)
        {
            rig.Put(i, Dsc.Wait(sw: false));
        }

        rig.Write32(Reg.Iqt, (uint)((slots - 2) * rig.Width));
        Assert.Equal(slots - 2, rig.Head);
        rig.Submit(VtdRig.StatusWait(0, 1), VtdRig.StatusWait(4, 2), VtdRig.StatusWait(8, 3), VtdRig.StatusWait(12, 4));
        Assert.Equal(2, rig.Head);
        Assert.Equal(2, rig.Tail);
        Assert.Equal([1u, 2u, 3u, 4u], [rig.StatusAt(0), rig.StatusAt(4), rig.StatusAt(8), rig.StatusAt(12)]);
        Assert.Equal(0u, rig.Fsts);
    }

    [Theory]
    [InlineData(false, 0, 0x1000u)]
    [InlineData(true, 0, 0x1000u)]
    [InlineData(true, 1, 0x2000u)]
    [InlineData(false, 2, 0x4000u)]
    public void IqtBeyondTheQueue_IsIqe1_AndNothingIsFetched(bool wide, int qs, uint tail)
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Enable(wide, qs);
        rig.Write32(Reg.Iqt, tail);
        Assert.Equal(Reg.Iqe, rig.Fsts);
        Assert.Equal((int)VtdQueueError.InvalidTail, rig.Iqei);
        Assert.Equal(0UL, rig.Read64(Reg.Iqh));
        Assert.Equal(0UL, rig.Unit.DescriptorFetches);
        Assert.Equal([(VtdRig.FeAddress, VtdRig.FeData)], rig.Msis);
    }

    [Fact]
    public void IqtWithBit4InA256BitQueue_IsIqe6()
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Enable(wide: true);
        rig.Write32(Reg.Iqt, 0x30);
        Assert.Equal(Reg.Iqe, rig.Fsts);
        Assert.Equal((int)VtdQueueError.TailNotAligned, rig.Iqei);
        Assert.Equal(0x30UL, rig.Read64(Reg.Iqt)); // the register keeps what software wrote
        Assert.Equal(0UL, rig.Unit.DescriptorFetches);
    }

    [Fact]
    public void A256BitQueueWithoutScalableMode_IsIqe5()
    {
        using var rig = new VtdRig(new VtdOptions { ScalableMode = false }, kind: Kind);
        rig.Enable(wide: true);
        rig.Put(0, VtdRig.StatusWait(0));
        rig.Write32(Reg.Iqt, 32);
        Assert.Equal((Reg.Iqe, (int)VtdQueueError.InvalidWidth), (rig.Fsts, rig.Iqei));
        Assert.Equal(0u, rig.StatusAt(0));
    }

    [Fact]
    public void FetchFromUnmappedMemory_IsIqe2_WithIqhOnTheDescriptor()
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Enable(wide: true, qs: 0, queueBase: VtdRig.Unmapped);
        rig.Write32(Reg.Iqt, 64);
        Assert.Equal((Reg.Iqe, (int)VtdQueueError.FetchError), (rig.Fsts, rig.Iqei));
        Assert.Equal(0UL, rig.Read64(Reg.Iqh));
        Assert.Equal(1UL, rig.Unit.DescriptorFetches);
    }

    [Fact]
    public void PlannedFetchError_IsIqe2_ClearingIqeRefetchesWithTheNextOrdinal()
    {
        var plan = new FaultPlan { FetchErrorOrdinals = [1] };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan }, kind: Kind);
        rig.Enable();
        rig.Engine.Iotlb.Fill(Page);
        rig.Submit(VtdRig.StatusWait(0, 1), Dsc.Iotlb(2, 1), VtdRig.StatusWait(4, 2));
        Assert.Equal(1u, rig.StatusAt(0));
        Assert.Equal((Reg.Iqe, (int)VtdQueueError.FetchError, 1), (rig.Fsts, rig.Iqei, rig.Head));
        Assert.True(Cached(rig));
        rig.Write32(Reg.Fsts, Reg.Iqe); // recovery: clearing IQE resumes at IQH
        Assert.Equal(0u, rig.Fsts);
        Assert.Equal(0, rig.Iqei);
        Assert.False(Cached(rig));
        Assert.Equal(2u, rig.StatusAt(4));
        Assert.Equal(4UL, rig.Unit.DescriptorFetches); // 0, 1 (failed), 2 (retry), 3
    }

    [Fact]
    public void FetchFaultRange_ThatCoversASlot_FailsEveryFetchOfIt()
    {
        var plan = new FaultPlan { FetchErrorRanges = ImmutableArray.Create((VtdRig.QueueBase + 32, VtdRig.QueueBase + 63)) };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan }, kind: Kind);
        rig.Enable();
        rig.Submit(VtdRig.StatusWait(0), VtdRig.StatusWait(4));
        Assert.Equal(1, rig.Head);
        rig.Write32(Reg.Fsts, Reg.Iqe);
        Assert.Equal((Reg.Iqe, 1), (rig.Fsts, rig.Head));
    }

    [Fact]
    public void InvalidDescriptor_StopsTheQueueOnIt_EarlierOnesAreApplied_LaterOnesWaitForRecovery()
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Enable();
        rig.Engine.Iotlb.Fill(Page);
        rig.Submit(VtdRig.StatusWait(0, 1), Dsc.Iotlb(2, 1).With(0, 40), Dsc.Iotlb(2, 1), VtdRig.StatusWait(4, 2));
        Assert.Equal((Reg.Iqe, (int)VtdQueueError.ReservedField, 1), (rig.Fsts, rig.Iqei, rig.Head));
        Assert.Equal((1u, 0u), (rig.StatusAt(0), rig.StatusAt(4)));
        Assert.True(Cached(rig));
        // A further doorbell changes nothing while IQE is set.
        rig.Write32(Reg.Iqt, (uint)(4 * rig.Width));
        Assert.Equal(1, rig.Head);
        // Linux's recovery: overwrite the bad descriptor, clear IQE; processing resumes from IQH.
        rig.Put(1, Dsc.Wait(sw: false));
        rig.Write32(Reg.Fsts, Reg.Iqe);
        Assert.Equal((0u, 4), (rig.Fsts, rig.Head));
        Assert.False(Cached(rig));
        Assert.Equal(2u, rig.StatusAt(4));
        Assert.Single(rig.Msis); // one fault event
    }

    [Fact]
    public void UnknownType_IsIqe3()
    {
        using var rig = new VtdRig(kind: Kind);
        rig.Enable();
        rig.Submit(new VtdDescriptor(0x9, 0));
        Assert.Equal((Reg.Iqe, (int)VtdQueueError.InvalidType, 0), (rig.Fsts, rig.Iqei, rig.Head));
    }

    [Fact]
    public void ScalableModeWithA128BitQueue_EveryDescriptorIsIqe3()
    {
        using var rig = new VtdRig(kind: Kind);
        rig.SetTranslationMode(1);
        rig.Enable(wide: false);
        rig.Submit(VtdRig.StatusWait(0));
        Assert.Equal((Reg.Iqe, (int)VtdQueueError.InvalidType), (rig.Fsts, rig.Iqei));
        rig.Disable();
        rig.Write32(Reg.Fsts, Reg.Iqe);
        rig.Enable(wide: true);
        rig.Submit(VtdRig.StatusWait(0, 5));
        Assert.Equal((0u, 5u), (rig.Fsts, rig.StatusAt(0)));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void ReservedTranslationMode_EveryDescriptorIsIqe7(int ttm)
    {
        using var rig = new VtdRig(kind: Kind);
        rig.SetTranslationMode(ttm);
        rig.Enable();
        rig.Submit(VtdRig.StatusWait(0));
        Assert.Equal((Reg.Iqe, (int)VtdQueueError.InvalidTranslationMode), (rig.Fsts, rig.Iqei));
    }

    [Fact]
    public void ScalableTranslationModeWithoutSmts_IsIqe7()
    {
        using var rig = new VtdRig(new VtdOptions { ScalableMode = false }, kind: Kind);
        rig.SetTranslationMode(1);
        rig.Enable(wide: false);
        rig.Submit(VtdRig.StatusWait(0));
        Assert.Equal((int)VtdQueueError.InvalidTranslationMode, rig.Iqei);
    }

    [Fact]
    public void LongQueue_LargerThanOneBatch_IsProcessedInOrder()
    {
        using var rig = new VtdRig(new VtdOptions { Engine = new EngineOptions { ConfigCacheCapacity = 1024 } }, kind: Kind);
        rig.Enable(wide: false, qs: 2); // 1024 slots
        var many = new List<VtdDescriptor>();
        for (int i = 0; i < 600; i++)
        {
            many.Add(Dsc.Cc(3, sid: (ushort)i, fm: 2)); // four engine descriptors each
        }

        many.Add(VtdRig.StatusWait(0, 9));
        for (int i = 0; i < 600; i++)
        {
            rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, (uint)i, AddressSpace.None, 1, 1));
        }

        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, 0x400, AddressSpace.None, 1, 1));
        rig.Submit([.. many]);
        Assert.Equal((0u, 9u, 601), (rig.Fsts, rig.StatusAt(0), rig.Head));
        Assert.Equal([new ConfigEntry(ConfigKinds.Context, 0x400, AddressSpace.None, 1, 1)], rig.Engine.ConfigCache.ToArray());
    }
}

/// <summary>Every VT-d queue test again, over <see cref="NativeGuestMemory"/>.</summary>
public sealed class VtdQueueTestsOverNativeMemory : VtdQueueTests
{
    /// <inheritdoc/>
    protected override GuestMemoryKind Kind => GuestMemoryKind.Native;
}

/// <summary>Every VT-d queue test again, over <see cref="CallbackGuestMemory"/>.</summary>
public sealed class VtdQueueTestsOverCallbackMemory : VtdQueueTests
{
    /// <inheritdoc/>
    protected override GuestMemoryKind Kind => GuestMemoryKind.Callback;
}
