using System.Runtime.InteropServices;

namespace FastInval;

/// <summary>
/// A snapshot of a cache's invalidation sequence, taken before a page walk (by a lookup that misses, or explicitly)
/// and handed to the cache's <c>TryFill</c> with the walk's result. <c>TryFill</c> inserts the entry only if no
/// invalidation that may cover it ran since the token was taken; otherwise the walk may have read a page-table entry
/// the guest had already changed and invalidated, and the caller must walk again.
/// </summary>
/// <remarks>
/// <para>This closes the window between a lookup miss and the fill of its walk's result (the protocol KVM runs with
/// <c>mmu_invalidate_seq</c> and <c>mmu_invalidate_retry</c>): every invalidation advances the sequence of what it may
/// cover before it removes anything, so an entry built from a walk that raced an invalidation is either rejected, or
/// was inserted before the invalidation and is removed by it.</para>
/// <para>A token belongs to one cache and one key (domain id for the IOTLB, source id for device TLBs and
/// configuration caches) and, for entries of at most 2 MiB, to the 2 MiB region of the address it was taken for.
/// <c>TryFill</c> with a token of another cache, key or region, or with <c>default</c>, returns false. Rejections are
/// conservative: an invalidation of another key or region may share a counter stripe (4,096 key stripes, 8,192 region
/// stripes) and reject a fill it did not touch; it never lets a stale fill through.</para>
/// <para>A token is a plain value (no allocation); it may be kept, copied and used on any thread.</para>
/// </remarks>
[StructLayout(LayoutKind.Auto)]
public readonly struct InvalidationToken
{
    internal readonly ulong GlobalSequence;
    internal readonly ulong KeySequence;
    internal readonly ulong RangeSequence;
    internal readonly ulong RegionSequence;
    internal readonly ulong Block; // the 2 MiB block (address >> 21) the token was taken for
    internal readonly int Owner;
    internal readonly uint Key;
    internal readonly uint Region;

    internal InvalidationToken(int owner, uint key, uint region, ulong block, ulong global, ulong keySequence, ulong rangeSequence, ulong regionSequence)
    {
        Owner = owner;
        Key = key;
        Region = region;
        Block = block;
        GlobalSequence = global;
        KeySequence = keySequence;
        RangeSequence = rangeSequence;
        RegionSequence = regionSequence;
    }

    /// <summary>False for <c>default</c>: such a token never lets a fill through.</summary>
    public bool IsValid => Owner != 0;
}
