namespace FastInval;

/// <summary>The caches a notifier wants records of. One-hot flags.</summary>
[Flags]
public enum NotifierScopes : byte
{
    /// <summary>No scope: in a <see cref="NotifierFilter"/>, the same as <see cref="All"/>.</summary>
    None = 0,

    /// <summary>IOTLB records (<see cref="InvalidationScope.Iotlb"/> and <see cref="InvalidationScope.IotlbRange"/>).</summary>
    Iotlb = 1,

    /// <summary>Device-TLB (ATC) records.</summary>
    DeviceTlb = 2,

    /// <summary>Configuration-cache records (context, PASID, STE, CD, interrupt entries).</summary>
    Config = 4,

    /// <summary>Every cache.</summary>
    All = Iotlb | DeviceTlb | Config,
}

/// <summary>
/// Which records a notifier receives, in the manner of QEMU's IOMMU notifiers, which listen to one address space and an
/// address range: a record is delivered unless it provably removes no entry the filter selects. <c>default</c> selects
/// everything.
/// </summary>
/// <remarks>
/// <para>The filter selects the entries of <see cref="Scopes"/> that have the given domain, are visible to the given
/// address space (its own entries and global ones), belong to the given device, and lie in the given address range. A
/// criterion only applies to entries that carry that field: the domain to IOTLB and configuration entries (device-TLB
/// entries have none), the source id to device-TLB and configuration entries (IOTLB entries have none), the range to
/// IOTLB and device-TLB entries.</para>
/// <para>Precisely, a record R (descriptor D) is delivered when its scope is in <see cref="Scopes"/> and every clause
/// below holds.</para>
/// <list type="bullet">
/// <item>IOTLB: <see cref="DomainId"/> set and D matches a domain ⇒ D.DomainId equals it. <see cref="AddressSpaceId"/> set
/// and D matches an address space ⇒ D.AddressSpaceId equals it, or D includes global entries. <see cref="Range"/> set and
/// D is a range ⇒ [D.First, D.Last] overlaps it (a tag-only flush applies at every address and passes).</item>
/// <item>Device TLB: <see cref="SourceId"/> set and D matches a source ⇒ D.SourceId equals it. A request without PASID (D
/// matches <see cref="AddressSpace.None"/>) also removes every PASID-tagged and global entry of the device at any
/// address, so it passes the address-space and range clauses; otherwise <see cref="AddressSpaceId"/> set and D matches an
/// address space ⇒ D.AddressSpaceId equals it or D includes global entries, and <see cref="Range"/> set ⇒ [D.First,
/// D.Last] overlaps it.</item>
/// <item>Configuration: <see cref="DomainId"/> set and D matches a domain ⇒ equal; <see cref="AddressSpaceId"/> set and D
/// matches an address space ⇒ equal; <see cref="SourceId"/> set and D matches sources ⇒ it lies in [D.First, D.Last].
/// The range does not apply.</item>
/// </list>
/// <para>The range clause compares the record's range with the filter's, as QEMU's notifiers do; a record whose range
/// misses the filter's is not delivered even if it removed a large page that also covers part of the filter's range. A
/// consumer whose own entries span more than the filter's range should filter on the span of its entries.</para>
/// </remarks>
public readonly struct NotifierFilter : IEquatable<NotifierFilter>
{
    private readonly NotifierScopes _scopes;

    /// <summary>The caches of interest (<see cref="NotifierScopes.None"/> reads as <see cref="NotifierScopes.All"/>).</summary>
    public NotifierScopes Scopes
    {
        get => _scopes == NotifierScopes.None ? NotifierScopes.All : _scopes;
        init => _scopes = value & NotifierScopes.All;
    }

    /// <summary>Only the domain (DID / VMID) given, or every domain when null.</summary>
    public ushort? DomainId { get; init; }

    /// <summary>Only the address space (PASID / ASID / SSID, or <see cref="AddressSpace.None"/> for requests without PASID
    /// and stage-2 translations) given, or every address space when null.</summary>
    public uint? AddressSpaceId { get; init; }

    /// <summary>Only the device (source id / StreamID) given, or every device when null.</summary>
    public uint? SourceId { get; init; }

    /// <summary>Only the inclusive input-address range given, or every address when null.</summary>
    public (ulong First, ulong Last)? Range { get; init; }

    /// <summary>Every record.</summary>
    public static NotifierFilter All => default;

    /// <summary>True when the filter selects everything (no criterion set, every scope).</summary>
    public bool IsAll => Scopes == NotifierScopes.All && DomainId is null && AddressSpaceId is null && SourceId is null && Range is null;

    /// <summary>True when <paramref name="record"/> passes the filter (see the type's remarks).</summary>
    public bool Matches(in InvalidationRecord record)
    {
        ref readonly InvalidationDescriptor d = ref record.Descriptor;
        InvalidationFlags flags = d.Flags;
        bool matchDomain = (flags & InvalidationFlags.MatchDomain) != 0;
        bool matchAs = (flags & InvalidationFlags.MatchAddressSpace) != 0;
        bool includeGlobal = (flags & InvalidationFlags.IncludeGlobal) != 0;
        bool matchSource = (flags & InvalidationFlags.MatchSource) != 0;
        NotifierScopes scopes = Scopes;
        switch (d.Scope)
        {
            case InvalidationScope.Iotlb:
            case InvalidationScope.IotlbRange:
                if ((scopes & NotifierScopes.Iotlb) == 0)
                {
                    return false;
                }

                if (DomainId is ushort domain && matchDomain && d.DomainId != domain)
                {
                    return false;
                }

                if (AddressSpaceId is uint asId && matchAs && d.AddressSpaceId != asId && !includeGlobal)
                {
                    return false;
                }

                return d.Scope == InvalidationScope.Iotlb || Overlaps(in d);

            case InvalidationScope.DeviceTlb:
                if ((scopes & NotifierScopes.DeviceTlb) == 0)
                {
                    return false;
                }

                if (SourceId is uint source && matchSource && d.SourceId != source)
                {
                    return false;
                }

                if (matchAs && d.AddressSpaceId == AddressSpace.None)
                {
                    return true; // a request without PASID: PASID-tagged and global entries go at any address
                }

                if (AddressSpaceId is uint pasid && matchAs && d.AddressSpaceId != pasid && !includeGlobal)
                {
                    return false;
                }

                return Overlaps(in d);

            case InvalidationScope.Config:
                if ((scopes & NotifierScopes.Config) == 0)
                {
                    return false;
                }

                if (DomainId is ushort did && matchDomain && d.DomainId != did)
                {
                    return false;
                }

                if (AddressSpaceId is uint cfgAs && matchAs && d.AddressSpaceId != cfgAs)
                {
                    return false;
                }

                return SourceId is not uint sid || !matchSource || (sid >= d.First && sid <= d.Last);

            default:
                return false;
        }
    }

    private bool Overlaps(in InvalidationDescriptor d) =>
        Range is not (ulong first, ulong last) || (d.First <= last && d.Last >= first);

    /// <inheritdoc/>
    public bool Equals(NotifierFilter other) =>
        Scopes == other.Scopes && DomainId == other.DomainId && AddressSpaceId == other.AddressSpaceId &&
        SourceId == other.SourceId && Range == other.Range;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is NotifierFilter f && Equals(f);

    /// <summary>Field-wise equality.</summary>
    public static bool operator ==(NotifierFilter left, NotifierFilter right) => left.Equals(right);

    /// <summary>Field-wise inequality.</summary>
    public static bool operator !=(NotifierFilter left, NotifierFilter right) => !left.Equals(right);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Scopes, DomainId, AddressSpaceId, SourceId, Range);

    /// <inheritdoc/>
    public override string ToString() =>
        IsAll ? "all" : $"scopes={Scopes} dom={DomainId?.ToString() ?? "*"} as={AddressSpaceId?.ToString("x") ?? "*"} " +
        $"sid={SourceId?.ToString("x") ?? "*"} range={(Range is (ulong f, ulong l) ? $"0x{f:x}..0x{l:x}" : "*")}";
}
