using System.Runtime.InteropServices;

namespace FastInval;

/// <summary>The front end that handed a descriptor to the engine: what <see cref="InvalidationRecord.SourceIndex"/> counts.</summary>
public enum InvalidationSource : byte
{
    /// <summary>The host called <see cref="InvalidationEngine.Execute(ReadOnlySpan{InvalidationDescriptor}, Span{InvalidationStatus})"/>
    /// (or the single-descriptor overload) itself: the index is the descriptor's position in the batch (0 for one
    /// descriptor).</summary>
    Engine = 0,

    /// <summary>A VT-d invalidation queue (<see cref="Vtd.VtdIommu"/>): the index is the descriptor's slot in the queue,
    /// its IQH offset divided by the descriptor width (16 or 32 bytes).</summary>
    VtdQueue = 1,

    /// <summary>An SMMUv3 command queue (<see cref="Smmu.SmmuV3"/>): the index is the command's slot, the CONS index field
    /// (without the wrap bit) the command was consumed at.</summary>
    SmmuCommandQueue = 2,

    /// <summary>An iommufd IOMMU_HWPT_INVALIDATE call (<see cref="Uapi.Iommufd"/>): the index is the entry's position in
    /// the request array (VT-d <c>iommu_hwpt_vtd_s1_invalidate</c> entries or SMMUv3 commands).</summary>
    Iommufd = 3,

    /// <summary>An AMD-Vi command buffer (<see cref="AmdVi.AmdViIommu"/>): the index is the command's slot, its head
    /// pointer offset divided by 16.</summary>
    AmdViCommandBuffer = 4,
}

/// <summary>
/// What a unit really invalidated, as one notifier record: the executed <see cref="InvalidationDescriptor"/> (scope,
/// DID/VMID, PASID/ASID/SSID, source id or StreamID, address range, granule and level hints, leaf hint), its outcome,
/// and where it came from (front end and descriptor index). 48 bytes, blittable, no references.
/// </summary>
/// <remarks>
/// <para><b>Layout</b> (byte offsets): 0–31 <see cref="Descriptor"/> · 32–39 <see cref="SourceIndex"/> · 40
/// <see cref="Source"/> · 41 <see cref="Status"/> · 42–47 reserved (zero).</para>
/// <para>A record is produced for every descriptor the engine applied: status <see cref="InvalidationStatus.Ok"/>, or
/// <see cref="InvalidationStatus.CompletionError"/> (a device-TLB invalidation that removed the entries but completed
/// badly). A malformed descriptor (<see cref="InvalidationStatus.Invalid"/>) and a device-TLB invalidation that timed out
/// (<see cref="InvalidationStatus.TimedOut"/>: the device never answered and its entries stay) changed nothing and
/// produce none. One guest descriptor can decode into several engine descriptors (a VT-d device-TLB invalidation
/// without PASID, an iommufd VT-d entry with its device TLBs); each gives a record with the same
/// <see cref="SourceIndex"/>, in decode order.</para>
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 48)]
public readonly struct InvalidationRecord : IEquatable<InvalidationRecord>
{
    /// <summary>The executed descriptor, as the engine applied it (see <see cref="InvalidationDescriptor"/> for the
    /// matching rules, which say exactly which entries it removed).</summary>
    [FieldOffset(0)] public readonly InvalidationDescriptor Descriptor;

    /// <summary>The descriptor's index at its source: see <see cref="InvalidationSource"/>.</summary>
    [FieldOffset(32)] public readonly ulong SourceIndex;

    /// <summary>The front end the descriptor came from.</summary>
    [FieldOffset(40)] public readonly InvalidationSource Source;

    /// <summary><see cref="InvalidationStatus.Ok"/> or <see cref="InvalidationStatus.CompletionError"/>.</summary>
    [FieldOffset(41)] public readonly InvalidationStatus Status;

    /// <summary>Creates a record (tests and consumers that replay records; the engine makes its own).</summary>
    public InvalidationRecord(in InvalidationDescriptor descriptor, InvalidationSource source, ulong sourceIndex, InvalidationStatus status)
    {
        Descriptor = descriptor;
        SourceIndex = sourceIndex;
        Source = source;
        Status = status;
    }

    /// <summary>Which cache was invalidated, and how entries were selected.</summary>
    public InvalidationScope Scope => Descriptor.Scope;

    /// <summary>The DID or VMID, when <see cref="InvalidationFlags.MatchDomain"/> is set.</summary>
    public ushort DomainId => Descriptor.DomainId;

    /// <summary>The PASID, ASID or SubstreamID, when <see cref="InvalidationFlags.MatchAddressSpace"/> is set
    /// (<see cref="AddressSpace.None"/>: requests without PASID).</summary>
    public uint AddressSpaceId => Descriptor.AddressSpaceId;

    /// <summary>The device's source id (RID) or StreamID of a device-TLB record with <see cref="InvalidationFlags.MatchSource"/>.</summary>
    public uint SourceId => Descriptor.SourceId;

    /// <summary>True when the record selects by address: an IOTLB range or a device-TLB range, [<see cref="InvalidationDescriptor.First"/>,
    /// <see cref="InvalidationDescriptor.Last"/>] inclusive. Other records apply at every address.</summary>
    public bool HasAddressRange => Descriptor.Scope is InvalidationScope.IotlbRange or InvalidationScope.DeviceTlb;

    /// <summary>The leaf hint (VT-d IH, SMMU Leaf): paging-structure entries were kept.</summary>
    public bool LeafOnly => (Descriptor.Flags & InvalidationFlags.LeafOnly) != 0;

    /// <inheritdoc/>
    public bool Equals(InvalidationRecord other) =>
        Descriptor == other.Descriptor && SourceIndex == other.SourceIndex && Source == other.Source && Status == other.Status;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is InvalidationRecord r && Equals(r);

    /// <summary>Field-wise equality.</summary>
    public static bool operator ==(InvalidationRecord left, InvalidationRecord right) => left.Equals(right);

    /// <summary>Field-wise inequality.</summary>
    public static bool operator !=(InvalidationRecord left, InvalidationRecord right) => !left.Equals(right);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Descriptor, SourceIndex, Source, Status);

    /// <inheritdoc/>
    public override string ToString() => $"{Source}[{SourceIndex}] {Status}: {Descriptor}";
}
