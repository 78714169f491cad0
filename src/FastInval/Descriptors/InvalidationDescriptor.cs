using System.Runtime.InteropServices;

namespace FastInval;

/// <summary>Which cache a descriptor invalidates, and how entries are selected.</summary>
public enum InvalidationScope : byte
{
    /// <summary>Not a descriptor: executing it reports <see cref="InvalidationStatus.Invalid"/>.</summary>
    None = 0,

    /// <summary>IOTLB entries selected by tags only (stage, domain, address space, global, leaf).</summary>
    Iotlb = 1,

    /// <summary>IOTLB entries selected by tags and an input-address range, with the leaf and level/granule hints.</summary>
    IotlbRange = 2,

    /// <summary>Device-TLB (ATC) entries selected by source id, PASID and an address range.</summary>
    DeviceTlb = 3,

    /// <summary>Configuration-cache entries selected by kind, source-id range, domain and PASID.</summary>
    Config = 4,
}

/// <summary>Selectors and hints of an <see cref="InvalidationDescriptor"/>.</summary>
[Flags]
public enum InvalidationFlags : byte
{
    /// <summary>No selector: every entry of the scope's stages or kinds.</summary>
    None = 0,

    /// <summary>Only entries whose domain (DID / VMID) equals <see cref="InvalidationDescriptor.DomainId"/>.</summary>
    MatchDomain = 1,

    /// <summary>Only entries whose address space (PASID / ASID / SSID) equals <see cref="InvalidationDescriptor.AddressSpaceId"/>;
    /// global entries are selected only with <see cref="IncludeGlobal"/>.</summary>
    MatchAddressSpace = 2,

    /// <summary>With <see cref="MatchAddressSpace"/>: global entries are selected whatever their address space.</summary>
    IncludeGlobal = 4,

    /// <summary>Leaf hint (VT-d IH = 1, SMMU Leaf = 1): paging-structure (table) entries are kept.</summary>
    LeafOnly = 8,

    /// <summary>Device TLB: only entries of <see cref="InvalidationDescriptor.SourceId"/>. Config: only entries whose
    /// source id lies in [<see cref="InvalidationDescriptor.First"/>, <see cref="InvalidationDescriptor.Last"/>].</summary>
    MatchSource = 16,
}

/// <summary>The outcome of one descriptor.</summary>
public enum InvalidationStatus : byte
{
    /// <summary>Executed.</summary>
    Ok = 0,

    /// <summary>Device-TLB invalidation timed out (VT-d ITE, SMMU CERROR_ATC_INV_SYNC): the device's entries were <b>not</b> invalidated.</summary>
    TimedOut = 1,

    /// <summary>Device-TLB invalidation completed with an error (VT-d ICE): the entries were invalidated, the completion was bad.</summary>
    CompletionError = 2,

    /// <summary>The descriptor is malformed (see <see cref="InvalidationDescriptor"/>'s validity rules); nothing was changed.</summary>
    Invalid = 3,
}

/// <summary>
/// The one internal invalidation descriptor every front end decodes into: 32 bytes, blittable, little-endian
/// in memory, no references. It carries every scope the iommufd, VT-d and SMMUv3 front ends need.
/// </summary>
/// <remarks>
/// <para><b>Layout</b> (byte offsets): 0 Scope · 1 Flags · 2 Stages · 3 LevelHint · 4 GranuleHint · 5 ConfigKinds ·
/// 6–7 DomainId · 8–11 AddressSpaceId · 12–15 SourceId · 16–23 First · 24–31 Last.</para>
///
/// <para><b>Matching rules.</b> An entry E is removed when every clause of its scope holds.</para>
/// <para><see cref="InvalidationScope.Iotlb"/> (no address):</para>
/// <list type="number">
/// <item>E.Stage ∈ <see cref="Stages"/>.</item>
/// <item><see cref="InvalidationFlags.MatchDomain"/> ⇒ E.Domain = <see cref="DomainId"/>.</item>
/// <item><see cref="InvalidationFlags.MatchAddressSpace"/> ⇒ (¬E.Global ∧ E.AddressSpace = <see cref="AddressSpaceId"/>) ∨
/// (E.Global ∧ <see cref="InvalidationFlags.IncludeGlobal"/>). Address-space-selective flushes keep global entries, as
/// VT-d PASID-based IOTLB G=01b "non-globals" (spec/vtd-queued-invalidation.md §1.8) and SMMU TLBI_NH_ASID
/// (spec/smmuv3-command-queue.md §2.1, ASIDE1) do.</item>
/// <item><see cref="InvalidationFlags.LeafOnly"/> ⇒ E is a leaf.</item>
/// </list>
/// <para><see cref="InvalidationScope.IotlbRange"/>: the four clauses above, and</para>
/// <list type="number">
/// <item>E's span [E.Input, E.Input + 2^E.Size − 1] overlaps [<see cref="First"/>, <see cref="Last"/>] (inclusive;
/// <c>Last = ulong.MaxValue</c> reaches the top). A page-selective VT-d AM invalidation is the naturally aligned
/// 2^AM-page block (vtd notes §4.1); an SMMU range is Address .. Address + (NUM+1)·2^SCALE·granule − 1, and a
/// non-range TLBI (TG = 0) is the single address, so every entry containing it overlaps (smmu notes §2.1).
/// Overlap rather than containment also removes a large page that contains part of the range (QEMU's clause B).</item>
/// <item><see cref="GranuleHint"/> ≠ Any ⇒ E.Granule = GranuleHint (SMMU TG: only entries of that granule are required).</item>
/// <item><see cref="LevelHint"/> ≠ 0 (needs a granule hint) ⇒ a leaf E sits at level LevelHint, and a table E sits at a
/// level above it (E.Level &lt; LevelHint): the SMMU TTL rule, where Leaf = 0 also removes walk-cache entries
/// "from the walk start down to the level above TTL" (smmu notes §2.1). Hints are taken literally; architecture
/// quirks (such as SMMU TG = 16 KiB with TTL = 1 meaning "any level" without LPA2) are the front end's to apply.</item>
/// </list>
/// <para>Global entries in a range: with <see cref="InvalidationFlags.MatchAddressSpace"/>, set
/// <see cref="InvalidationFlags.IncludeGlobal"/> to also remove global entries of the range (SMMU TLBI_NH_VA: "plus global
/// entries by VMID+VA"); without <see cref="InvalidationFlags.MatchAddressSpace"/> every address space and global entry of
/// the domain is in (SMMU TLBI_NH_VAA, TLBI_S2_IPA with <see cref="StageMask.Stage2"/>, VT-d IOTLB page-selective).</para>
/// <para><see cref="InvalidationScope.DeviceTlb"/>: <see cref="InvalidationFlags.MatchSource"/> ⇒ E.Source = <see cref="SourceId"/>;
/// the address-space clause as above (PASID; IncludeGlobal is the ATS Global-Invalidate bit); span overlaps [First, Last]
/// (VT-d S-bit sizes and SMMU ATC_INV Size decode to such ranges; "all" is [0, ulong.MaxValue]).
/// One exception, the PCIe rule for an invalidation request without a PASID (PCIe 6.2 §10.3.8, as VT-d's device-TLB
/// descriptor and SMMU ATC_INV with SSV = 0 send it): with <see cref="InvalidationFlags.MatchAddressSpace"/> and
/// <see cref="AddressSpaceId"/> = <see cref="AddressSpace.None"/>, E is removed when it was requested without a PASID and
/// overlaps the range, <b>or</b> it was requested with any PASID (or is global), <b>at any address</b>.
/// Subject to the fault plan: one decision per descriptor; a time-out leaves every entry in place (the device never
/// answered).</para>
/// <para><see cref="InvalidationScope.Config"/>: E.Kind ∈ <see cref="ConfigKinds"/>; <see cref="InvalidationFlags.MatchSource"/> ⇒
/// First ≤ E.Source ≤ Last (VT-d device-selective with function mask, SMMU CFGI_STE, CFGI_STE_RANGE, CFGI_ALL);
/// <see cref="InvalidationFlags.MatchDomain"/> ⇒ E.Domain = DomainId (VT-d domain-selective context/PASID cache);
/// <see cref="InvalidationFlags.MatchAddressSpace"/> ⇒ E.AddressSpace = AddressSpaceId (VT-d PASID-selective, SMMU CFGI_CD).</para>
///
/// <para><b>Validity.</b> A descriptor is <see cref="InvalidationStatus.Invalid"/> (and changes nothing) when its scope is
/// unknown; a flag bit is unknown; an IOTLB scope has no stage or unknown stage bits; LevelHint &gt; 3, GranuleHint &gt; 3,
/// or LevelHint ≠ 0 with GranuleHint = Any; hints are set outside <see cref="InvalidationScope.IotlbRange"/>;
/// First &gt; Last where a range is used (IotlbRange, DeviceTlb, Config with MatchSource); a Config descriptor has no kind or
/// unknown kind bits; or <see cref="AddressSpaceId"/> is neither ≤ <see cref="AddressSpace.MaxId"/> nor
/// <see cref="AddressSpace.None"/> while <see cref="InvalidationFlags.MatchAddressSpace"/> is set.
/// Fields a scope does not use are ignored.</para>
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 32)]
public readonly struct InvalidationDescriptor : IEquatable<InvalidationDescriptor>
{
    /// <summary>Which cache, and how entries are selected.</summary>
    [FieldOffset(0)] public readonly InvalidationScope Scope;

    /// <summary>Selectors and the leaf hint.</summary>
    [FieldOffset(1)] public readonly InvalidationFlags Flags;

    /// <summary>Stages an IOTLB scope applies to.</summary>
    [FieldOffset(2)] public readonly StageMask Stages;

    /// <summary>SMMU TTL: 0 = any level, 1–3 = level of the leaf (IotlbRange only).</summary>
    [FieldOffset(3)] public readonly byte LevelHint;

    /// <summary>SMMU TG: granule of the entries to invalidate, or <see cref="Granule.Any"/> (IotlbRange only).</summary>
    [FieldOffset(4)] public readonly Granule GranuleHint;

    /// <summary>Configuration-cache kinds (Config only).</summary>
    [FieldOffset(5)] public readonly ConfigKinds ConfigKinds;

    /// <summary>VT-d DID or SMMU VMID.</summary>
    [FieldOffset(6)] public readonly ushort DomainId;

    /// <summary>PASID / ASID / SubstreamID, or <see cref="AddressSpace.None"/>.</summary>
    [FieldOffset(8)] public readonly uint AddressSpaceId;

    /// <summary>Device source id / StreamID (DeviceTlb).</summary>
    [FieldOffset(12)] public readonly uint SourceId;

    /// <summary>First byte of the input-address range (IotlbRange, DeviceTlb) or first source id (Config).</summary>
    [FieldOffset(16)] public readonly ulong First;

    /// <summary>Last byte (inclusive) of the range, or last source id (Config).</summary>
    [FieldOffset(24)] public readonly ulong Last;

    /// <summary>Creates a descriptor from raw fields (no validation; the executor validates).</summary>
    public InvalidationDescriptor(InvalidationScope scope, InvalidationFlags flags, StageMask stages, byte levelHint,
        Granule granuleHint, ConfigKinds configKinds, ushort domainId, uint addressSpaceId, uint sourceId, ulong first, ulong last)
    {
        Scope = scope;
        Flags = flags;
        Stages = stages;
        LevelHint = levelHint;
        GranuleHint = granuleHint;
        ConfigKinds = configKinds;
        DomainId = domainId;
        AddressSpaceId = addressSpaceId;
        SourceId = sourceId;
        First = first;
        Last = last;
    }

    // ---- IOTLB ----------------------------------------------------------------------------------------

    /// <summary>Every IOTLB entry of the given stages (VT-d global IOTLB, SMMU TLBI_NSNH_ALL).</summary>
    public static InvalidationDescriptor IotlbAll(StageMask stages = StageMask.All) =>
        new(InvalidationScope.Iotlb, InvalidationFlags.None, stages, 0, Granule.Any, ConfigKinds.None, 0, 0, 0, 0, 0);

    /// <summary>Every entry of a domain in the given stages (VT-d domain-selective; SMMU TLBI_S12_VMALL = all stages,
    /// TLBI_NH_ALL = <see cref="StageMask.FirstStage"/>, global entries included).</summary>
    public static InvalidationDescriptor IotlbDomain(ushort domainId, StageMask stages = StageMask.All) =>
        new(InvalidationScope.Iotlb, InvalidationFlags.MatchDomain, stages, 0, Granule.Any, ConfigKinds.None, domainId, 0, 0, 0, 0);

    /// <summary>Non-global entries of one address space in a domain (VT-d PASID-based IOTLB G=10b, SMMU TLBI_NH_ASID).</summary>
    public static InvalidationDescriptor IotlbAddressSpace(ushort domainId, uint addressSpaceId, StageMask stages = StageMask.FirstStage) =>
        new(InvalidationScope.Iotlb, InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace, stages, 0,
            Granule.Any, ConfigKinds.None, domainId, addressSpaceId, 0, 0, 0);

    /// <summary>Entries of one address space in a domain overlapping [first, last], plus (with <paramref name="includeGlobal"/>)
    /// global entries there (SMMU TLBI_NH_VA; VT-d PASID-based IOTLB page-selective).</summary>
    public static InvalidationDescriptor IotlbRange(ushort domainId, uint addressSpaceId, ulong first, ulong last,
        bool leafOnly = false, bool includeGlobal = true, StageMask stages = StageMask.FirstStage, byte levelHint = 0,
        Granule granuleHint = Granule.Any)
    {
        var flags = InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace;
        if (includeGlobal)
        {
            flags |= InvalidationFlags.IncludeGlobal;
        }

        if (leafOnly)
        {
            flags |= InvalidationFlags.LeafOnly;
        }

        return new(InvalidationScope.IotlbRange, flags, stages, levelHint, granuleHint, ConfigKinds.None, domainId, addressSpaceId, 0, first, last);
    }

    /// <summary>Entries of every address space of a domain overlapping [first, last] (SMMU TLBI_NH_VAA with
    /// <see cref="StageMask.FirstStage"/>, TLBI_S2_IPA with <see cref="StageMask.Stage2"/>, VT-d IOTLB page-selective).</summary>
    public static InvalidationDescriptor IotlbRangeAllAddressSpaces(ushort domainId, ulong first, ulong last,
        StageMask stages, bool leafOnly = false, byte levelHint = 0, Granule granuleHint = Granule.Any) =>
        new(InvalidationScope.IotlbRange, InvalidationFlags.MatchDomain | (leafOnly ? InvalidationFlags.LeafOnly : 0), stages,
            levelHint, granuleHint, ConfigKinds.None, domainId, 0, 0, first, last);

    // ---- Device TLB -----------------------------------------------------------------------------------

    /// <summary>Device-TLB entries of one device and one PASID overlapping [first, last]; <paramref name="includeGlobal"/> also
    /// removes the device's global entries there. With <see cref="AddressSpace.None"/> this is an invalidation request
    /// without PASID: the no-PASID entries in the range and every PASID-tagged entry of the device (see the type's remarks).</summary>
    public static InvalidationDescriptor DeviceTlb(uint sourceId, uint pasid, ulong first = 0, ulong last = ulong.MaxValue,
        bool includeGlobal = false) =>
        new(InvalidationScope.DeviceTlb,
            InvalidationFlags.MatchSource | InvalidationFlags.MatchAddressSpace | (includeGlobal ? InvalidationFlags.IncludeGlobal : 0),
            StageMask.None, 0, Granule.Any, ConfigKinds.None, 0, pasid, sourceId, first, last);

    /// <summary>Device-TLB entries of one device, every PASID, overlapping [first, last].</summary>
    public static InvalidationDescriptor DeviceTlbAllPasids(uint sourceId, ulong first = 0, ulong last = ulong.MaxValue) =>
        new(InvalidationScope.DeviceTlb, InvalidationFlags.MatchSource, StageMask.None, 0, Granule.Any, ConfigKinds.None,
            0, 0, sourceId, first, last);

    // ---- Configuration caches ------------------------------------------------------------------------

    /// <summary>Every configuration entry of the given kinds (VT-d global context/PASID cache, SMMU CFGI_ALL, global IEC).</summary>
    public static InvalidationDescriptor ConfigAll(ConfigKinds kinds) =>
        new(InvalidationScope.Config, InvalidationFlags.None, StageMask.None, 0, Granule.Any, kinds, 0, 0, 0, 0, 0);

    /// <summary>Configuration entries of the given kinds whose source id lies in [firstSourceId, lastSourceId]
    /// (SMMU CFGI_STE / CFGI_STE_RANGE / CFGI_CD_ALL, VT-d device-selective context cache with function mask, IEC index range).</summary>
    public static InvalidationDescriptor ConfigSources(ConfigKinds kinds, uint firstSourceId, uint lastSourceId) =>
        new(InvalidationScope.Config, InvalidationFlags.MatchSource, StageMask.None, 0, Granule.Any, kinds, 0, 0, 0,
            firstSourceId, lastSourceId);

    /// <summary>Configuration entries of the given kinds tagged with a domain (VT-d domain-selective context / PASID cache).</summary>
    public static InvalidationDescriptor ConfigDomain(ConfigKinds kinds, ushort domainId) =>
        new(InvalidationScope.Config, InvalidationFlags.MatchDomain, StageMask.None, 0, Granule.Any, kinds, domainId, 0, 0, 0, 0);

    /// <summary>Configuration entries of one address space: of a domain (VT-d PASID-selective PASID cache) when
    /// <paramref name="domainId"/> is given, of a device (SMMU CFGI_CD) when <paramref name="sourceId"/> is given.</summary>
    public static InvalidationDescriptor ConfigAddressSpace(ConfigKinds kinds, uint addressSpaceId, ushort? domainId = null, uint? sourceId = null)
    {
        var flags = InvalidationFlags.MatchAddressSpace;
        if (domainId is not null)
        {
            flags |= InvalidationFlags.MatchDomain;
        }

        if (sourceId is not null)
        {
            flags |= InvalidationFlags.MatchSource;
        }

        ulong sid = sourceId ?? 0;
        return new(InvalidationScope.Config, flags, StageMask.None, 0, Granule.Any, kinds, domainId ?? 0, addressSpaceId, 0, sid, sid);
    }

    /// <inheritdoc/>
    public bool Equals(InvalidationDescriptor other) =>
        Scope == other.Scope && Flags == other.Flags && Stages == other.Stages && LevelHint == other.LevelHint &&
        GranuleHint == other.GranuleHint && ConfigKinds == other.ConfigKinds && DomainId == other.DomainId &&
        AddressSpaceId == other.AddressSpaceId && SourceId == other.SourceId && First == other.First && Last == other.Last;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is InvalidationDescriptor d && Equals(d);

    /// <summary>Field-wise equality.</summary>
    public static bool operator ==(InvalidationDescriptor left, InvalidationDescriptor right) => left.Equals(right);

    /// <summary>Field-wise inequality.</summary>
    public static bool operator !=(InvalidationDescriptor left, InvalidationDescriptor right) => !left.Equals(right);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Scope, Flags, Stages, DomainId, AddressSpaceId, SourceId, First, Last);

    /// <inheritdoc/>
    public override string ToString() => Scope switch
    {
        InvalidationScope.Iotlb => $"iotlb [{Flags}] stages={Stages} dom={DomainId} as={AddressSpaceId:x}",
        InvalidationScope.IotlbRange => $"iotlb-range [{Flags}] stages={Stages} dom={DomainId} as={AddressSpaceId:x} 0x{First:x}..0x{Last:x} ttl={LevelHint} tg={GranuleHint}",
        InvalidationScope.DeviceTlb => $"devtlb [{Flags}] sid={SourceId:x} pasid={AddressSpaceId:x} 0x{First:x}..0x{Last:x}",
        InvalidationScope.Config => $"config [{Flags}] kinds={ConfigKinds} sids=0x{First:x}..0x{Last:x} dom={DomainId} as={AddressSpaceId:x}",
        _ => $"invalid scope {(byte)Scope}",
    };
}
