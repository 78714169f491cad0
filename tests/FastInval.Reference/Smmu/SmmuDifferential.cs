using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using FastInval.Reference.Vtd;
using FastInval.Smmu;

namespace FastInval.Reference.Smmu;

/// <summary>A step of an SMMUv3 differential scenario.</summary>
public abstract record SmmuStep;

/// <summary>Write the commands at PROD onward (with wrap) and publish them with one CMDQ_PROD write.</summary>
public sealed record SmmuSubmit(ImmutableArray<SmmuCommand> Commands) : SmmuStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Submit({string.Join(", ", Commands.Select(c => $"new SmmuCommand(0x{c.Dword0:X}, 0x{c.Dword1:X})"))})";
}

/// <summary>A raw register write.</summary>
public sealed record SmmuWrite(uint Offset, ulong Value, int Size) : SmmuStep
{
    /// <inheritdoc/>
    public override string ToString() => $"WriteRegister(0x{Offset:X}, 0x{Value:X}, {Size})";
}

/// <summary>Linux's gerror handler: if CMDQ_ERR is active and CONS.ERR is CERROR_ILL, overwrite the entry at CONS with a
/// CMD_SYNC (skip_err); then acknowledge every active error.</summary>
public sealed record SmmuRecover : SmmuStep
{
    /// <inheritdoc/>
    public override string ToString() => "Recover()";
}

/// <summary>A host fill of one cache on both sides.</summary>
public sealed record SmmuFill(TranslationEntry? Iotlb, DeviceTlbEntry? DeviceTlb, ConfigEntry? Config) : SmmuStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Fill({(object?)Iotlb ?? (object?)DeviceTlb ?? Config})";
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
public sealed record SmmuScenario(int Preset, FaultSpecs Faults, int Log2Size, bool UnmappedQueue, int IrqMode, bool SmmuEnabled,
    ImmutableArray<SmmuStep> Steps)
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

/// <summary>Fault-plan settings of a queue scenario.</summary>
public sealed record FaultSpecs(ulong Seed, uint TimeoutPerMillion, uint CompletionErrorPerMillion, uint FetchErrorPerMillion,
    ImmutableArray<uint> TimeoutSourceIds, ImmutableArray<ulong> TimeoutOrdinals, ImmutableArray<ulong> FetchErrorOrdinals)
{
    /// <summary>No faults.</summary>
    public static FaultSpecs None { get; } = new(0, 0, 0, 0, [], [], []);

    /// <summary>The plan.</summary>
    public FaultPlan Build() => new()
    {
        Seed = Seed,
        TimeoutPerMillion = TimeoutPerMillion,
        CompletionErrorPerMillion = CompletionErrorPerMillion,
        FetchErrorPerMillion = FetchErrorPerMillion,
        TimeoutSourceIds = TimeoutSourceIds,
        TimeoutOrdinals = TimeoutOrdinals,
        FetchErrorOrdinals = FetchErrorOrdinals,
    };

    /// <inheritdoc/>
    public override string ToString() =>
        $"faults(seed={Seed} timeout={TimeoutPerMillion} ice={CompletionErrorPerMillion} fetch={FetchErrorPerMillion} dead=[{string.Join(",", TimeoutSourceIds)}] " +
        $"timeoutAt=[{string.Join(",", TimeoutOrdinals)}] fetchAt=[{string.Join(",", FetchErrorOrdinals)}])";
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

    /// <summary>Runs the scenario; null when both agree throughout.</summary>
    public static string? Run(SmmuScenario s)
    {
        byte[] fastQueue = new byte[4096], fastMsi = new byte[4096], refQueue = new byte[4096], refMsi = new byte[4096];
        var memory = new GuestMemory();
        memory.Map(QueueRegion, fastQueue);
        memory.Map(MsiRegion, fastMsi);
        var refMemory = new ReferenceGuestMemory();
        refMemory.Map(QueueRegion, refQueue);
        refMemory.Map(MsiRegion, refMsi);
        SmmuOptions preset = SmmuScenario.Options(s.Preset);
        FaultPlan plan = s.Faults.Build();
        var fastMsis = new List<(ulong, uint)>();
        var fastWired = new List<SmmuInterrupt>();
        var fastCons = new List<uint>();
        SmmuV3? fastUnit = null;
        var options = new SmmuOptions
        {
            Features = preset.Features,
            StreamIdBits = preset.StreamIdBits,
            MaxCommandQueueLog2 = preset.MaxCommandQueueLog2,
            OutputAddressBits = preset.OutputAddressBits,
            FaultPlan = plan,
            Engine = new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
            Msi = (a, d) =>
            {
                fastMsis.Add((a, d));
                fastCons.Add((uint)fastUnit!.ReadRegister(SmmuRegisters.CmdqCons, 4));
            },
            WiredInterrupt = i =>
            {
                fastWired.Add(i);
                fastCons.Add((uint)fastUnit!.ReadRegister(SmmuRegisters.CmdqCons, 4));
            },
        };
        using var fast = new SmmuV3(memory, options);
        fastUnit = fast;
        var reference = new ReferenceSmmu(refMemory, options, new ReferenceEngine(plan));
        var records = new Scenarios.RecordingNotifier();
        using NotifierSubscription subscription = fast.Engine.Notifiers.Subscribe(records);

        void Both(uint offset, ulong value, int size)
        {
            fast.WriteRegister(offset, value, size);
            reference.Write(offset, value, size);
        }

        ulong queueBase = s.UnmappedQueue ? Unmapped : QueueRegion;
        Both(SmmuRegisters.CmdqBase, queueBase | (uint)s.Log2Size, 8);
        if (s.IrqMode != 0)
        {
            Both(SmmuRegisters.IrqCtrl, SmmuRegisters.IrqGerrorEn, 4);
        }

        if (s.IrqMode >= 2)
        {
            Both(SmmuRegisters.GerrorIrqCfg0, s.IrqMode == 2 ? MsiRegion + 0x800 : Unmapped, 8);
            Both(SmmuRegisters.GerrorIrqCfg1, 0xE0, 4);
        }

        Both(SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn | (s.SmmuEnabled ? SmmuRegisters.Cr0SmmuEn : 0), 4);
        string? why = Compare(fast, reference, fastMsis, fastWired, fastCons, fastQueue, refQueue, fastMsi, refMsi);
        if (why is not null)
        {
            return "set-up: " + why;
        }

        for (int i = 0; i < s.Steps.Length; i++)
        {
            switch (s.Steps[i])
            {
                case SmmuSubmit submit:
                    Submit(fast.ReadRegister(SmmuRegisters.CmdqBase, 8), fast.ReadRegister(SmmuRegisters.CmdqProd, 4), options.MaxCommandQueueLog2,
                        submit.Commands, fastQueue, v => fast.WriteRegister(SmmuRegisters.CmdqProd, v, 4));
                    Submit(reference.Read(SmmuRegisters.CmdqBase, 8), reference.Read(SmmuRegisters.CmdqProd, 4), options.MaxCommandQueueLog2,
                        submit.Commands, refQueue, v => reference.Write(SmmuRegisters.CmdqProd, v, 4));
                    break;
                case SmmuWrite w:
                    Both(w.Offset, w.Value, w.Size);
                    break;
                case SmmuRecover:
                    SkipIllegal(fast.ReadRegister(SmmuRegisters.CmdqBase, 8), fast.ReadRegister(SmmuRegisters.CmdqCons, 4),
                        fast.ReadRegister(SmmuRegisters.Gerror, 4) ^ fast.ReadRegister(SmmuRegisters.Gerrorn, 4), options.MaxCommandQueueLog2, fastQueue);
                    SkipIllegal(reference.Read(SmmuRegisters.CmdqBase, 8), reference.Read(SmmuRegisters.CmdqCons, 4),
                        reference.Read(SmmuRegisters.Gerror, 4) ^ reference.Read(SmmuRegisters.Gerrorn, 4), options.MaxCommandQueueLog2, refQueue);
                    fast.WriteRegister(SmmuRegisters.Gerrorn, fast.ReadRegister(SmmuRegisters.Gerror, 4), 4);
                    reference.Write(SmmuRegisters.Gerrorn, reference.Read(SmmuRegisters.Gerror, 4), 4);
                    break;
                case SmmuFill f:
                    if (f.Iotlb is TranslationEntry t && fast.Engine.Iotlb.Fill(t) != reference.Engine.FillIotlb(t))
                    {
                        return $"step #{i}: fill results differ";
                    }

                    if (f.DeviceTlb is DeviceTlbEntry d)
                    {
                        fast.Engine.DeviceTlb.Fill(d);
                        reference.Engine.FillDeviceTlb(d);
                    }

                    if (f.Config is ConfigEntry c)
                    {
                        fast.Engine.ConfigCache.Fill(c);
                        reference.Engine.FillConfig(c);
                    }

                    break;
            }

            why = Compare(fast, reference, fastMsis, fastWired, fastCons, fastQueue, refQueue, fastMsi, refMsi) ?? records.Compare(reference.Records);
            if (why is not null)
            {
                return $"step #{i} {s.Steps[i]}:\n  {why}";
            }
        }

        return null;
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

    private static string? Compare(SmmuV3 fast, ReferenceSmmu reference, List<(ulong, uint)> fastMsis, List<SmmuInterrupt> fastWired,
        List<uint> fastCons,
        byte[] fastQueue, byte[] refQueue, byte[] fastMsi, byte[] refMsi)
    {
        for (uint offset = 0; offset < 0x100; offset += 4)
        {
            ulong a = fast.ReadRegister(offset, 4), b = reference.Read(offset, 4);
            if (a != b)
            {
                return $"register 0x{offset:X}: fast 0x{a:X}, reference 0x{b:X}";
            }
        }

        if (!fastMsis.SequenceEqual(reference.Messages))
        {
            return $"MSIs: fast [{string.Join(", ", fastMsis)}], reference [{string.Join(", ", reference.Messages)}]";
        }

        if (!fastCons.SequenceEqual(reference.ConsAtSignals))
        {
            return $"CONS at signals: fast [{string.Join(", ", fastCons)}], reference [{string.Join(", ", reference.ConsAtSignals)}]";
        }

        if (!fastWired.SequenceEqual(reference.Interrupts))
        {
            return $"wired: fast [{string.Join(", ", fastWired)}], reference [{string.Join(", ", reference.Interrupts)}]";
        }

        if (!fastQueue.AsSpan().SequenceEqual(refQueue) || !fastMsi.AsSpan().SequenceEqual(refMsi))
        {
            return "guest memory differs";
        }

        if (fast.CommandFetches != reference.Fetches)
        {
            return $"fetches: fast {fast.CommandFetches}, reference {reference.Fetches}";
        }

        return Scenarios.Differential.CompareCaches(fast.Engine, reference.Engine);
    }
}
