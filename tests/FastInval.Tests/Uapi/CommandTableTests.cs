using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>
/// The whole iommufd command table: the size rules of every command (TEST_F(iommufd, cmd_length)), IOMMU_GET_HW_INFO,
/// IOAS_UNMAP, OPTION, VFIO_IOAS, IOAS_CHANGE_PROCESS, the first checks of the commands whose work is not modelled, and
/// the selftest ops MD_CHECK_REFS and SET_TEMP_MEMORY_LIMIT.
/// </summary>
public class CommandTableTests
{
    private const uint GetHwInfo = 0x3B8A;
    private const uint HwInfoTypeSelftest = 0xfeedbeef;

    /// <summary>(nr, offsetofend of the IOCTL_OP field, sizeof the struct) of every command of the v6.17 table.</summary>
    public static TheoryData<uint, int, int> Table => new()
    {
        { 0x80, 8, 8 }, { 0x81, 12, 12 }, { 0x82, 24, 24 }, { 0x83, 40, 40 }, { 0x84, 32, 32 }, { 0x85, 40, 40 },
        { 0x86, 24, 24 }, { 0x87, 24, 24 }, { 0x88, 12, 12 }, { 0x89, 24, 48 }, { 0x8A, 32, 40 }, { 0x8B, 16, 16 },
        { 0x8C, 48, 48 }, { 0x8D, 32, 32 }, { 0x8E, 16, 16 }, { 0x8F, 40, 40 }, { 0x90, 24, 40 }, { 0x91, 24, 24 },
        { 0x92, 8, 8 }, { 0x93, 28, 32 }, { 0x94, 40, 40 }, { 0xA0, 68, 72 },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void CmdLength_EveryCommand_ShortEinvalLongNonZeroE2bigLongZeroSameAnswerAsExact(uint nr, int min, int size)
    {
        using var u = new Ufd();
        uint request = 0x3B00 | nr;
        byte[] cmd = new byte[size + 1];
        cmd[size] = 0xFF;
        Ufd.Put32(cmd, 0, (uint)min - 1);
        Assert.Equal(-Errno.EINVAL, u.Ioctl(request, cmd));
        Ufd.Put32(cmd, 0, (uint)size + 1);
        Assert.Equal(-Errno.E2BIG, u.Ioctl(request, cmd));
        Ufd.Put32(cmd, 0, (uint)size);
        int exact = u.Ioctl(request, cmd);
        Array.Clear(cmd);
        Ufd.Put32(cmd, 0, (uint)size + 1);
        Assert.Equal(exact, u.Ioctl(request, cmd));
        Assert.NotEqual(-Errno.ENOTTY, exact);
    }

    private static int HwInfo(Ufd u, uint devId, byte[]? data, out byte[] answer, uint flags = 0, uint type = 0, int dataLen = -1)
    {
        answer = Ufd.Struct(40, (4, flags), (8, devId), (12, (uint)(dataLen >= 0 ? dataLen : data?.Length ?? 0)), (24, type));
        Ufd.Put64(answer, 16, data is null ? 0 : u.Map(data));
        return u.Ioctl(GetHwInfo, answer);
    }

    [Fact]
    public void GetHwInfo_MockDevice_SelftestTypeRegvalTrailingZeroedCapabilitiesAndPasidWidth()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(0, u.MockDomain(ioas, out _, out _, out uint dev));
        Assert.Equal(0, u.MockDomain(ioas, out _, out _, out uint pasidDev, MockSelftest.DevicePasid));
        Assert.Equal(0, u.MockDomain(ioas, out _, out _, out uint noDirty, MockSelftest.DeviceNoDirty));

        byte[] larger = Enumerable.Repeat((byte)0xAA, 16).ToArray();
        Assert.Equal(0, HwInfo(u, dev, larger, out byte[] a));
        Assert.Equal(8u, Ufd.U32(a, 12));                                 // data_len: what the kernel has
        Assert.Equal(HwInfoTypeSelftest, Ufd.U32(a, 24));
        Assert.Equal(0, a[28]);                                           // out_max_pasid_log2
        Assert.Equal(1ul, BitConverter.ToUInt64(a, 32));                  // IOMMU_HW_CAP_DIRTY_TRACKING
        Assert.Equal(0u, Ufd.U32(larger, 0));                             // flags
        Assert.Equal(0xdeadbeefu, Ufd.U32(larger, 4));                    // test_reg
        Assert.All(larger[8..], b => Assert.Equal(0, b));                 // the rest zeroed

        byte[] smaller = [0xAA, 0xAA, 0xAA, 0xAA];
        Assert.Equal(0, HwInfo(u, dev, smaller, out a));
        Assert.Equal(0u, Ufd.U32(smaller, 0));
        Assert.Equal(8u, Ufd.U32(a, 12));
        Assert.Equal(0, HwInfo(u, dev, null, out _));                     // zero-size buffer

        Assert.Equal(0, HwInfo(u, pasidDev, null, out a));
        Assert.Equal(20, a[28]);
        Assert.Equal(0, HwInfo(u, noDirty, null, out a));
        Assert.Equal(0ul, BitConverter.ToUInt64(a, 32));
    }

    [Fact]
    public void GetHwInfo_Errors_FlagsTypeDeviceAndPointer()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(0, u.MockDomain(ioas, out _, out _, out uint dev));
        byte[] data = new byte[8];
        Assert.Equal(0, HwInfo(u, dev, data, out _, flags: 1, type: HwInfoTypeSelftest));
        Assert.Equal(0, HwInfo(u, dev, data, out _, flags: 1, type: 0));
        Assert.Equal(-Errno.EOPNOTSUPP, HwInfo(u, dev, data, out _, flags: 1, type: HwInfoTypeSelftest + 1));
        Assert.Equal(0, HwInfo(u, dev, data, out _, flags: 0, type: HwInfoTypeSelftest + 1)); // ignored without INPUT_TYPE
        Assert.Equal(-Errno.EOPNOTSUPP, HwInfo(u, dev, data, out _, flags: 2));
        Assert.Equal(-Errno.ENOENT, HwInfo(u, 0, data, out _));
        Assert.Equal(-Errno.ENOENT, HwInfo(u, ioas, data, out _));
        Assert.Equal(-Errno.EFAULT, HwInfo(u, dev, null, out _, dataLen: 8));
        uint vtd = u.Fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: false);
        Assert.Equal(-Errno.EOPNOTSUPP, HwInfo(u, vtd, data, out _));
    }

    [Fact]
    public void IoasUnmap_NothingIsEverMapped_AllZeroLengthRangeEnoentAndTheOverflowRules()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        byte[] cmd = Ufd.Struct(24, (4, ioas));
        Ufd.Put64(cmd, 16, ulong.MaxValue);
        Assert.Equal(0, u.Ioctl(0x3B86, cmd));
        Assert.Equal(0ul, BitConverter.ToUInt64(cmd, 16));
        cmd = Ufd.Struct(24, (4, ioas));
        Ufd.Put64(cmd, 8, 0x1000);
        Ufd.Put64(cmd, 16, 0x1000);
        Assert.Equal(-Errno.ENOENT, u.Ioctl(0x3B86, cmd));
        Ufd.Put64(cmd, 16, 0);
        Assert.Equal(-Errno.EINVAL, u.Ioctl(0x3B86, cmd));
        Ufd.Put64(cmd, 16, ulong.MaxValue);
        Assert.Equal(-Errno.EOVERFLOW, u.Ioctl(0x3B86, cmd));
        Ufd.Put32(cmd, 4, ioas + 1);
        Assert.Equal(-Errno.ENOENT, u.Ioctl(0x3B86, cmd));
    }

    [Fact]
    public void Option_RlimitModeGetSetHugePagesAndUnknown()
    {
        using var u = new Ufd();
        static byte[] Option(uint id, ushort op, uint obj, ulong val)
        {
            byte[] c = Ufd.Struct(24, (4, id), (12, obj));
            c[8] = (byte)op;
            Ufd.Put64(c, 16, val);
            return c;
        }

        byte[] get = Option(0, 1, 0, 7);
        Assert.Equal(0, u.Ioctl(0x3B87, get));
        Assert.Equal(0ul, BitConverter.ToUInt64(get, 16));
        Assert.Equal(0, u.Ioctl(0x3B87, Option(0, 0, 0, 1)));
        Assert.Equal(-Errno.EINVAL, u.Ioctl(0x3B87, Option(0, 0, 0, 2)));
        get = Option(0, 1, 0, 7);
        Assert.Equal(0, u.Ioctl(0x3B87, get));
        Assert.Equal(1ul, BitConverter.ToUInt64(get, 16));
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B87, Option(0, 1, 5, 0)));
        Assert.Equal(-Errno.ENOENT, u.Ioctl(0x3B87, Option(1, 1, 0, 0)));
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B87, Option(1, 1, ioas, 0)));
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B87, Option(2, 1, 0, 0)));
        byte[] reserved = Option(0, 1, 0, 0);
        reserved[10] = 1;
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B87, reserved));
    }

    [Fact]
    public void VfioIoas_GetWithoutCompatEnodev_SetGetClear()
    {
        using var u = new Ufd();
        static byte[] Vfio(uint ioas, ushort op)
        {
            byte[] c = Ufd.Struct(12, (4, ioas));
            c[8] = (byte)op;
            return c;
        }

        Assert.Equal(-Errno.ENODEV, u.Ioctl(0x3B88, Vfio(0, 0)));
        Assert.Equal(-Errno.ENOENT, u.Ioctl(0x3B88, Vfio(1, 1)));
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(0, u.Ioctl(0x3B88, Vfio(ioas, 1)));
        byte[] get = Vfio(0, 0);
        Assert.Equal(0, u.Ioctl(0x3B88, get));
        Assert.Equal(ioas, Ufd.U32(get, 4));
        Assert.Equal(0, u.Ioctl(0x3B88, Vfio(0, 2)));
        Assert.Equal(-Errno.ENODEV, u.Ioctl(0x3B88, Vfio(0, 0)));
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B88, Vfio(0, 3)));
    }

    [Fact]
    public void NotModelledCommands_FirstChecksThenEopnotsupp_ChangeProcessZero()
    {
        using var u = new Ufd();
        Assert.Equal(-Errno.ENOENT, u.Ioctl(0x3B82, Ufd.Struct(24, (4, 9))));                   // ALLOW_IOVAS
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B82, Ufd.Struct(24, (4, ioas))));
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B84, Ufd.Struct(32, (4, ioas))));           // IOVA_RANGES
        Assert.Equal(-Errno.EINVAL, u.Ioctl(0x3B85, Ufd.Struct(40, (8, ioas))));               // MAP: neither R nor W
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B85, Ufd.Struct(40, (4, 8))));              // MAP: unknown flag
        byte[] map = Ufd.Struct(40, (4, 6), (8, ioas));
        Ufd.Put64(map, 24, ulong.MaxValue);
        Assert.Equal(-Errno.EOVERFLOW, u.Ioctl(0x3B85, map));
        Assert.Equal(-Errno.ENOENT, u.Ioctl(0x3B85, Ufd.Struct(40, (4, 6), (8, ioas + 1))));
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B85, Ufd.Struct(40, (4, 6), (8, ioas))));
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B8F, Ufd.Struct(40, (4, 6), (8, ioas))));   // MAP_FILE
        Assert.Equal(-Errno.ENOENT, u.Ioctl(0x3B83, Ufd.Struct(40, (12, 77))));                 // COPY
        Assert.Equal(-Errno.ENOENT, u.Ioctl(0x3B8B, Ufd.Struct(16, (8, ioas))));                // SET_DIRTY_TRACKING
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B8B, Ufd.Struct(16, (4, 2))));
        Assert.Equal(-Errno.ENOENT, u.Ioctl(0x3B93, Ufd.Struct(32)));                           // VEVENTQ_ALLOC
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B94, Ufd.Struct(40, (4, 1))));              // HW_QUEUE_ALLOC
        Assert.Equal(0, u.Ioctl(0x3B92, Ufd.Struct(8)));                                        // CHANGE_PROCESS
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(0x3B92, Ufd.Struct(8, (4, 1))));
    }

    [Fact]
    public void MdCheckRefs_AlignmentMappingAndZeroPins_SetTempMemoryLimitRecorded()
    {
        using var u = new Ufd();
        int page = Environment.SystemPageSize;
        byte[] buffer = new byte[2 * page];
        ulong address = u.Map(buffer);
        static byte[] Refs(ulong length, ulong uptr, uint refs)
        {
            byte[] c = Ufd.Struct(72, (4, MockSelftest.OpMdCheckRefs), (32, refs));
            Ufd.Put64(c, 16, length);
            Ufd.Put64(c, 24, uptr);
            return c;
        }

        Assert.Equal(0, u.Ioctl(IommufdRequest.TestCmd, Refs((ulong)page, address, 0)));
        Assert.Equal(-Errno.EIO, u.Ioctl(IommufdRequest.TestCmd, Refs((ulong)page, address, 1)));
        Assert.Equal(-Errno.EINVAL, u.Ioctl(IommufdRequest.TestCmd, Refs((ulong)page - 1, address, 0)));
        Assert.Equal(-Errno.EINVAL, u.Ioctl(IommufdRequest.TestCmd, Refs((ulong)page, address + 1, 0)));
        Assert.Equal(-Errno.EFAULT, u.Ioctl(IommufdRequest.TestCmd, Refs((ulong)page * 4, address, 0)));

        Assert.Equal(0, u.Ioctl(IommufdRequest.TestCmd, Ufd.Struct(72, (4, MockSelftest.OpSetTempMemoryLimit), (16, 16))));
        Assert.Equal(16u, u.Fd.TestMemoryLimit);
    }
}
