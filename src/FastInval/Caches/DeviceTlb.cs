using System.Runtime.CompilerServices;
using FastInval.Caches;
using FastInval.Internals;

namespace FastInval;

/// <summary>
/// Device TLBs (PCIe ATS address-translation caches) of every device behind one IOMMU: entries keyed by
/// (source id, PASID, span), in pinned structure-of-arrays memory.
/// </summary>
/// <remarks>
/// <para>Hashing ignores the PASID, so a range invalidation of a device probes each covered block once and finds every
/// PASID there. Any power-of-two span from 4 KiB is allowed (ATS translation completions carry arbitrary sizes).</para>
/// <para><b>Threading and lifetime.</b> As <see cref="TranslationCache"/>: any thread; lock-free lookups; fills,
/// clears, snapshots and the engine's invalidations serialized by the writer lock inside; <see cref="Dispose"/> safe
/// against calls in flight, and every later call throws <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public sealed class DeviceTlb : IDisposable
{
    private static readonly ulong[] s_sizeBits = BuildSizeBits();
    private const ulong CommonBits = TranslationTag.ValidBit | (1UL << TranslationTag.StageShift) | TranslationTag.LeafBit;

    internal readonly TranslationTable Table;
    private readonly CacheLifetime _lifetime;

    /// <summary>Creates device TLBs holding up to <paramref name="capacity"/> entries in total.</summary>
    public DeviceTlb(int capacity)
        : this(capacity, new WriterLock())
    {
    }

    internal DeviceTlb(int capacity, WriterLock writerLock)
    {
        Table = new TranslationTable(capacity, keysAddressSpace: false, variableSizes: true);
        _lifetime = new CacheLifetime(nameof(DeviceTlb), writerLock);
    }

    internal CacheLifetime Lifetime => _lifetime;

    /// <summary>Maximum number of entries.</summary>
    public int Capacity
    {
        get
        {
            _lifetime.ThrowIfDisposed();
            return Table.Capacity;
        }
    }

    /// <summary>Entries cached now.</summary>
    public int Count
    {
        get
        {
            _lifetime.ThrowIfDisposed();
            return Table.Count;
        }
    }

    /// <summary>Pinned bytes owned.</summary>
    public long MemoryBytes
    {
        get
        {
            _lifetime.ThrowIfDisposed();
            return Table.Store.Bytes;
        }
    }

    /// <summary>Caches an ATS translation (writer side).</summary>
    public FillResult Fill(in DeviceTlbEntry entry)
    {
        if (!TryEncode(in entry, out ulong tag))
        {
            _lifetime.ThrowIfDisposed();
            return FillResult.Rejected;
        }

        using (_lifetime.EnterWrite())
        {
            return Table.Fill(tag, entry.InputAddress, entry.SizeLog2, entry.OutputAddress | (ulong)entry.Rights);
        }
    }

    private static bool TryEncode(in DeviceTlbEntry entry, out ulong tag)
    {
        ulong span = entry.SizeLog2 is >= 12 and <= 63 ? (1UL << entry.SizeLog2) - 1 : 0;
        if (span == 0 || (entry.InputAddress & span) != 0 || (entry.OutputAddress & span) != 0 ||
            !AddressSpace.IsValid(entry.Pasid) || (uint)entry.Rights > 0xFFF)
        {
            tag = 0;
            return false;
        }

        ulong asField = entry.Global ? TranslationTag.GlobalBit : TranslationTag.EncodeAddressSpace(entry.Pasid);
        tag = CommonBits | s_sizeBits[entry.SizeLog2] | TranslationTag.Space(entry.SourceId) | asField;
        return true;
    }

    /// <summary>
    /// Caches an ATS translation requested after <paramref name="token"/> was taken, unless an invalidation that may
    /// cover it ran since then (writer side); false, and nothing changed, for a malformed entry or a stale token. See
    /// <see cref="InvalidationToken"/> and <see cref="TranslationCache.TryFill(in TranslationEntry, in InvalidationToken)"/>.
    /// </summary>
    public bool TryFill(in DeviceTlbEntry entry, in InvalidationToken token) => TryFill(in entry, in token, out _);

    /// <summary>As <see cref="TryFill(in DeviceTlbEntry, in InvalidationToken)"/>, also giving the outcome
    /// (<see cref="FillResult.Rejected"/>, <see cref="FillResult.Stale"/>, or what <see cref="Fill"/> returns).</summary>
    public bool TryFill(in DeviceTlbEntry entry, in InvalidationToken token, out FillResult result)
    {
        if (!TryEncode(in entry, out ulong tag))
        {
            _lifetime.ThrowIfDisposed();
            result = FillResult.Rejected;
            return false;
        }

        using (_lifetime.EnterWrite())
        {
            if (!Table.Sequence.IsCurrent(in token, entry.SourceId, entry.InputAddress, entry.SizeLog2))
            {
                Table.Store.CountStale();
                result = FillResult.Stale;
                return false;
            }

            result = Table.Fill(tag, entry.InputAddress, entry.SizeLog2, entry.OutputAddress | (ulong)entry.Rights);
            return true;
        }
    }

    /// <summary>The token for a translation request of <paramref name="address"/> by <paramref name="sourceId"/>: take it
    /// before the request, pass it to <see cref="TryFill(in DeviceTlbEntry, in InvalidationToken)"/>.</summary>
    public InvalidationToken GetInvalidationToken(uint sourceId, ulong address)
    {
        _lifetime.ThrowIfDisposed();
        return Table.Sequence.Read(sourceId, address);
    }

    /// <summary>As <see cref="TryLookup(uint, uint, ulong, out Translation)"/>; on a miss also returns the token for the
    /// translation request that follows (on a hit, <paramref name="token"/> is <c>default</c>).</summary>
    public bool TryLookup(uint sourceId, uint pasid, ulong address, out Translation translation, out InvalidationToken token)
    {
        if (TryLookup(sourceId, pasid, address, out translation))
        {
            token = default;
            return true;
        }

        token = Table.Sequence.Read(sourceId, address);
        return false;
    }

    /// <summary>Finds the device's cached translation of <paramref name="address"/> for <paramref name="pasid"/>
    /// (or <see cref="AddressSpace.None"/>); a global entry of the device answers for every PASID. The smallest span
    /// answers first, and at equal span the non-global entry; an invalid PASID is a miss.</summary>
    public bool TryLookup(uint sourceId, uint pasid, ulong address, out Translation translation)
    {
        ReaderSlot slot = _lifetime.EnterRead();
        try
        {
            return LookupInside(sourceId, pasid, address, out translation);
        }
        finally
        {
            CacheLifetime.ExitRead(slot);
        }
    }

    /// <summary><see cref="TryLookup(uint, uint, ulong, out Translation)"/> for a caller that itself keeps the cache from
    /// being disposed for the whole call (see <see cref="TranslationCache.TryLookupPinned"/>): no reader slot.</summary>
    internal bool TryLookupPinned(uint sourceId, uint pasid, ulong address, out Translation translation)
    {
        _lifetime.ThrowIfDisposed();
        return LookupInside(sourceId, pasid, address, out translation);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool LookupInside(uint sourceId, uint pasid, ulong address, out Translation translation)
    {
        if (!AddressSpace.IsValid(pasid))
        {
            translation = default;
            return false;
        }

        bool hit = Table.TryLookup(CommonBits | TranslationTag.Space(sourceId), sourceId, pasid, address, ulong.MaxValue, s_sizeBits,
            leaf: true, out ulong tag, out ulong first, out int sizeLog2, out ulong value);
        Table.Store.CountLookup(hit);
        if (!hit)
        {
            translation = default;
            return false;
        }

        translation = new Translation((value & ~0xFFFUL) + (address - first), first, (AccessRights)(value & 0xFFF),
            (byte)sizeLog2, (tag & TranslationTag.GlobalBit) != 0);
        return true;
    }

    /// <summary>Removes every entry (writer side).</summary>
    public void Clear()
    {
        using (_lifetime.EnterWrite())
        {
            Table.Clear();
        }
    }

    /// <summary>Every cached entry (writer side; allocates).</summary>
    public DeviceTlbEntry[] ToArray()
    {
        using (_lifetime.EnterWrite())
        {
            return ToArrayLocked();
        }
    }

    private DeviceTlbEntry[] ToArrayLocked()
    {
        var raw = new (ulong Tag, ulong First, ulong Last, ulong Value)[Table.Count];
        int n = Table.Snapshot(raw);
        var result = new DeviceTlbEntry[n];
        for (int i = 0; i < n; i++)
        {
            (ulong tag, ulong first, ulong last, ulong value) = raw[i];
            bool global = (tag & TranslationTag.GlobalBit) != 0;
            result[i] = new DeviceTlbEntry(TranslationTag.SpaceOf(tag), global ? AddressSpace.None : TranslationTag.DecodeAddressSpace(tag),
                first, value & ~0xFFFUL, (byte)(System.Numerics.BitOperations.Log2(last - first) + 1), (AccessRights)(value & 0xFFF), global);
        }

        return result;
    }

    /// <summary>Frees the native storage. Safe while lookups run on other threads: it waits for those inside to leave,
    /// and every later call (lookups included) throws <see cref="ObjectDisposedException"/>. Idempotent.</summary>
    public void Dispose() => _lifetime.DisposeStorage(Table.Dispose);

    private static ulong[] BuildSizeBits()
    {
        var bits = new ulong[64];
        Array.Fill(bits, (ulong)Granule.Size4K << TranslationTag.GranuleShift);
        return bits;
    }
}
