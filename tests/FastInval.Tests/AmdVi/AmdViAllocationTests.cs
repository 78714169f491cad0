using FastInval.AmdVi;
using FastInval.Tests.Memory;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.Tests.AmdVi;

/// <summary>Processing commands allocates nothing after warm-up: fetch, decode, batch execution, completion-wait stores
/// and interrupts, IOTLB_INV_TIMEOUT events and the event log.</summary>
public class AmdViAllocationTests
{
    [Theory]
    [InlineData(GuestMemoryKind.Managed)]
    [InlineData(GuestMemoryKind.Native)]
    [InlineData(GuestMemoryKind.Callback)]
    public void ProcessingCommands_AllocatesNothingPerCommandAfterWarmUp(GuestMemoryKind kind)
    {
        // Device-TLB time-outs now and then (an IOTLB_INV_TIMEOUT event each) and completion errors: the error paths too.
        var plan = new FaultPlan { TimeoutPerMillion = 200_000, CompletionErrorPerMillion = 200_000, Seed = 11 };
        using var rig = new AmdViRig(new AmdViOptions { FaultPlan = plan }, kind: kind);
        rig.StatusAtInterrupt.Capacity = 1 << 16;
        rig.HeadAtInterrupt.Capacity = 1 << 16;

        // One round: 64 page invalidations of domain 3 (GN = 0 and GN = 1 alternating), a device-TLB invalidation, a DTE
        // and an interrupt-table invalidation, and a COMPLETION_WAIT with a store and an interrupt.
        var round = new AmdViCommand[68];
        for (int i = 0; i < 64; i++)
        {
            round[i] = AmdViCommand.InvalidateIommuPages(3, (ulong)i << 12, pasid: i % 2 == 0 ? null : 5u);
        }

        round[64] = AmdViCommand.InvalidateIotlbPages(0x10, 0x4000);
        round[65] = AmdViCommand.InvalidateDevTabEntry(0x20);
        round[66] = AmdViCommand.InvalidateInterruptTable(0x20);
        ulong data = 0;

        void Refill()
        {
            for (ulong p = 0; p < 64; p++)
            {
                rig.Engine.Iotlb.Fill(p % 2 == 0
                    ? TranslationEntry.Leaf(TranslationStage.Stage2, 3, AddressSpace.None, p << 12, p << 12)
                    : TranslationEntry.Leaf(TranslationStage.Stage1, 3, 5, p << 12, p << 12));
            }

            rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x4000, 0x4000));
        }

        void Round()
        {
            round[67] = AmdViCommand.CompletionWait(AmdViRig.StoreBase, ++data, interrupt: true);
            rig.Submit(round);
            rig.Unit.WriteRegister(EventLogHead, rig.Unit.ReadRegister(EventLogTail, 4), 4); // the handler consumes the log
            rig.Unit.WriteRegister(AmdViRegisters.Status, StatusWriteOneToClear, 4);
        }

        for (int warm = 0; warm < 40; warm++) // past the tiering thresholds: one-time work happens before the count
        {
            Refill();
            Round();
        }

        Assert.True(rig.Running);
        long total = 0;
        int events = 0;
        for (int r = 0; r < 50; r++)
        {
            Refill();
            ulong fetchesBefore = rig.Unit.CommandFetches;
            ulong eventTailBefore = rig.EventTail;
            total += AllocationMeter.Measure(Round);
            Assert.Equal(0UL, (rig.Unit.CommandFetches - fetchesBefore) % (ulong)round.Length); // whole rounds only
            events += rig.EventTail != eventTailBefore ? 1 : 0;
        }

        Assert.True(rig.Running);
        Assert.Equal(data, rig.StoreAt(0));                 // every wait completed
        Assert.Equal(0, rig.Engine.Iotlb.Count);
        Assert.True(events > 0, "no IOTLB_INV_TIMEOUT was recorded: the event path was not measured");
        Assert.True(rig.Interrupts > 0);
        Assert.Equal(0L, total);
    }
}
