using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>IOMMU_HWPT_INVALIDATE allocates nothing after warm-up, for every data type, in both reporting modes, on
/// success and on the error paths.</summary>
public class InvalidateAllocationTests
{
    /// <summary>Bytes allocated on this thread by 20 rounds after 3 warm-up rounds: the smallest over up to five windows
    /// (stopping at the first that allocated nothing), so that a collection run by another test's thread during a window
    /// does not count; an allocation in the code shows in every window.</summary>
    private static (long Min, string All) Allocated(Action action, int rounds = 20)
    {
        for (int i = 0; i < 3; i++)
        {
            action();
        }

        var windows = new List<long>(5);
        while (windows.Count < 5 && (windows.Count == 0 || windows.Min() != 0))
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < rounds; i++)
            {
                action();
            }

            windows.Add(GC.GetAllocatedBytesForCurrentThread() - before);
        }

        return (windows.Min(), string.Join(", ", windows));
    }

    [Theory]
    [InlineData(VtdErrorReporting.Mainline)]
    [InlineData(VtdErrorReporting.PerEntryHwError)]
    public void Ioctl_HwptInvalidateEveryDataType_AllocatesNothingAfterWarmUp(VtdErrorReporting reporting)
    {
        using var t = new Topology(reporting, new FaultPlan { TimeoutPerMillion = 100_000, CompletionErrorPerMillion = 100_000, Seed = 3 }, capacity: 4096);
        t.SmmuEngine.FaultPlan = FaultPlan.None; // ATC time-outs would stop the SMMUv3 batch; VT-d reports them per entry
        bool hwError = reporting == VtdErrorReporting.PerEntryHwError;

        const int entry = VtdS1Invalidate.EntrySize;
        byte[] vtd = new byte[1024 * entry];
        for (int i = 0; i < 1024; i++)
        {
            VtdS1Invalidate.Write(vtd.AsSpan(i * entry), (ulong)i << 12, 1 + ((ulong)i % 3), (uint)i & 1);
        }

        vtd[(1023 * entry) + VtdS1Invalidate.PageCountOffset] = 0xFF; // a page count that needs a wide block
        ulong vtdAddress = t.Memory.Map(vtd);

        byte[] smmu = new byte[64 * 16];
        for (int i = 0; i < 64; i++)
        {
            Ufd.Put64(smmu, i * 16, i % 4 == 0 ? 0x40UL | (1UL << 32) : 0x12UL | (1UL << 48));
            Ufd.Put64(smmu, (i * 16) + 8, (ulong)i << 12);
        }

        ulong smmuAddress = t.Memory.Map(smmu);
        int mockSize = hwError ? 16 : 8;
        byte[] mock = new byte[4 * mockSize];
        ulong mockAddress = t.Memory.Map(mock);
        byte[] mockViommu = new byte[4 * 12];
        for (int i = 0; i < 4; i++)
        {
            Ufd.Put32(mockViommu, (i * 12) + 4, Topology.MockVirtualId);
        }

        ulong mockViommuAddress = t.Memory.Map(mockViommu);

        byte[] vtdArg = Ufd.InvalidateStruct(t.VtdA, vtdAddress, InvalidateDataType.VtdS1, 24, 1024);
        byte[] vtdBadArg = Ufd.InvalidateStruct(t.VtdB, vtdAddress, InvalidateDataType.VtdS1, 24, 2000); // runs off the mapping: EFAULT at 1024
        byte[] smmuArg = Ufd.InvalidateStruct(t.SmmuViommu, smmuAddress, InvalidateDataType.ArmSmmuV3, 16, 64);
        byte[] mockArg = Ufd.InvalidateStruct(t.MockNested, mockAddress, InvalidateDataType.Selftest, (uint)mockSize, 4);
        byte[] mockViommuArg = Ufd.InvalidateStruct(t.MockViommu, mockViommuAddress, InvalidateDataType.Selftest, 12, 4);
        byte[] einvalArg = Ufd.InvalidateStruct(t.Ioas, vtdAddress, InvalidateDataType.VtdS1, 24, 4);
        int[] results = new int[6];

        (long bytes, string windows) = Allocated(() =>
        {
            for (ulong p = 0; p < 64; p++)
            {
                t.VtdEngine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, t.DidA, 0, p << 12, p << 12));
                t.VtdEngine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, p << 12, p << 12));
                t.SmmuEngine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, t.Vmid, 1, p << 12, p << 12));
            }

            Ufd.Put32(vtdArg, 24, 1024);
            Ufd.Put32(vtdBadArg, 24, 2000);
            Ufd.Put32(smmuArg, 24, 64);
            Ufd.Put32(mockArg, 24, 4);
            Ufd.Put32(mockViommuArg, 24, 4);
            results[0] = t.Fd.Ioctl(IommufdRequest.HwptInvalidate, vtdArg);
            results[1] = t.Fd.Ioctl(IommufdRequest.HwptInvalidate, vtdBadArg);
            results[2] = t.Fd.Ioctl(IommufdRequest.HwptInvalidate, smmuArg);
            results[3] = t.Fd.Ioctl(IommufdRequest.HwptInvalidate, mockArg);
            results[4] = t.Fd.Ioctl(IommufdRequest.HwptInvalidate, mockViommuArg);
            results[5] = t.Fd.Ioctl(IommufdRequest.HwptInvalidate, einvalArg);
        });

        Assert.Equal([0, -Errno.EFAULT, 0, 0, 0, -Errno.EINVAL], results);
        Assert.Equal(1024u, Ufd.U32(vtdBadArg, 24));
        Assert.True(bytes == 0, $"allocated bytes per window: {windows}");
    }
}
