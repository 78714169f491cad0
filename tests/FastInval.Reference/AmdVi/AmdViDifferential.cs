using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using FastInval.AmdVi;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Smmu;
using FastInval.Reference.Vtd;

namespace FastInval.Reference.AmdVi;

/// <summary>A step of an AMD-Vi differential scenario.</summary>
public abstract record AmdViStep;

/// <summary>Write the commands at the tail onward (with wrap) and publish them with one 4-byte tail write, as Linux's
/// <c>copy_cmd_to_buffer</c> does.</summary>
public sealed record AmdViSubmit(ImmutableArray<AmdViCommand> Commands) : AmdViStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Submit({string.Join(", ", Commands.Select(c => $"new AmdViCommand(0x{c.Qword0:X}, 0x{c.Qword1:X})"))})";
}

/// <summary>A raw register write.</summary>
public sealed record AmdViWrite(uint Offset, ulong Value, int Size) : AmdViStep
{
    /// <inheritdoc/>
    public override string ToString() => $"WriteRegister(0x{Offset:X}, 0x{Value:X}, {Size})";
}

/// <summary>Software's restart after an error stop: if CmdBufRun = 0 with CmdBufEn = 1, clear CmdBufEn, move the head past
/// the failing command, set CmdBufEn again.</summary>
public sealed record AmdViRecover : AmdViStep
{
    /// <inheritdoc/>
    public override string ToString() => "Recover()";
}

/// <summary>An interrupt handler's work: clear EventOverflow, EventLogInt and ComWaitInt, consume the event log (head = tail).</summary>
public sealed record AmdViDrainEvents : AmdViStep
{
    /// <inheritdoc/>
    public override string ToString() => "DrainEvents()";
}

/// <summary>A host fill of one cache on both sides.</summary>
public sealed record AmdViFill(TranslationEntry? Iotlb, DeviceTlbEntry? DeviceTlb, ConfigEntry? Config) : AmdViStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Fill({(object?)Iotlb ?? (object?)DeviceTlb ?? Config})";
}

/// <summary>An AMD-Vi differential scenario.</summary>
/// <param name="Preset">0 everything on; 1 no guest translation; 2 no remote IOTLBs and no INVALIDATE_IOMMU_ALL.</param>
/// <param name="Faults">Time-outs, completion errors and fetch errors.</param>
/// <param name="CommandLength">ComLen as written (0h–7h reserved, 8h, 9h; larger ones run past the mapped region).</param>
/// <param name="EventLength">EventLen as written.</param>
/// <param name="UnmappedBuffer">Put the command buffer where no memory is mapped.</param>
/// <param name="Control">Control at set-up (IommuEn and CmdBufEn are added unless <paramref name="Enabled"/> is false).</param>
/// <param name="Enabled">Enable the IOMMU and the command buffer at set-up.</param>
/// <param name="Steps">The steps.</param>
public sealed record AmdViScenario(int Preset, QueueFaults Faults, int CommandLength, int EventLength, bool UnmappedBuffer, ulong Control,
    bool Enabled, ImmutableArray<AmdViStep> Steps)
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
/// of guest memory, and reports the first disagreement: every register, the Status values at the interrupts, guest memory
/// (command buffer, event log, completion stores), the fetch ordinal, the notifier records and the three caches, after
/// every step.
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

    /// <summary>Runs the scenario; null when both agree throughout.</summary>
    public static string? Run(AmdViScenario s)
    {
        byte[] fastBuffer = new byte[8192], fastEvents = new byte[4096], fastStore = new byte[4096];
        byte[] refBuffer = new byte[8192], refEvents = new byte[4096], refStore = new byte[4096];
        var memory = new GuestMemory();
        memory.Map(BufferRegion, fastBuffer);
        memory.Map(EventRegion, fastEvents);
        memory.Map(StoreRegion, fastStore);
        var refMemory = new ReferenceGuestMemory();
        refMemory.Map(BufferRegion, refBuffer);
        refMemory.Map(EventRegion, refEvents);
        refMemory.Map(StoreRegion, refStore);
        AmdViOptions preset = AmdViScenario.Options(s.Preset);
        FaultPlan plan = s.Faults.Build();
        var fastStatuses = new List<ulong>();
        AmdViIommu? fastUnit = null;
        var options = new AmdViOptions
        {
            GuestTranslation = preset.GuestTranslation,
            DeviceTlb = preset.DeviceTlb,
            InvalidateAll = preset.InvalidateAll,
            FaultPlan = plan,
            Engine = new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
            Interrupt = () => fastStatuses.Add(fastUnit!.ReadRegister(AmdViRegisters.Status, 8)),
        };
        using var fast = new AmdViIommu(memory, options);
        fastUnit = fast;
        var reference = new ReferenceAmdVi(refMemory, options, new ReferenceEngine(plan));
        var records = new Scenarios.RecordingNotifier();
        using NotifierSubscription subscription = fast.Engine.Notifiers.Subscribe(records);

        void Both(uint offset, ulong value, int size)
        {
            fast.WriteRegister(offset, value, size);
            reference.Write(offset, value, size);
        }

        Both(AmdViRegisters.CommandBufferBase, (s.UnmappedBuffer ? Unmapped : BufferRegion) | ((ulong)s.CommandLength << 56), 8);
        Both(AmdViRegisters.EventLogBase, EventRegion | ((ulong)s.EventLength << 56), 8);
        Both(AmdViRegisters.Control, s.Control | (s.Enabled ? AmdViRegisters.ControlIommuEn | AmdViRegisters.ControlCmdBufEn : 0), 8);
        string? why = Compare(fast, reference, fastStatuses, fastBuffer, refBuffer, fastEvents, refEvents, fastStore, refStore);
        if (why is not null)
        {
            return "set-up: " + why;
        }

        for (int i = 0; i < s.Steps.Length; i++)
        {
            switch (s.Steps[i])
            {
                case AmdViSubmit submit:
                    Submit(fast.ReadRegister, fast.WriteRegister, submit.Commands, fastBuffer);
                    Submit(reference.Read, reference.Write, submit.Commands, refBuffer);
                    break;
                case AmdViWrite w:
                    Both(w.Offset, w.Value, w.Size);
                    break;
                case AmdViRecover:
                    Recover(fast.ReadRegister, fast.WriteRegister);
                    Recover(reference.Read, reference.Write);
                    break;
                case AmdViDrainEvents:
                    Drain(fast.ReadRegister, fast.WriteRegister);
                    Drain(reference.Read, reference.Write);
                    break;
                case AmdViFill f:
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

            why = Compare(fast, reference, fastStatuses, fastBuffer, refBuffer, fastEvents, refEvents, fastStore, refStore) ??
                  records.Compare(reference.Records);
            if (why is not null)
            {
                return $"step #{i} {s.Steps[i]}:\n  {why}";
            }
        }

        return null;
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

    private static void Recover(Func<uint, int, ulong> read, Action<uint, ulong, int> write)
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

    private static string? Compare(AmdViIommu fast, ReferenceAmdVi reference, List<ulong> fastStatuses,
        byte[] fastBuffer, byte[] refBuffer, byte[] fastEvents, byte[] refEvents, byte[] fastStore, byte[] refStore)
    {
        foreach (uint offset in Offsets)
        {
            ulong a = fast.ReadRegister(offset, 8), b = reference.Read(offset, 8);
            if (a != b)
            {
                return $"register 0x{offset:X}: fast 0x{a:X}, reference 0x{b:X}";
            }
        }

        if (!fastStatuses.SequenceEqual(reference.InterruptStatuses))
        {
            return $"interrupts (status): fast [{string.Join(", ", fastStatuses.Select(x => x.ToString("X", CultureInfo.InvariantCulture)))}], " +
                   $"reference [{string.Join(", ", reference.InterruptStatuses.Select(x => x.ToString("X", CultureInfo.InvariantCulture)))}]";
        }

        if (!fastBuffer.AsSpan().SequenceEqual(refBuffer))
        {
            return "command buffer memory differs";
        }

        if (!fastEvents.AsSpan().SequenceEqual(refEvents))
        {
            return "event log differs";
        }

        if (!fastStore.AsSpan().SequenceEqual(refStore))
        {
            return "completion stores differ";
        }

        if (fast.CommandFetches != reference.Fetches)
        {
            return $"fetches: fast {fast.CommandFetches}, reference {reference.Fetches}";
        }

        return Scenarios.Differential.CompareCaches(fast.Engine, reference.Engine);
    }
}
