using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastInval.Internals;
using FastInval.Kernels;

namespace FastInval.Caches;

/// <summary>Which cache a <see cref="SlotStore"/> serves (written into its layout header).</summary>
internal enum StoreKind : uint
{
    Iotlb = 1,
    DeviceTlb = 2,
    ConfigurationCache = 3,
}

/// <summary>
/// One slot's copy of its entry, read by lookups: 32 bytes, so a record never straddles a cache line.
/// <code>
///  0        8        16       24       32
/// [ Tag    | First  | Last   | Value  ]
/// </code>
/// The tag is the same word as the slot's tag column (valid bit included); first/last the inclusive span; value the
/// owner's payload (output | rights, or a configuration value).
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct SlotRecord
{
    public ulong Tag;
    public ulong First;
    public ulong Last;
    public ulong Value;
}

/// <summary>
/// One 64-byte bucket (one cache line) of the hash index: a seqlock version, an overflow count, and eight ways, each a
/// one-byte fingerprint and a slot index.
/// <code>
///  0         4          8                  16                              48          64
/// [ Version | Overflow | Fingerprint × 8  | Slot (u32) × 8                 | reserved 0 ]
/// </code>
/// Fingerprint 0 = empty way; otherwise the top byte of the entry's hash (forced non-zero). Version is even when the
/// bucket is stable and odd while a writer changes its ways. Overflow counts the entries whose home bucket is this one
/// or an earlier one on their probe path and that live in a later bucket (the F14 outbound-overflow rule): a probe
/// continues to the next bucket only while it is non-zero.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal unsafe struct IndexBucket
{
    [FieldOffset(0)]
    public uint Version;

    [FieldOffset(4)]
    public uint Overflow;

    [FieldOffset(8)]
    public ulong Fingerprints;

    [FieldOffset(16)]
    public fixed uint Slots[8];
}

/// <summary>
/// Structure-of-arrays slot storage with a one-line-per-probe hash index, shared by every cache. Everything lives in
/// one <see cref="PinnedBuffer"/>, at offsets computed from the capacity alone: a 64-byte layout header, the
/// <c>Tag</c>/<c>First</c>/<c>Last</c> columns (u64, scanned by the flush kernels), the records (<see cref="SlotRecord"/>,
/// 32 bytes per slot, read by lookups), the spare-slot stack (i32), the CLOCK reference bitmap (1 bit per slot) and the
/// hash index (<see cref="IndexBucket"/>, 64 bytes each, a power of two ≥ capacity / 4, so at most half of the ways are
/// used). Nothing in the buffer is a pointer or a managed reference: ways hold slot indexes.
/// </summary>
/// <remarks>
/// <para><b>Lookup.</b> The hash's low bits choose the home bucket, its top byte is the fingerprint. A probe reads the
/// bucket's line, matches the fingerprint against the eight ways at once (a SWAR compare on one 64-bit word: no SIMD,
/// so it costs the same with hardware intrinsics off), and for each match reads that slot's record (one more line) and
/// compares tag, first and last exactly. With 8-bit fingerprints and at most half the ways used, a miss reads a record
/// on about 1.6 % of probes; it moves on to the next bucket only when the bucket's overflow count is non-zero (at
/// 50 % load, about 2 % of buckets).</para>
/// <para><b>Concurrency (per-bucket seqlock).</b> One writer at a time (serialized by the owning cache's writer lock);
/// any number of concurrent readers. A writer changes a bucket's ways only while the bucket's version is odd, and takes
/// a slot out of the index (version bump of the bucket that held it) before it rewrites the slot's record. A reader
/// samples an even version, matches, copies the record, then re-reads the version and accepts the copy only if it is
/// unchanged, otherwise it retries that bucket. A reader that holds a way which a writer removed and reused therefore
/// always sees the old bucket's version move: no torn or foreign entry is returned. Overflow counts are single aligned
/// words: a writer raises them before it adds an entry beyond them and lowers them after it removed one, so a key that
/// stays cached is always reachable. Readers bound every probe by the bucket count, so a changing index never traps
/// them.</para>
/// <para><b>Removal</b> has two forms. <see cref="Unlink"/> takes a slot out of the index at once (index probes,
/// eviction). <see cref="Kill"/> only clears the valid bit of the slot's tag column and of its record (one aligned
/// 8-byte store each) and pushes it on the spare stack (used by vector scans, so a flush that removes many entries
/// costs two stores per entry, not an index walk): a dead slot stays in its bucket, invisible to every lookup and
/// predicate (all require the valid bit), until a fill reuses it and removes its way under that bucket's version.</para>
/// <para><b>Free slots.</b> A fill takes a spare slot (unlinked or dead), else the next slot above the high-water mark,
/// else evicts. Scans cover [0, high-water mark rounded up to 8): tables that have held few entries scan little even
/// with a huge capacity.</para>
/// <para><b>Eviction</b> when full: CLOCK (second chance) over the slots. A hand sweeps slots in order; a slot whose
/// reference bit is set (a lookup hit it since the last sweep) gets its bit cleared and is skipped; the first slot with
/// a clear bit is evicted and its slot reused at once; after one full revolution without a clear bit (lookups keep
/// setting them) the next live slot is evicted whatever its bit, so a fill is bounded. One entry per fill, never the
/// cache wholesale. Readers set reference bits without atomics: a lost bit only makes an entry a little likelier to be
/// evicted. Because the hand moves through the slots in order, a fill's column, record and bitmap writes are
/// sequential; the lines it touches at random are the victim's bucket and the new entry's bucket
/// (<see cref="IndexLineTouches"/> counts them).</para>
/// </remarks>
internal sealed unsafe class SlotStore : IDisposable
{
    /// <summary>"FIVSLOTS" in little-endian byte order: the first word of the layout header.</summary>
    public const ulong LayoutMagic = 0x5354_4F4C_5356_4946UL;

    /// <summary>Version of the layout described on this type (header, columns, records, index).</summary>
    public const uint LayoutVersion = 1;

    /// <summary>Ways per index bucket.</summary>
    public const int Ways = 8;

    /// <summary>Slots per index bucket at full capacity (buckets = the next power of two ≥ capacity / this).</summary>
    public const int SlotsPerBucket = 4;

    private const ulong ValidBit = 1UL << 63;
    private const ulong LowSeven = 0x7F7F_7F7F_7F7F_7F7FUL;
    private const ulong ByteOnes = 0x0101_0101_0101_0101UL;

    /// <summary>Marks a spare-stack entry whose slot was killed and is still linked (slots are below 2^28).</summary>
    private const int DeadFlag = 1 << 30;

    private readonly PinnedBuffer _buffer;
    private readonly ulong* _tag;
    private readonly ulong* _first;
    private readonly ulong* _last;
    private readonly SlotRecord* _records;
    private readonly int* _spare;
    private readonly ulong* _refBits;
    private readonly IndexBucket* _buckets;
    private readonly int _capacity;
    private readonly uint _bucketMask;
    private int _highWater;
    private int _spareCount;
    private int _count;
    private int _hand;

    public SlotStore(int capacity, StoreKind kind)
    {
        if (capacity < 1 || capacity > MaxCapacity)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(capacity), $"capacity must be between 1 and {MaxCapacity}");
        }

        _capacity = capacity;
        PaddedCapacity = (capacity + TagScan.Padding - 1) / TagScan.Padding * TagScan.Padding;
        uint buckets = Math.Max(1u, BitOperations.RoundUpToPowerOf2((uint)((capacity + SlotsPerBucket - 1) / SlotsPerBucket)));
        _bucketMask = buckets - 1;

        nuint p = (nuint)PaddedCapacity;
        nuint refWords = (p + 63) / 64;
        nuint bytes = PinnedBuffer.Alignment + (PinnedBuffer.Align(p * 8) * 3) + PinnedBuffer.Align(p * (nuint)sizeof(SlotRecord)) +
                      PinnedBuffer.Align(p * 4) + PinnedBuffer.Align(refWords * 8) + ((nuint)buckets * (nuint)sizeof(IndexBucket));
        _buffer = new PinnedBuffer(bytes);
        byte* header = _buffer.Carve<byte>(PinnedBuffer.Alignment);
        _tag = _buffer.Carve<ulong>(p);
        _first = _buffer.Carve<ulong>(p);
        _last = _buffer.Carve<ulong>(p);
        _records = _buffer.Carve<SlotRecord>(p);
        _spare = _buffer.Carve<int>(p);
        _refBits = _buffer.Carve<ulong>(refWords);
        _buckets = _buffer.Carve<IndexBucket>(buckets);
        WriteHeader(header, kind, buckets);
    }

    /// <summary>Largest supported capacity (2^28 slots).</summary>
    public const int MaxCapacity = 1 << 28;

    public int Capacity => _capacity;

    public int PaddedCapacity { get; }

    public int Count => _count;

    public int BucketCount => (int)_bucketMask + 1;

    /// <summary>Bytes of pinned memory owned.</summary>
    public long Bytes => (long)_buffer.Length;

    /// <summary>The layout header (64 bytes at offset 0 of the buffer), for layout tests and shared-memory readers.</summary>
    public ReadOnlySpan<byte> Header => new((byte*)_tag - PinnedBuffer.Alignment, PinnedBuffer.Alignment);

    /// <summary>Writer-side diagnostic: index buckets (cache lines) visited by writers since construction — the home
    /// bucket of a fill or removal, and every further bucket a probe path crossed.</summary>
    public long IndexLineTouches { get; private set; }

    // Metrics (docs/metrics.md): plain writer-side counts (the writer lock serializes them) and reader-side lookup
    // counts taken only while the meter's lookup instrument is observed. Managed fields: never in the shared layout.
    private long _inserted, _replaced, _removed, _evicted, _stale, _hits, _misses;

    /// <summary>Entries linked (fills that added an entry) since construction.</summary>
    public long Inserted => Volatile.Read(ref _inserted);

    /// <summary>Fills that replaced an entry of the same identity.</summary>
    public long Replaced => Volatile.Read(ref _replaced);

    /// <summary>Entries removed, by invalidation, eviction or clearing.</summary>
    public long Removed => Volatile.Read(ref _removed);

    /// <summary>Entries removed to make room (CLOCK victims).</summary>
    public long Evicted => Volatile.Read(ref _evicted);

    /// <summary>TryFill calls refused for a stale token.</summary>
    public long Stale => Volatile.Read(ref _stale);

    /// <summary>Writer side: a TryFill refused for a stale token.</summary>
    public void CountStale() => _stale++;

    /// <summary>Lookups that hit, counted while observed.</summary>
    public long Hits => Volatile.Read(ref _hits);

    /// <summary>Lookups that missed, counted while observed.</summary>
    public long Misses => Volatile.Read(ref _misses);

    /// <summary>Reader side: counts a lookup's outcome when someone observes lookups (one static flag test otherwise).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void CountLookup(bool hit)
    {
        if (MetricsGate.LookupsObserved)
        {
            CountLookupObserved(hit);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void CountLookupObserved(bool hit)
    {
        if (!FastInvalMetrics.LookupsEnabled)
        {
            MetricsGate.LookupsObserved = false; // the last listener left: back to free
            return;
        }

        Interlocked.Increment(ref (hit ? ref _hits : ref _misses));
    }

    /// <summary>End (exclusive, multiple of 8) of the slot range a scan must cover.</summary>
    public nuint ScanEnd => (nuint)((_highWater + TagScan.Padding - 1) & ~(TagScan.Padding - 1));

    public ref ulong TagRef => ref *_tag;

    public ref ulong FirstRef => ref *_first;

    public ref ulong LastRef => ref *_last;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Tag(int slot) => _tag[slot];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong First(int slot) => _first[slot];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Last(int slot) => _last[slot];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Value(int slot) => _records[slot].Value;

    /// <summary>The home bucket of a hash.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int HomeOf(ulong hash) => (int)((uint)hash & _bucketMask);

    /// <summary>The fingerprint of a hash: its top byte, 0 mapped to 1 (0 marks an empty way).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte FingerprintOf(ulong hash)
    {
        ulong f = hash >> 56;
        return (byte)(f | ((f - 1) >> 63));
    }

    /// <summary>Bit 8k+7 set for every byte k of <paramref name="word"/> that is zero (exact: no false positives).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ZeroBytes(ulong word) => ~(((word & LowSeven) + LowSeven) | word | LowSeven);

    private void WriteHeader(byte* header, StoreKind kind, uint buckets)
    {
        var h = new Span<byte>(header, PinnedBuffer.Alignment);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(h, LayoutMagic);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h[8..], LayoutVersion);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h[12..], (uint)kind);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h[16..], (uint)_capacity);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h[20..], (uint)PaddedCapacity);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h[24..], buckets);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h[28..], Ways);
        ReadOnlySpan<nuint> regions = [(nuint)_tag, (nuint)_first, (nuint)_last, (nuint)_records, (nuint)_spare, (nuint)_refBits, (nuint)_buckets];
        for (int i = 0; i < regions.Length; i++)
        {
            // Offsets from the header, in 64-byte lines.
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h[(32 + (4 * i))..], (uint)((regions[i] - (nuint)header) / PinnedBuffer.Alignment));
        }

        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h[60..], (uint)(_buffer.Length / PinnedBuffer.Alignment));
    }

    // ---- readers -----------------------------------------------------------------------------------------

    /// <summary>
    /// Reader side: finds the entry on the probe path of <paramref name="hash"/> whose tag equals <paramref name="tag"/>
    /// under <paramref name="tagMask"/>, whose first equals <paramref name="first"/> and (when <paramref name="last"/> is
    /// not 0) whose last equals <paramref name="last"/>; returns a consistent copy of its tag and value.
    /// </summary>
    public bool TryRead(ulong hash, ulong tagMask, ulong tag, ulong first, ulong last, out ulong foundTag, out ulong value)
    {
        // Pointers in locals: the reference-bit store below must not make the JIT reload them.
        IndexBucket* buckets = _buckets;
        SlotRecord* records = _records;
        uint mask = _bucketMask;
        uint capacity = (uint)_capacity;
        uint b = (uint)hash & mask;
        ulong pattern = FingerprintOf(hash) * ByteOnes;
        uint steps = 0;
        while (true)
        {
            IndexBucket* bucket = buckets + b;
            uint version = Volatile.Read(ref bucket->Version);
            if ((version & 1) != 0)
            {
                WaitForWriter(); // a writer is inside this bucket for a few nanoseconds
                continue;
            }

            ulong matches = ZeroBytes(bucket->Fingerprints ^ pattern);
            uint slot = uint.MaxValue;
            ulong t = 0, v = 0;
            while (matches != 0)
            {
                uint s = bucket->Slots[BitOperations.TrailingZeroCount(matches) >> 3];
                matches &= matches - 1;
                if (s >= capacity)
                {
                    break; // only a way read under a racing writer; the version check below retries
                }

                SlotRecord* r = records + s;
                t = r->Tag;
                if ((t & tagMask) == tag && r->First == first && (last == 0 || r->Last == last))
                {
                    v = r->Value;
                    slot = s;
                    break;
                }
            }

            uint overflow = bucket->Overflow;
            Volatile.ReadBarrier();
            if (Volatile.Read(ref bucket->Version) != version)
            {
                continue;
            }

            if (slot != uint.MaxValue)
            {
                // Hit. CLOCK reference bit: read first, so a hot entry's word is not written on every hit.
                ulong* word = _refBits + (slot >> 6);
                ulong bit = 1UL << (int)slot;
                if ((*word & bit) == 0)
                {
                    *word |= bit;
                }

                foundTag = t;
                value = v;
                return true;
            }

            if (overflow == 0 || ++steps > mask)
            {
                // Miss.
                foundTag = 0;
                value = 0;
                return false;
            }

            b = (b + 1) & mask;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void WaitForWriter() => Thread.SpinWait(1);

    // ---- writer ------------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BeginWrite(IndexBucket* bucket)
    {
        Volatile.Write(ref bucket->Version, bucket->Version + 1);
        Volatile.WriteBarrier();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void EndWrite(IndexBucket* bucket) => Volatile.Write(ref bucket->Version, bucket->Version + 1);

    /// <summary>True when every slot holds a live entry (the caller must evict first).</summary>
    public bool IsFull => _count == _capacity;

    /// <summary>
    /// Writer side: the live slot on the probe path of <paramref name="hash"/> whose tag equals <paramref name="tag"/>
    /// under <paramref name="tagMask"/> and whose span is [first, last], or -1; <paramref name="bucket"/> is the bucket
    /// holding it (for <see cref="Update"/>).
    /// </summary>
    public int Find(ulong hash, ulong tagMask, ulong tag, ulong first, ulong last, out int bucket)
    {
        uint b = (uint)hash & _bucketMask;
        ulong pattern = FingerprintOf(hash) * ByteOnes;
        for (uint steps = 0; steps <= _bucketMask; steps++)
        {
            IndexLineTouches++;
            IndexBucket* ib = _buckets + b;
            ulong matches = ZeroBytes(ib->Fingerprints ^ pattern);
            while (matches != 0)
            {
                uint s = ib->Slots[BitOperations.TrailingZeroCount(matches) >> 3];
                matches &= matches - 1;
                SlotRecord* r = _records + s;
                if ((r->Tag & tagMask) == tag && r->First == first && r->Last == last)
                {
                    bucket = (int)b;
                    return (int)s;
                }
            }

            if (ib->Overflow == 0)
            {
                break;
            }

            b = (b + 1) & _bucketMask;
        }

        bucket = -1;
        return -1;
    }

    /// <summary>
    /// Takes a slot for a new entry: a spare one (returned with <paramref name="dead"/> true when it was killed by a
    /// scan: it is still linked, and the caller must <see cref="UnlinkDead"/> it with the hash of its old entry, whose tag
    /// is <paramref name="deadTag"/> without the valid bit, before linking it anew), else the next one above the
    /// high-water mark. The store must not be full.
    /// </summary>
    public int Allocate(out bool dead, out ulong deadTag)
    {
        FastAssert.True(!IsFull);
        int slot;
        if (_spareCount != 0)
        {
            // Kill pushes a slot with DeadFlag (it is still linked), Unlink without it: the tag word cannot tell them
            // apart, since a dead entry's tag may be 0 once its valid bit is cleared.
            int spare = _spare[--_spareCount];
            slot = spare & ~DeadFlag;
            dead = (spare & DeadFlag) != 0;
            deadTag = dead ? _tag[slot] : 0;
            FastAssert.True((_tag[slot] & ValidBit) == 0);
        }
        else
        {
            slot = _highWater++;
            deadTag = 0;
            dead = false;
        }

        _count++;
        return slot;
    }

    /// <summary>Removes a live slot without unlinking it: clears its valid bit (column and record) and pushes it on the
    /// spare stack.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Kill(int slot)
    {
        FastAssert.True((_tag[slot] & ValidBit) != 0);
        _tag[slot] &= ~ValidBit;
        _records[slot].Tag &= ~ValidBit;
        _spare[_spareCount++] = slot | DeadFlag;
        _count--;
        _removed++;
    }

    /// <summary>Takes a dead slot (from <see cref="Allocate"/>) out of the index; <paramref name="hash"/> is the hash of
    /// its old entry. The slot stays allocated to the caller.</summary>
    public void UnlinkDead(ulong hash, int slot)
    {
        RemoveFromIndex(hash, slot);
        _tag[slot] = 0;
        _records[slot].Tag = 0;
    }

    /// <summary>Fills a slot taken by <see cref="Allocate"/> and adds it to the index at the first free way on the probe
    /// path of <paramref name="hash"/>.</summary>
    public void Link(ulong hash, int slot, ulong tag, ulong first, ulong last, ulong value)
    {
        _inserted++;

        // The slot is in no bucket now, so its record can be written before the way that publishes it.
        SlotRecord* r = _records + slot;
        r->First = first;
        r->Last = last;
        r->Value = value;
        r->Tag = tag;
        _first[slot] = first;
        _last[slot] = last;
        _tag[slot] = tag;
        _refBits[slot >> 6] &= ~(1UL << slot);

        uint b = (uint)hash & _bucketMask;
        while (true)
        {
            IndexBucket* ib = _buckets + b;
            ulong free = ZeroBytes(ib->Fingerprints);
            if (free != 0)
            {
                int way = BitOperations.TrailingZeroCount(free) >> 3;
                BeginWrite(ib);
                ib->Slots[way] = (uint)slot;
                ((byte*)&ib->Fingerprints)[way] = FingerprintOf(hash);
                EndWrite(ib);
                return;
            }

            // Full bucket: the entry passes it (ways ≥ 2 × capacity, so a free way exists further on).
            ib->Overflow++;
            b = (b + 1) & _bucketMask;
            IndexLineTouches++; // the home bucket was counted by the caller's Find
        }
    }

    /// <summary>Replaces the tag and value of a linked slot found by <see cref="Find"/> in <paramref name="bucket"/>
    /// (same identity, new translation).</summary>
    public void Update(int bucket, int slot, ulong tag, ulong value)
    {
        _replaced++;
        IndexBucket* ib = _buckets + bucket;
        BeginWrite(ib);
        _records[slot].Tag = tag;
        _records[slot].Value = value;
        _tag[slot] = tag;
        EndWrite(ib);
    }

    /// <summary>Takes a live slot out of the index (<paramref name="hash"/> is its entry's hash), clears its tag and
    /// pushes it on the spare stack.</summary>
    public void Unlink(ulong hash, int slot)
    {
        FastAssert.True((_tag[slot] & ValidBit) != 0);
        RemoveFromIndex(hash, slot);
        _tag[slot] = 0;
        _records[slot].Tag = 0;
        _spare[_spareCount++] = slot;
        _count--;
        _removed++;
    }

    private void RemoveFromIndex(ulong hash, int slot)
    {
        uint home = (uint)hash & _bucketMask;
        uint b = home;
        ulong pattern = FingerprintOf(hash) * ByteOnes;
        for (uint steps = 0; steps <= _bucketMask; steps++)
        {
            IndexLineTouches++;
            IndexBucket* ib = _buckets + b;
            ulong matches = ZeroBytes(ib->Fingerprints ^ pattern);
            while (matches != 0)
            {
                int way = BitOperations.TrailingZeroCount(matches) >> 3;
                matches &= matches - 1;
                if (ib->Slots[way] == (uint)slot)
                {
                    BeginWrite(ib);
                    ((byte*)&ib->Fingerprints)[way] = 0;
                    EndWrite(ib);

                    // The entry no longer passes the buckets before it.
                    for (uint x = home; x != b; x = (x + 1) & _bucketMask)
                    {
                        _buckets[x].Overflow--;
                    }

                    return;
                }
            }

            b = (b + 1) & _bucketMask;
        }

        FastAssert.True(false, "slot not found on its probe path");
    }

    /// <summary>Writer side: a cursor over the ways on the probe path of <paramref name="hash"/> whose fingerprint is
    /// the hash's (see <see cref="NextOnPath"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PathCursor PathOf(ulong hash) => new((uint)hash & _bucketMask, FingerprintOf(hash) * ByteOnes);

    /// <summary>
    /// Writer side: the slot of the next way on the cursor's probe path whose fingerprint matches the path's hash (every
    /// entry with that hash, and the few others whose fingerprint collides), or false at the end of the path. The
    /// caller may remove the slot it was given (<see cref="UnlinkOnPath"/>, <see cref="Unlink"/>) before asking for the
    /// next one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool NextOnPath(ref PathCursor cursor, out int slot)
    {
        while (true)
        {
            IndexBucket* ib = _buckets + cursor.Bucket;
            if (cursor.Way == 0)
            {
                IndexLineTouches++;
            }

            if (cursor.Way < Ways)
            {
                // Matching ways at or after the cursor's way (bit 8k+7 marks way k).
                ulong matches = ZeroBytes(ib->Fingerprints ^ cursor.Pattern) & (ulong.MaxValue << (cursor.Way * 8));
                if (matches != 0)
                {
                    int way = BitOperations.TrailingZeroCount(matches) >> 3;
                    cursor.Way = way + 1;
                    slot = (int)ib->Slots[way];
                    return true;
                }
            }

            if (ib->Overflow == 0 || ++cursor.Steps > _bucketMask)
            {
                slot = -1;
                return false;
            }

            cursor.Bucket = (cursor.Bucket + 1) & _bucketMask;
            cursor.Way = 0;
        }
    }

    /// <summary>
    /// Writer side: <see cref="Unlink"/> of the slot <see cref="NextOnPath"/> just returned, when that slot's entry has
    /// the path's own hash (its home is the path's first bucket): the way is known, so nothing is searched.
    /// </summary>
    public void UnlinkOnPath(ref PathCursor cursor, int slot)
    {
        FastAssert.True((_tag[slot] & ValidBit) != 0);
        IndexBucket* ib = _buckets + cursor.Bucket;
        int way = cursor.Way - 1;
        FastAssert.True(way >= 0 && ib->Slots[way] == (uint)slot);
        BeginWrite(ib);
        ((byte*)&ib->Fingerprints)[way] = 0;
        EndWrite(ib);

        // The entry no longer passes the buckets before it.
        for (uint x = cursor.Home; x != cursor.Bucket; x = (x + 1) & _bucketMask)
        {
            _buckets[x].Overflow--;
        }

        _tag[slot] = 0;
        _records[slot].Tag = 0;
        _spare[_spareCount++] = slot;
        _count--;
        _removed++;
    }

    /// <summary>Diagnostic (writer side, tests): a bucket's overflow count and number of occupied ways.</summary>
    public (uint Overflow, int Occupied) BucketState(int bucket)
    {
        IndexBucket* ib = _buckets + (uint)bucket;
        return (ib->Overflow, Ways - (BitOperations.PopCount(ZeroBytes(ib->Fingerprints))));
    }

    /// <summary>Diagnostic (writer side, tests): the bucket whose ways hold <paramref name="slot"/>, or -1.</summary>
    public int BucketHolding(int slot)
    {
        for (uint b = 0; b <= _bucketMask; b++)
        {
            IndexBucket* ib = _buckets + b;
            for (int way = 0; way < Ways; way++)
            {
                if (((byte*)&ib->Fingerprints)[way] != 0 && ib->Slots[way] == (uint)slot)
                {
                    return (int)b;
                }
            }
        }

        return -1;
    }

    /// <summary>CLOCK victim: the first slot from the hand whose reference bit is clear, clearing bits on the way. The
    /// sweep is bounded: concurrent lookups set reference bits again while the hand moves, so after one full revolution
    /// the next live slot is taken whatever its bit (a fill never waits on its readers).</summary>
    public int ClockVictim()
    {
        FastAssert.True(_count > 0);
        int limit = _highWater;
        int examined = 0;
        while (true)
        {
            if (_hand >= limit)
            {
                _hand = 0;
            }

            int slot = _hand++;
            if ((_tag[slot] & ValidBit) == 0)
            {
                continue;
            }

            ref ulong word = ref _refBits[slot >> 6];
            ulong bit = 1UL << slot;
            if ((word & bit) != 0 && ++examined <= limit)
            {
                word &= ~bit;
                continue;
            }

            _evicted++;
            return slot;
        }
    }

    /// <summary>Empties the store: every bucket's ways are cleared under its version; then the slot columns are reset
    /// (no reader can reach a slot any more).</summary>
    public void Clear()
    {
        for (uint b = 0; b <= _bucketMask; b++)
        {
            IndexBucket* ib = _buckets + b;
            BeginWrite(ib);
            ib->Fingerprints = 0;
            ib->Overflow = 0;
            EndWrite(ib);
        }

        int used = (int)ScanEnd;
        new Span<ulong>(_tag, used).Clear();
        for (int s = 0; s < used; s++)
        {
            _records[s].Tag = 0;
        }

        _highWater = 0;
        _spareCount = 0;
        _removed += _count;
        _count = 0;
        _hand = 0;
    }

    public void Dispose() => _buffer.Dispose();
}

/// <summary>A writer's position on a probe path of the index (see <see cref="SlotStore.NextOnPath"/>).</summary>
internal struct PathCursor
{
    public PathCursor(uint home, ulong pattern)
    {
        Home = home;
        Bucket = home;
        Pattern = pattern;
    }

    /// <summary>The path's first bucket (the home of its hash).</summary>
    public uint Home { get; }

    /// <summary>The hash's fingerprint in every byte.</summary>
    public ulong Pattern { get; }

    public uint Bucket { get; set; }

    public int Way { get; set; }

    public uint Steps { get; set; }
}
