namespace FastInval.Reference;

/// <summary>
/// The validity and geometry rules of the three entry kinds, written out from the XML docs of
/// <see cref="TranslationEntry"/>, <see cref="DeviceTlbEntry"/> and <see cref="ConfigEntry"/> /
/// <c>ConfigurationCache</c>. Deliberately plain: one <c>if</c> per documented rule.
/// </summary>
public static class EntryRules
{
    /// <summary>log2 of the granule size in bytes (12, 14, 16), or 0 when the granule is not a real one.</summary>
    public static int GranuleLog2(Granule granule)
    {
        if (granule == Granule.Size4K)
        {
            return 12;
        }

        if (granule == Granule.Size16K)
        {
            return 14;
        }

        if (granule == Granule.Size64K)
        {
            return 16;
        }

        return 0;
    }

    /// <summary>
    /// The page-table level whose span is 2^<paramref name="sizeLog2"/> in a table of <paramref name="granule"/>:
    /// span = g + n·(g − 3) with level = 3 − n, for levels 0..3. False when no level of that granule has that span.
    /// </summary>
    public static bool TryGetLevel(Granule granule, int sizeLog2, out int level)
    {
        int g = GranuleLog2(granule);
        level = -1;
        if (g == 0)
        {
            return false;
        }

        for (int candidate = 0; candidate <= 3; candidate++)
        {
            int n = 3 - candidate;
            int span = g + (n * (g - 3));
            if (span == sizeLog2)
            {
                level = candidate;
                return true;
            }
        }

        return false;
    }

    /// <summary>2^sizeLog2 − 1, for 0 ≤ sizeLog2 ≤ 64.</summary>
    public static ulong SpanMinusOne(int sizeLog2)
    {
        if (sizeLog2 >= 64)
        {
            return ulong.MaxValue;
        }

        return (1UL << sizeLog2) - 1;
    }

    /// <summary>True when <paramref name="value"/> is a multiple of 2^<paramref name="log2"/>.</summary>
    public static bool IsAligned(ulong value, int log2)
    {
        if (log2 >= 64)
        {
            return value == 0;
        }

        return value % (1UL << log2) == 0;
    }

    /// <summary>True when the span [input, input + 2^sizeLog2 − 1] contains <paramref name="address"/>.</summary>
    public static bool SpanContains(ulong input, int sizeLog2, ulong address)
    {
        if (address < input)
        {
            return false;
        }

        return address - input <= SpanMinusOne(sizeLog2);
    }

    /// <summary>True when the span [input, input + 2^sizeLog2 − 1] overlaps [first, last] (inclusive).</summary>
    public static bool SpanOverlaps(ulong input, int sizeLog2, ulong first, ulong last)
    {
        ulong spanLast = input + SpanMinusOne(sizeLog2); // the span is aligned, so this never wraps
        if (spanLast < first)
        {
            return false;
        }

        if (input > last)
        {
            return false;
        }

        return true;
    }

    /// <summary>True for a PASID / ASID that is a real identifier or <see cref="AddressSpace.None"/>.</summary>
    public static bool IsValidAddressSpace(uint id)
    {
        if (id == AddressSpace.None)
        {
            return true;
        }

        return id <= AddressSpace.MaxId;
    }

    /// <summary>The validity rules of <see cref="TranslationEntry"/>.</summary>
    public static bool IsValid(in TranslationEntry e)
    {
        if (e.Stage != TranslationStage.Stage1 && e.Stage != TranslationStage.Stage2 && e.Stage != TranslationStage.Nested)
        {
            return false;
        }

        if (!TryGetLevel(e.Granule, e.SizeLog2, out int level))
        {
            return false;
        }

        if (!e.IsTable && (level < 1 || level > 3))
        {
            return false;
        }

        if (e.IsTable && (level < 0 || level > 2))
        {
            return false;
        }

        if (!IsAligned(e.InputAddress, e.SizeLog2))
        {
            return false;
        }

        if (!e.IsTable && !IsAligned(e.OutputAddress, e.SizeLog2))
        {
            return false;
        }

        if (e.IsTable && !IsAligned(e.OutputAddress, GranuleLog2(e.Granule)))
        {
            return false;
        }

        if (e.Stage == TranslationStage.Stage2)
        {
            if (e.AddressSpaceId != AddressSpace.None)
            {
                return false;
            }

            if (e.Global)
            {
                return false;
            }
        }
        else if (!e.Global && !IsValidAddressSpace(e.AddressSpaceId))
        {
            // A global entry's address space "is ignored" (and reads back as None), for validity too. Contrast the
            // device TLB, whose documented rule is "pasid is valid" with no exception for global entries.
            return false;
        }

        if ((ushort)e.Rights > 0xFFF)
        {
            return false;
        }

        return true;
    }

    /// <summary>The level of a valid entry (0..3).</summary>
    public static int LevelOf(in TranslationEntry e)
    {
        if (!TryGetLevel(e.Granule, e.SizeLog2, out int level))
        {
            throw new ArgumentException("Entry has no level: " + e, nameof(e));
        }

        return level;
    }

    /// <summary>The entry as the cache stores it: a global entry's address space reads back as None.</summary>
    public static TranslationEntry Normalize(in TranslationEntry e)
    {
        if (!e.Global)
        {
            return e;
        }

        return new TranslationEntry(e.Stage, e.DomainId, AddressSpace.None, e.InputAddress, e.OutputAddress, e.SizeLog2,
            e.Rights, e.Granule, e.Global, e.IsTable);
    }

    /// <summary>IOTLB identity: stage, domain, address space (or both global), kind, span and input address.</summary>
    public static bool SameIdentity(in TranslationEntry a, in TranslationEntry b)
    {
        if (a.Stage != b.Stage)
        {
            return false;
        }

        if (a.DomainId != b.DomainId)
        {
            return false;
        }

        if (a.Global != b.Global)
        {
            return false;
        }

        if (!a.Global && a.AddressSpaceId != b.AddressSpaceId)
        {
            return false;
        }

        if (a.IsTable != b.IsTable)
        {
            return false;
        }

        if (a.SizeLog2 != b.SizeLog2)
        {
            return false;
        }

        return a.InputAddress == b.InputAddress;
    }

    /// <summary>The validity rules of <see cref="DeviceTlbEntry"/>.</summary>
    public static bool IsValid(in DeviceTlbEntry e)
    {
        if (e.SizeLog2 < 12 || e.SizeLog2 > 63)
        {
            return false;
        }

        if (!IsAligned(e.InputAddress, e.SizeLog2))
        {
            return false;
        }

        if (!IsAligned(e.OutputAddress, e.SizeLog2))
        {
            return false;
        }

        if (!IsValidAddressSpace(e.Pasid))
        {
            // "pasid is valid", global or not (unlike an IOTLB entry, whose address space is ignored when global).
            return false;
        }

        if ((ushort)e.Rights > 0xFFF)
        {
            return false;
        }

        return true;
    }

    /// <summary>The entry as the device TLB stores it: a global entry's PASID reads back as None.</summary>
    public static DeviceTlbEntry Normalize(in DeviceTlbEntry e)
    {
        if (!e.Global)
        {
            return e;
        }

        return new DeviceTlbEntry(e.SourceId, AddressSpace.None, e.InputAddress, e.OutputAddress, e.SizeLog2, e.Rights, e.Global);
    }

    /// <summary>Device-TLB identity: source id, PASID (ignored if global), span, input address, global bit.</summary>
    public static bool SameIdentity(in DeviceTlbEntry a, in DeviceTlbEntry b)
    {
        if (a.SourceId != b.SourceId)
        {
            return false;
        }

        if (a.Global != b.Global)
        {
            return false;
        }

        if (!a.Global && a.Pasid != b.Pasid)
        {
            return false;
        }

        if (a.SizeLog2 != b.SizeLog2)
        {
            return false;
        }

        return a.InputAddress == b.InputAddress;
    }

    /// <summary>True when <paramref name="kind"/> is exactly one of the five known kinds.</summary>
    public static bool IsSingleKind(ConfigKinds kind)
    {
        if (kind == ConfigKinds.Context)
        {
            return true;
        }

        if (kind == ConfigKinds.PasidEntry)
        {
            return true;
        }

        if (kind == ConfigKinds.StreamTableEntry)
        {
            return true;
        }

        if (kind == ConfigKinds.ContextDescriptor)
        {
            return true;
        }

        if (kind == ConfigKinds.InterruptEntry)
        {
            return true;
        }

        return false;
    }

    /// <summary>The validity rules of <see cref="ConfigEntry"/> (ConfigurationCache remarks).</summary>
    public static bool IsValid(in ConfigEntry e)
    {
        if (!IsSingleKind(e.Kind))
        {
            return false;
        }

        if (e.Kind == ConfigKinds.PasidEntry || e.Kind == ConfigKinds.ContextDescriptor)
        {
            return e.AddressSpaceId <= AddressSpace.MaxId;
        }

        return e.AddressSpaceId == AddressSpace.None;
    }

    /// <summary>Configuration identity: kind, source id, address space.</summary>
    public static bool SameIdentity(in ConfigEntry a, in ConfigEntry b)
    {
        if (a.Kind != b.Kind)
        {
            return false;
        }

        if (a.SourceId != b.SourceId)
        {
            return false;
        }

        return a.AddressSpaceId == b.AddressSpaceId;
    }
}
