using FastInval.Smmu;
using FastInval.Tests.Memory;
using static FastInval.Smmu.SmmuRegisters;

namespace FastInval.Tests.Smmu;

public class SmmuQueueTests
{
    /// <summary>The guest-memory implementation the unit runs over (the derived classes run every test over the others).</summary>
    protected virtual GuestMemoryKind Kind => GuestMemoryKind.Managed;

    private static void FillS1(InvalidationEngine e, ushort vmid, uint asid, ulong va) =>
        Assert.NotEqual(FillResult.Rejected, e.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, vmid, asid, va, va)));

    private static bool HasS1(InvalidationEngine e, ushort vmid, uint asid, ulong va) =>
        e.Iotlb.TryLookup(TranslationStage.Stage1, vmid, asid, va, out _);

    [Fact]
    public void Id_RegistersDescribeTheDefaultPart()
    {
        using var rig = new SmmuRig(kind: Kind);
        ulong idr0 = rig.Smmu.ReadRegister(Idr0, 4);
        Assert.Equal(3UL, idr0 & 3);                       // S1P, S2P
        Assert.NotEqual(0UL, idr0 & (1 << 10));            // ATS
        Assert.NotEqual(0UL, idr0 & (1 << 12));            // ASID16
        Assert.NotEqual(0UL, idr0 & (1 << 13));            // MSI
        Assert.NotEqual(0UL, idr0 & (1 << 18));            // VMID16
        Assert.Equal(1UL, (idr0 >> 24) & 3);               // no stalling
        Assert.Equal(19UL, (rig.Smmu.ReadRegister(Idr1, 4) >> 21) & 0x1F); // CMDQS
        Assert.Equal(20UL, (rig.Smmu.ReadRegister(Idr1, 4) >> 6) & 0x1F);  // SSIDSIZE
        Assert.NotEqual(0UL, rig.Smmu.ReadRegister(Idr3, 4) & (1 << 10)); // RIL
        Assert.Equal(5UL, rig.Smmu.ReadRegister(Idr5, 4) & 7);             // 48-bit OAS
        Assert.Equal(1UL, rig.Smmu.ReadRegister(Aidr, 4));                 // SMMUv3.1 (with v3.2's RIL)
        using var small = new SmmuRig(options: new SmmuOptions { Features = new SmmuFeatures { Stage2 = false, RangeInvalidation = false, Ats = false, Msi = false } }, kind: Kind);
        ulong s0 = small.Smmu.ReadRegister(Idr0, 4);
        Assert.Equal(2UL, s0 & 3);
        Assert.Equal(0UL, s0 & ((1 << 10) | (1 << 13)));
        Assert.Equal(0UL, small.Smmu.ReadRegister(Idr3, 4) & (1 << 10));
    }

    [Theory]
    [InlineData(true, true, true)]
    [InlineData(true, false, true)]
    [InlineData(false, true, true)]
    [InlineData(true, true, false)]
    public void IdRegisters_AreConsistentWithTheRevisionAidrClaims(bool stage1, bool stage2, bool ril)
    {
        // The mandatory features of each revision (SMMUv3 6.3.1 IDR0.Hyp, 6.3.4 IDR3; 2.9: a v3.x part may add any
        // v3.(x+1) feature, none of v3.(x+2)).
        using var rig = new SmmuRig(options: new SmmuOptions { Features = new SmmuFeatures { Stage1 = stage1, Stage2 = stage2, RangeInvalidation = ril } });
        uint idr0 = (uint)rig.Smmu.ReadRegister(Idr0, 4), idr3 = (uint)rig.Smmu.ReadRegister(Idr3, 4);
        int minor = (int)(rig.Smmu.ReadRegister(Aidr, 4) & 0xF);
        Assert.Equal(0UL, rig.Smmu.ReadRegister(Aidr, 4) >> 4);               // ArchMajorRev 0: SMMUv3.x
        bool s1p = (idr0 & 2) != 0, s2p = (idr0 & 1) != 0, hyp = (idr0 & (1u << 9)) != 0;
        bool had = (idr3 & (1u << 2)) != 0, xnx = (idr3 & (1u << 4)) != 0, fwb = (idr3 & (1u << 8)) != 0;
        bool rilBit = (idr3 & (1u << 10)) != 0;
        int bbml = (int)(idr3 >> 11) & 3;
        Assert.Equal((stage1, stage2, ril), (s1p, s2p, rilBit));
        Assert.True(!hyp || (s1p && s2p), "HYP is RES0 without both stages");
        Assert.True(s1p || !had, "HAD is 0 without stage 1");
        if (minor >= 1)
        {
            Assert.True(!s1p || had, "v3.1: HAD is mandatory with stage 1");
            Assert.True(!s2p || xnx, "v3.1: XNX is mandatory with stage 2");
        }
        else
        {
            Assert.False(xnx || rilBit, "v3.0 may carry v3.1 features only");
        }

        if (minor >= 2)
        {
            Assert.True(!(s1p && s2p) || hyp, "v3.2: HYP is mandatory with both stages");
            Assert.True(rilBit && fwb && bbml is 1 or 2, "v3.2: RIL, FWB and BBML 1/2 are mandatory");
        }
    }

    [Fact]
    public void Prod_WriteConsumesEveryCommandAndSyncWritesItsMsi()
    {
        using var rig = new SmmuRig(kind: Kind);
        FillS1(rig.Engine, 1, 2, 0x1000);
        FillS1(rig.Engine, 1, 3, 0x1000);
        rig.Submit(Cmd.NhVa(1, 2, 0x1000), SmmuRig.SyncIrq(SmmuRig.MsiRegion + 0x40, 0xABCD));
        Assert.Equal(2u, rig.ConsIndex);
        Assert.Equal(rig.Prod, rig.Cons);
        Assert.False(HasS1(rig.Engine, 1, 2, 0x1000));
        Assert.True(HasS1(rig.Engine, 1, 3, 0x1000));
        Assert.Equal([(SmmuRig.MsiRegion + 0x40, 0xABCDu)], rig.Msis);
        Assert.Equal(0xABCDu, BitConverter.ToUInt32(rig.MsiPage, 0x40));
        Assert.Equal([SmmuInterrupt.CommandSync], rig.Wired);
        Assert.Equal(2UL, rig.Smmu.CommandFetches);
    }

    [Fact]
    public void SyncMsiAndWiredSignal_AreObservedOnlyAfterConsHasPassedTheSync()
    {
        // Software that polls the MSI infers CONS from it (SMMUv3 3.18, 4.7.3): when the MSI write or the interrupt is
        // observable, CONS must already be past the CMD_SYNC.
        using var rig = new SmmuRig();
        rig.Submit(Cmd.NhVa(1, 2, 0x1000), SmmuRig.SyncIrq(SmmuRig.MsiRegion + 0x40, 0xABCD));
        Assert.Equal([2u], rig.ConsAtMsi);
        Assert.Equal([2u], rig.ConsAtWired);
        rig.Submit(Cmd.Sync(), Cmd.NhVa(1, 2, 0x1000));               // SIG_SEV: the event follows CONS too
        Assert.Equal([2u, 3u], rig.ConsAtWired);
        Assert.Equal([SmmuInterrupt.CommandSync, SmmuInterrupt.Event], rig.Wired);
        Assert.Equal(4u, rig.ConsIndex);
    }

    [Fact]
    public void SyncMsiCallback_SeesItsOwnMsiDataInMemoryAndConsPastTheSyncAfterAWrap()
    {
        using var rig = new SmmuRig(log2Size: 1);
        rig.Submit(Cmd.Sync(), Cmd.Sync());
        rig.Submit(Cmd.NhVa(1, 2, 0x1000), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 7)); // the sync is index 1 of the second lap
        Assert.Equal([0u], rig.ConsAtMsi.Select(c => c & 3u));          // wrap bit back to 0, index 0
        Assert.Equal(7u, BitConverter.ToUInt32(rig.MsiPage, 0));
    }

    [Fact]
    public void Queue_WrapsAndAFullQueueIsConsumedWhole()
    {
        using var rig = new SmmuRig(log2Size: 2, kind: Kind); // 4 entries
        for (int round = 0; round < 5; round++)
        {
            FillS1(rig.Engine, 1, 1, 0x1000);
            rig.Submit(Cmd.NhVa(1, 1, 0x1000), Cmd.Sync(), Cmd.Sync());
            Assert.Equal(rig.Prod, rig.Cons);
            Assert.False(HasS1(rig.Engine, 1, 1, 0x1000));
        }

        // Full: PROD = CONS with the wrap bit flipped means 4 entries to consume.
        FillS1(rig.Engine, 1, 1, 0x2000);
        rig.Submit(Cmd.Sync(), Cmd.Sync(), Cmd.Sync(), Cmd.NhVa(1, 1, 0x2000));
        Assert.Equal(rig.Prod, rig.Cons);
        Assert.False(HasS1(rig.Engine, 1, 1, 0x2000));
        Assert.Equal(15UL + 4, rig.Smmu.CommandFetches);
    }

    [Fact]
    public void IllegalCommand_StopsOnItselfAndResumesAfterSkipErrAndAcknowledgement()
    {
        using var rig = new SmmuRig(kind: Kind);
        FillS1(rig.Engine, 1, 1, 0x1000);
        FillS1(rig.Engine, 1, 1, 0x2000);
        rig.Submit(Cmd.NhVa(1, 1, 0x1000), new SmmuCommand(0x7F, 0), Cmd.NhVa(1, 1, 0x2000), Cmd.Sync());
        Assert.Equal(1u, rig.ConsIndex);
        Assert.Equal(1u, rig.ConsError);                 // CERROR_ILL
        Assert.True(rig.ErrorActive);
        Assert.Equal([SmmuInterrupt.GlobalError], rig.Wired);
        Assert.False(HasS1(rig.Engine, 1, 1, 0x1000));    // the command before it ran
        Assert.True(HasS1(rig.Engine, 1, 1, 0x2000));     // the one after it did not

        rig.Smmu.WriteRegister(CmdqProd, rig.Prod, 4);   // no progress while the error is active
        Assert.Equal(1u, rig.ConsIndex);

        rig.ReplaceAtCons(Cmd.Sync());                   // Linux skip_err
        rig.Acknowledge();
        Assert.False(rig.ErrorActive);
        Assert.Equal(rig.Prod, rig.Cons & 0xF_FFFF);
        Assert.False(HasS1(rig.Engine, 1, 1, 0x2000));
    }

    [Fact]
    public void UnacknowledgedIllegalCommandFetchedAgain_RaisesANewErrorAfterAck()
    {
        using var rig = new SmmuRig(kind: Kind);
        rig.Submit(new SmmuCommand(0x00, 0));
        Assert.Equal(1u, rig.ConsError);
        rig.Acknowledge();                                // acked without fixing: the command is fetched again
        Assert.True(rig.ErrorActive);
        Assert.Equal(2, rig.Wired.Count(w => w == SmmuInterrupt.GlobalError));
        Assert.Equal(2UL, rig.Smmu.CommandFetches);
    }

    [Fact]
    public void FetchAbortFromUnmappedQueueMemory_IsCerrorAbtAndRetriesAfterAck()
    {
        var memory = new GuestMemory();
        using var smmu = new SmmuV3(memory);
        smmu.WriteRegister(CmdqBase, 0x9000_0000UL | 4, 8);
        smmu.WriteRegister(Cr0, Cr0CmdqEn, 4);
        smmu.WriteRegister(CmdqProd, 1, 4);
        Assert.Equal(2u, ((uint)smmu.ReadRegister(CmdqCons, 4) & ConsErrMask) >> ConsErrShift);
        Assert.Equal(0u, (uint)smmu.ReadRegister(CmdqCons, 4) & 0xF_FFFF);
        var queue = new byte[256];
        Cmd.Sync().Write(queue);
        memory.Map(0x9000_0000UL, queue);                 // the memory comes back
        smmu.WriteRegister(Gerrorn, smmu.ReadRegister(Gerror, 4), 4);
        Assert.Equal(1u, (uint)smmu.ReadRegister(CmdqCons, 4) & 0xF_FFFF);
    }

    [Fact]
    public void FaultPlanFetchError_IsCerrorAbtAtThatOrdinalOnly()
    {
        using var rig = new SmmuRig(options: new SmmuOptions { FaultPlan = new FaultPlan { FetchErrorOrdinals = [1] } }, kind: Kind);
        rig.Submit(Cmd.Sync(), Cmd.Sync(), Cmd.Sync());
        Assert.Equal(1u, rig.ConsIndex);
        Assert.Equal(2u, rig.ConsError);
        rig.Acknowledge();
        Assert.Equal(3u, rig.ConsIndex);
        Assert.Equal(4UL, rig.Smmu.CommandFetches);
    }

    [Fact]
    public void AtcTimeOut_IsReportedAtTheNextSyncWhichIsNotConsumedNorSignalled()
    {
        using var rig = new SmmuRig(options: new SmmuOptions { FaultPlan = new FaultPlan { TimeoutSourceIds = [0x10] } }, kind: Kind);
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, 3, 0x1000, 0x1000));
        FillS1(rig.Engine, 1, 1, 0x1000);
        rig.Submit(Cmd.NhVa(1, 1, 0x1000), Cmd.AtcInv(0x10, 0x1000, 0, ssid: 3), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 1));
        Assert.Equal(2u, rig.ConsIndex);                  // on the SYNC
        Assert.Equal(3u, rig.ConsError);                  // CERROR_ATC_INV_SYNC
        Assert.Empty(rig.Msis);
        Assert.DoesNotContain(SmmuInterrupt.CommandSync, rig.Wired);
        Assert.False(HasS1(rig.Engine, 1, 1, 0x1000));    // the TLBI still took effect
        Assert.True(rig.Engine.DeviceTlb.TryLookup(0x10, 3, 0x1000, out _)); // the ATC was not invalidated
        rig.Acknowledge();                                // retry the SYNC: it completes
        Assert.Equal(rig.Prod, rig.Cons & 0xF_FFFF);
        Assert.Equal([(SmmuRig.MsiRegion, 1u)], rig.Msis);
    }

    [Fact]
    public void ASecondErrorWhileOne_IsActiveIsNotLoggedAgain()
    {
        using var rig = new SmmuRig(kind: Kind);
        rig.Submit(new SmmuCommand(0x7F, 0));
        ulong gerror = rig.Smmu.ReadRegister(Gerror, 4);
        rig.Smmu.WriteRegister(Cr0, Cr0SmmuEn, 4);       // disabling and enabling the queue neither acks nor clears
        rig.Smmu.WriteRegister(Cr0, Cr0SmmuEn | Cr0CmdqEn, 4);
        Assert.Equal(gerror, rig.Smmu.ReadRegister(Gerror, 4));
        Assert.True(rig.ErrorActive);
        Assert.Single(rig.Wired, SmmuInterrupt.GlobalError);
    }

    [Fact]
    public void GerrorInterrupt_IsAnMsiWhenConfiguredAndNothingWhenDisabled()
    {
        using var rig = new SmmuRig(kind: Kind);
        rig.Smmu.WriteRegister(GerrorIrqCfg0, SmmuRig.MsiRegion + 0x100, 8);
        rig.Smmu.WriteRegister(GerrorIrqCfg1, 0x55, 4);
        rig.Submit(new SmmuCommand(0x7F, 0));
        Assert.Equal([(SmmuRig.MsiRegion + 0x100, 0x55u)], rig.Msis);
        Assert.Empty(rig.Wired);
        rig.ReplaceAtCons(Cmd.Sync());
        rig.Acknowledge();
        rig.Smmu.WriteRegister(IrqCtrl, 0, 4);
        rig.Submit(new SmmuCommand(0x7F, 0));
        Assert.Single(rig.Msis);
        Assert.True(rig.ErrorActive);
    }

    [Fact]
    public void Sync_VariantsSignalAsCsSays()
    {
        using var rig = new SmmuRig(kind: Kind);
        rig.Submit(Cmd.Of(SmmuOpcode.Sync));                                   // SIG_NONE
        Assert.Empty(rig.Wired);
        rig.Submit(Cmd.Sync());                                                // SIG_SEV
        Assert.Equal([SmmuInterrupt.Event], rig.Wired);
        rig.Submit(SmmuRig.SyncIrq(0, 7));                                     // SIG_IRQ, no address: wired only
        Assert.Equal([SmmuInterrupt.Event, SmmuInterrupt.CommandSync], rig.Wired);
        Assert.Empty(rig.Msis);
        rig.Submit(SmmuRig.SyncIrq(0xDEAD_0000, 7));                           // MSI to nowhere: aborted, reported
        Assert.Empty(rig.Msis);
        Assert.NotEqual(0UL, (rig.Smmu.ReadRegister(Gerror, 4) ^ rig.Smmu.ReadRegister(Gerrorn, 4)) & GerrorMsiCmdqAbtErr);
        Assert.Equal(rig.Prod, rig.Cons);                                      // the SYNC still completed
        using var noSev = new SmmuRig(options: new SmmuOptions { Features = new SmmuFeatures { Sev = false, Msi = false } }, kind: Kind);
        noSev.Submit(Cmd.Sync(), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 9));
        Assert.Equal([SmmuInterrupt.CommandSync], noSev.Wired);
        Assert.Empty(noSev.Msis);
        Assert.Equal(0u, BitConverter.ToUInt32(noSev.MsiPage, 0));
    }

    [Fact]
    public void AtcInv_IsIgnoredWhileTheSmmuIsDisabled()
    {
        using var rig = new SmmuRig(smmuEnable: false, kind: Kind);
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x1000, 0x1000));
        rig.Submit(Cmd.AtcInv(0x10, 0, 52), Cmd.Sync());
        Assert.True(rig.Engine.DeviceTlb.TryLookup(0x10, AddressSpace.None, 0x1000, out _));
        rig.Smmu.WriteRegister(Cr0, Cr0SmmuEn | Cr0CmdqEn, 4);
        rig.Submit(Cmd.AtcInv(0x10, 0, 52), Cmd.Sync());
        Assert.False(rig.Engine.DeviceTlb.TryLookup(0x10, AddressSpace.None, 0x1000, out _));
    }

    [Fact]
    public void BaseAndCons_IgnoreWritesWhileTheQueueIsEnabled()
    {
        using var rig = new SmmuRig(kind: Kind);
        ulong baseValue = rig.Smmu.ReadRegister(CmdqBase, 8);
        rig.Smmu.WriteRegister(CmdqBase, 0x1234_0000UL | 3, 8);
        rig.Smmu.WriteRegister(CmdqCons, 5, 4);
        Assert.Equal(baseValue, rig.Smmu.ReadRegister(CmdqBase, 8));
        Assert.Equal(0u, rig.Cons);
        rig.Smmu.WriteRegister(Cr0, 0, 4);
        rig.Smmu.WriteRegister(CmdqCons, 5, 4);
        rig.Smmu.WriteRegister(CmdqBase, 0x1234_0000UL | 3, 8);
        Assert.Equal(5u, rig.Cons);
        Assert.Equal(0x1234_0000UL | 3, rig.Smmu.ReadRegister(CmdqBase, 8));
        Assert.Equal(0x1234_0000UL, rig.Smmu.ReadRegister(CmdqBase, 4) & ~0x1FUL);
        Assert.Equal(0UL, rig.Smmu.ReadRegister(CmdqBase + 4, 4));
    }

    [Fact]
    public void Log2sizeAboveCmdqs_IsCappedAndTheBaseIsAlignedToTheQueue()
    {
        using var rig = new SmmuRig(log2Size: 4, options: new SmmuOptions { MaxCommandQueueLog2 = 4 }, enable: false, kind: Kind);
        rig.Smmu.WriteRegister(CmdqBase, SmmuRig.QueueBase | 0x1F, 8);  // LOG2SIZE 31 → 4
        rig.Smmu.WriteRegister(Cr0, Cr0CmdqEn, 4);
        rig.Submit(Cmd.Sync());
        Assert.Equal(1u, rig.ConsIndex);
        Assert.Equal(0u, rig.ConsError);
    }

    [Fact]
    public void BadRegisterAccesses_AreIgnoredAndReadZero()
    {
        using var rig = new SmmuRig(kind: Kind);
        Assert.Equal(0UL, rig.Smmu.ReadRegister(Idr0, 2));
        Assert.Equal(0UL, rig.Smmu.ReadRegister(Idr0 + 1, 4));
        Assert.Equal(0UL, rig.Smmu.ReadRegister(0x1_0000, 4));
        Assert.Equal(0UL, rig.Smmu.ReadRegister(CmdqProd, 8) >> 63);
        ulong idr0 = rig.Smmu.ReadRegister(Idr0, 4);
        rig.Smmu.WriteRegister(Idr0, 0, 4);
        rig.Smmu.WriteRegister(CmdqProd, 1, 3);
        rig.Smmu.WriteRegister(0xFFFF_FFF0, 1, 8);
        Assert.Equal(idr0, rig.Smmu.ReadRegister(Idr0, 4));
        Assert.Equal(0u, rig.Prod);
        Assert.Equal((ulong)rig.Cons << 32 | rig.Prod, rig.Smmu.ReadRegister(CmdqProd, 8));
    }

    [Fact]
    public void CfgiRangesAndS2Ipa_ReachTheCachesThroughTheQueue()
    {
        using var rig = new SmmuRig(kind: Kind);
        for (uint sid = 0x20; sid < 0x30; sid++)
        {
            rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.StreamTableEntry, sid, AddressSpace.None, 1, sid));
        }

        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.ContextDescriptor, 0x24, 7, 1, 1));
        rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 3, AddressSpace.None, 0x20_0000, 0x20_0000, sizeLog2: 21));
        rig.Submit(Cmd.CfgiSteRange(0x27, 1), Cmd.S2Ipa(3, 0x20_0000, num: 1, ttl: 2, tg: 1), Cmd.Sync());
        Assert.False(rig.Engine.ConfigCache.TryLookup(ConfigKinds.StreamTableEntry, 0x24, AddressSpace.None, out _));
        Assert.False(rig.Engine.ConfigCache.TryLookup(ConfigKinds.ContextDescriptor, 0x24, 7, out _));
        Assert.True(rig.Engine.ConfigCache.TryLookup(ConfigKinds.StreamTableEntry, 0x23, AddressSpace.None, out _));
        Assert.True(rig.Engine.ConfigCache.TryLookup(ConfigKinds.StreamTableEntry, 0x28, AddressSpace.None, out _));
        Assert.False(rig.Engine.Iotlb.TryLookup(TranslationStage.Stage2, 3, AddressSpace.None, 0x20_1000, out _));
    }

    [Fact]
    public void Commands_AllocateNothingAfterWarmUp()
    {
        using var rig = new SmmuRig(log2Size: 8, kind: Kind);
        SmmuCommand[] batch = [.. Enumerable.Range(0, 16).Select(i => Cmd.NhVa(1, 1, (ulong)i << 12, leaf: true, num: 1, ttl: 3, tg: 1)), Cmd.AtcInv(0x10, 0, 2, ssid: 1), SmmuRig.SyncIrq(SmmuRig.MsiRegion, 1)];
        for (int i = 0; i < 20; i++)
        {
            rig.Submit(batch);
        }

        rig.Msis.Capacity = 1000;
        rig.Wired.Capacity = 1000;
        long allocated = AllocationMeter.Measure(() =>
        {
            for (int i = 0; i < 20; i++)
            {
                rig.Submit(batch);
            }
        });
        Assert.Equal(0, allocated);
        Assert.Equal(rig.Prod, rig.Cons);
    }
}

/// <summary>Every SMMU command-queue test again, over <see cref="NativeGuestMemory"/>.</summary>
public sealed class SmmuQueueTestsOverNativeMemory : SmmuQueueTests
{
    /// <inheritdoc/>
    protected override GuestMemoryKind Kind => GuestMemoryKind.Native;
}

/// <summary>Every SMMU command-queue test again, over <see cref="CallbackGuestMemory"/>.</summary>
public sealed class SmmuQueueTestsOverCallbackMemory : SmmuQueueTests
{
    /// <inheritdoc/>
    protected override GuestMemoryKind Kind => GuestMemoryKind.Callback;
}
