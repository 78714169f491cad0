using System.Buffers.Binary;

namespace FastInval.Benchmarks.Qemu;

/// <summary>
/// A C# model of QEMU's AMD-Vi IOTLB (hw/i386/amd_iommu.c): a GLib hash table keyed by a heap-allocated 64-bit key,
/// gfn | DeviceID &lt;&lt; 36 (<c>AMDVI_DEVID_SHIFT</c>), hashed by its low 32 bits (<c>amdvi_uint64_hash</c>), whose values
/// are heap-allocated entries holding the DomainID. QEMU keeps no index by domain, so INVALIDATE_IOMMU_PAGES
/// (<c>amdvi_inval_pages</c>) removes every entry of the domain, whatever the address, by walking the whole table
/// (<c>g_hash_table_foreach_remove</c> with <c>amdvi_iotlb_remove_by_domid</c>); INVALIDATE_IOTLB_PAGES with S = 1
/// walks it by DeviceID and with S = 0 removes one key. An update into a table holding <c>AMDVI_IOTLB_MAX_SIZE</c>
/// (1024) entries empties it first; the limit is a parameter so benchmarks can hold realistic sizes.
/// </summary>
internal sealed class QemuStyleAmdViIotlb
{
    /// <summary>QEMU's AMDVI_IOTLB_MAX_SIZE.</summary>
    public const int QemuMaxSize = 1024;

    /// <summary>No limit.</summary>
    public const int Unlimited = int.MaxValue;

    private const int DeviceIdShift = 36;

    /// <summary>The g_new'd uint64 key with QEMU's hash and equality.</summary>
    internal sealed class Key(ulong value) : IEquatable<Key>
    {
        public readonly ulong Value = value;

        public bool Equals(Key? other) => other is not null && other.Value == Value;

        public override bool Equals(object? obj) => Equals(obj as Key);

        public override int GetHashCode() => (int)(uint)Value; // (guint)*(const uint64_t *)v
    }

    /// <summary>AMDVIIOTLBEntry.</summary>
    internal sealed class Entry
    {
        public ushort DomainId;
        public ushort DeviceId;
        public ulong Perms;
        public ulong TranslatedAddress;
        public ulong PageMask;
    }

    private readonly Dictionary<Key, Entry> _table = [];
    private readonly int _maxSize;

    public QemuStyleAmdViIotlb(int maxSize) => _maxSize = maxSize;

    public int Count => _table.Count;

    /// <summary>amdvi_update_iotlb: a 4 KiB translation of <paramref name="gpa"/> for <paramref name="deviceId"/>.</summary>
    public void Update(ushort deviceId, ulong gpa, ulong translated, ushort domainId)
    {
        if (_table.Count >= _maxSize)
        {
            _table.Clear();
        }

        var key = new Key((gpa >> 12) | ((ulong)deviceId << DeviceIdShift));
        _table[key] = new Entry { DomainId = domainId, DeviceId = deviceId, Perms = 3, TranslatedAddress = translated, PageMask = 0xFFF };
    }

    /// <summary>amdvi_iotlb_lookup.</summary>
    public bool Lookup(ushort deviceId, ulong address) => _table.ContainsKey(new Key((address >> 12) | ((ulong)deviceId << DeviceIdShift)));

    /// <summary>g_hash_table_foreach_remove(amdvi_iotlb_remove_by_domid).</summary>
    public void RemoveByDomain(ushort domainId) => RemoveWhere(static (e, d) => e.DomainId == d, domainId);

    /// <summary>g_hash_table_foreach_remove(amdvi_iotlb_remove_by_devid).</summary>
    public void RemoveByDevice(ushort deviceId) => RemoveWhere(static (e, d) => e.DeviceId == d, deviceId);

    /// <summary>amdvi_iotlb_remove_page.</summary>
    public void RemovePage(ulong address, ushort deviceId) => _table.Remove(new Key((address >> 12) | ((ulong)deviceId << DeviceIdShift)));

    /// <summary>amdvi_iotlb_reset.</summary>
    public void Reset() => _table.Clear();

    /// <summary>Takes every entry out in random order and puts it back, so that a walk meets entries in hash order rather
    /// than allocation order, as GLib's does (see <see cref="QemuStyleIotlb.Age"/>).</summary>
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

    // GLib calls the predicate through a function pointer for every entry and unlinks the matches as it goes.
    private void RemoveWhere(Func<Entry, ushort, bool> predicate, ushort value)
    {
        foreach ((Key k, Entry e) in _table)
        {
            if (predicate(e, value))
            {
                _table.Remove(k);
            }
        }
    }
}

/// <summary>
/// QEMU's AMD-Vi command buffer (<c>amdvi_handle_cmdtail_write</c> → <c>amdvi_cmdbuf_run</c> → <c>amdvi_cmdbuf_exec</c>)
/// over <see cref="QemuStyleAmdViIotlb"/>: a tail write runs the buffer from the head, each command read with its own
/// 16-byte DMA read and dispatched on its opcode, with QEMU's reserved-bit checks (logged, never stopping), the
/// head written as head + 16 before the wrap check. COMPLETION_WAIT stores its 64-bit data and sets ComWaitInt;
/// INVALIDATE_IOMMU_PAGES removes the whole domain (no notifiers are registered, so <c>amdvi_sync_domain</c> walks an
/// empty list); INVALIDATE_IOTLB_PAGES removes by device or one page; the other commands only check reserved bits.
/// </summary>
internal sealed class QemuStyleAmdViCommandBuffer
{
    private readonly GuestMemory _memory;
    private readonly QemuStyleAmdViIotlb _iotlb;
    private readonly ulong _base;
    private readonly ulong _entries;
    private ulong _head;

    public QemuStyleAmdViCommandBuffer(GuestMemory memory, QemuStyleAmdViIotlb iotlb, ulong bufferBase, int log2Entries)
    {
        _memory = memory;
        _iotlb = iotlb;
        _base = bufferBase;
        _entries = 1UL << log2Entries;
    }

    /// <summary>The head as the register reads it.</summary>
    public ulong Head { get; private set; }

    /// <summary>Illegal-command events QEMU would have logged.</summary>
    public int IllegalLogged { get; private set; }

    /// <summary>Status.ComWaitInt.</summary>
    public bool CompletionInterrupt { get; set; }

    /// <summary>A Command Buffer Tail write.</summary>
    public void WriteTail(ulong value)
    {
        ulong tail = value & 0x7_FFF0UL;
        Span<ulong> cmd = stackalloc ulong[2];
        Span<byte> bytes = stackalloc byte[16];
        while (_head != tail)
        {
            if (!_memory.TryRead(_base + _head, bytes))
            {
                IllegalLogged++; // amdvi_log_command_error
            }
            else
            {
                cmd[0] = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
                cmd[1] = BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]);
                Execute(cmd);
            }

            _head += 16;
            Head = _head;
            if (_head >= _entries * 16)
            {
                _head = 0;
            }
        }
    }

    private static ulong Extract(ulong word, int start, int length) => (word >> start) & ((1UL << length) - 1);

    private void Execute(ReadOnlySpan<ulong> cmd)
    {
        switch (Extract(cmd[0], 60, 4))
        {
            case 1: // COMPLETION_WAIT
                if (Extract(cmd[0], 52, 8) != 0)
                {
                    IllegalLogged++;
                }

                if (Extract(cmd[0], 0, 1) != 0)
                {
                    Span<byte> data = stackalloc byte[8];
                    BinaryPrimitives.WriteUInt64LittleEndian(data, cmd[1]);
                    _memory.TryWrite(Extract(cmd[0], 3, 49) << 3, data);
                }

                if (Extract(cmd[0], 1, 1) != 0)
                {
                    CompletionInterrupt = true;
                }

                break;
            case 3: // INVALIDATE_IOMMU_PAGES
                if (Extract(cmd[0], 20, 12) != 0 || Extract(cmd[0], 48, 12) != 0 || Extract(cmd[1], 3, 9) != 0)
                {
                    IllegalLogged++;
                }

                _iotlb.RemoveByDomain((ushort)Extract(cmd[0], 32, 16));
                break;
            case 4: // INVALIDATE_IOTLB_PAGES
                if (Extract(cmd[1], 1, 1) != 0 || Extract(cmd[1], 3, 1) != 0 || Extract(cmd[1], 6, 6) != 0)
                {
                    IllegalLogged++;
                    break;
                }

                if (Extract(cmd[1], 0, 1) != 0)
                {
                    _iotlb.RemoveByDevice((ushort)Extract(cmd[0], 0, 16));
                }
                else
                {
                    _iotlb.RemovePage(Extract(cmd[1], 12, 52) << 12, (ushort)Extract(cmd[0], 0, 16));
                }

                break;
            case 8: // INVALIDATE_IOMMU_ALL
                _iotlb.Reset();
                break;
            default:
                break;
        }
    }
}
