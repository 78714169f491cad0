namespace FastInval.Benchmarks.Qemu;

/// <summary>
/// A C# model of QEMU's VT-d IOTLB (hw/i386/intel_iommu.c), written from spec/vtd-queued-invalidation.md §3.8–3.9,
/// kept as close to QEMU's data structures and algorithms as C# allows, so that it can stand as the baseline that
/// FastInval is measured against.
/// </summary>
/// <remarks>
/// <para><b>Storage.</b> One hash table (<see cref="Dictionary{TKey, TValue}"/> for GLib's GHashTable) whose keys and
/// entries are separate heap objects, as QEMU allocates both with <c>g_malloc</c> on every update. The key is QEMU's
/// <c>struct vtd_iotlb_key</c> { sid, pasid, gfn, level }; the entry is <c>VTDIOTLBEntry</c>. Hash and equality are
/// QEMU's <c>vtd_iotlb_hash</c> / <c>vtd_iotlb_equal</c>, called through an interface as GLib calls them through
/// function pointers.</para>
/// <para><b>Lookup</b> (<c>vtd_lookup_iotlb</c>) probes level 1, 2, 3 (4 KiB, 2 MiB, 1 GiB) with a key built from the
/// request's source id and PASID; the first hit wins. QEMU builds that key on the stack; here one probe key object is
/// reused (the model is single-threaded, as QEMU holds the IOMMU lock), so a lookup allocates nothing.</para>
/// <para><b>Update</b> (<c>vtd_update_iotlb</c>) allocates a new key and entry; when the table already holds
/// <see cref="MaxSize"/> entries it first removes every entry (QEMU: 1024, <see cref="QemuMaxSize"/>).</para>
/// <para><b>Invalidation</b> is QEMU's: every selective flush is <c>g_hash_table_foreach_remove</c> with QEMU's
/// predicate over every entry of the table, the predicate called through a function pointer with a pointer to the
/// invalidation info. Global invalidation removes everything.</para>
/// <para>Differences that do not change the algorithm: GLib's table is open addressing, the .NET dictionary chains
/// inside one entry array; both keep a pointer per key and per value and dereference the value for each predicate.
/// Freeing is left to the .NET GC instead of <c>g_free</c>. Notifier callbacks (UNMAP events) are not modelled.</para>
/// </remarks>
internal sealed unsafe class QemuStyleIotlb
{
    /// <summary>QEMU's <c>VTD_IOTLB_MAX_SIZE</c>: the table is emptied when an update finds it this full.</summary>
    public const int QemuMaxSize = 1024;

    /// <summary>No size limit: the table grows as needed (used for scaling measurements, where QEMU's reset at 1024
    /// entries would otherwise keep the table tiny).</summary>
    public const int Unlimited = int.MaxValue;

    /// <summary>QEMU's <c>PCI_NO_PASID</c>: requests without PASID in legacy mode.</summary>
    public const uint NoPasid = uint.MaxValue;

    /// <summary>QEMU's <c>VTD_MAMV</c>: the largest address mask a page-selective IOTLB descriptor may carry.</summary>
    public const int Mamv = 18;

    // VT-d PASID-entry PGTT values as QEMU stores them in VTDIOTLBEntry.pgtt (VTD_SM_PASID_ENTRY_FST / _SST).
    public const byte PgttFirstStage = 1 << 6;
    public const byte PgttSecondStage = 2 << 6;

    private const int PageShift4K = 12;   // VTD_PAGE_SHIFT_4K
    private const int LevelBits = 9;      // VTD_LEVEL_BITS
    private const int SidShift = 26;      // VTD_IOTLB_SID_SHIFT
    private const int LevelShift = 42;    // VTD_IOTLB_LVL_SHIFT
    private const int PasidShift = 44;    // VTD_IOTLB_PASID_SHIFT

    private readonly Dictionary<Key, Entry> _table = new(KeyComparer.Instance);
    private readonly Key _probe = new();

    /// <summary>Creates a table that empties itself when an update finds <paramref name="maxSize"/> entries in it.</summary>
    public QemuStyleIotlb(int maxSize = QemuMaxSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSize, 1);
        MaxSize = maxSize;
    }

    /// <summary>The size at which an update first empties the table.</summary>
    public int MaxSize { get; }

    /// <summary>Entries cached now (<c>g_hash_table_size</c>).</summary>
    public int Count => _table.Count;

    /// <summary>QEMU's <c>struct vtd_iotlb_key</c>.</summary>
    internal sealed class Key
    {
        public ulong Gfn;
        public uint Pasid;
        public ushort Sid;
        public byte Level;
    }

    /// <summary>QEMU's <c>VTDIOTLBEntry</c>.</summary>
    internal sealed class Entry
    {
        public ulong Gfn;
        public ushort DomainId;
        public uint Pasid;
        public ulong Pte;
        public ulong Mask;
        public byte AccessFlags;
        public byte Pgtt;
    }

    /// <summary>QEMU's <c>VTDIOTLBPageInvInfo</c>, the user data of the removal predicates.</summary>
    private struct PageInvInfo
    {
        public ushort DomainId;
        public uint Pasid;
        public ulong Addr;
        public ulong Mask;
    }

    private sealed class KeyComparer : IEqualityComparer<Key>
    {
        public static readonly KeyComparer Instance = new();

        // vtd_iotlb_equal
        public bool Equals(Key? a, Key? b) =>
            a!.Sid == b!.Sid && a.Pasid == b.Pasid && a.Level == b.Level && a.Gfn == b.Gfn;

        // vtd_iotlb_hash: pack into 64 bits (bits shifted past 63 are lost), then fold to 32 bits.
        public int GetHashCode(Key k)
        {
            ulong h = k.Gfn | ((ulong)k.Sid << SidShift) | ((ulong)(k.Level - 1) << LevelShift) | ((ulong)k.Pasid << PasidShift);
            return (int)((uint)(h >> 32) ^ (uint)h);
        }
    }

    /// <summary>vtd_pt_level_shift: 12 + 9·(level − 1).</summary>
    public static int LevelShiftOf(int level) => PageShift4K + ((level - 1) * LevelBits);

    /// <summary>vtd_pt_level_page_mask.</summary>
    public static ulong LevelPageMask(int level) => ~((1UL << LevelShiftOf(level)) - 1);

    /// <summary>vtd_get_iotlb_gfn: the 4 KiB frame number of the start of the level's page holding <paramref name="addr"/>.</summary>
    private static ulong GfnOf(ulong addr, int level) => (addr & LevelPageMask(level)) >> PageShift4K;

    /// <summary>vtd_lookup_iotlb: probes levels 1..3 for (source id, PASID, address); first hit wins.</summary>
    public Entry? Lookup(ushort sourceId, uint pasid, ulong addr)
    {
        Key key = _probe;
        key.Sid = sourceId;
        key.Pasid = pasid;
        for (int level = 1; level < 4; level++)
        {
            key.Gfn = GfnOf(addr, level);
            key.Level = (byte)level;
            if (_table.TryGetValue(key, out Entry? entry))
            {
                return entry;
            }
        }

        return null;
    }

    /// <summary>vtd_update_iotlb: caches the translation of the level-<paramref name="level"/> page holding
    /// <paramref name="addr"/>; empties the table first when it holds <see cref="MaxSize"/> entries.</summary>
    public void Update(ushort sourceId, ushort domainId, ulong addr, ulong pte, byte accessFlags, int level, uint pasid, byte pgtt)
    {
        var entry = new Entry();
        var key = new Key();
        ulong gfn = GfnOf(addr, level);
        if (_table.Count >= MaxSize)
        {
            Reset();
        }

        entry.Gfn = gfn;
        entry.DomainId = domainId;
        entry.Pte = pte;
        entry.AccessFlags = accessFlags;
        entry.Mask = LevelPageMask(level);
        entry.Pasid = pasid;
        entry.Pgtt = pgtt;
        key.Gfn = gfn;
        key.Sid = sourceId;
        key.Pasid = pasid;
        key.Level = (byte)level;
        _table[key] = entry; // g_hash_table_replace
    }

    /// <summary>
    /// Puts the table in the state of one that has lived a while, without changing its contents. GLib's
    /// foreach-remove walks its buckets in hash order, so it meets the entries in an order unrelated to where
    /// <c>g_malloc</c> placed them: one random memory access per entry. A freshly built .NET dictionary walks its slots
    /// in insertion order, which is also allocation order: a sequential sweep that no long-running table sees. This
    /// takes every entry out in a random order and puts it back, so the dictionary hands out its slots in that random
    /// order and its walk meets the entries (still where they were allocated) in random memory order, as GLib's does.
    /// </summary>
    public void Age(int seed)
    {
        KeyValuePair<Key, Entry>[] pairs = [.. _table];
        var shuffled = (KeyValuePair<Key, Entry>[])pairs.Clone();
        new Random(seed).Shuffle(shuffled);
        foreach (KeyValuePair<Key, Entry> pair in shuffled)
        {
            _table.Remove(pair.Key); // the freed slots form a free list in this random order
        }

        foreach (KeyValuePair<Key, Entry> pair in pairs)
        {
            _table.Add(pair.Key, pair.Value);
        }
    }

    /// <summary>vtd_reset_iotlb_locked (global invalidation, and the size-limit reset).</summary>
    public void Reset() => _table.Clear();

    /// <summary>Domain-selective IOTLB invalidation (IOTLB descriptor G=10b): vtd_hash_remove_by_domain.</summary>
    public int InvalidateDomain(ushort domainId)
    {
        var info = new PageInvInfo { DomainId = domainId };
        return ForeachRemove(&RemoveByDomain, in info);
    }

    /// <summary>Page-selective-within-domain IOTLB invalidation (IOTLB descriptor G=11b): vtd_hash_remove_by_page.
    /// AM above <see cref="Mamv"/> is an IQE in QEMU; here it throws.</summary>
    public int InvalidatePage(ushort domainId, ulong addr, int am)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(am, Mamv);
        var info = new PageInvInfo { DomainId = domainId, Addr = addr, Mask = AddressMask(am) };
        return ForeachRemove(&RemoveByPage, in info);
    }

    /// <summary>PASID-selective PASID-based IOTLB invalidation (PIOTLB G=10b): vtd_hash_remove_by_pasid.</summary>
    public int InvalidatePasid(ushort domainId, uint pasid)
    {
        var info = new PageInvInfo { DomainId = domainId, Pasid = pasid };
        return ForeachRemove(&RemoveByPasid, in info);
    }

    /// <summary>Page-selective-within-PASID invalidation (PIOTLB G=11b): vtd_hash_remove_by_page_piotlb.
    /// QEMU does not check AM here; AM ≥ 31 is undefined behaviour there, so this model rejects it.</summary>
    public int InvalidatePasidPage(ushort domainId, uint pasid, ulong addr, int am)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(am, 30);
        var info = new PageInvInfo { DomainId = domainId, Pasid = pasid, Addr = addr, Mask = AddressMask(am) };
        return ForeachRemove(&RemoveByPagePiotlb, in info);
    }

    // info.mask = ~((1 << am) - 1), computed in 32-bit int and sign-extended to 64 bits as in QEMU.
    private static ulong AddressMask(int am) => (ulong)(long)~((1 << am) - 1);

    /// <summary>g_hash_table_foreach_remove: visits every entry and removes those the predicate selects.</summary>
    private int ForeachRemove(delegate*<Key, Entry, in PageInvInfo, bool> predicate, in PageInvInfo info)
    {
        int removed = 0;
        foreach (KeyValuePair<Key, Entry> pair in _table)
        {
            if (predicate(pair.Key, pair.Value, in info))
            {
                _table.Remove(pair.Key); // allowed while enumerating (.NET Core 3.0+): the enumerator stays valid
                removed++;
            }
        }

        return removed;
    }

    private static bool RemoveByDomain(Key key, Entry entry, in PageInvInfo info) => entry.DomainId == info.DomainId;

    private static bool RemoveByPasid(Key key, Entry entry, in PageInvInfo info) =>
        entry.DomainId == info.DomainId && entry.Pasid == info.Pasid;

    private static bool RemoveByPage(Key key, Entry entry, in PageInvInfo info)
    {
        ulong gfn = (info.Addr >> PageShift4K) & info.Mask;
        ulong gfnTlb = (info.Addr & entry.Mask) >> PageShift4K;
        if (entry.DomainId != info.DomainId)
        {
            return false;
        }

        // First-stage (and nested) entries of the domain go whatever their address (VT-d spec; QEMU checks 001b only).
        if (entry.Pgtt == PgttFirstStage)
        {
            return true;
        }

        return (entry.Gfn & info.Mask) == gfn || entry.Gfn == gfnTlb;
    }

    private static bool RemoveByPagePiotlb(Key key, Entry entry, in PageInvInfo info)
    {
        ulong gfn = (info.Addr >> PageShift4K) & info.Mask;
        ulong gfnTlb = (info.Addr & entry.Mask) >> PageShift4K;

        // Only first-stage entries are invalidated by a PASID-based IOTLB descriptor.
        if (entry.Pgtt != PgttFirstStage)
        {
            return false;
        }

        return entry.DomainId == info.DomainId && entry.Pasid == info.Pasid &&
               ((entry.Gfn & info.Mask) == gfn || entry.Gfn == gfnTlb);
    }
}
