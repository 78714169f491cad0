using System.Runtime.CompilerServices;
using FastInval.Internals;
using FastInval.Queues;
using static FastInval.Vtd.VtdRegisters;

namespace FastInval.Vtd;

/// <summary>
/// One Intel VT-d remapping unit as its guest driver sees it through MMIO: the queued-invalidation registers, the
/// invalidation queue in guest memory, wait descriptors, the IQE / ITE / ICE errors and the fault and completion event
/// interrupts. Every invalidation is executed, in queue order, by <see cref="Engine"/> on the unit's caches, which the host
/// fills after its own page walks and looks up on DMA.
/// </summary>
/// <remarks>
/// <para><b>Register access.</b> <see cref="ReadRegister"/> and <see cref="WriteRegister"/> take 4- or 8-byte accesses
/// aligned to their size inside the 4 KiB register window; an 8-byte access is its low dword then its high dword. Any
/// other access (another size, a misaligned or out-of-window offset) is ignored on write and reads 0, as an unclaimed MMIO
/// read of a platform returns no data here. Unimplemented offsets, reserved bits and read-only fields read 0 or their
/// value and ignore writes. Implemented: VER (6.0, queued invalidation only: CCMD and the IOTLB registers at ECAP.IRO read
/// 0 and ignore writes), CAP, ECAP, GCMD (reads 0), GSTS, RTADDR, FSTS, FECTL, FEDATA, FEADDR, FEUADDR, IQH, IQT, IQA,
/// ICS, IECTL, IEDATA, IEADDR, IEUADDR, IQERCD, IRTA (with ECAP.IR), and the fault-recording register at CAP.FRO (reads 0:
/// this unit records no translation faults).</para>
///
/// <para><b>GCMD.</b> TE, QIE, IRE and CFI are states: GSTS shows each as last written (IRE, CFI only with ECAP.IR).
/// SRTP latches RTADDR.TTM as the active translation-table mode (legacy until the first SRTP) and sets GSTS.RTPS;
/// SIRTP sets GSTS.IRTPS; WBF and SFL do nothing (no CAP.RWBF, no advanced fault logging). QIE 0→1 sets GSTS.QIES and
/// processes the queue if IQT ≠ IQH; QIE 1→0 clears GSTS.QIES and resets IQH to 0, whatever is pending (QEMU refuses
/// unless the queue is empty and its last descriptor was a wait). IQA is latched by the unit while GSTS.QIES = 1: writes
/// to it are ignored then (the architecture leaves them undefined).</para>
///
/// <para><b>Processing</b> happens synchronously inside the write that allows it: IQT (low dword), GCMD enabling QIE,
/// or FSTS clearing IQE / ITE, while GSTS.QIES = 1 and neither IQE nor ITE is set. A non-empty queue is first checked as
/// a whole — IQA.DW = 1 without ECAP.SMTS is IQEI 5, IQT beyond the 2^QS-page queue is IQEI 1, IQT bit 4 set in a 256-bit
/// queue is IQEI 6 — then descriptors are fetched from IQA.base (modulo 2^HAW) + IQH, wrapping at the end of the queue,
/// until IQH = IQT. Each fetch first asks the fault plan (<see cref="FaultPlan.DecideFetchFails"/> with the unit's own
/// zero-based fetch ordinal, <see cref="DescriptorFetches"/>); a planned failure or unmapped guest memory is IQEI 2. Then
/// the descriptor is validated and decoded (<see cref="VtdDescriptorDecoder"/>: IQEI 7, 3 or 4). The invalidations between
/// two waits run as one engine batch, with the effect of running them one by one.</para>
///
/// <para><b>IQE</b> stops the queue with IQH on the offending descriptor (unchanged for IQEI 1, 5, 6), sets FSTS.IQE and
/// IQERCD.IQEI and raises a fault event. Clearing FSTS.IQE clears IQEI and resumes fetching at IQH (QEMU waits for the
/// next IQT write).</para>
///
/// <para><b>ITE.</b> A device-TLB invalidation the fault plan times out leaves the device's entries in place. The unit
/// keeps processing the invalidations after it, up to and including the fetch of the next wait descriptor — the
/// descriptors hardware has fetched but cannot complete. That wait is aborted (no status write, no interrupt), IQH points
/// past it, FSTS.ITE is set with IQERCD.ITESID = the source id of the first timed-out descriptor, and a fault event is
/// raised; nothing more is fetched until ITE is cleared, which clears ITESID and resumes at IQH. Without a following wait
/// the time-out is reported when the queue runs empty (IQH = IQT) or at an IQE (after it, IQH on the bad
/// descriptor).</para>
///
/// <para><b>ICE.</b> A device-TLB invalidation the fault plan completes with an error has removed the entries; FSTS.ICE is
/// set (IQERCD.ICESID = its source id if ICE was clear) with a fault event, and the queue goes on. Clearing ICE clears
/// ICESID.</para>
///
/// <para><b>Waits.</b> In queue order, after every earlier descriptor has completed: SW writes the 32-bit status data,
/// little-endian, at the status address (bits 63:2, modulo 2^HAW). A status write to unmapped guest memory means the
/// wait cannot complete: it is an IQE with IQH on the wait and IQEI 0 (no IQEI code names this case; QEMU also raises an
/// IQE here), no completion event, and nothing after it runs until software clears IQE (Linux's recovery rewrites the
/// slot at IQH first). Then IF sets ICS.IWC and raises a completion event if IWC was clear. A
/// wait with neither SW nor IF is a valid no-op (QEMU rejects it); FN and PD need no action, as all earlier descriptors
/// are complete and no page requests are outstanding.</para>
///
/// <para><b>Events.</b> A fault event is a new interrupt condition only when FSTS had none of PFO, PPF, IQE, ICE, ITE
/// set; then FECTL.IP is set, and if FECTL.IM = 0 the MSI (FEUADDR:FEADDR, FEDATA) is sent and IP cleared. Clearing IM
/// while IP is set sends it then; clearing the last of those FSTS fields clears IP. Completion events work the same with
/// ICS.IWC, IECTL and IEUADDR:IEADDR, IEDATA. Every MSI goes to <see cref="VtdOptions.Msi"/>.</para>
///
/// <para><b>Threading.</b> Every member may be called from any thread: the unit serializes its register accesses, state operations, disposal and device-TLB answers with a lock of its own (re-entrant: a callback may access the unit's registers on its thread). Cache lookups on
/// <see cref="Engine"/> may run on other threads at any time. <b>Allocation.</b> None per register access or processed
/// descriptor.</para>
/// </remarks>
public sealed partial class VtdIommu : IDisposable, IDeviceTlbClient
{
    private const ulong PageSize = 4096;

    private readonly GuestAddressSpace _memory;
    private readonly QueueCore _core;
    private readonly Action<ulong, uint>? _msi;
    private readonly VtdCapabilities _caps;
    private readonly bool _scalableMode;
    private readonly ulong _cap;
    private readonly ulong _ecap;

    private uint _gsts;
    private ulong _rtaddr;
    private VtdTranslationMode _mode;
    private uint _fsts;
    private uint _fectl = InterruptMask;
    private uint _fedata;
    private uint _feaddr;
    private uint _feuaddr;
    private ulong _iqh;
    private ulong _iqt;
    private ulong _iqa;
    private uint _ics;
    private uint _iectl = InterruptMask;
    private uint _iedata;
    private uint _ieaddr;
    private uint _ieuaddr;
    private ulong _iqercd;
    private ulong _irta;

    // Device-TLB answers (with a sink they arrive after the batch that sent them, from any thread).
    private bool _timedOut;        // a device-TLB invalidation timed out: abort the next wait, raise ITE
    private uint _timedOutSource;  // the first one's source id
    private bool _held;            // the wait at IQH waits for outstanding device-TLB requests
    private VtdDescriptor _heldWait;
    private bool _stalled;         // the queue stopped before a device-TLB invalidation: no ticket was free

    /// <summary>Creates a unit over <paramref name="memory"/> (where the queue and wait statuses live).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its documented range.</exception>
    public VtdIommu(GuestMemory memory, VtdOptions? options = null)
        : this((GuestAddressSpace)memory, options)
    {
    }

    /// <summary>Creates a unit over any guest address space (<see cref="GuestMemory"/>, <see cref="NativeGuestMemory"/>,
    /// <see cref="CallbackGuestMemory"/> or the host's own), where the queue and wait statuses live. The unit builds and
    /// owns its engine (from <see cref="VtdOptions.Engine"/> and <see cref="VtdOptions.FaultPlan"/>) and disposes it with
    /// itself.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its documented range.</exception>
    public VtdIommu(GuestAddressSpace memory, VtdOptions? options = null)
        : this(memory, options, null)
    {
    }

    /// <summary>Creates a unit over <paramref name="memory"/> that executes its invalidations on
    /// <paramref name="engine"/>, which the caller owns.</summary>
    /// <remarks>
    /// <para><b>Ownership.</b> The unit never disposes <paramref name="engine"/>; disposing the unit leaves it usable.
    /// The engine's own <see cref="InvalidationEngine.FaultPlan"/> decides fetch errors and device-TLB outcomes, so
    /// <see cref="VtdOptions.Engine"/> and <see cref="VtdOptions.FaultPlan"/> must be null.</para>
    /// <para><b>Sharing.</b> Several units (VT-d, SMMUv3, iommufd) may run over one engine and then share its caches: an
    /// invalidation from any of them removes matching entries for all. The engine has one writer at a time, so the host
    /// must serialize the register writes of every unit that shares it, and its own fills, with one lock for the engine
    /// (not one lock per unit). Lookups may still run on any thread. The fault plan's ordinals then count across the
    /// units.</para>
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="memory"/> or <paramref name="engine"/> is null.</exception>
    /// <exception cref="ArgumentException"><see cref="VtdOptions.Engine"/> or <see cref="VtdOptions.FaultPlan"/> is set.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its documented range.</exception>
    public VtdIommu(GuestAddressSpace memory, InvalidationEngine engine, VtdOptions? options = null)
        : this(memory, options, engine ?? throw new ArgumentNullException(nameof(engine)))
    {
    }

    private VtdIommu(GuestAddressSpace memory, VtdOptions? options, InvalidationEngine? engine)
    {
        ArgumentNullException.ThrowIfNull(memory);
        options ??= new VtdOptions();
        if ((uint)options.MaxAddressMask > 63)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(options), "MaxAddressMask must be 0-63");
        }

        if ((uint)options.MaxHandleMask > 15)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(options), "MaxHandleMask must be 0-15");
        }

        if (options.HostAddressWidth is < 32 or > 64)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(options), "HostAddressWidth must be 32-64");
        }

        _memory = memory;
        _msi = options.Msi;
        _scalableMode = options.ScalableMode;
        _caps = new VtdCapabilities(options);
        _core = new QueueCore(engine, options.Engine, options.FaultPlan, InvalidationSource.VtdQueue, nameof(VtdOptions));
        _core.DepthSource = QueueDepth;
        _cap = BuildCap(options);
        _ecap = BuildEcap(options, in _caps);
        _core.AttachDeviceTlbSink(this, options.DeviceTlbSink);
    }

    /// <summary>The unit's caches and executor: the host fills and looks up <see cref="InvalidationEngine.Iotlb"/>,
    /// <see cref="InvalidationEngine.DeviceTlb"/> and <see cref="InvalidationEngine.ConfigCache"/> (context entries by SID,
    /// PASID entries by SID and PASID tagged with their DID, interrupt-remapping entries by index). Its
    /// <see cref="InvalidationEngine.FaultPlan"/> also decides descriptor-fetch errors. Either the unit's own engine or the
    /// caller's (see the constructors).</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public InvalidationEngine Engine
    {
        get
        {
            _core.ThrowIfDisposed(this);
            return _core.Engine;
        }
    }

    /// <summary>Descriptor fetches attempted so far: the ordinal the fault plan sees next.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public ulong DescriptorFetches
    {
        get
        {
            _core.ThrowIfDisposed(this);
            return _core.Fetches;
        }
    }

    /// <summary>Invalidations the engine refused as malformed (<see cref="InvalidationStatus.Invalid"/>). The decoder
    /// never produces such a descriptor, so a non-zero count is a FastInval bug: each occurrence also asserts in debug
    /// builds and stops the queue with IQE (IQEI 0, IQH on the descriptor after the run that held it).</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public ulong InternalErrors
    {
        get
        {
            _core.ThrowIfDisposed(this);
            return _core.InternalErrors;
        }
    }

    /// <summary>Device-TLB requests sent to <see cref="VtdOptions.DeviceTlbSink"/> and not yet answered or timed out (0
    /// without a sink). While it is not 0 the state cannot be saved.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public int OutstandingDeviceTlbRequests
    {
        get
        {
            using Lock.Scope gate = _core.Gate.EnterScope();
            _core.ThrowIfDisposed(this);
            return _core.Tickets?.Outstanding ?? 0;
        }
    }

    /// <summary>Test-only hook on each batch before it is executed (see <see cref="BatchHook"/>).</summary>
    internal BatchHook? TestBatchHook
    {
        get => _core.TestHook;
        set => _core.TestHook = value;
    }

    /// <summary>Reads a register: <paramref name="size"/> 4 or 8 bytes at an offset aligned to it (else 0).</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public ulong ReadRegister(uint offset, int size)
    {
        using (_core.Gate.EnterScope())
        {
            _core.ThrowIfDisposed(this);
            if (!IsValidAccess(offset, size))
            {
                return 0;
            }

            return size == 4 ? ReadDword(offset) : ReadDword(offset) | ((ulong)ReadDword(offset + 4) << 32);
        }
    }

    /// <summary>Writes a register: <paramref name="size"/> 4 or 8 bytes at an offset aligned to it (else ignored). A write
    /// that lets the queue run (IQT, GCMD.QIE, FSTS clearing IQE or ITE) processes descriptors before it returns.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public void WriteRegister(uint offset, ulong value, int size)
    {
        using (_core.Gate.EnterScope())
        {
            _core.ThrowIfDisposed(this);
            if (!IsValidAccess(offset, size))
            {
                return;
            }

            WriteDword(offset, (uint)value);
            if (size == 8)
            {
                WriteDword(offset + 4, (uint)(value >> 32));
            }
        }
    }

    private static bool IsValidAccess(uint offset, int size) => RegisterAccess.IsValid(offset, size, WindowSize);

    private uint ReadDword(uint offset) => offset switch
    {
        Ver => VersionValue,
        Cap => (uint)_cap,
        Cap + 4 => (uint)(_cap >> 32),
        Ecap => (uint)_ecap,
        Ecap + 4 => (uint)(_ecap >> 32),
        Gsts => _gsts,
        Rtaddr => (uint)_rtaddr,
        Rtaddr + 4 => (uint)(_rtaddr >> 32),
        Fsts => _fsts,
        Fectl => _fectl,
        Fedata => _fedata,
        Feaddr => _feaddr,
        Feuaddr => _feuaddr,
        Iqh => (uint)_iqh,
        Iqt => (uint)_iqt,
        Iqa => (uint)_iqa,
        Iqa + 4 => (uint)(_iqa >> 32),
        Ics => _ics,
        Iectl => _iectl,
        Iedata => _iedata,
        Ieaddr => _ieaddr,
        Ieuaddr => _ieuaddr,
        Iqercd => (uint)_iqercd,
        Iqercd + 4 => (uint)(_iqercd >> 32),
        Irta => (uint)_irta,
        Irta + 4 => (uint)(_irta >> 32),
        _ => 0, // GCMD (write-only), IQH/IQT high halves, CCMD, IOTLB registers, FRCD, unimplemented offsets
    };

    private void WriteDword(uint offset, uint value)
    {
        switch (offset)
        {
            case Gcmd:
                WriteGcmd(value);
                break;
            case Rtaddr:
                _rtaddr = RegisterAccess.Merge(_rtaddr, value, low: true, RtaddrWritable);
                break;
            case Rtaddr + 4:
                _rtaddr = RegisterAccess.Merge(_rtaddr, value, low: false, RtaddrWritable);
                break;
            case Fsts:
                WriteFsts(value);
                break;
            case Fectl:
                _fectl = WriteControl(_fectl, value, _feuaddr, _feaddr, _fedata);
                break;
            case Fedata:
                _fedata = value;
                break;
            case Feaddr:
                _feaddr = value & MessageAddressWritable;
                break;
            case Feuaddr:
                _feuaddr = value;
                break;
            case Iqt:
                _iqt = value & QueueOffsetMask;
                Process();
                break;
            case Iqa:
            case Iqa + 4:
                if ((_gsts & Qie) == 0)
                {
                    _iqa = RegisterAccess.Merge(_iqa, value, offset == Iqa, IqaWritable);
                }

                break;
            case Ics:
                if ((value & Iwc) != 0)
                {
                    _ics &= ~Iwc;
                    _iectl &= ~InterruptPending;
                }

                break;
            case Iectl:
                _iectl = WriteControl(_iectl, value, _ieuaddr, _ieaddr, _iedata);
                break;
            case Iedata:
                _iedata = value;
                break;
            case Ieaddr:
                _ieaddr = value & MessageAddressWritable;
                break;
            case Ieuaddr:
                _ieuaddr = value;
                break;
            case Irta:
            case Irta + 4:
                if (_caps.InterruptRemapping)
                {
                    _irta = RegisterAccess.Merge(_irta, value, offset == Irta, IrtaWritable);
                }

                break;
        }
    }

    private void WriteGcmd(uint value)
    {
        uint status = _gsts & (Te | Qie | Ire | Cfi | Srtp | Sirtp);
        status = (status & ~Te) | (value & Te);
        if (_caps.InterruptRemapping)
        {
            status = (status & ~(Ire | Cfi)) | (value & (Ire | Cfi));
            if ((value & Sirtp) != 0)
            {
                status |= Sirtp; // IRTPS
            }
        }

        if ((value & Srtp) != 0)
        {
            ulong ttm = (_rtaddr >> RtaddrTtmShift) & 3;
            _mode = ttm == 0 ? VtdTranslationMode.Legacy
                : ttm == 1 && _scalableMode ? VtdTranslationMode.Scalable
                : VtdTranslationMode.Invalid;
            status |= Srtp; // RTPS
        }

        bool wasEnabled = (_gsts & Qie) != 0;
        bool enable = (value & Qie) != 0;
        status = (status & ~Qie) | (enable ? Qie : 0);
        _gsts = status;
        if (wasEnabled && !enable)
        {
            _iqh = 0;
            _held = false; // a held wait is dropped with the queue; its requests still complete
            _stalled = false;
        }
        else if (!wasEnabled && enable)
        {
            Process();
        }
    }

    private void WriteFsts(uint value)
    {
        uint cleared = value & FstsRw1c & _fsts;
        _fsts &= ~cleared;
        if ((cleared & Iqe) != 0)
        {
            _iqercd &= ~(0xFUL << IqeiShift);
        }

        if ((cleared & Ite) != 0)
        {
            _iqercd &= ~(0xFFFFUL << ItesidShift);
        }

        if ((cleared & Ice) != 0)
        {
            _iqercd &= ~(0xFFFFUL << IcesidShift);
        }

        if ((_fsts & FaultEventSources) == 0)
        {
            _fectl &= ~InterruptPending;
        }

        if ((cleared & (Iqe | Ite)) != 0)
        {
            Process();
        }
    }

    /// <summary>FECTL / IECTL: IM is writable, IP read-only; unmasking with IP set sends the pending message.</summary>
    private uint WriteControl(uint control, uint value, uint upperAddress, uint address, uint data)
    {
        control = (control & InterruptPending) | (value & InterruptMask);
        if ((control & (InterruptPending | InterruptMask)) == InterruptPending)
        {
            control &= ~InterruptPending;
            _msi?.Invoke(((ulong)upperAddress << 32) | address, data);
        }

        return control;
    }

    // ---- events -----------------------------------------------------------------------------------------

    private void RaiseFault(uint field)
    {
        bool newCondition = (_fsts & FaultEventSources) == 0;
        _fsts |= field;
        if (newCondition)
        {
            _fectl |= InterruptPending;
            if ((_fectl & InterruptMask) == 0)
            {
                _fectl &= ~InterruptPending;
                _msi?.Invoke(((ulong)_feuaddr << 32) | _feaddr, _fedata);
            }
        }
    }

    private void RaiseQueueError(VtdQueueError code)
    {
        _core.Engine.Metrics.CountQueueError(QueueError.Iqe);
        _iqercd = (_iqercd & ~(0xFUL << IqeiShift)) | ((ulong)code << IqeiShift);
        RaiseFault(Iqe);
    }

    private void RaiseTimeout(uint sourceId)
    {
        _core.Engine.Metrics.CountQueueError(QueueError.Ite);
        if ((_fsts & Ite) == 0)
        {
            _iqercd = (_iqercd & ~(0xFFFFUL << ItesidShift)) | ((ulong)(sourceId & 0xFFFF) << ItesidShift);
        }

        RaiseFault(Ite);
    }

    private void RaiseCompletionError(uint sourceId)
    {
        _core.Engine.Metrics.CountQueueError(QueueError.Ice);
        if ((_fsts & Ice) == 0)
        {
            _iqercd = (_iqercd & ~(0xFFFFUL << IcesidShift)) | ((ulong)(sourceId & 0xFFFF) << IcesidShift);
        }

        RaiseFault(Ice);
    }

    private void RaiseCompletionEvent()
    {
        if ((_ics & Iwc) != 0)
        {
            return;
        }

        _ics |= Iwc;
        _iectl |= InterruptPending;
        if ((_iectl & InterruptMask) == 0)
        {
            _iectl &= ~InterruptPending;
            _msi?.Invoke(((ulong)_ieuaddr << 32) | _ieaddr, _iedata);
        }
    }

    // ---- the queue ----------------------------------------------------------------------------------------

    private void Process()
    {
        if (!_core.TryEnter())
        {
            return; // a register write from inside an MSI callback: the running loop re-reads the registers
        }

        try
        {
            Run();
        }
        finally
        {
            _core.Exit();
        }
    }

    private void Run()
    {
        Span<byte> fetched = stackalloc byte[32];
        while (true)
        {
            ulong head = _iqh, tail = _iqt;
            bool wide = (_iqa & IqaDw) != 0;
            ulong width = wide ? 32UL : 16UL;
            ulong size = PageSize << (int)(_iqa & IqaQsMask);
            if (_held)
            {
                // The wait at IQH was fetched but cannot complete while an earlier device-TLB request is unanswered;
                // a time-out aborts it at once (IQH past it, ITE below), whatever else is still outstanding.
                if (_timedOut)
                {
                    _held = false;
                    _iqh = Next(head, width, size);
                    break;
                }

                if (_core.HasOutstandingDeviceTlb || _core.IsDisposed)
                {
                    break;
                }

                _held = false;
                if (!FinishWait(in _heldWait, head, width, size))
                {
                    break;
                }

                continue;
            }

            if (_core.IsDisposed || (_gsts & Qie) == 0 || (_fsts & (Iqe | Ite)) != 0 || head == tail)
            {
                break;
            }

            if (wide && !_scalableMode)
            {
                RaiseQueueError(VtdQueueError.InvalidWidth);
                break;
            }

            if (tail >= size)
            {
                RaiseQueueError(VtdQueueError.InvalidTail);
                break;
            }

            if (wide && (tail & 0x10) != 0)
            {
                RaiseQueueError(VtdQueueError.TailNotAligned);
                break;
            }

            // Decode the run up to the next wait, error, the tail, a full batch or a device-TLB invalidation that finds
            // no free ticket.
            ulong queueBase = _iqa & IqaBaseMask & _caps.HostAddressMask;
            Span<byte> slot = fetched[..(int)width];
            Span<InvalidationDescriptor> batch = _core.Slots;
            int n = 0;
            ulong position = head;
            VtdDecodeOutcome stop = VtdDecodeOutcome.Invalidation;
            VtdQueueError error = VtdQueueError.None;
            VtdDescriptor wait = default;
            _stalled = false;
            while (position != tail && n <= QueueCore.BatchCapacity - VtdDescriptorDecoder.MaxOutput)
            {
                ulong address = (queueBase + position) & _caps.HostAddressMask;
                if (!_core.TryFetch(_memory, address, slot))
                {
                    stop = VtdDecodeOutcome.Error;
                    error = VtdQueueError.FetchError;
                    break;
                }

                VtdDescriptor d = VtdDescriptor.Read(slot); // QW2 = QW3 = 0 from a 128-bit slot
                VtdDecodeOutcome outcome = VtdDescriptorDecoder.Decode(in d, in _caps, wide, _mode, batch[n..], out int count, out error);
                if (outcome != VtdDecodeOutcome.Invalidation)
                {
                    stop = outcome;
                    wait = d;
                    break;
                }

                if (!_core.Admit(n, count))
                {
                    _stalled = true; // fetched again once a request completes
                    break;
                }

                _core.SetIndices(n, count, position / width);
                n += count;
                position = Next(position, width, size);
            }

            // Execute the run; time-outs (reported at the wait that cannot complete) and completion errors come back as
            // the engine's statuses or, with a device-TLB sink, as its answers (OnDeviceTlbAnswer).
            bool internalError = false;
            if (n > 0)
            {
                QueueRunResult result = _core.Execute(n);
                internalError = result.InternalError;
                if (result.TimedOutSource is uint timedOutSid)
                {
                    NoteTimeout(timedOutSid);
                }

                if (result.CompletionErrorSource is uint iceSid)
                {
                    RaiseCompletionError(iceSid);
                }
            }

            _iqh = position;
            if (internalError)
            {
                RaiseQueueError(VtdQueueError.None); // an internal error: IQE before the wait or error that ended the run
                break;
            }

            if (stop == VtdDecodeOutcome.Error)
            {
                RaiseQueueError(error);
                break;
            }

            if (_stalled && n == 0)
            {
                break; // every ticket is taken: OnDeviceTlbProgress goes on
            }

            if (stop == VtdDecodeOutcome.Wait)
            {
                if (_core.HasOutstandingDeviceTlb && !_timedOut)
                {
                    _held = true; // IQH stays on the wait until the device answers (OnDeviceTlbProgress)
                    _heldWait = wait;
                    break;
                }

                if (!FinishWait(in wait, position, width, size))
                {
                    break;
                }
            }
        }

        if (_timedOut && !_held)
        {
            _timedOut = false;
            RaiseTimeout(_timedOutSource);
        }
    }

    /// <summary>Completes the wait at <paramref name="position"/> once every earlier descriptor has: aborted after a
    /// device-TLB time-out (IQH past it, no status write, no interrupt), an IQE on it when its status write cannot land,
    /// else the status write and the completion event. False when the queue stops.</summary>
    private bool FinishWait(in VtdDescriptor wait, ulong position, ulong width, ulong size)
    {
        if (_timedOut)
        {
            _iqh = Next(position, width, size);
            return false; // the wait is aborted: no status write, no interrupt; ITE when the run ends
        }

        if (wait.StatusWrite && !_memory.TryWriteUInt32(wait.StatusAddress & _caps.HostAddressMask, wait.StatusData))
        {
            _iqh = position;
            RaiseQueueError(VtdQueueError.None); // the wait cannot complete: IQE with IQH on it, as QEMU does
            return false;
        }

        _iqh = Next(position, width, size);
        if (wait.InterruptFlag)
        {
            RaiseCompletionEvent();
        }

        return true;
    }

    private void NoteTimeout(uint sourceId)
    {
        if (!_timedOut)
        {
            _timedOut = true;
            _timedOutSource = sourceId;
        }
    }

    void IDeviceTlbClient.OnDeviceTlbAnswer(DeviceTlbFault outcome, uint sourceId, ulong index)
    {
        if (outcome == DeviceTlbFault.Timeout)
        {
            NoteTimeout(sourceId);
        }
        else if (outcome == DeviceTlbFault.CompletionError)
        {
            RaiseCompletionError(sourceId);
        }
    }

    void IDeviceTlbClient.OnDeviceTlbProgress()
    {
        if (_held || _stalled || _timedOut)
        {
            Process();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Next(ulong position, ulong width, ulong size)
    {
        ulong next = position + width;
        return next == size ? 0 : next;
    }

    // ---- capabilities -------------------------------------------------------------------------------------

    private static ulong BuildCap(VtdOptions o)
    {
        ulong cap = 6UL << CapNdShift;                          // 16-bit domain ids
        cap |= (o.CachingMode ? 1UL : 0) << CapCmShift;
        cap |= 0b00110UL << CapSagawShift;                      // 39- and 48-bit second-stage tables
        cap |= 47UL << CapMgawShift;                            // 48-bit guest addresses
        cap |= 1UL << CapZlrShift;
        cap |= (ulong)(FaultRecording / 16) << CapFroShift;     // one fault-recording register (NFR = 0)
        cap |= 0b0011UL << CapSllpsShift;                       // 2 MiB and 1 GiB second-stage pages
        cap |= 1UL << CapPsiShift;
        cap |= (ulong)o.MaxAddressMask << CapMamvShift;
        cap |= (o.DrainWrites ? 1UL : 0) << CapDwdShift;
        cap |= (o.DrainReads ? 1UL : 0) << CapDrdShift;
        cap |= (o.ScalableMode ? 1UL : 0) << CapFl1gpShift;     // 1 GiB first-stage pages
        return cap;
    }

    private static ulong BuildEcap(VtdOptions o, in VtdCapabilities caps)
    {
        ulong ecap = 1UL << EcapQiShift;
        ecap |= (caps.DeviceTlb ? 1UL : 0) << EcapDtShift;
        ecap |= (caps.InterruptRemapping ? 1UL : 0) << EcapIrShift;
        ecap |= (caps.InterruptRemapping ? 1UL : 0) << EcapEimShift;
        ecap |= 1UL << EcapPtShift;
        ecap |= (ulong)(IotlbRegisters / 16) << EcapIroShift;
        ecap |= (ulong)caps.MaxHandleMask << EcapMhmvShift;
        ecap |= (caps.Pasid ? 19UL : 0) << EcapPssShift;        // 20-bit PASIDs
        ecap |= (caps.Pasid ? 1UL : 0) << EcapPasidShift;
        ecap |= (caps.Throttling ? 1UL : 0) << EcapDitShift;
        ecap |= (caps.PageRequestDrain ? 1UL : 0) << EcapPdsShift;
        if (o.ScalableMode)
        {
            ecap |= (1UL << EcapSmtsShift) | (1UL << EcapNestShift) | (1UL << EcapSltsShift) | (1UL << EcapFltsShift);
        }

        return ecap;
    }

    /// <summary>Descriptors between IQH and IQT (the meter's <c>fastinval.queue.depth</c>).</summary>
    private long QueueDepth()
    {
        ulong iqa = _iqa;
        ulong width = (iqa & IqaDw) != 0 ? 32UL : 16UL;
        ulong size = PageSize << (int)(iqa & IqaQsMask);
        return (long)(((_iqt - _iqh) & (size - 1)) / width);
    }

    /// <summary>Disposes the unit and, if the unit built it, its engine (a caller's engine is left alone). Afterwards
    /// every member but <see cref="Dispose"/> (which may be called again) throws <see cref="ObjectDisposedException"/>.
    /// Called from an MSI callback during processing, it stops the queue after the descriptor being completed and
    /// disposes the engine when the register write returns.</summary>
    public void Dispose()
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.Dispose();
    }
}
