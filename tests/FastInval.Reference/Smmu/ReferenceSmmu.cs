using FastInval.Reference.Vtd;
using FastInval.Smmu;

namespace FastInval.Reference.Smmu;

/// <summary>
/// The reference SMMUv3: a naive register file and command queue written from the behaviour documented on
/// <c>FastInval.Smmu.SmmuV3</c> and spec/smmuv3-command-queue.md §3, with its own decoder
/// (<see cref="ReferenceSmmuDecoder"/>), its own guest memory and the <see cref="ReferenceEngine"/>. Commands run one at a
/// time, in order.
/// </summary>
public sealed class ReferenceSmmu
{
    private readonly ReferenceGuestMemory _memory;
    private readonly SmmuOptions _options;
    private readonly SmmuFeatures _f;
    private uint _cr0, _cr1, _cr2, _gbpa, _irq, _gerror, _gerrorn, _cfg1, _cfg2, _strtabCfg, _prod, _cons;
    private ulong _cfg0, _strtab, _cmdqBase;
    private bool _atcTimedOutSinceSync;

    /// <summary>Creates the reference over its own memory and engine.</summary>
    public ReferenceSmmu(ReferenceGuestMemory memory, SmmuOptions options, ReferenceEngine engine)
    {
        _memory = memory;
        _options = options;
        _f = options.Features;
        Engine = engine;
        _cmdqBase = (ulong)options.MaxCommandQueueLog2;
    }

    /// <summary>The caches.</summary>
    public ReferenceEngine Engine { get; }

    /// <summary>MSIs sent, in order.</summary>
    public List<(ulong Address, uint Data)> Messages { get; } = [];

    /// <summary>CMDQ_CONS when each MSI or wired interrupt was signalled, in order (a CMD_SYNC signals after CONS passed it).</summary>
    public List<uint> ConsAtSignals { get; } = [];

    /// <summary>Wired interrupts and events asserted, in order.</summary>
    public List<SmmuInterrupt> Interrupts { get; } = [];

    /// <summary>Commands fetched (the fault plan's fetch ordinal).</summary>
    public ulong Fetches { get; private set; }

    /// <summary>What a notifier of the SMMU's engine must have received: every invalidation the engine applied (Ok or
    /// completion error), with its CONS slot, in execution order.</summary>
    public List<InvalidationRecord> Records { get; } = [];

    private ulong OutputMask => _options.OutputAddressBits == 64 ? ulong.MaxValue : (1UL << _options.OutputAddressBits) - 1;

    private uint Idr(int n)
    {
        switch (n)
        {
            case 0:
            {
                uint v = 0;
                if (_f.Stage2) v |= 1;
                if (_f.Stage1) v |= 2;
                v |= 2 << 2;
                v |= 1 << 4;
                if (_f.Ats) v |= 1 << 10;
                if (_f.Asid16) v |= 1 << 12;
                if (_f.Msi) v |= 1 << 13;
                if (_f.Sev) v |= 1 << 14;
                if (_f.Pri) v |= 1 << 16;
                if (_f.Vmid16) v |= 1 << 18;
                if (_f.Stage1) v |= 1 << 19;
                v |= 2 << 21;
                v |= (_f.Stall ? 0u : 1u) << 24;
                v |= 1 << 26;
                v |= 1 << 27;
                return v;
            }

            case 1:
                return (uint)_options.StreamIdBits | ((uint)_f.SubstreamIdBits << 6) | ((_f.Pri ? 19u : 0u) << 11) | (19u << 16) | ((uint)_options.MaxCommandQueueLog2 << 21);
            case 3:
                return (_f.Stage1 ? 4u : 0) | (_f.Stage2 ? 1u << 4 : 0) | (_f.RangeInvalidation ? 1u << 10 : 0); // HAD, XNX, RIL
            case 5:
            {
                uint oas = _options.OutputAddressBits switch { 32 => 0u, 36 => 1u, 40 => 2u, 42 => 3u, 44 => 4u, 48 => 5u, _ => 6u };
                return oas | 0x70;
            }

            default:
                return 0;
        }
    }

    /// <summary>Reads a register with the documented access rules.</summary>
    public ulong Read(uint offset, int size)
    {
        if (offset >= 0x1_0000 || !(size == 4 || size == 8) || offset % (uint)size != 0)
        {
            return 0;
        }

        if (size == 8)
        {
            return Read32(offset) | ((ulong)Read32(offset + 4) << 32);
        }

        return Read32(offset);
    }

    private uint Read32(uint offset)
    {
        if (offset <= 0x14)
        {
            return Idr((int)(offset / 4));
        }

        return offset switch
        {
            0x1C => 1, // SMMUv3.1
            0x20 => _cr0,
            0x24 => _cr0,
            0x28 => _cr1,
            0x2C => _cr2,
            0x44 => _gbpa,
            0x50 => _irq,
            0x54 => _irq,
            0x60 => _gerror,
            0x64 => _gerrorn,
            0x68 => (uint)_cfg0,
            0x6C => (uint)(_cfg0 >> 32),
            0x70 => _cfg1,
            0x74 => _cfg2,
            0x80 => (uint)_strtab,
            0x84 => (uint)(_strtab >> 32),
            0x88 => _strtabCfg,
            0x90 => (uint)_cmdqBase,
            0x94 => (uint)(_cmdqBase >> 32),
            0x98 => _prod,
            0x9C => _cons,
            _ => 0,
        };
    }

    /// <summary>Writes a register with the documented access rules and side effects.</summary>
    public void Write(uint offset, ulong value, int size)
    {
        if (offset >= 0x1_0000 || !(size == 4 || size == 8) || offset % (uint)size != 0)
        {
            return;
        }

        bool wide = offset == 0x68 || offset == 0x80 || offset == 0x90;
        if (size == 8 && !wide)
        {
            Write32(offset, (uint)value);
            Write32(offset + 4, (uint)(value >> 32));
            return;
        }

        if (size == 8)
        {
            Write64(offset, value);
            return;
        }

        uint pairBase = offset - (offset % 8);
        if (pairBase == 0x68 || pairBase == 0x80 || pairBase == 0x90)
        {
            ulong current = ((ulong)Read32(pairBase + 4) << 32) | Read32(pairBase);
            ulong merged = offset == pairBase
                ? (current & 0xFFFF_FFFF_0000_0000UL) | (value & 0xFFFF_FFFFUL)
                : (current & 0xFFFF_FFFFUL) | ((value & 0xFFFF_FFFFUL) << 32);
            Write64(pairBase, merged);
            return;
        }

        Write32(offset, (uint)value);
    }

    private void Write64(uint offset, ulong value)
    {
        if (offset == 0x68 && _f.Msi)
        {
            _cfg0 = value & 0x00FF_FFFF_FFFF_FFFCUL;
        }
        else if (offset == 0x80 && (_cr0 & 1) == 0)
        {
            _strtab = value & ((1UL << 62) | 0x00FF_FFFF_FFFF_FFC0UL);
        }
        else if (offset == 0x90 && (_cr0 & 8) == 0)
        {
            _cmdqBase = value & ((1UL << 62) | 0x00FF_FFFF_FFFF_FFFFUL);
        }
    }

    private void Write32(uint offset, uint value)
    {
        switch (offset)
        {
            case 0x20:
                _cr0 = value & (_f.Pri ? 0x1Fu : 0x1Du);
                RunQueue();
                break;
            case 0x28:
                _cr1 = value & 0xFFF;
                break;
            case 0x2C:
                _cr2 = value & 7;
                break;
            case 0x44:
                if (value >> 31 == 1)
                {
                    _gbpa = value & 0x0010_3FFF;
                }

                break;
            case 0x50:
                _irq = value & (_f.Pri ? 7u : 5u);
                break;
            case 0x64:
                _gerrorn = value & 0x1FD;
                RunQueue();
                break;
            case 0x70:
                if (_f.Msi)
                {
                    _cfg1 = value;
                }

                break;
            case 0x74:
                if (_f.Msi)
                {
                    _cfg2 = value & 0x3F;
                }

                break;
            case 0x88:
                if ((_cr0 & 1) == 0)
                {
                    _strtabCfg = value & 0x307FF;
                }

                break;
            case 0x98:
                _prod = value & 0xFFFFF;
                RunQueue();
                break;
            case 0x9C:
                if ((_cr0 & 8) == 0)
                {
                    _cons = (_cons & 0x7F00_0000) | (value & 0xFFFFF);
                }

                break;
        }
    }

    private bool ErrorActive(uint bit) => (_gerror & bit) != (_gerrorn & bit);

    private void RunQueue()
    {
        int log2 = (int)(_cmdqBase & 0x1F);
        if (log2 > _options.MaxCommandQueueLog2)
        {
            log2 = _options.MaxCommandQueueLog2;
        }

        ulong entries = 1UL << log2;
        ulong queueBytes = entries * 16;
        ulong alignment = queueBytes < 32 ? 32 : queueBytes;
        ulong address = _cmdqBase & 0x00FF_FFFF_FFFF_FFE0UL;
        address = address / alignment * alignment;
        address &= OutputMask;
        while ((_cr0 & 8) != 0 && !ErrorActive(1))
        {
            ulong consIndex = _cons % entries, consWrap = (_cons >> log2) & 1;
            ulong prodIndex = _prod % entries, prodWrap = (_prod >> log2) & 1;
            if (consIndex == prodIndex && consWrap == prodWrap)
            {
                return;
            }

            ulong at = (address + (consIndex * 16)) & OutputMask;
            ulong ordinal = Fetches;
            Fetches++;
            byte[]? bytes = Engine.FaultPlan.DecideFetchFails(ordinal, at) ? null : _memory.Read(at, 16);
            if (bytes is null)
            {
                Fail(2);
                return;
            }

            ulong dw0 = BitConverter.ToUInt64(bytes, 0), dw1 = BitConverter.ToUInt64(bytes, 8);
            (ReferenceCommandKind kind, InvalidationDescriptor d) = ReferenceSmmuDecoder.Decode(dw0, dw1, _f);
            if (kind == ReferenceCommandKind.Illegal)
            {
                Fail(1);
                return;
            }

            if (kind == ReferenceCommandKind.Invalidate)
            {
                bool atc = (dw0 & 0xFF) == 0x40;
                if (!(atc && (_cr0 & 1) == 0))
                {
                    InvalidationStatus status = Engine.Execute(d);
                    if (status is InvalidationStatus.Ok or InvalidationStatus.CompletionError)
                    {
                        Records.Add(new InvalidationRecord(d, InvalidationSource.SmmuCommandQueue, consIndex, status));
                    }

                    if (atc && status == InvalidationStatus.TimedOut)
                    {
                        _atcTimedOutSinceSync = true;
                    }
                }
            }
            else if (kind == ReferenceCommandKind.Sync)
            {
                if (_atcTimedOutSinceSync)
                {
                    _atcTimedOutSinceSync = false;
                    Fail(3);
                    return;
                }

            }

            // Advance CONS over index and wrap bit, keeping ERR and the bits above.
            ulong next = (consIndex + 1) % entries;
            ulong wrap = next == 0 ? consWrap ^ 1 : consWrap;
            uint keep = _cons & ~(uint)((2UL << log2) - 1);
            _cons = keep | (uint)(next | (wrap << log2));
            if (kind == ReferenceCommandKind.Sync)
            {
                Complete(dw0, dw1); // signalled once CONS has passed the sync
            }
        }
    }

    private void Complete(ulong dw0, ulong dw1)
    {
        ulong cs = (dw0 >> 12) & 3;
        if (cs == 1)
        {
            ulong msiAddress = dw1 & 0x00FF_FFFF_FFFF_FFFCUL;
            if (_f.Msi && msiAddress != 0)
            {
                uint data = (uint)(dw0 >> 32);
                ulong target = msiAddress & OutputMask;
                if (_memory.Write(target, BitConverter.GetBytes(data)))
                {
                    Messages.Add((target, data));
                    ConsAtSignals.Add(_cons);
                }
                else
                {
                    SetError(1u << 4);
                }
            }

            Interrupts.Add(SmmuInterrupt.CommandSync);
            ConsAtSignals.Add(_cons);
        }
        else if (cs == 2 && _f.Sev)
        {
            Interrupts.Add(SmmuInterrupt.Event);
            ConsAtSignals.Add(_cons);
        }
    }

    private void Fail(uint code)
    {
        _cons = (_cons & ~0x7F00_0000u) | (code << 24);
        SetError(1);
    }

    private void SetError(uint bit)
    {
        if (ErrorActive(bit))
        {
            return;
        }

        _gerror ^= bit;
        if ((_irq & 1) == 0)
        {
            return;
        }

        ulong target = _cfg0 & OutputMask;
        if (_f.Msi && target != 0)
        {
            if (_memory.Write(target, BitConverter.GetBytes(_cfg1)))
            {
                Messages.Add((target, _cfg1));
                ConsAtSignals.Add(_cons);
            }
            else if (bit != (1u << 7) && !ErrorActive(1u << 7))
            {
                _gerror ^= 1u << 7;
            }
        }
        else
        {
            Interrupts.Add(SmmuInterrupt.GlobalError);
            ConsAtSignals.Add(_cons);
        }
    }
}
