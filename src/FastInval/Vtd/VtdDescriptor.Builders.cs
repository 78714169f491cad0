using FastInval.Internals;

namespace FastInval.Vtd;

/// <summary>Builders: one factory per granularity of every descriptor type (0x1–0x8), encoding the fields exactly as a
/// guest driver does. A builder's result fits a 128-bit queue slot and a 256-bit one (QW2 = QW3 = 0). Field values that
/// do not fit their field are host errors (<see cref="ArgumentOutOfRangeException"/>); whether the unit accepts a
/// descriptor (feature present, AM within MAMV, …) is the unit's decision, not the builder's.</summary>
public readonly partial struct VtdDescriptor
{
    private const ulong TypeContextCache = 0x1, TypeIotlb = 0x2, TypeDeviceTlb = 0x3, TypeInterruptEntryCache = 0x4;
    private const ulong TypeWait = 0x5, TypePasidIotlb = 0x6, TypePasidCache = 0x7, TypePasidDeviceTlb = 0x8;
    private const int DrainWritesBit = 6, DrainReadsBit = 7;              // type 0x2 QW0
    private const int PfsidLowShift = 12, PfsidHighShift = 52, DeviceMipShift = 16, PasidMipShift = 4;
    private const int DeviceSizeBit = 0, PasidDeviceSizeBit = 11;         // QW1
    private const int InterruptFlagBit = 4, StatusWriteBit = 5, FenceBit = 6, PageRequestDrainBit = 7;
    private const uint MaxPasid = 0xF_FFFF;

    // ---- 0x1 context-cache ----------------------------------------------------------------------------

    /// <summary>Context-cache invalidation, global (G = 01b).</summary>
    public static VtdDescriptor ContextCacheGlobal() => new(TypeContextCache | (1UL << GranularityShift), 0);

    /// <summary>Context-cache invalidation, domain-selective (G = 10b).</summary>
    public static VtdDescriptor ContextCacheDomain(ushort domainId) =>
        new(TypeContextCache | (2UL << GranularityShift) | ((ulong)domainId << DomainShift), 0);

    /// <summary>Context-cache invalidation, device-selective (G = 11b): the context entries of
    /// <paramref name="sourceId"/>, with <paramref name="functionMask"/> (FM, 0–3) low function-number bits ignored.</summary>
    public static VtdDescriptor ContextCacheDevice(ushort domainId, ushort sourceId, int functionMask = 0)
    {
        CheckField(functionMask, 3, nameof(functionMask));
        return new(TypeContextCache | (3UL << GranularityShift) | ((ulong)domainId << DomainShift) | ((ulong)sourceId << SourceShift) |
                   ((ulong)(uint)functionMask << FunctionMaskShift), 0);
    }

    // ---- 0x2 IOTLB --------------------------------------------------------------------------------------

    /// <summary>IOTLB invalidation, global (G = 01b), with the read/write drain hints DR and DW.</summary>
    public static VtdDescriptor IotlbGlobal(bool drainReads = false, bool drainWrites = false) =>
        new(TypeIotlb | (1UL << GranularityShift) | Drain(drainReads, drainWrites), 0);

    /// <summary>IOTLB invalidation, domain-selective (G = 10b).</summary>
    public static VtdDescriptor IotlbDomain(ushort domainId, bool drainReads = false, bool drainWrites = false) =>
        new(TypeIotlb | (2UL << GranularityShift) | Drain(drainReads, drainWrites) | ((ulong)domainId << DomainShift), 0);

    /// <summary>IOTLB invalidation, page-selective within the domain (G = 11b): 2^<paramref name="addressMask"/> pages
    /// (AM, 0–63) from <paramref name="address"/> (bits 11:0 dropped; the guest aligns it to the range), with the
    /// invalidation hint IH (leaf entries only).</summary>
    public static VtdDescriptor IotlbPages(ushort domainId, ulong address, int addressMask = 0, bool invalidationHint = false,
        bool drainReads = false, bool drainWrites = false)
    {
        CheckField(addressMask, 63, nameof(addressMask));
        return new(TypeIotlb | (3UL << GranularityShift) | Drain(drainReads, drainWrites) | ((ulong)domainId << DomainShift),
            (address & PageAddressMask) | (invalidationHint ? 1UL << InvalidationHintBit : 0) | (ulong)(uint)addressMask);
    }

    // ---- 0x3 device-TLB ---------------------------------------------------------------------------------

    /// <summary>Device-TLB invalidation (no PASID) of the device <paramref name="sourceId"/>: 2^<paramref name="log2Pages"/>
    /// pages (0–52) from <paramref name="address"/>, aligned down to the range, in the ATS size encoding (S = 1 with the
    /// address bits below the range's top set). <paramref name="pfsid"/> (with ECAP.DIT) and <paramref name="mip"/>
    /// (0–31) are the throttling fields.</summary>
    public static VtdDescriptor DeviceTlb(ushort sourceId, ulong address, int log2Pages = 0, ushort pfsid = 0, int mip = 0)
    {
        CheckField(mip, 31, nameof(mip));
        return new(TypeDeviceTlb | Pfsid(pfsid) | ((ulong)(uint)mip << DeviceMipShift) | ((ulong)sourceId << SourceShift),
            SizeEncoded(address, log2Pages, DeviceSizeBit));
    }

    // ---- 0x4 interrupt-entry cache ----------------------------------------------------------------------

    /// <summary>Interrupt-entry-cache invalidation, global (G = 0).</summary>
    public static VtdDescriptor InterruptEntryCacheGlobal() => new(TypeInterruptEntryCache, 0);

    /// <summary>Interrupt-entry-cache invalidation, index-selective (G = 1): 2^<paramref name="indexMask"/> entries (IM,
    /// 0–31) from <paramref name="index"/> (IIDX).</summary>
    public static VtdDescriptor InterruptEntryCacheIndex(ushort index, int indexMask = 0)
    {
        CheckField(indexMask, 31, nameof(indexMask));
        return new(TypeInterruptEntryCache | (1UL << GranularityShift) | ((ulong)(uint)indexMask << IndexMaskShift) | ((ulong)index << SourceShift), 0);
    }

    // ---- 0x5 wait ---------------------------------------------------------------------------------------

    /// <summary>Invalidation wait: with <paramref name="statusWrite"/> (SW) the unit writes <paramref name="statusData"/>
    /// at <paramref name="statusAddress"/> (bits 1:0 dropped); with <paramref name="interrupt"/> (IF) it raises an
    /// invalidation-completion event; FN and PD as given.</summary>
    public static VtdDescriptor Wait(bool statusWrite, bool interrupt, uint statusData = 0, ulong statusAddress = 0, bool fence = false,
        bool pageRequestDrain = false) =>
        new(TypeWait | (interrupt ? 1UL << InterruptFlagBit : 0) | (statusWrite ? 1UL << StatusWriteBit : 0) |
            (fence ? 1UL << FenceBit : 0) | (pageRequestDrain ? 1UL << PageRequestDrainBit : 0) | ((ulong)statusData << StatusDataShift),
            statusAddress & StatusAddressMask);

    // ---- 0x6 PASID-based IOTLB --------------------------------------------------------------------------

    /// <summary>PASID-based IOTLB invalidation, PASID-selective (G = 10b): every non-global entry of
    /// (<paramref name="domainId"/>, <paramref name="pasid"/>).</summary>
    public static VtdDescriptor PasidIotlbPasid(ushort domainId, uint pasid)
    {
        CheckPasid(pasid);
        return new(TypePasidIotlb | (2UL << GranularityShift) | ((ulong)domainId << DomainShift) | ((ulong)pasid << PasidShift), 0);
    }

    /// <summary>PASID-based IOTLB invalidation, page-selective within the PASID (G = 11b): 2^<paramref name="addressMask"/>
    /// pages (AM, 0–63) from <paramref name="address"/>, with the invalidation hint IH.</summary>
    public static VtdDescriptor PasidIotlbPages(ushort domainId, uint pasid, ulong address, int addressMask = 0, bool invalidationHint = false)
    {
        CheckPasid(pasid);
        CheckField(addressMask, 63, nameof(addressMask));
        return new(TypePasidIotlb | (3UL << GranularityShift) | ((ulong)domainId << DomainShift) | ((ulong)pasid << PasidShift),
            (address & PageAddressMask) | (invalidationHint ? 1UL << InvalidationHintBit : 0) | (ulong)(uint)addressMask);
    }

    // ---- 0x7 PASID cache --------------------------------------------------------------------------------

    /// <summary>PASID-cache invalidation, domain-selective (G = 00b): every PASID entry tagged <paramref name="domainId"/>.</summary>
    public static VtdDescriptor PasidCacheDomain(ushort domainId) =>
        new(TypePasidCache | ((ulong)domainId << DomainShift), 0);

    /// <summary>PASID-cache invalidation, PASID-selective (G = 01b).</summary>
    public static VtdDescriptor PasidCachePasid(ushort domainId, uint pasid)
    {
        CheckPasid(pasid);
        return new(TypePasidCache | (1UL << GranularityShift) | ((ulong)domainId << DomainShift) | ((ulong)pasid << PasidShift), 0);
    }

    /// <summary>PASID-cache invalidation, global (G = 11b).</summary>
    public static VtdDescriptor PasidCacheGlobal() => new(TypePasidCache | (3UL << GranularityShift), 0);

    // ---- 0x8 PASID-based device-TLB ---------------------------------------------------------------------

    /// <summary>PASID-based device-TLB invalidation of (<paramref name="sourceId"/>, <paramref name="pasid"/>), or of every
    /// PASID of the device with <paramref name="allPasids"/> (G): 2^<paramref name="log2Pages"/> pages (0–52) from
    /// <paramref name="address"/>, aligned down, in the ATS size encoding (S = QW1 bit 11). <paramref name="pfsid"/> and
    /// <paramref name="mip"/> (0–31) are the throttling fields.</summary>
    public static VtdDescriptor PasidDeviceTlb(ushort sourceId, uint pasid, ulong address, int log2Pages = 0, bool allPasids = false,
        ushort pfsid = 0, int mip = 0)
    {
        CheckPasid(pasid);
        CheckField(mip, 31, nameof(mip));
        return new(TypePasidDeviceTlb | ((ulong)(uint)mip << PasidMipShift) | Pfsid(pfsid) | ((ulong)sourceId << DeviceSourceShift) | ((ulong)pasid << PasidShift),
            SizeEncoded(address, log2Pages, PasidDeviceSizeBit) | (allPasids ? 1UL : 0));
    }

    // ---- helpers ----------------------------------------------------------------------------------------

    private static ulong Drain(bool reads, bool writes) => (reads ? 1UL << DrainReadsBit : 0) | (writes ? 1UL << DrainWritesBit : 0);

    private static ulong Pfsid(ushort pfsid) => ((ulong)(pfsid & 0xF) << PfsidLowShift) | ((ulong)(pfsid >> 4) << PfsidHighShift);

    /// <summary>ATS size encoding: one page is the address with S = 0; 2^n pages (n ≥ 1) is the address aligned to the
    /// range with address bits 12 .. 12 + n − 2 set, bit 12 + n − 1 clear, and S = 1.</summary>
    private static ulong SizeEncoded(ulong address, int log2Pages, int sizeBit)
    {
        CheckField(log2Pages, 52, nameof(log2Pages));
        ulong page = address & PageAddressMask;
        if (log2Pages == 0)
        {
            return page;
        }

        ulong rangeBytes = 1UL << (12 + log2Pages);
        ulong aligned = page & ~(rangeBytes - 1);
        ulong lowOnes = ((1UL << (log2Pages - 1)) - 1) << 12;
        return aligned | lowOnes | (1UL << sizeBit);
    }

    private static void CheckField(int value, int max, string name)
    {
        if ((uint)value > (uint)max)
        {
            ThrowHelper.ArgumentOutOfRange(name, $"must be 0-{max}");
        }
    }

    private static void CheckPasid(uint pasid)
    {
        if (pasid > MaxPasid)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(pasid), "PASID must fit 20 bits");
        }
    }
}
