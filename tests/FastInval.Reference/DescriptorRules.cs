namespace FastInval.Reference;

/// <summary>
/// The validity and matching rules of <see cref="InvalidationDescriptor"/>, written out clause by clause from its
/// XML remarks. No bit tricks: each documented clause is one <c>if</c>.
/// </summary>
public static class DescriptorRules
{
    private const InvalidationFlags KnownFlags =
        InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace | InvalidationFlags.IncludeGlobal |
        InvalidationFlags.LeafOnly | InvalidationFlags.MatchSource;

    private static bool Has(InvalidationFlags flags, InvalidationFlags flag) => (flags & flag) == flag;

    /// <summary>The validity rules of the descriptor remarks.</summary>
    public static bool IsValid(in InvalidationDescriptor d)
    {
        // The scope is known.
        bool isIotlb = d.Scope == InvalidationScope.Iotlb;
        bool isRange = d.Scope == InvalidationScope.IotlbRange;
        bool isDeviceTlb = d.Scope == InvalidationScope.DeviceTlb;
        bool isConfig = d.Scope == InvalidationScope.Config;
        if (!isIotlb && !isRange && !isDeviceTlb && !isConfig)
        {
            return false;
        }

        // Every flag bit is known.
        if ((d.Flags & ~KnownFlags) != 0)
        {
            return false;
        }

        // An IOTLB scope has a stage and no unknown stage bits.
        if (isIotlb || isRange)
        {
            if (d.Stages == StageMask.None)
            {
                return false;
            }

            if ((d.Stages & ~StageMask.All) != 0)
            {
                return false;
            }
        }

        // Hints: LevelHint ≤ 3, GranuleHint ≤ 3, LevelHint ≠ 0 needs a granule hint.
        if (d.LevelHint > 3)
        {
            return false;
        }

        if ((byte)d.GranuleHint > 3)
        {
            return false;
        }

        if (d.LevelHint != 0 && d.GranuleHint == Granule.Any)
        {
            return false;
        }

        // Hints only in IotlbRange.
        if (!isRange && (d.LevelHint != 0 || d.GranuleHint != Granule.Any))
        {
            return false;
        }

        // First ≤ Last where a range is used.
        bool usesRange = isRange || isDeviceTlb || (isConfig && Has(d.Flags, InvalidationFlags.MatchSource));
        if (usesRange && d.First > d.Last)
        {
            return false;
        }

        // A Config descriptor names at least one kind and no unknown kind.
        if (isConfig)
        {
            if (d.ConfigKinds == ConfigKinds.None)
            {
                return false;
            }

            if ((d.ConfigKinds & ~ConfigKinds.All) != 0)
            {
                return false;
            }
        }

        // The address-space id is valid when it is matched on.
        if (Has(d.Flags, InvalidationFlags.MatchAddressSpace) && !EntryRules.IsValidAddressSpace(d.AddressSpaceId))
        {
            return false;
        }

        return true;
    }

    /// <summary>The four tag clauses of the <see cref="InvalidationScope.Iotlb"/> scope (descriptor assumed valid).</summary>
    public static bool MatchesIotlbTags(in InvalidationDescriptor d, in TranslationEntry e)
    {
        // 1. E.Stage ∈ Stages.
        if (((StageMask)e.Stage & d.Stages) == 0)
        {
            return false;
        }

        // 2. MatchDomain ⇒ E.Domain = DomainId.
        if (Has(d.Flags, InvalidationFlags.MatchDomain) && e.DomainId != d.DomainId)
        {
            return false;
        }

        // 3. MatchAddressSpace ⇒ (¬E.Global ∧ E.AddressSpace = AddressSpaceId) ∨ (E.Global ∧ IncludeGlobal).
        if (Has(d.Flags, InvalidationFlags.MatchAddressSpace))
        {
            bool nonGlobalHit = !e.Global && e.AddressSpaceId == d.AddressSpaceId;
            bool globalHit = e.Global && Has(d.Flags, InvalidationFlags.IncludeGlobal);
            if (!nonGlobalHit && !globalHit)
            {
                return false;
            }
        }

        // 4. LeafOnly ⇒ E is a leaf.
        if (Has(d.Flags, InvalidationFlags.LeafOnly) && e.IsTable)
        {
            return false;
        }

        return true;
    }

    /// <summary>The clauses of the <see cref="InvalidationScope.IotlbRange"/> scope (descriptor assumed valid).</summary>
    public static bool MatchesIotlbRange(in InvalidationDescriptor d, in TranslationEntry e)
    {
        if (!MatchesIotlbTags(d, e))
        {
            return false;
        }

        // 5. E's span overlaps [First, Last].
        if (!EntryRules.SpanOverlaps(e.InputAddress, e.SizeLog2, d.First, d.Last))
        {
            return false;
        }

        // 6. GranuleHint ≠ Any ⇒ E.Granule = GranuleHint.
        if (d.GranuleHint != Granule.Any && e.Granule != d.GranuleHint)
        {
            return false;
        }

        // 7. LevelHint ≠ 0 ⇒ a leaf sits at LevelHint, a table sits above it (E.Level < LevelHint).
        if (d.LevelHint != 0)
        {
            int level = EntryRules.LevelOf(e);
            if (!e.IsTable && level != d.LevelHint)
            {
                return false;
            }

            if (e.IsTable && level >= d.LevelHint)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The clauses of the <see cref="InvalidationScope.DeviceTlb"/> scope (descriptor assumed valid).</summary>
    public static bool MatchesDeviceTlb(in InvalidationDescriptor d, in DeviceTlbEntry e)
    {
        if (Has(d.Flags, InvalidationFlags.MatchSource) && e.SourceId != d.SourceId)
        {
            return false;
        }

        if (Has(d.Flags, InvalidationFlags.MatchAddressSpace) && d.AddressSpaceId == AddressSpace.None)
        {
            // PCIe 6.2 §10.3.8: a request without PASID hits the no-PASID entries in its range and every entry
            // that was requested with a PASID (global ones included), wherever it is.
            bool requestedWithPasid = e.Global || e.Pasid != AddressSpace.None;
            if (requestedWithPasid)
            {
                return true;
            }

            return EntryRules.SpanOverlaps(e.InputAddress, e.SizeLog2, d.First, d.Last);
        }

        if (Has(d.Flags, InvalidationFlags.MatchAddressSpace))
        {
            bool nonGlobalHit = !e.Global && e.Pasid == d.AddressSpaceId;
            bool globalHit = e.Global && Has(d.Flags, InvalidationFlags.IncludeGlobal);
            if (!nonGlobalHit && !globalHit)
            {
                return false;
            }
        }

        if (!EntryRules.SpanOverlaps(e.InputAddress, e.SizeLog2, d.First, d.Last))
        {
            return false;
        }

        return true;
    }

    /// <summary>The clauses of the <see cref="InvalidationScope.Config"/> scope (descriptor assumed valid).</summary>
    public static bool MatchesConfig(in InvalidationDescriptor d, in ConfigEntry e)
    {
        if ((e.Kind & d.ConfigKinds) == 0)
        {
            return false;
        }

        if (Has(d.Flags, InvalidationFlags.MatchSource))
        {
            if (e.SourceId < d.First)
            {
                return false;
            }

            if (e.SourceId > d.Last)
            {
                return false;
            }
        }

        if (Has(d.Flags, InvalidationFlags.MatchDomain) && e.DomainId != d.DomainId)
        {
            return false;
        }

        if (Has(d.Flags, InvalidationFlags.MatchAddressSpace) && e.AddressSpaceId != d.AddressSpaceId)
        {
            return false;
        }

        return true;
    }
}
