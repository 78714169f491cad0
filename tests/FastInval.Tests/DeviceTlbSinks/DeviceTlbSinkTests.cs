using FastInval.AmdVi;
using FastInval.Smmu;
using FastInval.Tests.AmdVi;
using FastInval.Tests.Smmu;
using FastInval.Tests.Vtd;
using FastInval.Vtd;
using Microsoft.Extensions.Time.Testing;
using static FastInval.Smmu.SmmuRegisters;

namespace FastInval.Tests.DeviceTlbSinks;

/// <summary>Device-TLB invalidations answered by devices: the VT-d wait and the SMMUv3 CMD_SYNC are held until every
/// earlier request is answered, answers arrive out of order from other threads, and ITE / ICE / CERROR_ATC_INV_SYNC come
/// from the answers and the time-out.</summary>
public sealed class DeviceTlbSinkTests
{
    private const ushort SidA = 0x10, SidB = 0x20;
    private const ulong PageA = 0x4000, PageB = 0x8000;

    private static DeviceTlbSinkOptions Parked(ParkedSink sink, TimeProvider? time = null, TimeSpan? timeout = null, int max = 256) => new()
    {
        Sink = sink,
        TimeProvider = time ?? TimeProvider.System,
        Timeout = timeout ?? Timeout.InfiniteTimeSpan,
        MaxOutstanding = max,
    };

    private static VtdRig VtdWith(DeviceTlbSinkOptions sink)
    {
        var rig = new VtdRig(new VtdOptions { DeviceTlbSink = sink });
        rig.Enable();
        Assert.Equal(FillResult.Inserted, rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(SidA, AddressSpace.None, PageA, 0x1_0000)));
        Assert.Equal(FillResult.Inserted, rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(SidB, AddressSpace.None, PageB, 0x2_0000)));
        return rig;
    }

    private static bool Cached(InvalidationEngine e, uint sid, ulong page) => e.DeviceTlb.TryLookup(sid, AddressSpace.None, page, out _);

    private static int CompletionMsis(VtdRig rig) => rig.Msis.Count(m => m.Address == VtdRig.IeAddress);

    private static int FaultMsis(VtdRig rig) => rig.Msis.Count(m => m.Address == VtdRig.FeAddress);

    [Fact]
    public void Vtd_WaitIsHeldUntilEveryEarlierRequestIsAnsweredOutOfOrderFromOtherThreads()
    {
        var sink = new ParkedSink();
        using VtdRig rig = VtdWith(Parked(sink));
        var records = new List<InvalidationRecord>();
        using NotifierSubscription sub = rig.Engine.Notifiers.Subscribe(r =>
        {
            lock (records)
            {
                records.AddRange(r);
            }
        });
        rig.Submit(Dsc.DevTlb(SidA, PageA), Dsc.DevTlb(SidB, PageB), VtdRig.StatusWait(0, data: 7, iflag: true));

        IReadOnlyList<DeviceTlbRequest> requests = sink.Requests;
        Assert.Equal(2, requests.Count);
        Assert.Equal([SidA, SidB], requests.Select(r => r.Descriptor.SourceId));
        Assert.Equal([0UL, 1UL], requests.Select(r => r.Index));
        Assert.All(requests, r => Assert.Equal(InvalidationSource.VtdQueue, r.Source));
        Assert.All(requests, r => Assert.Equal(InvalidationScope.DeviceTlb, r.Descriptor.Scope));
        Assert.NotEqual(0UL, requests[0].Ticket);
        Assert.NotEqual(requests[0].Ticket, requests[1].Ticket);
        Assert.Equal(requests[0].Ordinal + 1, requests[1].Ordinal);

        // Held: IQH on the wait, no status write, no completion event; the devices' entries are still cached.
        Assert.Equal(2, rig.Head);
        Assert.Equal(0u, rig.StatusAt(0));
        Assert.Equal(0u, rig.Read32(Reg.Ics));
        Assert.Equal(0, CompletionMsis(rig));
        Assert.True(Cached(rig.Engine, SidA, PageA));
        Assert.Throws<InvalidOperationException>(() => rig.Unit.SaveState(new byte[VtdIommu.StateSize]));

        Assert.True(sink.AnswerOnOtherThread(1, DeviceTlbFault.None)); // the later one first
        Assert.Equal(2, rig.Head);
        Assert.Equal(0u, rig.StatusAt(0));
        Assert.False(Cached(rig.Engine, SidB, PageB));
        Assert.True(Cached(rig.Engine, SidA, PageA));

        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.None));
        Assert.Equal(3, rig.Head);
        Assert.Equal(rig.Tail, rig.Head);
        Assert.Equal(7u, rig.StatusAt(0));
        Assert.Equal(Reg.Iwc, rig.Read32(Reg.Ics));
        Assert.Equal(1, CompletionMsis(rig));
        Assert.False(Cached(rig.Engine, SidA, PageA));
        Assert.Equal(0u, rig.Fsts);
        lock (records)
        {
            Assert.Equal([SidB, SidA], records.Select(r => r.Descriptor.SourceId));
            Assert.All(records, r => Assert.Equal(InvalidationStatus.Ok, r.Status));
        }

        Assert.False(sink.AnswerOnOtherThread(0, DeviceTlbFault.None)); // answered already
        Assert.False(sink.Completion!.Complete(0, DeviceTlbFault.None));  // never issued
        Assert.False(sink.Completion!.Complete(requests[1].Ticket + 1, DeviceTlbFault.None));
        Assert.Equal(VtdIommu.StateSize, rig.Unit.SaveState(new byte[VtdIommu.StateSize]));
    }

    [Fact]
    public void VtdTimeOut_AnswerAbortsTheHeldWaitAtOnceWithIteAndKeepsThatDeviceSEntries()
    {
        var sink = new ParkedSink();
        using VtdRig rig = VtdWith(Parked(sink));
        rig.Submit(Dsc.DevTlb(SidA, PageA), Dsc.DevTlb(SidB, PageB), VtdRig.StatusWait(0, data: 7, iflag: true),
                   Dsc.DevTlb(SidB, PageB));
        Assert.Equal(2, sink.Requests.Count); // nothing after the held wait is fetched

        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.Timeout)); // B is still outstanding
        Assert.Equal(3, rig.Head);                                        // IQH past the aborted wait
        Assert.Equal(Reg.Ite, rig.Fsts);
        Assert.Equal(SidA, rig.Itesid);
        Assert.Equal(0u, rig.StatusAt(0));
        Assert.Equal(0, CompletionMsis(rig));
        Assert.Equal(1, FaultMsis(rig));
        Assert.True(Cached(rig.Engine, SidA, PageA));                     // a device that did not answer keeps its entries

        Assert.True(sink.AnswerOnOtherThread(1, DeviceTlbFault.None));    // B answers late: its entries go, nothing else
        Assert.False(Cached(rig.Engine, SidB, PageB));
        Assert.Equal(3, rig.Head);
        Assert.Equal(2, sink.Requests.Count);                             // ITE stops fetching

        rig.Write32(Reg.Fsts, Reg.Ite);                                   // software clears ITE: the queue goes on
        Assert.Equal(0u, rig.Fsts);
        Assert.Equal(0, rig.Itesid);
        Assert.Equal(3, sink.Requests.Count);
        Assert.Equal(4, rig.Head);
    }

    [Fact]
    public void VtdCompletionError_RaisesIceWhenItArrivesAndTheWaitStillCompletes()
    {
        var sink = new ParkedSink();
        using VtdRig rig = VtdWith(Parked(sink));
        rig.Submit(Dsc.DevTlb(SidA, PageA), Dsc.DevTlb(SidB, PageB), VtdRig.StatusWait(4, data: 9));
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.CompletionError));
        Assert.Equal(Reg.Ice, rig.Fsts);
        Assert.Equal(SidA, rig.Icesid);
        Assert.False(Cached(rig.Engine, SidA, PageA)); // a malformed completion still means the device invalidated
        Assert.Equal(2, rig.Head);                     // held for B
        Assert.True(sink.AnswerOnOtherThread(1, DeviceTlbFault.None));
        Assert.Equal(9u, rig.StatusAt(4));
        Assert.Equal(3, rig.Head);
        Assert.Equal(Reg.Ice, rig.Fsts);               // ICE does not stop the queue
    }

    [Fact]
    public void VtdSilenceBecomesIteWhenTheTimeOut_PassesAndALateAnswerIsRefused()
    {
        var time = new FakeTimeProvider();
        var sink = new ParkedSink();
        using VtdRig rig = VtdWith(Parked(sink, time, TimeSpan.FromMilliseconds(10)));
        rig.Submit(Dsc.DevTlb(SidA, PageA), VtdRig.StatusWait(0, data: 5));
        time.Advance(TimeSpan.FromMilliseconds(9));
        Assert.Equal(1, rig.Head);
        Assert.Equal(0u, rig.Fsts);

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(2, rig.Head);
        Assert.Equal(Reg.Ite, rig.Fsts);
        Assert.Equal(SidA, rig.Itesid);
        Assert.Equal(0u, rig.StatusAt(0));
        Assert.True(Cached(rig.Engine, SidA, PageA));
        Assert.False(sink.AnswerOnOtherThread(0, DeviceTlbFault.None));

        // After recovery, an answered request releases its wait before the time-out, and the timer stays quiet.
        rig.Write32(Reg.Fsts, Reg.Ite);
        rig.Submit(Dsc.DevTlb(SidB, PageB), VtdRig.StatusWait(8, data: 6));
        Assert.True(sink.AnswerOnOtherThread(1, DeviceTlbFault.None));
        Assert.Equal(6u, rig.StatusAt(8));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0u, rig.Fsts);
    }

    [Fact]
    public void VtdTimeOutsOfSeveralRequests_ReportTheFirstAndAnswersAfterItChangeNothing()
    {
        var time = new FakeTimeProvider();
        var sink = new ParkedSink();
        using VtdRig rig = VtdWith(Parked(sink, time, TimeSpan.FromMilliseconds(10)));
        rig.Submit(Dsc.DevTlb(SidA, PageA));
        time.Advance(TimeSpan.FromMilliseconds(5));
        rig.Submit(Dsc.DevTlb(SidB, PageB), VtdRig.StatusWait(0, data: 5));
        time.Advance(TimeSpan.FromMilliseconds(5));     // A's deadline: B has 5 ms left
        Assert.Equal(Reg.Ite, rig.Fsts);
        Assert.Equal(SidA, rig.Itesid);
        Assert.Equal(3, rig.Head);
        time.Advance(TimeSpan.FromMilliseconds(5));     // B's deadline: ITESID keeps the first
        Assert.Equal(SidA, rig.Itesid);
        Assert.True(Cached(rig.Engine, SidB, PageB));
        Assert.Equal(1, FaultMsis(rig));
    }

    [Fact]
    public void VtdQueue_StopsBeforeADeviceTlbInvalidationWhenEveryTicketIsOutAndGoesOnAsTheyReturn()
    {
        var sink = new ParkedSink();
        using VtdRig rig = VtdWith(Parked(sink, max: 16));
        var batch = new List<VtdDescriptor>();
        for (int i = 0; i < 20; i++)
        {
            batch.Add(Dsc.DevTlb((ushort)(0x100 + i), PageA));
        }

        batch.Add(VtdRig.StatusWait(0, data: 3));
        rig.Submit([.. batch]);
        Assert.Equal(16, sink.Requests.Count);
        Assert.Equal(16, rig.Head);
        Assert.True(sink.AnswerOnOtherThread(3, DeviceTlbFault.None));
        Assert.Equal(17, sink.Requests.Count);
        Assert.Equal(17, rig.Head);
        for (int i = 0; i < 17; i++)
        {
            if (i != 3)
            {
                Assert.True(sink.AnswerOnOtherThread(i, DeviceTlbFault.None));
            }
        }

        Assert.Equal(20, sink.Requests.Count);
        Assert.Equal(20, rig.Head); // on the wait: the last three are out
        for (int i = 17; i < 20; i++)
        {
            Assert.True(sink.AnswerOnOtherThread(i, DeviceTlbFault.None));
        }

        Assert.Equal(21, rig.Head);
        Assert.Equal(3u, rig.StatusAt(0));
        Assert.Equal(Enumerable.Range(0x100, 20).Select(i => (uint)i), sink.Requests.Select(r => r.Descriptor.SourceId));
    }

    [Fact]
    public void Vtd_ResetDropsOutstandingRequestsRemovesTheirEntriesAndRefusesTheirAnswers()
    {
        var sink = new ParkedSink();
        using VtdRig rig = VtdWith(Parked(sink));
        var engine = new InvalidationEngine(new EngineOptions { DeviceTlbCapacity = 64, IotlbCapacity = 64, ConfigCacheCapacity = 64 });
        using var unit = new VtdIommu(rig.Space, engine, new VtdOptions { DeviceTlbSink = Parked(sink) });
        engine.DeviceTlb.Fill(new DeviceTlbEntry(SidA, AddressSpace.None, PageA, 0x1_0000));
        unit.WriteRegister(Reg.Iqa, VtdRig.QueueBase | (1UL << 11), 8);
        unit.WriteRegister(Reg.Gcmd, Reg.Qie, 4);
        rig.Put(0, Dsc.DevTlb(SidA, PageA));
        rig.Put(1, VtdRig.StatusWait(0, data: 1));
        unit.WriteRegister(Reg.Iqt, 2 * 32, 4);
        Assert.Single(sink.Requests);
        Assert.Equal(32UL, unit.ReadRegister(Reg.Iqh, 8));

        unit.Reset();
        Assert.False(engine.DeviceTlb.TryLookup(SidA, AddressSpace.None, PageA, out _)); // nothing stale survives a reset
        Assert.False(sink.AnswerOnOtherThread(0, DeviceTlbFault.None));
        Assert.Equal(0UL, unit.ReadRegister(Reg.Iqh, 8));
        Assert.Equal(VtdIommu.StateSize, unit.SaveState(new byte[VtdIommu.StateSize]));
        engine.Dispose();
    }

    [Fact]
    public void Vtd_AnswersAfterDisposeAreRefusedAndAThrowingSinkLosesNothing()
    {
        var sink = new ParkedSink { ThrowOnce = true };
        VtdRig rig = VtdWith(Parked(sink));
        Assert.Throws<InvalidOperationException>(() => rig.Submit(Dsc.DevTlb(SidA, PageA), Dsc.DevTlb(SidB, PageB), VtdRig.StatusWait(0, data: 2)));
        Assert.Equal(2, sink.Requests.Count); // the second request went out although the first Submit threw
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.None));
        Assert.True(sink.AnswerOnOtherThread(1, DeviceTlbFault.None));
        rig.Write32(Reg.Iqt, (uint)(3 * rig.Width)); // the guest rings again: the batch runs again, the wait completes
        Assert.Equal(4, sink.Requests.Count);
        Assert.True(sink.AnswerOnOtherThread(2, DeviceTlbFault.None));
        Assert.True(sink.AnswerOnOtherThread(3, DeviceTlbFault.None));
        Assert.Equal(2u, rig.StatusAt(0));

        rig.Submit(Dsc.DevTlb(SidA, PageA));
        rig.Dispose();
        Assert.False(sink.AnswerOnOtherThread(4, DeviceTlbFault.None));
    }

    [Fact]
    public void VtdDisablingTheQueue_DropsAHeldWait()
    {
        var sink = new ParkedSink();
        using VtdRig rig = VtdWith(Parked(sink));
        rig.Submit(Dsc.DevTlb(SidA, PageA), VtdRig.StatusWait(0, data: 2));
        rig.Disable();
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.None));
        Assert.Equal(0u, rig.StatusAt(0));
        Assert.False(Cached(rig.Engine, SidA, PageA));
        Assert.Equal(0, rig.Head);
    }

    [Fact]
    public void Options_AreChecked()
    {
        var sink = new ParkedSink();
        var memory = new GuestMemory();
        Assert.Throws<ArgumentOutOfRangeException>(() => new VtdIommu(memory, new VtdOptions { DeviceTlbSink = Parked(sink, max: 15) }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new VtdIommu(memory, new VtdOptions { DeviceTlbSink = Parked(sink, max: 100) }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new VtdIommu(memory, new VtdOptions { DeviceTlbSink = Parked(sink, max: 1 << 17) }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SmmuV3(memory, new SmmuOptions { DeviceTlbSink = Parked(sink, timeout: TimeSpan.Zero) }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SmmuV3(memory, new SmmuOptions { DeviceTlbSink = Parked(sink, timeout: TimeSpan.FromTicks(-5)) }));
        Assert.Throws<ArgumentNullException>(() => new VtdIommu(memory, new VtdOptions { DeviceTlbSink = new DeviceTlbSinkOptions { Sink = null! } }));
        Assert.Throws<ArgumentNullException>(() => new VtdIommu(memory, new VtdOptions { DeviceTlbSink = new DeviceTlbSinkOptions { Sink = sink, TimeProvider = null! } }));
        using var unit = new VtdIommu(memory, new VtdOptions { DeviceTlbSink = Parked(sink, max: 65536, timeout: TimeSpan.FromDays(365)) });
        Assert.Equal(TimeSpan.FromSeconds(1), new DeviceTlbSinkOptions { Sink = sink }.Timeout);
    }

    [Fact]
    public void CompletionOutcome_MustBeDefined()
    {
        var sink = new ParkedSink();
        using VtdRig rig = VtdWith(Parked(sink));
        rig.Submit(Dsc.DevTlb(SidA, PageA));
        Assert.Throws<ArgumentOutOfRangeException>(() => sink.Completion!.Complete(sink.Requests[0].Ticket, (DeviceTlbFault)7));
        Assert.True(sink.Completion!.Complete(sink.Requests[0].Ticket, DeviceTlbFault.None));
    }

    // ---- SMMUv3 ----------------------------------------------------------------------------------------------

    private static SmmuRig SmmuWith(DeviceTlbSinkOptions sink)
    {
        var rig = new SmmuRig(options: new SmmuOptions { DeviceTlbSink = sink });
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(SidA, AddressSpace.None, PageA, 0x1_0000));
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(SidB, AddressSpace.None, PageB, 0x2_0000));
        return rig;
    }

    [Fact]
    public void SmmuCmdSync_IsHeldOnConsUntilTheAtcAnswersAndItsMsiFollowsCons()
    {
        var sink = new ParkedSink();
        using SmmuRig rig = SmmuWith(Parked(sink));
        rig.Submit(Cmd.AtcInv(SidA, PageA, 0), Cmd.AtcInv(SidB, PageB, 0), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 0x55));
        Assert.Equal(2, sink.Requests.Count);
        Assert.All(sink.Requests, r => Assert.Equal(InvalidationSource.SmmuCommandQueue, r.Source));
        Assert.Equal(2u, rig.ConsIndex);
        Assert.Empty(rig.Msis);
        Assert.Empty(rig.Wired);
        Assert.Throws<InvalidOperationException>(() => rig.Smmu.SaveState(new byte[SmmuV3.StateSize]));

        Assert.True(sink.AnswerOnOtherThread(1, DeviceTlbFault.None));
        Assert.Equal(2u, rig.ConsIndex);
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.None));
        Assert.Equal(3u, rig.ConsIndex);
        Assert.Equal([(SmmuRig.MsiRegion, 0x55u)], rig.Msis);
        Assert.Equal([3u], rig.ConsAtMsi.Select(c => c & 0xF)); // CONS had passed the CMD_SYNC when its MSI was seen
        Assert.Equal(0u, rig.ConsError);
        Assert.False(Cached(rig.Engine, SidA, PageA));
        Assert.False(Cached(rig.Engine, SidB, PageB));
    }

    [Fact]
    public void SmmuAtcTimeOut_FailsTheHeldSyncWithCerrorAtcInvSyncAndARetryCompletes()
    {
        var sink = new ParkedSink();
        using SmmuRig rig = SmmuWith(Parked(sink));
        rig.Submit(Cmd.AtcInv(SidA, PageA, 0), Cmd.AtcInv(SidB, PageB, 0), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 0x55));
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.Timeout)); // B still outstanding: the SYNC fails now
        Assert.Equal(2u, rig.ConsIndex);
        Assert.Equal(3u, rig.ConsError);                                  // CERROR_ATC_INV_SYNC
        Assert.True(rig.ErrorActive);
        Assert.Empty(rig.Msis);
        Assert.True(Cached(rig.Engine, SidA, PageA));

        Assert.True(sink.AnswerOnOtherThread(1, DeviceTlbFault.None));
        rig.Acknowledge();                                                // the driver retries the SYNC
        Assert.Equal(3u, rig.ConsIndex);
        Assert.Equal([(SmmuRig.MsiRegion, 0x55u)], rig.Msis);
    }

    [Fact]
    public void SmmuCompletionError_IsNotAnErrorOfTheSync()
    {
        var sink = new ParkedSink();
        using SmmuRig rig = SmmuWith(Parked(sink));
        rig.Submit(Cmd.AtcInv(SidA, PageA, 0), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 1));
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.CompletionError));
        Assert.Equal(2u, rig.ConsIndex);
        Assert.Equal(0u, rig.ConsError);
        Assert.False(Cached(rig.Engine, SidA, PageA));
    }

    [Fact]
    public void SmmuTimer_TimesOutASilentAtc()
    {
        var time = new FakeTimeProvider();
        var sink = new ParkedSink();
        using SmmuRig rig = SmmuWith(Parked(sink, time, TimeSpan.FromMilliseconds(50)));
        rig.Submit(Cmd.AtcInv(SidA, PageA, 0), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 1));
        time.Advance(TimeSpan.FromMilliseconds(49));
        Assert.Equal(0u, rig.ConsError);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(3u, rig.ConsError);
        Assert.Equal(1u, rig.ConsIndex);
    }

    [Fact]
    public void SmmuQueueStallsOnTicketsAndDisablingTheQueue_DropsAHeldSync()
    {
        var sink = new ParkedSink();
        using SmmuRig rig = new(log2Size: 6, options: new SmmuOptions { DeviceTlbSink = Parked(sink, max: 16) });
        var commands = new List<SmmuCommand>();
        for (int i = 0; i < 18; i++)
        {
            commands.Add(Cmd.AtcInv((uint)(0x200 + i), PageA, 0));
        }

        commands.Add(SmmuRig.SyncIrq(SmmuRig.MsiRegion, 9));
        rig.Submit([.. commands]);
        Assert.Equal(16, sink.Requests.Count);
        Assert.Equal(16u, rig.ConsIndex);
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.None));
        Assert.True(sink.AnswerOnOtherThread(1, DeviceTlbFault.None));
        Assert.Equal(18, sink.Requests.Count);
        Assert.Equal(18u, rig.ConsIndex); // on the CMD_SYNC

        rig.Smmu.WriteRegister(Cr0, Cr0SmmuEn, 4); // queue off: the held SYNC is dropped and fetched again later
        for (int i = 2; i < 18; i++)
        {
            Assert.True(sink.AnswerOnOtherThread(i, DeviceTlbFault.None));
        }

        Assert.Empty(rig.Msis);
        rig.Smmu.WriteRegister(Cr0, Cr0SmmuEn | Cr0CmdqEn, 4);
        Assert.Equal([(SmmuRig.MsiRegion, 9u)], rig.Msis);
        Assert.Equal(19u, rig.ConsIndex);
    }

    [Fact]
    public void Sink_AnswersInsideSubmitBehaveAsTheBuiltinPath()
    {
        var sink = new ImmediateSink(DeviceTlbFault.Timeout);
        using VtdRig rig = VtdWith(new DeviceTlbSinkOptions { Sink = sink });
        rig.Submit(Dsc.DevTlb(SidA, PageA), VtdRig.StatusWait(0, data: 1), Dsc.DevTlb(SidB, PageB));
        Assert.Equal(1, sink.Count);
        Assert.Equal(2, rig.Head);
        Assert.Equal(Reg.Ite, rig.Fsts);
        Assert.Equal(SidA, rig.Itesid);
        Assert.True(Cached(rig.Engine, SidA, PageA));
    }
}

/// <summary>AMD-Vi's COMPLETION_WAIT is held until the devices answer; the time-out is the one the guest programs in
/// Control.InvTimeOut, and it logs IOTLB_INV_TIMEOUT with the command's address.</summary>
public sealed class AmdViDeviceTlbSinkTests
{
    private static AmdViRig Rig(IDeviceTlbSink sink, TimeProvider? time = null, ulong invTimeOut = 0) =>
        new(new AmdViOptions { DeviceTlbSink = new DeviceTlbSinkOptions { Sink = sink, TimeProvider = time ?? TimeProvider.System } },
            control: AmdViRegisters.ControlEventLogEn | AmdViRegisters.ControlEventIntEn | AmdViRegisters.ControlComWaitIntEn |
                     (invTimeOut << AmdViRegisters.ControlInvTimeOutShift));

    [Fact]
    public void Completion_WaitIsHeldUntilEveryEarlierRequestIsAnswered()
    {
        var sink = new ParkedSink();
        using AmdViRig rig = Rig(sink);
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x4000, 0x4000));
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x20, AddressSpace.None, 0x8000, 0x8000));
        rig.Submit(AmdViCommand.InvalidateIotlbPages(0x10, 0x4000), AmdViCommand.InvalidateIotlbPages(0x20, 0x8000),
                   AmdViCommand.CompletionWait(AmdViRig.StoreBase, 0x1234, interrupt: true));
        Assert.Equal(2, sink.Requests.Count);
        Assert.All(sink.Requests, r => Assert.Equal(InvalidationSource.AmdViCommandBuffer, r.Source));
        Assert.Equal(32UL, rig.Head); // on the wait
        Assert.Equal(0UL, rig.StoreAt(0));
        Assert.Equal(0, rig.Interrupts);

        Assert.True(sink.AnswerOnOtherThread(1, DeviceTlbFault.None));
        Assert.Equal(32UL, rig.Head);
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.CompletionError));
        Assert.Equal(48UL, rig.Head);
        Assert.Equal(0x1234UL, rig.StoreAt(0));
        Assert.Equal(1, rig.Interrupts);
        Assert.Empty(rig.EventLog());
        Assert.False(rig.Engine.DeviceTlb.TryLookup(0x10, AddressSpace.None, 0x4000, out _));
        Assert.False(rig.Engine.DeviceTlb.TryLookup(0x20, AddressSpace.None, 0x8000, out _));
    }

    [Fact]
    public void Silence_TimesOutAfterTheProgrammedInvTimeOutAndTheWaitThenCompletes()
    {
        var time = new FakeTimeProvider();
        var sink = new ParkedSink();
        using AmdViRig rig = Rig(sink, time, invTimeOut: 2); // 10 ms
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x30, AddressSpace.None, 0x4000, 0x4000));
        rig.Submit(AmdViCommand.InvalidateIotlbPages(0x30, 0x4000), AmdViCommand.CompletionWait(AmdViRig.StoreBase, 7));
        time.Advance(TimeSpan.FromMilliseconds(9));
        Assert.Equal(16UL, rig.Head);
        Assert.Empty(rig.EventLog());
        time.Advance(TimeSpan.FromMilliseconds(1));
        AmdViEvent e = Assert.Single(rig.EventLog());
        Assert.Equal(AmdViEventCode.IotlbInvalidationTimeout, e.Code);
        Assert.Equal(0x30, e.DeviceId);
        Assert.Equal(AmdViRig.BufferBase, e.Address); // the INVALIDATE_IOTLB_PAGES in slot 0
        Assert.Equal(32UL, rig.Head);                 // the time-out is how the command completed
        Assert.Equal(7UL, rig.StoreAt(0));
        Assert.True(rig.Engine.DeviceTlb.TryLookup(0x30, AddressSpace.None, 0x4000, out _));
        Assert.False(sink.AnswerOnOtherThread(0, DeviceTlbFault.None));
    }

    [Fact]
    public void InvTimeOutZero_NeverTimesOut()
    {
        var time = new FakeTimeProvider();
        var sink = new ParkedSink();
        using AmdViRig rig = Rig(sink, time, invTimeOut: 0);
        rig.Submit(AmdViCommand.InvalidateIotlbPages(0x30, 0x4000), AmdViCommand.CompletionWait(AmdViRig.StoreBase, 7));
        time.Advance(TimeSpan.FromDays(3));
        Assert.Equal(16UL, rig.Head);
        Assert.Empty(rig.EventLog());
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.Timeout)); // the VMM gives up: the event, then the wait
        Assert.Equal(AmdViEventCode.IotlbInvalidationTimeout, Assert.Single(rig.EventLog()).Code);
        Assert.Equal(7UL, rig.StoreAt(0));
    }

    [Fact]
    public void DisablingTheBuffer_DropsAHeldWaitWhichIsFetchedAgain()
    {
        var sink = new ParkedSink();
        using AmdViRig rig = Rig(sink);
        rig.Submit(AmdViCommand.InvalidateIotlbPages(0x30, 0x4000), AmdViCommand.CompletionWait(AmdViRig.StoreBase, 7));
        rig.Unit.WriteRegister(AmdViRegisters.Control, AmdViRegisters.ControlIommuEn | AmdViRegisters.ControlEventLogEn, 8);
        Assert.True(sink.AnswerOnOtherThread(0, DeviceTlbFault.None));
        Assert.Equal(0UL, rig.StoreAt(0));
        rig.Unit.WriteRegister(AmdViRegisters.Control, AmdViRegisters.ControlIommuEn | AmdViRegisters.ControlEventLogEn | AmdViRegisters.ControlCmdBufEn, 8);
        Assert.Equal(7UL, rig.StoreAt(0));
        Assert.Equal(32UL, rig.Head);
    }
}
