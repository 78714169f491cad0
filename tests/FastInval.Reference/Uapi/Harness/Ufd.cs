using System.Buffers.Binary;
using FastInval.Uapi;

namespace FastInval.Reference.Uapi;

/// <summary>
/// A user-space view of an <see cref="Iommufd"/> in the style of the kernel selftests' iommufd_utils.h: each helper fills
/// the argument struct field by field (little-endian, the uAPI offsets), issues the ioctl and returns its result (0 or a
/// negative errno), reading output fields only on success.
/// </summary>
public sealed class Ufd : IDisposable
{
    public Ufd(IommufdOptions? options = null)
    {
        Memory = new UserMemory();
        Fd = new Iommufd(Memory, options ?? new IommufdOptions
        {
            Selftest = true,
            EngineOptions = new EngineOptions { IotlbCapacity = 1024, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
        });
    }

    /// <summary>Helpers over a file someone else owns (Dispose leaves it open).</summary>
    public Ufd(Iommufd fd, UserMemory memory)
    {
        Fd = fd;
        Memory = memory;
        _borrowed = true;
    }

    private readonly bool _borrowed;

    public UserMemory Memory { get; }

    public Iommufd Fd { get; }

    public void Dispose()
    {
        if (!_borrowed)
        {
            Fd.Dispose();
        }
    }

    /// <summary>Maps a buffer and returns its user address.</summary>
    public ulong Map(byte[] buffer) => Memory.Map(buffer);

    public int Ioctl(uint request, byte[] arg) => Fd.Ioctl(request, arg);

    public int Destroy(uint id) => Ioctl(IommufdRequest.Destroy, Struct(8, (4, id)));

    public int IoasAlloc(out uint id, uint flags = 0)
    {
        byte[] a = Struct(12, (4, flags));
        int rc = Ioctl(IommufdRequest.IoasAlloc, a);
        id = rc == 0 ? U32(a, 8) : 0;
        return rc;
    }

    public int HwptAlloc(uint devId, uint ptId, uint flags, out uint hwptId, uint dataType = 0, ulong dataUptr = 0,
        uint dataLen = 0, uint faultId = 0)
    {
        byte[] a = Struct(48, (4, flags), (8, devId), (12, ptId), (24, dataType), (28, dataLen), (40, faultId));
        BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(32), dataUptr);
        int rc = Ioctl(IommufdRequest.HwptAlloc, a);
        hwptId = rc == 0 ? U32(a, 16) : 0;
        return rc;
    }

    /// <summary>A selftest nested HWPT with IOTLB value <paramref name="iotlb"/>; <paramref name="dataLen"/> as given.</summary>
    public int HwptAllocSelftest(uint devId, uint ptId, uint flags, out uint hwptId, uint iotlb = MockSelftest.IotlbDefault,
        uint dataLen = 4, bool nullData = false, uint dataType = HwptDataType.Selftest, uint faultId = 0)
    {
        byte[] data = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(data, iotlb);
        return HwptAlloc(devId, ptId, flags, out hwptId, dataType, nullData ? 0 : Map(data), dataLen, faultId);
    }

    /// <summary>A VT-d stage-1 nested HWPT (struct iommu_hwpt_vtd_s1).</summary>
    public int HwptAllocVtd(uint devId, uint parentId, out uint hwptId, uint addressWidth = 48, ulong pgtbl = 0x1000_0000,
        ulong s1Flags = 0, uint dataLen = 24, uint flags = 0)
    {
        byte[] data = new byte[32];
        BinaryPrimitives.WriteUInt64LittleEndian(data, s1Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(8), pgtbl);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(16), addressWidth);
        return HwptAlloc(devId, parentId, flags, out hwptId, HwptDataType.VtdS1, Map(data), dataLen);
    }

    public int ViommuAlloc(uint devId, uint hwptId, uint type, out uint viommuId, uint flags = 0, ulong dataUptr = 0, uint dataLen = 0)
    {
        byte[] a = Struct(40, (4, flags), (8, type), (12, devId), (16, hwptId), (24, dataLen));
        BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(32), dataUptr);
        int rc = Ioctl(IommufdRequest.ViommuAlloc, a);
        viommuId = rc == 0 ? U32(a, 20) : 0;
        return rc;
    }

    public int VdeviceAlloc(uint viommuId, uint devId, ulong virtId, out uint vdeviceId)
    {
        byte[] a = Struct(24, (4, viommuId), (8, devId));
        BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(16), virtId);
        int rc = Ioctl(IommufdRequest.VdeviceAlloc, a);
        vdeviceId = rc == 0 ? U32(a, 12) : 0;
        return rc;
    }

    /// <summary>_test_cmd_hwpt_invalidate: size 32, entry_num copied back into <paramref name="num"/> whatever the result.</summary>
    public int Invalidate(uint hwptId, ulong dataUptr, uint dataType, uint entryLen, ref uint num, uint reserved = 0)
    {
        byte[] a = InvalidateStruct(hwptId, dataUptr, dataType, entryLen, num, reserved);
        int rc = Ioctl(IommufdRequest.HwptInvalidate, a);
        num = U32(a, 24);
        return rc;
    }

    public static byte[] InvalidateStruct(uint hwptId, ulong dataUptr, uint dataType, uint entryLen, uint num, uint reserved = 0, int size = 32)
    {
        byte[] a = new byte[Math.Max(size, 32)];
        BinaryPrimitives.WriteUInt32LittleEndian(a, (uint)size);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(4), hwptId);
        BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(8), dataUptr);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(16), dataType);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(20), entryLen);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(24), num);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(28), reserved);
        return a;
    }

    public int MockDomain(uint ptId, out uint stdevId, out uint hwptId, out uint idevId, uint? deviceFlags = null)
    {
        byte[] a = Struct(72, (4, deviceFlags is null ? MockSelftest.OpMockDomain : MockSelftest.OpMockDomainFlags), (8, ptId),
            (28, deviceFlags ?? 0));
        int rc = Ioctl(IommufdRequest.TestCmd, a);
        stdevId = rc == 0 ? U32(a, 16) : 0;
        hwptId = rc == 0 ? U32(a, 20) : 0;
        idevId = rc == 0 ? U32(a, 24) : 0;
        return rc;
    }

    public int MockDomainReplace(uint stdevId, uint ptId) => MockDomainReplace(stdevId, ptId, out _);

    public int MockDomainReplace(uint stdevId, uint ptId, out uint attachedId)
    {
        byte[] a = Struct(72, (4, MockSelftest.OpMockDomainReplace), (8, stdevId), (16, ptId));
        int rc = Ioctl(IommufdRequest.TestCmd, a);
        attachedId = rc == 0 ? U32(a, 16) : 0;
        return rc;
    }

    public int CheckIotlb(uint hwptId, uint slot, uint expected) =>
        Ioctl(IommufdRequest.TestCmd, Struct(72, (4, MockSelftest.OpMdCheckIotlb), (8, hwptId), (16, slot), (20, expected)));

    public int CheckDevCache(uint idevId, uint slot, uint expected) =>
        Ioctl(IommufdRequest.TestCmd, Struct(72, (4, MockSelftest.OpDevCheckCache), (8, idevId), (16, slot), (20, expected)));

    /// <summary>A struct of <paramref name="size"/> bytes with <c>size</c> at offset 0 and the given u32 fields.</summary>
    public static byte[] Struct(int size, params (int Offset, uint Value)[] fields)
    {
        byte[] a = new byte[size];
        BinaryPrimitives.WriteUInt32LittleEndian(a, (uint)size);
        foreach ((int offset, uint value) in fields)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(offset), value);
        }

        return a;
    }

    public static uint U32(byte[] a, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(a.AsSpan(offset));

    public static void Put32(byte[] a, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(offset), value);

    public static void Put64(byte[] a, int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(offset), value);
}
