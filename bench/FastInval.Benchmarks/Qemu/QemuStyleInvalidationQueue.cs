using System.Buffers.Binary;

namespace FastInval.Benchmarks.Qemu;

/// <summary>
/// A C# model of QEMU's VT-d invalidation-queue front end (hw/i386/intel_iommu.c: <c>vtd_handle_iqt_write</c>,
/// <c>vtd_fetch_inv_desc</c>, <c>vtd_process_inv_desc</c>, <c>vtd_inv_desc_reserved_check</c>,
/// <c>vtd_process_piotlb_desc</c>, <c>vtd_process_iotlb_desc</c>, <c>vtd_process_wait_desc</c>), written from
/// spec/vtd-queued-invalidation.md §3.2–3.9, over <see cref="QemuStyleIotlb"/>: the baseline of the ring benchmark.
/// </summary>
/// <remarks>
/// Like QEMU it processes the queue synchronously inside the IQT write, one descriptor at a time: a DMA read of the
/// 16- or 32-byte descriptor from guest memory, the type dispatch, the reserved-bit check with QEMU's masks, then the
/// handler; every selective IOTLB invalidation is a <c>g_hash_table_foreach_remove</c> over the whole table. Modelled
/// descriptor types: IOTLB (0x2), PASID-based IOTLB (0x6), wait (0x5, SW or IF); any other type is an error, as is any
/// failure, which sets the IQE flag and stops (QEMU's <c>vtd_handle_inv_queue_error</c>; fault events are not modelled).
/// IOMMU notifiers (UNMAP events) are not modelled: the benchmark VM has none registered.
/// </remarks>
internal sealed class QemuStyleInvalidationQueue
{
    // VTD_INV_DESC_* masks and fields (intel_iommu_internal.h).
    private const ulong PiotlbRsvd0 = 0xfff000000000f1c0, PiotlbRsvd1 = 0xf80;
    private const ulong IotlbRsvd0 = 0xffffffff0000f100, IotlbRsvd1 = 0xf80;
    private const ulong WaitRsvd0 = 0xfffff180, WaitRsvd1 = 0x3;
    private const ulong AllOnes = ulong.MaxValue;

    private readonly GuestMemory _memory;
    private readonly QemuStyleIotlb _iotlb;
    private readonly ulong _iq;        // latched base
    private readonly bool _iqDw;       // 256-bit descriptors
    private readonly ushort _iqSize;   // in descriptors
    private ushort _iqHead;
    private ushort _iqTail;
    private readonly ulong[] _desc = new ulong[4];

    /// <summary>GCMD.QIE 0→1: latches the queue (base, size from QS, width).</summary>
    public QemuStyleInvalidationQueue(GuestMemory memory, QemuStyleIotlb iotlb, ulong iqa, bool smts)
    {
        _memory = memory;
        _iotlb = iotlb;
        _iqDw = smts && (iqa & (1UL << 11)) != 0;
        _iq = iqa & ~0xFFFUL;
        _iqSize = (ushort)(1 << ((int)(iqa & 7) + 8 - (_iqDw ? 1 : 0)));
    }

    /// <summary>FSTS.IQE as QEMU would set it.</summary>
    public bool QueueError { get; private set; }

    /// <summary>Completion events raised (ICS.IWC set).</summary>
    public int CompletionEvents { get; private set; }

    /// <summary>IQH in bytes.</summary>
    public ulong Head => (ulong)_iqHead << (_iqDw ? 5 : 4);

    /// <summary><c>vtd_handle_iqt_write</c>: latches the tail and, without a pending IQE, runs the fetch loop.</summary>
    public void WriteTail(ulong value)
    {
        if (_iqDw && (value & (1UL << 4)) != 0)
        {
            QueueError = true;
            return;
        }

        _iqTail = (ushort)(_iqDw ? (value >> 5) & 0x3fff : (value >> 4) & 0x7fff);
        if (!QueueError)
        {
            FetchInvDesc();
        }
    }

    private void FetchInvDesc()
    {
        if (_iqTail >= _iqSize)
        {
            QueueError = true;
            return;
        }

        while (_iqHead != _iqTail)
        {
            if (!ProcessInvDesc())
            {
                QueueError = true;
                break;
            }
        }
    }

    private bool ProcessInvDesc()
    {
        int dw = _iqDw ? 32 : 16;
        Span<byte> raw = stackalloc byte[32];
        if (!_memory.TryRead(_iq + ((ulong)_iqHead * (ulong)dw), raw[..dw])) // dma_memory_read
        {
            return false;
        }

        _desc[0] = BinaryPrimitives.ReadUInt64LittleEndian(raw);
        _desc[1] = BinaryPrimitives.ReadUInt64LittleEndian(raw[8..]);
        _desc[2] = _iqDw ? BinaryPrimitives.ReadUInt64LittleEndian(raw[16..]) : 0;
        _desc[3] = _iqDw ? BinaryPrimitives.ReadUInt64LittleEndian(raw[24..]) : 0;
        int type = (int)(((_desc[0] >> 5) & 0x70) | (_desc[0] & 0xf));
        bool ok = type switch
        {
            0x2 => ProcessIotlbDesc(),
            0x5 => ProcessWaitDesc(),
            0x6 => ProcessPiotlbDesc(),
            _ => false,
        };
        if (!ok)
        {
            return false;
        }

        _iqHead++;
        if (_iqHead == _iqSize)
        {
            _iqHead = 0;
        }

        return true;
    }

    private bool ReservedCheck(ulong mask0, ulong mask1, bool needs256)
    {
        if (_iqDw)
        {
            return (_desc[0] & mask0) == 0 && (_desc[1] & mask1) == 0 && (_desc[2] & AllOnes) == 0 && (_desc[3] & AllOnes) == 0;
        }

        return !needs256 && (_desc[0] & mask0) == 0 && (_desc[1] & mask1) == 0;
    }

    private bool ProcessPiotlbDesc()
    {
        if (!ReservedCheck(PiotlbRsvd0, PiotlbRsvd1, needs256: true))
        {
            return false;
        }

        ushort domainId = (ushort)(_desc[0] >> 16);
        uint pasid = (uint)((_desc[0] >> 32) & 0xfffff);
        switch (_desc[0] & (3UL << 4))
        {
            case 2UL << 4:
                _iotlb.InvalidatePasid(domainId, pasid);
                return true;
            case 3UL << 4:
            {
                int am = (int)(_desc[1] & 0x3f);
                ulong addr = _desc[1] & ~0xfffUL;
                if (am > 30)
                {
                    return false; // undefined behaviour in QEMU's 32-bit shift; the model refuses it
                }

                _iotlb.InvalidatePasidPage(domainId, pasid, addr, am);
                return true;
            }

            default:
                return false;
        }
    }

    private bool ProcessIotlbDesc()
    {
        if (!ReservedCheck(IotlbRsvd0, IotlbRsvd1, needs256: false))
        {
            return false;
        }

        ushort domainId = (ushort)(_desc[0] >> 16);
        switch (_desc[0] & (3UL << 4))
        {
            case 1UL << 4:
                _iotlb.Reset();
                return true;
            case 2UL << 4:
                _iotlb.InvalidateDomain(domainId);
                return true;
            case 3UL << 4:
            {
                int am = (int)(_desc[1] & 0x3f);
                if (am > QemuStyleIotlb.Mamv)
                {
                    return false;
                }

                _iotlb.InvalidatePage(domainId, _desc[1] & ~0xfffUL, am);
                return true;
            }

            default:
                return false;
        }
    }

    private bool ProcessWaitDesc()
    {
        if (!ReservedCheck(WaitRsvd0, WaitRsvd1, needs256: false))
        {
            return false;
        }

        bool sw = (_desc[0] & (1UL << 5)) != 0, iflag = (_desc[0] & (1UL << 4)) != 0;
        if (sw)
        {
            if (!_memory.TryWriteUInt32(_desc[1] & ~3UL, (uint)(_desc[0] >> 32))) // dma_memory_write
            {
                return false;
            }
        }

        if (iflag)
        {
            CompletionEvents++;
        }

        return sw || iflag;
    }
}
