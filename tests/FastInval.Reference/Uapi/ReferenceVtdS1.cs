namespace FastInval.Reference.Uapi;

/// <summary>
/// The reference's VT-d stage-1 conversion, written from spec/iommufd-uapi.md §6.3 without bit tricks: the range of an
/// entry, the page count rounded up to a power of two, then the smallest naturally aligned block of at least that many
/// pages that holds the first and the last page, found by trying block sizes one after another.
/// </summary>
public static class ReferenceVtdS1
{
    /// <summary>The widened block: <c>All</c> when it covers every address (mask ≥ 52), else [First, Last].</summary>
    public readonly record struct Block(bool All, ulong First, ulong Last, int Mask);

    /// <summary>The block the kernel (v6.10+, newest) invalidates for a validated entry (addr 4 KiB aligned).</summary>
    public static Block Compute(ulong addr, ulong npages)
    {
        // 64-bit arithmetic of the kernel: the byte count and the last byte wrap modulo 2^64.
        ulong byteCount = unchecked(npages * 4096UL);
        ulong lastByte = unchecked(addr + byteCount - 1);
        if (addr == 0 && lastByte == ulong.MaxValue)
        {
            return new Block(true, 0, ulong.MaxValue, 52); // the newest kernels' explicit "whole range"
        }

        ulong pages = byteCount / 4096;
        if (pages == 0)
        {
            pages = 1; // rounding 0 up shifts by 64, which x86-64 executes as a shift by 0: one page
        }

        int roundedLog2 = 0;
        while ((1UL << roundedLog2) < pages)
        {
            roundedLog2++;
        }

        ulong firstPage = addr / 4096;
        ulong lastPage = firstPage + pages - 1;
        for (int mask = roundedLog2; mask < 64; mask++)
        {
            if (firstPage >> mask == lastPage >> mask)
            {
                if (mask >= 52)
                {
                    return new Block(true, 0, ulong.MaxValue, mask);
                }

                ulong blockFirstPage = (firstPage >> mask) << mask;
                ulong first = blockFirstPage * 4096;
                ulong size = (1UL << mask) * 4096;
                return new Block(false, first, first + size - 1, mask);
            }
        }

        return new Block(true, 0, ulong.MaxValue, 64);
    }

    /// <summary>The descriptors of one entry on a nested domain: the PASID-based IOTLB invalidation of (DID, PASID 0), then
    /// one device-TLB invalidation without PASID per ATS device, in attach order.</summary>
    public static List<InvalidationDescriptor> Descriptors(ushort did, IReadOnlyList<uint> atsSourceIds, ulong addr, ulong npages, bool leaf)
    {
        Block b = Compute(addr, npages);
        var list = new List<InvalidationDescriptor>();
        if (b.All)
        {
            list.Add(InvalidationDescriptor.IotlbAddressSpace(did, 0, StageMask.FirstStage));
        }
        else
        {
            list.Add(InvalidationDescriptor.IotlbRange(did, 0, b.First, b.Last, leafOnly: leaf, includeGlobal: true, stages: StageMask.FirstStage));
        }

        foreach (uint sid in atsSourceIds)
        {
            list.Add(InvalidationDescriptor.DeviceTlb(sid, AddressSpace.None, b.All ? 0 : b.First, b.All ? ulong.MaxValue : b.Last));
        }

        return list;
    }
}
