using System.Buffers.Binary;

namespace FastInval.Uapi;

/// <summary>
/// Request codes of the iommufd ioctls FastInval implements: <c>_IO(';', nr)</c>, i.e. <c>0x3B00 | nr</c> with no
/// direction or size bits (include/uapi/linux/iommufd.h).
/// </summary>
public static class IommufdRequest
{
    /// <summary>IOMMU_DESTROY (nr 0x80): struct iommu_destroy, 8 bytes.</summary>
    public const uint Destroy = 0x3B80;

    /// <summary>IOMMU_IOAS_ALLOC (nr 0x81): struct iommu_ioas_alloc, 12 bytes.</summary>
    public const uint IoasAlloc = 0x3B81;

    /// <summary>IOMMU_HWPT_ALLOC (nr 0x89): struct iommu_hwpt_alloc, 48 bytes (24 minimum).</summary>
    public const uint HwptAlloc = 0x3B89;

    /// <summary>IOMMU_HWPT_INVALIDATE (nr 0x8d): struct iommu_hwpt_invalidate, 32 bytes; also vIOMMU invalidation.</summary>
    public const uint HwptInvalidate = 0x3B8D;

    /// <summary>IOMMU_VIOMMU_ALLOC (nr 0x90): struct iommu_viommu_alloc, 40 bytes (24 minimum).</summary>
    public const uint ViommuAlloc = 0x3B90;

    /// <summary>IOMMU_VDEVICE_ALLOC (nr 0x91): struct iommu_vdevice_alloc, 24 bytes.</summary>
    public const uint VdeviceAlloc = 0x3B91;

    /// <summary>IOMMU_TEST_CMD (nr 0xa0, only with <see cref="IommufdOptions.Selftest"/>): struct iommu_test_cmd, 72 bytes (68 minimum).</summary>
    public const uint TestCmd = 0x3BA0;
}

/// <summary>Bits of <c>iommu_hwpt_alloc.flags</c> (enum iommufd_hwpt_alloc_flags).</summary>
[Flags]
public enum HwptAllocFlags : uint
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>IOMMU_HWPT_ALLOC_NEST_PARENT: the paging HWPT may be the parent (stage 2) of nested HWPTs and vIOMMUs.</summary>
    NestParent = 1 << 0,

    /// <summary>IOMMU_HWPT_ALLOC_DIRTY_TRACKING.</summary>
    DirtyTracking = 1 << 1,

    /// <summary>IOMMU_HWPT_FAULT_ID_VALID: <c>fault_id</c> names a fault object (FastInval has none: always ENOENT).</summary>
    FaultIdValid = 1 << 2,

    /// <summary>IOMMU_HWPT_ALLOC_PASID.</summary>
    Pasid = 1 << 3,
}

/// <summary>Values of <c>iommu_hwpt_alloc.data_type</c> (enum iommu_hwpt_data_type, and the selftest's).</summary>
public static class HwptDataType
{
    /// <summary>IOMMU_HWPT_DATA_NONE: a paging HWPT without driver data.</summary>
    public const uint None = 0;

    /// <summary>IOMMU_HWPT_DATA_VTD_S1: struct iommu_hwpt_vtd_s1 (24 bytes).</summary>
    public const uint VtdS1 = 1;

    /// <summary>IOMMU_HWPT_DATA_ARM_SMMUV3: struct iommu_hwpt_arm_smmuv3 (16 bytes, a vSTE).</summary>
    public const uint ArmSmmuV3 = 2;

    /// <summary>IOMMU_HWPT_DATA_SELFTEST: struct iommu_hwpt_selftest (4 bytes, 8 in the newest kernels).</summary>
    public const uint Selftest = 0xdead;
}

/// <summary>Values of <c>iommu_hwpt_invalidate.data_type</c>.</summary>
public static class InvalidateDataType
{
    /// <summary>IOMMU_HWPT_INVALIDATE_DATA_VTD_S1: struct iommu_hwpt_vtd_s1_invalidate (24 bytes).</summary>
    public const uint VtdS1 = 0;

    /// <summary>IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3: struct iommu_viommu_arm_smmuv3_invalidate (16 bytes).</summary>
    public const uint ArmSmmuV3 = 1;

    /// <summary>IOMMU_HWPT_INVALIDATE_DATA_SELFTEST and IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST (the same number).</summary>
    public const uint Selftest = 0xdeadbeef;

    /// <summary>IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID: a type no driver accepts.</summary>
    public const uint SelftestInvalid = 0x0dadbeef;
}

/// <summary>Values of <c>iommu_viommu_alloc.type</c>.</summary>
public static class ViommuType
{
    /// <summary>IOMMU_VIOMMU_TYPE_DEFAULT: always rejected.</summary>
    public const uint Default = 0;

    /// <summary>IOMMU_VIOMMU_TYPE_ARM_SMMUV3.</summary>
    public const uint ArmSmmuV3 = 1;

    /// <summary>IOMMU_VIOMMU_TYPE_SELFTEST.</summary>
    public const uint Selftest = 0xdeadbeef;
}

/// <summary>
/// The one definition of the VT-d stage-1 invalidation entry (struct iommu_hwpt_vtd_s1_invalidate, 24 bytes,
/// little-endian): offsets, flags, error bits and its encoder. The iommufd handler reads entries through these offsets only.
/// <code>
/// 0: u64 addr   8: u64 npages   16: u32 flags   20: u32 __reserved (hw_error in the v8–v10 layout)
/// </code>
/// </summary>
public static class VtdS1Invalidate
{
    /// <summary>Offset of <c>addr</c> (u64): the first IOVA, 4 KiB aligned.</summary>
    public const int AddressOffset = 0;

    /// <summary>Offset of <c>npages</c> (u64): the number of 4 KiB pages (<see cref="ulong.MaxValue"/> with addr 0: everything).</summary>
    public const int PageCountOffset = 8;

    /// <summary>Offset of <c>flags</c> (u32): <see cref="FlagLeaf"/>.</summary>
    public const int FlagsOffset = 16;

    /// <summary>Offset of the last u32: <c>__reserved</c> (must be 0), or <c>hw_error</c> written back in the v8–v10 layout.</summary>
    public const int LastWordOffset = 20;

    /// <summary>Encodes one entry into the first <see cref="EntrySize"/> bytes of <paramref name="entry"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="entry"/> is shorter than <see cref="EntrySize"/>.</exception>
    public static void Write(Span<byte> entry, ulong address, ulong pageCount, uint flags = 0, uint lastWord = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(entry.Length, EntrySize, nameof(entry));
        BinaryPrimitives.WriteUInt64LittleEndian(entry[AddressOffset..], address);
        BinaryPrimitives.WriteUInt64LittleEndian(entry[PageCountOffset..], pageCount);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[FlagsOffset..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[LastWordOffset..], lastWord);
    }

    /// <summary>IOMMU_VTD_INV_FLAGS_LEAF: only leaf entries changed (the VT-d invalidation hint, IH).</summary>
    public const uint FlagLeaf = 1 << 0;

    /// <summary>hw_error bit of the v8–v10 layout: Invalidation Completion Error (ICE).</summary>
    public const uint ErrorIce = 1 << 0;

    /// <summary>hw_error bit of the v8–v10 layout: Invalidation Time-out Error (ITE).</summary>
    public const uint ErrorIte = 1 << 1;

    /// <summary>Size of the entry (addr, npages, flags, __reserved / hw_error).</summary>
    public const int EntrySize = 24;
}

/// <summary>Constants of the selftest mock driver (drivers/iommu/iommufd/iommufd_test.h).</summary>
public static class MockSelftest
{
    /// <summary>IOMMU_TEST_OP_MOCK_DOMAIN: create a mock device and attach it to an IOAS or HWPT.</summary>
    public const uint OpMockDomain = 2;

    /// <summary>IOMMU_TEST_OP_MD_CHECK_REFS: compare the pin count of every page of a user range.</summary>
    public const uint OpMdCheckRefs = 4;

    /// <summary>IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: set the selftest's page-array limit.</summary>
    public const uint OpSetTempMemoryLimit = 9;

    /// <summary>IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: re-attach a mock device (by its selftest object id).</summary>
    public const uint OpMockDomainReplace = 10;

    /// <summary>IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS: MOCK_DOMAIN with device flags.</summary>
    public const uint OpMockDomainFlags = 12;

    /// <summary>IOMMU_TEST_OP_MD_CHECK_IOTLB: compare one IOTLB slot of a mock nested HWPT.</summary>
    public const uint OpMdCheckIotlb = 14;

    /// <summary>IOMMU_TEST_OP_TRIGGER_IOPF: report an I/O page fault of a device to the fault queue of its HWPT.</summary>
    public const uint OpTriggerIopf = 15;

    /// <summary>IOMMU_TEST_OP_DEV_CHECK_CACHE: compare one cache slot of a mock device.</summary>
    public const uint OpDevCheckCache = 16;

    /// <summary>IOMMU_TEST_IOTLB_DEFAULT, the value the selftests fill mock IOTLBs with.</summary>
    public const uint IotlbDefault = 0x0badbeef;

    /// <summary>IOMMU_TEST_DEV_CACHE_DEFAULT, the value of every slot of a new mock device.</summary>
    public const uint DevCacheDefault = 0x00baddad;

    /// <summary>IOMMU_TEST_INVALIDATE_FLAG_ALL.</summary>
    public const uint FlagAll = 1 << 0;

    /// <summary>IOMMU_TEST_INVALIDATE_FLAG_TRIGGER_ERROR (v8–v10 layout, <see cref="VtdErrorReporting.PerEntryHwError"/> only).</summary>
    public const uint FlagTriggerError = 1 << 1;

    /// <summary>IOMMU_TEST_INVALIDATE_FAKE_ERROR: the hw_error a triggered entry reports.</summary>
    public const uint FakeError = 1 << 0;

    /// <summary>Slots of a mock nested HWPT's IOTLB and of a mock device's cache (ids 0–3).</summary>
    public const int Slots = 4;

    /// <summary>MOCK_FLAGS_DEVICE_NO_DIRTY.</summary>
    public const uint DeviceNoDirty = 1 << 0;

    /// <summary>MOCK_FLAGS_DEVICE_PASID.</summary>
    public const uint DevicePasid = 1 << 2;
}
