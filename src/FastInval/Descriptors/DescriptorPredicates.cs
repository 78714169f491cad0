using System.Runtime.CompilerServices;
using FastInval.Caches;
using FastInval.Kernels;

namespace FastInval.Descriptors;

/// <summary>
/// Turns a validated <see cref="InvalidationDescriptor"/> into the match operator of its scope, following the rules
/// written on <see cref="InvalidationDescriptor"/>. The same operator serves the vector scans and the index probes,
/// so the two paths cannot disagree.
/// </summary>
internal static class DescriptorPredicates
{
    private const ulong Never = 1; // (mask 0, value 1): an alternative that never holds

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsValid(in InvalidationDescriptor d)
    {
        const InvalidationFlags knownFlags = InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace |
                                             InvalidationFlags.IncludeGlobal | InvalidationFlags.LeafOnly | InvalidationFlags.MatchSource;
        if ((d.Flags & ~knownFlags) != 0)
        {
            return false;
        }

        if ((d.Flags & InvalidationFlags.MatchAddressSpace) != 0 && !AddressSpace.IsValid(d.AddressSpaceId))
        {
            return false;
        }

        bool hints = d.LevelHint != 0 || d.GranuleHint != Granule.Any;
        switch (d.Scope)
        {
            case InvalidationScope.Iotlb:
                return d.Stages != StageMask.None && (d.Stages & ~StageMask.All) == 0 && !hints;
            case InvalidationScope.IotlbRange:
                return d.Stages != StageMask.None && (d.Stages & ~StageMask.All) == 0 && d.First <= d.Last &&
                       d.LevelHint <= 3 && d.GranuleHint <= Granule.Size64K &&
                       (d.LevelHint == 0 || d.GranuleHint != Granule.Any);
            case InvalidationScope.DeviceTlb:
                return d.First <= d.Last && !hints;
            case InvalidationScope.Config:
                return d.ConfigKinds != ConfigKinds.None && (d.ConfigKinds & ~ConfigKinds.All) == 0 && !hints &&
                       ((d.Flags & InvalidationFlags.MatchSource) == 0 || d.First <= d.Last);
            default:
                return false;
        }
    }

    /// <summary>IOTLB scopes. <paramref name="withRange"/> adds the span and the hints (IotlbRange).</summary>
    public static RangeOp Iotlb(in InvalidationDescriptor d, bool withRange)
    {
        RangeMatch m = IotlbMatch(in d, withRange);
        return new RangeOp(in m);
    }

    /// <summary>The scalar form of <see cref="Iotlb"/> (index probes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static RangeMatch IotlbMatch(in InvalidationDescriptor d, bool withRange)
    {
        ulong m0 = TranslationTag.ValidBit, v0 = TranslationTag.ValidBit;
        if ((d.Flags & InvalidationFlags.MatchDomain) != 0)
        {
            m0 |= TranslationTag.SpaceMask;
            v0 |= TranslationTag.Space(d.DomainId);
        }

        if ((d.Flags & InvalidationFlags.LeafOnly) != 0)
        {
            m0 |= TranslationTag.LeafBit;
            v0 |= TranslationTag.LeafBit;
        }

        ulong m3 = 0, v3 = 0, m4 = 0, v4 = Never;
        if (withRange)
        {
            if (d.GranuleHint != Granule.Any)
            {
                m0 |= TranslationTag.GranuleMask;
                v0 |= (ulong)d.GranuleHint << TranslationTag.GranuleShift;
            }

            if (d.LevelHint != 0)
            {
                // Leaves at exactly the hinted level; tables at every level above it.
                m3 = TranslationTag.LeafBit | TranslationTag.LevelMask;
                v3 = TranslationTag.LeafBit | ((ulong)d.LevelHint << TranslationTag.LevelShift);
                (m4, v4) = d.LevelHint switch
                {
                    1 => (TranslationTag.LeafBit | TranslationTag.LevelMask, 0UL),   // level 0
                    2 => (TranslationTag.LeafBit | (2UL << TranslationTag.LevelShift), 0UL), // levels 0, 1
                    _ => (TranslationTag.LeafBit, 0UL),                               // levels 0..2: every table
                };
            }
        }

        (ulong m1, ulong v1, ulong m2, ulong v2) = AddressSpaceGroup(in d, TranslationTag.GlobalBit);
        return new RangeMatch(m0, v0, m1, v1, m2, v2, m3, v3, m4, v4, TranslationTag.Stage(d.Stages),
            withRange ? d.First : 0, withRange ? d.Last : ulong.MaxValue);
    }

    /// <summary>True for a device-TLB invalidation request without PASID (PCIe 6.2 §10.3.8: it also removes every
    /// PASID-tagged entry of the device, at any address; <see cref="DeviceTlbPasidTagged"/> selects those).</summary>
    public static bool IsNoPasidDeviceTlb(in InvalidationDescriptor d) =>
        (d.Flags & InvalidationFlags.MatchAddressSpace) != 0 && d.AddressSpaceId == AddressSpace.None;

    /// <summary>The second part of a no-PASID device-TLB invalidation: entries of the device requested with a PASID
    /// (non-global with an address space, or global), at any address.</summary>
    public static RangeOp DeviceTlbPasidTagged(in InvalidationDescriptor d)
    {
        ulong m0 = TranslationTag.ValidBit, v0 = TranslationTag.ValidBit;
        if ((d.Flags & InvalidationFlags.MatchSource) != 0)
        {
            m0 |= TranslationTag.SpaceMask;
            v0 |= TranslationTag.Space(d.SourceId);
        }

        return new RangeOp(m0, v0, TranslationTag.GlobalBit | TranslationTag.AddressSpaceNone, 0, TranslationTag.GlobalBit,
            TranslationTag.GlobalBit, 0, 0, 0, Never, TranslationTag.ValidBit, 0, ulong.MaxValue);
    }

    /// <summary>Device-TLB scope (for a request without PASID, the in-range part; see <see cref="DeviceTlbPasidTagged"/>).</summary>
    public static RangeOp DeviceTlb(in InvalidationDescriptor d)
    {
        RangeMatch m = DeviceTlbMatch(in d);
        return new RangeOp(in m);
    }

    /// <summary>The scalar form of <see cref="DeviceTlb"/> (index probes).</summary>
    public static RangeMatch DeviceTlbMatch(in InvalidationDescriptor d)
    {
        ulong m0 = TranslationTag.ValidBit, v0 = TranslationTag.ValidBit;
        if ((d.Flags & InvalidationFlags.MatchSource) != 0)
        {
            m0 |= TranslationTag.SpaceMask;
            v0 |= TranslationTag.Space(d.SourceId);
        }

        (ulong m1, ulong v1, ulong m2, ulong v2) = AddressSpaceGroup(in d, TranslationTag.GlobalBit);
        return new RangeMatch(m0, v0, m1, v1, m2, v2, 0, 0, 0, Never, TranslationTag.ValidBit, d.First, d.Last);
    }

    /// <summary>Configuration scope (source-id range in the span columns).</summary>
    public static RangeOp Config(in InvalidationDescriptor d)
    {
        ulong m0 = ConfigTag.ValidBit, v0 = ConfigTag.ValidBit;
        if ((d.Flags & InvalidationFlags.MatchDomain) != 0)
        {
            m0 |= ConfigTag.DomainMask;
            v0 |= ConfigTag.Domain(d.DomainId);
        }

        if ((d.Flags & InvalidationFlags.MatchAddressSpace) != 0)
        {
            m0 |= ConfigTag.AddressSpaceMask;
            v0 |= TranslationTag.EncodeAddressSpace(d.AddressSpaceId);
        }

        bool bySource = (d.Flags & InvalidationFlags.MatchSource) != 0;
        return new RangeOp(m0, v0, 0, 0, 0, Never, 0, 0, 0, Never, ConfigTag.Kind(d.ConfigKinds),
            bySource ? d.First : 0, bySource ? d.Last : ulong.MaxValue);
    }

    /// <summary>
    /// The address-space group: with MatchAddressSpace, (non-global ∧ id equal) ∨ (global ∧ IncludeGlobal);
    /// otherwise always true.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (ulong M1, ulong V1, ulong M2, ulong V2) AddressSpaceGroup(in InvalidationDescriptor d, ulong globalBit)
    {
        if ((d.Flags & InvalidationFlags.MatchAddressSpace) == 0)
        {
            return (0, 0, 0, Never);
        }

        ulong m1 = globalBit | TranslationTag.AddressSpaceMask;
        ulong v1 = TranslationTag.EncodeAddressSpace(d.AddressSpaceId);
        return (d.Flags & InvalidationFlags.IncludeGlobal) != 0 ? (m1, v1, globalBit, globalBit) : (m1, v1, 0, Never);
    }

    /// <summary>Reduces a full predicate to the lean tag operator when it has no span, no level group and a single
    /// address-space alternative.</summary>
    public static bool TryReduce(in RangeOp op, out TagOp tagOp)
    {
        bool fullRange = op.Lo == 0 && op.Hi == ulong.MaxValue;
        bool group1Single = op.M2 == 0 && op.V2 == Never;
        bool group2Always = op.M3 == 0 && op.V3 == 0;
        if (fullRange && group1Single && group2Always)
        {
            tagOp = new TagOp(op.M0 | op.M1, op.V0 | op.V1, op.Any);
            return true;
        }

        tagOp = default;
        return false;
    }

    /// <summary>Spans (as a bit mask) that a granule hint and a level hint allow for leaves and for tables.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (ulong Leaves, ulong Tables) HintedSizes(Granule granule, int level)
    {
        if (granule == Granule.Any)
        {
            return (ulong.MaxValue, ulong.MaxValue);
        }

        ulong leaves = 0, tables = 0;
        for (int l = 0; l <= 3; l++)
        {
            int k = TranslationTag.GranuleLog2(granule);
            int size = k + ((3 - l) * (k - 3));
            if (size >= 64)
            {
                continue;
            }

            if (level == 0 || l == level)
            {
                leaves |= 1UL << size;
            }

            if (level == 0 || l < level)
            {
                tables |= 1UL << size;
            }
        }

        return (leaves, tables);
    }
}
