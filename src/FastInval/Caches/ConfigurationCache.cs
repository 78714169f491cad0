using System.Runtime.CompilerServices;
using FastInval.Caches;
using FastInval.Internals;
using FastInval.Kernels;

namespace FastInval;

/// <summary>
/// Configuration caches: VT-d context and PASID-table entries, SMMUv3 STEs and CDs, and VT-d interrupt-remapping
/// entries, keyed by (kind, source id, address space) and tagged with a domain, in pinned structure-of-arrays memory.
/// </summary>
/// <remarks>
/// <para>Validity: the kind is exactly one kind; <see cref="ConfigKinds.Context"/>, <see cref="ConfigKinds.StreamTableEntry"/>
/// and <see cref="ConfigKinds.InterruptEntry"/> entries have no address space (<see cref="AddressSpace.None"/>);
/// <see cref="ConfigKinds.PasidEntry"/> and <see cref="ConfigKinds.ContextDescriptor"/> entries have one (≤ <see cref="AddressSpace.MaxId"/>).</para>
/// <para><b>Threading and lifetime.</b> As <see cref="TranslationCache"/>: any thread; lock-free lookups; fills,
/// clears, snapshots and the engine's invalidations serialized by the writer lock inside; <see cref="Dispose"/> safe
/// against calls in flight, and every later call throws <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public sealed class ConfigurationCache : IDisposable
{
    internal readonly SlotStore Store;
    private readonly CacheLifetime _lifetime;

    /// <summary>Creates configuration caches holding up to <paramref name="capacity"/> entries in total.</summary>
    public ConfigurationCache(int capacity)
        : this(capacity, new WriterLock())
    {
    }

    internal ConfigurationCache(int capacity, WriterLock writerLock)
    {
        Store = new SlotStore(capacity, StoreKind.ConfigurationCache);
        _lifetime = new CacheLifetime(nameof(ConfigurationCache), writerLock);
    }

    internal CacheLifetime Lifetime => _lifetime;

    /// <summary>Maximum number of entries.</summary>
    public int Capacity
    {
        get
        {
            _lifetime.ThrowIfDisposed();
            return Store.Capacity;
        }
    }

    /// <summary>Entries cached now.</summary>
    public int Count
    {
        get
        {
            _lifetime.ThrowIfDisposed();
            return Store.Count;
        }
    }

    /// <summary>Pinned bytes owned.</summary>
    public long MemoryBytes
    {
        get
        {
            _lifetime.ThrowIfDisposed();
            return Store.Bytes;
        }
    }

    /// <summary>True for the kinds whose entries carry an address space (PASID entries, CDs).</summary>
    internal static bool HasAddressSpace(ConfigKinds kind) => (kind & (ConfigKinds.PasidEntry | ConfigKinds.ContextDescriptor)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong HashOf(ulong kindBits, uint sourceId, ulong asField) =>
        Caches.TranslationTable.Hash(sourceId, (uint)asField, (int)(kindBits >> ConfigTag.KindShift), 0);

    /// <summary>The invalidation sequence of this cache (key: the source id).</summary>
    internal InvalidationSequence Sequence { get; } = new();

    /// <summary>Caches a configuration entry (writer side).</summary>
    public FillResult Fill(in ConfigEntry entry)
    {
        if (!IsWellFormed(in entry))
        {
            _lifetime.ThrowIfDisposed();
            return FillResult.Rejected;
        }

        using (_lifetime.EnterWrite())
        {
            return Insert(in entry);
        }
    }

    /// <summary>
    /// Caches an entry read from guest memory after <paramref name="token"/> was taken, unless an invalidation that may
    /// cover it ran since then (writer side); false, and nothing changed, for a malformed entry or a stale token. See
    /// <see cref="InvalidationToken"/> and <see cref="TranslationCache.TryFill(in TranslationEntry, in InvalidationToken)"/>.
    /// </summary>
    public bool TryFill(in ConfigEntry entry, in InvalidationToken token) => TryFill(in entry, in token, out _);

    /// <summary>As <see cref="TryFill(in ConfigEntry, in InvalidationToken)"/>, also giving the outcome
    /// (<see cref="FillResult.Rejected"/>, <see cref="FillResult.Stale"/>, or what <see cref="Fill"/> returns).</summary>
    public bool TryFill(in ConfigEntry entry, in InvalidationToken token, out FillResult result)
    {
        if (!IsWellFormed(in entry))
        {
            _lifetime.ThrowIfDisposed();
            result = FillResult.Rejected;
            return false;
        }

        using (_lifetime.EnterWrite())
        {
            if (!Sequence.IsCurrent(in token, entry.SourceId, 0, 0))
            {
                Store.CountStale();
                result = FillResult.Stale;
                return false;
            }

            result = Insert(in entry);
            return true;
        }
    }

    /// <summary>The token for reading the configuration of <paramref name="sourceId"/> from guest memory: take it before
    /// the read, pass it to <see cref="TryFill(in ConfigEntry, in InvalidationToken)"/>.</summary>
    public InvalidationToken GetInvalidationToken(uint sourceId)
    {
        _lifetime.ThrowIfDisposed();
        return Sequence.Read(sourceId, 0);
    }

    /// <summary>As <see cref="TryLookup(ConfigKinds, uint, uint, out ConfigEntry)"/>; on a miss also returns the token for
    /// the read that follows (on a hit, <paramref name="token"/> is <c>default</c>).</summary>
    public bool TryLookup(ConfigKinds kind, uint sourceId, uint addressSpaceId, out ConfigEntry entry, out InvalidationToken token)
    {
        if (TryLookup(kind, sourceId, addressSpaceId, out entry))
        {
            token = default;
            return true;
        }

        token = Sequence.Read(sourceId, 0);
        return false;
    }

    private static bool IsWellFormed(in ConfigEntry entry)
    {
        ConfigKinds kind = entry.Kind;
        if (kind == ConfigKinds.None || (kind & ~ConfigKinds.All) != 0 || ((byte)kind & ((byte)kind - 1)) != 0)
        {
            return false;
        }

        return HasAddressSpace(kind) ? entry.AddressSpaceId <= AddressSpace.MaxId : entry.AddressSpaceId == AddressSpace.None;
    }

    private FillResult Insert(in ConfigEntry entry)
    {
        ConfigKinds kind = entry.Kind;
        ulong asField = TranslationTag.EncodeAddressSpace(entry.AddressSpaceId);
        ulong kindBits = ConfigTag.Kind(kind);
        ulong tag = ConfigTag.ValidBit | kindBits | ConfigTag.Domain(entry.DomainId) | asField;
        ulong hash = HashOf(kindBits, entry.SourceId, asField);
        const ulong identity = ~ConfigTag.DomainMask;
        int existing = Store.Find(hash, identity, tag & identity, entry.SourceId, entry.SourceId, out int bucket);
        if (existing >= 0)
        {
            Store.Update(bucket, existing, tag, entry.Value);
            return FillResult.Replaced;
        }

        FillResult result = FillResult.Inserted;
        if (Store.IsFull)
        {
            Remove(Store.ClockVictim());
            result = FillResult.InsertedAfterEviction;
        }

        int slot = Store.Allocate(out bool dead, out ulong deadTag);
        if (dead)
        {
            Store.UnlinkDead(HashOf(deadTag & ConfigTag.KindMask, (uint)Store.First(slot), deadTag & ConfigTag.AddressSpaceMask), slot);
        }

        Store.Link(hash, slot, tag, entry.SourceId, entry.SourceId, entry.Value);
        return result;
    }

    /// <summary>Finds the cached entry of (kind, source id, address space).</summary>
    public bool TryLookup(ConfigKinds kind, uint sourceId, uint addressSpaceId, out ConfigEntry entry)
    {
        ReaderSlot slot = _lifetime.EnterRead();
        try
        {
            return LookupInside(kind, sourceId, addressSpaceId, out entry);
        }
        finally
        {
            CacheLifetime.ExitRead(slot);
        }
    }

    private bool LookupInside(ConfigKinds kind, uint sourceId, uint addressSpaceId, out ConfigEntry entry)
    {
        if (kind == ConfigKinds.None || (kind & ~ConfigKinds.All) != 0 || ((byte)kind & ((byte)kind - 1)) != 0 ||
            !AddressSpace.IsValid(addressSpaceId))
        {
            entry = default;
            return false;
        }

        ulong asField = TranslationTag.EncodeAddressSpace(addressSpaceId);
        ulong kindBits = ConfigTag.Kind(kind);
        const ulong identity = ~ConfigTag.DomainMask;
        bool hit = Store.TryRead(HashOf(kindBits, sourceId, asField), identity, ConfigTag.ValidBit | kindBits | asField,
            sourceId, 0, out ulong tag, out ulong value);
        Store.CountLookup(hit);
        if (!hit)
        {
            entry = default;
            return false;
        }

        entry = new ConfigEntry(kind, sourceId, addressSpaceId, (ushort)((tag & ConfigTag.DomainMask) >> ConfigTag.DomainShift), value);
        return true;
    }

    internal void Remove(int slot)
    {
        ulong tag = Store.Tag(slot);
        Store.Unlink(HashOf(tag & ConfigTag.KindMask, (uint)Store.First(slot), tag & ConfigTag.AddressSpaceMask), slot);
    }

    /// <summary>Removes every entry (writer side).</summary>
    public void Clear()
    {
        using (_lifetime.EnterWrite())
        {
            Sequence.BumpAll();
            Store.Clear();
        }
    }

    [SkipLocalsInit] // the hits buffer is written by the kernel before it is read
    internal int RemoveByScan<TOp>(in TOp op, TagScanKernel kernel) where TOp : struct, IMatchOp
    {
        Span<int> hits = stackalloc int[256];
        nuint i = 0;
        nuint end = Store.ScanEnd;
        int removed = 0;
        while (i < end)
        {
            int n = TagScan.Run(kernel, in op, ref Store.TagRef, ref Store.FirstRef, ref Store.LastRef, i, end, hits, out i);
            for (int k = 0; k < n; k++)
            {
                Store.Kill(hits[k]);
            }

            removed += n;
        }

        return removed;
    }

    /// <summary>Removes the entries <paramref name="op"/> selects among those of one (kind, source id, address space) key.</summary>
    internal int RemoveByProbe(in RangeOp op, ConfigKinds kind, uint sourceId, uint addressSpaceId)
    {
        ulong asField = TranslationTag.EncodeAddressSpace(addressSpaceId);
        PathCursor cursor = Store.PathOf(HashOf(ConfigTag.Kind(kind), sourceId, asField));
        int removed = 0;
        while (Store.NextOnPath(ref cursor, out int s))
        {
            if (op.Match(Store.Tag(s), Store.First(s), Store.Last(s)))
            {
                Remove(s);
                removed++;
            }
        }

        return removed;
    }

    /// <summary>Every cached entry (writer side; allocates).</summary>
    public ConfigEntry[] ToArray()
    {
        using (_lifetime.EnterWrite())
        {
            return ToArrayLocked();
        }
    }

    private ConfigEntry[] ToArrayLocked()
    {
        var result = new List<ConfigEntry>(Store.Count);
        int end = (int)Store.ScanEnd;
        for (int s = 0; s < end; s++)
        {
            ulong tag = Store.Tag(s);
            if ((tag & ConfigTag.ValidBit) != 0)
            {
                result.Add(new ConfigEntry((ConfigKinds)((tag & ConfigTag.KindMask) >> ConfigTag.KindShift), (uint)Store.First(s),
                    TranslationTag.DecodeAddressSpace(tag), (ushort)((tag & ConfigTag.DomainMask) >> ConfigTag.DomainShift), Store.Value(s)));
            }
        }

        return result.ToArray();
    }

    /// <summary>Frees the native storage. Safe while lookups run on other threads: it waits for those inside to leave,
    /// and every later call (lookups included) throws <see cref="ObjectDisposedException"/>. Idempotent.</summary>
    public void Dispose() => _lifetime.DisposeStorage(Store.Dispose);
}
