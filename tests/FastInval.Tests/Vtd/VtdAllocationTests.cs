using FastInval.Tests.Memory;
using FastInval.Vtd;

namespace FastInval.Tests.Vtd;

/// <summary>Processing descriptors allocates nothing after warm-up: fetch, decode, batch execution, waits, events.</summary>
public class VtdAllocationTests
{
    [Theory]
    [InlineData(true, GuestMemoryKind.Managed)]
    [InlineData(false, GuestMemoryKind.Managed)]
    [InlineData(true, GuestMemoryKind.Native)]
    [InlineData(false, GuestMemoryKind.Native)]
    [InlineData(true, GuestMemoryKind.Callback)]
    [InlineData(false, GuestMemoryKind.Callback)]
    public void ProcessingDescriptors_AllocatesNothingAfterWarmUp(bool wide, GuestMemoryKind kind)
    {
        var plan = new FaultPlan { CompletionErrorPerMillion = 200_000, Seed = 7 }; // ICE now and then: the error path too
        using var rig = new VtdRig(new VtdOptions { FaultPlan = plan }, kind: kind);
        rig.Msis.Capacity = 1 << 16;
        rig.Enable(wide, qs: 2);
        int slots = rig.Slots;
        int perRound = 0;

        // One round: 64 page-selective invalidations (PASID-based in a 256-bit queue), a device-TLB invalidation, a
        // context-cache invalidation with a function mask, and a wait with SW and IF.
        void Write(int start)
        {
            int slot = start;
            for (int i = 0; i < 64; i++)
            {
                VtdDescriptor d = wide ? Dsc.PIotlb(3, 1, 5, (ulong)i << 12) : Dsc.Iotlb(3, 1, (ulong)i << 12);
                rig.Put(slot++ % slots, d);
            }

            rig.Put(slot++ % slots, Dsc.DevTlb(0x10, 0x4000, mask: 2));
            rig.Put(slot++ % slots, Dsc.Cc(3, sid: 0x20, fm: 2));
            rig.Put(slot++ % slots, VtdRig.StatusWait(0, 2, iflag: true));
            perRound = slot - start;
        }

        void Refill()
        {
            for (ulong p = 0; p < 64; p++)
            {
                rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(wide ? TranslationStage.Stage1 : TranslationStage.Stage2, 1,
                    wide ? 5u : AddressSpace.None, p << 12, p << 12));
            }

            rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x4000, 0x4000));
        }

        int tail = 0;
        void Round()
        {
            Write(tail);
            tail = (tail + perRound) % slots;
            rig.Unit.WriteRegister(Reg.Iqt, (uint)(tail * rig.Width), 4);
            rig.Unit.WriteRegister(Reg.Ics, Reg.Iwc, 4);
            rig.Unit.WriteRegister(Reg.Fsts, Reg.Ice, 4);
        }

        for (int warm = 0; warm < 40; warm++) // past the tiering thresholds: one-time work happens before the count
        {
            Refill();
            Round();
        }

        Assert.Equal(0u, rig.Fsts & Reg.Iqe);
        // The rig records every MSI in a List: its growth would be the test's allocation, not the unit's.
        rig.Msis.Capacity = rig.Msis.Count + 1024;
        long total = 0;
        for (int round = 0; round < 50; round++)
        {
            Refill();
            ulong fetchesBefore = rig.Unit.DescriptorFetches;
            total += AllocationMeter.Measure(Round);
            Assert.Equal(0UL, (rig.Unit.DescriptorFetches - fetchesBefore) % (ulong)perRound); // whole rounds only
        }

        Assert.Equal(0, rig.Engine.Iotlb.Count);
        Assert.Contains((VtdRig.FeAddress, VtdRig.FeData), rig.Msis); // completion errors were raised
        Assert.Contains((VtdRig.IeAddress, VtdRig.IeData), rig.Msis);
        Assert.Equal(0L, total);
    }
}
