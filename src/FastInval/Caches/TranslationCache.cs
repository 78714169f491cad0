using System.Runtime.CompilerServices;
using FastInval.Internals;

namespace FastInval;

/// <summary>
/// The IOTLB: leaf translations and paging-structure entries of every stage, tagged with domain (DID / VMID),
/// address space (PASID / ASID), global bit, stage, granule and level, in pinned structure-of-arrays memory.
/// </summary>
/// <remarks>
/// <para>Lookups are O(1) in the capacity: one hash probe per span present among the cached leaves (at most the
/// handful of page and block sizes in use). Invalidation goes through <see cref="InvalidationEngine"/>.</para>
/// <para><b>Threading.</b> Every member may be called from any thread. Lookups (<c>TryLookup</c>,
/// <see cref="TryLookupTable"/>) take no lock and run concurrently with each other and with writers. Writers (<see cref="Fill"/>,
/// <c>TryFill</c>, <see cref="Clear"/>, <see cref="CopyTo"/>, <see cref="ToArray"/>, and the owning engine's
/// <c>Execute</c>) are serialized by a writer lock inside the cache (one lock per engine, shared by its three caches).
/// A lookup never returns a torn entry, and never returns an entry whose invalidation completed before the lookup
/// started; with <c>TryFill</c>, no entry from a walk that raced an invalidation survives it (see
/// <see cref="InvalidationToken"/>).</para>
/// <para><b>Lifetime.</b> <see cref="Dispose"/> may race lookups and writers on other threads: it waits for the calls
/// inside the cache to leave and frees the storage afterwards; every call after it throws
/// <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public sealed class TranslationCache : IDisposable
{
    internal readonly Caches.TranslationTable Table;
    private readonly Caches.CacheLifetime _lifetime;

    // Granule and level bits of the tag for each span (0 = no level of any granule has that span).
    private static readonly ulong[] s_sizeBits = BuildSizeBits();

    /// <summary>Creates an IOTLB holding up to <paramref name="capacity"/> entries (1 to 2^28).</summary>
    public TranslationCache(int capacity)
        : this(capacity, new Caches.WriterLock())
    {
    }

    internal TranslationCache(int capacity, Caches.WriterLock writerLock)
    {
        Table = new Caches.TranslationTable(capacity, keysAddressSpace: true, variableSizes: false);
        _lifetime = new Caches.CacheLifetime(nameof(TranslationCache), writerLock);
    }

    internal Caches.CacheLifetime Lifetime => _lifetime;

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

    /// <summary>Pinned bytes owned (all columns and the hash index).</summary>
    public long MemoryBytes
    {
        get
        {
            _lifetime.ThrowIfDisposed();
            return Table.Store.Bytes;
        }
    }

    internal static ReadOnlySpan<ulong> SizeBits => s_sizeBits;

    /// <summary>Caches an entry (writer side). Malformed entries are rejected, see <see cref="TranslationEntry"/>.</summary>
    public FillResult Fill(in TranslationEntry entry)
    {
        if (!TryEncode(in entry, out ulong tag, out ulong value))
        {
            _lifetime.ThrowIfDisposed();
            return FillResult.Rejected;
        }

        using (_lifetime.EnterWrite())
        {
            return Table.Fill(tag, entry.InputAddress, entry.SizeLog2, value);
        }
    }

    /// <summary>Benchmark hook: <see cref="Fill"/> without the writer lock, to measure the lock's cost side by side.
    /// The caller must be the only writer.</summary>
    internal FillResult FillUnlocked(in TranslationEntry entry) =>
        TryEncode(in entry, out ulong tag, out ulong value) ? Table.Fill(tag, entry.InputAddress, entry.SizeLog2, value) : FillResult.Rejected;

    /// <summary>Benchmark hook: a leaf lookup without the lifetime guard, to measure the guard's cost side by side.
    /// The caller must not race <see cref="Dispose"/>.</summary>
    internal bool TryLookupUnguarded(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, out Translation translation) =>
        LookupInside(stage, domainId, addressSpaceId, address, ulong.MaxValue, leaf: true, out translation);

    /// <summary>
    /// Caches an entry built from a page walk that began after <paramref name="token"/> was taken, unless an
    /// invalidation that may cover the entry ran since then (writer side). Returns false, and changes nothing, when the
    /// entry is malformed or the token is stale; see <see cref="InvalidationToken"/>.
    /// </summary>
    /// <remarks>The DMA path: <see cref="TryLookup(TranslationStage, ushort, uint, ulong, out Translation, out InvalidationToken)"/>
    /// misses and returns a token; the caller walks the guest page table without any lock; <c>TryFill</c> with the
    /// token either inserts the walk's result or reports that the walk may have read a changed entry (walk again, or
    /// use the result for this one access without caching it). An entry inserted here is never left behind by an
    /// invalidation that completed before a later lookup started.</remarks>
    public bool TryFill(in TranslationEntry entry, in InvalidationToken token) => TryFill(in entry, in token, out _);

    /// <summary>As <see cref="TryFill(in TranslationEntry, in InvalidationToken)"/>, also giving the outcome:
    /// <see cref="FillResult.Rejected"/> for a malformed entry, <see cref="FillResult.Stale"/> for a stale token, or what
    /// <see cref="Fill"/> returns.</summary>
    public bool TryFill(in TranslationEntry entry, in InvalidationToken token, out FillResult result)
    {
        if (!TryEncode(in entry, out ulong tag, out ulong value))
        {
            _lifetime.ThrowIfDisposed();
            result = FillResult.Rejected;
            return false;
        }

        using (_lifetime.EnterWrite())
        {
            // Checked under the writer lock, which every invalidation holds while it advances the sequence and removes.
            if (!Table.Sequence.IsCurrent(in token, entry.DomainId, entry.InputAddress, entry.SizeLog2))
            {
                Table.Store.CountStale();
                result = FillResult.Stale;
                return false;
            }

            result = Table.Fill(tag, entry.InputAddress, entry.SizeLog2, value);
            return true;
        }
    }

    /// <summary>The token for a walk of <paramref name="address"/> in <paramref name="domainId"/>: take it before reading
    /// the guest page table, pass it to <see cref="TryFill(in TranslationEntry, in InvalidationToken)"/> (any thread).</summary>
    public InvalidationToken GetInvalidationToken(ushort domainId, ulong address)
    {
        _lifetime.ThrowIfDisposed();
        return Table.Sequence.Read(domainId, address);
    }

    /// <summary>As <see cref="TryLookup(TranslationStage, ushort, uint, ulong, out Translation)"/>; on a miss also returns
    /// the token for the walk that follows (on a hit, <paramref name="token"/> is <c>default</c>).</summary>
    public bool TryLookup(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, out Translation translation,
        out InvalidationToken token)
    {
        if (Lookup(stage, domainId, addressSpaceId, address, ulong.MaxValue, leaf: true, out translation))
        {
            token = default;
            return true;
        }

        token = Table.Sequence.Read(domainId, address);
        return false;
    }

    /// <summary>Finds the leaf translation of <paramref name="address"/> for (stage, domain, address space).
    /// A global entry of the domain answers for every address space. When several entries cover the address, the one
    /// with the smallest span answers, and at equal span the non-global one. An invalid address-space id (neither
    /// ≤ <see cref="AddressSpace.MaxId"/> nor <see cref="AddressSpace.None"/>) or stage is a miss, globals included.</summary>
    public bool TryLookup(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, out Translation translation) =>
        Lookup(stage, domainId, addressSpaceId, address, ulong.MaxValue, leaf: true, out translation);

    /// <summary>
    /// <see cref="TryLookup(TranslationStage, ushort, uint, ulong, out Translation)"/> for a caller that itself keeps the
    /// cache from being disposed for the whole call, so that no reader slot is taken (a thread-local access, which in a
    /// NativeAOT shared library is a call into the dynamic loader). The C ABI's handle table is such a caller: it counts
    /// the call, and a handle with a call in flight cannot be destroyed. Throws <see cref="ObjectDisposedException"/>
    /// when the cache is already disposed.
    /// </summary>
    internal bool TryLookupPinned(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, out Translation translation)
    {
        _lifetime.ThrowIfDisposed();
        return LookupInside(stage, domainId, addressSpaceId, address, ulong.MaxValue, leaf: true, out translation);
    }

    /// <summary>Finds the paging-structure entry spanning 2^<paramref name="spanLog2"/> bytes around <paramref name="address"/>
    /// (same priority and miss rules as <see cref="TryLookup(TranslationStage, ushort, uint, ulong, out Translation)"/>; a span no table level has is a miss).</summary>
    public bool TryLookupTable(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, int spanLog2, out Translation translation)
    {
        if ((uint)spanLog2 >= 64)
        {
            _lifetime.ThrowIfDisposed();
            translation = default;
            return false;
        }

        return Lookup(stage, domainId, addressSpaceId, address, 1UL << spanLog2, leaf: false, out translation);
    }

    private bool Lookup(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, ulong sizeMask, bool leaf, out Translation translation)
    {
        Caches.ReaderSlot slot = _lifetime.EnterRead();
        try
        {
            return LookupInside(stage, domainId, addressSpaceId, address, sizeMask, leaf, out translation);
        }
        finally
        {
            Caches.CacheLifetime.ExitRead(slot);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool LookupInside(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, ulong sizeMask, bool leaf, out Translation translation)
    {
        if (!AddressSpace.IsValid(addressSpaceId) || ((uint)stage & ((uint)stage - 1)) != 0 || (uint)stage > 4)
        {
            translation = default;
            return false;
        }

        ulong common = Caches.TranslationTag.ValidBit | Caches.TranslationTag.Stage((StageMask)stage) |
                       (leaf ? Caches.TranslationTag.LeafBit : 0) | Caches.TranslationTag.Space(domainId);
        bool hit = Table.TryLookup(common, domainId, addressSpaceId, address, sizeMask, s_sizeBits, leaf,
            out ulong tag, out ulong first, out int sizeLog2, out ulong value);
        Table.Store.CountLookup(hit);
        if (!hit)
        {
            translation = default;
            return false;
        }

        ulong output = value & ~0xFFFUL;
        translation = new Translation(leaf ? output + (address - first) : output, first, (AccessRights)(value & 0xFFF),
            (byte)sizeLog2, (tag & Caches.TranslationTag.GlobalBit) != 0);
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

    /// <summary>Copies every cached entry into <paramref name="destination"/> (writer side; diagnostics and tests).</summary>
    public int CopyTo(Span<TranslationEntry> destination)
    {
        using (_lifetime.EnterWrite())
        {
            return CopyToLocked(destination);
        }
    }

    private int CopyToLocked(Span<TranslationEntry> destination)
    {
        var raw = new (ulong Tag, ulong First, ulong Last, ulong Value)[Table.Count];
        int n = Table.Snapshot(raw);
        if (destination.Length < n)
        {
            ThrowHelper.Argument(nameof(destination), "destination is shorter than Count");
        }

        for (int i = 0; i < n; i++)
        {
            destination[i] = Decode(raw[i].Tag, raw[i].First, raw[i].Last, raw[i].Value);
        }

        return n;
    }

    /// <summary>Every cached entry (writer side; allocates).</summary>
    public TranslationEntry[] ToArray()
    {
        using (_lifetime.EnterWrite())
        {
            var result = new TranslationEntry[Table.Count];
            CopyToLocked(result);
            return result;
        }
    }

    /// <summary>Frees the cache's native storage. Safe while lookups run on other threads: it waits for those inside
    /// to leave, and every later call (lookups included) throws <see cref="ObjectDisposedException"/>. Idempotent.</summary>
    public void Dispose() => _lifetime.DisposeStorage(Table.Dispose);

    internal static bool TryEncode(in TranslationEntry e, out ulong tag, out ulong value)
    {
        tag = 0;
        value = 0;
        uint stage = (uint)e.Stage;
        if (stage is not (1 or 2 or 4) || e.Granule is < Granule.Size4K or > Granule.Size64K || (uint)e.Rights > 0xFFF)
        {
            return false;
        }

        int level = Caches.TranslationTag.LevelForSize(e.Granule, e.SizeLog2);
        if (e.IsTable ? level is < 0 or > 2 : level is < 1 or > 3)
        {
            return false;
        }

        ulong spanMask = (1UL << e.SizeLog2) - 1;
        ulong outMask = e.IsTable ? (1UL << Caches.TranslationTag.GranuleLog2(e.Granule)) - 1 : spanMask;
        if ((e.InputAddress & spanMask) != 0 || (e.OutputAddress & outMask) != 0)
        {
            return false;
        }

        ulong asField;
        if (e.Stage == TranslationStage.Stage2)
        {
            if (e.AddressSpaceId != AddressSpace.None || e.Global)
            {
                return false;
            }

            asField = Caches.TranslationTag.AddressSpaceNone;
        }
        else if (e.Global)
        {
            asField = 0;
        }
        else
        {
            if (!AddressSpace.IsValid(e.AddressSpaceId))
            {
                return false;
            }

            asField = Caches.TranslationTag.EncodeAddressSpace(e.AddressSpaceId);
        }

        tag = Caches.TranslationTag.ValidBit | Caches.TranslationTag.Stage((StageMask)stage) |
              (e.Global ? Caches.TranslationTag.GlobalBit : 0) | (e.IsTable ? 0 : Caches.TranslationTag.LeafBit) |
              s_sizeBits[e.SizeLog2] | Caches.TranslationTag.Space(e.DomainId) | asField;
        value = e.OutputAddress | (ulong)e.Rights;
        return true;
    }

    internal static TranslationEntry Decode(ulong tag, ulong first, ulong last, ulong value)
    {
        bool global = (tag & Caches.TranslationTag.GlobalBit) != 0;
        int size = System.Numerics.BitOperations.Log2(last - first) + 1;
        return new TranslationEntry(
            (TranslationStage)((tag & Caches.TranslationTag.StageMask) >> Caches.TranslationTag.StageShift),
            (ushort)Caches.TranslationTag.SpaceOf(tag),
            global ? AddressSpace.None : Caches.TranslationTag.DecodeAddressSpace(tag),
            first, value & ~0xFFFUL, (byte)size, (AccessRights)(value & 0xFFF),
            Caches.TranslationTag.GranuleOf(tag), global, (tag & Caches.TranslationTag.LeafBit) == 0);
    }

    private static ulong[] BuildSizeBits()
    {
        var bits = new ulong[64];
        for (Granule g = Granule.Size4K; g <= Granule.Size64K; g++)
        {
            for (int s = 0; s < 64; s++)
            {
                int level = Caches.TranslationTag.LevelForSize(g, s);
                if (level >= 0)
                {
                    bits[s] = ((ulong)g << Caches.TranslationTag.GranuleShift) | ((ulong)level << Caches.TranslationTag.LevelShift);
                }
            }
        }

        return bits;
    }
}
