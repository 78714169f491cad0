using FastInval.Vtd;

namespace FastInval.Tests.Vtd;

/// <summary>Wait descriptors, completion and fault events with their masks, and the device-TLB errors ITE and ICE.</summary>
public class VtdEventTests
{
    private const ushort Sid = 0x0A10;
    private static readonly (ulong, uint) FaultMsi = (VtdRig.FeAddress, VtdRig.FeData);
    private static readonly (ulong, uint) CompletionMsi = (VtdRig.IeAddress, VtdRig.IeData);

    private static void FillAtc(VtdRig rig, ushort sid = Sid, ulong address = 0x4000) =>
        Assert.Equal(FillResult.Inserted, rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(sid, AddressSpace.None, address, 0x8000)));

    private static bool AtcCached(VtdRig rig, ushort sid = Sid, ulong address = 0x4000) =>
        rig.Engine.DeviceTlb.TryLookup(sid, AddressSpace.None, address, out _);

    // ---- wait descriptors ------------------------------------------------------------------------------------

    [Fact]
    public void WaitWithStatusWrite_WritesTheDataLittleEndianAtTheAddress()
    {
        using var rig = new VtdRig();
        rig.Enable();
        rig.Submit(VtdRig.StatusWait(8, 0xA1B2_C3D4));
        Assert.Equal([0xD4, 0xC3, 0xB2, 0xA1], rig.Status[8..12]);
        Assert.Equal(0, rig.Status[12]);
        Assert.Empty(rig.Msis);
    }

    [Fact]
    public void WaitStatusAddress_IsTakenModuloTheHostAddressWidth()
    {
        using var rig = new VtdRig(new VtdOptions { HostAddressWidth = 39 });
        rig.Enable();
        rig.Submit(Dsc.Wait(data: 3, addr: (1UL << 45) | (VtdRig.StatusBase + 16)));
        Assert.Equal(3u, rig.StatusAt(16));
    }

    [Fact]
    public void WaitStatusWriteToUnmappedMemory_IsIqe_WithIqhOnTheWait_AndNoCompletionEvent()
    {
        using var rig = new VtdRig();
        rig.Enable();
        FillAtc(rig);
        rig.Submit(Dsc.DevTlb(Sid, 0x4000), Dsc.Wait(data: 1, addr: VtdRig.Unmapped, iflag: true), VtdRig.StatusWait(0, 2));
        Assert.False(AtcCached(rig));                          // what came before the wait has been executed
        Assert.Equal(Reg.Iqe, rig.Fsts);
        Assert.Equal(0, rig.Iqei);                             // no IQEI code describes a failed status write
        Assert.Equal(1, rig.Head);                             // on the wait
        Assert.Equal(0u, rig.StatusAt(0));                     // nothing after it ran
        Assert.Equal(0u, rig.Read32(Reg.Ics));                 // the wait did not complete: no IWC, no completion event
        Assert.Equal([FaultMsi], rig.Msis);
    }

    [Fact]
    public void WaitStatusWriteToUnmappedMemory_RecoversLikeLinux_ByRewritingTheWaitAndClearingIqe()
    {
        using var rig = new VtdRig();
        rig.Enable();
        rig.Submit(Dsc.Wait(data: 1, addr: VtdRig.Unmapped), VtdRig.StatusWait(4, 2));
        Assert.Equal((Reg.Iqe, 0), (rig.Fsts, rig.Head));
        rig.Put(rig.Head, VtdRig.StatusWait(0, 9));            // qi_check_fault: our own wait over the faulting slot
        rig.Write32(Reg.Fsts, Reg.Iqe);
        Assert.Equal((0u, 9u, 2u), (rig.Fsts, rig.StatusAt(0), rig.StatusAt(4)));
        Assert.Equal(rig.Tail, rig.Head);
    }

    [Fact]
    public void WaitWithInterruptFlag_SetsIwc_AndSendsTheCompletionEvent()
    {
        using var rig = new VtdRig();
        rig.Enable();
        rig.Submit(Dsc.Wait(sw: false, iflag: true));
        Assert.Equal(Reg.Iwc, rig.Read32(Reg.Ics));
        Assert.Equal([CompletionMsi], rig.Msis);
        Assert.Equal(0u, rig.Read32(Reg.Iectl) & Reg.InterruptPending);
    }

    [Fact]
    public void WaitWithStatusWriteAndInterrupt_WritesTheStatusBeforeTheInterrupt()
    {
        var seen = new List<uint>();
        var memory = new GuestMemory();
        byte[] queue = new byte[4096], status = new byte[4096];
        memory.Map(0x1000, queue);
        memory.Map(0x8000, status);
        using var unit = new VtdIommu(memory, new VtdOptions { Msi = (_, _) => seen.Add(BitConverter.ToUInt32(status)) });
        unit.WriteRegister(Reg.Iectl, 0, 4);
        unit.WriteRegister(Reg.Iqa, 0x1000 | (1UL << 11), 8);
        unit.WriteRegister(Reg.Gcmd, Reg.Qie, 4);
        Dsc.Wait(sw: true, iflag: true, data: 0x55, addr: 0x8000).Write(queue.AsSpan(0, 32));
        unit.WriteRegister(Reg.Iqt, 32, 4);
        Assert.Equal([0x55u], seen);
    }

    [Fact]
    public void CompletionEvent_WhileIwcIsSet_IsNoNewInterrupt_UntilSoftwareClearsIwc()
    {
        using var rig = new VtdRig();
        rig.Enable();
        rig.Submit(Dsc.Wait(sw: false, iflag: true), Dsc.Wait(sw: false, iflag: true));
        Assert.Single(rig.Msis);
        rig.Write32(Reg.Ics, Reg.Iwc);
        Assert.Equal(0u, rig.Read32(Reg.Ics));
        rig.Submit(Dsc.Wait(sw: false, iflag: true));
        Assert.Equal(2, rig.Msis.Count);
    }

    [Fact]
    public void MaskedCompletionEvent_StaysPending_UnmaskingSendsIt()
    {
        using var rig = new VtdRig(unmaskInterrupts: false);
        rig.Enable();
        Assert.Equal(Reg.InterruptMask, rig.Read32(Reg.Iectl)); // reset value: masked
        rig.Submit(Dsc.Wait(sw: false, iflag: true));
        Assert.Empty(rig.Msis);
        Assert.Equal(Reg.InterruptMask | Reg.InterruptPending, rig.Read32(Reg.Iectl));
        rig.Write32(Reg.Iectl, Reg.InterruptPending); // IP is read-only: writing it does nothing, IM = 0 unmasks
        Assert.Equal([CompletionMsi], rig.Msis);
        Assert.Equal(0u, rig.Read32(Reg.Iectl));
    }

    [Fact]
    public void MaskedCompletionEvent_ClearingIwcClearsThePendingInterrupt()
    {
        using var rig = new VtdRig(unmaskInterrupts: false);
        rig.Enable();
        rig.Submit(Dsc.Wait(sw: false, iflag: true));
        rig.Write32(Reg.Ics, Reg.Iwc);
        Assert.Equal(Reg.InterruptMask, rig.Read32(Reg.Iectl));
        rig.Write32(Reg.Iectl, 0);
        Assert.Empty(rig.Msis);
    }

    [Fact]
    public void CompletionEventAddress_IncludesTheUpperAddressRegister()
    {
        using var rig = new VtdRig();
        rig.Write32(Reg.Ieuaddr, 0x12);
        rig.Write32(Reg.Ieaddr, 0xFEE0_1003); // bits 1:0 read 0
        rig.Enable();
        rig.Submit(Dsc.Wait(sw: false, iflag: true));
        Assert.Equal([(0x12_FEE0_1000UL, VtdRig.IeData)], rig.Msis);
    }

    [Fact]
    public void WaitWithFenceAndPageRequestDrain_CompletesLikeAnyWait()
    {
        using var rig = new VtdRig();
        rig.Enable();
        rig.Submit(Dsc.Wait(sw: true, fn: true, pd: true, data: 4, addr: VtdRig.StatusBase), Dsc.Wait(sw: false, fn: true));
        Assert.Equal((0u, 4u, 2), (rig.Fsts, rig.StatusAt(0), rig.Head));
    }

    // ---- fault events ----------------------------------------------------------------------------------------

    [Fact]
    public void FaultEvent_IsSentOnlyForTheFirstErrorWhileAnyStatusIsSet()
    {
        var plan = new FaultPlan { CompletionErrorOrdinals = [0, 1] };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan });
        rig.Enable();
        rig.Submit(Dsc.DevTlb(Sid), Dsc.DevTlb(0x22), VtdRig.StatusWait(0, 1), new VtdDescriptor(0xF, 0));
        Assert.Equal(Reg.Ice | Reg.Iqe, rig.Fsts);
        Assert.Equal([FaultMsi], rig.Msis);
        Assert.Equal(Sid, rig.Icesid); // the first completion error's source, kept while ICE is set
        rig.Write32(Reg.Fsts, Reg.Ice);
        Assert.Equal(0, rig.Icesid);
        rig.Put(3, Dsc.Wait(sw: false));
        rig.Write32(Reg.Fsts, Reg.Iqe);
        rig.Submit(Dsc.DevTlb(Sid)); // ordinal 2: fine
        Assert.Equal(0u, rig.Fsts);
        rig.Submit(new VtdDescriptor(0xF, 0));
        Assert.Equal(2, rig.Msis.Count); // every status clear again: a new event
    }

    [Fact]
    public void MaskedFaultEvent_StaysPending_UnmaskingSendsIt_ClearingTheStatusCancelsIt()
    {
        using var rig = new VtdRig(unmaskInterrupts: false);
        rig.Enable();
        Assert.Equal(Reg.InterruptMask, rig.Read32(Reg.Fectl));
        rig.Submit(new VtdDescriptor(0xF, 0));
        Assert.Equal(Reg.InterruptMask | Reg.InterruptPending, rig.Read32(Reg.Fectl));
        Assert.Empty(rig.Msis);
        rig.Write32(Reg.Fectl, 0);
        Assert.Equal([FaultMsi], rig.Msis);
        Assert.Equal(0u, rig.Read32(Reg.Fectl));

        rig.Write32(Reg.Fectl, Reg.InterruptMask);
        rig.Put(0, Dsc.Wait(sw: false));
        rig.Write32(Reg.Fsts, Reg.Iqe);
        rig.Submit(new VtdDescriptor(0xF, 0));
        Assert.Equal(Reg.InterruptMask | Reg.InterruptPending, rig.Read32(Reg.Fectl));
        rig.Put(1, Dsc.Wait(sw: false));
        rig.Write32(Reg.Fsts, Reg.Iqe); // the last status cleared: IP cleared, nothing sent
        Assert.Equal(Reg.InterruptMask, rig.Read32(Reg.Fectl));
        rig.Write32(Reg.Fectl, 0);
        Assert.Single(rig.Msis);
    }

    // ---- ITE --------------------------------------------------------------------------------------------------

    [Fact]
    public void DeviceTlbTimeout_AbortsTheNextWait_LeavesTheEntries_IqhPastTheWait()
    {
        var plan = new FaultPlan { TimeoutOrdinals = [0] };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan });
        rig.Enable();
        FillAtc(rig);
        rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0, 0));
        rig.Submit(Dsc.DevTlb(Sid, 0x4000), Dsc.Iotlb(2, 1), VtdRig.StatusWait(0, 1, iflag: true), VtdRig.StatusWait(4, 2));
        Assert.Equal(Reg.Ite, rig.Fsts);
        Assert.Equal(Sid, rig.Itesid);
        Assert.True(AtcCached(rig));                                   // the device never answered
        Assert.Equal(0, rig.Engine.Iotlb.Count);                       // fetched invalidations after it still ran
        Assert.Equal((0u, 0u), (rig.StatusAt(0), rig.StatusAt(4)));    // the wait was aborted, the next not fetched
        Assert.Equal(3, rig.Head);
        Assert.Equal(0u, rig.Read32(Reg.Ics));
        Assert.Equal([FaultMsi], rig.Msis);
        // A doorbell while ITE is set fetches nothing.
        rig.Write32(Reg.Iqt, (uint)(4 * rig.Width));
        Assert.Equal(3, rig.Head);
        // Clearing ITE clears ITESID and resumes at IQH.
        rig.Write32(Reg.Fsts, Reg.Ite);
        Assert.Equal((0u, 0, 2u, 4), (rig.Fsts, (int)rig.Itesid, rig.StatusAt(4), rig.Head));
    }

    [Fact]
    public void DeviceTlbTimeout_Resubmitted_Completes()
    {
        var plan = new FaultPlan { TimeoutOrdinals = [0] };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan });
        rig.Enable();
        FillAtc(rig);
        rig.Submit(Dsc.DevTlb(Sid, 0x4000), VtdRig.StatusWait(0, 2));
        rig.Write32(Reg.Fsts, Reg.Ite);
        rig.Submit(Dsc.DevTlb(Sid, 0x4000), VtdRig.StatusWait(0, 2));
        Assert.Equal((0u, 2u), (rig.Fsts, rig.StatusAt(0)));
        Assert.False(AtcCached(rig));
    }

    [Fact]
    public void DeviceTlbTimeout_WithoutAWait_IsReportedWhenTheQueueRunsEmpty()
    {
        var plan = new FaultPlan { TimeoutSourceIds = [Sid] };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan });
        rig.Enable();
        rig.Submit(Dsc.DevTlb(0x22), Dsc.DevTlb(Sid), Dsc.DevTlb(Sid + 1));
        Assert.Equal((Reg.Ite, Sid, 3), (rig.Fsts, rig.Itesid, rig.Head));
    }

    [Fact]
    public void DeviceTlbTimeout_ThenAnInvalidDescriptor_ReportsBothWithIqhOnTheBadOne()
    {
        var plan = new FaultPlan { TimeoutOrdinals = [0] };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan });
        rig.Enable();
        rig.Submit(Dsc.PDevTlb(Sid, 5), new VtdDescriptor(0, 0), VtdRig.StatusWait(0));
        Assert.Equal((Reg.Ite | Reg.Iqe, 1, Sid, (int)VtdQueueError.InvalidType), (rig.Fsts, rig.Head, rig.Itesid, rig.Iqei));
        Assert.Single(rig.Msis);
        rig.Put(1, Dsc.Wait(sw: false));
        rig.Write32(Reg.Fsts, Reg.Iqe);
        Assert.Equal(1, rig.Head); // still halted by ITE
        rig.Write32(Reg.Fsts, Reg.Ite);
        Assert.Equal((0u, 3, 2u), (rig.Fsts, rig.Head, rig.StatusAt(0)));
    }

    [Fact]
    public void TwoTimeouts_ItesidNamesTheFirst()
    {
        var plan = new FaultPlan { TimeoutOrdinals = [1, 2] };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan });
        rig.Enable();
        rig.Submit(Dsc.DevTlb(0x11), Dsc.DevTlb(0x12), Dsc.DevTlb(0x13), VtdRig.StatusWait(0));
        Assert.Equal((Reg.Ite, (ushort)0x12, 4), (rig.Fsts, rig.Itesid, rig.Head));
    }

    // ---- ICE --------------------------------------------------------------------------------------------------

    [Fact]
    public void DeviceTlbCompletionError_RemovesTheEntries_SetsIce_TheQueueGoesOn()
    {
        var plan = new FaultPlan { CompletionErrorOrdinals = [0] };
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan });
        rig.Enable();
        FillAtc(rig);
        rig.Submit(Dsc.DevTlb(Sid, 0x4000), VtdRig.StatusWait(0, 2, iflag: true));
        Assert.Equal((Reg.Ice, Sid), (rig.Fsts, rig.Icesid));
        Assert.False(AtcCached(rig));
        Assert.Equal((2u, 2), (rig.StatusAt(0), rig.Head));
        Assert.Equal([FaultMsi, CompletionMsi], rig.Msis);
    }
}
