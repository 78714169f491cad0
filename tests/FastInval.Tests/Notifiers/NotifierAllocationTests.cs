using FastInval.Tests.Smmu;
using FastInval.Tests.Vtd;
using FastInval.Vtd;

namespace FastInval.Tests.Notifiers;

/// <summary>With notifiers subscribed (one unfiltered, one filtered), executing batches allocates nothing after warm-up:
/// on the engine directly, through the VT-d queue and through the SMMU command queue.</summary>
public class NotifierAllocationTests
{
    private sealed class Counting : IInvalidationNotifier
    {
        public long Records;
        public long Calls;

        public void OnInvalidated(ReadOnlySpan<InvalidationRecord> records)
        {
            Calls++;
            Records += records.Length;
        }
    }

    [Fact]
    public void Execute_WithNotifiers_AllocatesNothingPerBatch()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 4096 });
        var all = new Counting();
        var some = new Counting();
        using NotifierSubscription a = engine.Notifiers.Subscribe(all);
        using NotifierSubscription b = engine.Notifiers.Subscribe(some, new NotifierFilter { DomainId = 1, Range = (0, 0x1F_FFFF) });
        var batch = new InvalidationDescriptor[200];
        for (int i = 0; i < batch.Length; i++)
        {
            ulong address = (ulong)i << 12;
            batch[i] = i % 3 == 0
                ? InvalidationDescriptor.IotlbRange((ushort)(i % 2), 1, address, address + 0xFFF)
                : i % 3 == 1 ? InvalidationDescriptor.IotlbAddressSpace(1, (uint)i) : InvalidationDescriptor.DeviceTlb(0x10, 1, address, address + 0xFFF);
        }

        var statuses = new InvalidationStatus[batch.Length];
        void Round()
        {
            for (ulong p = 0; p < 64; p++)
            {
                engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, p << 12, p << 12));
            }

            engine.Execute(batch, statuses);
            engine.Execute(in batch[0]);
        }

        for (int warm = 0; warm < 40; warm++)
        {
            Round();
        }

        long total = 0;
        for (int round = 0; round < 50; round++)
        {
            total += AllocationMeter.Measure(Round);
        }

        Assert.Equal(0L, total);
        Assert.True(all.Records > 0 && some.Records > 0 && some.Records < all.Records, $"{all.Records} / {some.Records}");
        Assert.Equal(0, a.Faults + b.Faults);
    }

    [Fact]
    public void VtdQueue_WithANotifier_AllocatesNothingPerRound()
    {
        using var rig = new VtdRig();
        rig.Msis.Capacity = 1 << 16;
        rig.Enable(wide: true, qs: 1);
        var counting = new Counting();
        using NotifierSubscription sub = rig.Engine.Notifiers.Subscribe(counting, new NotifierFilter { Scopes = NotifierScopes.Iotlb, DomainId = 1 });
        int slots = rig.Slots, tail = 0;
        void Round()
        {
            for (int i = 0; i < 16; i++)
            {
                rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 5, (ulong)i << 12, (ulong)i << 12));
                rig.Put(tail, Dsc.PIotlb(3, (ushort)(i % 2 + 1), 5, (ulong)i << 12));
                tail = (tail + 1) % slots;
            }

            rig.Put(tail, Dsc.DevTlb(0x10));
            tail = (tail + 1) % slots;
            rig.Put(tail, VtdRig.StatusWait(0));
            tail = (tail + 1) % slots;
            rig.Write32(Reg.Iqt, (uint)(tail * rig.Width));
        }

        for (int warm = 0; warm < 40; warm++)
        {
            Round();
        }

        long total = 0;
        for (int round = 0; round < 50; round++)
        {
            total += AllocationMeter.Measure(Round);
        }

        Assert.Equal(0L, total);
        Assert.Equal(0u, rig.Fsts);
        Assert.True(counting.Records >= 90L * 8, $"{counting.Records} records");
    }

    [Fact]
    public void SmmuQueue_WithANotifier_AllocatesNothingPerRound()
    {
        using var rig = new SmmuRig(log2Size: 6);
        var counting = new Counting();
        using NotifierSubscription sub = rig.Engine.Notifiers.Subscribe(counting);
        var commands = new FastInval.Smmu.SmmuCommand[16];
        for (int i = 0; i < 15; i++)
        {
            commands[i] = Cmd.NhVa(1, 2, (ulong)i << 12);
        }

        commands[15] = Cmd.Sync();
        void Round() => rig.Submit(commands);
        for (int warm = 0; warm < 40; warm++)
        {
            Round();
        }

        long total = 0;
        for (int round = 0; round < 50; round++)
        {
            total += AllocationMeter.Measure(Round);
        }

        Assert.Equal(0L, total);
        Assert.True(counting.Records >= 90L * 15, $"{counting.Records} records"); // a measured round may run more than once
    }
}
