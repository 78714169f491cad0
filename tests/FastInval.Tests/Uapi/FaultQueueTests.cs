using System.Buffers.Binary;
using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>
/// IOMMU_FAULT_QUEUE_ALLOC, HWPT_ALLOC with IOMMU_HWPT_FAULT_ID_VALID, IOMMU_TEST_OP_TRIGGER_IOPF and the fault file's
/// read / write / close, through <see cref="Iommufd.Ioctl"/> and the fault-file members.
/// </summary>
public class FaultQueueTests
{
    private const uint FaultQueueAlloc = 0x3B8E;

    private static int AllocFault(Ufd u, out uint faultId, out int fd, uint flags = 0)
    {
        byte[] a = Ufd.Struct(16, (4, flags));
        int rc = u.Ioctl(FaultQueueAlloc, a);
        faultId = rc == 0 ? Ufd.U32(a, 8) : 0;
        fd = rc == 0 ? (int)Ufd.U32(a, 12) : -1;
        return rc;
    }

    private static int Trigger(Ufd u, uint devId, uint pasid = 0, uint grpid = 2, uint perm = 3, ulong addr = 0xdeadbeaf)
    {
        byte[] cmd = Ufd.Struct(72, (4, MockSelftest.OpTriggerIopf), (16, devId), (20, pasid), (24, grpid), (28, perm));
        Ufd.Put64(cmd, 32, addr);
        return u.Ioctl(IommufdRequest.TestCmd, cmd);
    }

    private static byte[] Response(uint cookie, uint code)
    {
        byte[] r = new byte[8];
        Ufd.Put32(r, 0, cookie);
        Ufd.Put32(r, 4, code);
        return r;
    }

    /// <summary>IOAS, a mock device, a nest parent, a fault queue and a nested HWPT bound to it, the device attached.</summary>
    private static (uint Stdev, uint Dev, uint Parent, uint Fault, int Fd, uint IopfHwpt) Setup(Ufd u)
    {
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(0, u.MockDomain(ioas, out uint stdev, out _, out uint dev));
        Assert.Equal(0, u.HwptAlloc(dev, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(0, AllocFault(u, out uint fault, out int fd));
        Assert.True(fd > 2);
        Assert.True(u.Fd.TryGetObjectType(fault, out IommufdObjectType type));
        Assert.Equal(IommufdObjectType.Fault, type);
        Assert.Equal(0, u.HwptAllocSelftest(dev, parent, (uint)HwptAllocFlags.FaultIdValid, out uint iopf, dataLen: 4, faultId: fault));
        Assert.Equal(0, u.MockDomainReplace(stdev, iopf));
        return (stdev, dev, parent, fault, fd, iopf);
    }

    [Fact]
    public void FaultQueueAlloc_FlagsNonZero_EopnotsuppAndNoObject()
    {
        using var u = new Ufd();
        Assert.Equal(-Errno.EOPNOTSUPP, AllocFault(u, out _, out _, flags: 1));
        Assert.False(u.Fd.TryGetObjectType(1, out _));
    }

    [Fact]
    public void HwptAlloc_FaultIdOfAnotherObject_EnoentAndTheHwptIsAborted()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(0, u.MockDomain(ioas, out _, out _, out uint dev));
        Assert.Equal(0, u.HwptAlloc(dev, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(-Errno.ENOENT, u.HwptAllocSelftest(dev, parent, (uint)HwptAllocFlags.FaultIdValid, out _, faultId: ioas));
        Assert.Equal(0, u.IoasAlloc(out uint next));
        Assert.Equal(parent + 1, next); // the aborted HWPT's id was freed
    }

    [Fact]
    public void TriggerIopf_ReadYieldsThePgfaultRecordAndWriteTakesItsResponse()
    {
        using var u = new Ufd();
        (_, uint dev, _, uint fault, _, _) = Setup(u);
        byte[] record = new byte[Iommufd.PageFaultRecordSize];
        Assert.Equal(0, u.Fd.ReadFaults(fault, record)); // nothing queued: 0
        Assert.Equal(0, Trigger(u, dev));
        Assert.True(u.Fd.TryGetFaultCounts(fault, out int queued, out int awaiting));
        Assert.Equal((1, 0), (queued, awaiting));
        Assert.Equal(-Errno.ESPIPE, u.Fd.ReadFaults(fault, record.AsSpan(0, 39)));
        Assert.Equal(40, u.Fd.ReadFaults(fault, record));
        Assert.Equal(2u, Ufd.U32(record, 0));                   // IOMMU_PGFAULT_FLAGS_LAST_PAGE
        Assert.Equal(dev, Ufd.U32(record, 4));
        Assert.Equal(0u, Ufd.U32(record, 8));                   // pasid
        Assert.Equal(2u, Ufd.U32(record, 12));                  // grpid
        Assert.Equal(3u, Ufd.U32(record, 16));                  // perm
        Assert.Equal(0u, Ufd.U32(record, 20));                  // __reserved
        Assert.Equal(0xdeadbeafUL, BinaryPrimitives.ReadUInt64LittleEndian(record.AsSpan(24)));
        Assert.Equal(0u, Ufd.U32(record, 32));                  // length
        uint cookie = Ufd.U32(record, 36);
        Assert.True(u.Fd.TryGetFaultCounts(fault, out queued, out awaiting));
        Assert.Equal((0, 1), (queued, awaiting));

        Assert.Equal(-Errno.ESPIPE, u.Fd.WriteFaultResponses(fault, new byte[7]));
        Assert.Equal(-Errno.EINVAL, u.Fd.WriteFaultResponses(fault, Response(cookie + 1, 0)));
        Assert.Equal(-Errno.EINVAL, u.Fd.WriteFaultResponses(fault, Response(cookie, 2)));
        Assert.Equal(8, u.Fd.WriteFaultResponses(fault, Response(cookie, 1)));  // IOMMUFD_PAGE_RESP_INVALID is a code too
        Assert.Equal(-Errno.EINVAL, u.Fd.WriteFaultResponses(fault, Response(cookie, 0)));
        Assert.True(u.Fd.TryGetFaultCounts(fault, out queued, out awaiting));
        Assert.Equal((0, 0), (queued, awaiting));
    }

    [Fact]
    public void Read_OnlyWholeRecordsThatFit_TheRestStayQueuedAndCookiesAreDistinct()
    {
        using var u = new Ufd();
        (_, uint dev, _, uint fault, _, _) = Setup(u);
        for (uint i = 0; i < 3; i++)
        {
            Assert.Equal(0, Trigger(u, dev, grpid: i));
        }

        byte[] two = new byte[80];
        Assert.Equal(80, u.Fd.ReadFaults(fault, two));
        byte[] rest = new byte[400];
        Assert.Equal(40, u.Fd.ReadFaults(fault, rest));
        Assert.Equal((0u, 1u, 2u), (Ufd.U32(two, 12), Ufd.U32(two, 52), Ufd.U32(rest, 12)));
        uint[] cookies = [Ufd.U32(two, 36), Ufd.U32(two, 76), Ufd.U32(rest, 36)];
        Assert.Equal(3, cookies.Distinct().Count());

        // A batch stops at its first bad response: the bytes before it count.
        byte[] batch = [.. Response(cookies[0], 0), .. Response(999, 0), .. Response(cookies[1], 0)];
        Assert.Equal(8, u.Fd.WriteFaultResponses(fault, batch));
        Assert.True(u.Fd.TryGetFaultCounts(fault, out _, out int awaiting));
        Assert.Equal(2, awaiting);
    }

    [Fact]
    public void Cookies_AreTheLowestFreeFromOne_AndAnAnsweredOneIsReused()
    {
        using var u = new Ufd();
        (_, uint dev, _, uint fault, _, _) = Setup(u);
        for (uint i = 0; i < 3; i++)
        {
            Assert.Equal(0, Trigger(u, dev, grpid: i));
        }

        byte[] three = new byte[120];
        Assert.Equal(120, u.Fd.ReadFaults(fault, three));
        Assert.Equal((1u, 2u, 3u), (Ufd.U32(three, 36), Ufd.U32(three, 76), Ufd.U32(three, 116)));
        Assert.Equal(-Errno.EINVAL, u.Fd.WriteFaultResponses(fault, Response(0, 0))); // 0 is never a cookie
        Assert.Equal(8, u.Fd.WriteFaultResponses(fault, Response(2, 0)));
        Assert.Equal(0, Trigger(u, dev, grpid: 9));
        byte[] one = new byte[40];
        Assert.Equal(40, u.Fd.ReadFaults(fault, one));
        Assert.Equal((9u, 2u), (Ufd.U32(one, 12), Ufd.U32(one, 36)));
    }

    [Fact]
    public void TriggerIopf_DeviceWithoutFaultCapableHwpt_DroppedAndZero_UnknownDeviceEnoent()
    {
        using var u = new Ufd();
        (uint stdev, uint dev, uint parent, uint fault, _, _) = Setup(u);
        Assert.Equal(0, u.MockDomainReplace(stdev, parent));
        Assert.Equal(0, Trigger(u, dev));                        // the parent has no fault queue: dropped
        Assert.Equal(0, Trigger(u, dev, pasid: 5));              // nor a PASID request (the RID's HWPT is not nested)
        Assert.True(u.Fd.TryGetFaultCounts(fault, out int queued, out _));
        Assert.Equal(0, queued);
        Assert.Equal(-Errno.ENOENT, Trigger(u, 0));
        Assert.Equal(-Errno.ENOENT, Trigger(u, fault));
    }

    [Fact]
    public void TriggerIopf_WithPasid_GoesToTheNestedHwptOnTheRid_FlaggedPasidValid()
    {
        // The mock driver keeps the PASID table in user space: a request with a PASID that has no PASID attachment of
        // its own is handled by the nested HWPT attached to the RID, and its record says PASID_VALID | LAST_PAGE.
        using var u = new Ufd();
        (_, uint dev, _, uint fault, _, _) = Setup(u);
        Assert.Equal(0, Trigger(u, dev, pasid: 1, grpid: 7));
        byte[] record = new byte[Iommufd.PageFaultRecordSize];
        Assert.Equal(40, u.Fd.ReadFaults(fault, record));
        Assert.Equal(3u, Ufd.U32(record, 0));                   // IOMMU_PGFAULT_FLAGS_PASID_VALID | LAST_PAGE
        Assert.Equal(dev, Ufd.U32(record, 4));
        Assert.Equal(1u, Ufd.U32(record, 8));
        Assert.Equal(7u, Ufd.U32(record, 12));
        Assert.Equal(8, u.Fd.WriteFaultResponses(fault, Response(Ufd.U32(record, 36), 0)));
        Assert.True(u.Fd.TryGetFaultCounts(fault, out int queued, out int awaiting));
        Assert.Equal((0, 0), (queued, awaiting));
    }

    [Fact]
    public void TriggerIopf_VtdDevice_OnlyARequestWithoutPasidReachesTheNestedHwptsQueue()
    {
        // VT-d keeps the PASID table in the host: a request with a PASID that has no PASID attachment finds no handler.
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        uint dev = u.Fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: false);
        Assert.Equal(0, u.HwptAlloc(dev, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(0, AllocFault(u, out uint fault, out _));
        byte[] s1 = new byte[24];
        BinaryPrimitives.WriteUInt64LittleEndian(s1.AsSpan(8), 0x1000_0000);
        BinaryPrimitives.WriteUInt32LittleEndian(s1.AsSpan(16), 48);
        Assert.Equal(0, u.HwptAlloc(dev, parent, (uint)HwptAllocFlags.FaultIdValid, out uint nested, HwptDataType.VtdS1,
            u.Map(s1), 24, fault));
        Assert.Equal(0, u.Fd.AttachDevice(dev, nested));
        Assert.Equal(0, Trigger(u, dev, pasid: 1));
        Assert.True(u.Fd.TryGetFaultCounts(fault, out int queued, out _));
        Assert.Equal(0, queued);
        Assert.Equal(0, Trigger(u, dev));
        Assert.True(u.Fd.TryGetFaultCounts(fault, out queued, out _));
        Assert.Equal(1, queued);
    }

    [Fact]
    public void Close_AnswersPendingFaults_DestroyBusyUntilFileAndHwptLetGo()
    {
        using var u = new Ufd();
        (uint stdev, uint dev, uint parent, uint fault, _, uint iopf) = Setup(u);
        Assert.Equal(0, Trigger(u, dev));
        Assert.Equal(-Errno.EBUSY, u.Destroy(fault));            // the file and the HWPT hold it
        Assert.Equal(0, u.Fd.CloseFaultFile(fault));
        Assert.Equal(-Errno.EBADF, u.Fd.CloseFaultFile(fault));
        Assert.Equal(-Errno.EBADF, u.Fd.ReadFaults(fault, new byte[40]));
        Assert.Equal(-Errno.EBADF, u.Fd.WriteFaultResponses(fault, Response(0, 0)));
        Assert.True(u.Fd.TryGetFaultCounts(fault, out int queued, out int awaiting));
        Assert.Equal((0, 0), (queued, awaiting));
        Assert.Equal(-Errno.EBUSY, u.Destroy(fault));            // the HWPT still holds it
        Assert.Equal(0, u.MockDomainReplace(stdev, parent));
        Assert.Equal(0, u.Destroy(iopf));
        Assert.Equal(0, u.Destroy(fault));
        Assert.Equal(-Errno.EBADF, u.Fd.ReadFaults(fault, new byte[40]));
        Assert.Null(u.Fd.CheckReferenceCounts());
    }

    [Fact]
    public void FaultDescriptor_IsARealOpenDescriptorUntilClosed()
    {
        using var u = new Ufd();
        Assert.Equal(0, AllocFault(u, out uint fault, out int fd));
        Assert.True(File.Exists($"/proc/self/fd/{fd}"));
        Assert.Equal(0, u.Fd.CloseFaultFile(fault));
        Assert.False(File.Exists($"/proc/self/fd/{fd}") && new FileInfo($"/proc/self/fd/{fd}").LinkTarget?.Contains("fastinval-iommufd-fault", StringComparison.Ordinal) == true);
    }

    [Fact]
    public void Dispose_ClosesTheFaultDescriptorsStillOpen()
    {
        var u = new Ufd();
        Assert.Equal(0, AllocFault(u, out _, out int fd));
        string? target = new FileInfo($"/proc/self/fd/{fd}").LinkTarget;
        Assert.Contains("fastinval-iommufd-fault", target, StringComparison.Ordinal);
        u.Dispose();
        string? after = File.Exists($"/proc/self/fd/{fd}") ? new FileInfo($"/proc/self/fd/{fd}").LinkTarget : null;
        Assert.False(after?.Contains("fastinval-iommufd-fault", StringComparison.Ordinal) == true);
    }
}
