namespace FastInval.Uapi;

/// <summary>
/// The rest of the iommufd command table: IOMMU_GET_HW_INFO, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS,
/// IOMMU_IOAS_CHANGE_PROCESS answered as the kernel does for an emulation that maps no user pages; and the commands whose
/// work FastInval does not model (IOAS_ALLOW_IOVAS, IOAS_COPY, IOAS_IOVA_RANGES, IOAS_MAP, IOAS_MAP_FILE, dirty tracking,
/// VEVENTQ_ALLOC, HW_QUEUE_ALLOC), which still get the dispatcher's size rules and the kernel's first checks before
/// EOPNOTSUPP.
/// </summary>
public sealed partial class Iommufd
{
    private const uint HwInfoFlagInputType = 1u << 0;
    private const uint HwInfoTypeDefault = 0;
    private const uint HwInfoTypeSelftest = 0xfeedbeef;
    private const uint HwInfoSelftestRegval = 0xdeadbeef;
    private const int SelftestHwInfoLength = 8;           // struct iommu_test_hw_info { u32 flags; u32 test_reg; }
    private const ulong HwCapDirtyTracking = 1ul << 0;
    private const byte MockPasidWidth = 20;                // MOCK_PASID_WIDTH: a PASID-capable mock device has 2^20 PASIDs

    private const uint IoasMapFixedIova = 1u << 0;
    private const uint IoasMapWriteable = 1u << 1;
    private const uint IoasMapReadable = 1u << 2;

    private const uint OptionRlimitMode = 0;
    private const uint OptionHugePages = 1;
    private const uint OptionOpSet = 0;
    private const uint OptionOpGet = 1;

    private const uint VfioIoasGet = 0;
    private const uint VfioIoasSet = 1;
    private const uint VfioIoasClear = 2;

    private ulong _rlimitMode;
    private uint _vfioCompatIoas;

    /// <summary>
    /// IOMMU_GET_HW_INFO (device.c): unknown flags (EOPNOTSUPP); without IOMMU_HW_INFO_FLAG_INPUT_TYPE the requested type
    /// is DEFAULT; dev_id (ENOENT); the driver's hw_info for that type (the mock's: DEFAULT or SELFTEST, else EOPNOTSUPP;
    /// VT-d and SMMUv3 devices: EOPNOTSUPP, the emulation has no capability registers to report); copy min(data_len,
    /// 8) bytes of struct iommu_test_hw_info and zero the rest of the user buffer (EFAULT); answer data_len = 8,
    /// out_data_type = SELFTEST, out_capabilities (DIRTY_TRACKING unless the mock device has NO_DIRTY) and
    /// out_max_pasid_log2 (20 for a PASID-capable mock device, else 0).
    /// </summary>
    private int GetHwInfoCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        uint flags = UserCopy.U32(cmd, 4);
        uint devId = UserCopy.U32(cmd, 8);
        uint dataLen = UserCopy.U32(cmd, 12);
        ulong dataUptr = UserCopy.U64(cmd, 16);
        if ((flags & ~HwInfoFlagInputType) != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        uint type = (flags & HwInfoFlagInputType) != 0 ? UserCopy.U32(cmd, 24) : HwInfoTypeDefault;
        if (Lookup(devId) is not DeviceObject device)
        {
            return -Errno.ENOENT;
        }

        if (device.Driver != Driver.Mock || (type != HwInfoTypeDefault && type != HwInfoTypeSelftest))
        {
            return -Errno.EOPNOTSUPP;
        }

        Span<byte> info = stackalloc byte[SelftestHwInfoLength];
        UserCopy.PutU32(info, 0, 0);
        UserCopy.PutU32(info, 4, HwInfoSelftestRegval);
        int copy = (int)Math.Min(dataLen, (uint)SelftestHwInfoLength);
        if (copy != 0 && !_space.TryWrite(dataUptr, info[..copy]))
        {
            return -Errno.EFAULT;
        }

        int rc = ClearUser(dataUptr + (uint)copy, dataLen - (uint)copy);
        if (rc != 0)
        {
            return rc;
        }

        UserCopy.PutU32(cmd, 12, SelftestHwInfoLength);
        UserCopy.PutU32(cmd, 24, HwInfoTypeSelftest);
        cmd[28] = (device.MockFlags & MockSelftest.DevicePasid) != 0 ? MockPasidWidth : (byte)0;
        ulong capabilities = (device.MockFlags & MockSelftest.DeviceNoDirty) != 0 ? 0 : HwCapDirtyTracking;
        UserCopy.PutU64(cmd, 32, capabilities);
        Respond(cmd, arg, size);
        return 0;
    }

    /// <summary>clear_user: zeroes [address, address + length) in the user address space; EFAULT at an unwritable byte.</summary>
    private int ClearUser(ulong address, ulong length)
    {
        Span<byte> zeros = stackalloc byte[256];
        zeros.Clear();
        while (length != 0)
        {
            int n = (int)Math.Min(length, (ulong)zeros.Length);
            if (!_space.TryWrite(address, zeros[..n]))
            {
                return -Errno.EFAULT;
            }

            address += (ulong)n;
            length -= (ulong)n;
        }

        return 0;
    }

    /// <summary>
    /// IOMMU_IOAS_UNMAP (ioas.c): ioas_id (ENOENT); iova 0 with length U64_MAX unmaps everything; otherwise iova or length
    /// at or above ULONG_MAX is EOVERFLOW, length 0 EINVAL, and a range without a mapped area ENOENT. The emulation maps no
    /// user pages (IOAS_MAP is not modelled), so unmap-all answers length 0 and every other range ENOENT.
    /// </summary>
    private int IoasUnmapCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        if (Lookup(UserCopy.U32(cmd, 4)) is not IoasObject)
        {
            return -Errno.ENOENT;
        }

        ulong iova = UserCopy.U64(cmd, 8);
        ulong length = UserCopy.U64(cmd, 16);
        if (iova == 0 && length == ulong.MaxValue)
        {
            UserCopy.PutU64(cmd, 16, 0);
            Respond(cmd, arg, size);
            return 0;
        }

        if (iova >= ulong.MaxValue || length >= ulong.MaxValue)
        {
            return -Errno.EOVERFLOW;
        }

        return length == 0 ? -Errno.EINVAL : -Errno.ENOENT;
    }

    /// <summary>
    /// IOMMU_OPTION (main.c): __reserved (EOPNOTSUPP); RLIMIT_MODE (object_id must be 0, else EOPNOTSUPP): GET answers the
    /// mode, SET takes 0 or 1 (EINVAL otherwise; the emulation runs with the caller's rights, so no EPERM); HUGE_PAGES
    /// names an IOAS (ENOENT), whose page-size policy the emulation does not model (EOPNOTSUPP); any other option or op
    /// EOPNOTSUPP.
    /// </summary>
    private int OptionCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        uint optionId = UserCopy.U32(cmd, 4);
        uint op = (uint)(cmd[8] | (cmd[9] << 8));
        uint reserved = (uint)(cmd[10] | (cmd[11] << 8));
        uint objectId = UserCopy.U32(cmd, 12);
        ulong val64 = UserCopy.U64(cmd, 16);
        if (reserved != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        switch (optionId)
        {
            case OptionRlimitMode when objectId != 0:
                return -Errno.EOPNOTSUPP;
            case OptionRlimitMode when op == OptionOpGet:
                UserCopy.PutU64(cmd, 16, _rlimitMode);
                Respond(cmd, arg, size);
                return 0;
            case OptionRlimitMode when op == OptionOpSet:
                if (val64 > 1)
                {
                    return -Errno.EINVAL;
                }

                _rlimitMode = val64;
                return 0;
            case OptionHugePages:
                return Lookup(objectId) is IoasObject ? -Errno.EOPNOTSUPP : -Errno.ENOENT;
            default:
                return -Errno.EOPNOTSUPP;
        }
    }

    /// <summary>
    /// IOMMU_VFIO_IOAS (vfio_compat.c): __reserved (EOPNOTSUPP); GET answers the compatibility IOAS (ENODEV when none is
    /// set or it was destroyed); SET names an IOAS (ENOENT); CLEAR forgets it; any other op EOPNOTSUPP.
    /// </summary>
    private int VfioIoasCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        uint ioasId = UserCopy.U32(cmd, 4);
        uint op = (uint)(cmd[8] | (cmd[9] << 8));
        uint reserved = (uint)(cmd[10] | (cmd[11] << 8));
        if (reserved != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        switch (op)
        {
            case VfioIoasGet:
                if (_vfioCompatIoas == 0 || Lookup(_vfioCompatIoas) is not IoasObject)
                {
                    return -Errno.ENODEV;
                }

                UserCopy.PutU32(cmd, 4, _vfioCompatIoas);
                Respond(cmd, arg, size);
                return 0;
            case VfioIoasSet:
                if (Lookup(ioasId) is not IoasObject)
                {
                    return -Errno.ENOENT;
                }

                _vfioCompatIoas = ioasId;
                return 0;
            case VfioIoasClear:
                _vfioCompatIoas = 0;
                return 0;
            default:
                return -Errno.EOPNOTSUPP;
        }
    }

    /// <summary>IOMMU_IOAS_CHANGE_PROCESS (ioas.c): __reserved (EOPNOTSUPP); the emulation maps no user pages, so there is
    /// nothing to move to the calling process: 0.</summary>
    private static int IoasChangeProcessCommand(ReadOnlySpan<byte> cmd) =>
        UserCopy.U32(cmd, 4) != 0 ? -Errno.EOPNOTSUPP : 0;

    /// <summary>
    /// Commands whose work FastInval does not model: the kernel's first checks (flags, overflow, the object the command
    /// names) are answered as there, then EOPNOTSUPP. IOAS_MAP and IOAS_MAP_FILE: unknown flags or __reserved
    /// (EOPNOTSUPP), iova or length at or above ULONG_MAX (EOVERFLOW), neither READABLE nor WRITEABLE (EINVAL), ioas_id
    /// (ENOENT). IOAS_COPY: flags, overflow, src_ioas_id. ALLOW_IOVAS, IOVA_RANGES: ioas_id. Dirty tracking: flags, a
    /// paging hwpt_id. VEVENTQ_ALLOC, HW_QUEUE_ALLOC: flags, viommu_id.
    /// </summary>
    private int NotModelledCommand(uint nr, ReadOnlySpan<byte> cmd)
    {
        const uint mapFlags = IoasMapFixedIova | IoasMapWriteable | IoasMapReadable;
        switch (nr)
        {
            case 0x82 or 0x84:
                return Lookup(UserCopy.U32(cmd, 4)) is IoasObject ? -Errno.EOPNOTSUPP : -Errno.ENOENT;
            case 0x83:
                if ((UserCopy.U32(cmd, 4) & ~mapFlags) != 0)
                {
                    return -Errno.EOPNOTSUPP;
                }

                if (UserCopy.U64(cmd, 16) >= ulong.MaxValue || UserCopy.U64(cmd, 24) >= ulong.MaxValue ||
                    UserCopy.U64(cmd, 32) >= ulong.MaxValue)
                {
                    return -Errno.EOVERFLOW;
                }

                return Lookup(UserCopy.U32(cmd, 12)) is IoasObject ? -Errno.EOPNOTSUPP : -Errno.ENOENT;
            case 0x85 or 0x8F:
            {
                uint flags = UserCopy.U32(cmd, 4);
                bool reserved = nr == 0x85 && UserCopy.U32(cmd, 12) != 0;
                if ((flags & ~mapFlags) != 0 || reserved)
                {
                    return -Errno.EOPNOTSUPP;
                }

                if (UserCopy.U64(cmd, 24) >= ulong.MaxValue || UserCopy.U64(cmd, 32) >= ulong.MaxValue)
                {
                    return -Errno.EOVERFLOW;
                }

                if ((flags & (IoasMapWriteable | IoasMapReadable)) == 0)
                {
                    return -Errno.EINVAL;
                }

                return Lookup(UserCopy.U32(cmd, 8)) is IoasObject ? -Errno.EOPNOTSUPP : -Errno.ENOENT;
            }

            case 0x8B or 0x8C:
            {
                uint flags = UserCopy.U32(cmd, nr == 0x8B ? 4 : 8);
                if ((nr == 0x8B && (flags & ~1u) != 0) || (nr == 0x8C && (flags & ~1u) != 0))
                {
                    return -Errno.EOPNOTSUPP;
                }

                return Lookup(UserCopy.U32(cmd, nr == 0x8B ? 8 : 4)) is HwptPagingObject ? -Errno.EOPNOTSUPP : -Errno.ENOENT;
            }

            case 0x93 or 0x94:
                if (UserCopy.U32(cmd, 4) != 0)
                {
                    return -Errno.EOPNOTSUPP;
                }

                return Lookup(UserCopy.U32(cmd, 8)) is ViommuObject ? -Errno.EOPNOTSUPP : -Errno.ENOENT;
            default:
                return -Errno.EOPNOTSUPP;
        }
    }
}
