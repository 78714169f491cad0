using System.Reflection;
using FastInval.AmdVi;
using FastInval.Smmu;
using FastInval.Tests.Smmu;
using FastInval.Uapi;
using FastInval.Vtd;

namespace FastInval.Tests.Lifetime;

/// <summary>A disposed unit or iommufd context: every public member throws <see cref="ObjectDisposedException"/>,
/// <c>Dispose</c> may be called again, and disposing from inside a callback stops the queue without touching the
/// engine again.</summary>
public class DisposedUnitTests
{
    /// <summary>Each public member of <typeparamref name="T"/> (declared on it, properties by name, methods by name) must be
    /// in <paramref name="covered"/>: a member added later without a disposal test fails here.</summary>
    private static void AssertEveryPublicMemberIsCovered<T>(params string[] covered)
    {
        string[] members = typeof(T).GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)
            .Where(m => m is PropertyInfo || (m is MethodInfo mi && !mi.IsSpecialName))
            .Select(m => m.Name)
            .Where(n => n != nameof(IDisposable.Dispose))
            .Distinct()
            .Order(StringComparer.Ordinal)
            .ToArray();
        Assert.Equal(covered.Order(StringComparer.Ordinal).ToArray(), members);
    }

    [Fact]
    public void Vtd_EveryPublicMember_ThrowsObjectDisposed_DisposeIsIdempotent()
    {
        var unit = new VtdIommu(new GuestMemory());
        unit.Dispose();
        unit.Dispose();
        Assert.Throws<ObjectDisposedException>(() => unit.Engine);
        Assert.Throws<ObjectDisposedException>(() => unit.DescriptorFetches);
        Assert.Throws<ObjectDisposedException>(() => unit.InternalErrors);
        Assert.Throws<ObjectDisposedException>(() => unit.OutstandingDeviceTlbRequests);
        Assert.Throws<ObjectDisposedException>(() => unit.ReadRegister(VtdRegisters.Ver, 4));
        Assert.Throws<ObjectDisposedException>(() => unit.ReadRegister(0xFFF, 3));              // even an access that would be ignored
        Assert.Throws<ObjectDisposedException>(() => unit.WriteRegister(VtdRegisters.Iqt, 0x10, 4));
        Assert.Throws<ObjectDisposedException>(() => unit.SaveState(new byte[VtdIommu.StateSize]));
        Assert.Throws<ObjectDisposedException>(() => unit.RestoreState(new byte[VtdIommu.StateSize]));
        Assert.Throws<ObjectDisposedException>(unit.Reset);
        AssertEveryPublicMemberIsCovered<VtdIommu>(nameof(VtdIommu.Engine), nameof(VtdIommu.DescriptorFetches), nameof(VtdIommu.InternalErrors),
            nameof(VtdIommu.OutstandingDeviceTlbRequests), nameof(VtdIommu.ReadRegister), nameof(VtdIommu.WriteRegister), nameof(VtdIommu.SaveState), nameof(VtdIommu.RestoreState),
            nameof(VtdIommu.Reset));
    }

    [Fact]
    public void Smmu_EveryPublicMember_ThrowsObjectDisposed_DisposeIsIdempotent()
    {
        var smmu = new SmmuV3(new GuestMemory());
        smmu.Dispose();
        smmu.Dispose();
        Assert.Throws<ObjectDisposedException>(() => smmu.Engine);
        Assert.Throws<ObjectDisposedException>(() => smmu.CommandFetches);
        Assert.Throws<ObjectDisposedException>(() => smmu.InternalErrors);
        Assert.Throws<ObjectDisposedException>(() => smmu.OutstandingDeviceTlbRequests);
        Assert.Throws<ObjectDisposedException>(() => smmu.ReadRegister(SmmuRegisters.Idr0, 4));
        Assert.Throws<ObjectDisposedException>(() => smmu.ReadRegister(0x1_0000, 4));
        Assert.Throws<ObjectDisposedException>(() => smmu.WriteRegister(SmmuRegisters.CmdqProd, 1, 4));
        Assert.Throws<ObjectDisposedException>(() => smmu.SaveState(new byte[SmmuV3.StateSize]));
        Assert.Throws<ObjectDisposedException>(() => smmu.RestoreState(new byte[SmmuV3.StateSize]));
        Assert.Throws<ObjectDisposedException>(smmu.Reset);
        AssertEveryPublicMemberIsCovered<SmmuV3>(nameof(SmmuV3.Engine), nameof(SmmuV3.CommandFetches), nameof(SmmuV3.InternalErrors), nameof(SmmuV3.OutstandingDeviceTlbRequests),
            nameof(SmmuV3.ReadRegister), nameof(SmmuV3.WriteRegister), nameof(SmmuV3.SaveState), nameof(SmmuV3.RestoreState),
            nameof(SmmuV3.Reset));
    }

    [Fact]
    public void AmdVi_EveryPublicMember_ThrowsObjectDisposed_DisposeIsIdempotent()
    {
        var unit = new AmdViIommu(new GuestMemory());
        unit.Dispose();
        unit.Dispose();
        Assert.Throws<ObjectDisposedException>(() => unit.Engine);
        Assert.Throws<ObjectDisposedException>(() => unit.CommandFetches);
        Assert.Throws<ObjectDisposedException>(() => unit.InternalErrors);
        Assert.Throws<ObjectDisposedException>(() => unit.OutstandingDeviceTlbRequests);
        Assert.Throws<ObjectDisposedException>(() => unit.ReadRegister(AmdViRegisters.ExtendedFeatures, 8));
        Assert.Throws<ObjectDisposedException>(() => unit.ReadRegister(0x5000, 3));             // even an access that would be ignored
        Assert.Throws<ObjectDisposedException>(() => unit.WriteRegister(AmdViRegisters.CommandBufferTail, 0x10, 4));
        Assert.Throws<ObjectDisposedException>(() => unit.SaveState(new byte[AmdViIommu.StateSize]));
        Assert.Throws<ObjectDisposedException>(() => unit.RestoreState(new byte[AmdViIommu.StateSize]));
        Assert.Throws<ObjectDisposedException>(unit.Reset);
        AssertEveryPublicMemberIsCovered<AmdViIommu>(nameof(AmdViIommu.Engine), nameof(AmdViIommu.CommandFetches), nameof(AmdViIommu.InternalErrors),
            nameof(AmdViIommu.OutstandingDeviceTlbRequests), nameof(AmdViIommu.ReadRegister), nameof(AmdViIommu.WriteRegister), nameof(AmdViIommu.SaveState),
            nameof(AmdViIommu.RestoreState), nameof(AmdViIommu.Reset));
    }

    [Fact]
    public void Iommufd_EveryPublicMember_ThrowsObjectDisposed_DisposeIsIdempotent()
    {
        var fd = new Iommufd(new UserMemory());
        uint dev = fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: false);
        fd.Dispose();
        fd.Dispose();
        Assert.Throws<ObjectDisposedException>(() => fd.Memory);
        Assert.Throws<ObjectDisposedException>(() => fd.Options);
        Assert.Throws<ObjectDisposedException>(() => fd.InternalErrors);
        Assert.Throws<ObjectDisposedException>(() => fd.Ioctl(IommufdRequest.Destroy, new byte[8]));
        Assert.Throws<ObjectDisposedException>(() => fd.Ioctl(0, default));                      // ENOTTY before: ODE now
        Assert.Throws<ObjectDisposedException>(() => fd.IoctlAt(IommufdRequest.Destroy, 0));
        Assert.Throws<ObjectDisposedException>(() => fd.UserAddressSpace);
        Assert.Throws<ObjectDisposedException>(() => fd.AddDevice(IommuKind.ArmSmmuV3, 1, ats: false));
        Assert.Throws<ObjectDisposedException>(() => fd.AttachDevice(dev, 1));
        Assert.Throws<ObjectDisposedException>(() => fd.DetachDevice(dev));
        Assert.Throws<ObjectDisposedException>(() => fd.RemoveDevice(dev));
        Assert.Throws<ObjectDisposedException>(() => fd.Engine(IommuKind.IntelVtd));
        Assert.Throws<ObjectDisposedException>(() => fd.TryGetObjectType(dev, out _));
        Assert.Throws<ObjectDisposedException>(() => fd.TryGetDomainId(dev, out _));
        Assert.Throws<ObjectDisposedException>(() => fd.StateSize);
        Assert.Throws<ObjectDisposedException>(() => fd.SaveState(new byte[Iommufd.StateHeaderSize]));
        Assert.Throws<ObjectDisposedException>(() => fd.RestoreState(new byte[Iommufd.StateHeaderSize]));
        Assert.Throws<ObjectDisposedException>(fd.Reset);
        Assert.Throws<ObjectDisposedException>(() => fd.ReadFaults(1, new byte[64]));
        Assert.Throws<ObjectDisposedException>(() => fd.ReadFaultsAt(1, 0, 64));
        Assert.Throws<ObjectDisposedException>(() => fd.WriteFaultResponses(1, new byte[8]));
        Assert.Throws<ObjectDisposedException>(() => fd.WriteFaultResponsesAt(1, 0, 8));
        Assert.Throws<ObjectDisposedException>(() => fd.CloseFaultFile(1));
        Assert.Throws<ObjectDisposedException>(() => fd.TryGetFaultCounts(1, out _, out _));
        Assert.Throws<ObjectDisposedException>(() => fd.FaultDescriptor(1));
        AssertEveryPublicMemberIsCovered<Iommufd>(nameof(Iommufd.FaultDescriptor), nameof(Iommufd.ReadFaults), nameof(Iommufd.ReadFaultsAt),
            nameof(Iommufd.WriteFaultResponses), nameof(Iommufd.WriteFaultResponsesAt), nameof(Iommufd.CloseFaultFile),
            nameof(Iommufd.TryGetFaultCounts), nameof(Iommufd.Memory), nameof(Iommufd.Options), nameof(Iommufd.InternalErrors), nameof(Iommufd.Ioctl),
            nameof(Iommufd.IoctlAt), nameof(Iommufd.UserAddressSpace), nameof(Iommufd.AddDevice), nameof(Iommufd.AttachDevice), nameof(Iommufd.DetachDevice), nameof(Iommufd.RemoveDevice),
            nameof(Iommufd.Engine), nameof(Iommufd.TryGetObjectType), nameof(Iommufd.TryGetDomainId), nameof(Iommufd.StateSize),
            nameof(Iommufd.SaveState), nameof(Iommufd.RestoreState), nameof(Iommufd.Reset));
    }

    [Fact]
    public void Vtd_DisposedFromTheCompletionInterrupt_StopsAfterTheWait_LaterDescriptorsAreNotRun()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 64, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 });
        var memory = new GuestMemory();
        byte[] queue = new byte[4096], status = new byte[4096];
        memory.Map(0x10_0000, queue);
        memory.Map(0x20_0000, status);
        VtdIommu? unit = null;
        int msis = 0;
        unit = new VtdIommu(memory, engine, new VtdOptions { ScalableMode = false, Msi = (_, _) => { msis++; unit!.Dispose(); } });
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000, 0x1000));
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 2, AddressSpace.None, 0x1000, 0x1000));
        VtdDescriptor.IotlbDomain(1).Write(queue.AsSpan(0, 16));
        VtdDescriptor.Wait(statusWrite: true, interrupt: true, statusData: 5, statusAddress: 0x20_0000).Write(queue.AsSpan(16, 16));
        VtdDescriptor.IotlbDomain(2).Write(queue.AsSpan(32, 16));
        unit.WriteRegister(VtdRegisters.Iectl, 0, 4);                                   // unmask completion events
        unit.WriteRegister(VtdRegisters.Iqa, 0x10_0000, 8);
        unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
        unit.WriteRegister(VtdRegisters.Iqt, 48, 4);                                    // returns normally
        Assert.Equal(1, msis);
        Assert.Equal(5, status[0]);
        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000, out _));
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage2, 2, AddressSpace.None, 0x1000, out _)); // after the dispose: not run
        Assert.Throws<ObjectDisposedException>(() => unit.ReadRegister(VtdRegisters.Iqh, 8));
    }

    [Fact]
    public void Smmu_DisposedFromTheSyncMsi_StopsAfterTheSync_LaterCommandsAreNotRun()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 64, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 });
        var memory = new GuestMemory();
        byte[] queue = new byte[256], msiPage = new byte[4096];
        memory.Map(0x40_0000, queue);
        memory.Map(0x80_0000, msiPage);
        SmmuV3? smmu = null;
        smmu = new SmmuV3(memory, engine, new SmmuOptions { Msi = (_, _) => smmu!.Dispose() });
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x1000, 0x1000));
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 2, 0x1000, 0x1000));
        Cmd.NhAsid(1, 1).Write(queue.AsSpan(0, 16));
        SmmuRig.SyncIrq(0x80_0000, 9).Write(queue.AsSpan(16, 16));
        Cmd.NhAsid(1, 2).Write(queue.AsSpan(32, 16));
        smmu.WriteRegister(SmmuRegisters.CmdqBase, 0x40_0000 | 4, 8);
        smmu.WriteRegister(SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn | SmmuRegisters.Cr0SmmuEn, 4);
        smmu.WriteRegister(SmmuRegisters.CmdqProd, 3, 4);
        Assert.Equal(9, msiPage[0]);
        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 0x1000, out _));
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 2, 0x1000, out _));
        Assert.Throws<ObjectDisposedException>(() => smmu.CommandFetches);
    }

    [Fact]
    public void OwnedEngine_DisposedFromACallback_IsDisposedWhenTheWriteReturns_NotDuringIt()
    {
        // The unit's own engine must survive until the processing loop is done with it: the descriptors before the wait
        // were executed on it, and the register write returns without touching freed cache memory.
        var memory = new GuestMemory();
        byte[] queue = new byte[4096], status = new byte[4096];
        memory.Map(0x10_0000, queue);
        memory.Map(0x20_0000, status);
        VtdIommu? unit = null;
        unit = new VtdIommu(memory, new VtdOptions { ScalableMode = false, Msi = (_, _) => unit!.Dispose() });
        for (int i = 0; i < 4; i++)
        {
            VtdDescriptor.IotlbPages(1, (ulong)i << 12).Write(queue.AsSpan(i * 32, 16));
            VtdDescriptor.Wait(statusWrite: true, interrupt: true, statusData: (uint)i + 1, statusAddress: 0x20_0000 + (ulong)(4 * i))
                .Write(queue.AsSpan((i * 32) + 16, 16));
        }

        unit.WriteRegister(VtdRegisters.Iectl, 0, 4);
        unit.WriteRegister(VtdRegisters.Iqa, 0x10_0000, 8);
        unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
        unit.WriteRegister(VtdRegisters.Iqt, 128, 4);
        Assert.Equal([1, 0, 0, 0], new[] { status[0], status[4], status[8], status[12] });
        Assert.Throws<ObjectDisposedException>(() => unit.Engine);
    }
}
