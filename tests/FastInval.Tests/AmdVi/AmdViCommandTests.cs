using FastInval.AmdVi;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.Tests.AmdVi;

/// <summary>Every command's effect on the caches, completion waits, and every error: ILLEGAL_COMMAND_ERROR,
/// COMMAND_HARDWARE_ERROR, IOTLB_INV_TIMEOUT, the error stop and the restart.</summary>
public class AmdViCommandTests
{
    private const ushort Dom = 7;
    private const ushort Dev = 0x10;

    private static TranslationEntry Host(ulong page, ushort dom = Dom) => TranslationEntry.Leaf(TranslationStage.Stage2, dom, AddressSpace.None, page, page);

    private static TranslationEntry Guest(ulong page, uint pasid, ushort dom = Dom, TranslationStage stage = TranslationStage.Stage1) =>
        TranslationEntry.Leaf(stage, dom, pasid, page, page);

    [Fact]
    public void CompletionWait_Store_Writes64BitDataAfterEarlierCommands()
    {
        using var rig = new AmdViRig();
        rig.Engine.Iotlb.Fill(Host(0x5000));
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, 0x5000), AmdViCommand.CompletionWait(AmdViRig.StoreBase + 8, 0x1122_3344_5566_7788));
        Assert.Equal(0, rig.Engine.Iotlb.Count);
        Assert.Equal(0x1122_3344_5566_7788UL, rig.StoreAt(8));
        Assert.Equal(32UL, rig.Head);
        Assert.Equal(0, rig.Interrupts);
        Assert.Empty(rig.EventLog());
    }

    [Fact]
    public void CompletionWait_Interrupt_SetsComWaitIntAndSignalsAfterTheHeadPassedIt()
    {
        using var rig = new AmdViRig();
        rig.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 5, interrupt: true));
        Assert.Equal(1, rig.Interrupts);
        Assert.Equal(16UL, rig.HeadAtInterrupt[0]);
        Assert.Equal(5UL, rig.StoreAt(0)); // stored before the interrupt
        Assert.NotEqual(0UL, rig.StatusAtInterrupt[0] & StatusComWaitInt);
    }

    [Fact]
    public void CompletionWait_InterruptWithoutComWaitIntEn_SetsTheStatusBitOnly()
    {
        using var rig = new AmdViRig(control: ControlEventLogEn);
        rig.Submit(AmdViCommand.CompletionWait(interrupt: true, store: false));
        Assert.Equal(0, rig.Interrupts);
        Assert.NotEqual(0UL, rig.Status & StatusComWaitInt);
    }

    [Fact]
    public void CompletionWait_NeitherStoreNorInterrupt_IsAnOrderingPoint()
    {
        using var rig = new AmdViRig();
        rig.Submit(AmdViCommand.CompletionWait(store: false, flush: true), AmdViCommand.CompletionWait(AmdViRig.StoreBase, 9));
        Assert.Equal(32UL, rig.Head);
        Assert.True(rig.Running);
        Assert.Equal(9UL, rig.StoreAt(0));
    }

    [Fact]
    public void CompletionWait_StoreToUnbackedMemory_IsHardwareErrorAndStopsOnTheWait()
    {
        using var rig = new AmdViRig();
        rig.Engine.Iotlb.Fill(Host(0x5000));
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, 0x5000), AmdViCommand.CompletionWait(AmdViRig.Unmapped, 1, interrupt: true),
            AmdViCommand.CompletionWait(AmdViRig.StoreBase, 2));
        Assert.Equal(0, rig.Engine.Iotlb.Count); // the invalidation before it ran
        Assert.Equal(16UL, rig.Head);
        Assert.False(rig.Running);
        Assert.Equal(0UL, rig.StoreAt(0));
        Assert.Equal(0UL, rig.Status & StatusComWaitInt);
        AmdViEvent e = Assert.Single(rig.EventLog());
        Assert.Equal(AmdViEvent.CommandHardwareError(AmdViHardwareErrorType.MasterAbort, AmdViRig.Unmapped), e);
    }

    [Fact]
    public void InvalidateIommuPages_HostPage_RemovesStage2EntriesOfThePageAndNestedEntriesOfTheDomain()
    {
        using var rig = new AmdViRig();
        rig.Engine.Iotlb.Fill(Host(0x5000));
        rig.Engine.Iotlb.Fill(Host(0x6000));
        rig.Engine.Iotlb.Fill(Host(0x5000, dom: 8));
        rig.Engine.Iotlb.Fill(Guest(0x9000, 3, stage: TranslationStage.Nested));
        rig.Engine.Iotlb.Fill(Guest(0x5000, 3));
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, 0x5000));
        Assert.False(rig.Engine.Iotlb.TryLookup(TranslationStage.Stage2, Dom, AddressSpace.None, 0x5000, out _));
        Assert.True(rig.Engine.Iotlb.TryLookup(TranslationStage.Stage2, Dom, AddressSpace.None, 0x6000, out _));
        Assert.True(rig.Engine.Iotlb.TryLookup(TranslationStage.Stage2, 8, AddressSpace.None, 0x5000, out _));
        Assert.False(rig.Engine.Iotlb.TryLookup(TranslationStage.Nested, Dom, 3, 0x9000, out _));
        Assert.True(rig.Engine.Iotlb.TryLookup(TranslationStage.Stage1, Dom, 3, 0x5000, out _)); // GN = 0 leaves guest-only entries
    }

    [Theory]
    [InlineData(0x4000UL, 0x4000UL, 0x5FFFUL)]            // bit 12 clear: 8 KiB
    [InlineData(0x5000UL, 0x4000UL, 0x7FFFUL)]            // bit 13 first clear: 16 KiB
    [InlineData(0x3F_F000UL, 0x0UL, 0x7F_FFFFUL)]         // bits 21:12 set: 8 MiB at 0
    [InlineData(0x7FFF_FFFF_FFFF_F000UL, 0UL, ulong.MaxValue)]
    [InlineData(0x0007_FFFF_FFFF_F000UL, 0UL, ulong.MaxValue)] // bits 50:12 set: everything
    public void InvalidateIommuPages_SizeBit_IsANaturallyAlignedBlock(ulong address, ulong first, ulong last)
    {
        AmdViCommandDecoder.Range(address | AmdViCommandLayout.SizeMask, out ulong f, out ulong l);
        Assert.Equal((first, last), (f, l));
        using var rig = new AmdViRig();
        if (first > 0)
        {
            rig.Engine.Iotlb.Fill(Host(first - 0x1000));
        }

        rig.Engine.Iotlb.Fill(Host(first));
        rig.Engine.Iotlb.Fill(Host(Math.Min(last, 0xFFFF_FFFF_FFFF_F000UL) & ~0xFFFUL));
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, address, size: true));
        Assert.Equal(first > 0 ? 1 : 0, rig.Engine.Iotlb.Count);
    }

    [Fact]
    public void InvalidateIommuPages_PdeClear_KeepsPageDirectoryEntries()
    {
        using var rig = new AmdViRig();
        rig.Engine.Iotlb.Fill(Host(0x20_0000));
        rig.Engine.Iotlb.Fill(TranslationEntry.Table(TranslationStage.Stage2, Dom, AddressSpace.None, 0x20_0000, 0x7000, 21));
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, 0x20_0000, pde: false));
        Assert.Equal(1, rig.Engine.Iotlb.Count);
        Assert.True(rig.Engine.Iotlb.TryLookupTable(TranslationStage.Stage2, Dom, AddressSpace.None, 0x20_0000, 21, out _));
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, 0x20_0000, pde: true));
        Assert.Equal(0, rig.Engine.Iotlb.Count);
    }

    [Fact]
    public void InvalidateIommuPages_Guest_RemovesThePasidsFirstStageEntriesAndGlobalOnesInTheRange()
    {
        using var rig = new AmdViRig();
        rig.Engine.Iotlb.Fill(Guest(0x5000, 3));
        rig.Engine.Iotlb.Fill(Guest(0x5000, 4));
        rig.Engine.Iotlb.Fill(Guest(0x5000, 3, stage: TranslationStage.Nested));
        rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, Dom, AddressSpace.None, 0x5000, 0x5000, global: true));
        rig.Engine.Iotlb.Fill(Host(0x5000));
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, 0x5000, pasid: 3));
        Assert.Equal(2, rig.Engine.Iotlb.Count);
        Assert.True(rig.Engine.Iotlb.TryLookup(TranslationStage.Stage1, Dom, 4, 0x5000, out _));
        Assert.True(rig.Engine.Iotlb.TryLookup(TranslationStage.Stage2, Dom, AddressSpace.None, 0x5000, out _));
    }

    [Fact]
    public void InvalidateIommuPages_GuestWithoutGuestTranslation_IsIllegal()
    {
        using var rig = new AmdViRig(new AmdViOptions { GuestTranslation = false });
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, 0x5000, pasid: 3));
        Assert.Equal(AmdViEvent.IllegalCommand(AmdViRig.BufferBase), Assert.Single(rig.EventLog()));
    }

    [Fact]
    public void InvalidateIotlbPages_WithAndWithoutPasid_RemoveTheDevicesEntries()
    {
        using var rig = new AmdViRig();
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(Dev, AddressSpace.None, 0x5000, 0x5000));
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(Dev, 3, 0x8000, 0x8000));
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(Dev, 4, 0x8000, 0x8000));
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(Dev + 1, AddressSpace.None, 0x5000, 0x5000));
        rig.Submit(AmdViCommand.InvalidateIotlbPages(Dev, 0x8000, pasid: 0x3, maxPending: 32));
        Assert.Equal(3, rig.Engine.DeviceTlb.Count);
        Assert.True(rig.Engine.DeviceTlb.TryLookup(Dev, 4, 0x8000, out _));
        rig.Submit(AmdViCommand.InvalidateIotlbPages(Dev, 0x5000));
        Assert.True(rig.Engine.DeviceTlb.TryLookup(Dev + 1, AddressSpace.None, 0x5000, out _));
        Assert.Equal(1, rig.Engine.DeviceTlb.Count); // no PASID: the no-PASID page and every PASID entry of the device
    }

    [Fact]
    public void InvalidateIotlbPages_PasidPieces_AreGatheredFromTheirThreeFields()
    {
        var c = AmdViCommand.InvalidateIotlbPages(Dev, 0, pasid: 0xA_BC_DE);
        Assert.Equal(0xA_BC_DEu, c.IotlbPasid);
        Assert.Equal(0xAUL << 56, c.Qword0 & AmdViCommandLayout.IotlbPasidHighMask);
        Assert.Equal(0xBCUL << 16, c.Qword0 & AmdViCommandLayout.IotlbPasidMiddleMask);
        Assert.Equal(0xDEUL << 48, c.Qword0 & AmdViCommandLayout.IotlbPasidLowMask);
        Assert.Equal(Dev, c.QueueId);
    }

    [Fact]
    public void InvalidateIotlbPages_WithoutRemoteIotlbs_IsIllegal()
    {
        using var rig = new AmdViRig(new AmdViOptions { DeviceTlb = false });
        rig.Submit(AmdViCommand.InvalidateIotlbPages(Dev, 0x5000));
        Assert.Equal(AmdViEventCode.IllegalCommandError, Assert.Single(rig.EventLog()).Code);
    }

    [Fact]
    public void InvalidateIotlbPages_TimedOut_WritesIotlbInvTimeoutAndTheBufferGoesOn()
    {
        using var rig = new AmdViRig(new AmdViOptions { FaultPlan = new FaultPlan { TimeoutOrdinals = [0] } });
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(Dev, AddressSpace.None, 0x5000, 0x5000));
        rig.Submit(AmdViCommand.CompletionWait(store: false), AmdViCommand.InvalidateIotlbPages(Dev, 0x5000),
            AmdViCommand.CompletionWait(AmdViRig.StoreBase, 3));
        Assert.Equal(1, rig.Engine.DeviceTlb.Count); // the device never answered
        Assert.Equal(AmdViEvent.IotlbInvalidationTimeout(Dev, AmdViRig.BufferBase + 16), Assert.Single(rig.EventLog()));
        Assert.Equal(3UL, rig.StoreAt(0));
        Assert.True(rig.Running);
        Assert.Equal(48UL, rig.Head);
        Assert.Equal(1, rig.Interrupts); // EventIntEn
        rig.Submit(AmdViCommand.InvalidateIotlbPages(Dev, 0x5000));
        Assert.Equal(0, rig.Engine.DeviceTlb.Count);
    }

    [Fact]
    public void InvalidateDevTabEntry_RemovesTheDevicesDteAndGuestCr3Entries()
    {
        using var rig = new AmdViRig();
        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, Dev, AddressSpace.None, Dom, 1));
        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.PasidEntry, Dev, 3, Dom, 2));
        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.InterruptEntry, Dev, AddressSpace.None, 0, 3));
        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, Dev + 1, AddressSpace.None, Dom, 4));
        rig.Submit(AmdViCommand.InvalidateDevTabEntry(Dev));
        Assert.Equal(2, rig.Engine.ConfigCache.Count);
        Assert.True(rig.Engine.ConfigCache.TryLookup(ConfigKinds.InterruptEntry, Dev, AddressSpace.None, out _));
        Assert.True(rig.Engine.ConfigCache.TryLookup(ConfigKinds.Context, Dev + 1, AddressSpace.None, out _));
    }

    [Fact]
    public void InvalidateInterruptTable_RemovesTheDevicesInterruptEntriesOnly()
    {
        using var rig = new AmdViRig();
        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.InterruptEntry, Dev, AddressSpace.None, 0, 3));
        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.InterruptEntry, Dev + 1, AddressSpace.None, 0, 3));
        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, Dev, AddressSpace.None, Dom, 1));
        rig.Submit(AmdViCommand.InvalidateInterruptTable(Dev));
        Assert.Equal(2, rig.Engine.ConfigCache.Count);
        Assert.False(rig.Engine.ConfigCache.TryLookup(ConfigKinds.InterruptEntry, Dev, AddressSpace.None, out _));
    }

    [Fact]
    public void InvalidateIommuAll_RemovesEveryIotlbAndConfigurationEntry_ButNotDeviceTlbs()
    {
        using var rig = new AmdViRig();
        rig.Engine.Iotlb.Fill(Host(0x5000));
        rig.Engine.Iotlb.Fill(Guest(0x5000, 3, dom: 9));
        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, Dev, AddressSpace.None, Dom, 1));
        rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(Dev, AddressSpace.None, 0x5000, 0x5000));
        rig.Submit(AmdViCommand.InvalidateIommuAll());
        Assert.Equal(0, rig.Engine.Iotlb.Count);
        Assert.Equal(0, rig.Engine.ConfigCache.Count);
        Assert.Equal(1, rig.Engine.DeviceTlb.Count);
    }

    [Fact]
    public void InvalidateIommuAll_WithoutIaSup_IsIllegal()
    {
        using var rig = new AmdViRig(new AmdViOptions { InvalidateAll = false });
        rig.Submit(AmdViCommand.InvalidateIommuAll());
        Assert.Equal(AmdViEventCode.IllegalCommandError, Assert.Single(rig.EventLog()).Code);
    }

    [Theory]
    [InlineData(0x0)]
    [InlineData(0x6)]
    [InlineData(0x7)]
    [InlineData(0x9)]
    [InlineData(0xA)]
    [InlineData(0xB)]
    [InlineData(0xF)]
    public void UndefinedOrUnsupportedOpcode_IsIllegalCommandErrorAndStopsOnIt(int opcode)
    {
        using var rig = new AmdViRig();
        rig.Engine.Iotlb.Fill(Host(0x5000));
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, 0x5000), new AmdViCommand((ulong)opcode << 60, 0x1234),
            AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1));
        Assert.Equal(0, rig.Engine.Iotlb.Count);
        Assert.Equal(16UL, rig.Head);
        Assert.False(rig.Running);
        Assert.Equal(0UL, rig.StoreAt(0));
        Assert.Equal(new AmdViEvent(0x5UL << 60, AmdViRig.BufferBase + 16), Assert.Single(rig.EventLog()));
        Assert.Equal(1, rig.Interrupts);
        Assert.NotEqual(0UL, rig.Status & StatusEventLogInt);
    }

    [Fact]
    public void Stopped_TailWriteAloneDoesNotRestart_DisableFixEnableDoes()
    {
        using var rig = new AmdViRig();
        rig.Submit(AmdViCommand.Of(0), AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1));
        Assert.False(rig.Running);
        rig.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 2));
        Assert.Equal(0UL, rig.Head);
        Assert.Equal(0UL, rig.StoreAt(0));
        rig.Restart(head: 16); // move past the bad command
        Assert.True(rig.Running);
        Assert.Equal(48UL, rig.Head);
        Assert.Equal(2UL, rig.StoreAt(0));
        Assert.Single(rig.EventLog());
    }

    [Fact]
    public void Stopped_RewritingTheCommandAndRestarting_ExecutesItThere()
    {
        using var rig = new AmdViRig();
        rig.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, Dev, AddressSpace.None, Dom, 1));
        rig.Submit(new AmdViCommand(AmdViCommand.InvalidateDevTabEntry(Dev).Qword0 | (1UL << 20), 0)); // reserved bit 20
        Assert.False(rig.Running);
        AmdViCommand.InvalidateDevTabEntry(Dev).Write(rig.Buffer.AsSpan(0, 16));
        rig.Restart();
        Assert.Equal(0, rig.Engine.ConfigCache.Count);
        Assert.Equal(16UL, rig.Head);
    }

    [Fact]
    public void FetchThePlanFails_IsCommandHardwareErrorDataError()
    {
        using var rig = new AmdViRig(new AmdViOptions { FaultPlan = new FaultPlan { FetchErrorOrdinals = [1] } });
        rig.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1), AmdViCommand.CompletionWait(AmdViRig.StoreBase, 2));
        Assert.Equal(1UL, rig.StoreAt(0));
        Assert.Equal(16UL, rig.Head);
        Assert.Equal(2UL, rig.Unit.CommandFetches);
        Assert.Equal(AmdViEvent.CommandHardwareError(AmdViHardwareErrorType.DataError, AmdViRig.BufferBase + 16), Assert.Single(rig.EventLog()));
        rig.Restart();
        Assert.Equal(2UL, rig.StoreAt(0)); // fetched again at the head
    }

    [Fact]
    public void FetchFromUnbackedBuffer_IsCommandHardwareErrorMasterAbort()
    {
        using var rig = new AmdViRig(enable: false);
        rig.Unit.WriteRegister(CommandBufferBase, AmdViRig.Unmapped | (8UL << RingLengthShift), 8);
        rig.Unit.WriteRegister(Control, ControlIommuEn | ControlCmdBufEn | ControlEventLogEn, 8);
        rig.Unit.WriteRegister(CommandBufferTail, 0x20, 4);
        Assert.False(rig.Running);
        Assert.Equal(0UL, rig.Head);
        Assert.Equal(AmdViEvent.CommandHardwareError(AmdViHardwareErrorType.MasterAbort, AmdViRig.Unmapped), Assert.Single(rig.EventLog()));
    }

    [Fact]
    public void Head_WrapsToZeroAtTheEndOfTheBuffer()
    {
        using var rig = new AmdViRig(enable: false);
        rig.Unit.WriteRegister(CommandBufferHead, 0xFE0, 4);
        rig.Unit.WriteRegister(CommandBufferTail, 0xFE0, 4);
        rig.Unit.WriteRegister(Control, ControlIommuEn | ControlCmdBufEn, 8);
        rig.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1), AmdViCommand.CompletionWait(AmdViRig.StoreBase, 2),
            AmdViCommand.CompletionWait(AmdViRig.StoreBase + 8, 3));
        Assert.Equal(0x10UL, rig.Head);
        Assert.Equal(0x10UL, rig.Tail);
        Assert.Equal(2UL, rig.StoreAt(0));
        Assert.Equal(3UL, rig.StoreAt(8));
    }

    [Fact]
    public void EventLog_NotRunning_LosesTheEvent()
    {
        using var rig = new AmdViRig(control: 0);
        rig.Submit(AmdViCommand.Of(0));
        Assert.False(rig.Running);
        Assert.Equal(0UL, rig.EventTail);
        Assert.Equal(0UL, rig.Status & (StatusEventLogInt | StatusEventOverflow));
    }

    [Fact]
    public void EventLog_Full_SetsOverflowAndDiscardsUntilSoftwareClearsIt()
    {
        using var rig = new AmdViRig();
        rig.Unit.WriteRegister(EventLogHead, 0x20, 4); // room for one entry: tail 0 -> 0x10, then 0x10 -> 0x20 = head
        rig.Submit(AmdViCommand.Of(0));
        rig.Restart(head: 16);
        rig.Submit(AmdViCommand.Of(0));
        Assert.Equal(0x10UL, rig.EventTail);
        Assert.NotEqual(0UL, rig.Status & StatusEventOverflow);
        Assert.True((rig.Status & StatusEventLogRun) != 0);
        Assert.Equal(2, rig.Interrupts);
        rig.Unit.WriteRegister(EventLogHead, 0x10, 4); // consumed, but the overflow is still set
        rig.Restart(head: 32);
        rig.Submit(AmdViCommand.Of(0));
        Assert.Equal(0x10UL, rig.EventTail);
        rig.Unit.WriteRegister(Status, StatusEventOverflow, 4);
        rig.Restart();
        Assert.Equal(0x20UL, rig.EventTail);
        Assert.Equal(AmdViEvent.IllegalCommand(AmdViRig.BufferBase + 32), AmdViEvent.Read(rig.Events.AsSpan(0x10, 16)));
    }

    [Fact]
    public void EventLogInt_IsSetWithoutEventIntEn_ButNoInterrupt()
    {
        using var rig = new AmdViRig(control: ControlEventLogEn);
        rig.Submit(AmdViCommand.Of(0));
        Assert.NotEqual(0UL, rig.Status & StatusEventLogInt);
        Assert.Equal(0, rig.Interrupts);
    }

    [Fact]
    public void InvalidEngineStatus_IsCountedAndTheNextWaitIsIllegal()
    {
        using var rig = new AmdViRig();
        rig.Unit.TestBatchHook = batch => batch[0] = default;
        rig.Submit(AmdViCommand.InvalidateIommuPages(Dom, 0x5000), AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1));
        Assert.Equal(1UL, rig.Unit.InternalErrors);
        Assert.Equal(16UL, rig.Head);
        Assert.Equal(0UL, rig.StoreAt(0));
        Assert.Equal(AmdViEvent.IllegalCommand(AmdViRig.BufferBase + 16), Assert.Single(rig.EventLog()));
    }

    [Fact]
    public void InterruptHandler_MayDisposeTheUnit()
    {
        var rig = new AmdViRig();
        rig.OnInterrupt = () => rig.Unit.Dispose();
        rig.Engine.Iotlb.Fill(Host(0x5000));
        rig.Submit(AmdViCommand.CompletionWait(interrupt: true, store: false), AmdViCommand.InvalidateIommuPages(Dom, 0x5000));
        Assert.Throws<ObjectDisposedException>(() => rig.Unit.ReadRegister(Status, 8));
    }

    [Fact]
    public void Notifiers_SeeTheAmdViSourceAndTheHeadSlot()
    {
        using var rig = new AmdViRig();
        var seen = new FastInval.Reference.Scenarios.RecordingNotifier();
        using NotifierSubscription sub = rig.Engine.Notifiers.Subscribe(seen);
        rig.Submit(AmdViCommand.CompletionWait(store: false), AmdViCommand.InvalidateIommuPages(Dom, 0x5000), AmdViCommand.InvalidateInterruptTable(Dev));
        Assert.Equal(3, seen.Records.Count); // GN = 0 is two descriptors
        Assert.All(seen.Records, r => Assert.Equal(InvalidationSource.AmdViCommandBuffer, r.Source));
        Assert.Equal(new ulong[] { 1, 1, 2 }, seen.Records.Select(r => r.SourceIndex));
    }
}
