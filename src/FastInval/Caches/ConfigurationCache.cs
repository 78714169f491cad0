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
/// <para><b>Threading.</b> As <see cref="TranslationCache"/>: concurrent <see cref="TryLookup(ConfigKinds, uint, uint, out ConfigEntry)"/> with one serialized writer.</para>
/// </remarks>
public sealed class ConfigurationCache : IDisposable
{
    internal readonly SlotStore Store;

    /// <summary>Creates configuration caches holding up to <paramref name="capacity"/> entries in total.</summary>
    public ConfigurationCache(int capacity) => Store = new SlotStore(capacity);

    /// <summary>Maximum number of entries.</summary>
    public int Capacity => Store.Capacity;

    /// <summary>Entries cached now.</summary>
    public int Count => Store.Count;

    /// <summary>Pinned bytes owned.</summary>
    public long MemoryBytes => Store.Bytes;

    /// <summary>True for the kinds whose entries carry an address space (PASID entries, CDs).</summary>
    internal static bool HasAddressSpace(ConfigKinds kind) => (kind & (ConfigKinds.PasidEntry | ConfigKinds.ContextDescriptor)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int BucketOf(ulong kindBits, uint sourceId, ulong asField) =>
        Store.BucketOf(Caches.TranslationTable.Hash(sourceId, (uint)asField, (int)(kindBits >> ConfigTag.KindShift), 0));

    /// <summary>The invalidation sequence of this cache (key: the source id).</summary>
    internal InvalidationSequence Sequence { get; } = new();

    /// <summary>Caches a configuration entry (writer side).</summary>
    public FillResult Fill(in ConfigEntry entry) => IsWellFormed(in entry) ? Insert(in entry) : FillResult.Rejected;

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
            result = FillResult.Rejected;
            return false;
        }

        if (!Sequence.IsCurrent(in token, entry.SourceId, 0, 0))
        {
            result = FillResult.Stale;
            return false;
        }

        result = Insert(in entry);
        return true;
    }

    /// <summary>The token for reading the configuration of <paramref name="sourceId"/> from guest memory: take it before
    /// the read, pass it to <see cref="TryFill(in ConfigEntry, in InvalidationToken)"/>.</summary>
    public InvalidationToken GetInvalidationToken(uint sourceId) => Sequence.Read(sourceId, 0);

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
        int bucket = BucketOf(kindBits, entry.SourceId, asField);
        const ulong identity = ~ConfigTag.DomainMask;
        for (int s = Store.Head(bucket); s >= 0; s = Store.Next(s))
        {
            if ((Store.Tag(s) & identity) == (tag & identity) && Store.First(s) == entry.SourceId)
            {
                Store.Update(bucket, s, tag, entry.Value);
                return FillResult.Replaced;
            }
        }

        FillResult result = FillResult.Inserted;
        if (Store.IsFull)
        {
            Remove(Store.ClockVictim());
            result = FillResult.InsertedAfterEviction;
        }

        int slot = Store.Allocate(out ulong deadTag);
        if (deadTag != 0)
        {
            Store.UnlinkDead(BucketOf(deadTag & ConfigTag.KindMask, (uint)Store.First(slot), deadTag & ConfigTag.AddressSpaceMask), slot);
        }

        Store.Link(bucket, slot, tag, entry.SourceId, entry.SourceId, entry.Value);
        return result;
    }

    /// <summary>Finds the cached entry of (kind, source id, address space).</summary>
    public bool TryLookup(ConfigKinds kind, uint sourceId, uint addressSpaceId, out ConfigEntry entry)
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
        if (!Store.TryRead(BucketOf(kindBits, sourceId, asField), identity, ConfigTag.ValidBit | kindBits | asField,
                sourceId, 0, out ulong tag, out ulong value))
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
        Store.Unlink(BucketOf(tag & ConfigTag.KindMask, (uint)Store.First(slot), tag & ConfigTag.AddressSpaceMask), slot);
    }

    /// <summary>Removes every entry (writer side).</summary>
    public void Clear()
    {
        Sequence.BumpAll();
        Store.Clear();
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
        int bucket = BucketOf(ConfigTag.Kind(kind), sourceId, asField);
        int removed = 0;
        for (int s = Store.Head(bucket); s >= 0;)
        {
            int next = Store.Next(s);
            if (op.Match(Store.Tag(s), Store.First(s), Store.Last(s)))
            {
                Remove(s);
                removed++;
            }

            s = next;
        }

        return removed;
    }

    /// <summary>Every cached entry (writer side; allocates).</summary>
    public ConfigEntry[] ToArray()
    {
        var result = new List<ConfigEntry>(Count);
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

    /// <inheritdoc/>
    public void Dispose() => Store.Dispose();
}
