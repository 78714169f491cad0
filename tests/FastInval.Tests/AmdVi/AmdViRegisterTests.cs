using FastInval.AmdVi;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.Tests.AmdVi;

public class AmdViRegisterTests
{
    [Fact]
    public void Reset_EveryRegisterButTheFeaturesReadsZero()
    {
        using var unit = new AmdViIommu(new GuestMemory());
        foreach (uint offset in new[] { DeviceTableBase, CommandBufferBase, EventLogBase, Control, ExclusionBase, ExclusionLimit,
                     CommandBufferHead, CommandBufferTail, EventLogHead, EventLogTail, Status })
        {
            Assert.Equal(0UL, unit.ReadRegister(offset, 8));
        }

        Assert.NotEqual(0UL, unit.ReadRegister(ExtendedFeatures, 8));
    }

    [Fact]
    public void ExtendedFeatures_Default_AdvertisesGuestTranslationPasidAndInvalidateAllOnly()
    {
        using var unit = new AmdViIommu(new GuestMemory());
        ulong efr = unit.ReadRegister(ExtendedFeatures, 8);
        Assert.Equal(FeatureNx | FeatureGuestTranslation | FeatureInvalidateAll | (19UL << FeaturePasMaxShift) | (1UL << FeatureGlxShift), efr);
        Assert.Equal(0UL, efr & (FeaturePrefetch | FeaturePpr | FeatureXt | FeatureInvIotlbType));
        Assert.Equal((uint)efr, unit.ReadRegister(ExtendedFeatures, 4));
        Assert.Equal(efr >> 32, unit.ReadRegister(ExtendedFeatures + 4, 4));
    }

    [Fact]
    public void ExtendedFeatures_CapabilitiesOff_ClearTheirBits()
    {
        using var unit = new AmdViIommu(new GuestMemory(), new AmdViOptions { GuestTranslation = false, InvalidateAll = false });
        Assert.Equal(FeatureNx, unit.ReadRegister(ExtendedFeatures, 8));
    }

    [Fact]
    public void ExtendedFeatures_Writes_AreIgnored()
    {
        using var unit = new AmdViIommu(new GuestMemory());
        ulong efr = unit.ReadRegister(ExtendedFeatures, 8);
        unit.WriteRegister(ExtendedFeatures, 0, 8);
        unit.WriteRegister(ExtendedFeatures, 0, 4);
        Assert.Equal(efr, unit.ReadRegister(ExtendedFeatures, 8));
    }

    [Fact]
    public void BaseRegisters_KeepOnlyTheirFields_AndResetHeadAndTail()
    {
        using var unit = new AmdViIommu(new GuestMemory());
        unit.WriteRegister(CommandBufferTail, 0x40, 4);
        unit.WriteRegister(CommandBufferHead, 0x20, 4);
        unit.WriteRegister(EventLogHead, 0x30, 4);
        unit.WriteRegister(EventLogTail, 0x50, 4);
        unit.WriteRegister(CommandBufferBase, ulong.MaxValue, 8);
        unit.WriteRegister(EventLogBase, ulong.MaxValue, 8);
        Assert.Equal(RingBaseMask, unit.ReadRegister(CommandBufferBase, 8));
        Assert.Equal(0x0F0F_FFFF_FFFF_F000UL, unit.ReadRegister(EventLogBase, 8));
        Assert.Equal(0UL, unit.ReadRegister(CommandBufferHead, 8));
        Assert.Equal(0UL, unit.ReadRegister(CommandBufferTail, 8));
        Assert.Equal(0UL, unit.ReadRegister(EventLogHead, 8));
        Assert.Equal(0UL, unit.ReadRegister(EventLogTail, 8));
        unit.WriteRegister(DeviceTableBase, ulong.MaxValue, 8);
        unit.WriteRegister(ExclusionBase, ulong.MaxValue, 8);
        unit.WriteRegister(ExclusionLimit, ulong.MaxValue, 8);
        Assert.Equal(0x000F_FFFF_FFFF_F1FFUL, unit.ReadRegister(DeviceTableBase, 8));
        Assert.Equal(0x000F_FFFF_FFFF_F003UL, unit.ReadRegister(ExclusionBase, 8));
        Assert.Equal(0x000F_FFFF_FFFF_F000UL, unit.ReadRegister(ExclusionLimit, 8));
    }

    [Fact]
    public void CommandBufferBase_WhileRunning_IsIgnored()
    {
        using var rig = new AmdViRig();
        rig.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1));
        Assert.True(rig.Running);
        rig.Unit.WriteRegister(CommandBufferBase, 0x1234_5000UL | (9UL << RingLengthShift), 8);
        Assert.Equal(AmdViRig.BufferBase | (8UL << RingLengthShift), rig.Unit.ReadRegister(CommandBufferBase, 8));
        Assert.Equal(16UL, rig.Head);
        Assert.Equal(16UL, rig.Tail);
    }

    [Fact]
    public void EventLogBase_WhileLogRunning_IsIgnored()
    {
        using var rig = new AmdViRig();
        rig.Unit.WriteRegister(EventLogBase, 0x7000UL | (9UL << RingLengthShift), 8);
        Assert.Equal(AmdViRig.EventBase | (8UL << RingLengthShift), rig.Unit.ReadRegister(EventLogBase, 8));
    }

    [Fact]
    public void HeadAndTail_KeepBits18To4ModuloTheBufferSize()
    {
        using var unit = new AmdViIommu(new GuestMemory());
        unit.WriteRegister(CommandBufferBase, 0x1000UL | (8UL << RingLengthShift), 8); // 4 KiB
        unit.WriteRegister(CommandBufferTail, 0xFFFF_FFFF_FFFF_FFFFUL, 8);
        Assert.Equal(0xFF0UL, unit.ReadRegister(CommandBufferTail, 8));
        unit.WriteRegister(CommandBufferHead, 0x1238, 4);
        Assert.Equal(0x230UL, unit.ReadRegister(CommandBufferHead, 8));
        unit.WriteRegister(CommandBufferBase, 0x1000UL | (0xFUL << RingLengthShift), 8); // 512 KiB
        unit.WriteRegister(CommandBufferTail, 0xFFFF_FFFF, 4);
        Assert.Equal(RingPointerMask, unit.ReadRegister(CommandBufferTail, 8));
    }

    [Fact]
    public void ReservedRingLength_CountsAsTheSmallest()
    {
        using var unit = new AmdViIommu(new GuestMemory());
        unit.WriteRegister(CommandBufferBase, 0x1000UL | (3UL << RingLengthShift), 8);
        Assert.Equal(0x1000UL | (3UL << RingLengthShift), unit.ReadRegister(CommandBufferBase, 8)); // reads as written
        unit.WriteRegister(CommandBufferTail, 0x1FF0, 4);
        Assert.Equal(0xFF0UL, unit.ReadRegister(CommandBufferTail, 8)); // a 4 KiB buffer
    }

    [Fact]
    public void CommandHead_WhileRunning_IsIgnored_AndWritableWhenStopped()
    {
        using var rig = new AmdViRig();
        rig.Unit.WriteRegister(CommandBufferHead, 0x100, 4);
        Assert.Equal(0UL, rig.Head);
        rig.Unit.WriteRegister(Control, ControlIommuEn, 8);
        rig.Unit.WriteRegister(CommandBufferHead, 0x100, 4);
        Assert.Equal(0x100UL, rig.Head);
    }

    [Fact]
    public void EventTail_IsWritableOnlyWhileTheLogIsStopped()
    {
        using var rig = new AmdViRig();
        rig.Unit.WriteRegister(EventLogTail, 0x40, 4);
        Assert.Equal(0UL, rig.EventTail);
        rig.Unit.WriteRegister(Control, ControlIommuEn | ControlCmdBufEn, 8);
        rig.Unit.WriteRegister(EventLogTail, 0x40, 4);
        Assert.Equal(0x40UL, rig.EventTail);
    }

    [Fact]
    public void Control_KeepsBits17To0()
    {
        using var unit = new AmdViIommu(new GuestMemory());
        unit.WriteRegister(Control, ulong.MaxValue & ~ControlIommuEn, 8);
        Assert.Equal(ControlMask & ~ControlIommuEn, unit.ReadRegister(Control, 8));
    }

    [Fact]
    public void FourByteWrites_MergeIntoTheirHalf()
    {
        using var unit = new AmdViIommu(new GuestMemory());
        unit.WriteRegister(DeviceTableBase, 0x1234_5000, 4);
        unit.WriteRegister(DeviceTableBase + 4, 0x000A_BCDE, 4);
        Assert.Equal(0x000A_BCDE_1234_5000UL, unit.ReadRegister(DeviceTableBase, 8));
        Assert.Equal(0x1234_5000UL, unit.ReadRegister(DeviceTableBase, 4));
        Assert.Equal(0x000A_BCDEUL, unit.ReadRegister(DeviceTableBase + 4, 4));
        unit.WriteRegister(DeviceTableBase, 0x7000, 4);
        Assert.Equal(0x000A_BCDE_0000_7000UL, unit.ReadRegister(DeviceTableBase, 8));
    }

    [Fact]
    public void Status_RunBitsFollowControl_AndIgnoreWrites()
    {
        using var rig = new AmdViRig(enable: false);
        Assert.Equal(0UL, rig.Status);
        rig.Unit.WriteRegister(Control, ControlCmdBufEn | ControlEventLogEn, 8);
        Assert.Equal(0UL, rig.Status); // IommuEn = 0: nothing runs
        rig.Unit.WriteRegister(Control, ControlIommuEn | ControlCmdBufEn | ControlEventLogEn, 8);
        Assert.Equal(StatusCmdBufRun | StatusEventLogRun, rig.Status);
        rig.Unit.WriteRegister(Status, StatusCmdBufRun | StatusEventLogRun, 8);
        Assert.Equal(StatusCmdBufRun | StatusEventLogRun, rig.Status);
    }

    [Fact]
    public void Status_WriteOneClears_AndZeroOrTheHighHalfClearsNothing()
    {
        using var rig = new AmdViRig();
        rig.Submit(AmdViCommand.CompletionWait(interrupt: true, store: false), AmdViCommand.Of(0));
        ulong set = StatusComWaitInt | StatusEventLogInt;
        Assert.Equal(set, rig.Status & set);
        rig.Unit.WriteRegister(Status, 0, 8);
        rig.Unit.WriteRegister(Status + 4, 0xFFFF_FFFF, 4);
        Assert.Equal(set, rig.Status & set);
        rig.Unit.WriteRegister(Status, StatusComWaitInt, 4);
        Assert.Equal(StatusEventLogInt, rig.Status & set);
        rig.Unit.WriteRegister(Status, StatusEventLogInt, 8);
        Assert.Equal(0UL, rig.Status & set);
    }

    [Theory]
    [InlineData(0x2000u, 2)]
    [InlineData(0x2001u, 4)]
    [InlineData(0x2004u, 8)]
    [InlineData(0x2008u, 1)]
    [InlineData(0x4000u, 8)]
    [InlineData(0x2028u, 8)]
    public void OddAccesses_ReadZeroAndWriteNothing(uint offset, int size)
    {
        using var rig = new AmdViRig();
        rig.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1));
        ulong head = rig.Head;
        rig.Unit.WriteRegister(offset, 0x30, size);
        Assert.Equal(0UL, rig.Unit.ReadRegister(offset, size));
        Assert.Equal(head, rig.Tail);
    }

    [Fact]
    public void Disposed_EveryMemberThrows()
    {
        var unit = new AmdViIommu(new GuestMemory());
        unit.Dispose();
        unit.Dispose();
        Assert.Throws<ObjectDisposedException>(() => unit.ReadRegister(Status, 8));
        Assert.Throws<ObjectDisposedException>(() => unit.WriteRegister(Status, 0, 8));
        Assert.Throws<ObjectDisposedException>(() => unit.Engine);
        Assert.Throws<ObjectDisposedException>(() => unit.CommandFetches);
        Assert.Throws<ObjectDisposedException>(() => unit.InternalErrors);
    }

    [Fact]
    public void Constructor_NullsAndEngineConflicts_Throw()
    {
        Assert.Throws<ArgumentNullException>(() => new AmdViIommu((GuestMemory)null!));
        using var engine = new InvalidationEngine(new EngineOptions());
        Assert.Throws<ArgumentNullException>(() => new AmdViIommu(new GuestMemory(), (InvalidationEngine)null!));
        Assert.Throws<ArgumentException>(() => new AmdViIommu(new GuestMemory(), engine, new AmdViOptions { FaultPlan = FaultPlan.None }));
    }

    [Fact]
    public void CallersEngine_IsNotDisposedWithTheUnit()
    {
        using var engine = new InvalidationEngine(new EngineOptions());
        var unit = new AmdViIommu(new GuestMemory(), engine);
        Assert.Same(engine, unit.Engine);
        unit.Dispose();
        Assert.Equal(0, engine.Iotlb.Count);
    }
}
