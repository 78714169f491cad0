using System.Runtime.CompilerServices;
using FastInval.Internals;
using FastInval.Kernels;

namespace FastInval.Caches;

/// <summary>
/// Structure-of-arrays slot storage with a chained hash index, shared by every cache. Columns, all in one
/// <see cref="PinnedBuffer"/>: <c>Tag</c> (u64, scanned by the kernels), <c>First</c>/<c>Last</c> (u64, the inclusive span),
/// <c>Value</c> (u64), <c>Next</c> (i32, chain link + 1, 0 = end), the CLOCK reference bitmap (1 bit per slot), the bucket
/// heads (i32, slot + 1) and the sequence counters (i32, one per stripe of buckets).
/// </summary>
/// <remarks>
/// <para><b>Concurrency (striped seqlock).</b> One writer at a time (fill or invalidate, serialized by the owning cache's writer lock);
/// any number of concurrent readers. Every change to a slot happens while the sequence counter of the stripe of the
/// bucket whose chain holds it is odd: link, unlink, value update. A reader samples an even counter, walks the chain,
/// copies the slot's columns, and accepts the copy only if the counter is unchanged, otherwise it retries. A slot is
/// therefore never read half-written (no torn entry), and once the writer's call returns every later reader sees the
/// chain without the removed slot (no stale translation). Readers re-check the counter every few steps, so a chain that
/// changes under them never traps them in a loop. Counters are striped (1,024 stripes) so they stay in L1 while the heads
/// (4 bytes per bucket) stay in L2: a hit costs one L2 access and one miss to the slot's columns. Capacity never changes,
/// so columns never move.</para>
/// <para><b>Removal</b> has two forms. <see cref="Unlink"/> takes a slot out of its chain at once (used where the chain is
/// at hand: index probes, eviction). <see cref="Kill"/> only clears the slot's valid bit and pushes it on the dead
/// stack (used by vector scans, so a flush that removes many entries costs a store per entry, not a chain walk): a
/// dead slot stays in its chain, invisible to every lookup and predicate (all require the valid bit), until a fill
/// reuses it and unlinks it from its old chain under that chain's counter. Clearing the valid bit is one aligned 8-byte
/// store, so a lookup that starts after the flush returns cannot see the entry; one that started before may (the
/// invalidation had not completed), and the slot's other columns stay intact until reuse, so no answer is torn.</para>
/// <para><b>Free slots</b> (never used or unlinked) have a zero tag and are threaded through <c>Next</c>. A fill takes a
/// free slot, else a dead one, else the next slot above the high-water mark, else evicts. Scans cover [0, high-water
/// mark rounded up to 8): tables that have held few entries scan little even with a huge capacity.</para>
/// <para><b>Eviction</b> when full: CLOCK (second chance). A hand sweeps slots; a slot whose reference bit is set (a
/// lookup hit it since the last sweep) gets its bit cleared and is skipped; the first slot with a clear bit is evicted.
/// One entry per fill, never the cache wholesale. Readers set reference bits without atomics: a lost bit only makes an
/// entry a little likelier to be evicted.</para>
/// </remarks>
internal sealed unsafe class SlotStore : IDisposable
{
    private const int Stripes = 1024;

    private readonly PinnedBuffer _buffer;
    private readonly ulong* _tag;
    private readonly ulong* _first;
    private readonly ulong* _last;
    private readonly ulong* _value;
    private readonly int* _next;
    private readonly int* _dead;
    private readonly ulong* _refBits;
    private readonly int* _heads;
    private readonly int* _seqs;
    private readonly int _capacity;
    private readonly int _bucketMask;
    private int _highWater;
    private int _freeHead; // slot + 1, 0 = empty
    private int _deadCount;
    private int _count;
    private int _hand;

    public SlotStore(int capacity)
    {
        if (capacity < 1 || capacity > MaxCapacity)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(capacity), $"capacity must be between 1 and {MaxCapacity}");
        }

        _capacity = capacity;
        PaddedCapacity = (capacity + TagScan.Padding - 1) / TagScan.Padding * TagScan.Padding;
        int buckets = (int)Math.Max(8u, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity));
        _bucketMask = buckets - 1;

        nuint p = (nuint)PaddedCapacity;
        nuint refWords = (p + 63) / 64;
        nuint bytes = (PinnedBuffer.Align(p * 8) * 4) + (PinnedBuffer.Align(p * 4) * 2) + PinnedBuffer.Align(refWords * 8) +
                      PinnedBuffer.Align((nuint)buckets * 4) + PinnedBuffer.Align(Stripes * 4);
        _buffer = new PinnedBuffer(bytes);
        _tag = _buffer.Carve<ulong>(p);
        _first = _buffer.Carve<ulong>(p);
        _last = _buffer.Carve<ulong>(p);
        _value = _buffer.Carve<ulong>(p);
        _next = _buffer.Carve<int>(p);
        _dead = _buffer.Carve<int>(p);
        _refBits = _buffer.Carve<ulong>(refWords);
        _heads = _buffer.Carve<int>((nuint)buckets);
        _seqs = _buffer.Carve<int>(Stripes);
    }

    /// <summary>Largest supported capacity (2^28 slots: 268M entries, ~10 GiB).</summary>
    public const int MaxCapacity = 1 << 28;

    public int Capacity => _capacity;

    public int PaddedCapacity { get; }

    public int Count => _count;

    public int BucketCount => _bucketMask + 1;

    /// <summary>Bytes of pinned memory owned.</summary>
    public long Bytes => (long)_buffer.Length;

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
    public ulong Value(int slot) => _value[slot];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int BucketOf(ulong hash) => (int)(hash & (ulong)_bucketMask);

    /// <summary>Writer side: first slot of a bucket's chain, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Head(int bucket) => _heads[bucket] - 1;

    /// <summary>Writer side: next slot in the chain, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Next(int slot) => _next[slot] - 1;

    // ---- readers -----------------------------------------------------------------------------------------

    /// <summary>
    /// Reader side: finds the slot of <paramref name="bucket"/> whose tag equals <paramref name="tag"/> under
    /// <paramref name="tagMask"/>, whose first equals <paramref name="first"/> and (when <paramref name="last"/> is not 0)
    /// whose last equals <paramref name="last"/>; returns a consistent copy of its tag and value.
    /// </summary>
    public bool TryRead(int bucket, ulong tagMask, ulong tag, ulong first, ulong last, out ulong foundTag, out ulong value)
    {
        // Column pointers in locals: the reference-bit store below must not make the JIT reload them.
        ulong* tags = _tag, firsts = _first, lasts = _last, values = _value;
        int* next = _next;
        ref int seqRef = ref _seqs[bucket & (Stripes - 1)];
        ref int head = ref _heads[bucket];
        while (true)
        {
            int seq = Volatile.Read(ref seqRef);
            if ((seq & 1) != 0)
            {
                WaitForWriter(); // the writer is inside this stripe for a few nanoseconds
                continue;
            }

            bool found = false;
            ulong t = 0, v = 0;
            int slot = head - 1;
            int steps = 0;
            while (slot >= 0)
            {
                t = tags[slot];
                if ((t & tagMask) == tag && firsts[slot] == first && (last == 0 || lasts[slot] == last))
                {
                    v = values[slot];
                    found = true;
                    break;
                }

                slot = next[slot] - 1;
                if (++steps == 32)
                {
                    // A chain that changes under a reader could lead it around; bail out to the counter check.
                    if (Volatile.Read(ref seqRef) != seq)
                    {
                        break;
                    }

                    steps = 0;
                }
            }

            Volatile.ReadBarrier();
            if (Volatile.Read(ref seqRef) == seq)
            {
                if (found)
                {
                    ulong* word = _refBits + (slot >> 6);
                    ulong bit = 1UL << slot;
                    if ((*word & bit) == 0)
                    {
                        *word |= bit;
                    }
                }

                foundTag = t;
                value = v;
                return found;
            }
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void WaitForWriter() => Thread.SpinWait(1);

    // ---- writer ------------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref int BeginWrite(int bucket)
    {
        ref int seq = ref _seqs[bucket & (Stripes - 1)];
        Volatile.Write(ref seq, seq + 1);
        Volatile.WriteBarrier();
        return ref seq;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void EndWrite(ref int seq) => Volatile.Write(ref seq, seq + 1);

    /// <summary>True when every slot holds a live entry (the caller must evict first).</summary>
    public bool IsFull => _count == _capacity;

    /// <summary>
    /// Takes a slot for a new entry: a free one, else a dead one (returned with <paramref name="deadTag"/> ≠ 0: the
    /// caller must unlink it from the chain its old tag hashes to before linking it anew), else the next one above the
    /// high-water mark. The store must not be full.
    /// </summary>
    public int Allocate(out ulong deadTag)
    {
        FastAssert.True(!IsFull);
        deadTag = 0;
        int slot;
        if (_freeHead != 0)
        {
            slot = _freeHead - 1;
            _freeHead = _next[slot];
        }
        else if (_deadCount != 0)
        {
            slot = _dead[--_deadCount];
            deadTag = _tag[slot];
            FastAssert.True(deadTag != 0 && (deadTag & ValidBit) == 0);
        }
        else
        {
            slot = _highWater++;
        }

        _count++;
        return slot;
    }

    private const ulong ValidBit = 1UL << 63;

    /// <summary>Removes a live slot without unlinking it: clears its valid bit and pushes it on the dead stack.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Kill(int slot)
    {
        FastAssert.True((_tag[slot] & ValidBit) != 0);
        _tag[slot] &= ~ValidBit;
        _dead[_deadCount++] = slot;
        _count--;
    }

    /// <summary>Takes a dead slot out of its chain (the caller found its bucket from the slot's tag); the slot stays
    /// allocated to the caller.</summary>
    public void UnlinkDead(int bucket, int slot)
    {
        ref int seq = ref BeginWrite(bucket);
        UnlinkFromChain(bucket, slot);
        _tag[slot] = 0;
        EndWrite(ref seq);
    }

    private void UnlinkFromChain(int bucket, int slot)
    {
        ref int head = ref _heads[bucket];
        int target = slot + 1;
        if (head == target)
        {
            head = _next[slot];
            return;
        }

        int prev = head - 1;
        while (prev >= 0 && _next[prev] != target)
        {
            prev = _next[prev] - 1;
        }

        FastAssert.True(prev >= 0, "slot not found in its bucket");
        if (prev >= 0)
        {
            _next[prev] = _next[slot];
        }
    }

    /// <summary>Fills a slot taken by <see cref="Allocate"/> and links it at the head of its bucket.</summary>
    public void Link(int bucket, int slot, ulong tag, ulong first, ulong last, ulong value)
    {
        ref int seq = ref BeginWrite(bucket);
        _first[slot] = first;
        _last[slot] = last;
        _value[slot] = value;
        _refBits[slot >> 6] &= ~(1UL << slot);
        _next[slot] = _heads[bucket];
        _tag[slot] = tag;
        _heads[bucket] = slot + 1;
        EndWrite(ref seq);
    }

    /// <summary>Replaces the tag and value of a linked slot (same identity, new translation).</summary>
    public void Update(int bucket, int slot, ulong tag, ulong value)
    {
        ref int seq = ref BeginWrite(bucket);
        _tag[slot] = tag;
        _value[slot] = value;
        EndWrite(ref seq);
    }

    /// <summary>Unlinks a live slot from its bucket's chain, clears its tag and returns it to the free list.</summary>
    public void Unlink(int bucket, int slot)
    {
        FastAssert.True((_tag[slot] & ValidBit) != 0);
        ref int seq = ref BeginWrite(bucket);
        UnlinkFromChain(bucket, slot);
        _tag[slot] = 0;
        EndWrite(ref seq);

        // The slot is out of every chain: thread it onto the free list (readers that still hold it re-check).
        _next[slot] = _freeHead;
        _freeHead = slot + 1;
        _count--;
    }

    /// <summary>CLOCK victim: the first slot from the hand whose reference bit is clear, clearing bits on the way.</summary>
    public int ClockVictim()
    {
        FastAssert.True(_count > 0);
        int limit = _highWater;
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
            if ((word & bit) != 0)
            {
                word &= ~bit;
                continue;
            }

            return slot;
        }
    }

    /// <summary>Empties the store: every counter goes odd, the heads are zeroed, every counter goes even; then the
    /// slot columns are reset (no reader can reach a slot any more).</summary>
    public void Clear()
    {
        for (int i = 0; i < Stripes; i++)
        {
            Volatile.Write(ref _seqs[i], _seqs[i] + 1);
        }

        Volatile.WriteBarrier();
        new Span<int>(_heads, _bucketMask + 1).Clear();
        for (int i = 0; i < Stripes; i++)
        {
            Volatile.Write(ref _seqs[i], _seqs[i] + 1);
        }

        nuint used = ScanEnd;
        new Span<ulong>(_tag, (int)used).Clear();
        new Span<int>(_next, (int)used).Clear();
        _highWater = 0;
        _freeHead = 0;
        _deadCount = 0;
        _count = 0;
        _hand = 0;
    }

    public void Dispose() => _buffer.Dispose();
}
