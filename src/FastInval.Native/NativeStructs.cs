using System.Runtime.InteropServices;

namespace FastInval.Native;

// The C structs of fastinval.h, field for field. Each is blittable with an explicit size; the header asserts the same sizes
// and offsets with _Static_assert, and the layout tests assert these.

/// <summary>struct fastinval_engine_options (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 24)]
internal struct NativeEngineOptions
{
    public uint Size;
    public uint IotlbCapacity;
    public uint DeviceTlbCapacity;
    public uint ConfigCacheCapacity;
    public int Kernel;
    public uint Reserved;
}

/// <summary>struct fastinval_iotlb_entry (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct NativeIotlbEntry
{
    public ulong InputAddress;
    public ulong OutputAddress;
    public uint AddressSpaceId;
    public ushort DomainId;
    public ushort Rights;
    public byte Stage;
    public byte Granule;
    public byte SizeLog2;
    public byte Flags;
    public uint Reserved;
}

/// <summary>struct fastinval_devtlb_entry (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct NativeDeviceTlbEntry
{
    public ulong InputAddress;
    public ulong OutputAddress;
    public uint SourceId;
    public uint Pasid;
    public ushort Rights;
    public byte SizeLog2;
    public byte Flags;
    public uint Reserved;
}

/// <summary>struct fastinval_config_entry (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 24)]
internal struct NativeConfigEntry
{
    public ulong Value;
    public uint SourceId;
    public uint AddressSpaceId;
    public ushort DomainId;
    public byte Kind;
    public byte Reserved0;
    public uint Reserved1;
}

/// <summary>struct fastinval_translation (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 24)]
internal struct NativeTranslation
{
    public ulong OutputAddress;
    public ulong InputBase;
    public ushort Rights;
    public byte SizeLog2;
    public byte Global;
    public uint Reserved;
}

/// <summary>struct fastinval_batch_result (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 24)]
internal struct NativeBatchResult
{
    public uint Ok;
    public uint TimedOut;
    public uint CompletionErrors;
    public uint Invalid;
    public int FirstFailureIndex;
    public uint Reserved;
}

/// <summary>struct fastinval_engine_counts (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct NativeEngineCounts
{
    public uint IotlbCount;
    public uint DeviceTlbCount;
    public uint ConfigCount;
    public int Kernel;
    public ulong DeviceTlbInvalidations;
    public ulong Reserved;
}

/// <summary>struct fastinval_fault_plan (64 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
internal unsafe struct NativeFaultPlan
{
    public uint Size;
    public uint Reserved;
    public ulong Seed;
    public uint TimeoutPerMillion;
    public uint CompletionErrorPerMillion;
    public uint* TimeoutSourceIds;
    public ulong* TimeoutOrdinals;
    public ulong* CompletionErrorOrdinals;
    public uint TimeoutSourceIdCount;
    public uint TimeoutOrdinalCount;
    public uint CompletionErrorOrdinalCount;
    public uint Reserved2;
}

/// <summary>struct fastinval_iommufd_options (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct NativeIommufdOptions
{
    public uint Size;
    public uint Flags;
    public NativeEngineOptions Engine;
}
