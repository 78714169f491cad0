using System.Runtime.InteropServices;

namespace FastInval;

/// <summary>
/// One IOTLB entry as the host fills it after its own page walk: a leaf translation (page or block) or a
/// paging-structure entry (a table entry of the walk cache), with the tags every invalidation scope matches on.
/// </summary>
/// <remarks>
/// <para>Validity (a malformed entry is <see cref="FillResult.Rejected"/>, never thrown on):</para>
/// <list type="bullet">
/// <item><see cref="Stage"/> is one of the three stages; <see cref="Granule"/> is 4, 16 or 64 KiB.</item>
/// <item><see cref="SizeLog2"/> is the span of a level of that granule: <c>g + k·(g − 3)</c> with g = 12, 14 or 16.
/// A leaf sits at level 1, 2 or 3 (4 KiB: 1 GiB, 2 MiB, 4 KiB; 16 KiB: 64 GiB, 32 MiB, 16 KiB; 64 KiB: 4 TiB, 512 MiB, 64 KiB);
/// a table entry at level 0, 1 or 2 and spans that level's block size (4 KiB: 512 GiB, 1 GiB, 2 MiB).</item>
/// <item><see cref="InputAddress"/> is aligned to the span. A leaf's <see cref="OutputAddress"/> is aligned to the span,
/// a table's to the granule.</item>
/// <item>A stage-2 entry has no address space (<see cref="AddressSpace.None"/>) and is never global.
/// Otherwise <see cref="AddressSpaceId"/> is at most <see cref="AddressSpace.MaxId"/> or <see cref="AddressSpace.None"/>.</item>
/// <item>A global entry belongs to every address space of its domain: its <see cref="AddressSpaceId"/> is ignored (any
/// value is accepted, even an out-of-range one) and reads back as <see cref="AddressSpace.None"/>.</item>
/// <item><see cref="Rights"/> fits in 12 bits.</item>
/// </list>
/// <para>Identity: two entries with equal stage, domain, address space (or both global), kind (leaf or table), span
/// and input address are the same entry; filling the second replaces the first's output and rights.</para>
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
public readonly struct TranslationEntry : IEquatable<TranslationEntry>
{
    /// <summary>Input (IOVA, VA or IPA) base address of the span.</summary>
    public readonly ulong InputAddress;

    /// <summary>Output address of the span (leaf) or address of the next-level table (table entry).</summary>
    public readonly ulong OutputAddress;

    /// <summary>PASID or ASID, or <see cref="AddressSpace.None"/>.</summary>
    public readonly uint AddressSpaceId;

    /// <summary>VT-d domain id (DID) or SMMU VMID.</summary>
    public readonly ushort DomainId;

    /// <summary>Permissions and attributes (12 bits).</summary>
    public readonly AccessRights Rights;

    /// <summary>Translation regime.</summary>
    public readonly TranslationStage Stage;

    /// <summary>Granule of the page table the entry came from.</summary>
    public readonly Granule Granule;

    /// <summary>log2 of the span in bytes.</summary>
    public readonly byte SizeLog2;

    /// <summary>True for a global (nG = 0 / VT-d G = 1) entry.</summary>
    public readonly bool Global;

    /// <summary>True for a paging-structure (table) entry, false for a leaf translation.</summary>
    public readonly bool IsTable;

    /// <summary>Creates an entry; see the type's remarks for what is valid.</summary>
    public TranslationEntry(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong inputAddress,
        ulong outputAddress, byte sizeLog2, AccessRights rights, Granule granule, bool global, bool isTable)
    {
        Stage = stage;
        DomainId = domainId;
        AddressSpaceId = addressSpaceId;
        InputAddress = inputAddress;
        OutputAddress = outputAddress;
        SizeLog2 = sizeLog2;
        Rights = rights;
        Granule = granule;
        Global = global;
        IsTable = isTable;
    }

    /// <summary>A leaf translation (page or block).</summary>
    public static TranslationEntry Leaf(TranslationStage stage, ushort domainId, uint addressSpaceId,
        ulong inputAddress, ulong outputAddress, byte sizeLog2 = 12, AccessRights rights = AccessRights.ReadWrite,
        Granule granule = Granule.Size4K, bool global = false) =>
        new(stage, domainId, addressSpaceId, inputAddress, outputAddress, sizeLog2, rights, granule, global, isTable: false);

    /// <summary>A paging-structure entry spanning <c>2^spanLog2</c> bytes whose next-level table is at <paramref name="tableAddress"/>.</summary>
    public static TranslationEntry Table(TranslationStage stage, ushort domainId, uint addressSpaceId,
        ulong inputAddress, ulong tableAddress, byte spanLog2, Granule granule = Granule.Size4K, bool global = false) =>
        new(stage, domainId, addressSpaceId, inputAddress, tableAddress, spanLog2, AccessRights.None, granule, global, isTable: true);

    /// <inheritdoc/>
    public bool Equals(TranslationEntry other) =>
        InputAddress == other.InputAddress && OutputAddress == other.OutputAddress &&
        AddressSpaceId == other.AddressSpaceId && DomainId == other.DomainId && Rights == other.Rights &&
        Stage == other.Stage && Granule == other.Granule && SizeLog2 == other.SizeLog2 &&
        Global == other.Global && IsTable == other.IsTable;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is TranslationEntry e && Equals(e);

    /// <summary>Field-wise equality.</summary>
    public static bool operator ==(TranslationEntry left, TranslationEntry right) => left.Equals(right);

    /// <summary>Field-wise inequality.</summary>
    public static bool operator !=(TranslationEntry left, TranslationEntry right) => !left.Equals(right);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(InputAddress, OutputAddress, AddressSpaceId, DomainId, Stage, SizeLog2, Global, IsTable);

    /// <inheritdoc/>
    public override string ToString() =>
        $"{(IsTable ? "table" : "leaf")} {Stage} did/vmid={DomainId} as={(AddressSpaceId == AddressSpace.None ? "-" : AddressSpaceId.ToString("x", null))}" +
        $"{(Global ? " G" : "")} {Granule} 2^{SizeLog2} 0x{InputAddress:x}->0x{OutputAddress:x} {Rights}";
}

/// <summary>The answer to a lookup: where the looked-up address goes, and the entry that said so.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct Translation
{
    /// <summary>For a leaf: the translated address of the looked-up input address (entry output + offset).
    /// For a table entry: the next-level table address.</summary>
    public readonly ulong OutputAddress;

    /// <summary>Input base address of the entry that answered.</summary>
    public readonly ulong InputBase;

    /// <summary>Permissions and attributes of the entry.</summary>
    public readonly AccessRights Rights;

    /// <summary>log2 of the entry's span.</summary>
    public readonly byte SizeLog2;

    /// <summary>True if the answering entry is global.</summary>
    public readonly bool Global;

    /// <summary>Creates a lookup answer.</summary>
    public Translation(ulong outputAddress, ulong inputBase, AccessRights rights, byte sizeLog2, bool global)
    {
        OutputAddress = outputAddress;
        InputBase = inputBase;
        Rights = rights;
        SizeLog2 = sizeLog2;
        Global = global;
    }

    /// <inheritdoc/>
    public override string ToString() => $"0x{InputBase:x}/2^{SizeLog2} -> 0x{OutputAddress:x} {Rights}{(Global ? " G" : "")}";
}

/// <summary>A device-TLB (ATS ATC) entry: a translation the endpoint cached for (source id, PASID).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct DeviceTlbEntry : IEquatable<DeviceTlbEntry>
{
    /// <summary>Untranslated base address of the span.</summary>
    public readonly ulong InputAddress;

    /// <summary>Translated base address.</summary>
    public readonly ulong OutputAddress;

    /// <summary>Source id (PCI requester id) or SMMU StreamID of the device.</summary>
    public readonly uint SourceId;

    /// <summary>PASID of the request, or <see cref="AddressSpace.None"/> for requests without PASID.</summary>
    public readonly uint Pasid;

    /// <summary>Permissions.</summary>
    public readonly AccessRights Rights;

    /// <summary>log2 of the span (ATS allows any power of two from 4 KiB; 12 ≤ SizeLog2 ≤ 63).</summary>
    public readonly byte SizeLog2;

    /// <summary>Global translation (ATS Global bit): shared by every PASID of the device; reads back with <see cref="AddressSpace.None"/>.</summary>
    public readonly bool Global;

    /// <summary>Creates a device-TLB entry. Valid when 12 ≤ <paramref name="sizeLog2"/> ≤ 63, both addresses are aligned to the span,
    /// <paramref name="pasid"/> is valid (≤ <see cref="AddressSpace.MaxId"/> or <see cref="AddressSpace.None"/>, checked even for a
    /// global entry: an ATS completion always comes for a real request) and the rights fit in 12 bits.</summary>
    public DeviceTlbEntry(uint sourceId, uint pasid, ulong inputAddress, ulong outputAddress, byte sizeLog2 = 12,
        AccessRights rights = AccessRights.ReadWrite, bool global = false)
    {
        SourceId = sourceId;
        Pasid = pasid;
        InputAddress = inputAddress;
        OutputAddress = outputAddress;
        SizeLog2 = sizeLog2;
        Rights = rights;
        Global = global;
    }

    /// <inheritdoc/>
    public bool Equals(DeviceTlbEntry other) =>
        InputAddress == other.InputAddress && OutputAddress == other.OutputAddress && SourceId == other.SourceId &&
        Pasid == other.Pasid && Rights == other.Rights && SizeLog2 == other.SizeLog2 && Global == other.Global;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is DeviceTlbEntry e && Equals(e);

    /// <summary>Field-wise equality.</summary>
    public static bool operator ==(DeviceTlbEntry left, DeviceTlbEntry right) => left.Equals(right);

    /// <summary>Field-wise inequality.</summary>
    public static bool operator !=(DeviceTlbEntry left, DeviceTlbEntry right) => !left.Equals(right);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(InputAddress, OutputAddress, SourceId, Pasid, SizeLog2, Global);

    /// <inheritdoc/>
    public override string ToString() =>
        $"atc sid={SourceId:x} pasid={(Pasid == AddressSpace.None ? "-" : Pasid.ToString("x", null))}{(Global ? " G" : "")} 2^{SizeLog2} 0x{InputAddress:x}->0x{OutputAddress:x} {Rights}";
}

/// <summary>A configuration-cache entry: a cached context entry, PASID entry, STE, CD or interrupt-remapping entry.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct ConfigEntry : IEquatable<ConfigEntry>
{
    /// <summary>The cached value (opaque to FastInval: e.g. the guest address of the table entry, or a host handle).</summary>
    public readonly ulong Value;

    /// <summary>Source id / StreamID (or interrupt index for <see cref="ConfigKinds.InterruptEntry"/>).</summary>
    public readonly uint SourceId;

    /// <summary>PASID / SubstreamID, or <see cref="AddressSpace.None"/>.</summary>
    public readonly uint AddressSpaceId;

    /// <summary>Domain (DID / VMID) the entry is tagged with.</summary>
    public readonly ushort DomainId;

    /// <summary>Exactly one kind.</summary>
    public readonly ConfigKinds Kind;

    /// <summary>Creates a configuration entry. Valid when <paramref name="kind"/> is exactly one kind and the address-space id is valid.
    /// Identity: (kind, source id, address space); a second fill replaces domain and value.</summary>
    public ConfigEntry(ConfigKinds kind, uint sourceId, uint addressSpaceId, ushort domainId, ulong value)
    {
        Kind = kind;
        SourceId = sourceId;
        AddressSpaceId = addressSpaceId;
        DomainId = domainId;
        Value = value;
    }

    /// <inheritdoc/>
    public bool Equals(ConfigEntry other) =>
        Value == other.Value && SourceId == other.SourceId && AddressSpaceId == other.AddressSpaceId &&
        DomainId == other.DomainId && Kind == other.Kind;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is ConfigEntry e && Equals(e);

    /// <summary>Field-wise equality.</summary>
    public static bool operator ==(ConfigEntry left, ConfigEntry right) => left.Equals(right);

    /// <summary>Field-wise inequality.</summary>
    public static bool operator !=(ConfigEntry left, ConfigEntry right) => !left.Equals(right);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Value, SourceId, AddressSpaceId, DomainId, Kind);

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Kind} sid={SourceId:x} as={(AddressSpaceId == AddressSpace.None ? "-" : AddressSpaceId.ToString("x", null))} dom={DomainId} value=0x{Value:x}";
}
