using System.Collections.Immutable;
using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>The VT-d stage-1 array (struct iommu_hwpt_vtd_s1_invalidate, 24 bytes) in user memory.</summary>
internal sealed class VtdEntries
{
    private readonly byte[] _bytes;

    public VtdEntries(Ufd u, int count, int mappedBytes = -1)
    {
        _bytes = new byte[count * VtdS1Invalidate.EntrySize];
        Address = u.Memory.Map(_bytes.AsMemory(0, mappedBytes < 0 ? _bytes.Length : mappedBytes));
    }

    public ulong Address { get; }

    public VtdEntries Set(int i, ulong addr, ulong npages, uint flags = 0, uint last = 0)
    {
        VtdS1Invalidate.Write(_bytes.AsSpan(i * VtdS1Invalidate.EntrySize), addr, npages, flags, last);
        return this;
    }

    /// <summary>The entry's last u32: __reserved (Mainline) or hw_error (PerEntryHwError).</summary>
    public uint Last(int i) => Ufd.U32(_bytes, (i * VtdS1Invalidate.EntrySize) + VtdS1Invalidate.LastWordOffset);

    public byte[] Bytes => _bytes;
}

/// <summary>
/// A VT-d setup: IOAS, an ATS device (source id 0x100) and a device without ATS (0x108), a nest parent, a VT-d S1 nested
/// HWPT with both attached. Its DID tags the nested IOTLB entries (PASID 0, IOMMU_NO_PASID).
/// </summary>
internal sealed class VtdSetup : IDisposable
{
    public const uint AtsSid = 0x100;
    public const uint PlainSid = 0x108;

    public VtdSetup(VtdErrorReporting reporting = VtdErrorReporting.Mainline, FaultPlan? plan = null)
    {
        U = new Ufd(new IommufdOptions
        {
            VtdErrorReporting = reporting,
            EngineOptions = new EngineOptions { IotlbCapacity = 1024, DeviceTlbCapacity = 256, FaultPlan = plan ?? FaultPlan.None },
        });
        Assert.Equal(0, U.IoasAlloc(out Ioas));
        AtsDevice = U.Fd.AddDevice(IommuKind.IntelVtd, AtsSid, ats: true);
        PlainDevice = U.Fd.AddDevice(IommuKind.IntelVtd, PlainSid, ats: false);
        Assert.Equal(0, U.HwptAlloc(AtsDevice, Ioas, (uint)HwptAllocFlags.NestParent, out Parent));
        Assert.Equal(0, U.HwptAllocVtd(AtsDevice, Parent, out Nested));
        Assert.Equal(0, U.Fd.AttachDevice(AtsDevice, Nested));
        Assert.Equal(0, U.Fd.AttachDevice(PlainDevice, Nested));
        Assert.True(U.Fd.TryGetDomainId(Nested, out Did));
        Engine = U.Fd.Engine(IommuKind.IntelVtd);
    }

    public readonly Ufd U;
    public readonly uint Ioas;
    public readonly uint AtsDevice;
    public readonly uint PlainDevice;
    public readonly uint Parent;
    public readonly uint Nested;
    public readonly ushort Did;
    public readonly InvalidationEngine Engine;

    public int Invalidate(VtdEntries entries, ref uint n, uint entryLen = 24, uint type = InvalidateDataType.VtdS1) =>
        U.Invalidate(Nested, entries.Address, type, entryLen, ref n);

    /// <summary>Fills one nested 4 KiB leaf per page of [0, pages) for the domain, PASID 0.</summary>
    public void FillPages(int pages, ushort? did = null, uint pasid = 0)
    {
        for (ulong p = 0; p < (ulong)pages; p++)
        {
            Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, did ?? Did, pasid, p << 12, (p + 0x100) << 12));
        }
    }

    public bool Cached(ulong address, ushort? did = null, uint pasid = 0) =>
        Engine.Iotlb.TryLookup(TranslationStage.Nested, did ?? Did, pasid, address, out _);

    public void FillDeviceTlb(uint sid, int pages)
    {
        for (ulong p = 0; p < (ulong)pages; p++)
        {
            Engine.DeviceTlb.Fill(new DeviceTlbEntry(sid, AddressSpace.None, p << 12, (p + 0x100) << 12));
        }
    }

    public bool DeviceCached(uint sid, ulong address, uint pasid = AddressSpace.None) => Engine.DeviceTlb.TryLookup(sid, pasid, address, out _);

    public void Dispose() => U.Dispose();
}

/// <summary>
/// IOMMU_HWPT_INVALIDATE on a VT-d S1 nested HWPT: every validation rule of intel_nested_cache_invalidate_user
/// (spec §6.1), the flush it issues through the engine (PASID-based IOTLB of the domain with the v6.10+ address mask,
/// device TLBs of ATS devices), and the per-entry hw_error mode (§6.6).
/// </summary>
public class VtdInvalidationTests
{
    [Fact]
    public void WrongType_EvenWithEmptyArray_Einval()
    {
        using var s = new VtdSetup();
        var e = new VtdEntries(s.U, 1);
        uint n = 0;
        Assert.Equal(-Errno.EINVAL, s.Invalidate(e, ref n, type: InvalidateDataType.ArmSmmuV3));
        Assert.Equal(0u, n);
        n = 1;
        Assert.Equal(-Errno.EINVAL, s.Invalidate(e, ref n, type: InvalidateDataType.Selftest));
        Assert.Equal(0u, n);
        n = 0;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.Equal(0u, n);
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(16u)]
    [InlineData(23u)]
    [InlineData(25u)]
    [InlineData(32u)]
    public void EntryLenOtherThan24_Einval(uint entryLen)
    {
        using var s = new VtdSetup();
        var e = new VtdEntries(s.U, 2).Set(0, 0x1000, 1);
        uint n = 1;
        Assert.Equal(-Errno.EINVAL, s.Invalidate(e, ref n, entryLen));
        Assert.Equal(0u, n);
    }

    [Theory]
    [InlineData(2u, 0u)]
    [InlineData(0x8000_0000u, 0u)]
    [InlineData(0xFFFF_FFFEu, 0u)]
    [InlineData(0u, 1u)]
    [InlineData(1u, 0x8000_0000u)]
    public void UnknownFlagOrReservedField_Eopnotsupp(uint flags, uint reserved)
    {
        using var s = new VtdSetup();
        var e = new VtdEntries(s.U, 1).Set(0, 0x1000, 1, flags, reserved);
        uint n = 1;
        Assert.Equal(-Errno.EOPNOTSUPP, s.Invalidate(e, ref n));
        Assert.Equal(0u, n);
    }

    [Theory]
    [InlineData(0x1001UL, 1UL)]
    [InlineData(0x0800UL, 1UL)]
    [InlineData(0x1000UL, ulong.MaxValue)]
    [InlineData(0xFFFUL, ulong.MaxValue)]
    public void UnalignedAddressOrAllPagesWithNonZeroAddress_Einval(ulong addr, ulong npages)
    {
        using var s = new VtdSetup();
        var e = new VtdEntries(s.U, 1).Set(0, addr, npages);
        uint n = 1;
        Assert.Equal(-Errno.EINVAL, s.Invalidate(e, ref n));
        Assert.Equal(0u, n);
    }

    [Theory]
    [InlineData(0UL, 0UL)]
    [InlineData(0x5000UL, 0UL)]
    [InlineData(0UL, ulong.MaxValue)]
    [InlineData(0xFFFF_FFFF_FFFF_F000UL, 2UL)]
    public void EdgeRanges_Accepted(ulong addr, ulong npages)
    {
        using var s = new VtdSetup();
        var e = new VtdEntries(s.U, 1).Set(0, addr, npages, VtdS1Invalidate.FlagLeaf);
        uint n = 1;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.Equal(1u, n);
    }

    [Fact]
    public void BadEntryInTheMiddle_StopsThere_EntriesBeforeFlushedAfterNot()
    {
        using var s = new VtdSetup();
        s.FillPages(8);
        var e = new VtdEntries(s.U, 4).Set(0, 0x1000, 1).Set(1, 0x2000, 1).Set(2, 0x3001, 1).Set(3, 0x4000, 1);
        uint n = 4;
        Assert.Equal(-Errno.EINVAL, s.Invalidate(e, ref n));
        Assert.Equal(2u, n);
        Assert.False(s.Cached(0x1000));
        Assert.False(s.Cached(0x2000));
        Assert.True(s.Cached(0x3000));
        Assert.True(s.Cached(0x4000));
    }

    [Fact]
    public void ArrayRunsOffItsMapping_EfaultAtTheFirstEntryNotFullyMapped()
    {
        using var s = new VtdSetup();
        s.FillPages(8);
        var e = new VtdEntries(s.U, 3, mappedBytes: (2 * 24) + 10).Set(0, 0x1000, 1).Set(1, 0x2000, 1).Set(2, 0x3000, 1);
        uint n = 3;
        Assert.Equal(-Errno.EFAULT, s.Invalidate(e, ref n));
        Assert.Equal(2u, n);
        Assert.False(s.Cached(0x2000));
        Assert.True(s.Cached(0x3000));
        n = 1;
        Assert.Equal(-Errno.EFAULT, s.U.Invalidate(s.Nested, 0x8, InvalidateDataType.VtdS1, 24, ref n));
        Assert.Equal(0u, n);
    }

    /// <summary>spec §6.3 worked examples, through the engine: exactly the pages of the emitted block are gone.</summary>
    [Theory]
    [InlineData(0x1000UL, 1UL, 0x1000UL, 0x1FFFUL)]
    [InlineData(0x4000UL, 4UL, 0x4000UL, 0x7FFFUL)]
    [InlineData(0x3000UL, 2UL, 0x0UL, 0x7FFFUL)]
    [InlineData(0x2000UL, 3UL, 0x0UL, 0x7FFFUL)]
    [InlineData(0x7000UL, 2UL, 0x0UL, 0xFFFFUL)]
    [InlineData(0x5000UL, 2UL, 0x4000UL, 0x7FFFUL)]
    public void WorkedExamples_InvalidateExactlyTheWidenedBlock(ulong addr, ulong npages, ulong first, ulong last)
    {
        using var s = new VtdSetup();
        s.FillPages(32);
        var e = new VtdEntries(s.U, 1).Set(0, addr, npages);
        uint n = 1;
        Assert.Equal(0, s.Invalidate(e, ref n));
        for (ulong p = 0; p < 32; p++)
        {
            ulong a = p << 12;
            Assert.Equal(a < first || a > last, s.Cached(a));
        }
    }

    [Fact]
    public void PageSelective_KeepsOtherDomainsAndPasidsRemovesGlobalsInRange()
    {
        using var s = new VtdSetup();
        ushort other = (ushort)(s.Did + 1);
        s.FillPages(4);
        s.FillPages(4, did: other);
        s.FillPages(4, pasid: 5);
        s.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, s.Did, 0, 0x10_0000, 0x20_0000, global: true));
        s.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, s.Did, 0, 0x1000, 0x30_0000, global: true));
        s.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, s.Did, AddressSpace.None, 0x1000, 0x40_0000));
        var e = new VtdEntries(s.U, 1).Set(0, 0x1000, 1);
        uint n = 1;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.False(s.Cached(0x1000));
        Assert.True(s.Cached(0x2000));
        Assert.True(s.Cached(0x1000, did: other));
        Assert.True(s.Cached(0x1000, pasid: 5));
        Assert.False(s.Engine.Iotlb.TryLookup(TranslationStage.Stage1, s.Did, 0, 0x1000, out _));   // global in range: removed
        Assert.True(s.Engine.Iotlb.TryLookup(TranslationStage.Stage1, s.Did, 0, 0x10_0000, out _)); // global out of range
        Assert.True(s.Engine.Iotlb.TryLookup(TranslationStage.Stage2, s.Did, AddressSpace.None, 0x1000, out _));
    }

    [Fact]
    public void FullFlush_PasidSelectiveNonGlobals_GlobalsAndOtherPasidsStay()
    {
        using var s = new VtdSetup();
        s.FillPages(16);
        s.FillPages(2, pasid: 7);
        s.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, s.Did, 0, 0x1000_0000, 0x20_0000, global: true));
        var e = new VtdEntries(s.U, 1).Set(0, 0, ulong.MaxValue);
        uint n = 1;
        Assert.Equal(0, s.Invalidate(e, ref n));
        for (ulong p = 0; p < 16; p++)
        {
            Assert.False(s.Cached(p << 12));
        }

        Assert.True(s.Cached(0x1000, pasid: 7));
        Assert.True(s.Engine.Iotlb.TryLookup(TranslationStage.Stage1, s.Did, 0, 0x1000_0000, out _));
    }

    [Fact]
    public void LeafFlag_KeepsPagingStructureEntries_WithoutItTheyGo()
    {
        using var s = new VtdSetup();
        var table = TranslationEntry.Table(TranslationStage.Nested, s.Did, 0, 0, 0x5000_0000, spanLog2: 21);
        s.Engine.Iotlb.Fill(table);
        s.FillPages(2);
        var e = new VtdEntries(s.U, 1).Set(0, 0x1000, 1, VtdS1Invalidate.FlagLeaf);
        uint n = 1;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.False(s.Cached(0x1000));
        Assert.True(s.Engine.Iotlb.TryLookupTable(TranslationStage.Nested, s.Did, 0, 0x1000, 21, out _));
        e.Set(0, 0x1000, 1, 0);
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.False(s.Engine.Iotlb.TryLookupTable(TranslationStage.Nested, s.Did, 0, 0x1000, 21, out _));
    }

    [Fact]
    public void DeviceTlb_OnlyAttachedAtsDevicesInTheBlock_AndTheirPasidEntries()
    {
        using var s = new VtdSetup();
        s.FillDeviceTlb(VtdSetup.AtsSid, 8);
        s.FillDeviceTlb(VtdSetup.PlainSid, 8);
        s.FillDeviceTlb(0x200, 8);
        s.Engine.DeviceTlb.Fill(new DeviceTlbEntry(VtdSetup.AtsSid, 3, 0x40_0000, 0x1000));
        var e = new VtdEntries(s.U, 1).Set(0, 0x2000, 2);
        uint n = 1;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.True(s.DeviceCached(VtdSetup.AtsSid, 0x1000));
        Assert.False(s.DeviceCached(VtdSetup.AtsSid, 0x2000));
        Assert.False(s.DeviceCached(VtdSetup.AtsSid, 0x3000));
        Assert.True(s.DeviceCached(VtdSetup.AtsSid, 0x4000));
        Assert.False(s.DeviceCached(VtdSetup.AtsSid, 0x40_0000, pasid: 3)); // a request without PASID reaches every PASID
        Assert.True(s.DeviceCached(VtdSetup.PlainSid, 0x2000));              // no ATS: never sent
        Assert.True(s.DeviceCached(0x200, 0x2000));                          // not attached
        Assert.Equal(1UL, s.Engine.DeviceTlbInvalidations);
    }

    [Fact]
    public void DeviceTlb_AfterDetach_NotInvalidated_IotlbStill()
    {
        using var s = new VtdSetup();
        s.FillDeviceTlb(VtdSetup.AtsSid, 4);
        s.FillPages(4);
        Assert.Equal(0, s.U.Fd.DetachDevice(s.AtsDevice));
        var e = new VtdEntries(s.U, 1).Set(0, 0x1000, 1);
        uint n = 1;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.True(s.DeviceCached(VtdSetup.AtsSid, 0x1000));
        Assert.False(s.Cached(0x1000));
        Assert.Equal(0UL, s.Engine.DeviceTlbInvalidations);
    }

    [Fact]
    public void Mainline_DeviceTlbTimeout_NotReportedEntryBytesUnchanged()
    {
        using var s = new VtdSetup(plan: new FaultPlan { TimeoutOrdinals = [0, 1] });
        s.FillDeviceTlb(VtdSetup.AtsSid, 4);
        var e = new VtdEntries(s.U, 2).Set(0, 0x1000, 1).Set(1, 0x2000, 1);
        byte[] before = (byte[])e.Bytes.Clone();
        uint n = 2;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.Equal(2u, n);
        Assert.Equal(before, e.Bytes);
        Assert.True(s.DeviceCached(VtdSetup.AtsSid, 0x1000)); // the device never answered
    }

    [Fact]
    public void PerEntryHwError_TimeoutAndCompletionError_ReportedInTheirEntriesBatchNotStopped()
    {
        using var s = new VtdSetup(VtdErrorReporting.PerEntryHwError, new FaultPlan { TimeoutOrdinals = [1], CompletionErrorOrdinals = [2] });
        s.FillDeviceTlb(VtdSetup.AtsSid, 8);
        var e = new VtdEntries(s.U, 4).Set(0, 0x1000, 1, last: 0xFFFF_FFFF).Set(1, 0x2000, 1).Set(2, 0x3000, 1).Set(3, 0x4000, 1);
        uint n = 4;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.Equal(4u, n);
        Assert.Equal(0u, e.Last(0));                         // hw_error is output only: input garbage is overwritten
        Assert.Equal(VtdS1Invalidate.ErrorIte, e.Last(1));
        Assert.Equal(VtdS1Invalidate.ErrorIce, e.Last(2));
        Assert.Equal(0u, e.Last(3));
        Assert.True(s.DeviceCached(VtdSetup.AtsSid, 0x2000));  // time-out: still cached
        Assert.False(s.DeviceCached(VtdSetup.AtsSid, 0x3000)); // completion error: invalidated
        Assert.False(s.DeviceCached(VtdSetup.AtsSid, 0x4000));
    }

    [Fact]
    public void PerEntryHwError_TwoAtsDevicesFailingDifferently_BothBitsSet()
    {
        using var s = new VtdSetup(VtdErrorReporting.PerEntryHwError, new FaultPlan { TimeoutOrdinals = [0], CompletionErrorOrdinals = [1] });
        uint second = s.U.Fd.AddDevice(IommuKind.IntelVtd, 0x110, ats: true);
        Assert.Equal(0, s.U.Fd.AttachDevice(second, s.Nested));
        var e = new VtdEntries(s.U, 2).Set(0, 0x1000, 1).Set(1, 0x2000, 1);
        uint n = 2;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.Equal(VtdS1Invalidate.ErrorIte | VtdS1Invalidate.ErrorIce, e.Last(0));
        Assert.Equal(0u, e.Last(1));
        Assert.Equal(4UL, s.Engine.DeviceTlbInvalidations);
    }

    [Fact]
    public void PerEntryHwError_NoAtsDevice_HwErrorWrittenZeroNotEchoed()
    {
        using var s = new VtdSetup(VtdErrorReporting.PerEntryHwError);
        Assert.Equal(0, s.U.Fd.DetachDevice(s.AtsDevice));
        var e = new VtdEntries(s.U, 1).Set(0, 0x1000, 1, last: 0x1234);
        uint n = 1;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.Equal(0u, e.Last(0));
    }

    [Fact]
    public void PerEntryHwError_BadEntryStillStops_OnlyHandledEntriesWritten()
    {
        using var s = new VtdSetup(VtdErrorReporting.PerEntryHwError, new FaultPlan { TimeoutOrdinals = [0] });
        var e = new VtdEntries(s.U, 2).Set(0, 0x1000, 1, last: 7).Set(1, 0x2000, 1, flags: 2, last: 7);
        uint n = 2;
        Assert.Equal(-Errno.EOPNOTSUPP, s.Invalidate(e, ref n));
        Assert.Equal(1u, n);
        Assert.Equal(VtdS1Invalidate.ErrorIte, e.Last(0));
        Assert.Equal(7u, e.Last(1));
    }

    [Fact]
    public void ManyEntries_MoreThanOneInternalBatch_AllHandledWithPerEntryErrors()
    {
        ImmutableArray<ulong> timeouts = [5, 299, 700];
        using var s = new VtdSetup(VtdErrorReporting.PerEntryHwError, new FaultPlan { TimeoutOrdinals = timeouts });
        const int Count = 1000;
        var e = new VtdEntries(s.U, Count);
        for (int i = 0; i < Count; i++)
        {
            e.Set(i, (ulong)i << 12, 1);
        }

        s.FillPages(Count);
        uint n = Count;
        Assert.Equal(0, s.Invalidate(e, ref n));
        Assert.Equal((uint)Count, n);
        for (int i = 0; i < Count; i++)
        {
            Assert.Equal(timeouts.Contains((ulong)i) ? VtdS1Invalidate.ErrorIte : 0u, e.Last(i));
            Assert.False(s.Cached((ulong)i << 12));
        }
    }

    [Fact]
    public void DomainIds_LowestFreeFromTwo_ReusedAfterDestroy()
    {
        using var s = new VtdSetup();
        Assert.Equal((ushort)2, s.Did);
        Assert.Equal(0, s.U.HwptAllocVtd(s.AtsDevice, s.Parent, out uint second));
        Assert.True(s.U.Fd.TryGetDomainId(second, out ushort did2));
        Assert.Equal((ushort)3, did2);
        Assert.Equal(0, s.U.Destroy(second));
        Assert.Equal(0, s.U.HwptAllocVtd(s.AtsDevice, s.Parent, out uint third));
        Assert.True(s.U.Fd.TryGetDomainId(third, out ushort did3));
        Assert.Equal((ushort)3, did3);
    }
}
