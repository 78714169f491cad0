using FastInval.Reference.Uapi;
using FastInval.Smmu;
using FastInval.Tests.Smmu;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>
/// An SMMUv3 setup: IOAS, two ATS devices (StreamIDs 0x100 and 0x101), a nest parent (its VMID), an ARM_SMMUV3 vIOMMU,
/// vDEVICEs vSID 1 → 0x100 and vSID 2 → 0x101.
/// </summary>
internal sealed class SmmuSetup : IDisposable
{
    public const uint Sid1 = 0x100;
    public const uint Sid2 = 0x101;

    public SmmuSetup(FaultPlan? plan = null)
    {
        U = new Ufd(new IommufdOptions
        {
            EngineOptions = new EngineOptions { IotlbCapacity = 1024, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256, FaultPlan = plan ?? FaultPlan.None },
        });
        Assert.Equal(0, U.IoasAlloc(out uint ioas));
        Device1 = U.Fd.AddDevice(IommuKind.ArmSmmuV3, Sid1, ats: true);
        Device2 = U.Fd.AddDevice(IommuKind.ArmSmmuV3, Sid2, ats: true);
        Assert.Equal(0, U.HwptAlloc(Device1, ioas, (uint)HwptAllocFlags.NestParent, out Parent));
        Assert.Equal(0, U.ViommuAlloc(Device1, Parent, ViommuType.ArmSmmuV3, out Viommu));
        Assert.Equal(0, U.VdeviceAlloc(Viommu, Device1, 1, out _));
        Assert.Equal(0, U.VdeviceAlloc(Viommu, Device2, 2, out _));
        Assert.True(U.Fd.TryGetDomainId(Viommu, out Vmid));
        Engine = U.Fd.Engine(IommuKind.ArmSmmuV3);
    }

    public readonly Ufd U;
    public readonly uint Device1;
    public readonly uint Device2;
    public readonly uint Parent;
    public readonly uint Viommu;
    public readonly ushort Vmid;
    public readonly InvalidationEngine Engine;

    /// <summary>Maps the commands as an array of <paramref name="entryLen"/>-byte entries (each command's 16 bytes, then
    /// zeros) and invalidates through the vIOMMU.</summary>
    public int Invalidate(ref uint n, params SmmuCommand[] commands) => Invalidate(16, ref n, commands);

    public int Invalidate(uint entryLen, ref uint n, params SmmuCommand[] commands)
    {
        byte[] bytes = new byte[Math.Max(1, commands.Length * (int)entryLen)];
        for (int i = 0; i < commands.Length; i++)
        {
            byte[] c = new byte[16];
            commands[i].Write(c);
            c.AsSpan(0, (int)Math.Min(16, entryLen)).CopyTo(bytes.AsSpan(i * (int)entryLen));
        }

        return U.Invalidate(Viommu, U.Map(bytes), InvalidateDataType.ArmSmmuV3, entryLen, ref n);
    }

    public int Invalidate(params SmmuCommand[] commands)
    {
        uint n = (uint)commands.Length;
        return Invalidate(ref n, commands);
    }

    public void FillStage1(ushort vmid, ushort asid, int pages, bool global = false)
    {
        for (ulong p = 0; p < (ulong)pages; p++)
        {
            Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, vmid, asid, p << 12, (p + 0x100) << 12, global: global));
        }
    }

    public bool Cached(ushort vmid, ushort asid, ulong address) => Engine.Iotlb.TryLookup(TranslationStage.Stage1, vmid, asid, address, out _);

    public void Dispose() => U.Dispose();
}

/// <summary>
/// IOMMU_HWPT_INVALIDATE on an ARM SMMUv3 vIOMMU (arm_vsmmu_cache_invalidate, spec §7): the accepted opcodes and their
/// conversion (VMID forced, vSID → StreamID), EIO for the rest, the full-array copy rules (§3.4–3.5), ENOMEM, and
/// FastInval's entry_num fix.
/// </summary>
public class SmmuInvalidationTests
{
    private const ushort GuestVmid = 0x55;

    [Fact]
    public void TlbiNhVa_GuestVmidReplacedByTheViommus()
    {
        using var s = new SmmuSetup();
        s.FillStage1(s.Vmid, 7, 4);
        s.FillStage1(GuestVmid, 7, 4);
        Assert.Equal(0, s.Invalidate(Cmd.NhVa(GuestVmid, 7, 0x1000)));
        Assert.False(s.Cached(s.Vmid, 7, 0x1000));
        Assert.True(s.Cached(s.Vmid, 7, 0x2000));
        Assert.True(s.Cached(GuestVmid, 7, 0x1000));
    }

    [Fact]
    public void TlbiNhVaaAsidAll_ExecuteInTheViommusVmid()
    {
        using var s = new SmmuSetup();
        s.FillStage1(s.Vmid, 1, 4);
        s.FillStage1(s.Vmid, 2, 4);
        s.FillStage1(GuestVmid, 1, 4);
        Assert.Equal(0, s.Invalidate(Cmd.NhVaa(GuestVmid, 0x1000)));
        Assert.False(s.Cached(s.Vmid, 1, 0x1000));
        Assert.False(s.Cached(s.Vmid, 2, 0x1000));
        Assert.True(s.Cached(s.Vmid, 1, 0x2000));
        Assert.Equal(0, s.Invalidate(Cmd.NhAsid(GuestVmid, 2)));
        Assert.True(s.Cached(s.Vmid, 1, 0x2000));
        Assert.False(s.Cached(s.Vmid, 2, 0x2000));
        Assert.Equal(0, s.Invalidate(Cmd.NhAll(GuestVmid)));
        Assert.False(s.Cached(s.Vmid, 1, 0x3000));
        Assert.True(s.Cached(GuestVmid, 1, 0x3000));
    }

    [Fact]
    public void TlbiNsnhAll_BecomesNhAllOfTheVmid_OtherVmidsAndStage2Stay()
    {
        using var s = new SmmuSetup();
        s.FillStage1(s.Vmid, 1, 2);
        s.FillStage1(GuestVmid, 1, 2);
        s.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, s.Vmid, AddressSpace.None, 0, 0x1000));
        Assert.Equal(0, s.Invalidate(new SmmuCommand(0x30 | (0xFFUL << 12), 0xFFFF_0000)));  // stray fields are cleared too
        Assert.False(s.Cached(s.Vmid, 1, 0));
        Assert.True(s.Cached(GuestVmid, 1, 0));
        Assert.True(s.Engine.Iotlb.TryLookup(TranslationStage.Stage2, s.Vmid, AddressSpace.None, 0, out _));
    }

    [Fact]
    public void CfgiCdAndCdAll_VirtualSidTranslated()
    {
        using var s = new SmmuSetup();
        foreach (uint sid in new[] { 1u, SmmuSetup.Sid1, SmmuSetup.Sid2 })
        {
            for (uint ssid = 0; ssid < 3; ssid++)
            {
                s.Engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.ContextDescriptor, sid, ssid, s.Vmid, ssid));
            }
        }

        Assert.Equal(0, s.Invalidate(Cmd.CfgiCd(1, 2)));
        Assert.False(s.Engine.ConfigCache.TryLookup(ConfigKinds.ContextDescriptor, SmmuSetup.Sid1, 2, out _));
        Assert.True(s.Engine.ConfigCache.TryLookup(ConfigKinds.ContextDescriptor, SmmuSetup.Sid1, 1, out _));
        Assert.True(s.Engine.ConfigCache.TryLookup(ConfigKinds.ContextDescriptor, 1, 2, out _)); // the vSID itself is no StreamID
        Assert.Equal(0, s.Invalidate(Cmd.CfgiCdAll(2)));
        Assert.False(s.Engine.ConfigCache.TryLookup(ConfigKinds.ContextDescriptor, SmmuSetup.Sid2, 0, out _));
        Assert.True(s.Engine.ConfigCache.TryLookup(ConfigKinds.ContextDescriptor, SmmuSetup.Sid1, 0, out _));
    }

    [Fact]
    public void AtcInv_VirtualSidTranslated_DeviceTlbOfThePhysicalStream()
    {
        using var s = new SmmuSetup();
        s.Engine.DeviceTlb.Fill(new DeviceTlbEntry(SmmuSetup.Sid2, AddressSpace.None, 0x1000, 0x9000));
        s.Engine.DeviceTlb.Fill(new DeviceTlbEntry(SmmuSetup.Sid1, AddressSpace.None, 0x1000, 0x9000));
        s.Engine.DeviceTlb.Fill(new DeviceTlbEntry(2, AddressSpace.None, 0x1000, 0x9000));
        Assert.Equal(0, s.Invalidate(Cmd.AtcInv(2, 0x1000, 0)));
        Assert.False(s.Engine.DeviceTlb.TryLookup(SmmuSetup.Sid2, AddressSpace.None, 0x1000, out _));
        Assert.True(s.Engine.DeviceTlb.TryLookup(SmmuSetup.Sid1, AddressSpace.None, 0x1000, out _));
        Assert.True(s.Engine.DeviceTlb.TryLookup(2, AddressSpace.None, 0x1000, out _));
    }

    public static TheoryData<ulong, ulong> RejectedCommands() => new()
    {
        { 0x01, 0 },                                  // CMD_PREFETCH_CONFIG
        { 0x03 | (1UL << 32), 1 },                    // CMD_CFGI_STE
        { 0x04 | (1UL << 32), 31 },                   // CMD_CFGI_ALL
        { 0x20, 0 },                                  // CMD_TLBI_EL2_ALL
        { 0x28 | (5UL << 32), 0 },                    // CMD_TLBI_S12_VMALL
        { 0x2A | (5UL << 32), 0x1000 },               // CMD_TLBI_S2_IPA
        { 0x46, 0 },                                  // CMD_SYNC
        { 0x00, 0 },
        { 0xFF, 0 },
        { 0x05 | (9UL << 32), 0 },                    // CFGI_CD of vSID 9: no vDEVICE
        { 0x10, 1 },                                  // TLBI_NH_ALL with a non-zero DW1: CERROR_ILL on the SMMU
        { 0x40 | (1UL << 32), 53 },                   // ATC_INV Size 53
        { 0x05 | (1UL << 32) | (1UL << 10), 0 },      // CFGI_CD with SSec
        { 0x12 | (1UL << 48), 0x1000 | (1UL << 7) | (1UL << 10) | (1UL << 8) },  // TLBI_NH_VA with TTL128
    };

    [Theory]
    [MemberData(nameof(RejectedCommands))]
    public void RejectedCommand_EioAtItsIndex_EveryCommandBeforeExecuted(ulong dw0, ulong dw1)
    {
        using var s = new SmmuSetup();
        s.FillStage1(s.Vmid, 1, 4);
        uint n = 3;
        int rc = s.Invalidate(ref n, Cmd.NhVa(0, 1, 0x1000), Cmd.NhVa(0, 1, 0x2000), new SmmuCommand(dw0, dw1), Cmd.NhVa(0, 1, 0x3000));
        Assert.Equal(-Errno.EIO, rc);
        Assert.Equal(2u, n);
        Assert.False(s.Cached(s.Vmid, 1, 0x1000));
        Assert.False(s.Cached(s.Vmid, 1, 0x2000));
        Assert.True(s.Cached(s.Vmid, 1, 0x3000));
    }

    [Fact]
    public void EntryNumFix_FailureAfterMoreThanOneCmdqBatch_AllEarlierCommandsExecuted()
    {
        using var s = new SmmuSetup();
        const int Good = 100; // Linux submits in chunks of 63: commands 63..99 would be counted but never issued
        s.FillStage1(s.Vmid, 1, Good + 1);
        var commands = new SmmuCommand[Good + 1];
        for (int i = 0; i < Good; i++)
        {
            commands[i] = Cmd.NhVa(0, 1, (ulong)i << 12);
        }

        commands[Good] = new SmmuCommand(0x03, 0); // CFGI_STE
        uint n = Good + 1;
        Assert.Equal(-Errno.EIO, s.Invalidate(ref n, commands));
        Assert.Equal((uint)Good, n);
        for (int i = 0; i < Good; i++)
        {
            Assert.False(s.Cached(s.Vmid, 1, (ulong)i << 12));
        }

        Assert.True(s.Cached(s.Vmid, 1, (ulong)Good << 12));
    }

    [Fact]
    public void EmptyArrayOrWrongType_Einval_NoZeroLengthProbe()
    {
        using var s = new SmmuSetup();
        uint n = 0;
        Assert.Equal(-Errno.EINVAL, s.Invalidate(ref n));
        Assert.Equal(0u, n);
        byte[] a = new byte[16];
        n = 1;
        Assert.Equal(-Errno.EINVAL, s.U.Invalidate(s.Viommu, s.U.Map(a), InvalidateDataType.VtdS1, 16, ref n));
        Assert.Equal(0u, n);
    }

    [Fact]
    public void ShortEntries_ZeroExtended_Accepted()
    {
        using var s = new SmmuSetup();
        s.FillStage1(s.Vmid, 1, 2);
        uint n = 2;
        Assert.Equal(0, s.Invalidate(8, ref n, Cmd.NhAll(0), Cmd.NhAll(0)));   // DW1 missing: zero
        Assert.Equal(2u, n);
        Assert.False(s.Cached(s.Vmid, 1, 0));
        n = 1;
        Assert.Equal(0, s.Invalidate(1, ref n, Cmd.NhAll(0)));                 // only the opcode byte
        Assert.Equal(1u, n);
    }

    [Fact]
    public void LongEntries_ZeroTailAccepted_NonZeroTailE2bigBeforeAnythingRuns()
    {
        using var s = new SmmuSetup();
        s.FillStage1(s.Vmid, 1, 2);
        uint n = 2;
        Assert.Equal(0, s.Invalidate(24, ref n, Cmd.NhVa(0, 1, 0x0), Cmd.NhVa(0, 1, 0x1000)));
        Assert.Equal(2u, n);
        Assert.False(s.Cached(s.Vmid, 1, 0x1000));

        s.FillStage1(s.Vmid, 1, 2);
        byte[] a = new byte[3 * 24];
        Cmd.NhVa(0, 1, 0x0).Write(a);
        Cmd.NhVa(0, 1, 0x1000).Write(a.AsSpan(24));
        a[(2 * 24) + 20] = 1;                     // the third entry's tail
        n = 3;
        Assert.Equal(-Errno.E2BIG, s.U.Invalidate(s.Viommu, s.U.Map(a), InvalidateDataType.ArmSmmuV3, 24, ref n));
        Assert.Equal(0u, n);
        Assert.True(s.Cached(s.Vmid, 1, 0x0));   // the whole array is copied before any command runs
    }

    [Fact]
    public void ArrayPartlyUnmapped_EfaultBeforeAnythingRuns()
    {
        using var s = new SmmuSetup();
        s.FillStage1(s.Vmid, 1, 2);
        byte[] a = new byte[2 * 16];
        Cmd.NhAll(0).Write(a);
        Cmd.NhAll(0).Write(a.AsSpan(16));
        ulong uptr = s.U.Memory.Map(a.AsMemory(0, 31));
        uint n = 2;
        Assert.Equal(-Errno.EFAULT, s.U.Invalidate(s.Viommu, uptr, InvalidateDataType.ArmSmmuV3, 16, ref n));
        Assert.Equal(0u, n);
        Assert.True(s.Cached(s.Vmid, 1, 0));
        byte[] b = new byte[2 * 17];
        Cmd.NhAll(0).Write(b);
        Cmd.NhAll(0).Write(b.AsSpan(17));
        ulong uptr17 = s.U.Memory.Map(b.AsMemory(0, 33)); // the second entry's zero tail byte is unmapped
        n = 2;
        Assert.Equal(-Errno.EFAULT, s.U.Invalidate(s.Viommu, uptr17, InvalidateDataType.ArmSmmuV3, 17, ref n));
        Assert.Equal(0u, n);
        Assert.True(s.Cached(s.Vmid, 1, 0));
    }

    [Fact]
    public void HugeEntryNum_EnomemWithEntryNumLeftAsGiven()
    {
        using var s = new SmmuSetup();
        uint n = (4u << 20) / 16 + 1;
        Assert.Equal(-Errno.ENOMEM, s.U.Invalidate(s.Viommu, 0x10000, 0x7777, 16, ref n));
        Assert.Equal((4u << 20) / 16 + 1, n);
        n = (4u << 20) / 16;
        Assert.Equal(-Errno.EINVAL, s.U.Invalidate(s.Viommu, 0x10000, 0x7777, 16, ref n)); // allocated, then the type check
        Assert.Equal(0u, n);
    }

    [Fact]
    public void AtcTimeout_EtimedoutAtItsIndex_LaterCommandsNotExecuted()
    {
        using var s = new SmmuSetup(new FaultPlan { TimeoutOrdinals = [0] });
        s.FillStage1(s.Vmid, 1, 4);
        s.Engine.DeviceTlb.Fill(new DeviceTlbEntry(SmmuSetup.Sid1, AddressSpace.None, 0x1000, 0x9000));
        uint n = 3;
        Assert.Equal(-Errno.ETIMEDOUT, s.Invalidate(ref n, Cmd.NhVa(0, 1, 0x1000), Cmd.AtcInv(1, 0x1000, 0), Cmd.NhVa(0, 1, 0x2000)));
        Assert.Equal(1u, n);
        Assert.False(s.Cached(s.Vmid, 1, 0x1000));
        Assert.True(s.Cached(s.Vmid, 1, 0x2000));
        Assert.True(s.Engine.DeviceTlb.TryLookup(SmmuSetup.Sid1, AddressSpace.None, 0x1000, out _));
    }

    [Fact]
    public void AtcCompletionError_NotAnSmmuConcept_TreatedAsDone()
    {
        using var s = new SmmuSetup(new FaultPlan { CompletionErrorOrdinals = [0] });
        s.Engine.DeviceTlb.Fill(new DeviceTlbEntry(SmmuSetup.Sid1, AddressSpace.None, 0x1000, 0x9000));
        Assert.Equal(0, s.Invalidate(Cmd.AtcInv(1, 0x1000, 0)));
        Assert.False(s.Engine.DeviceTlb.TryLookup(SmmuSetup.Sid1, AddressSpace.None, 0x1000, out _));
    }

    [Fact]
    public void VmidsOfNestParents_LowestFreeFromOne()
    {
        using var s = new SmmuSetup();
        Assert.Equal((ushort)1, s.Vmid);
        Assert.Equal(0, s.U.IoasAlloc(out uint ioas2));
        Assert.Equal(0, s.U.HwptAlloc(s.Device2, ioas2, (uint)HwptAllocFlags.NestParent, out uint parent2));
        Assert.True(s.U.Fd.TryGetDomainId(parent2, out ushort vmid2));
        Assert.Equal((ushort)2, vmid2);
        Assert.Equal(0, s.U.HwptAlloc(s.Device2, ioas2, 0, out uint plain));
        Assert.False(s.U.Fd.TryGetDomainId(plain, out _));
    }

    [Fact]
    public void ViommuAndVdevice_IommuMismatches_Rejected()
    {
        using var s = new SmmuSetup();
        uint intel = s.U.Fd.AddDevice(IommuKind.IntelVtd, 0x100, ats: true);
        Assert.Equal(-Errno.EOPNOTSUPP, s.U.ViommuAlloc(intel, s.Parent, ViommuType.ArmSmmuV3, out _)); // VT-d has no vIOMMU
        Assert.Equal(-Errno.EINVAL, s.U.VdeviceAlloc(s.Viommu, intel, 9, out _));
        Assert.Equal(-Errno.EOPNOTSUPP, s.U.ViommuAlloc(s.Device2, s.Parent, ViommuType.Selftest, out _));
        Assert.Equal(0, s.U.IoasAlloc(out uint ioas2));
        Assert.Equal(0, s.U.HwptAlloc(intel, ioas2, (uint)HwptAllocFlags.NestParent, out uint intelParent));
        Assert.Equal(-Errno.EINVAL, s.U.ViommuAlloc(s.Device2, intelParent, ViommuType.ArmSmmuV3, out _)); // another IOMMU's parent
    }

    [Fact]
    public void NestedVste_ValidationAndInvalidateThroughTheHwpt()
    {
        using var s = new SmmuSetup();
        int Alloc(ulong w0, ulong w1, out uint id, uint len = 16, uint type = HwptDataType.ArmSmmuV3, uint flags = 0)
        {
            byte[] ste = new byte[16];
            Ufd.Put64(ste, 0, w0);
            Ufd.Put64(ste, 8, w1);
            return s.U.HwptAlloc(s.Device1, s.Viommu, flags, out id, type, s.U.Map(ste), len);
        }

        const ulong V = 1, S1Trans = 5UL << 1, Bypass = 4UL << 1, CdPtr = 0x8000_0000UL;
        Assert.Equal(0, Alloc(0xFFFF_FFFF_FFFF_FFFE, ulong.MaxValue, out uint invalidSte));      // V = 0: zeroed, accepted
        Assert.Equal(0, Alloc(V | S1Trans | CdPtr, 1UL << 28, out uint translate));                 // EATS = TRANS
        Assert.Equal(0, Alloc(V | Bypass, 0, out _));
        Assert.Equal(-Errno.EIO, Alloc(V | (6UL << 1), 0, out _));                                   // stage-2 config
        Assert.Equal(-Errno.EIO, Alloc(V | S1Trans | (1UL << 55), 0, out _));                         // outside the allowed fields
        Assert.Equal(-Errno.EIO, Alloc(V | S1Trans, 1UL << 40, out _));
        Assert.Equal(-Errno.EIO, Alloc(V | S1Trans, 2UL << 28, out _));                              // EATS = S1CHK
        Assert.Equal(-Errno.EINVAL, Alloc(V, 0, out _, len: 15));
        Assert.Equal(-Errno.EINVAL, Alloc(V, 0, out _, len: 24));
        Assert.Equal(-Errno.EINVAL, Alloc(V, 0, out _, type: HwptDataType.VtdS1));                   // the copy's type check
        Assert.Equal(-Errno.EOPNOTSUPP, Alloc(V, 0, out _, flags: (uint)HwptAllocFlags.Pasid));
        Assert.Equal(-Errno.EOPNOTSUPP, s.U.HwptAlloc(s.Device1, s.Parent, 0, out _, HwptDataType.ArmSmmuV3, s.U.Map(new byte[16]), 16));

        Assert.Equal(0, s.U.Fd.AttachDevice(s.Device1, translate));                                   // the device has a vDEVICE here
        Assert.Equal(0, s.U.Fd.AttachDevice(s.Device2, invalidSte));
        Assert.Equal(-Errno.EBUSY, s.U.Destroy(translate));
        uint n = 1;
        Assert.Equal(-Errno.EOPNOTSUPP, s.U.Invalidate(translate, s.U.Map(new byte[16]), InvalidateDataType.ArmSmmuV3, 16, ref n));
        Assert.Equal(0u, n);
    }
}
