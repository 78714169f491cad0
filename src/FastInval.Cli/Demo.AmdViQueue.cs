using FastInval.AmdVi;

namespace FastInval.Cli;

internal static partial class Demo
{
    // vm4's guest driver programs an AMD IOMMU: a 256-entry command buffer at guest-physical CommandGpa, an event log
    // at EventGpa, the completion-wait semaphore at SemaphoreGpa (Linux's cmd_sem).
    private const ulong CommandGpa = 0x10_0000;
    private const ulong EventGpa = 0x11_0000;
    private const ulong SemaphoreGpa = 0x12_0000;
    private const int CommandSize = 16;
    private const ushort AmdDomain = 2;
    private const ushort AmdNic = 0x0300;

    /// <summary>One screen: commands in guest RAM and a COMPLETION_WAIT; then a command with a stale reserved bit
    /// (ILLEGAL_COMMAND_ERROR: the buffer stops on it), and the driver's recovery (clear CmdBufEn, rewrite the slot, set
    /// CmdBufEn), with the registers, the event log and the caches after each step.</summary>
    private static void RunAmdViQueueStep(TextWriter o, SelfChecks checks, int step)
    {
        o.WriteLine();
        o.WriteLine($"Step {step}. vm4's driver uses an AMD-Vi command buffer in guest RAM; one command has a stale reserved bit.");
        byte[] buffer = new byte[4096], events = new byte[4096], semaphore = new byte[4096];
        var ram = new GuestMemory();
        ram.Map(CommandGpa, buffer);
        ram.Map(EventGpa, events);
        ram.Map(SemaphoreGpa, semaphore);
        int interrupts = 0;
        using var unit = new AmdViIommu(ram, new AmdViOptions
        {
            Interrupt = () => interrupts++,
            Engine = new EngineOptions { IotlbCapacity = 1024, DeviceTlbCapacity = 256, ConfigCacheCapacity = 64 },
        });
        InvalidationEngine engine = unit.Engine;

        // Linux's set-up (iommu_enable_command_buffer, iommu_enable_event_buffer): rings of 256 entries (4 KiB),
        // head = tail = 0, event log and its interrupt on, then the command buffer and the IOMMU.
        unit.WriteRegister(AmdViRegisters.CommandBufferBase, CommandGpa | (8UL << AmdViRegisters.RingLengthShift), 8);
        unit.WriteRegister(AmdViRegisters.EventLogBase, EventGpa | (8UL << AmdViRegisters.RingLengthShift), 8);
        unit.WriteRegister(AmdViRegisters.Control, AmdViRegisters.ControlEventLogEn | AmdViRegisters.ControlEventIntEn |
            AmdViRegisters.ControlCmdBufEn | AmdViRegisters.ControlIommuEn, 8);

        for (ulong p = 0; p < 32; p++)
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, AmdDomain, AddressSpace.None, PagesBase + (p * Page), 0x70_0000_0000UL + (p * Page)));
            engine.DeviceTlb.Fill(new DeviceTlbEntry(AmdNic, AddressSpace.None, PagesBase + (p * Page), 0x70_0000_0000UL + (p * Page)));
        }

        int tail = 0;
        void Submit(params AmdViCommand[] commands)
        {
            foreach (AmdViCommand c in commands)
            {
                c.Write(buffer.AsSpan(tail * CommandSize, CommandSize));
                tail = (tail + 1) % (buffer.Length / CommandSize);
            }

            unit.WriteRegister(AmdViRegisters.CommandBufferTail, (ulong)(tail * CommandSize), 4);   // the doorbell
        }

        ulong Semaphore() => BitConverter.ToUInt64(semaphore, 0);
        ulong Head() => unit.ReadRegister(AmdViRegisters.CommandBufferHead, 8) / CommandSize;
        bool Running() => (unit.ReadRegister(AmdViRegisters.Status, 8) & AmdViRegisters.StatusCmdBufRun) != 0;
        bool Iotlb(ulong a) => engine.Iotlb.TryLookup(TranslationStage.Stage2, AmdDomain, AddressSpace.None, a, out _);
        bool Atc(ulong a) => engine.DeviceTlb.TryLookup(AmdNic, AddressSpace.None, a, out _);
        AmdViCommand Wait(ulong data) => AmdViCommand.CompletionWait(SemaphoreGpa, data);

        // 1. Pages 0-7 (one S = 1 range each, as Linux's build_inv_address encodes 32 KiB), then the wait storing 1.
        (ulong first, bool size) = AmdViCommand.EncodeRange(PagesBase, 8 * Page);
        Submit(AmdViCommand.InvalidateIommuPages(AmdDomain, first, size), AmdViCommand.InvalidateIotlbPages(AmdNic, first, size, maxPending: 32),
            Wait(1));
        o.WriteLine($"  doorbell 1:   slots 0-2: INVALIDATE_IOMMU_PAGES domain {AmdDomain} {Hex(PagesBase)} S=1 (32 KiB), INVALIDATE_IOTLB_PAGES {Bdf(AmdNic)}, COMPLETION_WAIT (store 1)");
        o.WriteLine($"  unit did:     head = {Head()}, semaphore = {Semaphore()}, CmdBufRun = {(Running() ? 1 : 0)}, interrupts: {interrupts}; page {Hex(PagesBase)}: IOTLB {HitWord(Iotlb(PagesBase))}, NIC TLB {HitWord(Atc(PagesBase))}");
        checks.Check(Semaphore() == 1 && Head() == 3 && Running() && interrupts == 0 && !Iotlb(PagesBase) && !Atc(PagesBase),
            "the first COMPLETION_WAIT stored its semaphore after both invalidations");

        // 2. Pages 8-15, but the second slot was recycled with a stale bit in QW1 bit 3 (reserved): ILLEGAL_COMMAND_ERROR.
        ulong second = PagesBase + (8 * Page);
        (first, size) = AmdViCommand.EncodeRange(second, 8 * Page);
        AmdViCommand device = AmdViCommand.InvalidateIotlbPages(AmdNic, first, size, maxPending: 32);
        Submit(AmdViCommand.InvalidateIommuPages(AmdDomain, first, size), new AmdViCommand(device.Qword0, device.Qword1 | 0x8), Wait(2));
        AmdViEvent logged = AmdViEvent.Read(events.AsSpan(0, 16));
        ulong eventTail = unit.ReadRegister(AmdViRegisters.EventLogTail, 8) / CommandSize;
        o.WriteLine($"  doorbell 2:   slots 3-5: the same for {Hex(second)}, but slot 4 carries a stale reserved bit (QW1 bit 3), COMPLETION_WAIT (store 2)");
        o.WriteLine($"  unit did:     head = {Head()} (stopped on it), CmdBufRun = {(Running() ? 1 : 0)}, semaphore = {Semaphore()}, event log: {eventTail} entry, {logged.Code} at {Hex(logged.Address)}, interrupts: {interrupts}");
        o.WriteLine($"                page {Hex(second)}: IOTLB {HitWord(Iotlb(second))} (slot 3 ran), NIC TLB {HitWord(Atc(second))} (stale until the recovery)");
        checks.Check(Head() == 4 && !Running() && Semaphore() == 1 && eventTail == 1 && logged == AmdViEvent.IllegalCommand(CommandGpa + (4 * CommandSize))
            && interrupts == 1 && !Iotlb(second) && Atc(second),
            "the illegal command stops the buffer with the head on it and an ILLEGAL_COMMAND_ERROR naming its address");

        // 3. The driver's recovery: clear CmdBufEn, rewrite the slot, consume the event, clear the status, set CmdBufEn.
        ulong control = unit.ReadRegister(AmdViRegisters.Control, 8);
        unit.WriteRegister(AmdViRegisters.Control, control & ~AmdViRegisters.ControlCmdBufEn, 8);
        device.Write(buffer.AsSpan(4 * CommandSize, CommandSize));
        unit.WriteRegister(AmdViRegisters.EventLogHead, unit.ReadRegister(AmdViRegisters.EventLogTail, 4), 4);
        unit.WriteRegister(AmdViRegisters.Status, AmdViRegisters.StatusWriteOneToClear, 4);
        unit.WriteRegister(AmdViRegisters.Control, control, 8);
        o.WriteLine("  recovery:     the driver clears CmdBufEn, rewrites slot 4, consumes the event log, sets CmdBufEn: fetching resumes at slot 4");
        o.WriteLine($"  unit did:     head = {Head()}, semaphore = {Semaphore()}, CmdBufRun = {(Running() ? 1 : 0)}; page {Hex(second)}: NIC TLB {HitWord(Atc(second))}");
        checks.Check(Head() == 6 && Semaphore() == 2 && Running() && !Atc(second), "after the recovery the wait completes and the NIC's entries are gone");
    }
}
