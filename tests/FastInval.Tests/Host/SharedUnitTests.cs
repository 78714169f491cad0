using System.Buffers.Binary;
using FastInval.Host;
using FastInval.Smmu;
using FastInval.Tests.Vtd;
using FastInval.Vtd;

namespace FastInval.Tests.Host;

/// <summary>VT-d and SMMUv3 units over guest RAM shared through a memfd (SCM_RIGHTS): the unit reads its queue from the
/// pages the client writes, its status writes land there, its interrupts come back as event frames before the reply,
/// and the typed errors of bad descriptors, short files and overlapping ranges.</summary>
public class SharedUnitTests
{
    private const ulong GuestBase = 0x8000_0000;
    private const int RamBytes = 64 * 1024;
    private const ulong Queue = GuestBase + 0x1000;
    private const ulong Status = GuestBase + 0x3000;

    private static string Name(string what) => $"fastinval-test-{what}-{Environment.ProcessId}-{Guid.NewGuid():N}";

    [Fact]
    public async Task VtdUnit_ReadsItsQueueFromTheMemfdAndWritesTheWaitStatusIntoIt()
    {
        await using var server = new TestServer();
        using var ram = new SharedRam(Name("vtd"), RamBytes);
        using WireClient c = server.Connect(minor: 1);
        uint unit = c.CreateVtd(ram, GuestBase);
        Assert.Equal((ulong)VtdRegisters.VersionValue, c.Read(unit, VtdRegisters.Ver));

        Assert.Empty(c.Write(unit, VtdRegisters.Iqa, Queue, 8));
        Assert.Empty(c.Write(unit, VtdRegisters.Iedata, 0x55));
        Assert.Empty(c.Write(unit, VtdRegisters.Ieaddr, 0xFEE0_0000));
        Assert.Empty(c.Write(unit, VtdRegisters.Iectl, 0)); // unmask the completion event
        Assert.Empty(c.Write(unit, VtdRegisters.Gcmd, VtdRegisters.Qie));
        Assert.Equal(VtdRegisters.Qie, (uint)c.Read(unit, VtdRegisters.Gsts) & VtdRegisters.Qie);

        // The host caches a translation of domain 1; the guest invalidates the domain and waits.
        c.Ok(Frames.FillIotlb(c.NextId(), unit, [TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x4000, 0x9000)]));
        Dsc.Iotlb(2, did: 1).Write(ram.Bytes.Slice(0x1000, 16));
        Dsc.Wait(sw: true, iflag: true, data: 0xC0FFEE, addr: Status).Write(ram.Bytes.Slice(0x1010, 16));
        List<WireEvent> events = c.Write(unit, VtdRegisters.Iqt, 0x20);

        Assert.Equal(0xC0FFEEu, BinaryPrimitives.ReadUInt32LittleEndian(ram.Bytes[0x3000..])); // written into the memfd itself
        WireEvent e = Assert.Single(events);
        Assert.Equal((SharedFrames.EventVtdCompletion, unit, 0xFEE0_0000UL, 0x55u, (byte)1), (e.Type, e.UnitId, e.Address, e.Data, e.Delivery));
        Assert.Equal(VtdRegisters.Iwc, e.A & VtdRegisters.Iwc); // ICS as the interrupt left it
        Assert.Equal(0x20UL, c.Read(unit, VtdRegisters.Iqh, 8));
        var hit = Replies.Translations(c.Ok(Frames.LookupIotlb(c.NextId(), unit, [new(TranslationStage.Stage2, 1, AddressSpace.None, 0x4000)])));
        Assert.False(hit[0].Hit); // the descriptor in shared memory removed it
    }

    [Fact]
    public async Task VtdFaultEventsFollowFectlMaskingAndATimeOut_IsReportedWithItsSource()
    {
        await using var server = new TestServer();
        using var ram = new SharedRam(Name("vtd-fault"), RamBytes);
        using WireClient c = server.Connect(minor: 1);
        uint unit = c.CreateVtd(ram, GuestBase);
        c.Write(unit, VtdRegisters.Iqa, Queue, 8);
        c.Write(unit, VtdRegisters.Fedata, 0x77);
        c.Write(unit, VtdRegisters.Feaddr, 0xFEE0_1000);
        c.Write(unit, VtdRegisters.Gcmd, VtdRegisters.Qie);

        // FECTL.IM = 1 (the reset value): an invalid descriptor sets IQE and FECTL.IP but sends nothing ...
        new VtdDescriptor(0xF, 0).Write(ram.Bytes.Slice(0x1000, 16));
        Assert.Empty(c.Write(unit, VtdRegisters.Iqt, 0x10));
        Assert.Equal(VtdRegisters.Iqe, (uint)c.Read(unit, VtdRegisters.Fsts) & VtdRegisters.Iqe);
        Assert.Equal(VtdRegisters.InterruptPending, (uint)c.Read(unit, VtdRegisters.Fectl) & VtdRegisters.InterruptPending);
        // ... until software unmasks it: the pending message goes out, as a fault event, in the FECTL write's reply.
        WireEvent fault = Assert.Single(c.Write(unit, VtdRegisters.Fectl, 0));
        Assert.Equal((SharedFrames.EventVtdFault, 0xFEE0_1000UL, 0x77u), (fault.Type, fault.Address, fault.Data));
        Assert.Equal(VtdRegisters.Iqe, fault.A & VtdRegisters.Iqe);
        // FECTL as the message left it: unmasked, IP cleared by the sending (not the IM | IP it had before the write).
        Assert.Equal(0u, fault.B);
        Assert.Equal((ulong)fault.B, c.Read(unit, VtdRegisters.Fectl));

        // A device-TLB invalidation that times out: ITE with the source id, a fault event, then the time-out event.
        c.Ok(Frames.FaultPlan(c.NextId(), unit, 1, 0, 0, [0x42], [], []));
        Dsc.DevTlb(0x42, 0x5000).Write(ram.Bytes.Slice(0x1000, 16));
        Dsc.Wait(sw: true, data: 1, addr: Status).Write(ram.Bytes.Slice(0x1010, 16));
        List<WireEvent> events = c.Write(unit, VtdRegisters.Fsts, VtdRegisters.Iqe); // clearing IQE resumes at IQH
        Assert.Equal([SharedFrames.EventVtdFault, SharedFrames.EventTimeout], events.Select(x => x.Type));
        Assert.Equal(VtdRegisters.Ite, events[0].A & VtdRegisters.Ite);
        Assert.Equal(0x42u, events[1].A);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(ram.Bytes[0x3000..])); // the aborted wait wrote nothing
    }

    [Fact]
    public async Task VtdCompletionEventSentByUnmaskingIectl_ReportsIectlAsTheWriteLeftIt()
    {
        await using var server = new TestServer();
        using var ram = new SharedRam(Name("vtd-iectl"), RamBytes);
        using WireClient c = server.Connect(minor: 1);
        uint unit = c.CreateVtd(ram, GuestBase);
        c.Write(unit, VtdRegisters.Iqa, Queue, 8);
        c.Write(unit, VtdRegisters.Iedata, 0x55);
        c.Write(unit, VtdRegisters.Ieaddr, 0xFEE0_0000);
        c.Write(unit, VtdRegisters.Gcmd, VtdRegisters.Qie);

        // IECTL.IM = 1 (the reset value): a wait with IF sets ICS.IWC and IECTL.IP and sends nothing ...
        Dsc.Wait(sw: true, iflag: true, data: 7, addr: Status).Write(ram.Bytes.Slice(0x1000, 16));
        Assert.Empty(c.Write(unit, VtdRegisters.Iqt, 0x10));
        Assert.Equal((ulong)(VtdRegisters.InterruptMask | VtdRegisters.InterruptPending), c.Read(unit, VtdRegisters.Iectl));
        // ... until software unmasks it: the completion event carries IECTL as the unmasking write left it.
        WireEvent e = Assert.Single(c.Write(unit, VtdRegisters.Iectl, 0));
        Assert.Equal((SharedFrames.EventVtdCompletion, 0xFEE0_0000UL, 0x55u), (e.Type, e.Address, e.Data));
        Assert.Equal(VtdRegisters.Iwc, e.A & VtdRegisters.Iwc);
        Assert.Equal(0u, e.B);
        Assert.Equal((ulong)e.B, c.Read(unit, VtdRegisters.Iectl));
    }

    [Fact]
    public async Task SmmuUnitConsumesCommandsFromTheMemfdSignalsCmdSyncAnd_ReportsGerror()
    {
        await using var server = new TestServer();
        using var ram = new SharedRam(Name("smmu"), RamBytes);
        using WireClient c = server.Connect(minor: 1);
        uint unit = c.CreateSmmu(ram, GuestBase);
        c.Write(unit, SmmuRegisters.CmdqBase, Queue | 8, 8); // 256 commands
        c.Write(unit, SmmuRegisters.IrqCtrl, SmmuRegisters.IrqGerrorEn);
        c.Write(unit, SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn | SmmuRegisters.Cr0SmmuEn);
        Assert.Equal(SmmuRegisters.Cr0CmdqEn | SmmuRegisters.Cr0SmmuEn, (uint)c.Read(unit, SmmuRegisters.Cr0Ack));

        SmmuCommand.TlbiNhAll(3).Write(ram.Bytes.Slice(0x1000, 16));
        SmmuCommand.Sync(1, Status, 0xABCD).Write(ram.Bytes.Slice(0x1010, 16));
        List<WireEvent> events = c.Write(unit, SmmuRegisters.CmdqProd, 2);
        WireEvent sync = Assert.Single(events); // the MSI; the same CMD_SYNC's wired output is not a second event
        Assert.Equal((SharedFrames.EventSmmuSync, Status, 0xABCDu, (byte)1), (sync.Type, sync.Address, sync.Data, sync.Delivery));
        Assert.Equal(0xABCDu, BinaryPrimitives.ReadUInt32LittleEndian(ram.Bytes[0x3000..]));
        Assert.Equal(2u, (uint)c.Read(unit, SmmuRegisters.CmdqCons) & 0xFF);

        // An illegal command: CMDQ_ERR with CERROR_ILL; no GERROR MSI is configured, so the wired GERROR interrupt.
        new SmmuCommand(0xFF, 0).Write(ram.Bytes.Slice(0x1020, 16));
        WireEvent gerror = Assert.Single(c.Write(unit, SmmuRegisters.CmdqProd, 3));
        Assert.Equal((SharedFrames.EventSmmuGerror, 0UL, (byte)2), (gerror.Type, gerror.Address, gerror.Delivery));
        Assert.Equal(SmmuRegisters.GerrorCmdqErr, (gerror.A ^ gerror.B) & SmmuRegisters.GerrorCmdqErr);
        Assert.Equal(1u, (uint)(gerror.C >> 24) & 0x7F); // CMDQ_CONS.ERR = CERROR_ILL
    }

    [Fact]
    public async Task SmmuAtcTimeOut_IsAGerrorAndATimeOutEvent()
    {
        await using var server = new TestServer();
        using var ram = new SharedRam(Name("smmu-atc"), RamBytes);
        using WireClient c = server.Connect(minor: 1);
        uint unit = c.CreateSmmu(ram, GuestBase);
        c.Write(unit, SmmuRegisters.CmdqBase, Queue | 8, 8);
        c.Write(unit, SmmuRegisters.GerrorIrqCfg0, GuestBase + 0x2000, 8);
        c.Write(unit, SmmuRegisters.GerrorIrqCfg1, 0x99);
        c.Write(unit, SmmuRegisters.IrqCtrl, SmmuRegisters.IrqGerrorEn);
        c.Write(unit, SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn | SmmuRegisters.Cr0SmmuEn);
        c.Ok(Frames.FaultPlan(c.NextId(), unit, 1, 0, 0, [0x7], [], []));
        SmmuCommand.AtcInv(0x7, 0x4000, 0).Write(ram.Bytes.Slice(0x1000, 16));
        SmmuCommand.Sync(0).Write(ram.Bytes.Slice(0x1010, 16));
        List<WireEvent> events = c.Write(unit, SmmuRegisters.CmdqProd, 2);
        Assert.Equal([SharedFrames.EventSmmuGerror, SharedFrames.EventTimeout], events.Select(x => x.Type));
        Assert.Equal((GuestBase + 0x2000, 0x99u, (byte)1), (events[0].Address, events[0].Data, events[0].Delivery));
        Assert.Equal(3u, (uint)(events[0].C >> 24) & 0x7F); // CERROR_ATC_INV_SYNC
        Assert.Equal(uint.MaxValue, events[1].A); // the SMMU reports no StreamID for it
        Assert.Equal(0x99u, BinaryPrimitives.ReadUInt32LittleEndian(ram.Bytes[0x2000..])); // the GERROR MSI's write
    }

    [Fact]
    public async Task BadDescriptorsShortFilesOverlapsAndWrongKinds_GetTypedErrorsAndLeaveNothingBehind()
    {
        await using var server = new TestServer();
        using var ram = new SharedRam(Name("errors"), RamBytes);
        using WireClient c = server.Connect(minor: 1);
        SharedFrames.RegionSpec whole = new(GuestBase, RamBytes);

        // Declared but not sent.
        (WireReply r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [whole]));
        Assert.Equal(((ushort)ErrorCode.BadFd, uint.MaxValue), (r.Status, r.Detail));
        // Two sent, one declared (and one region).
        (r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [whole]), ram.Fd, ram.Fd);
        Assert.Equal(((ushort)ErrorCode.BadFd, uint.MaxValue), (r.Status, r.Detail));
        // Not mappable: the read end of a pipe.
        using (var pipe = new System.IO.Pipes.AnonymousPipeServerStream(System.IO.Pipes.PipeDirection.In))
        {
            (r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [whole]), (int)pipe.SafePipeHandle.DangerousGetHandle());
            Assert.Equal(((ushort)ErrorCode.BadFd, 0u), (r.Status, r.Detail));
        }

        // The file is shorter than the region.
        (r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [new(GuestBase, RamBytes, 4096)]), ram.Fd);
        Assert.Equal(((ushort)ErrorCode.ShortFile, 0u), (r.Status, r.Detail));
        // Overlapping guest ranges.
        (r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 4, [new(GuestBase, 0x8000), new(GuestBase + 0x7000, 0x8000, 0x8000)]), ram.Fd, ram.Fd);
        Assert.Equal(((ushort)ErrorCode.Overlap, 1u), (r.Status, r.Detail));
        // Unaligned base, fd_count different from the region count, unknown flag bit.
        (r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [new(GuestBase + 8, 4096)]), ram.Fd);
        Assert.Equal(((ushort)ErrorCode.InvalidArgument, 40u), (r.Status, r.Detail));
        (r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [whole], fdCount: 2), ram.Fd);
        Assert.Equal(((ushort)ErrorCode.InvalidArgument, 4u), (r.Status, r.Detail));
        (r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [whole], flags: 1u << 12), ram.Fd);
        Assert.Equal(((ushort)ErrorCode.InvalidArgument, 28u), (r.Status, r.Detail));
        Assert.Equal(0, server.Server.UnitCount);
        Assert.Equal(1, ram.MappingsInProcess()); // only the test's own mapping: nothing failed left one behind

        // Register frames on an engine unit, a bad size, a foreign unit.
        uint engine = c.CreateEngine();
        (r, _) = c.CallWithEvents(SharedFrames.ReadRegister(c.NextId(), engine, 0, 4));
        Assert.Equal(((ushort)ErrorCode.WrongKind, 1u), (r.Status, r.Detail));
        uint vtd = c.CreateVtd(ram, GuestBase);
        (r, _) = c.CallWithEvents(SharedFrames.WriteRegister(c.NextId(), vtd, VtdRegisters.Iqt, 2, 0));
        Assert.Equal(((ushort)ErrorCode.InvalidArgument, 4u), (r.Status, r.Detail));
        (r, _) = c.CallWithEvents(SharedFrames.WriteRegister(c.NextId(), vtd, VtdRegisters.Iqt, 4, 1UL << 32));
        Assert.Equal(((ushort)ErrorCode.InvalidArgument, 12u), (r.Status, r.Detail));
        (r, _) = c.CallWithEvents(SharedFrames.IommufdIoctl(c.NextId(), vtd, 0x3B81, new byte[12]));
        Assert.Equal(((ushort)ErrorCode.WrongKind, 3u), (r.Status, r.Detail));
        using WireClient other = server.Connect(minor: 1);
        (r, _) = other.CallWithEvents(SharedFrames.WriteRegister(other.NextId(), vtd, VtdRegisters.Iqt, 4, 0));
        Assert.Equal((ushort)ErrorCode.UnknownUnit, r.Status);
    }

    [Fact]
    public async Task Destroy_AndDisconnectUnmapTheSharedMemory()
    {
        await using var server = new TestServer();
        using var ram = new SharedRam(Name("unmap"), RamBytes);
        Assert.Equal(1, ram.MappingsInProcess());
        using (WireClient c = server.Connect(minor: 1))
        {
            uint a = c.CreateVtd(ram, GuestBase);
            uint b = c.CreateSmmu(ram, 0);
            Assert.Equal(3, ram.MappingsInProcess());
            c.Ok(Frames.Destroy(c.NextId(), a));
            Assert.Equal(2, ram.MappingsInProcess());
            Assert.NotEqual(0u, b);
        }

        TestServer.Eventually(() => server.Server.UnitCount == 0, "the disconnected client's unit destroyed");
        Assert.Equal(1, ram.MappingsInProcess());
    }
}
