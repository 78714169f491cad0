using System.Numerics;

namespace FastInval.Uapi;

/// <summary>
/// The VT-d page-selective invalidation block of a guest range, as Linux v6.10+ computes it for a nested domain
/// (<c>cache_tag_flush_range</c> → <c>calculate_psi_aligned_address</c>; spec/iommufd-uapi.md §6.3,
/// spec/vtd-queued-invalidation.md §4.4). The hardware invalidates 2^mask pages starting at an address aligned to
/// their size, so a range is widened to the smallest such block that contains it and is at least as large as its page
/// count rounded up to a power of two; a mask of 52 or more means "everything".
/// </summary>
/// <remarks>
/// All arithmetic is the kernel's 64-bit arithmetic, wrap-around included:
/// <list type="bullet">
/// <item>end = addr + (npages &lt;&lt; 12) − 1. The newest kernels send [0, 2^64 − 1] straight to "everything"
/// (this is how addr 0 with npages 0, or any npages that is a multiple of 2^52, ends).</item>
/// <item>The page count is (npages &lt;&lt; 12) &gt;&gt; 12, i.e. npages modulo 2^52 (addr is 4 KiB aligned).</item>
/// <item>A page count of 0 (addr ≠ 0 and npages a multiple of 2^52, e.g. npages = 0) makes the kernel round 0 up to a
/// power of two as <c>1UL &lt;&lt; 64</c>, which x86-64 executes as <c>1 &lt;&lt; 0</c> = 1: one page at addr. FastInval
/// follows that (over-invalidation is harmless).</item>
/// <item>If the start page is not aligned to the rounded count, the mask grows to the lowest bit above it where the
/// first and last page numbers agree (the last page number may carry past bit 52; then no bit agrees below 64, or the
/// agreeing bit is ≥ 52: everything).</item>
/// </list>
/// </remarks>
internal static class VtdAddressMask
{
    /// <summary>The mask value at and above which the invalidation covers every address (MAX_AGAW_PFN_WIDTH).</summary>
    public const int All = 52;

    /// <summary>The mask (log2 of the block's page count; ≥ <see cref="All"/> = everything) and the block's first
    /// address for the 4 KiB-aligned <paramref name="addr"/> and <paramref name="npages"/> of a VT-d S1 entry.</summary>
    public static int Compute(ulong addr, ulong npages, out ulong blockAddress)
    {
        ulong end = addr + (npages << 12) - 1;
        if (addr == 0 && end == ulong.MaxValue)
        {
            blockAddress = 0;
            return All;
        }

        ulong pages = (npages << 12) >> 12;
        ulong rounded = pages <= 1 ? 1 : 1UL << (64 - BitOperations.LeadingZeroCount(pages - 1));
        ulong lowBits = rounded - 1;
        int mask = BitOperations.TrailingZeroCount(rounded);
        ulong pfn = addr >> 12;
        if ((pfn & lowBits) != 0)
        {
            ulong endPfn = pfn + pages - 1;
            ulong shared = ~(pfn ^ endPfn) & ~lowBits;
            mask = shared != 0 ? BitOperations.TrailingZeroCount(shared) : All;
        }

        blockAddress = mask >= All ? 0 : addr & ~((4096UL << mask) - 1);
        return mask;
    }
}
