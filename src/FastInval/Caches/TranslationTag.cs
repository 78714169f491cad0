using System.Runtime.CompilerServices;

namespace FastInval.Caches;

/// <summary>
/// The packed 64-bit tag word of an IOTLB or device-TLB slot, the column the flush kernels scan.
/// <code>
///  63   62..60  59   58   57..56   55 ............ 24  23  22..21  20 ........ 0
/// [V] [Stage ] [G] [L] [Granule] [ Space (32 bits) ] [0] [Level] [ Address space ]
/// </code>
/// V = valid (an all-zero tag is a free slot or padding). Stage is one-hot (bit 60 stage 1, 61 stage 2, 62 nested).
/// G = global, L = leaf (0 = paging-structure entry). Granule uses the SMMU TG encoding (1 = 4 KiB, 2 = 16 KiB,
/// 3 = 64 KiB). Space = DID/VMID for the IOTLB, source id for a device TLB. Level = 0..3 of the entry's span within
/// its granule. Address space = PASID/ASID (20 bits) with bit 20 meaning "none"; zero for global entries.
/// </summary>
internal static class TranslationTag
{
    public const int AddressSpaceShift = 0;
    public const ulong AddressSpaceMask = 0x1F_FFFFUL;
    public const ulong AddressSpaceNone = 1UL << 20;

    public const int LevelShift = 21;
    public const ulong LevelMask = 3UL << LevelShift;

    public const int SpaceShift = 24;
    public const ulong SpaceMask = 0xFFFF_FFFFUL << SpaceShift;

    public const int GranuleShift = 56;
    public const ulong GranuleMask = 3UL << GranuleShift;

    public const ulong LeafBit = 1UL << 58;
    public const ulong GlobalBit = 1UL << 59;

    public const int StageShift = 60;
    public const ulong StageMask = 7UL << StageShift;

    public const ulong ValidBit = 1UL << 63;

    /// <summary>Hash key used for global entries (outside the 21-bit address-space field).</summary>
    public const uint GlobalKey = 1u << 21;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong EncodeAddressSpace(uint id) => id == FastInval.AddressSpace.None ? AddressSpaceNone : id;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint DecodeAddressSpace(ulong tag)
    {
        ulong f = tag & AddressSpaceMask;
        return f == AddressSpaceNone ? FastInval.AddressSpace.None : (uint)f;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Stage(StageMask stages) => (ulong)stages << StageShift;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Space(uint space) => (ulong)space << SpaceShift;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint SpaceOf(ulong tag) => (uint)((tag & SpaceMask) >> SpaceShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int LevelOf(ulong tag) => (int)((tag & LevelMask) >> LevelShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Granule GranuleOf(ulong tag) => (Granule)((tag & GranuleMask) >> GranuleShift);

    /// <summary>The hash key of the address-space part of a tag: the field itself, or <see cref="GlobalKey"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint HashKeyOf(ulong tag) => (tag & GlobalBit) != 0 ? GlobalKey : (uint)(tag & AddressSpaceMask);

    /// <summary>log2 of a granule's page size (12, 14, 16), or 0 for <see cref="Granule.Any"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int GranuleLog2(Granule g) => g == Granule.Any ? 0 : 10 + (2 * (int)g);

    /// <summary>
    /// The level (0..3) whose span is 2^sizeLog2 in a table of granule <paramref name="g"/>, or -1 when no level spans it.
    /// A granule of 2^k bytes resolves k − 3 address bits per level, so level L spans 2^(k + (3 − L)(k − 3)).
    /// </summary>
    public static int LevelForSize(Granule g, int sizeLog2)
    {
        int k = GranuleLog2(g);
        if (k == 0 || sizeLog2 < k)
        {
            return -1;
        }

        int steps = Math.DivRem(sizeLog2 - k, k - 3, out int rem);
        return rem != 0 || steps > 3 ? -1 : 3 - steps;
    }
}

/// <summary>
/// The packed tag word of a configuration-cache slot.
/// <code>
///  63   62 ..... 58  57..40   39 ......... 24  23..21  20 ........ 0
/// [V] [Kind 5 bits] [  0   ] [ Domain (16) ] [  0  ] [ Address space ]
/// </code>
/// Kind is one-hot (<see cref="ConfigKinds"/> shifted to bit 58). The source id lives in the span columns
/// (first = last = source id), so source-id ranges use the same range kernels as addresses.
/// </summary>
internal static class ConfigTag
{
    public const ulong AddressSpaceMask = TranslationTag.AddressSpaceMask;
    public const int DomainShift = 24;
    public const ulong DomainMask = 0xFFFFUL << DomainShift;
    public const int KindShift = 58;
    public const ulong KindMask = 0x1FUL << KindShift;
    public const ulong ValidBit = TranslationTag.ValidBit;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Kind(ConfigKinds kinds) => (ulong)kinds << KindShift;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Domain(ushort domain) => (ulong)domain << DomainShift;
}
