using System.Buffers.Binary;
using FastInval.Reference.Uapi;
using FastInval.Uapi;
using FastInval.Vtd;

namespace FastInval.Tests.Uapi;

/// <summary>Fault objects in the iommufd state image (version 2): the fault record's layout, a round trip with faults to
/// deliver and faults awaiting a response, HWPTs linked to their fault object, the fresh descriptor and
/// <see cref="Iommufd.FaultDescriptor"/>, version-1 images, and the refusal of bad fault records.</summary>
public class IommufdFaultStateTests
{
    private const uint FaultQueueAlloc = 0x3B8E;

    private static byte[] Save(Iommufd fd)
    {
        var image = new byte[fd.StateSize];
        Assert.Equal(image.Length, fd.SaveState(image));
        return image;
    }

    private static uint U32(byte[] a, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(a.AsSpan(offset));

    private static byte[] Reseal(byte[] image)
    {
        byte[] copy = [.. image];
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(12), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(12), Crc32C(copy));
        return copy;
    }

    private static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78u : crc >> 1;
            }
        }

        return ~crc;
    }

    private static int AllocFault(Ufd u, out uint faultId, out int fd)
    {
        byte[] a = Ufd.Struct(16);
        int rc = u.Ioctl(FaultQueueAlloc, a);
        faultId = rc == 0 ? Ufd.U32(a, 8) : 0;
        fd = rc == 0 ? (int)Ufd.U32(a, 12) : -1;
        return rc;
    }

    private static int Trigger(Ufd u, uint devId, uint pasid, uint grpid, ulong addr)
    {
        byte[] cmd = Ufd.Struct(72, (4, MockSelftest.OpTriggerIopf), (16, devId), (20, pasid), (24, grpid), (28, 3));
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

    /// <summary>Record offset of object <paramref name="id"/> in <paramref name="image"/>.</summary>
    private static int Record(byte[] image, uint id)
    {
        int at = Iommufd.StateHeaderSize;
        while (U32(image, at + 4) != id)
        {
            at += 12 + (int)U32(image, at + 8);
        }

        return at;
    }

    /// <summary>A context with: 1 IOAS, 2 selftest object, 3 its mock device, 4 its automatic domain, 5 a nest parent,
    /// 6 a fault object, 7 a nested HWPT and 8 a paging HWPT both allocated with FAULT_ID_VALID on 6, the mock device
    /// attached to 7; three faults triggered, two read (cookies 1 and 2), cookie 1 answered: one fault to deliver, one
    /// awaiting a response (cookie 2), one answered.</summary>
    private sealed class FaultSetup : IDisposable
    {
        public readonly Ufd U = new(new IommufdOptions { Selftest = true });
        public readonly uint Stdev, Dev, Fault, Nested, Paging;
        public readonly int Descriptor;

        public FaultSetup()
        {
            Assert.Equal(0, U.IoasAlloc(out uint ioas));
            Assert.Equal(0, U.MockDomain(ioas, out Stdev, out _, out Dev));
            Assert.Equal(0, U.HwptAlloc(Dev, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
            Assert.Equal(0, AllocFault(U, out Fault, out Descriptor));
            Assert.Equal(0, U.HwptAllocSelftest(Dev, parent, (uint)HwptAllocFlags.FaultIdValid, out Nested, faultId: Fault));
            Assert.Equal(0, U.HwptAlloc(Dev, ioas, (uint)HwptAllocFlags.FaultIdValid, out Paging, faultId: Fault));
            Assert.Equal((3u, 6u, 7u, 8u), (Dev, Fault, Nested, Paging));
            Assert.Equal(0, U.MockDomainReplace(Stdev, Nested));
            Assert.Equal(0, Trigger(U, Dev, 0, 1, 0x1000));
            Assert.Equal(0, Trigger(U, Dev, 7, 2, 0x2000));
            Assert.Equal(0, Trigger(U, Dev, 0, 3, 0x3000));
            Assert.Equal(80, U.Fd.ReadFaults(Fault, new byte[80]));
            Assert.Equal(8, U.Fd.WriteFaultResponses(Fault, Response(1, 0)));
        }

        public void Dispose() => U.Dispose();
    }

    [Fact]
    public void FaultRecord_HasTheDocumentedLayout_AndTheHwptsNameTheirFaultObject()
    {
        using var s = new FaultSetup();
        byte[] image = Save(s.U.Fd);
        int at = Record(image, s.Fault);
        Assert.Equal((8u, 24u + 80u), (BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(at)) + 0u, U32(image, at + 8)));
        int p = at + 12;
        Assert.Equal(new byte[] { 1, 0, 0, 0 }, image[p..(p + 4)]);            // descriptor open
        Assert.Equal((1u, 1u, 0u), (U32(image, p + 4), U32(image, p + 8), U32(image, p + 12)));
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(p + 16)));
        // To deliver: the third fault, as a read would give it but with cookie 0.
        Assert.Equal((2u, 3u, 0u, 3u, 3u), (U32(image, p + 24), U32(image, p + 28), U32(image, p + 32), U32(image, p + 36), U32(image, p + 40)));
        Assert.Equal(0x3000UL, BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(p + 48)));
        Assert.Equal((0u, 0u), (U32(image, p + 56), U32(image, p + 60)));
        // Awaiting: the second fault (PASID 7: PASID_VALID | LAST_PAGE), cookie 2.
        Assert.Equal((3u, 3u, 7u, 2u), (U32(image, p + 64), U32(image, p + 68), U32(image, p + 72), U32(image, p + 76)));
        Assert.Equal(0x2000UL, BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(p + 88)));
        Assert.Equal(2u, U32(image, p + 100));

        Assert.Equal(s.Fault, U32(image, Record(image, s.Nested) + 12 + 72));
        Assert.Equal(s.Fault, U32(image, Record(image, s.Paging) + 12 + 4));
        Assert.Equal(0u, U32(image, Record(image, 5) + 12 + 4)); // the nest parent has none
    }

    [Fact]
    public void RoundTrip_PendingAndAwaitingFaults_ReadsAndResponsesAnswerAsOnTheSource()
    {
        using var s = new FaultSetup();
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        fd.RestoreState(image);
        Assert.Equal(s.U.Fd.DescribeTable(), fd.DescribeTable());
        Assert.Null(fd.CheckReferenceCounts());
        Assert.Equal(image, Save(fd));

        int restoredFd = fd.FaultDescriptor(s.Fault);
        Assert.True(restoredFd > 2);
        Assert.NotEqual(s.Descriptor, restoredFd); // both files are open: a fresh descriptor
        Assert.Equal(s.Descriptor, s.U.Fd.FaultDescriptor(s.Fault));
        Assert.Contains("fastinval-iommufd-fault", File.ResolveLinkTarget($"/proc/self/fd/{restoredFd}", false)!.FullName, StringComparison.Ordinal);
        Assert.True(fd.TryGetFaultCounts(s.Fault, out int queued, out int awaiting));
        Assert.Equal((1, 1), (queued, awaiting));

        byte[] x = new byte[80], y = new byte[80];
        Assert.Equal(40, s.U.Fd.ReadFaults(s.Fault, x));
        Assert.Equal(40, fd.ReadFaults(s.Fault, y));
        Assert.Equal(x, y);
        Assert.Equal(1u, U32(y, 36));       // the lowest free cookie: 2 still awaits
        Assert.Equal(0x3000u, U32(y, 24));
        Assert.Equal(-Errno.EINVAL, fd.WriteFaultResponses(s.Fault, Response(3, 0)));
        Assert.Equal(8, fd.WriteFaultResponses(s.Fault, Response(2, 1)));        // the fault read before the save
        Assert.Equal(-Errno.EINVAL, fd.WriteFaultResponses(s.Fault, Response(2, 0))); // answered once only
        Assert.True(fd.TryGetFaultCounts(s.Fault, out queued, out awaiting));
        Assert.Equal((0, 1), (queued, awaiting));
        Assert.Equal(8, s.U.Fd.WriteFaultResponses(s.Fault, Response(2, 1)));
        Assert.Equal(s.U.Fd.DescribeTable(), fd.DescribeTable());
        Assert.Contains("answered=2", fd.DescribeTable(), StringComparison.Ordinal);

        // The fault object is held by its file and both HWPTs: DESTROY is EBUSY until they are gone.
        var v = new Ufd(fd, s.U.Memory);
        Assert.Equal(-Errno.EBUSY, v.Destroy(s.Fault));
        Assert.Equal(0, fd.CloseFaultFile(s.Fault));
        Assert.Equal(-1, fd.FaultDescriptor(s.Fault));
        Assert.Equal(0, v.Destroy(s.Paging));
        Assert.Equal(0, v.MockDomainReplace(s.Stdev, 1)); // off the nested HWPT, onto an automatic domain
        Assert.Equal(0, v.Destroy(s.Nested));
        Assert.Equal(0, v.Destroy(s.Fault));
        Assert.Null(fd.CheckReferenceCounts());
    }

    [Fact]
    public void RestoredHwpts_TriggerIopfReachesTheRestoredQueue()
    {
        using var s = new FaultSetup();
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        fd.RestoreState(image);
        var v = new Ufd(fd, s.U.Memory);

        foreach (Ufd u in new[] { s.U, v })
        {
            Assert.Equal(0, Trigger(u, s.Dev, 0, 9, 0x9000));       // through the nested HWPT
            Assert.Equal(0, u.MockDomainReplace(s.Stdev, s.Paging));
            Assert.Equal(0, Trigger(u, s.Dev, 0, 10, 0xA000));      // through the paging HWPT
            Assert.True(u.Fd.TryGetFaultCounts(s.Fault, out int queued, out _));
            Assert.Equal(3, queued);
        }

        byte[] x = new byte[120], y = new byte[120];
        Assert.Equal(120, s.U.Fd.ReadFaults(s.Fault, x));
        Assert.Equal(120, fd.ReadFaults(s.Fault, y));
        Assert.Equal(x, y);
        Assert.Equal((9u, 0x9000u, 10u, 0xA000u), (U32(y, 40 + 12), U32(y, 40 + 24), U32(y, 80 + 12), U32(y, 80 + 24)));
        Assert.Equal((1u, 3u, 4u), (U32(y, 36), U32(y, 76), U32(y, 116)));
    }

    [Fact]
    public void ClosedDescriptor_StaysClosed_FaultsQueuedAfterTheCloseAreKept()
    {
        using var s = new FaultSetup();
        Assert.Equal(0, s.U.Fd.CloseFaultFile(s.Fault));
        Assert.Equal(0, Trigger(s.U, s.Dev, 0, 5, 0x5000)); // queued on a closed file: counted, never readable
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        fd.RestoreState(image);
        Assert.Equal(s.U.Fd.DescribeTable(), fd.DescribeTable());
        Assert.Null(fd.CheckReferenceCounts());
        Assert.Equal(-1, fd.FaultDescriptor(s.Fault));
        Assert.Equal(-Errno.EBADF, fd.ReadFaults(s.Fault, new byte[40]));
        Assert.Equal(-Errno.EBADF, fd.CloseFaultFile(s.Fault));
        Assert.True(fd.TryGetFaultCounts(s.Fault, out int queued, out int awaiting));
        Assert.Equal((1, 0), (queued, awaiting));
        Assert.Equal(image, Save(fd));
    }

    [Fact]
    public void FaultDescriptor_OfAnotherObjectOrAFreeId_IsMinusOne_DisposedThrows()
    {
        using var s = new FaultSetup();
        Assert.Equal(s.Descriptor, s.U.Fd.FaultDescriptor(s.Fault));
        foreach (uint id in new uint[] { 0, 1, s.Dev, s.Nested, 9, 1000, uint.MaxValue })
        {
            Assert.Equal(-1, s.U.Fd.FaultDescriptor(id));
        }

        var fd = new Iommufd(new UserMemory());
        fd.Dispose();
        Assert.Throws<ObjectDisposedException>(() => fd.FaultDescriptor(1));
    }

    [Fact]
    public void Reset_ClosesTheFaultFiles()
    {
        using var s = new FaultSetup();
        s.U.Fd.Reset();
        Assert.Equal(-1, s.U.Fd.FaultDescriptor(s.Fault));
        Assert.Equal("dids= vmids=", s.U.Fd.DescribeTable());
        Assert.Equal(0, AllocFault(s.U, out uint again, out int descriptor));
        Assert.Equal(1u, again);
        Assert.True(descriptor > 2);
    }

    [Fact]
    public void FaultImage_EveryTruncationAndSingleBitFlip_IsRefused()
    {
        using var s = new FaultSetup();
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        for (int n = 0; n < image.Length; n++)
        {
            Assert.Throws<ArgumentException>(() => fd.RestoreState(image.AsSpan(0, n)));
        }

        for (int bit = 0; bit < image.Length * 8; bit++)
        {
            byte[] bad = [.. image];
            bad[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.Throws<ArgumentException>(() => fd.RestoreState(bad));
        }

        Assert.Equal("dids= vmids=", fd.DescribeTable());
        Assert.Equal(-1, fd.FaultDescriptor(s.Fault));
        fd.RestoreState(image);
        Assert.Equal(s.U.Fd.DescribeTable(), fd.DescribeTable());
    }

    [Fact]
    public void BadFaultRecords_AndBadFaultLinks_AreRefusedBeforeAnythingChanges()
    {
        using var s = new FaultSetup();
        byte[] image = Save(s.U.Fd);
        using var fd = new Iommufd(s.U.Memory, s.U.Fd.Options);
        int fault = Record(image, s.Fault) + 12;
        byte[] Patch(int at, uint value, int width = 4)
        {
            byte[] bad = [.. image];
            if (width == 4)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(bad.AsSpan(at), value);
            }
            else
            {
                bad[at] = (byte)value;
            }

            return Reseal(bad);
        }

        void Refused(byte[] bad, string? part = null)
        {
            ArgumentException ex = Assert.Throws<ArgumentException>(() => fd.RestoreState(bad));
            if (part is not null)
            {
                Assert.Contains(part, ex.Message, StringComparison.Ordinal);
            }

            Assert.Equal("dids= vmids=", fd.DescribeTable());
        }

        int nestedFault = Record(image, s.Nested) + 12 + 72, pagingFault = Record(image, s.Paging) + 12 + 4;
        Refused(Patch(nestedFault, 1), "is not a fault object");  // the IOAS
        Refused(Patch(nestedFault, 30), "is not a fault object"); // a free id
        Refused(Patch(pagingFault, s.Dev), "is not a fault object");
        Refused(Patch(fault + 4, 2), "expected");                 // counts that do not fit the length
        Refused(Patch(fault + 8, 0), "expected");
        Refused(Patch(fault + 4, uint.MaxValue), "expected");
        Refused(Patch(fault, 0, 1));                              // closed, yet a fault awaits a response
        Refused(Patch(fault, 3, 1));                              // an unknown flag
        Refused(Patch(fault + 1, 1, 1));                          // reserved fields
        Refused(Patch(fault + 12, 1));
        Refused(Patch(fault + 20, 0x8000_0000));                  // answered beyond a long
        Refused(Patch(fault + 24 + 36, 2));                       // a cookie on a fault not yet read
        Refused(Patch(fault + 64 + 36, 0));                       // cookie 0 awaiting a response
        Refused(Patch(fault + 24, 3));                            // PASID_VALID without a PASID
        Refused(Patch(fault + 64, 2));                            // a PASID without PASID_VALID
        Refused(Patch(fault + 24 + 32, 1));                       // a length
        Refused(Patch(fault + 24 + 20, 1));                       // the reserved word

        // Two faults awaiting a response with the same cookie (a second awaiting fault, counts and length adjusted).
        using var t = new FaultSetup();
        Assert.Equal(40, t.U.Fd.ReadFaults(t.Fault, new byte[40])); // cookie 1: awaiting {1, 2}
        byte[] two = Save(t.U.Fd);
        int f2 = Record(two, t.Fault) + 12;
        Assert.Equal((0u, 2u), (U32(two, f2 + 4), U32(two, f2 + 8)));
        Assert.Equal((1u, 2u), (U32(two, f2 + 24 + 36), U32(two, f2 + 64 + 36)));
        byte[] dup = [.. two];
        BinaryPrimitives.WriteUInt32LittleEndian(dup.AsSpan(f2 + 64 + 36), 1);
        Refused(Reseal(dup), "cookie");
        BinaryPrimitives.WriteUInt32LittleEndian(dup.AsSpan(f2 + 24 + 36), 2); // out of order: 2 then 1
        Refused(Reseal(dup), "cookie");

        fd.RestoreState(image); // still fresh
        Assert.Equal(s.U.Fd.DescribeTable(), fd.DescribeTable());
    }

    /// <summary>A version-1 image (no fault records, HWPT records without the fault field) restores as before; a fault
    /// record in a version-1 image is an unknown kind.</summary>
    [Fact]
    public void Version1Image_WithoutFaultFields_IsStillRead()
    {
        using var t = new Topology(VtdErrorReporting.Mainline, FaultPlan.None);
        byte[] v2 = Save(t.Fd);
        byte[] v1 = ToVersion1(v2);
        Assert.True(v1.Length < v2.Length);
        using var fd = new Iommufd(t.Memory, t.Fd.Options);
        fd.RestoreState(v1);
        Assert.Equal(t.Fd.DescribeTable(), fd.DescribeTable());
        Assert.Null(fd.CheckReferenceCounts());
        Assert.Equal(v2, Save(fd)); // saved again as version 2

        // A version-2 image with its version set to 1 does not parse as version 1 (the HWPT records have the fault field).
        byte[] relabelled = [.. v2];
        relabelled[4] = 1;
        using var other = new Iommufd(t.Memory, t.Fd.Options);
        Assert.Throws<ArgumentException>(() => other.RestoreState(Reseal(relabelled)));

        using var s = new Ufd(new IommufdOptions { Selftest = true });
        Assert.Equal(0, AllocFault(s, out _, out _));
        byte[] faultV1 = [.. Save(s.Fd)];
        faultV1[4] = 1;
        using var third = new Iommufd(s.Memory, s.Fd.Options);
        ArgumentException ex = Assert.Throws<ArgumentException>(() => third.RestoreState(Reseal(faultV1)));
        Assert.Contains("unknown record kind", ex.Message, StringComparison.Ordinal); // kind 8 did not exist in version 1
    }

    /// <summary>The version-1 form of a version-2 image without fault objects: the fault field of every HWPT record cut out.</summary>
    private static byte[] ToVersion1(byte[] v2)
    {
        var output = new List<byte>(v2[..Iommufd.StateHeaderSize]);
        int at = Iommufd.StateHeaderSize;
        while (at < v2.Length)
        {
            ushort kind = BinaryPrimitives.ReadUInt16LittleEndian(v2.AsSpan(at));
            int length = (int)U32(v2, at + 8);
            byte[] payload = v2[(at + 12)..(at + 12 + length)];
            int cut = kind switch { 2 => 4, 3 => 72, _ => -1 };
            Assert.NotEqual(8, kind);
            if (cut >= 0)
            {
                Assert.Equal(0u, U32(payload, cut));
                payload = [.. payload[..cut], .. payload[(cut + 4)..]];
            }

            byte[] header = v2[at..(at + 12)];
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), (uint)payload.Length);
            output.AddRange(header);
            output.AddRange(payload);
            at += 12 + length;
        }

        byte[] v1 = [.. output];
        BinaryPrimitives.WriteUInt16LittleEndian(v1.AsSpan(4), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(v1.AsSpan(8), (uint)v1.Length);
        return Reseal(v1);
    }
}
