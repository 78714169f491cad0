namespace FastInval.Reference;

/// <summary>A total, canonical order of cache entries, so that snapshots of two engines compare element by element.</summary>
public static class EntryOrder
{
    /// <summary>Orders IOTLB entries by stage, domain, global, address space, kind, span, input, output, rights, granule.</summary>
    public static int Compare(TranslationEntry a, TranslationEntry b)
    {
        int c = a.Stage.CompareTo(b.Stage);
        if (c == 0) c = a.DomainId.CompareTo(b.DomainId);
        if (c == 0) c = a.Global.CompareTo(b.Global);
        if (c == 0) c = a.AddressSpaceId.CompareTo(b.AddressSpaceId);
        if (c == 0) c = a.IsTable.CompareTo(b.IsTable);
        if (c == 0) c = a.SizeLog2.CompareTo(b.SizeLog2);
        if (c == 0) c = a.InputAddress.CompareTo(b.InputAddress);
        if (c == 0) c = a.OutputAddress.CompareTo(b.OutputAddress);
        if (c == 0) c = a.Rights.CompareTo(b.Rights);
        if (c == 0) c = a.Granule.CompareTo(b.Granule);
        return c;
    }

    /// <summary>Orders device-TLB entries by source, global, PASID, span, input, output, rights.</summary>
    public static int Compare(DeviceTlbEntry a, DeviceTlbEntry b)
    {
        int c = a.SourceId.CompareTo(b.SourceId);
        if (c == 0) c = a.Global.CompareTo(b.Global);
        if (c == 0) c = a.Pasid.CompareTo(b.Pasid);
        if (c == 0) c = a.SizeLog2.CompareTo(b.SizeLog2);
        if (c == 0) c = a.InputAddress.CompareTo(b.InputAddress);
        if (c == 0) c = a.OutputAddress.CompareTo(b.OutputAddress);
        if (c == 0) c = a.Rights.CompareTo(b.Rights);
        return c;
    }

    /// <summary>Orders configuration entries by kind, source, address space, domain, value.</summary>
    public static int Compare(ConfigEntry a, ConfigEntry b)
    {
        int c = a.Kind.CompareTo(b.Kind);
        if (c == 0) c = a.SourceId.CompareTo(b.SourceId);
        if (c == 0) c = a.AddressSpaceId.CompareTo(b.AddressSpaceId);
        if (c == 0) c = a.DomainId.CompareTo(b.DomainId);
        if (c == 0) c = a.Value.CompareTo(b.Value);
        return c;
    }

    /// <summary>A sorted copy of <paramref name="entries"/>.</summary>
    public static TranslationEntry[] Sorted(TranslationEntry[] entries)
    {
        TranslationEntry[] copy = [.. entries];
        Array.Sort(copy, Compare);
        return copy;
    }

    /// <summary>A sorted copy of <paramref name="entries"/>.</summary>
    public static DeviceTlbEntry[] Sorted(DeviceTlbEntry[] entries)
    {
        DeviceTlbEntry[] copy = [.. entries];
        Array.Sort(copy, Compare);
        return copy;
    }

    /// <summary>A sorted copy of <paramref name="entries"/>.</summary>
    public static ConfigEntry[] Sorted(ConfigEntry[] entries)
    {
        ConfigEntry[] copy = [.. entries];
        Array.Sort(copy, Compare);
        return copy;
    }
}
