using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Vtd;
using FastInval.Smmu;

namespace FastInval.Reference.Smmu;

/// <summary>Write the commands at PROD onward (with wrap) and publish them with one CMDQ_PROD write.</summary>
public sealed record SmmuSubmit(ImmutableArray<SmmuCommand> Commands) : QueueStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Submit({string.Join(", ", Commands.Select(c => $"new SmmuCommand(0x{c.Dword0:X}, 0x{c.Dword1:X})"))})";
}

/// <summary>An SMMUv3 differential scenario: features, fault plan, queue geometry, interrupt set-up and the steps.</summary>
/// <param name="Preset">0 everything on; 1 stage 1 only, no RIL, lax reserved fields; 2 stage 2 only, no ATS, 8-bit
/// ids; 3 no MSI, no SEV, no substreams; 4 PRI and stalling.</param>
/// <param name="Faults">Time-outs, completion errors and fetch errors.</param>
/// <param name="Log2Size">CMDQ_BASE.LOG2SIZE (written as is; the unit caps it).</param>
/// <param name="UnmappedQueue">Put the queue where no memory is mapped.</param>
/// <param name="IrqMode">0 no GERROR interrupt, 1 wired, 2 MSI to mapped memory, 3 MSI to unmapped memory.</param>
/// <param name="SmmuEnabled">CR0.SMMUEN at set-up.</param>
/// <param name="Steps">The steps.</param>
public sealed record SmmuScenario(int Preset, QueueFaults Faults, int Log2Size, bool UnmappedQueue, int IrqMode, bool SmmuEnabled,
    ImmutableArray<QueueStep> Steps)
{
    /// <summary>The options of a preset.</summary>
    public static SmmuOptions Options(int preset) => preset switch
    {
        1 => new SmmuOptions { Features = new SmmuFeatures { Stage2 = false, RangeInvalidation = false, StrictReservedFields = false } },
        2 => new SmmuOptions { Features = new SmmuFeatures { Stage1 = false, Ats = false, Asid16 = false, Vmid16 = false } },
        3 => new SmmuOptions { Features = new SmmuFeatures { Msi = false, Sev = false, SubstreamIdBits = 0 }, OutputAddressBits = 40 },
        4 => new SmmuOptions { Features = new SmmuFeatures { Pri = true, Stall = true }, MaxCommandQueueLog2 = 4 },
        _ => new SmmuOptions(),
    };

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"preset {Preset}, {Faults}, LOG2SIZE={Log2Size}, unmappedQueue={UnmappedQueue}, irq={IrqMode}, SMMUEN={SmmuEnabled}");
        for (int i = 0; i < Steps.Length; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\n  #{i} {Steps[i]}");
        }

        return sb.ToString();
    }
}

/// <summary>
/// Runs an <see cref="SmmuScenario"/> on <see cref="SmmuV3"/> and on <see cref="ReferenceSmmu"/>, each with its own copy of
/// guest memory, and reports the first disagreement: every page-0 register dword up to 0x100, the MSIs, the wired
/// interrupts, guest memory, the fetch and device-TLB ordinals, and the three caches, after every step.
/// </summary>
public static class SmmuDifferential
{
    /// <summary>Guest address of the queue region (4 KiB).</summary>
    public const ulong QueueRegion = 0x40_0000;

    /// <summary>Guest address of the MSI region (4 KiB).</summary>
    public const ulong MsiRegion = 0x80_0000;

    /// <summary>An address with no memory.</summary>
    public const ulong Unmapped = 0x90_0000;

    /// <summary>Runs the scenario; null when both agree throughout. With <paramref name="planAsSink"/> the fast SMMU's
    /// CMD_ATC_INVs go to the scenario's fault plan as its device-TLB sink (the engine keeps the plan for fetch errors).</summary>
    public static string? Run(SmmuScenario s, bool planAsSink = false)
    {
        using var pair = new Pair(s, planAsSink);
        var records = new RecordingNotifier { OrderInsensitive = planAsSink };
        using NotifierSubscription subscription = pair.Fast.Engine.Notifiers.Subscribe(records);
        pair.SetUp(s);
        return QueueDifferential.Run(pair, s.Steps, records);
    }

    /// <summary>The two SMMUs, each over its own copy of guest memory; the fast one's signals are recorded with the CONS
    /// they were sent at.</summary>
    private sealed class Pair : IQueuePair, IDisposable
    {
        private readonly byte[] _fastQueue = new byte[4096], _fastMsi = new byte[4096], _refQueue = new byte[4096], _refMsi = new byte[4096];
        private readonly List<(ulong, uint)> _fastMsis = [];
        private readonly List<SmmuInterrupt> _fastWired = [];
        private readonly List<uint> _fastCons = [];
        private readonly ReferenceSmmu _reference;
        private readonly int _maxLog2;

        public Pair(SmmuScenario s, bool planAsSink)
        {
            var memory = new GuestMemory();
            memory.Map(QueueRegion, _fastQueue);
            memory.Map(MsiRegion, _fastMsi);
            var refMemory = new ReferenceGuestMemory();
            refMemory.Map(QueueRegion, _refQueue);
            refMemory.Map(MsiRegion, _refMsi);
            SmmuOptions preset = SmmuScenario.Options(s.Preset);
            FaultPlan plan = s.Faults.Build();
            var options = new SmmuOptions
            {
                Features = preset.Features,
                StreamIdBits = preset.StreamIdBits,
                MaxCommandQueueLog2 = preset.MaxCommandQueueLog2,
                OutputAddressBits = preset.OutputAddressBits,
                FaultPlan = plan,
                Engine = new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
                DeviceTlbSink = planAsSink ? new DeviceTlbSinkOptions { Sink = plan } : null,
                Msi = (a, d) =>
                {
                    _fastMsis.Add((a, d));
                    _fastCons.Add((uint)Fast!.ReadRegister(SmmuRegisters.CmdqCons, 4));
                },
                WiredInterrupt = i =>
                {
                    _fastWired.Add(i);
                    _fastCons.Add((uint)Fast!.ReadRegister(SmmuRegisters.CmdqCons, 4));
                },
            };
            _maxLog2 = options.MaxCommandQueueLog2;
            Fast = new SmmuV3(memory, options);
            _reference = new ReferenceSmmu(refMemory, options, new ReferenceEngine(plan));
        }

        public SmmuV3 Fast { get; }

        public InvalidationEngine FastEngine => Fast.Engine;

        public ReferenceEngine ReferenceEngine => _reference.Engine;

        public IReadOnlyList<InvalidationRecord> ReferenceRecords => _reference.Records;

        /// <summary>The guest's set-up: queue, GERROR interrupt, CR0.</summary>
        public void SetUp(SmmuScenario s)
        {
            ulong queueBase = s.UnmappedQueue ? Unmapped : QueueRegion;
            Write(SmmuRegisters.CmdqBase, queueBase | (uint)s.Log2Size, 8);
            if (s.IrqMode != 0)
            {
                Write(SmmuRegisters.IrqCtrl, SmmuRegisters.IrqGerrorEn, 4);
            }

            if (s.IrqMode >= 2)
            {
                Write(SmmuRegisters.GerrorIrqCfg0, s.IrqMode == 2 ? MsiRegion + 0x800 : Unmapped, 8);
                Write(SmmuRegisters.GerrorIrqCfg1, 0xE0, 4);
            }

            Write(SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn | (s.SmmuEnabled ? SmmuRegisters.Cr0SmmuEn : 0), 4);
        }

        public void Write(uint offset, ulong value, int size)
        {
            Fast.WriteRegister(offset, value, size);
            _reference.Write(offset, value, size);
        }

        public void Apply(QueueStep entry)
        {
            if (entry is SmmuSubmit submit)
            {
                Submit(Fast.ReadRegister(SmmuRegisters.CmdqBase, 8), Fast.ReadRegister(SmmuRegisters.CmdqProd, 4), _maxLog2,
                    submit.Commands, _fastQueue, v => Fast.WriteRegister(SmmuRegisters.CmdqProd, v, 4));
                Submit(_reference.Read(SmmuRegisters.CmdqBase, 8), _reference.Read(SmmuRegisters.CmdqProd, 4), _maxLog2,
                    submit.Commands, _refQueue, v => _reference.Write(SmmuRegisters.CmdqProd, v, 4));
            }
        }

        public void Recover()
        {
            SkipIllegal(Fast.ReadRegister(SmmuRegisters.CmdqBase, 8), Fast.ReadRegister(SmmuRegisters.CmdqCons, 4),
                Fast.ReadRegister(SmmuRegisters.Gerror, 4) ^ Fast.ReadRegister(SmmuRegisters.Gerrorn, 4), _maxLog2, _fastQueue);
            SkipIllegal(_reference.Read(SmmuRegisters.CmdqBase, 8), _reference.Read(SmmuRegisters.CmdqCons, 4),
                _reference.Read(SmmuRegisters.Gerror, 4) ^ _reference.Read(SmmuRegisters.Gerrorn, 4), _maxLog2, _refQueue);
            Fast.WriteRegister(SmmuRegisters.Gerrorn, Fast.ReadRegister(SmmuRegisters.Gerror, 4), 4);
            _reference.Write(SmmuRegisters.Gerrorn, _reference.Read(SmmuRegisters.Gerror, 4), 4);
        }

        public string? CompareState() =>
            QueueDifferential.CompareRegisters(o => Fast.ReadRegister(o, 4), o => _reference.Read(o, 4), 0x100) ??
            QueueDifferential.CompareSequence("MSIs", _fastMsis, _reference.Messages) ??
            QueueDifferential.CompareSequence("CONS at signals", _fastCons, _reference.ConsAtSignals) ??
            QueueDifferential.CompareSequence("wired", _fastWired, _reference.Interrupts) ??
            QueueDifferential.CompareMemory((_fastQueue, _refQueue), (_fastMsi, _refMsi)) ??
            (Fast.CommandFetches != _reference.Fetches ? $"fetches: fast {Fast.CommandFetches}, reference {_reference.Fetches}" : null);

        public void Dispose() => Fast.Dispose();
    }

    private static int EffectiveLog2(ulong cmdqBase, int max) => Math.Min((int)(cmdqBase & 0x1F), max);

    private static void Submit(ulong cmdqBase, ulong prod, int max, ImmutableArray<SmmuCommand> commands, byte[] queue, Action<ulong> ring)
    {
        int log2 = EffectiveLog2(cmdqBase, max);
        ulong entries = 1UL << log2;
        ulong queueBase = cmdqBase & 0x00FF_FFFF_FFFF_FFE0UL;
        ulong index = prod % entries, wrap = (prod >> log2) & 1;
        foreach (SmmuCommand c in commands)
        {
            ulong address = queueBase + (index * 16);
            if (address >= QueueRegion && address + 16 <= QueueRegion + (ulong)queue.Length)
            {
                c.Write(queue.AsSpan((int)(address - QueueRegion), 16));
            }

            index++;
            if (index == entries)
            {
                index = 0;
                wrap ^= 1;
            }
        }

        ring(index | (wrap << log2));
    }

    private static void SkipIllegal(ulong cmdqBase, ulong cons, ulong active, int max, byte[] queue)
    {
        if ((active & 1) == 0 || ((cons >> 24) & 0x7F) != 1)
        {
            return;
        }

        int log2 = EffectiveLog2(cmdqBase, max);
        ulong address = (cmdqBase & 0x00FF_FFFF_FFFF_FFE0UL) + ((cons % (1UL << log2)) * 16);
        if (address >= QueueRegion && address + 16 <= QueueRegion + (ulong)queue.Length)
        {
            new SmmuCommand(0x0FC0_2046UL, 0).Write(queue.AsSpan((int)(address - QueueRegion), 16));
        }
    }
}
