using FastInval.Internals;
using FastInval.Queues;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.AmdVi;

/// <summary>
/// One AMD IOMMU (AMD-Vi) as its guest driver sees it through MMIO: the command buffer and the event log in guest
/// memory, the control and status registers, COMPLETION_WAIT stores and interrupts, ILLEGAL_COMMAND_ERROR,
/// COMMAND_HARDWARE_ERROR and IOTLB_INV_TIMEOUT events. Every invalidation command is executed, in buffer order, by
/// <see cref="Engine"/> on the unit's caches, which the host fills after its own table walks and looks up on DMA.
/// </summary>
/// <remarks>
/// <para><b>Register access.</b> 4-byte accesses at 4-byte aligned offsets and 8-byte accesses at 8-byte aligned offsets
/// inside the 16 KiB window; every register is 64 bits and a 4-byte access reaches one half. Any other access is ignored
/// on write and reads 0; unimplemented offsets and reserved bits read 0 and ignore writes. Implemented: Device Table Base,
/// Exclusion Base/Limit (stored only), Command Buffer Base, Event Log Base, Control (bits 17:0 stored), Extended Features
/// (read-only, see <see cref="AmdViOptions"/>), Command Buffer Head/Tail, Event Log Head/Tail, Status.</para>
/// <para><b>Rings.</b> A base register write resets that ring's head and tail to 0; it is ignored while the ring runs
/// (CmdBufRun / EventLogRun = 1, where the specification leaves it undefined). ComLen / EventLen 0h–7h (reserved) count
/// as 8h. Head and tail writes keep bits 18:4 modulo the ring size. The command head is written by software only while
/// CmdBufRun = 0, the event tail only while EventLogRun = 0.</para>
/// <para><b>Running.</b> CmdBufRun = IommuEn ∧ CmdBufEn ∧ not stopped; EventLogRun = IommuEn ∧ EventLogEn. Commands are
/// processed synchronously inside the write that allows it (Command Buffer Tail, Control) while CmdBufRun = 1, from the
/// head until head = tail, wrapping to 0 at the end of the buffer. Each fetch first asks the fault plan
/// (<see cref="FaultPlan.DecideFetchFails"/> with the unit's zero-based fetch ordinal, <see cref="CommandFetches"/>).
/// The head moves past a command once it has been fetched and validated; invalidations between two COMPLETION_WAITs run
/// as one engine batch, with the effect of running them one by one (see <see cref="AmdViCommandDecoder"/> for the scopes).</para>
/// <para><b>Errors stop the buffer.</b> An illegal command (undefined opcode, absent feature, reserved bit set) writes
/// ILLEGAL_COMMAND_ERROR with the command's address; a fetch the fault plan fails is COMMAND_HARDWARE_ERROR with Type
/// data error, a fetch from unbacked memory one with Type master abort, both with the command's address. In each case
/// the invalidations before the command are executed, the head stays on the command and CmdBufRun becomes 0. Software
/// restarts by clearing CmdBufEn (or IommuEn), which clears the stop, repairing the ring (rewriting the command or moving
/// the head, or resetting head and tail) and setting CmdBufEn again; a tail write alone does not restart.</para>
/// <para><b>COMPLETION_WAIT</b> completes everything before it, then with S = 1 stores the 64-bit Store Data,
/// little-endian, at Store Address; a store to unbacked memory cannot complete the wait: COMMAND_HARDWARE_ERROR (master
/// abort, the store address), the head stays on the wait, no interrupt. With I = 1 it sets Status.ComWaitInt whatever
/// ComWaitIntEn says and signals the interrupt when ComWaitIntEn = 1, after the store and after the head has passed the
/// wait. S = I = 0 is a valid ordering point; F needs no action (commands run in order).</para>
/// <para><b>Device-TLB time-outs.</b> An INVALIDATE_IOTLB_PAGES the fault plan times out leaves the device's entries in
/// place and writes IOTLB_INV_TIMEOUT (DeviceID, the command's address) when its batch executes; the buffer goes on and
/// the next COMPLETION_WAIT completes (the time-out is how the command completed). The plan's time-out is taken whatever
/// Control.InvTimeOut says. A completion error from the plan has removed the entries and records nothing.</para>
/// <para><b>Event log.</b> Events are recorded only while EventLogRun = 1 (else lost). An event is written at the tail,
/// the tail advances and Status.EventLogInt is set (whatever EventIntEn says); the log is full when advancing would make
/// tail = head, and then Status.EventOverflow is set and the event discarded, as is every later event until software
/// clears EventOverflow (EventLogRun stays 1). With EventIntEn = 1 each recorded event and the overflow signal the
/// interrupt. A log in unbacked memory loses the event (tail unchanged, no status change).</para>
/// <para><b>Internal errors.</b> An engine status <see cref="InvalidationStatus.Invalid"/> is a FastInval bug: it asserts in
/// debug builds, counts in <see cref="InternalErrors"/>, and the next COMPLETION_WAIT cannot give its guarantee: it is an
/// ILLEGAL_COMMAND_ERROR with the head on it.</para>
/// <para><b>Threading.</b> Every member may be called from any thread: the unit serializes its register accesses, state operations, disposal and device-TLB answers with a lock of its own (re-entrant: a callback may access the unit's registers on its thread); cache lookups on
/// <see cref="Engine"/> may run on other threads. <b>Allocation.</b> None per register access or command.</para>
/// <para><b>Structure.</b> The fetch under the fault plan, the batch, the status check, the re-entrancy guard and the
/// engine's ownership are the queue core VT-d and SMMUv3 run on; this type keeps the registers, the decoder's outcomes and
/// the event log.</para>
/// </remarks>
public sealed partial class AmdViIommu : IDisposable, IDeviceTlbClient
{
    private const int EntrySize = AmdViCommandLayout.Size;

    private readonly GuestAddressSpace _memory;
    private readonly QueueCore _core;
    private readonly Action? _interrupt;
    private readonly AmdViCapabilities _caps;
    private readonly ulong _efr;
    private readonly ulong[] _commandAddresses = new ulong[QueueCore.BatchCapacity]; // of each batch slot, for IOTLB_INV_TIMEOUT

    private ulong _deviceTableBase;
    private ulong _commandBase;
    private ulong _eventBase;
    private ulong _control;
    private ulong _exclusionBase;
    private ulong _exclusionLimit;
    private ulong _commandHead;
    private ulong _commandTail;
    private ulong _eventHead;
    private ulong _eventTail;
    private ulong _status; // RW1C bits only; the run bits are computed
    private bool _stopped;
    private bool _internalFailed;

    // Device-TLB answers with a sink: a COMPLETION_WAIT after an unanswered INVALIDATE_IOTLB_PAGES is held, the head on it.
    private bool _holding;
    private AmdViCommand _heldWait;
    private bool _stalled; // stopped before an INVALIDATE_IOTLB_PAGES: no ticket was free

    /// <summary>Creates a unit over <paramref name="memory"/> (where the command buffer, the event log and the
    /// completion-wait stores live).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="memory"/> is null.</exception>
    public AmdViIommu(GuestMemory memory, AmdViOptions? options = null)
        : this((GuestAddressSpace)memory, options)
    {
    }

    /// <summary>Creates a unit over any guest address space (<see cref="GuestMemory"/>, <see cref="NativeGuestMemory"/>,
    /// <see cref="CallbackGuestMemory"/> or the host's own). The unit builds and owns its engine (from
    /// <see cref="AmdViOptions.Engine"/> and <see cref="AmdViOptions.FaultPlan"/>) and disposes it with itself.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="memory"/> is null.</exception>
    public AmdViIommu(GuestAddressSpace memory, AmdViOptions? options = null)
        : this(memory, options, null)
    {
    }

    /// <summary>Creates a unit over <paramref name="memory"/> that executes its invalidations on
    /// <paramref name="engine"/>, which the caller owns.</summary>
    /// <remarks>
    /// <para><b>Ownership.</b> The unit never disposes <paramref name="engine"/>; disposing the unit leaves it usable.
    /// The engine's own <see cref="InvalidationEngine.FaultPlan"/> decides fetch errors and device-TLB outcomes, so
    /// <see cref="AmdViOptions.Engine"/> and <see cref="AmdViOptions.FaultPlan"/> must be null.</para>
    /// <para><b>Sharing.</b> Several units (AMD-Vi, VT-d, SMMUv3, iommufd) may run over one engine and then share its
    /// caches. The engine has one writer at a time, so the host must serialize the register writes of every unit that
    /// shares it, and its own fills, with one lock for the engine. The fault plan's ordinals then count across the
    /// units.</para>
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="memory"/> or <paramref name="engine"/> is null.</exception>
    /// <exception cref="ArgumentException"><see cref="AmdViOptions.Engine"/> or <see cref="AmdViOptions.FaultPlan"/> is set.</exception>
    public AmdViIommu(GuestAddressSpace memory, InvalidationEngine engine, AmdViOptions? options = null)
        : this(memory, options, engine ?? throw new ArgumentNullException(nameof(engine)))
    {
    }

    private AmdViIommu(GuestAddressSpace memory, AmdViOptions? options, InvalidationEngine? engine)
    {
        ArgumentNullException.ThrowIfNull(memory);
        options ??= new AmdViOptions();
        _core = new QueueCore(engine, options.Engine, options.FaultPlan, InvalidationSource.AmdViCommandBuffer, nameof(AmdViOptions));
        _core.DepthSource = QueueDepth;
        _memory = memory;
        _interrupt = options.Interrupt;
        _caps = new AmdViCapabilities(options);
        _efr = BuildExtendedFeatures(options);
        _core.AttachDeviceTlbSink(this, options.DeviceTlbSink);
    }

    /// <summary>The unit's caches and executor: the host fills and looks up <see cref="InvalidationEngine.Iotlb"/>
    /// (host page-table entries as <see cref="TranslationStage.Stage2"/> tagged with the DomainID; guest entries as
    /// <see cref="TranslationStage.Stage1"/> or <see cref="TranslationStage.Nested"/> tagged with DomainID and PASID),
    /// <see cref="InvalidationEngine.DeviceTlb"/> (ATS IOTLBs by DeviceID and PASID) and
    /// <see cref="InvalidationEngine.ConfigCache"/> (device-table entries as <see cref="ConfigKinds.Context"/> and guest
    /// CR3 entries as <see cref="ConfigKinds.PasidEntry"/> by DeviceID, interrupt-remapping entries as
    /// <see cref="ConfigKinds.InterruptEntry"/> by DeviceID). Its <see cref="InvalidationEngine.FaultPlan"/> also decides
    /// command-fetch errors.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public InvalidationEngine Engine
    {
        get
        {
            _core.ThrowIfDisposed(this);
            return _core.Engine;
        }
    }

    /// <summary>Commands fetched so far: the ordinal the fault plan sees for the next fetch.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
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
    /// builds, and the next COMPLETION_WAIT is an ILLEGAL_COMMAND_ERROR with the head on it.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public ulong InternalErrors
    {
        get
        {
            _core.ThrowIfDisposed(this);
            return _core.InternalErrors;
        }
    }

    /// <summary>Test-only hook on each batch before it is executed (see <see cref="BatchHook"/>).</summary>
    internal BatchHook? TestBatchHook
    {
        get => _core.TestHook;
        set => _core.TestHook = value;
    }

    private bool CommandBufferEnabled => (_control & (ControlIommuEn | ControlCmdBufEn)) == (ControlIommuEn | ControlCmdBufEn);

    private bool CommandBufferRunning => CommandBufferEnabled && !_stopped;

    private bool EventLogRunning => (_control & (ControlIommuEn | ControlEventLogEn)) == (ControlIommuEn | ControlEventLogEn);

    private static ulong RingBytes(ulong baseRegister) =>
        (ulong)EntrySize << Math.Max((int)((baseRegister & RingLengthMask) >> RingLengthShift), MinRingLength);

    private static ulong BuildExtendedFeatures(AmdViOptions o) =>
        FeatureNx | (o.InvalidateAll ? FeatureInvalidateAll : 0) |
        (o.GuestTranslation ? FeatureGuestTranslation | (19UL << FeaturePasMaxShift) | (1UL << FeatureGlxShift) : 0);

    /// <summary>Reads a register (4 or 8 bytes, naturally aligned); anything else reads 0.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public ulong ReadRegister(uint offset, int size)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        if (!RegisterAccess.IsValid(offset, size, WindowSize))
        {
            return 0;
        }

        ulong value = Read64(offset & ~7u);
        return size == 8 ? value : RegisterAccess.Half(value, offset);
    }

    /// <summary>Writes a register (4 or 8 bytes, naturally aligned); anything else is ignored. A write that lets the
    /// command buffer make progress processes commands before it returns.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public void WriteRegister(uint offset, ulong value, int size)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        if (!RegisterAccess.IsValid(offset, size, WindowSize))
        {
            return;
        }

        uint aligned = offset & ~7u;
        if (size == 4)
        {
            bool low = (offset & 4) == 0;
            value = aligned == Status
                ? (low ? (uint)value : 0)                                  // write-1-to-clear: the other half writes zeros
                : RegisterAccess.Merge(Read64(aligned), (uint)value, low);
        }

        Write64(aligned, value);
    }

    private ulong Read64(uint offset) => offset switch
    {
        DeviceTableBase => _deviceTableBase,
        CommandBufferBase => _commandBase,
        EventLogBase => _eventBase,
        Control => _control,
        ExclusionBase => _exclusionBase,
        ExclusionLimit => _exclusionLimit,
        ExtendedFeatures => _efr,
        CommandBufferHead => _commandHead,
        CommandBufferTail => _commandTail,
        EventLogHead => _eventHead,
        EventLogTail => _eventTail,
        Status => _status | (EventLogRunning ? StatusEventLogRun : 0) | (CommandBufferRunning ? StatusCmdBufRun : 0),
        _ => 0,
    };

    private void Write64(uint offset, ulong value)
    {
        switch (offset)
        {
            case DeviceTableBase:
                _deviceTableBase = value & DeviceTableBaseMask;
                break;
            case CommandBufferBase:
                if (!CommandBufferRunning)
                {
                    _commandBase = value & RingBaseMask;
                    _commandHead = 0;
                    _commandTail = 0;
                }

                break;
            case EventLogBase:
                if (!EventLogRunning)
                {
                    _eventBase = value & RingBaseMask;
                    _eventHead = 0;
                    _eventTail = 0;
                }

                break;
            case Control:
                _control = value & ControlMask;
                if (!CommandBufferEnabled)
                {
                    _stopped = false; // disabling the buffer clears an error stop; enabling resumes at the head
                    _holding = _stalled = false; // a held COMPLETION_WAIT is fetched again then
                }

                Process();
                break;
            case ExclusionBase:
                _exclusionBase = value & ExclusionBaseMask;
                break;
            case ExclusionLimit:
                _exclusionLimit = value & ExclusionLimitMask;
                break;
            case CommandBufferHead:
                if (!CommandBufferRunning)
                {
                    _commandHead = value & RingPointerMask & (RingBytes(_commandBase) - 1);
                }

                break;
            case CommandBufferTail:
                _commandTail = value & RingPointerMask & (RingBytes(_commandBase) - 1);
                Process();
                break;
            case EventLogHead:
                _eventHead = value & RingPointerMask & (RingBytes(_eventBase) - 1);
                break;
            case EventLogTail:
                if (!EventLogRunning)
                {
                    _eventTail = value & RingPointerMask & (RingBytes(_eventBase) - 1);
                }

                break;
            case Status:
                _status &= ~(value & StatusWriteOneToClear);
                break;
        }
    }

    /// <summary>Processes commands while the buffer runs and is not empty.</summary>
    private void Process()
    {
        if (!_core.TryEnter())
        {
            return; // a register write from inside an interrupt callback: the running loop re-reads the registers
        }

        try
        {
            while (!_core.IsDisposed && CommandBufferRunning && _commandHead != _commandTail)
            {
                _stalled = false;
                if (_holding)
                {
                    if (_core.HasOutstandingDeviceTlb)
                    {
                        break; // the COMPLETION_WAIT at the head waits for the devices
                    }

                    _holding = false;
                    CompleteWait(in _heldWait, (_commandBase & RingBaseAddressMask) + _commandHead);
                    continue;
                }

                Step();
                if (_holding)
                {
                    break;
                }

                if (_stalled)
                {
                    Flush(); // sends the batch's requests; go on if that freed a ticket (an answer inside the call)
                    if (_core.Tickets!.Free == 0)
                    {
                        break;
                    }
                }
            }

            Flush();
        }
        finally
        {
            Flush(); // a guest-memory callback threw: what was fetched is still executed
            _core.Exit(); // disposed from a callback: the unit's own engine is disposed now
        }
    }

    /// <summary>Fetches, decodes and executes (or queues) the command at the head; advances the head or stops.</summary>
    private void Step()
    {
        ulong bufferBytes = RingBytes(_commandBase);
        ulong address = (_commandBase & RingBaseAddressMask) + _commandHead;
        Span<byte> bytes = stackalloc byte[EntrySize];
        switch (_core.Fetch(_memory, address, bytes))
        {
            case QueueFetch.Planned:
                Stop(AmdViEvent.CommandHardwareError(AmdViHardwareErrorType.DataError, address));
                return;
            case QueueFetch.Unmapped:
                Stop(AmdViEvent.CommandHardwareError(AmdViHardwareErrorType.MasterAbort, address));
                return;
        }

        AmdViCommand command = AmdViCommand.Read(bytes);
        Span<InvalidationDescriptor> decoded = stackalloc InvalidationDescriptor[AmdViCommandDecoder.MaxOutput];
        switch (AmdViCommandDecoder.Decode(command, _caps, decoded, out int count))
        {
            case AmdViDecodeOutcome.Invalidation:
                if (_core.Count + count > QueueCore.BatchCapacity)
                {
                    Flush();
                }

                if (!_core.Admit(decoded[..count]))
                {
                    _stalled = true; // fetched again once a request completes
                    return;
                }

                for (int i = 0; i < count; i++)
                {
                    _commandAddresses[_core.Count] = address;
                    _core.Add(decoded[i], _commandHead / EntrySize);
                }

                _commandHead = (_commandHead + EntrySize) & (bufferBytes - 1);
                return;
            case AmdViDecodeOutcome.Wait:
                Flush();
                if (_core.HasOutstandingDeviceTlb && !_internalFailed)
                {
                    _holding = true; // the head stays on the wait until the devices answer (OnDeviceTlbProgress)
                    _heldWait = command;
                    return;
                }

                CompleteWait(in command, address);
                return;
            default:
                Stop(AmdViEvent.IllegalCommand(address));
                return;
        }
    }

    /// <summary>A COMPLETION_WAIT at <paramref name="address"/> (the head) once everything before it has completed:
    /// ILLEGAL_COMMAND_ERROR after an internal error, COMMAND_HARDWARE_ERROR when the store cannot land, else the store,
    /// the head past it, ComWaitInt and the interrupt.</summary>
    private void CompleteWait(in AmdViCommand command, ulong address)
    {
        if (_internalFailed)
        {
            _internalFailed = false;
            Stop(AmdViEvent.IllegalCommand(address)); // an earlier invalidation failed inside FastInval
            return;
        }

        if (command.Store && !_memory.TryWriteUInt64(command.StoreAddress, command.StoreData))
        {
            Stop(AmdViEvent.CommandHardwareError(AmdViHardwareErrorType.MasterAbort, command.StoreAddress));
            return;
        }

        _commandHead = (_commandHead + EntrySize) & (RingBytes(_commandBase) - 1);
        if (command.Interrupt)
        {
            _status |= StatusComWaitInt;
            if ((_control & ControlComWaitIntEn) != 0)
            {
                _interrupt?.Invoke();
            }
        }
    }

    /// <summary>Executes what was fetched before the failing command, stops the buffer on it and records the event.</summary>
    private void Stop(in AmdViEvent e)
    {
        Flush();
        _stopped = true;
        Record(e);
    }

    /// <summary>Executes the queued invalidations as one engine batch and records IOTLB_INV_TIMEOUT for each time-out (with
    /// a sink, the requests go out with the time-out the guest programmed, and time-outs are logged as they happen).</summary>
    private void Flush()
    {
        int n = _core.Count;
        if (_core.Tickets is DeviceTlbTickets tickets)
        {
            tickets.TimeoutOverride = ProgrammedTimeout();
        }

        QueueRunResult result = _core.ExecuteAdded(); // an Invalid status is asserted and counted there
        _internalFailed |= result.InternalError;
        if (result.TimedOutSource is null)
        {
            return;
        }

        for (int i = 0; i < n; i++)
        {
            if (_core.StatusOf(i) == InvalidationStatus.TimedOut)
            {
                Record(AmdViEvent.IotlbInvalidationTimeout((ushort)_core[i].SourceId, _commandAddresses[i]));
            }
        }
    }

    /// <summary>Writes one event-log entry (or notes the overflow) and signals the interrupt when enabled.</summary>
    private void Record(in AmdViEvent e)
    {
        switch (e.Code) // counted whether or not the log can take the entry: the guest's command failed either way
        {
            case AmdViEventCode.IllegalCommandError: _core.Engine.Metrics.CountQueueError(QueueError.IllegalCommand); break;
            case AmdViEventCode.CommandHardwareError: _core.Engine.Metrics.CountQueueError(QueueError.CommandHardwareError); break;
            case AmdViEventCode.IotlbInvalidationTimeout: _core.Engine.Metrics.CountQueueError(QueueError.IotlbInvTimeout); break;
        }

        if (!EventLogRunning || (_status & StatusEventOverflow) != 0)
        {
            return; // lost: no log running, or discarded until software clears the overflow
        }

        ulong next = (_eventTail + EntrySize) & (RingBytes(_eventBase) - 1);
        if (next == _eventHead)
        {
            _status |= StatusEventOverflow;
        }
        else
        {
            Span<byte> bytes = stackalloc byte[EntrySize];
            e.Write(bytes);
            if (!_memory.TryWrite((_eventBase & RingBaseAddressMask) + _eventTail, bytes))
            {
                return; // nothing backs the log: the event is lost
            }

            _eventTail = next;
            _status |= StatusEventLogInt;
        }

        if ((_control & ControlEventIntEn) != 0)
        {
            _interrupt?.Invoke();
        }
    }

    /// <summary>Commands between the command buffer's head and tail (the meter's <c>fastinval.queue.depth</c>).</summary>
    private long QueueDepth() => (long)(((_commandTail - _commandHead) & (RingBytes(_commandBase) - 1)) / EntrySize);

    /// <summary>Disposes the unit and, if the unit built it, its engine (a caller's engine is left alone). Afterwards
    /// every member but <see cref="Dispose"/> (which may be called again) throws <see cref="ObjectDisposedException"/>.
    /// Called from an interrupt callback during processing, it stops the buffer after the command being completed
    /// (earlier invalidations are still executed) and disposes the engine when the register write returns.</summary>
    public void Dispose()
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.Dispose();
    }

    // ---- device-TLB sink ----------------------------------------------------------------------------------

    void IDeviceTlbClient.OnDeviceTlbAnswer(DeviceTlbFault outcome, uint sourceId, ulong index)
    {
        if (outcome == DeviceTlbFault.Timeout)
        {
            Record(AmdViEvent.IotlbInvalidationTimeout((ushort)sourceId, (_commandBase & RingBaseAddressMask) + (index * EntrySize)));
        }
    }

    void IDeviceTlbClient.OnDeviceTlbProgress()
    {
        if (_holding || _stalled)
        {
            Process();
        }
    }

    /// <summary>Control.InvTimeOut as a time-out: 1 ms × 10^(n−1) for n = 1–6, none for 0 (and for the reserved 7).</summary>
    private TimeSpan ProgrammedTimeout()
    {
        int n = (int)((_control & ControlInvTimeOutMask) >> ControlInvTimeOutShift);
        return n is 0 or 7 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(Math.Pow(10, n - 1));
    }
}
