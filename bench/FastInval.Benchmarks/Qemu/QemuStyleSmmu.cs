using System.Buffers.Binary;
using System.Numerics;

namespace FastInval.Benchmarks.Qemu;

/// <summary>
/// A C# port of QEMU's SMMU IOTLB model (hw/arm/smmu-common.c, spec/smmuv3-command-queue.md §4.5–4.6): a hash table whose
/// keys (iova, asid, vmid, tg, level) and entries are separate heap objects, lookups probing each level, and range
/// invalidation split into naturally aligned power-of-two chunks, each a remove-with-predicate over every entry unless
/// the exact-key shortcut (TTL ≠ 0, one page, ASID known) removes it. QEMU empties the table at 256 entries; the limit is
/// a parameter so benchmarks can hold realistic sizes.
/// </summary>
internal sealed class QemuStyleSmmuIotlb
{
    /// <summary>QEMU's SMMU_IOTLB_MAX_SIZE.</summary>
    public const int QemuMaxSize = 256;

    /// <summary>No limit.</summary>
    public const int Unlimited = int.MaxValue;

    internal sealed class Key : IEquatable<Key>
    {
        public ulong Iova;
        public int Asid;
        public int Vmid;
        public byte Tg;
        public byte Level;

        public bool Equals(Key? o) => o is not null && o.Iova == Iova && o.Asid == Asid && o.Vmid == Vmid && o.Tg == Tg && o.Level == Level;

        public override bool Equals(object? obj) => Equals(obj as Key);

        // Jenkins-style mix of the five fields, as smmu_iotlb_key_hash does (a += asid + vmid + level + tg; b, c = iova halves).
        public override int GetHashCode()
        {
            uint a = 0xdeadbeef + 24, b = a, c = a;
            a += (uint)(Asid + Vmid + Level + Tg);
            b += (uint)Iova;
            c += (uint)(Iova >> 32);
            c ^= b; c -= BitOperations.RotateLeft(b, 14);
            a ^= c; a -= BitOperations.RotateLeft(c, 11);
            b ^= a; b -= BitOperations.RotateLeft(a, 25);
            c ^= b; c -= BitOperations.RotateLeft(b, 16);
            a ^= c; a -= BitOperations.RotateLeft(c, 4);
            b ^= a; b -= BitOperations.RotateLeft(a, 14);
            c ^= b; c -= BitOperations.RotateLeft(b, 24);
            return (int)c;
        }
    }

    internal sealed class Entry
    {
        public ulong Iova;
        public ulong Translated;
        public ulong AddrMask;
        public byte Level;
        public byte Granule;
    }

    private readonly Dictionary<Key, Entry> _table = [];
    private readonly int _maxSize;

    public QemuStyleSmmuIotlb(int maxSize) => _maxSize = maxSize;

    public int Count => _table.Count;

    /// <summary>smmu_iotlb_insert (4 KiB granule, tg = 1).</summary>
    public void Insert(int asid, int vmid, ulong iova, int level, ulong translated)
    {
        if (_table.Count >= _maxSize)
        {
            _table.Clear();
        }

        ulong size = 1UL << (12 + (9 * (3 - level)));
        var key = new Key { Iova = iova & ~(size - 1), Asid = asid, Vmid = vmid, Tg = 1, Level = (byte)level };
        _table[key] = new Entry { Iova = key.Iova, Translated = translated, AddrMask = size - 1, Level = (byte)level, Granule = 12 };
    }

    /// <summary>smmuv3_range_inval for a stage-1 NH_VA: the command's range split into aligned power-of-two chunks.</summary>
    public void RangeInvalidate(int asid, int vmid, ulong addr, int tg, int num, int scale, int ttl)
    {
        if (tg == 0)
        {
            InvalidateIova(asid, vmid, addr, tg, 1, ttl);
            return;
        }

        int granule = 10 + (2 * tg);
        ulong numPages = (ulong)(num + 1) << scale;
        ulong end = addr + (numPages << granule) - 1;
        while (addr != end + 1)
        {
            ulong mask = AlignedPow2Mask(addr, end);
            InvalidateIova(asid, vmid, addr, tg, (mask + 1) >> granule, ttl);
            addr += mask + 1;
        }
    }

    /// <summary>dma_aligned_pow2_mask: the largest aligned power-of-two block starting at start within [start, end].</summary>
    private static ulong AlignedPow2Mask(ulong start, ulong end)
    {
        ulong alignMask = start == 0 ? ulong.MaxValue : (start & (0 - start)) - 1;
        ulong size = end - start + 1;
        ulong sizeMask = size == 0 ? ulong.MaxValue : (1UL << (63 - BitOperations.LeadingZeroCount(size))) - 1;
        return Math.Min(alignMask, sizeMask);
    }

    /// <summary>smmu_iotlb_inv_iova: exact-key shortcut, else a remove-with-predicate over every entry.</summary>
    public void InvalidateIova(int asid, int vmid, ulong iova, int tg, ulong numPages, int ttl)
    {
        if (ttl != 0 && numPages == 1 && asid >= 0)
        {
            var key = new Key { Iova = iova, Asid = asid, Vmid = vmid, Tg = (byte)tg, Level = (byte)ttl };
            if (_table.Remove(key))
            {
                return;
            }
        }

        int granule = tg != 0 ? 10 + (2 * tg) : 12;
        ulong mask = (numPages << granule) - 1;
        foreach ((Key k, Entry e) in _table)
        {
            if ((asid < 0 || k.Asid == asid) && (vmid < 0 || k.Vmid == vmid) &&
                (((iova & ~e.AddrMask) == e.Iova) || ((e.Iova & ~mask) == iova)))
            {
                _table.Remove(k);
            }
        }
    }
}

/// <summary>
/// QEMU's command consumer (smmuv3_cmdq_consume) over <see cref="QemuStyleSmmuIotlb"/>, limited to the commands the
/// benchmark uses: TLBI_NH_VA (range invalidation) and CMD_SYNC; other opcodes are consumed as no-ops. Each command is
/// read with its own 16-byte DMA read and decoded word by word, as QEMU does.
/// </summary>
internal sealed class QemuStyleCommandQueue
{
    private readonly GuestMemory _memory;
    private readonly QemuStyleSmmuIotlb _iotlb;
    private readonly ulong _base;
    private readonly int _log2;
    private uint _cons;

    public QemuStyleCommandQueue(GuestMemory memory, QemuStyleSmmuIotlb iotlb, ulong queueBase, int log2)
    {
        _memory = memory;
        _iotlb = iotlb;
        _base = queueBase;
        _log2 = log2;
    }

    /// <summary>A CMDQ_PROD write: consume until CONS = PROD.</summary>
    public void WriteProd(uint prod)
    {
        uint span = (2u << _log2) - 1;
        Span<byte> cmd = stackalloc byte[16];
        while (((_cons ^ prod) & span) != 0)
        {
            _memory.TryRead(_base + ((_cons & ((1u << _log2) - 1)) * 16UL), cmd);
            uint w0 = BinaryPrimitives.ReadUInt32LittleEndian(cmd), w1 = BinaryPrimitives.ReadUInt32LittleEndian(cmd[4..]);
            uint w2 = BinaryPrimitives.ReadUInt32LittleEndian(cmd[8..]), w3 = BinaryPrimitives.ReadUInt32LittleEndian(cmd[12..]);
            if ((w0 & 0xFF) == 0x12)
            {
                ulong addr = ((ulong)w3 << 32) | (w2 & 0xFFFF_F000);
                _iotlb.RangeInvalidate((int)(w1 >> 16), (int)(w1 & 0xFFFF), addr, (int)((w2 >> 10) & 3), (int)((w0 >> 12) & 0x1F),
                    (int)((w0 >> 20) & 0x1F), (int)((w2 >> 8) & 3));
            }

            _cons = (_cons & ~span) | ((_cons + 1) & span);
        }
    }
}
