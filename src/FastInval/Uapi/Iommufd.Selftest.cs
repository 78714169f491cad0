namespace FastInval.Uapi;

/// <summary>IOMMU_TEST_CMD (selftest.c): the mock device and the checks the selftests use.</summary>
public sealed partial class Iommufd
{
    private const uint MockDeviceFlagsAllowed = MockSelftest.DeviceNoDirty | MockSelftest.DevicePasid;

    /// <summary>struct iommu_test_cmd: op @4, id @8, union @16. Ops other than MOCK_DOMAIN(_FLAGS), MOCK_DOMAIN_REPLACE,
    /// MD_CHECK_REFS, SET_TEMP_MEMORY_LIMIT, MD_CHECK_IOTLB, TRIGGER_IOPF and DEV_CHECK_CACHE are not modelled: EOPNOTSUPP,
    /// the kernel's answer for an unknown op.</summary>
    private int TestCommand(Span<byte> cmd, Span<byte> arg, uint size)
    {
        uint op = UserCopy.U32(cmd, 4);
        uint id = UserCopy.U32(cmd, 8);
        return op switch
        {
            MockSelftest.OpMockDomain or MockSelftest.OpMockDomainFlags => MockDomain(cmd, arg, size, op, id),
            MockSelftest.OpMockDomainReplace => MockDomainReplace(cmd, arg, size, id),
            MockSelftest.OpMdCheckRefs => CheckRefs(UserCopy.U64(cmd, 16), UserCopy.U64(cmd, 24), UserCopy.U32(cmd, 32)),
            MockSelftest.OpSetTempMemoryLimit => SetTempMemoryLimit(UserCopy.U32(cmd, 16)),
            MockSelftest.OpTriggerIopf => TriggerIopf(cmd),
            MockSelftest.OpMdCheckIotlb => CheckIotlb(id, UserCopy.U32(cmd, 16), UserCopy.U32(cmd, 20)),
            MockSelftest.OpDevCheckCache => CheckDeviceCache(id, UserCopy.U32(cmd, 16), UserCopy.U32(cmd, 20)),
            _ => -Errno.EOPNOTSUPP,
        };
    }

    /// <summary>
    /// iommufd_test_mock_domain: reserve the selftest object's id; (FLAGS) unknown device flags are EINVAL; create the mock
    /// device (4 cache slots of 0x00baddad) and bind it (its device object takes the next id and is visible at once); attach
    /// it to <paramref name="ptId"/> (ENOENT, EINVAL; an IOAS gives an automatic domain); respond with out_stdev_id,
    /// out_hwpt_id, out_idev_id. Any failure undoes everything and frees every id.
    /// </summary>
    private int MockDomain(Span<byte> cmd, Span<byte> arg, uint size, uint op, uint ptId)
    {
        uint stdevId = AllocateId();
        if (stdevId == 0)
        {
            return -Errno.ENOSPC;
        }

        uint deviceFlags = op == MockSelftest.OpMockDomainFlags ? UserCopy.U32(cmd, 28) : 0;
        if ((deviceFlags & ~MockDeviceFlagsAllowed) != 0)
        {
            Abort(stdevId);
            return -Errno.EINVAL;
        }

        uint deviceId = AllocateId();
        if (deviceId == 0)
        {
            Abort(stdevId);
            return -Errno.ENOSPC;
        }

        var device = new DeviceObject { Driver = Driver.Mock, MockFlags = deviceFlags };
        Array.Fill(device.MockCache, MockSelftest.DevCacheDefault);
        device.Users++; // the selftest object binds it
        Finalize(deviceId, device);
        int rc = AttachOrReplace(device, ptId, out HwptObject? hwpt);
        if (rc != 0)
        {
            Unbind(device);
            Abort(stdevId);
            return rc;
        }

        var stdev = new SelftestObject { Device = device };
        device.Owner = stdev;
        UserCopy.PutU32(cmd, 16, stdevId);
        UserCopy.PutU32(cmd, 20, hwpt!.Id);
        UserCopy.PutU32(cmd, 24, deviceId);
        Respond(cmd, arg, size);
        Finalize(stdevId, stdev);
        return 0;
    }

    /// <summary>iommufd_test_mock_domain_replace: <paramref name="stdevId"/> must be a selftest object (ENOENT); the device is
    /// re-attached to mock_domain_replace.pt_id (ENOENT, EINVAL), which is answered with the HWPT actually attached.</summary>
    private int MockDomainReplace(Span<byte> cmd, Span<byte> arg, uint size, uint stdevId)
    {
        if (Lookup(stdevId) is not SelftestObject stdev)
        {
            return -Errno.ENOENT;
        }

        int rc = AttachOrReplace(stdev.Device, UserCopy.U32(cmd, 16), out HwptObject? hwpt);
        if (rc != 0)
        {
            return rc;
        }

        UserCopy.PutU32(cmd, 16, hwpt!.Id);
        Respond(cmd, arg, size);
        return 0;
    }

    /// <summary>iommufd_test_md_check_iotlb: a nested HWPT (ENOENT) of the mock driver (EINVAL) whose slot (≤ 3) holds the
    /// value (EINVAL).</summary>
    private int CheckIotlb(uint hwptId, uint slot, uint expected)
    {
        if (Lookup(hwptId) is not HwptNestedObject nested)
        {
            return -Errno.ENOENT;
        }

        if (nested.Driver != Driver.Mock || slot >= MockSelftest.Slots || nested.MockIotlb[slot] != expected)
        {
            return -Errno.EINVAL;
        }

        return 0;
    }

    /// <summary>iommufd_test_dev_check_cache: a device object (ENOENT) whose cache slot (≤ 3) holds the value (EINVAL). A
    /// device of a real IOMMU has no mock cache: EINVAL.</summary>
    private int CheckDeviceCache(uint deviceId, uint slot, uint expected)
    {
        if (Lookup(deviceId) is not DeviceObject device)
        {
            return -Errno.ENOENT;
        }

        if (device.Driver != Driver.Mock || slot >= MockSelftest.Slots || device.MockCache[slot] != expected)
        {
            return -Errno.EINVAL;
        }

        return 0;
    }

    /// <summary>
    /// iommufd_test_md_check_refs: length and uptr page-aligned (EINVAL); every page of [uptr, uptr + length) must be
    /// mapped (EFAULT) and pinned <paramref name="refs"/> times (EIO otherwise). The emulation pins no user pages
    /// (IOAS_MAP is not modelled), so every page's pin count is 0.
    /// </summary>
    private int CheckRefs(ulong length, ulong uptr, uint refs)
    {
        ulong page = (ulong)Environment.SystemPageSize;
        if (length % page != 0 || uptr % page != 0)
        {
            return -Errno.EINVAL;
        }

        Span<byte> probe = stackalloc byte[1];
        for (ulong offset = 0; offset < length; offset += page)
        {
            if (!_space.TryRead(uptr + offset, probe))
            {
                return -Errno.EFAULT;
            }

            if (refs != 0)
            {
                return -Errno.EIO;
            }
        }

        return 0;
    }

    /// <summary>IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: the page-array size limit of the selftest's page tables; recorded
    /// (<see cref="TestMemoryLimit"/>; nothing here pins pages, so nothing it limits) and 0.</summary>
    private int SetTempMemoryLimit(uint limit)
    {
        TestMemoryLimit = limit;
        return 0;
    }

    /// <summary>The last IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT value (0 before any).</summary>
    internal uint TestMemoryLimit { get; private set; }
}
