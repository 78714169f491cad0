using System.Buffers.Binary;
using FastInval.Vtd;

namespace FastInval.Tests.Vtd;

/// <summary>
/// A C# model of the Linux VT-d driver's queued-invalidation code (drivers/iommu/intel/dmar.c: <c>__dmar_enable_qi</c>,
/// <c>qi_submit_sync</c>, <c>qi_check_fault</c>, <c>reclaim_free_desc</c>; spec/vtd-queued-invalidation.md §2.7), playing
/// the guest against a unit through its registers and its guest memory. It follows the mainline code step by step:
/// 256 slots, a status word per slot (FREE / IN_USE / DONE / ABORT), one SW wait appended to every submission whose
/// status write flips the wait slot's word to DONE, polling with <c>qi_check_fault</c> until then; IQE at the first
/// descriptor of the submission: copy the wait over it, clear IQE, -EINVAL; ITE: clear it, mark every IN_USE slot before
/// IQH (down to IQT) ABORT, -ETIMEDOUT if the timed-out device is gone, -EAGAIN (resubmit) if our wait was aborted;
/// ICE: clear it and go on.
/// </summary>
/// <remarks>
/// Also modelled: the newer IQE recovery of Linux commit 754d07b9 (§2.7 step 3, "newer"), for an IQE on a later slot of
/// the submission: the stranded slots [IQH, wait) become fenced no-op waits, the wait slot is rewritten (SW, FN, and PD
/// when ECAP.PDS) and IQE cleared; the driver then spins for the wait, re-applying the recovery if the queue stops inside
/// the submission again. Polling is bounded (<see cref="PollLimit"/>): where Linux would spin for ever the model throws.
/// </remarks>
internal sealed class LinuxQiModel
{
    public const int QiLength = 256;
    public const int EInval = -22, ETimedOut = -110, EAgain = -11;
    public const int PollLimit = 1000;

    private const uint QiFree = 0, QiInUse = 1, QiDone = 2, QiAbort = 3;
    private const ulong WaitType = 0x5, StatusWriteBit = 1UL << 5, FenceBit = 1UL << 6, DrainBit = 1UL << 7;

    private readonly Func<uint, int, ulong> _read;
    private readonly Action<uint, ulong, int> _write;
    private readonly byte[] _ring;
    private readonly ulong _ringPhys;
    private readonly byte[] _status;
    private readonly ulong _statusPhys;
    private readonly Func<uint, bool> _devicePresent;
    private readonly int _shift;
    private readonly bool _pds;
    private int _freeHead, _freeTail, _freeCount;
    private uint _gcmd;

    public LinuxQiModel(Func<uint, int, ulong> read, Action<uint, ulong, int> write, byte[] ring, ulong ringPhys, byte[] status,
        ulong statusPhys, Func<uint, bool> devicePresent)
    {
        _read = read;
        _write = write;
        _ring = ring;
        _ringPhys = ringPhys;
        _status = status;
        _statusPhys = statusPhys;
        _devicePresent = devicePresent;
        ulong ecap = read(0x10, 8);
        _shift = 4 + (int)((ecap >> 43) & 1);   // qi_shift: 256-bit descriptors with ECAP.SMTS
        _pds = ((ecap >> 42) & 1) != 0;
    }

    public bool Scalable => _shift == 5;

    /// <summary>IQEs recovered by copying the wait over the first descriptor (classic path).</summary>
    public int FirstSlotRecoveries { get; private set; }

    /// <summary>IQEs recovered by fencing the stranded range (754d07b9 path).</summary>
    public int RangeRecoveries { get; private set; }

    /// <summary>Submissions restarted after an ITE aborted their wait (-EAGAIN).</summary>
    public int Resubmissions { get; private set; }

    /// <summary>ITEs the driver cleared.</summary>
    public int TimeoutsCleared { get; private set; }

    /// <summary><c>iommu_set_root_entry</c> in scalable mode (RTADDR.TTM = 01b, SRTP), then <c>__dmar_enable_qi</c>.</summary>
    public void Enable()
    {
        if (Scalable)
        {
            _write(0x20, 0x7_0000UL | (1UL << 10), 8);
            _write(0x18, _gcmd | (1u << 30), 4);
        }

        _freeHead = _freeTail = 0;
        _freeCount = QiLength;
        ulong iqa = _ringPhys | (Scalable ? (1UL << 11) | 1 : 0);
        _write(0x88, 0, 4);
        _write(0x90, iqa, 8);
        _gcmd |= 1u << 26;
        _write(0x18, _gcmd, 4);
        if ((_read(0x1C, 4) & (1u << 26)) == 0)
        {
            throw new InvalidOperationException("GSTS.QIES did not come up");
        }
    }

    private uint Status(int slot) => BinaryPrimitives.ReadUInt32LittleEndian(_status.AsSpan(slot * 4));

    private void SetStatus(int slot, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_status.AsSpan(slot * 4), value);

    private void Copy(int slot, VtdDescriptor d) => d.Write(_ring.AsSpan(slot << _shift, 1 << _shift));

    private VtdDescriptor WaitFor(int waitIndex, ulong extra) =>
        new(((ulong)QiDone << 32) | StatusWriteBit | WaitType | extra, _statusPhys + (ulong)(waitIndex * 4));

    /// <summary><c>qi_submit_sync(iommu, desc, count, options)</c>: 0, -EINVAL or -ETIMEDOUT.</summary>
    public int SubmitSync(IReadOnlyList<VtdDescriptor> descriptors, bool drain = false)
    {
        int count = descriptors.Count;
        while (true) // restart:
        {
            int rc = 0;
            if (_freeCount < count + 2)
            {
                throw new InvalidOperationException("no free slots: Linux would spin for ever");
            }

            int index = _freeHead;
            int waitIndex = (index + count) % QiLength;
            for (int i = 0; i < count; i++)
            {
                Copy((index + i) % QiLength, descriptors[i]);
                SetStatus((index + i) % QiLength, QiInUse);
            }

            SetStatus(waitIndex, QiInUse);
            Copy(waitIndex, WaitFor(waitIndex, drain ? DrainBit : 0));
            _freeHead = (_freeHead + count + 1) % QiLength;
            _freeCount -= count + 1;
            _write(0x88, (ulong)(uint)(_freeHead << _shift), 4);

            int polls = 0;
            while (Status(waitIndex) != QiDone)
            {
                rc = CheckFault(index, waitIndex);
                if (rc != 0)
                {
                    break;
                }

                if (++polls > PollLimit)
                {
                    throw new InvalidOperationException($"qi_submit_sync hangs: FSTS 0x{_read(0x34, 4):X}, IQH 0x{_read(0x80, 4):X}");
                }
            }

            for (int i = 0; i <= count; i++)
            {
                SetStatus((index + i) % QiLength, QiFree);
            }

            ReclaimFreeDesc();
            if (rc != EAgain)
            {
                return rc;
            }

            Resubmissions++;
        }
    }

    private void ReclaimFreeDesc()
    {
        while (Status(_freeTail) == QiFree && _freeTail != _freeHead)
        {
            _freeTail = (_freeTail + 1) % QiLength;
            _freeCount++;
        }
    }

    private static bool InSubmission(int slot, int index, int waitIndex) =>
        index <= waitIndex ? slot >= index && slot <= waitIndex : slot >= index || slot <= waitIndex;

    private int CheckFault(int index, int waitIndex)
    {
        if (Status(waitIndex) == QiAbort)
        {
            return EAgain;
        }

        uint fault = (uint)_read(0x34, 4);
        if ((fault & 0x10) != 0) // IQE: the head points at the descriptor associated with the error
        {
            int head = (int)(_read(0x80, 4) >> _shift);
            if (head == index)
            {
                _ring.AsSpan(waitIndex << _shift, 1 << _shift).CopyTo(_ring.AsSpan(index << _shift, 1 << _shift));
                _write(0x34, 0x10, 4);
                FirstSlotRecoveries++;
                return EInval;
            }

            if (InSubmission(head, index, waitIndex))
            {
                RecoverRange(head, index, waitIndex);
                RangeRecoveries++;
                return EInval;
            }
        }

        if ((fault & 0x40) != 0) // ITE: every pending wait is aborted
        {
            int head = (int)(((_read(0x80, 4) >> _shift) - 1 + QiLength) % QiLength);
            int tail = (int)(((_read(0x88, 4) >> _shift) - 1 + QiLength) % QiLength);
            uint iteSid = (uint)((_read(0xB0, 8) >> 32) & 0xFFFF);
            _write(0x34, 0x40, 4);
            TimeoutsCleared++;
            do
            {
                if (Status(head) == QiInUse)
                {
                    SetStatus(head, QiAbort);
                }

                head = (head - 1 + QiLength) % QiLength;
            }
            while (head != tail);

            if (iteSid != 0 && !_devicePresent(iteSid))
            {
                return ETimedOut;
            }

            if (Status(waitIndex) == QiAbort)
            {
                return EAgain;
            }
        }

        if ((fault & 0x20) != 0) // ICE
        {
            _write(0x34, 0x20, 4);
        }

        return 0;
    }

    /// <summary>Linux 754d07b9: an IQE on a later slot of the submission strands the slots [IQH, wait).</summary>
    private void RecoverRange(int head, int index, int waitIndex)
    {
        for (int round = 0; ; round++)
        {
            for (int slot = head; slot != waitIndex; slot = (slot + 1) % QiLength)
            {
                Copy(slot, new VtdDescriptor(FenceBit | WaitType, 0));
            }

            Copy(waitIndex, WaitFor(waitIndex, FenceBit | (_pds ? DrainBit : 0)));
            SetStatus(waitIndex, QiInUse);
            _write(0x34, 0x10, 4);
            if (Status(waitIndex) == QiDone)
            {
                return;
            }

            head = (int)(_read(0x80, 4) >> _shift);
            if ((_read(0x34, 4) & 0x10) == 0 || !InSubmission(head, index, waitIndex) || round > PollLimit)
            {
                throw new InvalidOperationException("IQE recovery: the wait never completes (Linux: -ETIMEDOUT after DMAR_OPERATION_TIMEOUT)");
            }
        }
    }

    // ---- the flush helpers' encoders (include/…/intel/iommu.h, dmar.c, cache.c) ---------------------------

    /// <summary><c>calculate_psi_aligned_address(start, end)</c>: (ADDR, AM) of the smallest aligned block covering the range.</summary>
    public static (ulong Address, int Mask) PsiAligned(ulong start, ulong end)
    {
        ulong pages = ((start & 0xFFF) + (end - start + 1) + 0xFFF) >> 12;
        ulong aligned = System.Numerics.BitOperations.RoundUpToPowerOf2(pages);
        ulong bitmask = aligned - 1;
        int mask = System.Numerics.BitOperations.Log2(aligned);
        ulong pfn = start >> 12;
        if ((pfn & bitmask) != 0)
        {
            ulong endPfn = pfn + pages - 1;
            ulong shared = ~(pfn ^ endPfn) & ~bitmask;
            mask = shared != 0 ? System.Numerics.BitOperations.TrailingZeroCount(shared) : 52;
        }

        return (mask >= 52 ? 0 : start & ~((1UL << (12 + mask)) - 1), mask);
    }

    /// <summary><c>qi_desc_iotlb</c> with the cache.c fallback: domain-selective when AM exceeds MAMV.</summary>
    public static VtdDescriptor Iotlb(ushort did, ulong start, ulong end, bool ih, int mamv)
    {
        (ulong addr, int mask) = PsiAligned(start, end);
        return mask > mamv
            ? Dsc.Iotlb(2, did, dr: true, dw: true)
            : Dsc.Iotlb(3, did, addr, mask, ih, dr: true, dw: true);
    }

    /// <summary><c>qi_desc_piotlb</c>: PASID-selective for "everything" (mask 52), else page-selective-within-PASID.</summary>
    public static VtdDescriptor Piotlb(ushort did, uint pasid, ulong start, ulong end, bool ih)
    {
        (ulong addr, int mask) = PsiAligned(start, end);
        return mask >= 52 ? Dsc.PIotlb(2, did, pasid) : Dsc.PIotlb(3, did, pasid, addr, mask, ih);
    }

    /// <summary><c>qi_desc_dev_iotlb</c> for the range.</summary>
    public static VtdDescriptor DevIotlb(ushort sid, ushort pfsid, ulong start, ulong end)
    {
        (ulong addr, int mask) = PsiAligned(start, end);
        return Dsc.DevTlb(sid, addr, mask, pfsid: pfsid, mip: 0);
    }

    /// <summary><c>qi_desc_dev_iotlb_pasid</c> for the range.</summary>
    public static VtdDescriptor DevIotlbPasid(ushort sid, ushort pfsid, uint pasid, ulong start, ulong end)
    {
        (ulong addr, int mask) = PsiAligned(start, end);
        return Dsc.PDevTlb(sid, pasid, addr, mask, pfsid: pfsid);
    }
}
