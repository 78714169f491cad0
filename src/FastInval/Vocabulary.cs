namespace FastInval;

/// <summary>
/// The translation regime an IOTLB entry was filled from. One-hot, so a <see cref="StageMask"/> can name
/// several. VT-d: first-stage (PGTT 001b), second-stage (010b), nested (011b). SMMUv3: stage 1 (CD),
/// stage 2 (STE S2), and combined S1+S2 entries of a nested configuration.
/// </summary>
public enum TranslationStage : byte
{
    /// <summary>First-stage (guest) translation: IOVA/VA → output address, tagged with a PASID or ASID.</summary>
    Stage1 = 1,

    /// <summary>Second-stage translation: IPA/GPA → PA, tagged with the domain (DID/VMID) only.</summary>
    Stage2 = 2,

    /// <summary>A combined first+second-stage entry (VA → PA) of a nested configuration.</summary>
    Nested = 4,
}

/// <summary>A set of <see cref="TranslationStage"/> values.</summary>
[Flags]
public enum StageMask : byte
{
    /// <summary>No stage; not a valid mask for an IOTLB descriptor.</summary>
    None = 0,

    /// <summary>First-stage entries.</summary>
    Stage1 = TranslationStage.Stage1,

    /// <summary>Second-stage entries.</summary>
    Stage2 = TranslationStage.Stage2,

    /// <summary>Combined (nested) entries.</summary>
    Nested = TranslationStage.Nested,

    /// <summary>Every entry that translates a first-stage address: stage 1 and nested (SMMU TLBI_NH_*, VT-d PASID-based IOTLB).</summary>
    FirstStage = Stage1 | Nested,

    /// <summary>Every stage.</summary>
    All = Stage1 | Stage2 | Nested,
}

/// <summary>Translation granule, in the SMMUv3 TG encoding (also used for VT-d, which only has 4 KiB).</summary>
public enum Granule : byte
{
    /// <summary>No granule: in a descriptor, "any granule" (SMMU TG = 0). Not valid for an entry.</summary>
    Any = 0,

    /// <summary>4 KiB granule: pages of 4 KiB, blocks of 2 MiB and 1 GiB, tables spanning up to 512 GiB.</summary>
    Size4K = 1,

    /// <summary>16 KiB granule: pages of 16 KiB, blocks of 32 MiB (and 64 GiB with LPA2).</summary>
    Size16K = 2,

    /// <summary>64 KiB granule: pages of 64 KiB, blocks of 512 MiB (and 4 TiB with 52-bit addresses).</summary>
    Size64K = 3,
}

/// <summary>Permission and attribute bits stored with a translation (the low 12 bits of the output word).</summary>
[Flags]
public enum AccessRights : ushort
{
    /// <summary>No access.</summary>
    None = 0,

    /// <summary>Reads (device → memory DMA reads) allowed.</summary>
    Read = 1,

    /// <summary>Writes allowed.</summary>
    Write = 2,

    /// <summary>Instruction fetch allowed (SMMU XN clear / VT-d X).</summary>
    Execute = 4,

    /// <summary>Privileged-only access (SMMU AP / VT-d supervisor requests).</summary>
    Privileged = 8,

    /// <summary>Read and write.</summary>
    ReadWrite = Read | Write,

    /// <summary>Every bit a translation may carry.</summary>
    AllBits = 0xFFF,
}

/// <summary>Address-space identifiers: VT-d PASID (20 bits), SMMU ASID (16 bits) or SubstreamID (20 bits).</summary>
public static class AddressSpace
{
    /// <summary>"No address space": requests without PASID, stage-2 entries, configuration entries without a PASID.</summary>
    public const uint None = uint.MaxValue;

    /// <summary>The largest identifier an entry or descriptor may carry (20 bits).</summary>
    public const uint MaxId = (1u << 20) - 1;

    /// <summary>True when <paramref name="id"/> is a real identifier or <see cref="None"/>.</summary>
    public static bool IsValid(uint id) => id <= MaxId || id == None;
}

/// <summary>What a fill did to the cache.</summary>
public enum FillResult : byte
{
    /// <summary>Added into a free slot.</summary>
    Inserted = 0,

    /// <summary>An entry with the same identity existed; its value was replaced.</summary>
    Replaced = 1,

    /// <summary>The cache was full: one entry was evicted (CLOCK, second chance) to make room.</summary>
    InsertedAfterEviction = 2,

    /// <summary>The entry is malformed (see the entry's validity rules); the cache is unchanged.</summary>
    Rejected = 3,

    /// <summary><c>TryFill</c> only: an invalidation that may cover the entry ran since the
    /// <see cref="InvalidationToken"/> was taken; the cache is unchanged and the caller must walk again.</summary>
    Stale = 4,
}

/// <summary>Kinds of configuration-cache entries. One-hot, so a descriptor can name several.</summary>
[Flags]
public enum ConfigKinds : byte
{
    /// <summary>No kind; not valid in a descriptor.</summary>
    None = 0,

    /// <summary>VT-d context entry (keyed by source id).</summary>
    Context = 1,

    /// <summary>VT-d scalable-mode PASID-table entry (keyed by source id and PASID, tagged with DID).</summary>
    PasidEntry = 2,

    /// <summary>SMMUv3 Stream Table Entry (keyed by StreamID, tagged with VMID).</summary>
    StreamTableEntry = 4,

    /// <summary>SMMUv3 Context Descriptor (keyed by StreamID and SubstreamID, tagged with VMID).</summary>
    ContextDescriptor = 8,

    /// <summary>VT-d interrupt-remapping entry (keyed by interrupt index, stored in the source-id field).</summary>
    InterruptEntry = 16,

    /// <summary>Every kind.</summary>
    All = Context | PasidEntry | StreamTableEntry | ContextDescriptor | InterruptEntry,
}
