namespace FastInval.AmdVi;

/// <summary>
/// The one definition of the AMD-Vi command and event-log entry layouts: a Shift and an in-place Mask per field, for
/// QW0 (bits 63:0) and QW1 (bits 127:64) of the 16-byte entry, both little-endian. <see cref="AmdViCommand"/>'s accessors
/// and builders, <see cref="AmdViEvent"/> and the decoder's reserved-bit checks are written against these constants only.
/// Which fields an entry has depends on its opcode (or event code), so fields of different commands overlap.
/// </summary>
public static class AmdViCommandLayout
{
    /// <summary>Size of one command or event entry in bytes.</summary>
    public const int Size = 16;

    // ---- QW0 of every command ----

    /// <summary>QW0 [63:60]: the opcode (dword 1 bits 31:28).</summary>
    public const int OpcodeShift = 60;

    /// <summary>QW0 [63:60]: the opcode.</summary>
    public const ulong OpcodeMask = 0xFUL << OpcodeShift;

    // ---- COMPLETION_WAIT ----

    /// <summary>QW0 [0]: S, store Store Data at Store Address.</summary>
    public const ulong StoreMask = 1UL << 0;

    /// <summary>QW0 [1]: I, set Status.ComWaitInt (and signal the interrupt when ComWaitIntEn = 1).</summary>
    public const ulong InterruptMask = 1UL << 1;

    /// <summary>QW0 [2]: F, flush queue (later commands wait for this one).</summary>
    public const ulong FlushMask = 1UL << 2;

    /// <summary>QW0 [51:3]: Store Address[51:3], in place (8-byte aligned by construction).</summary>
    public const ulong StoreAddressMask = 0x000F_FFFF_FFFF_FFF8UL;

    /// <summary>QW1 [63:0]: Store Data, the whole quadword.</summary>
    public const ulong StoreDataMask = ulong.MaxValue;

    // ---- INVALIDATE_DEVTAB_ENTRY, INVALIDATE_INTERRUPT_TABLE, INVALIDATE_IOTLB_PAGES ----

    /// <summary>QW0 [15:0]: DeviceID.</summary>
    public const int DeviceIdShift = 0;

    /// <summary>QW0 [15:0]: DeviceID.</summary>
    public const ulong DeviceIdMask = 0xFFFFUL << DeviceIdShift;

    // ---- INVALIDATE_IOMMU_PAGES ----

    /// <summary>QW0 [19:0]: PASID (used with GN = 1).</summary>
    public const int PasidShift = 0;

    /// <summary>QW0 [19:0]: PASID.</summary>
    public const ulong PasidMask = 0xF_FFFFUL << PasidShift;

    /// <summary>QW0 [47:32]: DomainID.</summary>
    public const int DomainIdShift = 32;

    /// <summary>QW0 [47:32]: DomainID.</summary>
    public const ulong DomainIdMask = 0xFFFFUL << DomainIdShift;

    // ---- INVALIDATE_IOTLB_PAGES ----

    /// <summary>QW0 [23:16]: PASID[15:8].</summary>
    public const int IotlbPasidMiddleShift = 16;

    /// <summary>QW0 [23:16]: PASID[15:8].</summary>
    public const ulong IotlbPasidMiddleMask = 0xFFUL << IotlbPasidMiddleShift;

    /// <summary>QW0 [31:24]: Maxpend, the device's ATS invalidation queue depth.</summary>
    public const int MaxPendingShift = 24;

    /// <summary>QW0 [31:24]: Maxpend.</summary>
    public const ulong MaxPendingMask = 0xFFUL << MaxPendingShift;

    /// <summary>QW0 [47:32]: QueueID (Linux puts the DeviceID there).</summary>
    public const int QueueIdShift = 32;

    /// <summary>QW0 [47:32]: QueueID.</summary>
    public const ulong QueueIdMask = 0xFFFFUL << QueueIdShift;

    /// <summary>QW0 [55:48]: PASID[7:0].</summary>
    public const int IotlbPasidLowShift = 48;

    /// <summary>QW0 [55:48]: PASID[7:0].</summary>
    public const ulong IotlbPasidLowMask = 0xFFUL << IotlbPasidLowShift;

    /// <summary>QW0 [59:56]: PASID[19:16].</summary>
    public const int IotlbPasidHighShift = 56;

    /// <summary>QW0 [59:56]: PASID[19:16].</summary>
    public const ulong IotlbPasidHighMask = 0xFUL << IotlbPasidHighShift;

    // ---- QW1 of INVALIDATE_IOMMU_PAGES and INVALIDATE_IOTLB_PAGES ----

    /// <summary>QW1 [0]: S, a naturally aligned power-of-two range given by the lowest clear address bit.</summary>
    public const ulong SizeMask = 1UL << 0;

    /// <summary>QW1 [1]: PDE, also invalidate page-directory entries (INVALIDATE_IOMMU_PAGES only).</summary>
    public const ulong PdeMask = 1UL << 1;

    /// <summary>QW1 [2]: GN, guest (GVA with PASID) rather than nested/host (GPA) addresses.</summary>
    public const ulong GuestMask = 1UL << 2;

    /// <summary>QW1 [5:4]: Type of INVALIDATE_IOTLB_PAGES (reserved without EFR.InvIotlbTypeSup).</summary>
    public const int IotlbTypeShift = 4;

    /// <summary>QW1 [5:4]: Type.</summary>
    public const ulong IotlbTypeMask = 3UL << IotlbTypeShift;

    /// <summary>QW1 [63:12]: Address[63:12], in place.</summary>
    public const ulong AddressMask = ~0xFFFUL;

    // ---- event-log entries ----

    /// <summary>QW0 [63:60]: the event code.</summary>
    public const int EventCodeShift = 60;

    /// <summary>QW0 [63:60]: the event code.</summary>
    public const ulong EventCodeMask = 0xFUL << EventCodeShift;

    /// <summary>QW0 [15:0]: DeviceID of IOTLB_INV_TIMEOUT (and of the translation events this unit does not record).</summary>
    public const int EventDeviceIdShift = 0;

    /// <summary>QW0 [15:0]: event DeviceID.</summary>
    public const ulong EventDeviceIdMask = 0xFFFFUL << EventDeviceIdShift;

    /// <summary>QW0 [58:57]: COMMAND_HARDWARE_ERROR Type (01b master abort, 10b target abort, 11b data error).</summary>
    public const int HardwareErrorTypeShift = 57;

    /// <summary>QW0 [58:57]: COMMAND_HARDWARE_ERROR Type.</summary>
    public const ulong HardwareErrorTypeMask = 3UL << HardwareErrorTypeShift;

    /// <summary>QW1 [63:0]: the system physical address of ILLEGAL_COMMAND_ERROR and COMMAND_HARDWARE_ERROR.</summary>
    public const ulong EventAddressMask = ulong.MaxValue;

    /// <summary>QW1 [63:4]: the SPA of the timed-out command of IOTLB_INV_TIMEOUT, in place.</summary>
    public const ulong TimeoutAddressMask = ~0xFUL;
}
