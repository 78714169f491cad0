using FastInval.AmdVi;
using FastInval.Reference.Vtd;

namespace FastInval.Reference.AmdVi;

/// <summary>
/// The reference AMD-Vi unit: a naive register file, command buffer and event log written from the behaviour documented on
/// <c>FastInval.AmdVi.AmdViIommu</c>, with its own decoder (<see cref="ReferenceAmdViDecoder"/>), its own guest memory and the
/// <see cref="ReferenceEngine"/>. Commands run one at a time, each invalidation as soon as it is fetched.
/// </summary>
public sealed class ReferenceAmdVi
{
    private readonly ReferenceGuestMemory _memory;
    private readonly AmdViOptions _options;
    private ulong _devtab, _cmdBase, _evtBase, _control, _exclBase, _exclLimit, _cmdHead, _cmdTail, _evtHead, _evtTail;
    private bool _overflow, _eventInt, _waitInt, _stopped, _processing;

    // The unit documents that invalidations run as batches of at most 256 engine descriptors, ended by a COMPLETION_WAIT,
    // an error stop or the end of processing, and that IOTLB_INV_TIMEOUT is recorded when the batch has run: the time-outs
    // of the current batch wait here (DeviceID, command address) until then.
    private const int BatchCapacity = 256;
    private readonly List<(ulong DeviceId, ulong Address)> _pendingTimeouts = [];
    private int _batchDescriptors;

    /// <summary>Creates the reference over its own memory and engine.</summary>
    public ReferenceAmdVi(ReferenceGuestMemory memory, AmdViOptions options, ReferenceEngine engine)
    {
        _memory = memory;
        _options = options;
        Engine = engine;
    }

    /// <summary>The caches.</summary>
    public ReferenceEngine Engine { get; }

    /// <summary>Commands fetched (the fault plan's fetch ordinal).</summary>
    public ulong Fetches { get; private set; }

    /// <summary>The Status register's value each time the unit signalled its interrupt, in order.</summary>
    public List<ulong> InterruptStatuses { get; } = [];

    /// <summary>The Command Buffer Head register's value each time the unit signalled its interrupt, in order.</summary>
    public List<ulong> InterruptHeads { get; } = [];

    /// <summary>Every invalidation the engine applied (Ok or completion error), with its head slot, in order.</summary>
    public List<InvalidationRecord> Records { get; } = [];

    /// <summary>Called after each interrupt is recorded (the differential's handler may act on the unit).</summary>
    public Action? OnInterrupt { get; set; }

    private bool IommuOn => (_control & 1) != 0;

    private bool CmdRun => IommuOn && (_control & (1UL << 12)) != 0 && !_stopped;

    private bool EvtRun => IommuOn && (_control & 4) != 0;

    private static ulong Size(ulong baseRegister)
    {
        int len = (int)((baseRegister >> 56) & 0xF);
        if (len < 8)
        {
            len = 8;
        }

        return 16UL << len;
    }

    private ulong Efr()
    {
        ulong v = 1UL << 3; // NXSup
        if (_options.InvalidateAll)
        {
            v |= 1UL << 6;
        }

        if (_options.GuestTranslation)
        {
            v |= (1UL << 4) | (19UL << 32) | (1UL << 14);
        }

        return v;
    }

    private ulong Get(uint offset)
    {
        switch (offset)
        {
            case 0x0000: return _devtab;
            case 0x0008: return _cmdBase;
            case 0x0010: return _evtBase;
            case 0x0018: return _control;
            case 0x0020: return _exclBase;
            case 0x0028: return _exclLimit;
            case 0x0030: return Efr();
            case 0x2000: return _cmdHead;
            case 0x2008: return _cmdTail;
            case 0x2010: return _evtHead;
            case 0x2018: return _evtTail;
            case 0x2020:
                ulong s = 0;
                if (_overflow) s |= 1;
                if (_eventInt) s |= 2;
                if (_waitInt) s |= 4;
                if (EvtRun) s |= 8;
                if (CmdRun) s |= 16;
                return s;
            default: return 0;
        }
    }

    /// <summary>A register read.</summary>
    public ulong Read(uint offset, int size)
    {
        if (offset >= 0x4000 || !(size == 4 || size == 8) || offset % (uint)size != 0)
        {
            return 0;
        }

        ulong whole = Get(offset - (offset % 8));
        if (size == 8)
        {
            return whole;
        }

        return offset % 8 == 0 ? whole & 0xFFFF_FFFF : whole >> 32;
    }

    /// <summary>A register write.</summary>
    public void Write(uint offset, ulong value, int size)
    {
        if (offset >= 0x4000 || !(size == 4 || size == 8) || offset % (uint)size != 0)
        {
            return;
        }

        uint reg = offset - (offset % 8);
        ulong v = value;
        if (size == 4)
        {
            ulong low = value & 0xFFFF_FFFF;
            if (reg == 0x2020)
            {
                v = offset % 8 == 0 ? low : 0;
            }
            else
            {
                ulong old = Get(reg);
                v = offset % 8 == 0 ? (old & 0xFFFF_FFFF_0000_0000UL) | low : (old & 0xFFFF_FFFF) | (low << 32);
            }
        }

        switch (reg)
        {
            case 0x0000:
                _devtab = v & 0x000F_FFFF_FFFF_F1FFUL;
                break;
            case 0x0008:
                if (!CmdRun)
                {
                    _cmdBase = v & 0x0F0F_FFFF_FFFF_F000UL;
                    _cmdHead = 0;
                    _cmdTail = 0;
                }

                break;
            case 0x0010:
                if (!EvtRun)
                {
                    _evtBase = v & 0x0F0F_FFFF_FFFF_F000UL;
                    _evtHead = 0;
                    _evtTail = 0;
                }

                break;
            case 0x0018:
                _control = v & 0x3_FFFFUL;
                if (!(IommuOn && (_control & (1UL << 12)) != 0))
                {
                    _stopped = false;
                }

                Run();
                break;
            case 0x0020:
                _exclBase = v & 0x000F_FFFF_FFFF_F003UL;
                break;
            case 0x0028:
                _exclLimit = v & 0x000F_FFFF_FFFF_F000UL;
                break;
            case 0x2000:
                if (!CmdRun)
                {
                    _cmdHead = (v & 0x7_FFF0UL) % Size(_cmdBase);
                }

                break;
            case 0x2008:
                _cmdTail = (v & 0x7_FFF0UL) % Size(_cmdBase);
                Run();
                break;
            case 0x2010:
                _evtHead = (v & 0x7_FFF0UL) % Size(_evtBase);
                break;
            case 0x2018:
                if (!EvtRun)
                {
                    _evtTail = (v & 0x7_FFF0UL) % Size(_evtBase);
                }

                break;
            case 0x2020:
                if ((v & 1) != 0) _overflow = false;
                if ((v & 2) != 0) _eventInt = false;
                if ((v & 4) != 0) _waitInt = false;
                break;
        }
    }

    private void Interrupt()
    {
        InterruptStatuses.Add(Get(0x2020));
        InterruptHeads.Add(_cmdHead);
        OnInterrupt?.Invoke();
    }

    private void LogEvent(ulong qw0, ulong qw1)
    {
        if (!EvtRun || _overflow)
        {
            return;
        }

        ulong size = Size(_evtBase);
        ulong next = (_evtTail + 16) % size;
        if (next == _evtHead)
        {
            _overflow = true;
        }
        else
        {
            byte[] entry = new byte[16];
            BitConverter.TryWriteBytes(entry.AsSpan(0, 8), qw0);
            BitConverter.TryWriteBytes(entry.AsSpan(8, 8), qw1);
            if (!_memory.Write((_evtBase & 0x000F_FFFF_FFFF_F000UL) + _evtTail, entry))
            {
                return;
            }

            _evtTail = next;
            _eventInt = true;
        }

        if ((_control & 8) != 0)
        {
            Interrupt();
        }
    }

    private void Run()
    {
        if (_processing)
        {
            return;
        }

        _processing = true;
        try
        {
            while (CmdRun && _cmdHead != _cmdTail)
            {
                One();
            }

            EndBatch();
        }
        finally
        {
            _processing = false;
        }
    }

    private void EndBatch()
    {
        _batchDescriptors = 0;
        if (_pendingTimeouts.Count == 0)
        {
            return;
        }

        (ulong DeviceId, ulong Address)[] timeouts = [.. _pendingTimeouts];
        _pendingTimeouts.Clear();
        foreach ((ulong device, ulong address) in timeouts)
        {
            LogEvent((7UL << 60) | device, address);
        }
    }

    private void One()
    {
        ulong size = Size(_cmdBase);
        ulong address = (_cmdBase & 0x000F_FFFF_FFFF_F000UL) + _cmdHead;
        ulong ordinal = Fetches;
        Fetches++;
        if (Engine.FaultPlan.DecideFetchFails(ordinal, address))
        {
            EndBatch();
            _stopped = true;
            LogEvent((6UL << 60) | (3UL << 57), address);
            return;
        }

        byte[]? bytes = _memory.Read(address, 16);
        if (bytes is null)
        {
            EndBatch();
            _stopped = true;
            LogEvent((6UL << 60) | (1UL << 57), address);
            return;
        }

        ulong qw0 = BitConverter.ToUInt64(bytes, 0), qw1 = BitConverter.ToUInt64(bytes, 8);
        (ReferenceAmdViKind kind, List<InvalidationDescriptor> descriptors) = ReferenceAmdViDecoder.Decode(qw0, qw1, _options);
        if (kind == ReferenceAmdViKind.Illegal)
        {
            EndBatch();
            _stopped = true;
            LogEvent(5UL << 60, address);
            return;
        }

        if (kind == ReferenceAmdViKind.Invalidate)
        {
            ulong slot = _cmdHead / 16;
            _cmdHead = (_cmdHead + 16) % size;
            if (_batchDescriptors + descriptors.Count > BatchCapacity)
            {
                EndBatch();
            }

            _batchDescriptors += descriptors.Count;
            foreach (InvalidationDescriptor d in descriptors)
            {
                InvalidationStatus status = Engine.Execute(d);
                if (status is InvalidationStatus.Ok or InvalidationStatus.CompletionError)
                {
                    Records.Add(new InvalidationRecord(d, InvalidationSource.AmdViCommandBuffer, slot, status));
                }

                if (status == InvalidationStatus.TimedOut)
                {
                    _pendingTimeouts.Add((qw0 & 0xFFFF, address & ~0xFUL));
                }
            }

            return;
        }

        // COMPLETION_WAIT: everything before it has completed (and its time-outs are recorded) first.
        EndBatch();
        if ((qw0 & 1) != 0)
        {
            ulong storeAddress = qw0 & 0x000F_FFFF_FFFF_FFF8UL;
            if (!_memory.Write(storeAddress, BitConverter.GetBytes(qw1)))
            {
                _stopped = true;
                LogEvent((6UL << 60) | (1UL << 57), storeAddress);
                return;
            }
        }

        _cmdHead = (_cmdHead + 16) % size;
        if ((qw0 & 2) != 0)
        {
            _waitInt = true;
            if ((_control & 16) != 0)
            {
                Interrupt();
            }
        }
    }
}
