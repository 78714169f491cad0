using System.Buffers.Binary;
using FastInval.AmdVi;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.Tests.AmdVi;

/// <summary>
/// A C# model of how the Linux AMD IOMMU driver (drivers/iommu/amd/) uses the command buffer and the event log, written
/// from the research notes on it: the set-up of <c>iommu_enable_command_buffer</c> / <c>iommu_enable_event_buffer</c>
/// (512-entry rings, head and tail zeroed with 4-byte writes, Control changed by 8-byte read-modify-write, InvTimeOut 1 s,
/// IommuEn last, then a flush of every cache), <c>__iommu_queue_command_sync</c> (a command is copied at the software
/// tail and published with one 4-byte tail write; fewer than 0x20 free bytes make it re-read the head, and no progress is a
/// "Command buffer timeout", −EIO), <c>iommu_completion_wait</c> (a store-only COMPLETION_WAIT of the next 64-bit sequence
/// number to the semaphore, polled as <c>(s64)(*sem − data) &lt; 0</c> until it times out, −EIO) and the threaded
/// interrupt handler <c>amd_iommu_int_thread</c> (W1C of the status bits, the event log read from head to tail with each
/// entry zeroed after it is read, one head write, the overflow restart when EventLogRun reads 0).
/// </summary>
/// <remarks>
/// <para>The units process synchronously inside the tail write, so where Linux spins (the space check, the semaphore
/// poll) the model lets the interrupt thread run once (it runs on another CPU in the kernel) and then decides: what has
/// not happened by then never will.</para>
/// <para>Current Linux only logs ILLEGAL_COMMAND_ERROR and COMMAND_HARDWARE_ERROR (with the command dumped): the buffer
/// stays stopped and every later wait times out. With <see cref="ResetOnCommandError"/> the handler instead recovers as
/// the 2009 driver did on ILLEGAL_COMMAND_ERROR: it resets the command buffer (CmdBufEn off, head = tail = 0, CmdBufEn on)
/// and flushes every cache again with a fresh COMPLETION_WAIT, whose higher sequence number also satisfies the waiter
/// whose wait was dropped.</para>
/// </remarks>
internal sealed class LinuxAmdViModel
{
    /// <summary>CMD_BUFFER_SIZE / EVT_BUFFER_SIZE: 512 entries of 16 bytes.</summary>
    public const int RingBytes = 8192;

    /// <summary>MMIO_CMD_SIZE_512 / EVT_LEN_MASK: ComLen = EventLen = 9h.</summary>
    public const ulong RingLength = 9;

    private const int Eio = -5;
    private const ulong InterruptMask = StatusEventOverflow | StatusEventLogInt | (1UL << 6) | (1UL << 10); // + PPR and GA ints

    private readonly Func<uint, int, ulong> _read;
    private readonly Action<uint, ulong, int> _write;
    private readonly byte[] _buffer, _events, _semaphore;
    private readonly ulong _bufferAddress, _eventAddress, _semaphoreAddress;
    private readonly bool _invalidateAll;
    private uint _head, _tail;
    private ulong _semaphoreValue;
    private bool _needSync;
    private bool _irqPending;
    private bool _inHandler;

    public LinuxAmdViModel(Func<uint, int, ulong> read, Action<uint, ulong, int> write, byte[] buffer, ulong bufferAddress,
        byte[] events, ulong eventAddress, byte[] semaphore, ulong semaphoreAddress, bool invalidateAll)
    {
        _read = read;
        _write = write;
        _buffer = buffer;
        _events = events;
        _semaphore = semaphore;
        _bufferAddress = bufferAddress;
        _eventAddress = eventAddress;
        _semaphoreAddress = semaphoreAddress;
        _invalidateAll = invalidateAll;
    }

    /// <summary>Recover from ILLEGAL_COMMAND_ERROR and COMMAND_HARDWARE_ERROR as the 2009 driver did (see remarks).</summary>
    public bool ResetOnCommandError { get; init; }

    /// <summary>Domains and devices the driver knows (for a flush of everything without INVALIDATE_IOMMU_ALL).</summary>
    public IReadOnlyList<ushort> Domains { get; init; } = [];

    /// <summary>Devices the driver knows.</summary>
    public IReadOnlyList<ushort> Devices { get; init; } = [];

    /// <summary>Every event the handler read, in order.</summary>
    public List<AmdViEvent> Events { get; } = [];

    /// <summary>"No event written to event log": an entry whose code read 0.</summary>
    public int EmptyEvents { get; private set; }

    /// <summary>Command-buffer resets done by the handler.</summary>
    public int Resets { get; private set; }

    /// <summary>"Completion-Wait loop timed out" messages.</summary>
    public int WaitTimeouts { get; private set; }

    /// <summary>"Command buffer timeout" messages.</summary>
    public int SpaceTimeouts { get; private set; }

    /// <summary>The unit's interrupt line (the hard IRQ handler: wake the thread).</summary>
    public void Interrupt() => _irqPending = true;

    /// <summary>The init path: rings, Control, IommuEn, then <c>amd_iommu_flush_all_caches</c>; its completion wait's result.</summary>
    public int Enable()
    {
        _write(CommandBufferBase, _bufferAddress | (RingLength << RingLengthShift), 8);
        ResetCommandBuffer();
        _write(EventLogBase, _eventAddress | (RingLength << RingLengthShift), 8);
        _write(EventLogHead, 0, 4);
        _write(EventLogTail, 0, 4);
        FeatureEnable(ControlEventLogEn);
        ulong control = _read(Control, 8) & ~ControlInvTimeOutMask;
        _write(Control, control | (4UL << ControlInvTimeOutShift), 8);        // CTRL_INV_TO_1S
        FeatureEnable(ControlEventIntEn);
        FeatureEnable(ControlIommuEn);
        return FlushAllCaches();
    }

    /// <summary><c>amd_iommu_flush_all_caches</c>: INVALIDATE_IOMMU_ALL with IASup, else every DTE, IRT and domain.</summary>
    public int FlushAllCaches()
    {
        if (_invalidateAll)
        {
            QueueCommand(AmdViCommand.InvalidateIommuAll());
        }
        else
        {
            foreach (ushort d in Devices)
            {
                QueueCommand(AmdViCommand.InvalidateDevTabEntry(d));
            }

            foreach (ushort d in Devices)
            {
                QueueCommand(AmdViCommand.InvalidateInterruptTable(d));
            }

            foreach (ushort dom in Domains)
            {
                QueueCommand(AmdViCommand.InvalidateIommuPagesAll(dom));
            }
        }

        return CompletionWait();
    }

    /// <summary><c>build_inv_iommu_pages</c> (PDE always) of the range, then the completion wait.</summary>
    public int FlushPages(ushort domain, ulong address, ulong bytes, uint? pasid = null, bool staleReservedBit = false)
    {
        (ulong encoded, bool size) = AmdViCommand.EncodeRange(address, bytes);
        AmdViCommand c = AmdViCommand.InvalidateIommuPages(domain, encoded, size, pde: true, pasid);
        int rc = QueueCommand(staleReservedBit ? new AmdViCommand(c.Qword0, c.Qword1 | 0x8) : c); // QW1 bit 3 is reserved
        return rc != 0 ? rc : CompletionWait();
    }

    /// <summary>The device flush of an unmap: the IOMMU's pages, then <c>build_inv_iotlb_pages</c> to the device (QueueID =
    /// DeviceID, Maxpend = its ATS queue depth), then the completion wait.</summary>
    public int FlushPagesAndDevice(ushort domain, ushort device, int queueDepth, ulong address, ulong bytes)
    {
        (ulong encoded, bool size) = AmdViCommand.EncodeRange(address, bytes);
        int rc = QueueCommand(AmdViCommand.InvalidateIommuPages(domain, encoded, size, pde: true));
        rc = rc != 0 ? rc : QueueCommand(AmdViCommand.InvalidateIotlbPages(device, encoded, size, maxPending: (byte)queueDepth));
        return rc != 0 ? rc : CompletionWait();
    }

    /// <summary><c>device_flush_dte</c> and <c>iommu_flush_irt</c> of a device, then the completion wait.</summary>
    public int FlushDevice(ushort device)
    {
        int rc = QueueCommand(AmdViCommand.InvalidateDevTabEntry(device));
        rc = rc != 0 ? rc : QueueCommand(AmdViCommand.InvalidateInterruptTable(device));
        return rc != 0 ? rc : CompletionWait();
    }

    /// <summary><c>__iommu_queue_command_sync</c> with sync = true.</summary>
    public int QueueCommand(in AmdViCommand command) => QueueCommandSync(command, sync: true);

    private int QueueCommandSync(in AmdViCommand command, bool sync)
    {
        uint nextTail;
        for (int attempt = 0; ; attempt++)
        {
            nextTail = (_tail + 16) % RingBytes;                        // the handler may have reset the buffer meanwhile
            uint left = unchecked(_head - nextTail) % RingBytes;
            if (left > 0x20)
            {
                break;
            }

            if (attempt == 2)
            {
                SpaceTimeouts++;
                return Eio; // the head no longer moves: LOOP_TIMEOUT
            }

            RunInterruptThread();
            _head = (uint)_read(CommandBufferHead, 4);
        }

        command.Write(_buffer.AsSpan((int)_tail, 16));                 // copy_cmd_to_buffer
        _tail = nextTail;
        _write(CommandBufferTail, _tail, 4);
        _needSync = sync;
        RunInterruptThread();
        return 0;
    }

    /// <summary><c>iommu_completion_wait</c>: 0, or −EIO when the semaphore never reaches the sequence number.</summary>
    public int CompletionWait()
    {
        if (!_needSync)
        {
            return 0;
        }

        ulong data = ++_semaphoreValue;
        int rc = QueueCommandSync(AmdViCommand.CompletionWait(_semaphoreAddress, data), sync: false);
        if (rc != 0)
        {
            return rc;
        }

        for (int attempt = 0; attempt < 2; attempt++)
        {
            if ((long)(BinaryPrimitives.ReadUInt64LittleEndian(_semaphore) - data) >= 0)
            {
                return 0;
            }

            RunInterruptThread();
        }

        WaitTimeouts++;
        return Eio;
    }

    /// <summary><c>amd_iommu_int_thread</c>, when the line was raised and the thread is not already running.</summary>
    public void RunInterruptThread()
    {
        if (!_irqPending || _inHandler)
        {
            return;
        }

        _inHandler = true;
        try
        {
            _irqPending = false;
            ulong status = _read(AmdViRegisters.Status, 4);
            while ((status & InterruptMask) != 0)
            {
                _write(AmdViRegisters.Status, InterruptMask, 4);
                bool commandError = false;
                if ((status & StatusEventLogInt) != 0)
                {
                    commandError = PollEvents();
                }

                if ((status & StatusEventOverflow) != 0)
                {
                    RestartEventLogging();
                }

                if (commandError && ResetOnCommandError)
                {
                    Resets++;
                    ResetCommandBuffer();
                    FlushAllCaches();
                }

                status = _read(AmdViRegisters.Status, 4);
            }
        }
        finally
        {
            _inHandler = false;
        }
    }

    /// <summary><c>iommu_poll_events</c>; true when a command error was among the events.</summary>
    private bool PollEvents()
    {
        bool commandError = false;
        uint head = (uint)_read(EventLogHead, 4), tail = (uint)_read(EventLogTail, 4);
        while (head != tail)
        {
            var e = AmdViEvent.Read(_events.AsSpan((int)head, 16));
            if (((e.Qword0 >> 60) & 0xF) == 0)
            {
                EmptyEvents++;                                          // the erratum: nothing written yet
            }
            else
            {
                Events.Add(e);
                commandError |= e.Code is AmdViEventCode.IllegalCommandError or AmdViEventCode.CommandHardwareError;
            }

            _events.AsSpan((int)head, 16).Clear();                      // memset(__evt, 0, …)
            head = (head + 16) % RingBytes;
        }

        _write(EventLogHead, head, 4);
        return commandError;
    }

    /// <summary><c>amd_iommu_restart_log</c> for the event log: nothing while EventLogRun reads 1.</summary>
    private void RestartEventLogging()
    {
        if ((_read(AmdViRegisters.Status, 4) & StatusEventLogRun) != 0)
        {
            return;
        }

        FeatureDisable(ControlEventLogEn);
        FeatureDisable(ControlEventIntEn);
        _write(AmdViRegisters.Status, StatusEventOverflow, 4);
        FeatureEnable(ControlEventIntEn);
        FeatureEnable(ControlEventLogEn);
    }

    /// <summary><c>amd_iommu_reset_cmd_buffer</c>.</summary>
    private void ResetCommandBuffer()
    {
        FeatureDisable(ControlCmdBufEn);
        _write(CommandBufferHead, 0, 4);
        _write(CommandBufferTail, 0, 4);
        _head = _tail = 0;
        FeatureEnable(ControlCmdBufEn);
    }

    private void FeatureEnable(ulong bit) => _write(Control, _read(Control, 8) | bit, 8);

    private void FeatureDisable(ulong bit) => _write(Control, _read(Control, 8) & ~bit, 8);
}
