using FastInval.Internals;
using FastInval.Queues;
using static FastInval.Smmu.SmmuRegisters;

namespace FastInval.Smmu;

/// <summary>
/// One Arm SMMUv3 as its guest driver sees it through page-0 MMIO: the identification and control registers, the
/// command queue in guest memory, command errors with GERROR/GERRORN acknowledgement, CMD_SYNC completion by MSI, wired
/// interrupt or event. Every invalidation command is executed, in queue order, by <see cref="Engine"/> on the SMMU's
/// caches, which the host fills after its own table walks and looks up on DMA.
/// </summary>
/// <remarks>
/// <para><b>Register access.</b> 4-byte accesses at 4-byte aligned offsets and 8-byte accesses at 8-byte aligned offsets
/// inside the 64 KiB page 0; an 8-byte access to a pair of 32-bit registers is the low register then the high one. Any
/// other access is ignored on write and reads 0. Read-only registers, reserved bits and unimplemented offsets read 0 (or
/// their value) and ignore writes. Implemented: IDR0–5, IIDR, AIDR (SMMUv3.1; see <see cref="SmmuRegisters.AidrSmmuV31"/>), CR0/CR0ACK, CR1, CR2, GBPA, IRQ_CTRL/ACK,
/// GERROR/GERRORN, GERROR_IRQ_CFG0–2 (with MSIs), STRTAB_BASE/_CFG (stored; this unit walks no tables), CMDQ_BASE, CMDQ_PROD,
/// CMDQ_CONS. The event and PRI queues are not modelled: this unit translates nothing, so it records no events.</para>
/// <para><b>Acknowledgements</b> are immediate: CR0ACK and IRQ_CTRLACK follow a write at once, and a GBPA write with
/// Update = 1 completes at once (Update reads 0). CMDQ_BASE and CMDQ_CONS ignore writes while CR0ACK.CMDQEN = 1 (required from SMMUv3.2, one of the permitted behaviours before),
/// STRTAB_BASE/_CFG while SMMUEN = 1. CMDQ_BASE.LOG2SIZE above IDR1.CMDQS counts as CMDQS; the queue base is ADDR aligned
/// down to the queue size (at least 32 bytes) and truncated to the output address size.</para>
/// <para><b>Consumption</b> happens synchronously inside the write that allows it — CMDQ_PROD, CR0 setting CMDQEN, GERRORN
/// acknowledging CMDQ_ERR — while CMDQEN = 1 and CMDQ_ERR is inactive, until CONS = PROD (index and wrap bit over
/// LOG2SIZE + 1 bits; CONS.ERR is kept). Each fetch first asks the fault plan
/// (<see cref="FaultPlan.DecideFetchFails"/> with the unit's zero-based fetch ordinal, <see cref="CommandFetches"/>); a
/// planned failure or unmapped memory is CERROR_ABT. The command is decoded by <see cref="SmmuCommandDecoder"/> (CERROR_ILL).
/// Invalidations between two CMD_SYNCs run as one engine batch, with the effect of running them one by one; ATC_INV is
/// IGNORED (consumed, no effect) while SMMUEN = 0. PREFETCH_*, PRI_RESP, RESUME and STALL_TERM are consumed with no effect
/// (nothing is stalled, nothing is prefetched).</para>
/// <para><b>CMD_SYNC</b> completes everything before it, then signals as CS says: SIG_IRQ writes MSIData (32-bit,
/// little-endian) to MSIAddress when IDR0.MSI and MSIAddress ≠ 0, and asserts the wired
/// <see cref="SmmuInterrupt.CommandSync"/> output regardless (§4.7.3); SIG_SEV asserts <see cref="SmmuInterrupt.Event"/>
/// when IDR0.SEV; SIG_NONE does nothing. The signal is sent only after CONS has moved past the CMD_SYNC, so that software inferring
/// CONS from the MSI (or the interrupt) never sees an older CONS. An MSI write to unmapped memory is aborted and reported as
/// GERROR.MSI_CMDQ_ABT_ERR; the SYNC still completes.</para>
/// <para><b>CERROR_ATC_INV_SYNC.</b> An ATC_INV whose device-TLB invalidation the fault plan times out leaves the device's
/// entries in place and marks the ATC invalidations since the last completed CMD_SYNC as failed. The next CMD_SYNC reports
/// it: it is not consumed, sends no signal, and CONS stays on it with ERR = 3. Reporting clears the mark, so after the
/// acknowledgement a retried CMD_SYNC completes (the lost invalidation is software's to reissue).</para>
/// <para><b>Errors.</b> On CERROR_ILL / ABT / ATC_INV_SYNC the invalidations before the command are executed, CONS stays on
/// the command, CONS.ERR is written, and GERROR.CMDQ_ERR is toggled if it was inactive (a second error while active is not
/// logged). A newly active GERROR bit raises the global-error interrupt if IRQ_CTRL.GERROR_IRQEN: an MSI of
/// GERROR_IRQ_CFG1 to GERROR_IRQ_CFG0 when MSIs are supported and the address is non-zero (a failed write sets
/// MSI_GERROR_ABT_ERR), else the wired <see cref="SmmuInterrupt.GlobalError"/>. Writing GERRORN equal to GERROR acknowledges
/// and resumes at CONS (the failing command is fetched again); changing CMDQEN neither acknowledges nor clears.</para>
/// <para><b>Threading.</b> Every member may be called from any thread: the SMMU serializes its register accesses, state operations, disposal and device-TLB answers with a lock of its own (re-entrant: a callback may access its registers on its thread); cache lookups on
/// <see cref="Engine"/> may run on other threads. <b>Allocation.</b> None per register access or command.</para>
/// </remarks>
public sealed partial class SmmuV3 : IDisposable, IDeviceTlbClient
{
    private const uint PageSize = 0x1_0000;

    private readonly GuestAddressSpace _memory;
    private readonly QueueCore _core;
    private readonly SmmuFeatures _features;
    private readonly Action<ulong, uint>? _msi;
    private readonly Action<SmmuInterrupt>? _wired;
    private readonly uint[] _idr = new uint[6];
    private readonly int _cmdqMaxLog2;
    private readonly ulong _oasMask;

    private uint _cr0;
    private uint _cr1;
    private uint _cr2;
    private uint _gbpa;
    private uint _irqCtrl;
    private uint _gerror;
    private uint _gerrorn;
    private ulong _gerrorIrqCfg0;
    private uint _gerrorIrqCfg1;
    private uint _gerrorIrqCfg2;
    private ulong _strtabBase;
    private uint _strtabBaseCfg;
    private ulong _cmdqBase;
    private uint _cmdqProd;
    private uint _cmdqCons;
    private bool _atcFailed;
    private bool _internalFailed;

    // Device-TLB (ATC) answers with a sink: a CMD_SYNC after an unanswered CMD_ATC_INV is held, CONS on it.
    private bool _holding;
    private SmmuCommand _heldSync;
    private bool _stalled; // stopped before a CMD_ATC_INV: no ticket was free

    /// <summary>Creates an SMMU over <paramref name="memory"/> (where the command queue and CMD_SYNC MSIs live).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its documented range.</exception>
    public SmmuV3(GuestMemory memory, SmmuOptions? options = null)
        : this((GuestAddressSpace)memory, options)
    {
    }

    /// <summary>Creates an SMMU over any guest address space (<see cref="GuestMemory"/>, <see cref="NativeGuestMemory"/>,
    /// <see cref="CallbackGuestMemory"/> or the host's own), where the command queue and CMD_SYNC MSIs live.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its documented range.</exception>
    public SmmuV3(GuestAddressSpace memory, SmmuOptions? options = null)
        : this(memory, options, null)
    {
    }

    /// <summary>Creates an SMMU over <paramref name="memory"/> that executes its invalidations on
    /// <paramref name="engine"/>, which the caller owns.</summary>
    /// <remarks>
    /// <para><b>Ownership.</b> The SMMU never disposes <paramref name="engine"/>; disposing the SMMU leaves it usable.
    /// The engine's own <see cref="InvalidationEngine.FaultPlan"/> decides fetch errors and ATC outcomes, so
    /// <see cref="SmmuOptions.Engine"/> and <see cref="SmmuOptions.FaultPlan"/> must be null.</para>
    /// <para><b>Sharing.</b> Several units (SMMUv3, VT-d, iommufd) may run over one engine and then share its caches: an
    /// invalidation from any of them removes matching entries for all. The engine has one writer at a time, so the host
    /// must serialize the register writes of every unit that shares it, and its own fills, with one lock for the engine
    /// (not one lock per unit). Lookups may still run on any thread. The fault plan's ordinals then count across the
    /// units.</para>
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="memory"/> or <paramref name="engine"/> is null.</exception>
    /// <exception cref="ArgumentException"><see cref="SmmuOptions.Engine"/> or <see cref="SmmuOptions.FaultPlan"/> is set.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its documented range.</exception>
    public SmmuV3(GuestAddressSpace memory, InvalidationEngine engine, SmmuOptions? options = null)
        : this(memory, options, engine ?? throw new ArgumentNullException(nameof(engine)))
    {
    }

    private SmmuV3(GuestAddressSpace memory, SmmuOptions? options, InvalidationEngine? engine)
    {
        ArgumentNullException.ThrowIfNull(memory);
        options ??= new SmmuOptions();
        SmmuFeatures f = options.Features ?? new SmmuFeatures();
        if ((uint)options.StreamIdBits > 32 || (uint)options.MaxCommandQueueLog2 > 19 || (uint)f.SubstreamIdBits > 20)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(options), "StreamIdBits must be 0-32, MaxCommandQueueLog2 0-19, SubstreamIdBits 0-20");
        }

        int oasCode = options.OutputAddressBits switch { 32 => 0, 36 => 1, 40 => 2, 42 => 3, 44 => 4, 48 => 5, 52 => 6, _ => -1 };
        if (oasCode < 0)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(options), "OutputAddressBits must be 32, 36, 40, 42, 44, 48 or 52");
        }

        _memory = memory;
        _features = f;
        _msi = options.Msi;
        _wired = options.WiredInterrupt;
        _cmdqMaxLog2 = options.MaxCommandQueueLog2;
        _oasMask = (1UL << options.OutputAddressBits) - 1;
        _core = new QueueCore(engine, options.Engine, options.FaultPlan, InvalidationSource.SmmuCommandQueue, nameof(SmmuOptions));
        _core.DepthSource = QueueDepth;
        _core.AttachDeviceTlbSink(this, options.DeviceTlbSink);

        _idr[0] = (f.Stage2 ? Idr0S2p : 0) | (f.Stage1 ? Idr0S1p : 0) | (2u << Idr0TtfShift) /* AArch64 */ | Idr0CohAcc |
                  (f.Ats ? Idr0Ats : 0) | (f.Asid16 ? Idr0Asid16 : 0) | (f.Msi ? Idr0Msi : 0) | (f.Sev ? Idr0Sev : 0) |
                  (f.Pri ? Idr0Pri : 0) | (f.Vmid16 ? Idr0Vmid16 : 0) | (f.Stage1 ? Idr0Cd2l : 0) |
                  (2u << Idr0TtEndianShift) /* little-endian tables */ | ((f.Stall ? 0u : 1u) << Idr0StallModelShift) |
                  Idr0TermModel /* terminate with abort */ | (1u << Idr0StLevelShift) /* 2-level stream table */;
        _idr[1] = ((uint)options.StreamIdBits << Idr1SidSizeShift) | ((uint)f.SubstreamIdBits << Idr1SsidSizeShift) |
                  ((f.Pri ? 19u : 0) << Idr1PriqsShift) | (19u << Idr1EventqsShift) | ((uint)options.MaxCommandQueueLog2 << Idr1CmdqsShift);
        // SMMUv3.1 with v3.2's RIL (a v3.x part may carry any v3.(x+1) feature): v3.1 makes HAD mandatory with stage 1
        // (and 0 without it) and XNX mandatory with stage 2. v3.2 would also require HYP with both stages, FWB and BBML.
        _idr[3] = (f.Stage1 ? Idr3Had : 0) | (f.Stage2 ? Idr3Xnx : 0) | (f.RangeInvalidation ? Idr3Ril : 0);
        _idr[5] = (uint)oasCode | Idr5Gran4K | Idr5Gran16K | Idr5Gran64K;
        _cmdqBase = (uint)options.MaxCommandQueueLog2 & CmdqLog2SizeMask;
    }

    /// <summary>The SMMU's caches and executor: the host fills and looks up <see cref="InvalidationEngine.Iotlb"/> (stage-1
    /// and nested entries tagged VMID + ASID, stage-2 entries tagged VMID), <see cref="InvalidationEngine.DeviceTlb"/> (ATCs
    /// by StreamID and SubstreamID) and <see cref="InvalidationEngine.ConfigCache"/> (STEs by StreamID, CDs by StreamID and
    /// SubstreamID). Its <see cref="InvalidationEngine.FaultPlan"/> also decides command-fetch errors. Either the SMMU's
    /// own engine or the caller's (see the constructors).</summary>
    /// <exception cref="ObjectDisposedException">The SMMU is disposed.</exception>
    public InvalidationEngine Engine
    {
        get
        {
            _core.ThrowIfDisposed(this);
            return _core.Engine;
        }
    }

    /// <summary>Commands fetched so far: the ordinal the fault plan sees for the next fetch.</summary>
    /// <exception cref="ObjectDisposedException">The SMMU is disposed.</exception>
    public ulong CommandFetches
    {
        get
        {
            _core.ThrowIfDisposed(this);
            return _core.Fetches;
        }
    }

    /// <summary>Invalidations the engine refused as malformed (<see cref="InvalidationStatus.Invalid"/>). The decoder
    /// never produces such a descriptor, so a non-zero count is a FastInval bug: each occurrence also asserts in debug
    /// builds, and the next CMD_SYNC cannot give its guarantees: it is CERROR_ILL, not consumed, with no signal.</summary>
    /// <exception cref="ObjectDisposedException">The SMMU is disposed.</exception>
    public ulong InternalErrors
    {
        get
        {
            _core.ThrowIfDisposed(this);
            return _core.InternalErrors;
        }
    }

    /// <summary>Device-TLB requests sent to <see cref="SmmuOptions.DeviceTlbSink"/> and not yet answered or timed out (0
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

    private bool CommandQueueEnabled => (_cr0 & Cr0CmdqEn) != 0;

    private bool CommandErrorActive => ((_gerror ^ _gerrorn) & GerrorCmdqErr) != 0;

    private int QueueLog2 => Math.Min((int)(_cmdqBase & CmdqLog2SizeMask), _cmdqMaxLog2);

    /// <summary>Reads a register (4 or 8 bytes, naturally aligned); anything else reads 0.</summary>
    /// <exception cref="ObjectDisposedException">The SMMU is disposed.</exception>
    public ulong ReadRegister(uint offset, int size)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        if (!RegisterAccess.IsValid(offset, size, PageSize))
        {
            return 0;
        }

        if (size == 8)
        {
            return Is64(offset) ? Read64(offset) : Read32(offset) | ((ulong)Read32(offset + 4) << 32);
        }

        return Is64(offset & ~7u) ? RegisterAccess.Half(Read64(offset & ~7u), offset) : Read32(offset);
    }

    /// <summary>Writes a register (4 or 8 bytes, naturally aligned); anything else is ignored. A write that allows the
    /// command queue to make progress consumes commands before it returns.</summary>
    /// <exception cref="ObjectDisposedException">The SMMU is disposed.</exception>
    public void WriteRegister(uint offset, ulong value, int size)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        if (!RegisterAccess.IsValid(offset, size, PageSize))
        {
            return;
        }

        if (size == 8)
        {
            if (Is64(offset))
            {
                Write64(offset, value);
            }
            else
            {
                Write32(offset, (uint)value);
                Write32(offset + 4, (uint)(value >> 32));
            }

            return;
        }

        uint aligned = offset & ~7u;
        if (Is64(aligned))
        {
            Write64(aligned, RegisterAccess.Merge(Read64(aligned), (uint)value, low: (offset & 4) == 0));
            return;
        }

        Write32(offset, (uint)value);
    }

    private static bool Is64(uint offset) => offset is GerrorIrqCfg0 or StrtabBase or CmdqBase;

    private ulong Read64(uint offset) => offset switch
    {
        GerrorIrqCfg0 => _gerrorIrqCfg0,
        StrtabBase => _strtabBase,
        _ => _cmdqBase,
    };

    private uint Read32(uint offset) => offset switch
    {
        <= Idr5 => _idr[offset / 4],
        Aidr => AidrSmmuV31,
        Cr0 or Cr0Ack => _cr0,
        Cr1 => _cr1,
        Cr2 => _cr2,
        Gbpa => _gbpa,
        IrqCtrl or IrqCtrlAck => _irqCtrl,
        Gerror => _gerror,
        Gerrorn => _gerrorn,
        GerrorIrqCfg1 => _gerrorIrqCfg1,
        GerrorIrqCfg2 => _gerrorIrqCfg2,
        StrtabBaseCfg => _strtabBaseCfg,
        CmdqProd => _cmdqProd,
        CmdqCons => _cmdqCons,
        _ => 0,
    };

    private void Write64(uint offset, ulong value)
    {
        switch (offset)
        {
            case GerrorIrqCfg0:
                if (_features.Msi)
                {
                    _gerrorIrqCfg0 = value & MsiAddressMask;
                }

                break;
            case StrtabBase:
                if ((_cr0 & Cr0SmmuEn) == 0)
                {
                    _strtabBase = value & StrtabBaseMask;
                }

                break;
            case CmdqBase:
                if (!CommandQueueEnabled)
                {
                    _cmdqBase = value & CmdqBaseMask;
                }

                break;
        }
    }

    private void Write32(uint offset, uint value)
    {
        switch (offset)
        {
            case Cr0:
            {
                uint implemented = Cr0SmmuEn | Cr0EvtqEn | Cr0CmdqEn | Cr0AtsChk | (_features.Pri ? Cr0PriqEn : 0);
                _cr0 = value & implemented;
                if (!CommandQueueEnabled)
                {
                    _holding = _stalled = false; // a held CMD_SYNC is fetched again when the queue is enabled
                }

                Consume();
                break;
            }

            case Cr1:
                _cr1 = value & Cr1Mask;
                break;
            case Cr2:
                _cr2 = value & Cr2Mask;
                break;
            case Gbpa:
                if ((value & GbpaUpdate) != 0)
                {
                    _gbpa = value & GbpaMask; // Update completes at once (reads 0)
                }

                break;
            case IrqCtrl:
                _irqCtrl = value & (IrqGerrorEn | IrqEvtqEn | (_features.Pri ? IrqPriqEn : 0));
                break;
            case Gerrorn:
                _gerrorn = value & GerrorDefined;
                Consume();
                break;
            case GerrorIrqCfg1:
                if (_features.Msi)
                {
                    _gerrorIrqCfg1 = value;
                }

                break;
            case GerrorIrqCfg2:
                if (_features.Msi)
                {
                    _gerrorIrqCfg2 = value & GerrorIrqCfg2Mask;
                }

                break;
            case StrtabBaseCfg:
                if ((_cr0 & Cr0SmmuEn) == 0)
                {
                    _strtabBaseCfg = value & StrtabBaseCfgMask;
                }

                break;
            case CmdqProd:
                _cmdqProd = value & QueuePointerMask;
                Consume();
                break;
            case CmdqCons:
                if (!CommandQueueEnabled)
                {
                    _cmdqCons = (_cmdqCons & ConsErrMask) | (value & QueuePointerMask);
                }

                break;
        }
    }

    /// <summary>Consumes commands while the queue is enabled, error-free and not empty.</summary>
    private void Consume()
    {
        if (!_core.TryEnter())
        {
            return; // a register write from inside an interrupt callback: the running loop re-reads the registers
        }

        try
        {
            int log2 = QueueLog2;
            uint span = (2u << log2) - 1;          // index and wrap bit
            uint indexMask = (1u << log2) - 1;
            ulong queueBytes = (ulong)SmmuCommandLayout.Size << log2;
            ulong baseAddress = _cmdqBase & CmdqBaseAddressMask & ~(Math.Max(queueBytes, 32) - 1) & _oasMask;
            while (!_core.IsDisposed && CommandQueueEnabled && !CommandErrorActive && ((_cmdqCons ^ _cmdqProd) & span) != 0)
            {
                SmmuCommandError error;
                SmmuCommand sync;
                _stalled = false;
                if (_holding)
                {
                    // The CMD_SYNC at CONS waits for the answers to earlier CMD_ATC_INVs; a time-out fails it at once.
                    if (_core.HasOutstandingDeviceTlb && !_atcFailed)
                    {
                        return;
                    }

                    _holding = false;
                    error = CompleteSync(in _heldSync, out sync);
                }
                else
                {
                    ulong address = (baseAddress + ((_cmdqCons & indexMask) * (ulong)SmmuCommandLayout.Size)) & _oasMask;
                    error = Step(address, out sync);
                }

                if (_holding)
                {
                    return; // Step met a CMD_SYNC with CMD_ATC_INVs unanswered: CONS stays on it
                }

                if (_stalled)
                {
                    Flush(); // sends the batch's requests; go on if that freed a ticket (an answer inside the call)
                    if (_core.Tickets!.Free == 0)
                    {
                        return;
                    }

                    _stalled = false;
                    continue;
                }

                if (error != SmmuCommandError.None)
                {
                    Flush();
                    RaiseCommandError(error);
                    return;
                }

                _cmdqCons = (_cmdqCons & ~span) | ((_cmdqCons + 1) & span);
                if (sync.Opcode == (byte)SmmuOpcode.Sync)
                {
                    Signal(in sync); // only once CONS has passed the CMD_SYNC: software infers CONS from the signal
                }
            }

            Flush();
        }
        finally
        {
            Flush(); // a guest-memory callback threw: what was consumed is still executed
            _core.Exit();
        }
    }

    /// <summary>Fetches, decodes and executes (or queues) the command at <paramref name="address"/>; a completed CMD_SYNC
    /// comes back in <paramref name="sync"/> (else default) for the caller to signal after moving CONS past it.</summary>
    private SmmuCommandError Step(ulong address, out SmmuCommand sync)
    {
        sync = default;
        Span<byte> bytes = stackalloc byte[SmmuCommandLayout.Size];
        if (!_core.TryFetch(_memory, address, bytes))
        {
            return SmmuCommandError.Abort;
        }

        SmmuCommand command = SmmuCommand.Read(bytes);
        SmmuDecodedCommand decoded = SmmuCommandDecoder.Decode(command, _features);
        switch (decoded.Kind)
        {
            case SmmuCommandKind.Rejected:
                return decoded.Error;
            case SmmuCommandKind.Invalidation:
                if (command.Opcode == (byte)SmmuOpcode.AtcInv && (_cr0 & Cr0SmmuEn) == 0)
                {
                    return SmmuCommandError.None; // ATC_INV is IGNORED while the SMMU is disabled
                }

                if (_core.Count == QueueCore.BatchCapacity)
                {
                    Flush();
                }

                if (!_core.TryAdd(decoded.Descriptor, _cmdqCons & ((1u << QueueLog2) - 1)))
                {
                    _stalled = true; // fetched again once a request completes
                }

                return SmmuCommandError.None;
            case SmmuCommandKind.Sync:
                Flush();
                if (_core.HasOutstandingDeviceTlb && !_atcFailed && !_internalFailed)
                {
                    _holding = true;
                    _heldSync = command;
                    return SmmuCommandError.None;
                }

                return CompleteSync(in command, out sync);
            default:
                return SmmuCommandError.None;
        }
    }

    /// <summary>A CMD_SYNC once every earlier command has completed: CERROR_ILL after an internal error, CERROR_ATC_INV_SYNC
    /// after an ATC invalidation time-out (not consumed, no signal), else consumed with <paramref name="sync"/> to signal.</summary>
    private SmmuCommandError CompleteSync(in SmmuCommand command, out SmmuCommand sync)
    {
        sync = default;
        if (_internalFailed)
        {
            _internalFailed = false;
            return SmmuCommandError.Illegal; // an earlier invalidation failed inside FastInval (see InternalErrors)
        }

        if (_atcFailed)
        {
            _atcFailed = false;
            return SmmuCommandError.AtcInvalidationSync;
        }

        sync = command;
        return SmmuCommandError.None;
    }

    void IDeviceTlbClient.OnDeviceTlbAnswer(DeviceTlbFault outcome, uint sourceId, ulong index)
    {
        _atcFailed |= outcome == DeviceTlbFault.Timeout; // a completion error removed the entries: no CERROR names it
    }

    void IDeviceTlbClient.OnDeviceTlbProgress()
    {
        if (_holding || _stalled)
        {
            Consume();
        }
    }

    /// <summary>Executes the queued invalidations as one engine batch and notes ATC time-outs for the next CMD_SYNC.</summary>
    private void Flush()
    {
        QueueRunResult result = _core.ExecuteAdded();
        _internalFailed |= result.InternalError;
        _atcFailed |= result.TimedOutSource.HasValue; // only device-TLB (ATC) invalidations time out
    }

    private void Signal(in SmmuCommand sync)
    {
        switch (sync.CompletionSignal)
        {
            case 1: // SIG_IRQ
                if (_features.Msi && sync.MsiAddress != 0)
                {
                    ulong address = sync.MsiAddress & _oasMask;
                    if (_memory.TryWriteUInt32(address, sync.MsiData))
                    {
                        _msi?.Invoke(address, sync.MsiData);
                    }
                    else
                    {
                        RaiseGlobalError(GerrorMsiCmdqAbtErr);
                    }
                }

                _wired?.Invoke(SmmuInterrupt.CommandSync);
                break;
            case 2: // SIG_SEV
                if (_features.Sev)
                {
                    _wired?.Invoke(SmmuInterrupt.Event);
                }

                break;
        }
    }

    private void RaiseCommandError(SmmuCommandError error)
    {
        _core.Engine.Metrics.CountQueueError(error switch
        {
            SmmuCommandError.Illegal => QueueError.CerrorIll,
            SmmuCommandError.Abort => QueueError.CerrorAbt,
            _ => QueueError.CerrorAtcInvSync,
        });
        _cmdqCons = (_cmdqCons & ~ConsErrMask) | ((uint)error << ConsErrShift);
        RaiseGlobalError(GerrorCmdqErr);
    }

    /// <summary>Activates a GERROR bit if inactive and raises the global-error interrupt for it.</summary>
    private void RaiseGlobalError(uint bit)
    {
        if (((_gerror ^ _gerrorn) & bit) != 0)
        {
            return; // already active: not logged again
        }

        _gerror ^= bit;
        if ((_irqCtrl & IrqGerrorEn) == 0)
        {
            return;
        }

        ulong address = _gerrorIrqCfg0 & MsiAddressMask & _oasMask;
        if (_features.Msi && address != 0)
        {
            if (_memory.TryWriteUInt32(address, _gerrorIrqCfg1))
            {
                _msi?.Invoke(address, _gerrorIrqCfg1);
            }
            else if (bit != GerrorMsiGerrorAbtErr && ((_gerror ^ _gerrorn) & GerrorMsiGerrorAbtErr) == 0)
            {
                _gerror ^= GerrorMsiGerrorAbtErr; // the GERROR MSI itself aborted: logged, not signalled again
            }
        }
        else
        {
            _wired?.Invoke(SmmuInterrupt.GlobalError);
        }
    }

    /// <summary>Commands between CMDQ_CONS and CMDQ_PROD (the meter's <c>fastinval.queue.depth</c>).</summary>
    private long QueueDepth() => (_cmdqProd - _cmdqCons) & ((2u << QueueLog2) - 1);

    /// <summary>Disposes the SMMU and, if the SMMU built it, its engine (a caller's engine is left alone). Afterwards
    /// every member but <see cref="Dispose"/> (which may be called again) throws <see cref="ObjectDisposedException"/>.
    /// Called from an interrupt callback during consumption, it stops the queue after the command being completed
    /// (earlier invalidations are still executed) and disposes the engine when the register write returns.</summary>
    public void Dispose()
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.Dispose();
    }
}
