using System.Runtime.InteropServices;

namespace FastInval.Native;

// The C structs of the units' section of fastinval.h ("VT-d, SMMUv3 and AMD-Vi units"), field for field. Each is blittable with
// an explicit size; the header asserts the same sizes and offsets with _Static_assert, and the layout tests assert these.

/// <summary>struct fastinval_device_tlb_sink (32 bytes, LP64).</summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal unsafe struct NativeDeviceTlbSink
{
    public delegate* unmanaged<void*, NativeDeviceTlbRequest*, void> Request;
    public void* User;
    public ulong TimeoutNs;
    public uint MaxOutstanding;
    public uint Reserved;
}

/// <summary>struct fastinval_device_tlb_request (64 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
internal struct NativeDeviceTlbRequest
{
    public ulong Ticket;
    public InvalidationDescriptor Descriptor;
    public ulong Index;
    public ulong Ordinal;
    public byte Source;
}

/// <summary>struct fastinval_vtd_options (96 bytes, LP64; the first version without the device-TLB sink had 64).</summary>
[StructLayout(LayoutKind.Sequential, Size = 96)]
internal unsafe struct NativeVtdOptions
{
    public uint Size;
    public uint Flags;
    public byte HostAddressWidth;
    public byte MaxAddressMask;
    public byte MaxHandleMask;
    public byte Reserved0;
    public uint Reserved1;
    public NativeEngineOptions Engine;
    public NativeFaultPlan* FaultPlan;
    public delegate* unmanaged<void*, uint, ulong, uint, void> Interrupt;
    public void* InterruptUser;
    public NativeDeviceTlbSink DeviceTlb; // read only when Size says it is there
}

/// <summary>struct fastinval_smmu_options (96 bytes, LP64; 64 without the device-TLB sink).</summary>
[StructLayout(LayoutKind.Sequential, Size = 96)]
internal unsafe struct NativeSmmuOptions
{
    public uint Size;
    public uint Flags;
    public byte SubstreamIdBits;
    public byte StreamIdBits;
    public byte MaxCommandQueueLog2;
    public byte OutputAddressBits;
    public uint Reserved;
    public NativeEngineOptions Engine;
    public NativeFaultPlan* FaultPlan;
    public delegate* unmanaged<void*, uint, ulong, uint, void> Interrupt;
    public void* InterruptUser;
    public NativeDeviceTlbSink DeviceTlb;
}

/// <summary>struct fastinval_amdvi_options (96 bytes, LP64).</summary>
[StructLayout(LayoutKind.Sequential, Size = 96)]
internal unsafe struct NativeAmdViOptions
{
    public uint Size;
    public uint Flags;
    public ulong Reserved;
    public NativeEngineOptions Engine;
    public NativeFaultPlan* FaultPlan;
    public delegate* unmanaged<void*, uint, ulong, uint, void> Interrupt;
    public void* InterruptUser;
    public NativeDeviceTlbSink DeviceTlb;
}

/// <summary>struct fastinval_notifier_filter (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct NativeNotifierFilter
{
    public uint Size;
    public byte Scopes;
    public byte Flags;
    public ushort DomainId;
    public uint AddressSpaceId;
    public uint SourceId;
    public ulong First;
    public ulong Last;
}
