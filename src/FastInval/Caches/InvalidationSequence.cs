using System.Runtime.CompilerServices;

namespace FastInval.Caches;

/// <summary>
/// The invalidation sequence of one cache: counters that every invalidation bumps before it removes anything, so that
/// a fill prepared from a page walk can tell whether an invalidation that may cover its entry ran since the walk began
/// (the role of KVM's <c>mmu_invalidate_seq</c>). Counters sit at three levels, so unrelated invalidations rarely reject
/// a fill:
/// <list type="bullet">
/// <item><b>global</b>: invalidations that select no key (every domain or device), and <c>Clear</c>;</item>
/// <item><b>key</b> (domain id for the IOTLB, source id for the device TLB and the configuration cache; 4,096 stripes,
/// the key's low 12 bits): invalidations of a whole key, or of a range too long to bump region by region;</item>
/// <item><b>region</b> (key and 2 MiB block of input address, hashed to 8,192 stripes): range invalidations of up to 16
/// blocks. Each such range also bumps its key's <b>range</b> counter, which entries larger than one region check
/// instead of their (many) regions.</item>
/// </list>
/// </summary>
/// <remarks>
/// Writers (the bumps) run under the cache's writer serialization; readers take tokens with acquire loads on any thread.
/// A token is current when none of the counters it sampled moved. Counters are 64-bit and never wrap in practice.
/// </remarks>
internal sealed class InvalidationSequence
{
    public const int KeyStripes = 4096;
    public const int RegionStripes = 8192;
    public const int RegionShift = 21;
    public const int MaxRegionBumps = 16;

    private static int s_nextOwner;

    private readonly int _owner = Interlocked.Increment(ref s_nextOwner);
    // Each key stripe's two counters side by side (the key's at 2k, its range's at 2k + 1): a token reads one line for both.
    private readonly ulong[] _key = new ulong[2 * KeyStripes];
    private readonly ulong[] _region = new ulong[RegionStripes];
    private ulong _global;

    /// <summary>Total bumps so far (diagnostics and tests).</summary>
    public ulong Bumps { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int KeyIndex(uint key) => (int)(key & (KeyStripes - 1)) << 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RegionIndex(uint key, ulong address)
    {
        ulong h = ((address >> RegionShift) * 0x9E37_79B9_7F4A_7C15UL) ^ (key * 0xC2B2_AE3D_27D4_EB4FUL);
        return (int)((h ^ (h >> 29)) >> (64 - 13));
    }

    /// <summary>Reader side: the token for a walk of <paramref name="address"/> under <paramref name="key"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public InvalidationToken Read(uint key, ulong address)
    {
        int k = KeyIndex(key);
        int r = RegionIndex(key, address);
        ulong global = Volatile.Read(ref _global);
        ulong keySeq = Volatile.Read(ref _key[k]);
        ulong rangeSeq = Volatile.Read(ref _key[k + 1]);
        ulong regionSeq = Volatile.Read(ref _region[r]);
        return new InvalidationToken(_owner, key, (uint)r, address >> RegionShift, global, keySeq, rangeSeq, regionSeq);
    }

    /// <summary>Writer side: true when no invalidation that may cover [first, first + 2^sizeLog2) under
    /// <paramref name="key"/> ran since <paramref name="token"/> was read (and the token is this cache's, for this key).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsCurrent(in InvalidationToken token, uint key, ulong first, int sizeLog2)
    {
        if (token.Owner != _owner || token.Key != key)
        {
            return false;
        }

        int k = KeyIndex(key);
        if (Volatile.Read(ref _global) != token.GlobalSequence || Volatile.Read(ref _key[k]) != token.KeySequence)
        {
            return false;
        }

        if (sizeLog2 <= RegionShift)
        {
            // The entry lies in one region: it must be the token's (a token taken for another address proves nothing).
            // Comparing the 2 MiB block itself is exact and needs no rehash: the token's stripe is that block's.
            return (first >> RegionShift) == token.Block && Volatile.Read(ref _region[token.Region]) == token.RegionSequence;
        }

        return Volatile.Read(ref _key[k + 1]) == token.RangeSequence;
    }

    /// <summary>Writer side: every token of the cache goes stale.</summary>
    public void BumpAll()
    {
        Volatile.Write(ref _global, _global + 1);
        Bumps++;
    }

    /// <summary>Writer side: every token of <paramref name="key"/> goes stale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void BumpKey(uint key)
    {
        ref ulong c = ref _key[KeyIndex(key)];
        Volatile.Write(ref c, c + 1);
        Bumps++;
    }

    /// <summary>Writer side: tokens of <paramref name="key"/> whose entries may overlap [first, last] go stale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void BumpRange(uint key, ulong first, ulong last)
    {
        ulong firstRegion = first >> RegionShift;
        ulong lastRegion = last >> RegionShift;
        if (lastRegion - firstRegion >= MaxRegionBumps)
        {
            BumpKey(key);
            return;
        }

        ref ulong range = ref _key[KeyIndex(key) + 1];
        Volatile.Write(ref range, range + 1);
        for (ulong b = firstRegion; ; b++)
        {
            ref ulong c = ref _region[RegionIndex(key, b << RegionShift)];
            Volatile.Write(ref c, c + 1);
            if (b == lastRegion)
            {
                break;
            }
        }

        Bumps++;
    }
}
