using System.Buffers.Binary;
using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>
/// <see cref="ProcessMemory"/>: user pointers are real addresses of this process; an unmapped page, a read-only page
/// for a write-back, NULL and kernel-half addresses are faults (EFAULT), never a signal.
/// </summary>
public sealed unsafe class ProcessMemoryTests
{
    private static readonly ulong Page = ProcessPages.PageSize;

    private static Iommufd Open(VtdErrorReporting reporting = VtdErrorReporting.Mainline) => new(ProcessMemory.Current, new IommufdOptions
    {
        Selftest = true,
        VtdErrorReporting = reporting,
        EngineOptions = new EngineOptions { IotlbCapacity = 256, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 },
    });

    [Fact]
    public void ReadPrefix_RangeRunsIntoInaccessiblePage_CopiesUpToThePageBoundary()
    {
        using var pages = new ProcessPages();
        pages.Span(2 * Page - 8, 8).Fill(0xAB);
        byte[] buffer = new byte[24];
        Assert.Equal(8, ProcessMemory.Current.ReadPrefix(pages.At(2 * Page - 8), buffer));
        Assert.All(buffer[..8], b => Assert.Equal(0xAB, b));
        Assert.False(ProcessMemory.Current.TryRead(pages.At(2 * Page - 8), buffer));
        Assert.True(ProcessMemory.Current.TryRead(pages.At(2 * Page - 8), buffer.AsSpan(0, 8)));
        Assert.Equal(0, ProcessMemory.Current.ReadPrefix(pages.Unmapped, buffer));
        Assert.Equal(0, ProcessMemory.Current.ReadPrefix(0, buffer));
        Assert.Equal(0, ProcessMemory.Current.ReadPrefix(0xFFFF_8880_0000_0000, buffer));
        Assert.Equal(0, ProcessMemory.Current.ReadPrefix(ulong.MaxValue - 3, buffer)); // wraps
        Assert.True(ProcessMemory.Current.TryRead(pages.Unmapped, default)); // zero bytes never fault
    }

    [Fact]
    public void TryWrite_ReadOnlyOrInaccessiblePage_FalseAndThePageKeepsItsBytes()
    {
        using var pages = new ProcessPages();
        pages.Span(Page, 4).Fill(7);
        pages.MakeReadOnly();
        Assert.False(ProcessMemory.Current.TryWrite(pages.At(Page), [1, 2, 3, 4]));
        Assert.Equal([7, 7, 7, 7], pages.Span(Page, 4).ToArray());
        Assert.False(ProcessMemory.Current.TryWrite(pages.Unmapped, [1]));
        Assert.True(ProcessMemory.Current.TryWrite(pages.At(0), [9]));
        Assert.Equal(9, pages.Span(0, 1)[0]);
    }

    [Fact]
    public void IoctlAt_ArgumentUnreadable_EfaultBeforeAnything_AndZeroTailRulesInAddressOrder()
    {
        using var pages = new ProcessPages();
        using Iommufd fd = Open();
        Assert.Equal(-Errno.EFAULT, fd.IoctlAt(IommufdRequest.IoasAlloc, pages.Unmapped));
        Assert.Equal(-Errno.EFAULT, fd.IoctlAt(IommufdRequest.IoasAlloc, 0));
        Assert.Equal(-Errno.ENOTTY, fd.IoctlAt(0x1234, 0)); // outside the table: nothing is read

        ulong straddle = 2 * Page - 4; // size readable, the rest not
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(straddle, 4), 12);
        Assert.Equal(-Errno.EFAULT, fd.IoctlAt(IommufdRequest.IoasAlloc, pages.At(straddle)));

        ulong a = 2 * Page - 16; // a 16-byte user struct ending at the unmapped page
        pages.Span(a, 16).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(a, 4), 16);
        Assert.Equal(0, fd.IoctlAt(IommufdRequest.IoasAlloc, pages.At(a)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(pages.Span(a + 8, 4)));
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(a, 4), 20);
        Assert.Equal(-Errno.EFAULT, fd.IoctlAt(IommufdRequest.IoasAlloc, pages.At(a)));
        pages.Span(a + 15, 1)[0] = 1;
        Assert.Equal(-Errno.E2BIG, fd.IoctlAt(IommufdRequest.IoasAlloc, pages.At(a)));
        Assert.False(fd.TryGetObjectType(2, out _));
    }

    [Fact]
    public void IoctlAt_ReadOnlyArgument_EfaultAndTheObjectItWouldHaveCreatedIsGone()
    {
        using var pages = new ProcessPages();
        using Iommufd fd = Open();
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(Page, 4), 12);
        pages.MakeReadOnly();
        Assert.Equal(-Errno.EFAULT, fd.IoctlAt(IommufdRequest.IoasAlloc, pages.At(Page)));
        Assert.False(fd.TryGetObjectType(1, out _)); // aborted, as iommufd_object_abort_and_destroy does
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(0, 4), 12);
        Assert.Equal(0, fd.IoctlAt(IommufdRequest.IoasAlloc, pages.At(0)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(pages.Span(8, 4))); // the id was freed again
    }

    [Fact]
    public void HwptInvalidate_EntryArrayRunsIntoInaccessiblePage_EfaultWithTheEntriesBeforeItDone()
    {
        using var pages = new ProcessPages();
        using Iommufd fd = Open();
        uint hwpt = MockNested(fd, pages);
        ulong entries = 2 * Page - 8; // entry 0 mapped, entry 1 on the unmapped page
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(entries, 4), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(entries + 4, 4), 1);
        byte[] inv = Ufd.InvalidateStruct(hwpt, pages.At(entries), InvalidateDataType.Selftest, 8, 2);
        Assert.Equal(-Errno.EFAULT, fd.Ioctl(IommufdRequest.HwptInvalidate, inv));
        Assert.Equal(1u, Ufd.U32(inv, 24));
        var u = new Ufd(fd, new UserMemory());
        Assert.Equal(0, u.CheckIotlb(hwpt, 1, 0));
        Assert.Equal(0, u.CheckIotlb(hwpt, 2, MockSelftest.IotlbDefault));

        inv = Ufd.InvalidateStruct(hwpt, pages.Unmapped, InvalidateDataType.Selftest, 8, 1);
        Assert.Equal(-Errno.EFAULT, fd.Ioctl(IommufdRequest.HwptInvalidate, inv));
        Assert.Equal(0u, Ufd.U32(inv, 24));
    }

    [Fact]
    public void HwptInvalidate_HwErrorWriteBack_InPlace_AndEfaultOnAReadOnlyArray()
    {
        using var pages = new ProcessPages();
        using Iommufd fd = Open(VtdErrorReporting.PerEntryHwError);
        uint hwpt = MockNested(fd, pages);
        Span<byte> entry = pages.Span(0, 16); // flags, iotlb_id, hw_error, __reserved
        BinaryPrimitives.WriteUInt32LittleEndian(entry, MockSelftest.FlagTriggerError);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], 0x55);
        byte[] inv = Ufd.InvalidateStruct(hwpt, pages.At(0), InvalidateDataType.Selftest, 16, 1);
        Assert.Equal(0, fd.Ioctl(IommufdRequest.HwptInvalidate, inv));
        Assert.Equal(MockSelftest.FakeError, BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]));

        entry.CopyTo(pages.Span(Page, 16));
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(Page + 8, 4), 0x55);
        pages.MakeReadOnly();
        inv = Ufd.InvalidateStruct(hwpt, pages.At(Page), InvalidateDataType.Selftest, 16, 1);
        Assert.Equal(-Errno.EFAULT, fd.Ioctl(IommufdRequest.HwptInvalidate, inv));
        Assert.Equal(0x55u, BinaryPrimitives.ReadUInt32LittleEndian(pages.Span(Page + 8, 4)));
    }

    [Fact]
    public void HwptAlloc_DataUptrInaccessible_Efault_ThenRealPointerWorks()
    {
        using var pages = new ProcessPages();
        using Iommufd fd = Open();
        (uint dev, uint parent) = Parent(fd);
        byte[] a = HwptAllocStruct(dev, parent, pages.Unmapped);
        Assert.Equal(-Errno.EFAULT, fd.Ioctl(IommufdRequest.HwptAlloc, a));
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(0, 4), 0x1234);
        a = HwptAllocStruct(dev, parent, pages.At(0));
        Assert.Equal(0, fd.Ioctl(IommufdRequest.HwptAlloc, a));
        var u = new Ufd(fd, new UserMemory());
        Assert.Equal(0, u.CheckIotlb(Ufd.U32(a, 16), 0, 0x1234));
    }

    [Fact]
    public void IoctlAt_OverUserMemory_AnswersAsTheSpanIoctl()
    {
        var memory = new UserMemory();
        using var fd = new Iommufd(memory, new IommufdOptions { Selftest = true });
        byte[] arg = Ufd.Struct(16, (4, 0));
        ulong address = memory.Map(arg);
        Assert.Equal(0, fd.IoctlAt(IommufdRequest.IoasAlloc, address));
        Assert.Equal(1u, Ufd.U32(arg, 8));
        arg[13] = 1;
        Assert.Equal(-Errno.E2BIG, fd.IoctlAt(IommufdRequest.IoasAlloc, address));
        Assert.Equal(-Errno.E2BIG, fd.Ioctl(IommufdRequest.IoasAlloc, arg));
        Assert.Equal(-Errno.EFAULT, fd.IoctlAt(IommufdRequest.IoasAlloc, address + (ulong)arg.Length - 2)); // size runs off the mapping
        Assert.Same(memory, fd.Memory);
        Assert.Same(memory, fd.UserAddressSpace);
    }

    [Fact]
    public void Memory_OverProcessMemory_ThrowsAndUserAddressSpaceAnswers()
    {
        using Iommufd fd = Open();
        Assert.Throws<InvalidOperationException>(() => fd.Memory);
        Assert.Same(ProcessMemory.Current, fd.UserAddressSpace);
    }

    private static (uint Device, uint Parent) Parent(Iommufd fd)
    {
        var u = new Ufd(fd, new UserMemory());
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(0, u.MockDomain(ioas, out _, out _, out uint dev));
        Assert.Equal(0, u.HwptAlloc(dev, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        return (dev, parent);
    }

    private static byte[] HwptAllocStruct(uint dev, uint parent, ulong dataUptr)
    {
        byte[] a = Ufd.Struct(48, (8, dev), (12, parent), (24, HwptDataType.Selftest), (28, 4));
        Ufd.Put64(a, 32, dataUptr);
        return a;
    }

    /// <summary>A mock nested HWPT whose IOTLB slots hold the default value (its data read from page 0 of real memory).</summary>
    private static uint MockNested(Iommufd fd, ProcessPages pages)
    {
        (uint dev, uint parent) = Parent(fd);
        BinaryPrimitives.WriteUInt32LittleEndian(pages.Span(Page - 4, 4), MockSelftest.IotlbDefault);
        byte[] a = HwptAllocStruct(dev, parent, pages.At(Page - 4));
        Assert.Equal(0, fd.Ioctl(IommufdRequest.HwptAlloc, a));
        return Ufd.U32(a, 16);
    }
}
