using FastInval.Reference.Scenarios;
using FastInval.Smmu;
using FastInval.Tests.Smmu;
using FastInval.Tests.Uapi;
using FastInval.Tests.Vtd;
using FastInval.Uapi;
using FastInval.Vtd;

namespace FastInval.Tests.Notifiers;

/// <summary>Subscription, filters, delivery order, exceptions and front-end indices of <see cref="InvalidationNotifiers"/>.</summary>
public class NotifierTests
{
    private static InvalidationRecord R(in InvalidationDescriptor d) => new(in d, InvalidationSource.Engine, 0, InvalidationStatus.Ok);

    // ---- filters ----------------------------------------------------------------------------------------

    [Fact]
    public void Filter_Default_PassesEveryScope()
    {
        NotifierFilter all = NotifierFilter.All;
        Assert.True(all.IsAll);
        Assert.True(all.Matches(R(InvalidationDescriptor.IotlbAll())));
        Assert.True(all.Matches(R(InvalidationDescriptor.DeviceTlb(1, 2))));
        Assert.True(all.Matches(R(InvalidationDescriptor.ConfigAll(ConfigKinds.All))));
    }

    [Fact]
    public void Filter_Scopes_SelectTheCaches()
    {
        var iotlb = new NotifierFilter { Scopes = NotifierScopes.Iotlb };
        Assert.True(iotlb.Matches(R(InvalidationDescriptor.IotlbDomain(1))));
        Assert.True(iotlb.Matches(R(InvalidationDescriptor.IotlbRange(1, 2, 0, 0xFFF))));
        Assert.False(iotlb.Matches(R(InvalidationDescriptor.DeviceTlb(1, 2))));
        Assert.False(iotlb.Matches(R(InvalidationDescriptor.ConfigAll(ConfigKinds.All))));
        var dev = new NotifierFilter { Scopes = NotifierScopes.DeviceTlb | NotifierScopes.Config };
        Assert.False(dev.Matches(R(InvalidationDescriptor.IotlbAll())));
        Assert.True(dev.Matches(R(InvalidationDescriptor.DeviceTlb(1, 2))));
        Assert.True(dev.Matches(R(InvalidationDescriptor.ConfigAll(ConfigKinds.Context))));
    }

    [Fact]
    public void Filter_Domain_DropsOtherDomainsKeepsUntaggedFlushes()
    {
        var f = new NotifierFilter { DomainId = 7 };
        Assert.True(f.Matches(R(InvalidationDescriptor.IotlbDomain(7))));
        Assert.False(f.Matches(R(InvalidationDescriptor.IotlbDomain(8))));
        Assert.False(f.Matches(R(InvalidationDescriptor.IotlbRange(8, 1, 0, 0xFFF))));
        Assert.True(f.Matches(R(InvalidationDescriptor.IotlbAll())));                    // every domain
        Assert.True(f.Matches(R(InvalidationDescriptor.DeviceTlb(0x10, 1))));           // device TLBs carry no domain
        Assert.False(f.Matches(R(InvalidationDescriptor.ConfigDomain(ConfigKinds.PasidEntry, 8))));
        Assert.True(f.Matches(R(InvalidationDescriptor.ConfigDomain(ConfigKinds.PasidEntry, 7))));
    }

    [Fact]
    public void Filter_AddressSpace_KeepsFlushesThatReachGlobalEntries()
    {
        var f = new NotifierFilter { AddressSpaceId = 5 };
        Assert.True(f.Matches(R(InvalidationDescriptor.IotlbAddressSpace(1, 5))));
        Assert.False(f.Matches(R(InvalidationDescriptor.IotlbAddressSpace(1, 6))));              // non-globals of PASID 6
        Assert.True(f.Matches(R(InvalidationDescriptor.IotlbRange(1, 6, 0, 0xFFF, includeGlobal: true))));  // globals seen by 5
        Assert.False(f.Matches(R(InvalidationDescriptor.IotlbRange(1, 6, 0, 0xFFF, includeGlobal: false))));
        Assert.True(f.Matches(R(InvalidationDescriptor.IotlbRangeAllAddressSpaces(1, 0, 0xFFF, StageMask.FirstStage))));
        Assert.False(f.Matches(R(InvalidationDescriptor.DeviceTlb(0x10, 6))));
        Assert.True(f.Matches(R(InvalidationDescriptor.DeviceTlb(0x10, 6, includeGlobal: true))));
        Assert.True(f.Matches(R(InvalidationDescriptor.DeviceTlb(0x10, AddressSpace.None, 0x1000, 0x1FFF)))); // no-PASID rule
        Assert.False(f.Matches(R(InvalidationDescriptor.ConfigAddressSpace(ConfigKinds.ContextDescriptor, 6, sourceId: 0x10))));
    }

    [Fact]
    public void Filter_Range_ComparesRecordRangesAndPassesTagFlushes()
    {
        var f = new NotifierFilter { Range = (0x10_0000, 0x1F_FFFF) };
        Assert.True(f.Matches(R(InvalidationDescriptor.IotlbRange(1, 2, 0x1F_F000, 0x20_0FFF))));     // overlaps the end
        Assert.False(f.Matches(R(InvalidationDescriptor.IotlbRange(1, 2, 0x20_0000, 0x20_0FFF))));    // just after
        Assert.False(f.Matches(R(InvalidationDescriptor.IotlbRange(1, 2, 0, 0xF_FFFF))));             // just before
        Assert.True(f.Matches(R(InvalidationDescriptor.IotlbAddressSpace(1, 2))));                    // every address
        Assert.False(f.Matches(R(InvalidationDescriptor.DeviceTlb(0x10, 2, 0, 0xFFF))));
        Assert.True(f.Matches(R(InvalidationDescriptor.DeviceTlb(0x10, AddressSpace.None, 0, 0xFFF)))); // PASID-tagged: any address
        Assert.True(f.Matches(R(InvalidationDescriptor.ConfigSources(ConfigKinds.Context, 0, 0))));   // no address range
    }

    [Fact]
    public void Filter_Source_SelectsDevicesAndConfigSourceRanges()
    {
        var f = new NotifierFilter { SourceId = 0x12 };
        Assert.True(f.Matches(R(InvalidationDescriptor.DeviceTlb(0x12, 1))));
        Assert.False(f.Matches(R(InvalidationDescriptor.DeviceTlb(0x13, 1))));
        Assert.True(f.Matches(R(InvalidationDescriptor.ConfigSources(ConfigKinds.Context, 0x10, 0x17))));
        Assert.False(f.Matches(R(InvalidationDescriptor.ConfigSources(ConfigKinds.Context, 0x18, 0x1F))));
        Assert.True(f.Matches(R(InvalidationDescriptor.IotlbDomain(1))));                              // IOTLB has no source
    }

    [Fact]
    public void Subscribe_BadArguments_Throw()
    {
        using var engine = new InvalidationEngine();
        Assert.Throws<ArgumentNullException>(() => engine.Notifiers.Subscribe((IInvalidationNotifier)null!));
        Assert.Throws<ArgumentNullException>(() => engine.Notifiers.Subscribe((InvalidationCallback)null!));
        Assert.Throws<ArgumentException>(() => engine.Notifiers.Subscribe(new RecordingNotifier(), new NotifierFilter { AddressSpaceId = AddressSpace.MaxId + 1 }));
        Assert.Throws<ArgumentException>(() => engine.Notifiers.Subscribe(new RecordingNotifier(), new NotifierFilter { Range = (2, 1) }));
        Assert.Equal(0, engine.Notifiers.Count);
    }

    // ---- delivery -----------------------------------------------------------------------------------------

    [Fact]
    public void Execute_OneCallbackPerBatch_OnlyAppliedDescriptors_WithPositionsAndStatuses()
    {
        using var engine = new InvalidationEngine(new EngineOptions { FaultPlan = new FaultPlan { TimeoutOrdinals = [0], CompletionErrorOrdinals = [1] } });
        var rec = new RecordingNotifier();
        using NotifierSubscription sub = engine.Notifiers.Subscribe(rec);
        InvalidationDescriptor[] batch =
        [
            InvalidationDescriptor.IotlbDomain(1),
            InvalidationDescriptor.DeviceTlb(0x10, 1),                  // ordinal 0: times out, no record
            new InvalidationDescriptor(InvalidationScope.None, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), // invalid, no record
            InvalidationDescriptor.DeviceTlb(0x11, 1),                  // ordinal 1: completion error, a record
            InvalidationDescriptor.ConfigAll(ConfigKinds.Context),
        ];
        var statuses = new InvalidationStatus[batch.Length];
        engine.Execute(batch, statuses);
        Assert.Equal([3], rec.Batches);
        Assert.Null(rec.Compare(
        [
            new InvalidationRecord(batch[0], InvalidationSource.Engine, 0, InvalidationStatus.Ok),
            new InvalidationRecord(batch[3], InvalidationSource.Engine, 3, InvalidationStatus.CompletionError),
            new InvalidationRecord(batch[4], InvalidationSource.Engine, 4, InvalidationStatus.Ok),
        ]));

        // The device-TLB invalidation is ordinal 2 now, which the plan leaves alone: one record, at position 0.
        engine.Execute(batch.AsSpan(1, 2), statuses);
        Assert.Equal([3, 1], rec.Batches);
        Assert.Equal(0UL, rec.Records[^1].SourceIndex);

        // Nothing applied: no callback at all. A single descriptor: a one-record batch at index 0.
        engine.Execute(batch.AsSpan(2, 1), statuses);
        Assert.Equal(2, rec.Batches.Count);
        engine.Execute(InvalidationDescriptor.IotlbAll());
        Assert.Equal(3, rec.Batches.Count);
        Assert.Equal(new InvalidationRecord(InvalidationDescriptor.IotlbAll(), InvalidationSource.Engine, 0, InvalidationStatus.Ok), rec.Records[^1]);
    }

    [Fact]
    public void Filtered_SubscriberWithNothingPassing_IsNotCalled()
    {
        using var engine = new InvalidationEngine();
        var rec = new RecordingNotifier();
        using NotifierSubscription sub = engine.Notifiers.Subscribe(rec, new NotifierFilter { DomainId = 9 });
        engine.Execute([InvalidationDescriptor.IotlbDomain(1), InvalidationDescriptor.IotlbDomain(2)], new InvalidationStatus[2]);
        Assert.Empty(rec.Batches);
        engine.Execute([InvalidationDescriptor.IotlbDomain(1), InvalidationDescriptor.IotlbDomain(9)], new InvalidationStatus[2]);
        Assert.Equal([1], rec.Batches);
        Assert.Equal(1UL, rec.Records[0].SourceIndex);
    }

    [Fact]
    public void ThrowingNotifier_BatchStaysApplied_OthersStillNotified_FaultKept()
    {
        using var engine = new InvalidationEngine();
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 2, 0x1000, 0x5000));
        var boom = new InvalidOperationException("forwarding failed");
        int calls = 0;
        using NotifierSubscription bad = engine.Notifiers.Subscribe(_ => { calls++; throw boom; });
        var rec = new RecordingNotifier();
        using NotifierSubscription good = engine.Notifiers.Subscribe(rec);
        var statuses = new InvalidationStatus[1];
        BatchResult result = engine.Execute([InvalidationDescriptor.IotlbDomain(1)], statuses);
        Assert.True(result.AllOk);
        Assert.Equal(0, engine.Iotlb.Count);
        Assert.Equal([1], rec.Batches);
        Assert.Equal(1, bad.Faults);
        Assert.Same(boom, bad.LastFault);
        Assert.True(bad.IsActive);
        engine.Execute(InvalidationDescriptor.IotlbAll());
        Assert.Equal(2, calls);
        Assert.Equal(2, bad.Faults);
        Assert.Equal(0, good.Faults);
    }

    [Fact]
    public void ThrowingNotifier_OnAVtdQueue_WaitAndErrorsAreAsWithoutIt()
    {
        using var rig = new VtdRig(new VtdOptions { FaultPlan = new FaultPlan { CompletionErrorOrdinals = [0] } });
        rig.Enable(wide: true);
        using NotifierSubscription bad = rig.Engine.Notifiers.Subscribe(_ => throw new InvalidOperationException());
        rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 5, 0x4000, 0x9000));
        rig.Submit(Dsc.PIotlb(3, 1, 5, 0x4000), Dsc.DevTlb(0x10), VtdRig.StatusWait(0, data: 0x77), Dsc.PIotlb(2, 1, 5), VtdRig.StatusWait(4, data: 0x78));
        Assert.Equal(0x77u, rig.StatusAt(0));
        Assert.Equal(0x78u, rig.StatusAt(4));
        Assert.Equal(Reg.Ice, rig.Fsts & (Reg.Ice | Reg.Iqe | Reg.Ite));
        Assert.Equal(rig.Tail, rig.Head);
        Assert.Equal(0, rig.Engine.Iotlb.Count);
        Assert.Equal(2, bad.Faults); // one per run between waits
    }

    [Fact]
    public void ExecuteFromACallback_OnTheSameEngine_IsRefusedAndRecordedAsAFault()
    {
        using var engine = new InvalidationEngine();
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 2, 2, 0x1000, 0x5000));
        using NotifierSubscription sub = engine.Notifiers.Subscribe(_ => engine.Execute(InvalidationDescriptor.IotlbDomain(2)));
        engine.Execute(InvalidationDescriptor.IotlbDomain(1));
        Assert.Equal(1, sub.Faults);
        Assert.IsType<InvalidOperationException>(sub.LastFault);
        Assert.Equal(1, engine.Iotlb.Count); // the inner Execute applied nothing
    }

    [Fact]
    public void DisposeInsideItsOwnCallback_NoLaterCall_OthersUnaffected()
    {
        using var engine = new InvalidationEngine();
        int calls = 0;
        NotifierSubscription? self = null;
        self = engine.Notifiers.Subscribe(_ => { calls++; self!.Dispose(); });
        var rec = new RecordingNotifier();
        using NotifierSubscription other = engine.Notifiers.Subscribe(rec);
        engine.Execute(InvalidationDescriptor.IotlbAll());
        engine.Execute(InvalidationDescriptor.IotlbAll());
        Assert.Equal(1, calls);
        Assert.False(self.IsActive);
        Assert.Equal(2, rec.Batches.Count);
        Assert.Equal(1, engine.Notifiers.Count);
        self.Dispose(); // idempotent
        other.Dispose();
        Assert.Equal(0, engine.Notifiers.Count);
        engine.Execute(InvalidationDescriptor.IotlbAll());
        Assert.Equal(2, rec.Batches.Count);
    }

    [Fact]
    public void SubscribeInsideACallback_ReceivesFromTheNextBatch()
    {
        using var engine = new InvalidationEngine();
        var late = new RecordingNotifier();
        NotifierSubscription? lateSub = null;
        using NotifierSubscription first = engine.Notifiers.Subscribe(_ => lateSub ??= engine.Notifiers.Subscribe(late));
        engine.Execute(InvalidationDescriptor.IotlbAll());
        Assert.Empty(late.Batches);
        engine.Execute(InvalidationDescriptor.IotlbAll());
        Assert.Equal([1], late.Batches);
        lateSub!.Dispose();
    }

    // ---- front ends ---------------------------------------------------------------------------------------

    [Fact]
    public void VtdQueue_RecordsCarryQueueSlots_AndArriveBeforeTheWaitCompletes()
    {
        using var rig = new VtdRig();
        rig.Enable(wide: false);
        var seen = new List<(ulong Slot, uint StatusThen)>();
        using NotifierSubscription sub = rig.Engine.Notifiers.Subscribe(records =>
        {
            foreach (InvalidationRecord r in records)
            {
                Assert.Equal(InvalidationSource.VtdQueue, r.Source);
                seen.Add((r.SourceIndex, rig.StatusAt(0)));
            }
        });
        rig.Submit(Dsc.Iotlb(2, did: 1), Dsc.Cc(1), VtdRig.StatusWait(0, data: 5), Dsc.Iotlb(1));
        // Slot 0: domain-selective IOTLB; slot 1: global context cache; the wait at slot 2 wrote 5 only after them.
        Assert.Equal([(0UL, 0u), (1UL, 0u), (3UL, 5u)], seen);
    }

    [Fact]
    public void VtdQueue_DeviceTlbWithoutPasid_GivesItsRecordsTheSameSlot()
    {
        using var rig = new VtdRig();
        rig.Enable(wide: true);
        var rec = new RecordingNotifier();
        using NotifierSubscription sub = rig.Engine.Notifiers.Subscribe(rec);
        rig.Submit(Dsc.Iotlb(1), Dsc.DevTlb(0x10, 0x4000, mask: 1), VtdRig.StatusWait(0));
        Assert.All(rec.Records.Skip(1), r => Assert.Equal(1UL, r.SourceIndex));
        Assert.Equal(0UL, rec.Records[0].SourceIndex);
        Assert.Contains(rec.Records, r => r.Scope == InvalidationScope.DeviceTlb && r.SourceId == 0x10);
    }

    [Fact]
    public void SmmuQueue_RecordsCarryConsSlots()
    {
        using var rig = new SmmuRig();
        var rec = new RecordingNotifier();
        using NotifierSubscription sub = rig.Smmu.Engine.Notifiers.Subscribe(rec);
        rig.Submit(Cmd.NhAsid(1, 2), Cmd.CfgiSte(0x10), Cmd.Sync());
        Assert.Equal(2, rec.Records.Count);
        Assert.Equal([0UL, 1UL], rec.Records.Select(r => r.SourceIndex));
        Assert.All(rec.Records, r => Assert.Equal(InvalidationSource.SmmuCommandQueue, r.Source));
    }

    [Fact]
    public void Iommufd_SmmuCommands_RecordsCarryEntryIndices_AtcAlone_NoneAfterTheFailingEntry()
    {
        using var setup = new SmmuSetup(new FaultPlan { TimeoutOrdinals = [1] });
        var rec = new RecordingNotifier();
        using NotifierSubscription sub = setup.Engine.Notifiers.Subscribe(rec);
        uint n = 5;
        int rc = setup.Invalidate(ref n, Cmd.NhAsid(0, 2), Cmd.AtcInv(1, 0, 0), Cmd.NhVa(0, 2, 0x1000), Cmd.AtcInv(2, 0, 0), Cmd.NhAll(0));
        Assert.Equal(-Errno.ETIMEDOUT, rc);  // the second ATC_INV (ordinal 1) times out at index 3
        Assert.Equal(3u, n);
        Assert.Equal([0UL, 1UL, 2UL], rec.Records.Select(r => r.SourceIndex));
        Assert.Equal(InvalidationScope.DeviceTlb, rec.Records[1].Scope);
        Assert.Equal(SmmuSetup.Sid1, rec.Records[1].SourceId);      // vSID 1 → StreamID 0x100
        Assert.All(rec.Records, r => Assert.Equal(InvalidationSource.Iommufd, r.Source));
        Assert.Equal(setup.Vmid, rec.Records[0].DomainId);          // VMID forced to the vIOMMU's
    }

    [Fact]
    public void Iommufd_VtdEntries_RecordsCarryEntryIndices_IncludingDeviceTlbs()
    {
        using var setup = new VtdSetup();
        var rec = new RecordingNotifier();
        using NotifierSubscription sub = setup.Engine.Notifiers.Subscribe(rec);
        var entries = new VtdEntries(setup.U, 3).Set(0, 0x1000, 1).Set(1, 0x8000, 2, VtdS1Invalidate.FlagLeaf).Set(2, 0, ulong.MaxValue);
        uint n = 3;
        Assert.Equal(0, setup.Invalidate(entries, ref n));
        // One IOTLB record and one device-TLB record (the ATS device) per entry.
        Assert.Equal(6, rec.Records.Count);
        Assert.Equal([0UL, 0UL, 1UL, 1UL, 2UL, 2UL], rec.Records.Select(r => r.SourceIndex));
        Assert.All(rec.Records, r => Assert.Equal(InvalidationSource.Iommufd, r.Source));
        Assert.Equal(InvalidationScope.IotlbRange, rec.Records[2].Scope);
        Assert.True(rec.Records[2].LeafOnly);
        Assert.Equal((0x8000UL, 0x9FFFUL), (rec.Records[2].Descriptor.First, rec.Records[2].Descriptor.Last));
        Assert.Equal(InvalidationScope.DeviceTlb, rec.Records[3].Scope);
        Assert.Equal(VtdSetup.AtsSid, rec.Records[3].SourceId);
        Assert.Equal(setup.Did, rec.Records[4].DomainId);
    }
}

/// <summary>The record's documented layout.</summary>
public class InvalidationRecordLayoutTests
{
    [Fact]
    public void InvalidationRecord_Is48BlittableBytesWithTheDocumentedOffsets()
    {
        Assert.Equal(48, System.Runtime.CompilerServices.Unsafe.SizeOf<InvalidationRecord>());
        Assert.False(System.Runtime.CompilerServices.RuntimeHelpers.IsReferenceOrContainsReferences<InvalidationRecord>());
        Assert.False(System.Runtime.CompilerServices.RuntimeHelpers.IsReferenceOrContainsReferences<NotifierFilter>());
        Assert.Equal(0, (int)System.Runtime.InteropServices.Marshal.OffsetOf<InvalidationRecord>(nameof(InvalidationRecord.Descriptor)));
        Assert.Equal(32, (int)System.Runtime.InteropServices.Marshal.OffsetOf<InvalidationRecord>(nameof(InvalidationRecord.SourceIndex)));
        Assert.Equal(40, (int)System.Runtime.InteropServices.Marshal.OffsetOf<InvalidationRecord>(nameof(InvalidationRecord.Source)));
        Assert.Equal(41, (int)System.Runtime.InteropServices.Marshal.OffsetOf<InvalidationRecord>(nameof(InvalidationRecord.Status)));
        var r = new InvalidationRecord(InvalidationDescriptor.IotlbRange(3, 0, 0x1000, 0x1FFF, leafOnly: true), InvalidationSource.VtdQueue, 9, InvalidationStatus.Ok);
        Span<byte> bytes = stackalloc byte[48];
        System.Runtime.InteropServices.MemoryMarshal.Write(bytes, in r);
        Assert.Equal(9UL, BitConverter.ToUInt64(bytes[32..40]));
        Assert.Equal((byte)InvalidationSource.VtdQueue, bytes[40]);
        Assert.True(bytes[42..].SequenceEqual(new byte[6]));
        Assert.True(r.LeafOnly && r.HasAddressRange && r.DomainId == 3);
    }
}
