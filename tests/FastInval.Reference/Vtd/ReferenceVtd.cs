using FastInval.Vtd;

namespace FastInval.Reference.Vtd;

/// <summary>
/// The naive oracle of <see cref="VtdIommu"/>: its register file, invalidation queue and descriptor decoder written a
/// second time from the rules in <see cref="VtdIommu"/>'s and <c>VtdDescriptorDecoder</c>'s remarks, one descriptor at a
/// time, each invalidation executed at once by a <see cref="ReferenceEngine"/>. It shares no code with src: field tables
/// instead of masks, loops instead of bit tricks, its own guest memory. It reads its capabilities from a
/// <see cref="VtdOptions"/> (plain data) and uses <see cref="InvalidationDescriptor"/> as vocabulary.
/// </summary>
public sealed class ReferenceVtd
{
    // Offsets (VT-d register map, spec/vtd-queued-invalidation.md §2.1).
    private const uint OffVer = 0x00, OffCap = 0x08, OffEcap = 0x10, OffGcmd = 0x18, OffGsts = 0x1C, OffRtaddr = 0x20,
        OffFsts = 0x34, OffFectl = 0x38, OffFedata = 0x3C, OffFeaddr = 0x40, OffFeuaddr = 0x44, OffIqh = 0x80, OffIqt = 0x88,
        OffIqa = 0x90, OffIcs = 0x9C, OffIectl = 0xA0, OffIedata = 0xA4, OffIeaddr = 0xA8, OffIeuaddr = 0xAC,
        OffIqercd = 0xB0, OffIrta = 0xB8;

    private readonly ReferenceGuestMemory _memory;

    // Capabilities.
    private readonly bool _smts, _pasid, _dt, _dit, _pds, _ir, _drd, _dwd, _cm;
    private readonly int _mamv, _mhmv, _haw;

    // Registers, as software sees them.
    private bool _te, _qie, _ire, _cfi, _rtps, _irtps;
    private ulong _rtaddr;
    private int _activeTtm;          // 0 legacy, 1 scalable, -1 invalid
    private bool _pfo, _iqe, _ice, _ite;
    private bool _feIm = true, _feIp;
    private uint _fedata, _feaddr, _feuaddr;
    private ulong _iqh, _iqt, _iqa;
    private bool _iwc;
    private bool _ieIm = true, _ieIp;
    private uint _iedata, _ieaddr, _ieuaddr;
    private int _iqei;
    private uint _itesid, _icesid;
    private ulong _irta;

    /// <summary>Creates the reference unit over <paramref name="memory"/>, executing on <paramref name="engine"/>.</summary>
    public ReferenceVtd(ReferenceGuestMemory memory, VtdOptions options, ReferenceEngine engine)
    {
        _memory = memory;
        Engine = engine;
        _smts = options.ScalableMode;
        _pasid = options.ScalableMode && options.Pasid;
        _dt = options.DeviceTlb;
        _dit = options.DeviceTlb && options.DeviceTlbThrottling;
        _pds = options.PageRequestDrain;
        _ir = options.InterruptRemapping;
        _drd = options.DrainReads;
        _dwd = options.DrainWrites;
        _cm = options.CachingMode;
        _mamv = options.MaxAddressMask;
        _mhmv = options.MaxHandleMask;
        _haw = options.HostAddressWidth;
    }

    /// <summary>The caches.</summary>
    public ReferenceEngine Engine { get; }

    /// <summary>Every MSI sent, in order.</summary>
    public List<(ulong Address, uint Data)> Messages { get; } = [];

    /// <summary>Descriptor fetches attempted (the fault plan's fetch ordinal).</summary>
    public ulong Fetches { get; private set; }

    /// <summary>What a notifier of the unit's engine must have received: every invalidation the engine applied (Ok or
    /// completion error), with its queue slot, in execution order.</summary>
    public List<InvalidationRecord> Records { get; } = [];

    // ---- register access -----------------------------------------------------------------------------------

    /// <summary>Reads 4 or 8 bytes at an offset aligned to the size inside the 4 KiB window; anything else reads 0.</summary>
    public ulong Read(uint offset, int size)
    {
        if (!AccessOk(offset, size))
        {
            return 0;
        }

        ulong value = ReadDword(offset);
        if (size == 8)
        {
            value |= (ulong)ReadDword(offset + 4) << 32;
        }

        return value;
    }

    /// <summary>Writes 4 or 8 bytes (low dword first) at an offset aligned to the size; anything else is ignored.</summary>
    public void Write(uint offset, ulong value, int size)
    {
        if (!AccessOk(offset, size))
        {
            return;
        }

        WriteDword(offset, (uint)(value & 0xFFFF_FFFF));
        if (size == 8)
        {
            WriteDword(offset + 4, (uint)(value >> 32));
        }
    }

    private static bool AccessOk(uint offset, int size)
    {
        if (size != 4 && size != 8)
        {
            return false;
        }

        if (offset % (uint)size != 0)
        {
            return false;
        }

        return (ulong)offset + (ulong)size <= 0x1000;
    }

    private static uint Lo(ulong v) => (uint)(v & 0xFFFF_FFFF);

    private static uint Hi(ulong v) => (uint)(v >> 32);

    private uint ReadDword(uint offset)
    {
        if (offset == OffVer) return 0x60;
        if (offset == OffCap) return Lo(Cap());
        if (offset == OffCap + 4) return Hi(Cap());
        if (offset == OffEcap) return Lo(Ecap());
        if (offset == OffEcap + 4) return Hi(Ecap());
        if (offset == OffGsts) return Gsts();
        if (offset == OffRtaddr) return Lo(_rtaddr);
        if (offset == OffRtaddr + 4) return Hi(_rtaddr);
        if (offset == OffFsts) return (_pfo ? 1u : 0) | (_iqe ? 1u << 4 : 0) | (_ice ? 1u << 5 : 0) | (_ite ? 1u << 6 : 0);
        if (offset == OffFectl) return (_feIm ? 1u << 31 : 0) | (_feIp ? 1u << 30 : 0);
        if (offset == OffFedata) return _fedata;
        if (offset == OffFeaddr) return _feaddr;
        if (offset == OffFeuaddr) return _feuaddr;
        if (offset == OffIqh) return Lo(_iqh);
        if (offset == OffIqt) return Lo(_iqt);
        if (offset == OffIqa) return Lo(_iqa);
        if (offset == OffIqa + 4) return Hi(_iqa);
        if (offset == OffIcs) return _iwc ? 1u : 0;
        if (offset == OffIectl) return (_ieIm ? 1u << 31 : 0) | (_ieIp ? 1u << 30 : 0);
        if (offset == OffIedata) return _iedata;
        if (offset == OffIeaddr) return _ieaddr;
        if (offset == OffIeuaddr) return _ieuaddr;
        if (offset == OffIqercd) return (uint)_iqei;
        if (offset == OffIqercd + 4) return _itesid | (_icesid << 16);
        if (offset == OffIrta) return Lo(_irta);
        if (offset == OffIrta + 4) return Hi(_irta);
        return 0;
    }

    private uint Gsts()
    {
        uint v = 0;
        if (_te) v |= 1u << 31;
        if (_rtps) v |= 1u << 30;
        if (_qie) v |= 1u << 26;
        if (_ire) v |= 1u << 25;
        if (_irtps) v |= 1u << 24;
        if (_cfi) v |= 1u << 23;
        return v;
    }

    private ulong Cap()
    {
        ulong v = 6;                          // ND
        if (_cm) v |= 1UL << 7;
        v |= 0b00110UL << 8;                  // SAGAW
        v |= 47UL << 16;                      // MGAW
        v |= 1UL << 22;                       // ZLR
        v |= (0x220UL / 16) << 24;            // FRO
        v |= 0b0011UL << 34;                  // SLLPS
        v |= 1UL << 39;                       // PSI
        v |= (ulong)_mamv << 48;
        if (_dwd) v |= 1UL << 54;
        if (_drd) v |= 1UL << 55;
        if (_smts) v |= 1UL << 56;            // FL1GP
        return v;
    }

    private ulong Ecap()
    {
        ulong v = 1UL << 1;                   // QI
        if (_dt) v |= 1UL << 2;
        if (_ir) v |= (1UL << 3) | (1UL << 4); // IR, EIM
        v |= 1UL << 6;                        // PT
        v |= (0x200UL / 16) << 8;             // IRO
        v |= (ulong)_mhmv << 20;
        if (_pasid) v |= (19UL << 35) | (1UL << 40);
        if (_dit) v |= 1UL << 41;
        if (_pds) v |= 1UL << 42;
        if (_smts) v |= (1UL << 43) | (1UL << 26) | (1UL << 46) | (1UL << 47);
        return v;
    }

    private void WriteDword(uint offset, uint value)
    {
        if (offset == OffGcmd)
        {
            WriteGcmd(value);
        }
        else if (offset == OffRtaddr)
        {
            _rtaddr = (_rtaddr & 0xFFFF_FFFF_0000_0000) | (value & 0xFFFF_FC00UL);
        }
        else if (offset == OffRtaddr + 4)
        {
            _rtaddr = (_rtaddr & 0xFFFF_FFFF) | ((ulong)value << 32);
        }
        else if (offset == OffFsts)
        {
            WriteFsts(value);
        }
        else if (offset == OffFectl)
        {
            _feIm = (value & (1u << 31)) != 0;
            if (_feIp && !_feIm)
            {
                _feIp = false;
                Messages.Add((((ulong)_feuaddr << 32) | _feaddr, _fedata));
            }
        }
        else if (offset == OffFedata) _fedata = value;
        else if (offset == OffFeaddr) _feaddr = value & ~3u;
        else if (offset == OffFeuaddr) _feuaddr = value;
        else if (offset == OffIqt)
        {
            _iqt = value & 0x7FFF0;
            Run();
        }
        else if (offset == OffIqa || offset == OffIqa + 4)
        {
            if (!_qie)
            {
                ulong v = offset == OffIqa ? (_iqa & 0xFFFF_FFFF_0000_0000) | value : (_iqa & 0xFFFF_FFFF) | ((ulong)value << 32);
                // IQA 63:12, DW 11, QS 2:0.
                ulong keep = 0;
                for (int b = 12; b < 64; b++) keep |= 1UL << b;
                keep |= (1UL << 11) | 7;
                _iqa = v & keep;
            }
        }
        else if (offset == OffIcs)
        {
            if ((value & 1) != 0)
            {
                _iwc = false;
                _ieIp = false;
            }
        }
        else if (offset == OffIectl)
        {
            _ieIm = (value & (1u << 31)) != 0;
            if (_ieIp && !_ieIm)
            {
                _ieIp = false;
                Messages.Add((((ulong)_ieuaddr << 32) | _ieaddr, _iedata));
            }
        }
        else if (offset == OffIedata) _iedata = value;
        else if (offset == OffIeaddr) _ieaddr = value & ~3u;
        else if (offset == OffIeuaddr) _ieuaddr = value;
        else if ((offset == OffIrta || offset == OffIrta + 4) && _ir)
        {
            ulong v = offset == OffIrta ? (_irta & 0xFFFF_FFFF_0000_0000) | value : (_irta & 0xFFFF_FFFF) | ((ulong)value << 32);
            _irta = v & (~0xFFFUL | (1UL << 11) | 0xF);
        }
    }

    private void WriteGcmd(uint value)
    {
        _te = (value & (1u << 31)) != 0;
        if (_ir)
        {
            _ire = (value & (1u << 25)) != 0;
            _cfi = (value & (1u << 23)) != 0;
            if ((value & (1u << 24)) != 0)
            {
                _irtps = true;
            }
        }

        if ((value & (1u << 30)) != 0)
        {
            int ttm = (int)((_rtaddr >> 10) & 3);
            if (ttm == 0)
            {
                _activeTtm = 0;
            }
            else if (ttm == 1 && _smts)
            {
                _activeTtm = 1;
            }
            else
            {
                _activeTtm = -1;
            }

            _rtps = true;
        }

        bool want = (value & (1u << 26)) != 0;
        if (_qie && !want)
        {
            _qie = false;
            _iqh = 0;
        }
        else if (!_qie && want)
        {
            _qie = true;
            Run();
        }
    }

    private void WriteFsts(uint value)
    {
        bool resume = false;
        if ((value & 1) != 0) _pfo = false;
        if ((value & (1u << 4)) != 0 && _iqe)
        {
            _iqe = false;
            _iqei = 0;
            resume = true;
        }

        if ((value & (1u << 5)) != 0 && _ice)
        {
            _ice = false;
            _icesid = 0;
        }

        if ((value & (1u << 6)) != 0 && _ite)
        {
            _ite = false;
            _itesid = 0;
            resume = true;
        }

        if (!_pfo && !_iqe && !_ice && !_ite)
        {
            _feIp = false;
        }

        if (resume)
        {
            Run();
        }
    }

    // ---- events ---------------------------------------------------------------------------------------------

    private void FaultEvent(Action setStatus)
    {
        bool anySet = _pfo || _iqe || _ice || _ite;
        setStatus();
        if (anySet)
        {
            return;
        }

        _feIp = true;
        if (!_feIm)
        {
            _feIp = false;
            Messages.Add((((ulong)_feuaddr << 32) | _feaddr, _fedata));
        }
    }

    private void QueueError(int code) => FaultEvent(() =>
    {
        _iqe = true;
        _iqei = code;
    });

    private void Timeout(uint sid) => FaultEvent(() =>
    {
        if (!_ite)
        {
            _itesid = sid & 0xFFFF;
        }

        _ite = true;
    });

    private void CompletionError(uint sid) => FaultEvent(() =>
    {
        if (!_ice)
        {
            _icesid = sid & 0xFFFF;
        }

        _ice = true;
    });

    private void CompletionEvent()
    {
        if (_iwc)
        {
            return;
        }

        _iwc = true;
        _ieIp = true;
        if (!_ieIm)
        {
            _ieIp = false;
            Messages.Add((((ulong)_ieuaddr << 32) | _ieaddr, _iedata));
        }
    }

    // ---- the queue, one descriptor at a time ------------------------------------------------------------------

    private ulong HawMask() => _haw == 64 ? ulong.MaxValue : (1UL << _haw) - 1;

    private void Run()
    {
        uint? timedOut = null;
        while (_qie && !_iqe && !_ite && _iqh != _iqt)
        {
            bool wide = (_iqa & (1UL << 11)) != 0;
            ulong queueBytes = 4096UL << (int)(_iqa & 7);
            if (wide && !_smts)
            {
                QueueError(5);
                break;
            }

            if (_iqt >= queueBytes)
            {
                QueueError(1);
                break;
            }

            if (wide && (_iqt & 0x10) != 0)
            {
                QueueError(6);
                break;
            }

            int width = wide ? 32 : 16;
            ulong address = ((_iqa & ~0xFFFUL & HawMask()) + _iqh) & HawMask();
            ulong ordinal = Fetches;
            Fetches++;
            byte[]? bytes = Engine.FaultPlan.DecideFetchFails(ordinal, address) ? null : _memory.Read(address, width);
            if (bytes is null)
            {
                QueueError(2);
                break;
            }

            var q = new ulong[4];
            for (int w = 0; w < width / 8; w++)
            {
                q[w] = BitConverter.ToUInt64(bytes, w * 8);
            }

            Decoded d = Decode(q, wide);
            ulong next = _iqh + (ulong)width == queueBytes ? 0 : _iqh + (ulong)width;
            if (d.Error != 0)
            {
                QueueError(d.Error);
                break;
            }

            if (d.IsWait)
            {
                if (timedOut is not null)
                {
                    _iqh = next;
                    break; // aborted
                }

                // A status write that cannot be done leaves the wait incomplete: an IQE (code 0) with IQH still on it.
                if ((q[0] & (1UL << 5)) != 0 &&
                    !_memory.Write(q[1] & ~3UL & HawMask(), BitConverter.GetBytes((uint)(q[0] >> 32))))
                {
                    QueueError(0);
                    break;
                }

                _iqh = next;

                if ((q[0] & (1UL << 4)) != 0)
                {
                    CompletionEvent();
                }

                continue;
            }

            foreach (InvalidationDescriptor inv in d.Invalidations)
            {
                InvalidationStatus status = Engine.Execute(inv);
                if (status is InvalidationStatus.Ok or InvalidationStatus.CompletionError)
                {
                    Records.Add(new InvalidationRecord(inv, InvalidationSource.VtdQueue, _iqh / (ulong)width, status));
                }

                if (status == InvalidationStatus.TimedOut && timedOut is null)
                {
                    timedOut = inv.SourceId;
                }
                else if (status == InvalidationStatus.CompletionError)
                {
                    CompletionError(inv.SourceId);
                }
            }

            _iqh = next;
        }

        if (timedOut is uint sid)
        {
            Timeout(sid);
        }
    }

    // ---- decoding ---------------------------------------------------------------------------------------------

    private sealed record Decoded(int Error, bool IsWait, List<InvalidationDescriptor> Invalidations);

    private static Decoded Fail(int code) => new(code, false, []);

    private static ulong Bits(ulong word, int hi, int lo)
    {
        ulong result = 0;
        for (int b = hi; b >= lo; b--)
        {
            result = (result << 1) | ((word >> b) & 1);
        }

        return result;
    }

    /// <summary>True when every set bit of <paramref name="word"/> lies in one of the (hi, lo) fields.</summary>
    private static bool OnlyFields(ulong word, params (int Hi, int Lo)[] fields)
    {
        for (int b = 0; b < 64; b++)
        {
            if (((word >> b) & 1) == 0)
            {
                continue;
            }

            bool inField = false;
            foreach ((int hi, int lo) in fields)
            {
                if (b >= lo && b <= hi)
                {
                    inField = true;
                }
            }

            if (!inField)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The 2^log2-byte aligned block containing <paramref name="address"/> (everything from 2^64).</summary>
    private static (ulong First, ulong Last) Block(ulong address, int log2)
    {
        if (log2 >= 64)
        {
            return (0, ulong.MaxValue);
        }

        ulong size = 1UL << log2;
        ulong first = address / size * size;
        return (first, first + (size - 1));
    }

    private static (ulong First, ulong Last) SizeRange(ulong address, bool s)
    {
        if (!s)
        {
            return Block(address, 12);
        }

        int ones = 0;
        while (ones < 52 && ((address >> (12 + ones)) & 1) == 1)
        {
            ones++;
        }

        return Block(address, 12 + ones + 1);
    }

    private Decoded Decode(ulong[] q, bool wide)
    {
        if (_activeTtm == -1)
        {
            return Fail(7);
        }

        if (_activeTtm == 1 && !wide)
        {
            return Fail(3);
        }

        int type = (int)((Bits(q[0], 11, 9) << 4) | Bits(q[0], 3, 0));
        bool known = type switch
        {
            1 or 2 or 5 => true,
            3 => _dt,
            4 => _ir,
            6 or 7 => wide,
            8 => wide && _dt && _pasid,
            _ => false,
        };
        if (!known)
        {
            return Fail(3);
        }

        if (q[2] != 0 || q[3] != 0)
        {
            return Fail(4);
        }

        var list = new List<InvalidationDescriptor>();
        int g = (int)Bits(q[0], 5, 4);
        ushort did = (ushort)Bits(q[0], 31, 16);
        ulong addr = q[1] & ~0xFFFUL;
        switch (type)
        {
            case 1:
            {
                if (!OnlyFields(q[0], (3, 0), (5, 4), (11, 9), (31, 16), (47, 32), (49, 48)) || q[1] != 0 || g == 0)
                {
                    return Fail(4);
                }

                if (g == 1)
                {
                    list.Add(InvalidationDescriptor.ConfigAll(ConfigKinds.Context));
                }
                else if (g == 2)
                {
                    list.Add(InvalidationDescriptor.ConfigDomain(ConfigKinds.Context, did));
                }
                else
                {
                    uint sid = (uint)Bits(q[0], 47, 32);
                    int fm = (int)Bits(q[0], 49, 48);
                    uint ignore = fm == 0 ? 0u : fm == 1 ? 4u : fm == 2 ? 6u : 7u;
                    for (uint f = 0; f < 8; f++)
                    {
                        if ((f & ~ignore) == (sid & 7 & ~ignore))
                        {
                            uint s = (sid & ~7u) | f;
                            list.Add(InvalidationDescriptor.ConfigSources(ConfigKinds.Context, s, s));
                        }
                    }
                }

                break;
            }

            case 2:
            {
                if (!OnlyFields(q[0], (3, 0), (5, 4), (6, 6), (7, 7), (11, 9), (31, 16)) || !OnlyFields(q[1], (5, 0), (6, 6), (63, 12)))
                {
                    return Fail(4);
                }

                int am = (int)Bits(q[1], 5, 0);
                if (g == 0 || (g == 3 && am > _mamv))
                {
                    return Fail(4);
                }

                if (g == 1)
                {
                    list.Add(InvalidationDescriptor.IotlbAll(StageMask.All));
                }
                else if (g == 2)
                {
                    list.Add(InvalidationDescriptor.IotlbDomain(did, StageMask.All));
                }
                else
                {
                    (ulong first, ulong last) = Block(addr, 12 + am);
                    bool ih = Bits(q[1], 6, 6) == 1;
                    list.Add(new InvalidationDescriptor(InvalidationScope.IotlbRange,
                        InvalidationFlags.MatchDomain | (ih ? InvalidationFlags.LeafOnly : 0), StageMask.Stage2, 0, Granule.Any,
                        ConfigKinds.None, did, 0, 0, first, last));
                    list.Add(new InvalidationDescriptor(InvalidationScope.Iotlb, InvalidationFlags.MatchDomain,
                        StageMask.Stage1 | StageMask.Nested, 0, Granule.Any, ConfigKinds.None, did, 0, 0, 0, 0));
                }

                break;
            }

            case 3:
            {
                bool ok0 = _dit
                    ? OnlyFields(q[0], (3, 0), (11, 9), (15, 12), (20, 16), (47, 32), (63, 52))
                    : OnlyFields(q[0], (3, 0), (11, 9), (20, 16), (47, 32));
                if (!ok0 || !OnlyFields(q[1], (0, 0), (63, 12)))
                {
                    return Fail(4);
                }

                (ulong first, ulong last) = SizeRange(addr, (q[1] & 1) != 0);
                list.Add(InvalidationDescriptor.DeviceTlb((uint)Bits(q[0], 47, 32), AddressSpace.None, first, last));
                break;
            }

            case 4:
            {
                if (!OnlyFields(q[0], (3, 0), (4, 4), (11, 9), (31, 27), (47, 32)) || q[1] != 0)
                {
                    return Fail(4);
                }

                bool selective = Bits(q[0], 4, 4) == 1;
                int im = (int)Bits(q[0], 31, 27);
                if (selective && im > _mhmv)
                {
                    return Fail(4);
                }

                if (!selective)
                {
                    list.Add(InvalidationDescriptor.ConfigAll(ConfigKinds.InterruptEntry));
                }
                else
                {
                    uint count = 1u << im;
                    uint first = (uint)Bits(q[0], 47, 32) / count * count;
                    list.Add(InvalidationDescriptor.ConfigSources(ConfigKinds.InterruptEntry, first, first + count - 1));
                }

                break;
            }

            case 5:
            {
                bool ok0 = _pds
                    ? OnlyFields(q[0], (3, 0), (4, 4), (5, 5), (6, 6), (7, 7), (11, 9), (63, 32))
                    : OnlyFields(q[0], (3, 0), (4, 4), (5, 5), (6, 6), (11, 9), (63, 32));
                if (!ok0 || !OnlyFields(q[1], (63, 2)))
                {
                    return Fail(4);
                }

                return new Decoded(0, true, list);
            }

            case 6:
            {
                if (!OnlyFields(q[0], (3, 0), (5, 4), (11, 9), (31, 16), (51, 32)) || !OnlyFields(q[1], (5, 0), (6, 6), (63, 12)) || g < 2)
                {
                    return Fail(4);
                }

                uint pasid = (uint)Bits(q[0], 51, 32);
                if (g == 2)
                {
                    list.Add(new InvalidationDescriptor(InvalidationScope.Iotlb,
                        InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace, StageMask.Stage1 | StageMask.Nested, 0,
                        Granule.Any, ConfigKinds.None, did, pasid, 0, 0, 0));
                }
                else
                {
                    (ulong first, ulong last) = Block(addr, 12 + (int)Bits(q[1], 5, 0));
                    bool ih = Bits(q[1], 6, 6) == 1;
                    list.Add(new InvalidationDescriptor(InvalidationScope.IotlbRange,
                        InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace | InvalidationFlags.IncludeGlobal |
                        (ih ? InvalidationFlags.LeafOnly : 0), StageMask.Stage1 | StageMask.Nested, 0, Granule.Any, ConfigKinds.None,
                        did, pasid, 0, first, last));
                }

                break;
            }

            case 7:
            {
                if (!OnlyFields(q[0], (3, 0), (5, 4), (11, 9), (31, 16), (51, 32)) || q[1] != 0 || g == 2)
                {
                    return Fail(4);
                }

                uint pasid = (uint)Bits(q[0], 51, 32);
                if (g == 0)
                {
                    list.Add(new InvalidationDescriptor(InvalidationScope.Config, InvalidationFlags.MatchDomain, StageMask.None, 0,
                        Granule.Any, ConfigKinds.PasidEntry, did, 0, 0, 0, 0));
                }
                else if (g == 1)
                {
                    list.Add(new InvalidationDescriptor(InvalidationScope.Config,
                        InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace, StageMask.None, 0, Granule.Any,
                        ConfigKinds.PasidEntry, did, pasid, 0, 0, 0));
                }
                else
                {
                    list.Add(InvalidationDescriptor.ConfigAll(ConfigKinds.PasidEntry));
                }

                break;
            }

            default: // 8
            {
                bool ok0 = _dit
                    ? OnlyFields(q[0], (3, 0), (8, 4), (11, 9), (15, 12), (31, 16), (51, 32), (63, 52))
                    : OnlyFields(q[0], (3, 0), (8, 4), (11, 9), (31, 16), (51, 32));
                if (!ok0 || !OnlyFields(q[1], (0, 0), (11, 11), (63, 12)))
                {
                    return Fail(4);
                }

                uint sid = (uint)Bits(q[0], 31, 16);
                uint pasid = (uint)Bits(q[0], 51, 32);
                (ulong first, ulong last) = SizeRange(addr, Bits(q[1], 11, 11) == 1);
                list.Add((q[1] & 1) != 0
                    ? new InvalidationDescriptor(InvalidationScope.DeviceTlb, InvalidationFlags.MatchSource, StageMask.None, 0,
                        Granule.Any, ConfigKinds.None, 0, 0, sid, first, last)
                    : new InvalidationDescriptor(InvalidationScope.DeviceTlb,
                        InvalidationFlags.MatchSource | InvalidationFlags.MatchAddressSpace, StageMask.None, 0, Granule.Any,
                        ConfigKinds.None, 0, pasid, sid, first, last));
                break;
            }
        }

        return new Decoded(0, false, list);
    }
}
