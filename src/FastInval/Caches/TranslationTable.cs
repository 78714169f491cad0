using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastInval.Internals;
using FastInval.Kernels;

namespace FastInval.Caches;

/// <summary>
/// The engine of the IOTLB and of device TLBs: translation entries in a <see cref="SlotStore"/>, hashed by
/// (space, address-space key, span, block number), with per-class counts of the spans present so that a lookup probes
/// only the page sizes that exist and a small range invalidation probes only the blocks it covers.
/// </summary>
/// <remarks>
/// Classes: leaf or table × non-global or global. A lookup probes, for each span present among leaves in ascending
/// order, the non-global entry of the requested address space and then the global entry; the first hit wins (the
/// smallest span; at equal span the non-global one). The IOTLB keys the address space into the hash (probe paths stay short
/// when many PASIDs map the same IOVA); a device TLB does not (so one probe per block finds every PASID of a device).
/// </remarks>
internal sealed class TranslationTable : IDisposable
{
    private const int Classes = 4; // bit 0 = global, bit 1 = table

    private readonly SlotStore _store;
    private readonly bool _keysAddressSpace;
    private readonly bool _variableSizes;
    private readonly int[] _sizeCounts = new int[Classes * 64];

    // Spans present per class (bit n = 2^n bytes), as fields so a lookup reads them without bounds checks.
    private ulong _leafSizes, _leafGlobalSizes, _tableSizes, _tableGlobalSizes;
    private int _pasidTagged;

    public TranslationTable(int capacity, bool keysAddressSpace, bool variableSizes)
    {
        _store = new SlotStore(capacity, keysAddressSpace ? StoreKind.Iotlb : StoreKind.DeviceTlb);
        _keysAddressSpace = keysAddressSpace;
        _variableSizes = variableSizes;
    }

    public SlotStore Store => _store;

    /// <summary>The invalidation sequence of this table's entries (keys: the tag's space, domain or source id).</summary>
    public InvalidationSequence Sequence { get; } = new();

    public int Count => _store.Count;

    public int Capacity => _store.Capacity;

    /// <summary>Spans (bit n = 2^n bytes) present in the given class.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong SizeMask(bool table, bool global) =>
        table ? (global ? _tableGlobalSizes : _tableSizes) : (global ? _leafGlobalSizes : _leafSizes);

    private ref ulong SizeMaskRef(int cls)
    {
        switch (cls)
        {
            case 0: return ref _leafSizes;
            case 1: return ref _leafGlobalSizes;
            case 2: return ref _tableSizes;
            default: return ref _tableGlobalSizes;
        }
    }

    public bool KeysAddressSpace => _keysAddressSpace;

    /// <summary>Live entries that carry an address space or are global (a no-PASID device-TLB invalidation must find
    /// them all; when there are none it skips that scan).</summary>
    public int PasidTaggedCount => _pasidTagged;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsPasidTagged(ulong tag) =>
        (tag & TranslationTag.GlobalBit) != 0 || (tag & TranslationTag.AddressSpaceNone) == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Hash(uint space, uint addressSpaceKey, int sizeLog2, ulong block)
    {
        // Two independent multiplies, then one more to mix: consecutive blocks of one space land in unrelated buckets.
        ulong h = (block * 0x9E37_79B9_7F4A_7C15UL) ^ ((((ulong)space << 32) | ((ulong)addressSpaceKey << 6) | (uint)sizeLog2) * 0xC2B2_AE3D_27D4_EB4FUL);
        h = (h ^ (h >> 32)) * 0xBF58_476D_1CE4_E5B9UL;
        return h ^ (h >> 32);
    }

    /// <summary>The index hash of an entry of span 2^<paramref name="sizeLog2"/> at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong HashOf(uint space, uint addressSpaceKey, int sizeLog2, ulong address) =>
        Hash(space, _keysAddressSpace ? addressSpaceKey : 0, sizeLog2, address >> sizeLog2);

    /// <summary>Writer side. Inserts or replaces an entry given in packed form.</summary>
    public FillResult Fill(ulong tag, ulong first, int sizeLog2, ulong value)
    {
        ulong last = first + ((1UL << sizeLog2) - 1);
        ulong hash = HashOf(TranslationTag.SpaceOf(tag), TranslationTag.HashKeyOf(tag), sizeLog2, first);
        int existing = _store.Find(hash, ulong.MaxValue, tag, first, last, out int bucket);
        if (existing >= 0)
        {
            _store.Update(bucket, existing, tag, value);
            return FillResult.Replaced;
        }

        FillResult result = FillResult.Inserted;
        if (_store.IsFull)
        {
            // Eviction: the victim's slot is the CLOCK hand's (sequential); its bucket is the one random line it costs.
            Remove(_store.ClockVictim());
            result = FillResult.InsertedAfterEviction;
        }

        int slot = _store.Allocate(out bool dead, out ulong deadTag);
        if (dead)
        {
            _store.UnlinkDead(HashOfSlot(deadTag, _store.First(slot), _store.Last(slot)), slot);
        }

        _store.Link(hash, slot, tag, first, last, value);
        int cls = ClassOf(tag);
        if (_sizeCounts[(cls * 64) + sizeLog2]++ == 0)
        {
            SizeMaskRef(cls) |= 1UL << sizeLog2;
        }

        _pasidTagged += IsPasidTagged(tag) ? 1 : 0;
        return result;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ClassOf(ulong tag) =>
        ((tag & TranslationTag.LeafBit) == 0 ? 2 : 0) | ((tag & TranslationTag.GlobalBit) != 0 ? 1 : 0);

    /// <summary>The index hash of a slot with this (tag, first, last); the valid bit does not matter.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong HashOfSlot(ulong tag, ulong first, ulong last) =>
        HashOf(TranslationTag.SpaceOf(tag), TranslationTag.HashKeyOf(tag), BitOperations.Log2(last - first) + 1, first);

    /// <summary>Writer side. Removes one live slot and takes it out of the index at once.</summary>
    public void Remove(int slot)
    {
        ulong tag = _store.Tag(slot);
        ulong first = _store.First(slot);
        ulong last = _store.Last(slot);
        _store.Unlink(HashOfSlot(tag, first, last), slot);
        Uncount(tag, first, last);
    }

    /// <summary>Writer side. Removes one live slot lazily (see <see cref="SlotStore.Kill"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Kill(int slot)
    {
        ulong tag = _store.Tag(slot);
        Uncount(tag, _store.First(slot), _store.Last(slot));
        _store.Kill(slot);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Uncount(ulong tag, ulong first, ulong last)
    {
        int sizeLog2 = BitOperations.Log2(last - first) + 1;
        int cls = ClassOf(tag);
        if (--_sizeCounts[(cls * 64) + sizeLog2] == 0)
        {
            SizeMaskRef(cls) &= ~(1UL << sizeLog2);
        }

        _pasidTagged -= IsPasidTagged(tag) ? 1 : 0;
    }

    /// <summary>Writer side. Removes everything.</summary>
    public void Clear()
    {
        Sequence.BumpAll();
        _store.Clear();
        Array.Clear(_sizeCounts);
        _leafSizes = _leafGlobalSizes = _tableSizes = _tableGlobalSizes = 0;
        _pasidTagged = 0;
    }

    /// <summary>
    /// Reader side. Finds the entry covering <paramref name="address"/>: <paramref name="commonTag"/> holds the valid,
    /// stage, leaf and space bits; <paramref name="sizeBits"/> gives the granule and level bits of each span.
    /// </summary>
    public bool TryLookup(ulong commonTag, uint space, uint addressSpaceId, ulong address, ulong sizeMask,
        ReadOnlySpan<ulong> sizeBits, bool leaf, out ulong foundTag, out ulong first, out int sizeLog2, out ulong value)
    {
        ulong nonGlobal = (leaf ? _leafSizes : _tableSizes) & sizeMask;
        ulong global = (leaf ? _leafGlobalSizes : _tableGlobalSizes) & sizeMask;
        ulong sizes = nonGlobal | global;
        ulong asField = TranslationTag.EncodeAddressSpace(addressSpaceId);
        uint key = _keysAddressSpace ? (uint)asField : 0;
        ref ulong bits = ref MemoryMarshal.GetReference(sizeBits);
        while (sizes != 0)
        {
            int s = BitOperations.TrailingZeroCount(sizes);
            ulong bit = 1UL << s;
            sizes &= sizes - 1;
            ulong baseAddress = address & ~(bit - 1);
            ulong last = _variableSizes ? baseAddress + (bit - 1) : 0;
            ulong sizeTag = commonTag | Unsafe.Add(ref bits, s);
            if ((nonGlobal & bit) != 0 &&
                _store.TryRead(Hash(space, key, s, baseAddress >> s), ulong.MaxValue, sizeTag | asField,
                    baseAddress, last, out foundTag, out value))
            {
                first = baseAddress;
                sizeLog2 = s;
                return true;
            }

            if ((global & bit) != 0 &&
                _store.TryRead(Hash(space, _keysAddressSpace ? TranslationTag.GlobalKey : 0, s, baseAddress >> s),
                    ulong.MaxValue, sizeTag | TranslationTag.GlobalBit, baseAddress, last, out foundTag, out value))
            {
                first = baseAddress;
                sizeLog2 = s;
                return true;
            }
        }

        foundTag = 0;
        first = 0;
        sizeLog2 = 0;
        value = 0;
        return false;
    }

    /// <summary>Writer side. Removes every slot a scan with <paramref name="op"/> selects; returns how many.</summary>
    [SkipLocalsInit] // the hits buffer is written by the kernel before it is read: no 1 KiB clear per scan
    public int RemoveByScan<TOp>(in TOp op, TagScanKernel kernel) where TOp : struct, IMatchOp
    {
        Span<int> hits = stackalloc int[256];
        nuint i = 0;
        nuint end = _store.ScanEnd;
        int removed = 0;
        while (i < end)
        {
            int n = TagScan.Run(kernel, in op, ref _store.TagRef, ref _store.FirstRef, ref _store.LastRef, i, end, hits, out i);
            for (int k = 0; k < n; k++)
            {
                Kill(hits[k]);
            }

            removed += n;
        }

        return removed;
    }

    /// <summary>
    /// Writer side. Removes the slots <paramref name="op"/> selects among those hashed to the blocks of each span in
    /// <paramref name="sizes"/> that overlap [first, last], under the given address-space hash key.
    /// </summary>
    [SkipLocalsInit] // every local is assigned before use: no frame clear per probe
    public int RemoveByProbe(in RangeMatch op, uint space, uint addressSpaceKey, ulong sizes, ulong first, ulong last)
    {
        int removed = 0;
        while (sizes != 0)
        {
            int s = BitOperations.TrailingZeroCount(sizes);
            sizes &= sizes - 1;
            ulong block = first >> s;
            ulong lastBlock = last >> s;
            while (true)
            {
                ulong pathHash = Hash(space, _keysAddressSpace ? addressSpaceKey : 0, s, block);
                PathCursor cursor = _store.PathOf(pathHash);
                while (_store.NextOnPath(ref cursor, out int slot))
                {
                    // Entries of other keys whose fingerprint collides are checked too: removing one the descriptor
                    // covers is right.
                    ulong tag = _store.Tag(slot), slotFirst = _store.First(slot), slotLast = _store.Last(slot);
                    if (op.Match(tag, slotFirst, slotLast))
                    {
                        ulong hash = HashOfSlot(tag, slotFirst, slotLast);
                        if (hash == pathHash)
                        {
                            _store.UnlinkOnPath(ref cursor, slot);
                        }
                        else
                        {
                            _store.Unlink(hash, slot);
                        }

                        Uncount(tag, slotFirst, slotLast);
                        removed++;
                    }
                }

                if (block == lastBlock)
                {
                    break;
                }

                block++;
            }
        }

        return removed;
    }

    /// <summary>Number of bucket probes <see cref="RemoveByProbe"/> would make (saturating).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ProbeCost(ulong sizes, ulong first, ulong last)
    {
        ulong cost = 0;
        while (sizes != 0)
        {
            int s = BitOperations.TrailingZeroCount(sizes);
            sizes &= sizes - 1;
            ulong blocks = (last >> s) - (first >> s);
            cost = blocks >= ulong.MaxValue - cost - 1 ? ulong.MaxValue : cost + blocks + 1;
        }

        return cost;
    }

    /// <summary>Writer side. Visits every valid slot in slot order.</summary>
    public int Snapshot(Span<(ulong Tag, ulong First, ulong Last, ulong Value)> destination)
    {
        int n = 0;
        int end = (int)_store.ScanEnd;
        for (int s = 0; s < end; s++)
        {
            ulong t = _store.Tag(s);
            if ((t & TranslationTag.ValidBit) != 0)
            {
                if (n == destination.Length)
                {
                    ThrowHelper.Argument(nameof(destination), "destination is shorter than Count");
                }

                destination[n++] = (t, _store.First(s), _store.Last(s), _store.Value(s));
            }
        }

        return n;
    }

    public void Dispose() => _store.Dispose();
}
