using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using FastInval.AmdVi;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Vtd;

namespace FastInval.Reference.AmdVi;

/// <summary>Write the commands at the tail onward (with wrap) and publish them with one 4-byte tail write, as Linux's
/// <c>copy_cmd_to_buffer</c> does.</summary>
public sealed record AmdViSubmit(ImmutableArray<AmdViCommand> Commands) : QueueStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Submit({string.Join(", ", Commands.Select(c => $"new AmdViCommand(0x{c.Qword0:X}, 0x{c.Qword1:X})"))})";
}

/// <summary>An interrupt handler's work: clear EventOverflow, EventLogInt and ComWaitInt, consume the event log (head = tail).</summary>
public sealed record AmdViDrainEvents : QueueStep
{
    /// <inheritdoc/>
    public override string ToString() => "DrainEvents()";
}

/// <summary>An AMD-Vi differential scenario.</summary>
/// <param name="Preset">0 everything on; 1 no guest translation; 2 no remote IOTLBs and no INVALIDATE_IOMMU_ALL.</param>
/// <param name="Faults">Time-outs, completion errors and fetch errors.</param>
/// <param name="CommandLength">ComLen as written (0h–7h reserved, 8h, 9h; larger ones run past the mapped region).</param>
/// <param name="EventLength">EventLen as written.</param>
/// <param name="UnmappedBuffer">Put the command buffer where no memory is mapped.</param>
/// <param name="Control">Control at set-up (IommuEn and CmdBufEn are added unless <paramref name="Enabled"/> is false).</param>
/// <param name="Enabled">Enable the IOMMU and the command buffer at set-up.</param>
/// <param name="Steps">The steps: <see cref="AmdViSubmit"/>, <see cref="AmdViDrainEvents"/> and the shared
/// <see cref="QueueWrite"/>, <see cref="QueueRecover"/> (software's restart after an error stop: if CmdBufRun = 0 with
/// CmdBufEn = 1, clear CmdBufEn, move the head past the failing command, set CmdBufEn again) and <see cref="QueueFill"/>.</param>
public sealed record AmdViScenario(int Preset, QueueFaults Faults, int CommandLength, int EventLength, bool UnmappedBuffer, ulong Control,
    bool Enabled, ImmutableArray<QueueStep> Steps)
{
    /// <summary>The options of a preset.</summary>
    public static AmdViOptions Options(int preset) => preset switch
    {
        1 => new AmdViOptions { GuestTranslation = false },
        2 => new AmdViOptions { DeviceTlb = false, InvalidateAll = false },
        _ => new AmdViOptions(),
    };

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture,
            $"preset {Preset}, {Faults}, ComLen={CommandLength}, EventLen={EventLength}, unmapped={UnmappedBuffer}, control=0x{Control:X}, enabled={Enabled}");
        for (int i = 0; i < Steps.Length; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\n  #{i} {Steps[i]}");
        }

        return sb.ToString();
    }
}

/// <summary>
/// Runs an <see cref="AmdViScenario"/> on <see cref="AmdViIommu"/> and on <see cref="ReferenceAmdVi"/>, each with its own copy
/// of guest memory, through the shared <see cref="QueueDifferential"/> plumbing, and reports the first disagreement: every
/// register (both 32-bit halves), the Status and head values at the interrupts, guest memory (command buffer, event log,
/// completion stores), the fetch ordinal, the notifier records and the three caches, after every step.
/// </summary>
public static class AmdViDifferential
{
    /// <summary>Guest address of the command-buffer region (8 KiB).</summary>
    public const ulong BufferRegion = 0x40_0000;

    /// <summary>Guest address of the event-log region (4 KiB).</summary>
    public const ulong EventRegion = 0x50_0000;

    /// <summary>Guest address of the completion-store region (4 KiB).</summary>
    public const ulong StoreRegion = 0x60_0000;

    /// <summary>An address with no memory.</summary>
    public const ulong Unmapped = 0x90_0000;

    private static readonly uint[] Offsets =
    [
        AmdViRegisters.DeviceTableBase, AmdViRegisters.CommandBufferBase, AmdViRegisters.EventLogBase, AmdViRegisters.Control,
        AmdViRegisters.ExclusionBase, AmdViRegisters.ExclusionLimit, AmdViRegisters.ExtendedFeatures, 0x38,
        AmdViRegisters.CommandBufferHead, AmdViRegisters.CommandBufferTail, AmdViRegisters.EventLogHead, AmdViRegisters.EventLogTail,
        AmdViRegisters.Status, 0x2028,
    ];

    /// <summary>Runs the scenario; null when both agree throughout. With <paramref name="planAsSink"/> the fast unit's
    /// INVALIDATE_IOTLB_PAGES go to the scenario's fault plan as its device-TLB sink (the engine keeps the plan for fetch
    /// errors).</summary>
    public static string? Run(AmdViScenario s, bool planAsSink = false)
    {
        using var pair = new Pair(s, planAsSink);
        var records = new RecordingNotifier { OrderInsensitive = planAsSink };
        using NotifierSubscription subscription = pair.Fast.Engine.Notifiers.Subscribe(records);
        pair.SetUp(s);
        return QueueDifferential.Run(pair, s.Steps, records);
    }

    /// <summary>The two units, each over its own copy of guest memory; the fast one's interrupts are recorded with the
    /// Status and head they were signalled at.</summary>
    private sealed class Pair : IQueuePair, IDisposable
    {
        private readonly byte[] _fastBuffer = new byte[8192], _fastEvents = new byte[4096], _fastStore = new byte[4096];
        private readonly byte[] _refBuffer = new byte[8192], _refEvents = new byte[4096], _refStore = new byte[4096];
        private readonly List<ulong> _fastStatuses = [];
        private readonly List<ulong> _fastHeads = [];
        private readonly ReferenceAmdVi _reference;

        public Pair(AmdViScenario s, bool planAsSink)
        {
            var memory = new GuestMemory();
            memory.Map(BufferRegion, _fastBuffer);
            memory.Map(EventRegion, _fastEvents);
            memory.Map(StoreRegion, _fastStore);
            var refMemory = new ReferenceGuestMemory();
            refMemory.Map(BufferRegion, _refBuffer);
            refMemory.Map(EventRegion, _refEvents);
            refMemory.Map(StoreRegion, _refStore);
            AmdViOptions preset = AmdViScenario.Options(s.Preset);
            FaultPlan plan = s.Faults.Build();
            var options = new AmdViOptions
            {
                GuestTranslation = preset.GuestTranslation,
                DeviceTlb = preset.DeviceTlb,
                InvalidateAll = preset.InvalidateAll,
                FaultPlan = plan,
                Engine = new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
                DeviceTlbSink = planAsSink ? new DeviceTlbSinkOptions { Sink = plan } : null,
                Interrupt = () =>
                {
                    _fastStatuses.Add(Fast!.ReadRegister(AmdViRegisters.Status, 8));
                    _fastHeads.Add(Fast.ReadRegister(AmdViRegisters.CommandBufferHead, 8));
                },
            };
            Fast = new AmdViIommu(memory, options);
            _reference = new ReferenceAmdVi(refMemory, options, new ReferenceEngine(plan));
        }

        public AmdViIommu Fast { get; }

        public InvalidationEngine FastEngine => Fast.Engine;

        public ReferenceEngine ReferenceEngine => _reference.Engine;

        public IReadOnlyList<InvalidationRecord> ReferenceRecords => _reference.Records;

        /// <summary>The guest's set-up: the two rings, then Control.</summary>
        public void SetUp(AmdViScenario s)
        {
            Write(AmdViRegisters.CommandBufferBase, (s.UnmappedBuffer ? Unmapped : BufferRegion) | ((ulong)s.CommandLength << 56), 8);
            Write(AmdViRegisters.EventLogBase, EventRegion | ((ulong)s.EventLength << 56), 8);
            Write(AmdViRegisters.Control, s.Control | (s.Enabled ? AmdViRegisters.ControlIommuEn | AmdViRegisters.ControlCmdBufEn : 0), 8);
        }

        public void Write(uint offset, ulong value, int size)
        {
            Fast.WriteRegister(offset, value, size);
            _reference.Write(offset, value, size);
        }

        public void Apply(QueueStep entry)
        {
            switch (entry)
            {
                case AmdViSubmit submit:
                    Submit(Fast.ReadRegister, Fast.WriteRegister, submit.Commands, _fastBuffer);
                    Submit(_reference.Read, _reference.Write, submit.Commands, _refBuffer);
                    break;
                case AmdViDrainEvents:
                    Drain(Fast.ReadRegister, Fast.WriteRegister);
                    Drain(_reference.Read, _reference.Write);
                    break;
            }
        }

        public void Recover()
        {
            Restart(Fast.ReadRegister, Fast.WriteRegister);
            Restart(_reference.Read, _reference.Write);
        }

        public string? CompareState() =>
            CompareRegisters() ??
            QueueDifferential.CompareSequence("status at interrupts", _fastStatuses, _reference.InterruptStatuses) ??
            QueueDifferential.CompareSequence("head at interrupts", _fastHeads, _reference.InterruptHeads) ??
            QueueDifferential.CompareMemory((_fastBuffer, _refBuffer), (_fastEvents, _refEvents), (_fastStore, _refStore)) ??
            (Fast.CommandFetches != _reference.Fetches ? $"fetches: fast {Fast.CommandFetches}, reference {_reference.Fetches}" : null) ??
            (Fast.InternalErrors != 0 ? $"internal errors: {Fast.InternalErrors}" : null);

        private string? CompareRegisters()
        {
            foreach (uint offset in Offsets)
            {
                ulong a = Fast.ReadRegister(offset, 8), b = _reference.Read(offset, 8);
                ulong lo = Fast.ReadRegister(offset, 4), hi = Fast.ReadRegister(offset + 4, 4);
                if (a != b || lo != (uint)b || hi != b >> 32)
                {
                    return $"register 0x{offset:X}: fast 0x{a:X} (halves 0x{hi:X}_{lo:X8}), reference 0x{b:X}";
                }
            }

            return null;
        }

        public void Dispose() => Fast.Dispose();
    }

    private static ulong Size(ulong baseRegister) => 16UL << Math.Max((int)((baseRegister >> 56) & 0xF), 8);

    private static void Submit(Func<uint, int, ulong> read, Action<uint, ulong, int> write, ImmutableArray<AmdViCommand> commands, byte[] buffer)
    {
        ulong cmdBase = read(AmdViRegisters.CommandBufferBase, 8);
        ulong size = Size(cmdBase);
        ulong tail = read(AmdViRegisters.CommandBufferTail, 8);
        foreach (AmdViCommand c in commands)
        {
            ulong address = (cmdBase & AmdViRegisters.RingBaseAddressMask) + tail;
            if (address >= BufferRegion && address + 16 <= BufferRegion + (ulong)buffer.Length)
            {
                c.Write(buffer.AsSpan((int)(address - BufferRegion), 16));
            }

            tail = (tail + 16) % size;
        }

        write(AmdViRegisters.CommandBufferTail, tail, 4);
    }

    private static void Restart(Func<uint, int, ulong> read, Action<uint, ulong, int> write)
    {
        ulong control = read(AmdViRegisters.Control, 8);
        ulong status = read(AmdViRegisters.Status, 8);
        if ((control & AmdViRegisters.ControlCmdBufEn) == 0 || (status & AmdViRegisters.StatusCmdBufRun) != 0)
        {
            return;
        }

        write(AmdViRegisters.Control, control & ~AmdViRegisters.ControlCmdBufEn, 8);
        ulong size = Size(read(AmdViRegisters.CommandBufferBase, 8));
        write(AmdViRegisters.CommandBufferHead, (read(AmdViRegisters.CommandBufferHead, 8) + 16) % size, 4);
        write(AmdViRegisters.Control, control, 8);
    }

    private static void Drain(Func<uint, int, ulong> read, Action<uint, ulong, int> write)
    {
        write(AmdViRegisters.Status, AmdViRegisters.StatusWriteOneToClear, 4);
        write(AmdViRegisters.EventLogHead, read(AmdViRegisters.EventLogTail, 4), 4);
    }
}
