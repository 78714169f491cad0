using System.Runtime.InteropServices;

namespace FastInval.Native;

// The C structs of the units' section of fastinval.h ("VT-d and SMMUv3 units"), field for field. Each is blittable with
// an explicit size; the header asserts the same sizes and offsets with _Static_assert, and the layout tests assert these.

/// <summary>struct fastinval_vtd_options (64 bytes, LP64).</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
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
}

/// <summary>struct fastinval_smmu_options (64 bytes, LP64).</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
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
