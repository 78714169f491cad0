using FastInval.Smmu;
using static FastInval.Smmu.SmmuRegisters;

namespace FastInval.Tests.Smmu;

/// <summary>
/// A C# model of the Linux arm-smmu-v3 driver's command path (arm_smmu_cmdq_issue_cmdlist, the CMD_SYNC wait, and the
/// gerror handler with __arm_smmu_cmdq_skip_err), written from spec/smmuv3-command-queue.md §3.4. It drives any unit
/// through register reads/writes and a view of the queue memory, so the same driver runs against <see cref="SmmuV3"/> and
/// the reference in lockstep.
/// </summary>
internal sealed class LinuxCmdqModel
{
    /// <summary>Linux's SYNC as skip_err writes it: CS = SEV, MSH = ISH, MSIAttr = OIWB, no MSI.</summary>
    public static readonly SmmuCommand SkipSync = SmmuCommand.Sync(2);

    private readonly Func<uint, int, ulong> _read;
    private readonly Action<uint, ulong, int> _write;
    private readonly byte[] _queue;
    private readonly ulong _queueAddress;
    private readonly int _log2;
    private readonly bool _msiPolling;
    private uint _prod;

    public LinuxCmdqModel(Func<uint, int, ulong> read, Action<uint, ulong, int> write, byte[] queue, ulong queueAddress, int log2, bool msiPolling)
    {
        _read = read;
        _write = write;
        _queue = queue;
        _queueAddress = queueAddress;
        _log2 = log2;
        _msiPolling = msiPolling;
    }

    /// <summary>Illegal commands skip_err replaced with a SYNC.</summary>
    public int IllegalSkipped { get; private set; }

    /// <summary>Fetch aborts retried.</summary>
    public int AbortsRetried { get; private set; }

    /// <summary>ATC_INV_SYNC errors retried.</summary>
    public int AtcSyncRetries { get; private set; }

    /// <summary>arm_smmu_device_reset's queue part: base, PROD = CONS = 0, enable, gerror IRQ on.</summary>
    public void Reset()
    {
        _write(CmdqBase, _queueAddress | (uint)_log2, 8);
        _write(CmdqProd, 0, 4);
        _write(CmdqCons, 0, 4);
        _write(IrqCtrl, IrqGerrorEn, 4);
        _write(Cr0, Cr0SmmuEn | Cr0CmdqEn, 4);
        _prod = 0;
    }

    private uint Span => (2u << _log2) - 1;

    private int Slot(uint p) => (int)(p & ((1u << _log2) - 1));

    /// <summary>Issues the commands plus a CMD_SYNC and waits for it; 0, or −ETIMEDOUT (−110) after the retry budget.</summary>
    public int IssueCmdList(IReadOnlyList<SmmuCommand> commands)
    {
        foreach (SmmuCommand c in commands)
        {
            c.Write(_queue.AsSpan(Slot(_prod) * 16, 16));
            _prod = (_prod + 1) & Span;
        }

        uint syncSlot = _prod;
        ulong syncAddress = _queueAddress + ((ulong)Slot(syncSlot) * 16);
        SmmuCommand sync = _msiPolling
            ? new SmmuCommand(0x46 | (1UL << 12) | (3UL << 22) | (0xFUL << 24), syncAddress) // CS = IRQ to itself, MSIData 0
            : new SmmuCommand(0x46 | (2UL << 12) | (3UL << 22) | (0xFUL << 24), 0);          // CS = SEV
        sync.Write(_queue.AsSpan(Slot(syncSlot) * 16, 16));
        _prod = (_prod + 1) & Span;
        _write(CmdqProd, _prod, 4);

        for (int attempt = 0; attempt < 64; attempt++)
        {
            if (SyncDone(syncSlot))
            {
                return 0;
            }

            GerrorHandler();
        }

        return -110;
    }

    private bool SyncDone(uint syncSlot)
    {
        if (_msiPolling)
        {
            // The SMMU's MSI write of MSIData (0) clears the entry's first word.
            return BitConverter.ToUInt32(_queue, Slot(syncSlot) * 16) == 0;
        }

        // __arm_smmu_cmdq_poll_until_consumed: CONS has passed the SYNC (wrap-aware).
        uint cons = (uint)_read(CmdqCons, 4) & Span;
        uint consIndex = cons & ((1u << _log2) - 1), syncIndex = syncSlot & ((1u << _log2) - 1);
        bool sameWrap = ((cons ^ syncSlot) & (1u << _log2)) == 0;
        return sameWrap ? consIndex > syncIndex : consIndex <= syncIndex;
    }

    /// <summary>arm_smmu_gerror_handler: active = GERROR ^ GERRORN; CMDQ_ERR → skip_err; then GERRORN := GERROR.</summary>
    private void GerrorHandler()
    {
        uint gerror = (uint)_read(Gerror, 4);
        uint active = gerror ^ (uint)_read(Gerrorn, 4);
        if ((active & GerrorDefined) == 0)
        {
            return;
        }

        if ((active & GerrorCmdqErr) != 0)
        {
            uint cons = (uint)_read(CmdqCons, 4);
            switch ((cons & ConsErrMask) >> ConsErrShift)
            {
                case 2: // CERROR_ABT: retry the fetch
                    AbortsRetried++;
                    break;
                case 3: // CERROR_ATC_INV_SYNC: the SYNC at CONS is simply retried
                    AtcSyncRetries++;
                    break;
                case 0:
                    break;
                default: // CERROR_ILL and unknown codes: replace the command at CONS with a SYNC
                    IllegalSkipped++;
                    SkipSync.Write(_queue.AsSpan(Slot(cons) * 16, 16));
                    break;
            }
        }

        _write(Gerrorn, gerror, 4);
    }
}
