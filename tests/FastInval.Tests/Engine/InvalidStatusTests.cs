using FastInval.Smmu;
using FastInval.Tests.Smmu;
using FastInval.Tests.Uapi;
using FastInval.Tests.Vtd;
using FastInval.Uapi;
using FastInval.Vtd;

namespace FastInval.Tests.Engine;

/// <summary>
/// An <see cref="InvalidationStatus.Invalid"/> engine status is a FastInval bug (the decoders never produce a malformed
/// descriptor): every front end asserts in debug builds, counts it and reports the architecture's internal error. The
/// status is provoked through the units' internal test hook, which overwrites the first decoded descriptor with one
/// the engine refuses (the default descriptor, scope None).
/// </summary>
public class InvalidStatusTests
{
    private static void Corrupt(Span<InvalidationDescriptor> batch) => batch[0] = default;

    /// <summary>Debug builds of FastInval assert (throw) at the Invalid status instead of reporting it.</summary>
    private static readonly bool Debug = IsDebugBuild();

    private static bool IsDebugBuild()
    {
#if DEBUG
        return true;
#else
        return false;
#endif
    }

    [Fact]
    public void VtdQueue_InvalidStatus_IsCounted_AndStopsTheQueueWithIqe_BeforeTheWait()
    {
        using var rig = new VtdRig();
        rig.Enable();
        Assert.Equal(FillResult.Inserted, rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x0A10, AddressSpace.None, 0x4000, 0x8000)));
        rig.Unit.TestBatchHook = Corrupt;
        if (Debug)
        {
            Assert.Throws<InvalidOperationException>(() => rig.Submit(Dsc.Iotlb(1), Dsc.DevTlb(0x0A10, 0x4000), VtdRig.StatusWait(0, 2)));
            return;
        }

        rig.Submit(Dsc.Iotlb(1), Dsc.DevTlb(0x0A10, 0x4000), VtdRig.StatusWait(0, 2));
        Assert.Equal(1UL, rig.Unit.InternalErrors);
        Assert.Equal(Reg.Iqe, rig.Fsts);
        Assert.Equal(0, rig.Iqei);
        Assert.Equal(2, rig.Head);                                              // on the wait, which did not run
        Assert.Equal(0u, rig.StatusAt(0));
        Assert.False(rig.Engine.DeviceTlb.TryLookup(0x0A10, AddressSpace.None, 0x4000, out _)); // the rest of the run ran
        rig.Unit.TestBatchHook = null;
        rig.Write32(Reg.Fsts, Reg.Iqe);                                        // recovery: the wait completes
        Assert.Equal((0u, 2u), (rig.Fsts, rig.StatusAt(0)));
        Assert.Equal(1UL, rig.Unit.InternalErrors);
    }

    [Fact]
    public void VtdQueue_WithoutTheHook_CountsNothing()
    {
        using var rig = new VtdRig();
        rig.Enable();
        rig.Submit(Dsc.Iotlb(1), VtdRig.StatusWait(0, 2));
        Assert.Equal((0UL, 0u, 2u), (rig.Unit.InternalErrors, rig.Fsts, rig.StatusAt(0)));
    }

    [Fact]
    public void SmmuQueue_InvalidStatus_IsCounted_AndTheNextSyncIsCerrorIll_WithoutItsSignal()
    {
        using var rig = new SmmuRig();
        rig.Smmu.TestBatchHook = Corrupt;
        if (Debug)
        {
            Assert.Throws<InvalidOperationException>(() => rig.Submit(Cmd.NhVa(1, 2, 0x1000), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 5)));
            return;
        }

        rig.Submit(Cmd.NhVa(1, 2, 0x1000), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 5));
        Assert.Equal(1UL, rig.Smmu.InternalErrors);
        Assert.Equal(1u, rig.ConsIndex);                                        // on the CMD_SYNC
        Assert.Equal((uint)SmmuCommandError.Illegal, rig.ConsError);
        Assert.True(rig.ErrorActive);
        Assert.Empty(rig.Msis);
        Assert.DoesNotContain(SmmuInterrupt.CommandSync, rig.Wired);
        rig.Smmu.TestBatchHook = null;
        rig.Acknowledge();                                                      // the retried SYNC completes
        Assert.Equal(2u, rig.ConsIndex);
        Assert.Equal([(SmmuRig.MsiRegion, 5u)], rig.Msis);
    }

    [Fact]
    public void IommufdVtd_InvalidStatus_IsEio_WithEntryNumAtTheFailingEntry()
    {
        using var s = new VtdSetup();
        s.FillPages(4);
        s.U.Fd.TestBatchHook = batch => batch[2] = default;                    // entry 1 (two descriptors per entry: ATS)
        var entries = new VtdEntries(s.U, 3).Set(0, 0x0000, 1).Set(1, 0x1000, 1).Set(2, 0x2000, 1);
        uint n = 3;
        if (Debug)
        {
            Assert.Throws<InvalidOperationException>(() => s.Invalidate(entries, ref n));
            return;
        }

        Assert.Equal(-Errno.EIO, s.Invalidate(entries, ref n));
        Assert.Equal(1u, n);
        Assert.Equal(1UL, s.U.Fd.InternalErrors);
        Assert.False(s.Cached(0x0000));
    }

    [Fact]
    public void IommufdSmmu_InvalidStatus_IsEio_WithEntryNumCountingOnlyCommandsBeforeItsBatch()
    {
        using var s = new SmmuSetup();
        s.FillStage1(s.Vmid, 7, 4);
        s.U.Fd.TestBatchHook = Corrupt;
        uint n = 2;
        if (Debug)
        {
            Assert.Throws<InvalidOperationException>(() => s.Invalidate(ref n, Cmd.NhVa(0, 7, 0x1000), Cmd.NhVa(0, 7, 0x2000)));
            return;
        }

        Assert.Equal(-Errno.EIO, s.Invalidate(ref n, Cmd.NhVa(0, 7, 0x1000), Cmd.NhVa(0, 7, 0x2000)));
        Assert.Equal(0u, n);
        Assert.Equal(1UL, s.U.Fd.InternalErrors);
        Assert.True(s.Cached(s.Vmid, 7, 0x1000));                               // the corrupted one changed nothing
        Assert.False(s.Cached(s.Vmid, 7, 0x2000));                              // the rest of its batch ran
    }
}
