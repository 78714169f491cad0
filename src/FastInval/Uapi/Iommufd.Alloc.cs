namespace FastInval.Uapi;

/// <summary>IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC.</summary>
public sealed partial class Iommufd
{
    // vSTE fields (Arm IHI 0070 STE words 0 and 1; arm-smmu-v3.h STRTAB_STE_*).
    private const ulong SteValid = 1UL << 0;
    private const ulong SteConfigMask = 0x7UL << 1;
    private const ulong SteWord0Allowed = SteValid | SteConfigMask | (0x3UL << 4) /* S1Fmt */ |
                                          (0x3F_FFFF_FFFF_FFUL << 6) /* S1ContextPtr[51:6] */ | (0x1FUL << 59) /* S1CDMax */;
    private const ulong SteEats = 0x3UL << 28;
    private const ulong SteWord1Allowed = 0x3UL /* S1DSS */ | (0x3UL << 2) /* S1CIR */ | (0x3UL << 4) /* S1COR */ |
                                          (0x3UL << 6) /* S1CSH */ | (1UL << 27) /* S1STALLD */ | SteEats;
    private const uint SteConfigAbort = 0;
    private const uint SteConfigBypass = 4;
    private const uint SteConfigS1Translate = 5;

    /// <summary>struct iommu_hwpt_selftest in the newest kernels: iotlb, pagetable_type.</summary>
    private const int SelftestHwptDataSize = 8;

    /// <summary>struct iommu_viommu_selftest in the newest kernels: in_data, out_data, out_mmap_offset, out_mmap_length.</summary>
    private const int SelftestViommuDataSize = 24;

    /// <summary>IOMMU_DESTROY: the id must name a live object held only by the table (ENOENT, EBUSY). Nothing is written.</summary>
    private int DestroyCommand(ReadOnlySpan<byte> cmd)
    {
        IommufdObject? o = Lookup(UserCopy.U32(cmd, 4));
        if (o is null)
        {
            return -Errno.ENOENT;
        }

        if (o.Users != 1)
        {
            return -Errno.EBUSY;
        }

        Destroy(o);
        return 0;
    }

    /// <summary>IOMMU_IOAS_ALLOC: flags must be 0 (EOPNOTSUPP); an empty IOAS gets the lowest free id.</summary>
    private int IoasAllocCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        if (UserCopy.U32(cmd, 4) != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        uint id = AllocateId();
        if (id == 0)
        {
            return -Errno.ENOSPC;
        }

        UserCopy.PutU32(cmd, 8, id);
        Respond(cmd, arg, size);
        Finalize(id, new IoasObject());
        return 0;
    }

    /// <summary>
    /// IOMMU_HWPT_ALLOC (hw_pagetable.c, newest order): __reserved (EOPNOTSUPP); data type vs length (EINVAL); dev_id
    /// (ENOENT); pt_id of any type (missing: EINVAL); then by pt type: IOAS → paging HWPT, paging HWPT → nested (parent
    /// path), vIOMMU → nested (vIOMMU path), anything else EINVAL; then FAULT_ID_VALID's fault_id must name a fault object
    /// (ENOENT, the new HWPT is aborted), which the HWPT holds; respond.
    /// </summary>
    private int HwptAllocCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        var flags = (HwptAllocFlags)UserCopy.U32(cmd, 4);
        uint devId = UserCopy.U32(cmd, 8);
        uint ptId = UserCopy.U32(cmd, 12);
        uint reserved = UserCopy.U32(cmd, 20);
        uint dataType = UserCopy.U32(cmd, 24);
        uint dataLen = UserCopy.U32(cmd, 28);
        ulong dataUptr = UserCopy.U64(cmd, 32);
        if (reserved != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        if ((dataType == HwptDataType.None) != (dataLen == 0))
        {
            return -Errno.EINVAL;
        }

        if (Lookup(devId) is not DeviceObject device)
        {
            return -Errno.ENOENT;
        }

        IommufdObject? pt = Lookup(ptId);
        if (pt is null)
        {
            return -Errno.EINVAL;
        }

        var data = new UserData(dataType, dataUptr, dataLen);
        int rc;
        HwptObject? hwpt;
        uint id;
        switch (pt)
        {
            case IoasObject ioas:
                rc = AllocPaging(device, ioas, flags, data, out id, out hwpt);
                break;
            case HwptPagingObject parent:
                rc = AllocNestedFromParent(device, parent, flags, data, out id, out hwpt);
                break;
            case ViommuObject viommu:
                rc = AllocNestedFromViommu(device, viommu, flags, data, out id, out hwpt);
                break;
            default:
                return -Errno.EINVAL;
        }

        if (rc != 0)
        {
            return rc;
        }

        if ((flags & HwptAllocFlags.FaultIdValid) != 0)
        {
            if (Lookup(UserCopy.U32(cmd, 40)) is not FaultObject fault)
            {
                Release(hwpt!);
                Abort(id);
                return -Errno.ENOENT;
            }

            hwpt!.Fault = fault;
            Get(fault);
        }

        UserCopy.PutU32(cmd, 16, id);
        Respond(cmd, arg, size);
        Finalize(id, hwpt!);
        return 0;
    }

    private int AllocPaging(DeviceObject device, IoasObject ioas, HwptAllocFlags flags, UserData data, out uint id, out HwptObject? hwpt)
    {
        id = 0;
        hwpt = null;
        const HwptAllocFlags valid = HwptAllocFlags.NestParent | HwptAllocFlags.DirtyTracking | HwptAllocFlags.FaultIdValid | HwptAllocFlags.Pasid;
        if ((flags & ~valid) != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        bool dirty = (flags & HwptAllocFlags.DirtyTracking) != 0;
        bool noDirty = device.Driver == Driver.Mock && (device.MockFlags & MockSelftest.DeviceNoDirty) != 0;
        if (dirty && noDirty)
        {
            return -Errno.EOPNOTSUPP; // the device lacks IOMMU_CAP_DIRTY_TRACKING
        }

        if ((flags & HwptAllocFlags.FaultIdValid) != 0 && (flags & HwptAllocFlags.NestParent) != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        id = AllocateId();
        if (id == 0)
        {
            return -Errno.ENOSPC;
        }

        HwptAllocFlags driverFlags = flags & ~HwptAllocFlags.FaultIdValid;
        bool nestParent = (driverFlags & HwptAllocFlags.NestParent) != 0;
        int rc = device.Driver switch
        {
            Driver.Mock => MockPagingCheck(driverFlags, data),
            Driver.IntelVtd => data.Length != 0 ? -Errno.EOPNOTSUPP : 0,
            _ => data.Length != 0 || driverFlags is not (0 or HwptAllocFlags.NestParent or HwptAllocFlags.DirtyTracking or
                HwptAllocFlags.Pasid or (HwptAllocFlags.DirtyTracking | HwptAllocFlags.Pasid)) ? -Errno.EOPNOTSUPP : 0,
        };

        ushort vmid = 0;
        if (rc == 0 && device.Driver == Driver.ArmSmmuV3 && nestParent)
        {
            vmid = AllocateVmid();
            rc = vmid == 0 ? -Errno.ENOSPC : 0;
        }

        if (rc != 0)
        {
            Abort(id);
            return rc;
        }

        var paging = new HwptPagingObject
        {
            Driver = device.Driver,
            Ioas = ioas,
            NestParent = nestParent,
            DirtyTracking = dirty,
            Vmid = vmid,
        };
        Get(ioas);
        ioas.Hwpts.Add(paging);
        hwpt = paging;
        return 0;
    }

    /// <summary>mock_domain_alloc_paging_flags (newest): flags, then the data type (SELFTEST or NONE), then the copy
    /// (iotlb at least, struct at most: 4..8 bytes), then pagetable_type (DEFAULT 0 or HUGE 1).</summary>
    private int MockPagingCheck(HwptAllocFlags flags, UserData data)
    {
        if ((flags & ~(HwptAllocFlags.DirtyTracking | HwptAllocFlags.NestParent | HwptAllocFlags.Pasid)) != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        if (data.Length == 0)
        {
            return 0;
        }

        if (data.Type != HwptDataType.Selftest)
        {
            return -Errno.EOPNOTSUPP;
        }

        Span<byte> cfg = stackalloc byte[SelftestHwptDataSize];
        int rc = CopyUserData(data, HwptDataType.Selftest, cfg, minLength: 4);
        if (rc != 0)
        {
            return rc;
        }

        return UserCopy.U32(cfg, 4) is 0 or 1 ? 0 : -Errno.EOPNOTSUPP;
    }

    private int AllocNestedFromParent(DeviceObject device, HwptPagingObject parent, HwptAllocFlags flags, UserData data,
        out uint id, out HwptObject? hwpt)
    {
        id = 0;
        hwpt = null;
        if ((flags & ~(HwptAllocFlags.FaultIdValid | HwptAllocFlags.Pasid)) != 0 || data.Length == 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        if (device.Driver == Driver.ArmSmmuV3)
        {
            return -Errno.EOPNOTSUPP; // SMMUv3 nests only through a vIOMMU: no domain_alloc_nested op
        }

        if (parent.AutoDomain || !parent.NestParent || parent.Driver != device.Driver)
        {
            return -Errno.EINVAL;
        }

        id = AllocateId();
        if (id == 0)
        {
            return -Errno.ENOSPC;
        }

        var nested = new HwptNestedObject { Driver = device.Driver, Parent = parent };
        int rc = device.Driver == Driver.Mock ? MockNestedData(nested, data) : VtdNestedData(nested, data);
        if (rc != 0)
        {
            Abort(id);
            return rc;
        }

        Get(parent);
        hwpt = nested;
        return 0;
    }

    private int AllocNestedFromViommu(DeviceObject device, ViommuObject viommu, HwptAllocFlags flags, UserData data,
        out uint id, out HwptObject? hwpt)
    {
        id = 0;
        hwpt = null;
        if (viommu.Driver != device.Driver)
        {
            return -Errno.EINVAL;
        }

        if ((flags & ~(HwptAllocFlags.FaultIdValid | HwptAllocFlags.Pasid)) != 0 || data.Length == 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        id = AllocateId();
        if (id == 0)
        {
            return -Errno.ENOSPC;
        }

        HwptAllocFlags driverFlags = flags & ~HwptAllocFlags.FaultIdValid;
        var nested = new HwptNestedObject { Driver = viommu.Driver, Parent = viommu.Parent, Viommu = viommu };
        int rc = viommu.Driver == Driver.Mock ? MockNestedData(nested, data) : SmmuNestedData(nested, driverFlags, data);
        if (rc != 0)
        {
            Abort(id);
            return rc;
        }

        Get(viommu);
        hwpt = nested;
        return 0;
    }

    /// <summary>__mock_domain_alloc_nested: the data type must be SELFTEST (EOPNOTSUPP); copy iotlb (4..8 bytes); every
    /// IOTLB slot starts at that value.</summary>
    private int MockNestedData(HwptNestedObject nested, UserData data)
    {
        if (data.Type != HwptDataType.Selftest)
        {
            return -Errno.EOPNOTSUPP;
        }

        Span<byte> cfg = stackalloc byte[SelftestHwptDataSize];
        int rc = CopyUserData(data, HwptDataType.Selftest, cfg, minLength: 4);
        if (rc != 0)
        {
            return rc;
        }

        Array.Fill(nested.MockIotlb, UserCopy.U32(cfg, 0));
        return 0;
    }

    /// <summary>intel_iommu_domain_alloc_nested: type VTD_S1 (EOPNOTSUPP); the copy needs exactly 24 bytes (EINVAL, EFAULT);
    /// nothing inside is checked until attach. The domain gets the lowest free DID.</summary>
    private int VtdNestedData(HwptNestedObject nested, UserData data)
    {
        if (data.Type != HwptDataType.VtdS1)
        {
            return -Errno.EOPNOTSUPP;
        }

        Span<byte> s1 = stackalloc byte[24];
        int rc = CopyUserData(data, HwptDataType.VtdS1, s1, minLength: 24);
        if (rc != 0)
        {
            return rc;
        }

        ushort did = AllocateDomainId();
        if (did == 0)
        {
            return -Errno.ENOSPC;
        }

        nested.DomainId = did;
        nested.VtdFlags = UserCopy.U64(s1, 0);
        nested.VtdPageTable = UserCopy.U64(s1, 8);
        nested.VtdAddressWidth = UserCopy.U32(s1, 16);
        return 0;
    }

    /// <summary>arm_vsmmu_alloc_domain_nested: flags must be 0 (EOPNOTSUPP); copy the vSTE (type ARM_SMMUV3 and exactly 16
    /// bytes: EINVAL, EFAULT); an invalid vSTE (V = 0) is zeroed and accepted as abort; bits outside the nesting-allowed
    /// fields, a Config other than abort/bypass/stage-1, or EATS other than 0/1 are EIO.</summary>
    private int SmmuNestedData(HwptNestedObject nested, HwptAllocFlags flags, UserData data)
    {
        if (flags != 0)
        {
            return -Errno.EOPNOTSUPP;
        }

        Span<byte> ste = stackalloc byte[16];
        int rc = CopyUserData(data, HwptDataType.ArmSmmuV3, ste, minLength: 16);
        if (rc != 0)
        {
            return rc;
        }

        ulong w0 = UserCopy.U64(ste, 0), w1 = UserCopy.U64(ste, 8);
        if ((w0 & SteValid) == 0)
        {
            w0 = w1 = 0;
        }
        else
        {
            if ((w0 & ~SteWord0Allowed) != 0 || (w1 & ~SteWord1Allowed) != 0)
            {
                return -Errno.EIO;
            }

            uint config = (uint)((w0 & SteConfigMask) >> 1);
            if (config is not (SteConfigAbort or SteConfigBypass or SteConfigS1Translate))
            {
                return -Errno.EIO;
            }

            if ((w1 & SteEats) >> 28 > 1)
            {
                return -Errno.EIO;
            }

            nested.SteConfig = config;
        }

        nested.Ste0 = w0;
        nested.Ste1 = w1 & ~SteEats;
        return 0;
    }

    /// <summary>
    /// IOMMU_VIOMMU_ALLOC (viommu.c, newest order): flags or type 0 (EOPNOTSUPP); dev_id (ENOENT); the device's driver must
    /// support vIOMMUs of this type (VT-d none, SMMUv3 ARM_SMMUV3, mock SELFTEST: EOPNOTSUPP); hwpt_id must be a paging
    /// HWPT (ENOENT) that is a nest parent (EINVAL) of the same IOMMU (EINVAL); the driver's init; respond.
    /// </summary>
    private int ViommuAllocCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        uint flags = UserCopy.U32(cmd, 4);
        uint type = UserCopy.U32(cmd, 8);
        uint devId = UserCopy.U32(cmd, 12);
        uint hwptId = UserCopy.U32(cmd, 16);
        uint dataLen = UserCopy.U32(cmd, 24);
        ulong dataUptr = UserCopy.U64(cmd, 32);
        if (flags != 0 || type == ViommuType.Default)
        {
            return -Errno.EOPNOTSUPP;
        }

        if (Lookup(devId) is not DeviceObject device)
        {
            return -Errno.ENOENT;
        }

        bool supported = device.Driver switch
        {
            Driver.Mock => type == ViommuType.Selftest,
            Driver.ArmSmmuV3 => type == ViommuType.ArmSmmuV3,
            _ => false,
        };
        if (!supported)
        {
            return -Errno.EOPNOTSUPP;
        }

        if (Lookup(hwptId) is not HwptPagingObject parent)
        {
            return -Errno.ENOENT;
        }

        if (!parent.NestParent)
        {
            return -Errno.EINVAL;
        }

        uint id = AllocateId();
        if (id == 0)
        {
            return -Errno.ENOSPC;
        }

        int rc = parent.Driver != device.Driver ? -Errno.EINVAL : 0;
        if (rc == 0 && device.Driver == Driver.Mock && dataLen != 0)
        {
            rc = MockViommuData(new UserData(type, dataUptr, dataLen));
        }

        if (rc != 0)
        {
            Abort(id);
            return rc;
        }

        var viommu = new ViommuObject { Driver = device.Driver, Parent = parent, Vmid = parent.Vmid };
        Get(parent);
        UserCopy.PutU32(cmd, 20, id);
        Respond(cmd, arg, size);
        Finalize(id, viommu);
        return 0;
    }

    /// <summary>mock_viommu_init with data: copy struct iommu_viommu_selftest (out_data at least, 24 bytes at most: EINVAL,
    /// EFAULT), answer out_data = in_data and copy the struct back to data_uptr. FastInval's mock has no MMIO page:
    /// out_mmap_offset and out_mmap_length come back 0.</summary>
    private int MockViommuData(UserData data)
    {
        Span<byte> s = stackalloc byte[SelftestViommuDataSize];
        int rc = CopyUserData(data, data.Type, s, minLength: 8);
        if (rc != 0)
        {
            return rc;
        }

        UserCopy.PutU32(s, 4, UserCopy.U32(s, 0));
        s[8..].Clear();
        return _space.TryWrite(data.Uptr, s[..(int)Math.Min(data.Length, (uint)s.Length)]) ? 0 : -Errno.EFAULT;
    }

    /// <summary>
    /// IOMMU_VDEVICE_ALLOC (newest): viommu_id (ENOENT), dev_id (ENOENT), same IOMMU (EINVAL), the device has no vDEVICE yet
    /// (EEXIST), virt_id free in this vIOMMU (EEXIST); respond. virt_id is not range-checked (64-bit hosts).
    /// </summary>
    private int VdeviceAllocCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        uint viommuId = UserCopy.U32(cmd, 4);
        uint devId = UserCopy.U32(cmd, 8);
        ulong virtId = UserCopy.U64(cmd, 16);
        if (Lookup(viommuId) is not ViommuObject viommu)
        {
            return -Errno.ENOENT;
        }

        if (Lookup(devId) is not DeviceObject device)
        {
            return -Errno.ENOENT;
        }

        if (device.Driver != viommu.Driver)
        {
            return -Errno.EINVAL;
        }

        if (device.Vdevice is not null)
        {
            return -Errno.EEXIST;
        }

        uint id = AllocateId();
        if (id == 0)
        {
            return -Errno.ENOSPC;
        }

        if (viommu.Vdevices.ContainsKey(virtId))
        {
            Abort(id);
            return -Errno.EEXIST;
        }

        var vdevice = new VdeviceObject { Viommu = viommu, Device = device, VirtualId = virtId };
        viommu.Vdevices.Add(virtId, vdevice);
        device.Vdevice = vdevice;
        Get(viommu);
        UserCopy.PutU32(cmd, 12, id);
        Respond(cmd, arg, size);
        Finalize(id, vdevice);
        return 0;
    }

    /// <summary>
    /// iommu_copy_struct_from_user: the type must match (EINVAL), <paramref name="minLength"/> ≤ length ≤ kernel size
    /// (EINVAL, not E2BIG), then copy_struct_from_user (EFAULT; a shorter struct is zero-extended).
    /// </summary>
    private int CopyUserData(UserData data, uint expectedType, Span<byte> kernel, int minLength)
    {
        if (data.Type != expectedType)
        {
            return -Errno.EINVAL;
        }

        if (data.Length < (uint)minLength || data.Length > (uint)kernel.Length)
        {
            return -Errno.EINVAL;
        }

        int length = (int)data.Length; // ≤ kernel.Length: no zero tail to check
        if (!_space.TryRead(data.Uptr, kernel[..length]))
        {
            return -Errno.EFAULT;
        }

        kernel[length..].Clear();
        return 0;
    }

    /// <summary>struct iommu_user_data: a driver-specific struct in user memory.</summary>
    private readonly record struct UserData(uint Type, ulong Uptr, uint Length);
}
