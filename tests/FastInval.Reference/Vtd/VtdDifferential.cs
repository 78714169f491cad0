using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using FastInval.Vtd;
using static FastInval.Vtd.VtdRegisters;

namespace FastInval.Reference.Vtd;

/// <summary>One step of a VT-d differential scenario, applied to both units alike.</summary>
public abstract record VtdStep;

/// <summary>The guest writes <paramref name="Descriptors"/> into the queue slots from IQT on (wrapping) and rings the
/// doorbell once with the new tail.</summary>
public sealed record VtdSubmit(ImmutableArray<VtdDescriptor> Descriptors) : VtdStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Submit({string.Join(", ", Descriptors.Select(d => $"new VtdDescriptor({Hex(d.Qw0)}, {Hex(d.Qw1)}, {Hex(d.Qw2)}, {Hex(d.Qw3)})"))})";

    private static string Hex(ulong v) => "0x" + v.ToString("X", CultureInfo.InvariantCulture);
}

/// <summary>A register write (any offset and size, including bad ones).</summary>
public sealed record VtdWrite(uint Offset, ulong Value, int Size) : VtdStep
{
    /// <inheritdoc/>
    public override string ToString() => $"WriteRegister(0x{Offset:X}, 0x{Value:X}, {Size})";
}

/// <summary>Linux-style IQE recovery: overwrite the descriptor at IQH with a fenced no-op wait, then write 1s to
/// IQE, ICE and ITE in FSTS.</summary>
public sealed record VtdRecover : VtdStep
{
    /// <inheritdoc/>
    public override string ToString() => "Recover()";
}

/// <summary>The host caches an entry (one of the three kinds; the others are null).</summary>
public sealed record VtdFill(TranslationEntry? Iotlb, DeviceTlbEntry? DeviceTlb, ConfigEntry? Config) : VtdStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Fill({(object?)Iotlb ?? (object?)DeviceTlb ?? Config})";
}

/// <summary>Fault-plan settings of a VT-d scenario (fetch errors as well as device-TLB failures).</summary>
public sealed record VtdFaults(ulong Seed, uint TimeoutPerMillion, uint CompletionErrorPerMillion, uint FetchErrorPerMillion,
    ImmutableArray<uint> TimeoutSourceIds, ImmutableArray<ulong> TimeoutOrdinals, ImmutableArray<ulong> CompletionErrorOrdinals,
    ImmutableArray<ulong> FetchErrorOrdinals)
{
    /// <summary>No faults.</summary>
    public static VtdFaults None { get; } = new(0, 0, 0, 0, [], [], [], []);

    /// <summary>The plan these settings describe.</summary>
    public FaultPlan Build() => new()
    {
        Seed = Seed,
        TimeoutPerMillion = TimeoutPerMillion,
        CompletionErrorPerMillion = CompletionErrorPerMillion,
        FetchErrorPerMillion = FetchErrorPerMillion,
        TimeoutSourceIds = TimeoutSourceIds,
        TimeoutOrdinals = TimeoutOrdinals,
        CompletionErrorOrdinals = CompletionErrorOrdinals,
        FetchErrorOrdinals = FetchErrorOrdinals,
    };

    /// <inheritdoc/>
    public override string ToString() =>
        $"seed=0x{Seed:X} timeout={TimeoutPerMillion}ppm ice={CompletionErrorPerMillion}ppm fetch={FetchErrorPerMillion}ppm " +
        $"deadSids=[{string.Join(",", TimeoutSourceIds)}] timeoutAt=[{string.Join(",", TimeoutOrdinals)}] " +
        $"iceAt=[{string.Join(",", CompletionErrorOrdinals)}] fetchAt=[{string.Join(",", FetchErrorOrdinals)}]";
}

/// <summary>
/// A VT-d differential scenario: a capability preset, a fault plan, the guest's set-up (queue width and size, queue
/// base, translation mode, interrupt masks) and the steps.
/// </summary>
public sealed record VtdScenario(int Preset, VtdFaults Faults, bool Wide, int QueueSize, ulong QueueBase, int TranslationMode,
    bool MaskFaults, bool MaskCompletions, ImmutableArray<VtdStep> Steps)
{
    /// <summary>Capability presets: everything on, no scalable mode, no device TLB or interrupt remapping, no DIT or PDS
    /// with small MAMV/MHMV and a 39-bit HAW, no PASID or read draining.</summary>
    public static VtdOptions Options(int preset) => preset switch
    {
        1 => new VtdOptions { ScalableMode = false },
        2 => new VtdOptions { DeviceTlb = false, InterruptRemapping = false },
        3 => new VtdOptions { DeviceTlbThrottling = false, PageRequestDrain = false, MaxAddressMask = 4, MaxHandleMask = 3, HostAddressWidth = 39 },
        4 => new VtdOptions { Pasid = false, DrainReads = false, CachingMode = true },
        _ => new VtdOptions(),
    };

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"preset {Preset}, {Faults}, {(Wide ? 256 : 128)}-bit, QS={QueueSize}, base=0x{QueueBase:X}, TTM={TranslationMode}, ");
        sb.Append(CultureInfo.InvariantCulture, $"FECTL.IM={MaskFaults}, IECTL.IM={MaskCompletions}");
        for (int i = 0; i < Steps.Length; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\n  #{i} {Steps[i]}");
        }

        return sb.ToString();
    }
}

/// <summary>
/// Runs a <see cref="VtdScenario"/> on <see cref="VtdIommu"/> and on <see cref="ReferenceVtd"/> side by side, each with
/// its own copy of guest memory, and reports the first disagreement (null when there is none): every register dword of
/// the window, the MSIs, guest memory, fetch and device-TLB ordinals, the three caches, and the records a notifier of
/// the fast unit's engine received (against <see cref="ReferenceVtd.Records"/>), after every step.
/// </summary>
public static class VtdDifferential
{
    /// <summary>Where the queue's two pages live.</summary>
    public const ulong QueueRegion = 0x10_0000;

    /// <summary>Where wait statuses are written.</summary>
    public const ulong StatusRegion = 0x20_0000;

    /// <summary>Unmapped guest memory.</summary>
    public const ulong Unmapped = 0x90_0000;

    private const uint FeAddress = 0xFEE0_0000, IeAddress = 0xFEE0_1000;

    /// <summary>The capabilities of <paramref name="capabilities"/> with the host's interrupt sink, fault plan and caches.</summary>
    public static VtdOptions WithHost(VtdOptions capabilities, Action<ulong, uint>? msi, FaultPlan? plan, EngineOptions? engine) => new()
    {
        ScalableMode = capabilities.ScalableMode,
        Pasid = capabilities.Pasid,
        DeviceTlb = capabilities.DeviceTlb,
        DeviceTlbThrottling = capabilities.DeviceTlbThrottling,
        PageRequestDrain = capabilities.PageRequestDrain,
        InterruptRemapping = capabilities.InterruptRemapping,
        DrainReads = capabilities.DrainReads,
        DrainWrites = capabilities.DrainWrites,
        CachingMode = capabilities.CachingMode,
        MaxAddressMask = capabilities.MaxAddressMask,
        MaxHandleMask = capabilities.MaxHandleMask,
        HostAddressWidth = capabilities.HostAddressWidth,
        FaultPlan = plan,
        Engine = engine,
        Msi = msi,
    };

    /// <summary>Runs the scenario; null when both units agree on everything after every step.</summary>
    public static string? Run(VtdScenario s)
    {
        byte[] fastQueue = new byte[8192], fastStatus = new byte[4096];
        byte[] refQueue = new byte[8192], refStatus = new byte[4096];
        var memory = new GuestMemory();
        memory.Map(QueueRegion, fastQueue);
        memory.Map(StatusRegion, fastStatus);
        var refMemory = new ReferenceGuestMemory();
        refMemory.Map(QueueRegion, refQueue);
        refMemory.Map(StatusRegion, refStatus);

        var fastMsis = new List<(ulong, uint)>();
        VtdOptions preset = VtdScenario.Options(s.Preset);
        FaultPlan plan = s.Faults.Build();
        VtdOptions options = WithHost(preset, (a, d) => fastMsis.Add((a, d)), plan,
            new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 });
        using var fast = new VtdIommu(memory, options);
        var reference = new ReferenceVtd(refMemory, options, new ReferenceEngine(plan));
        var records = new Scenarios.RecordingNotifier();
        using NotifierSubscription subscription = fast.Engine.Notifiers.Subscribe(records);

        void Both(uint offset, ulong value, int size)
        {
            fast.WriteRegister(offset, value, size);
            reference.Write(offset, value, size);
        }

        // The guest's set-up.
        Both(Feaddr, FeAddress, 4);
        Both(Fedata, 0x41, 4);
        Both(Ieaddr, IeAddress, 4);
        Both(Iedata, 0x42, 4);
        Both(Fectl, s.MaskFaults ? InterruptMask : 0, 4);
        Both(Iectl, s.MaskCompletions ? InterruptMask : 0, 4);
        if (s.TranslationMode != 0)
        {
            Both(Rtaddr, 0x30_0000UL | ((ulong)(uint)s.TranslationMode << RtaddrTtmShift), 8);
            Both(Gcmd, Srtp, 4);
        }

        Both(Iqt, 0, 4);
        Both(Iqa, s.QueueBase | (s.Wide ? IqaDw : 0) | (uint)s.QueueSize, 8);
        Both(Gcmd, Qie | (s.TranslationMode != 0 ? Srtp : 0), 4);
        string? why = Compare(fast, reference, fastMsis, fastQueue, refQueue, fastStatus, refStatus);
        if (why is not null)
        {
            return $"set-up: {why}";
        }

        for (int i = 0; i < s.Steps.Length; i++)
        {
            switch (s.Steps[i])
            {
                case VtdSubmit submit:
                    Submit(fast.ReadRegister(Iqa, 8), fast.ReadRegister(Iqt, 8), submit.Descriptors, fastQueue, v => fast.WriteRegister(Iqt, v, 4));
                    Submit(reference.Read(Iqa, 8), reference.Read(Iqt, 8), submit.Descriptors, refQueue, v => reference.Write(Iqt, v, 4));
                    break;
                case VtdWrite w:
                    Both(w.Offset, w.Value, w.Size);
                    break;
                case VtdRecover:
                    Recover(fast.ReadRegister(Iqa, 8), fast.ReadRegister(Iqh, 8), fast.ReadRegister(Fsts, 4), fastQueue);
                    Recover(reference.Read(Iqa, 8), reference.Read(Iqh, 8), reference.Read(Fsts, 4), refQueue);
                    Both(Fsts, Iqe | Ice | Ite, 4);
                    break;
                case VtdFill f:
                    if (f.Iotlb is TranslationEntry t)
                    {
                        FillResult a = fast.Engine.Iotlb.Fill(t), b = reference.Engine.FillIotlb(t);
                        if (a != b)
                        {
                            return $"step #{i} {s.Steps[i]}: fill {a} vs {b}";
                        }
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

            why = Compare(fast, reference, fastMsis, fastQueue, refQueue, fastStatus, refStatus) ?? records.Compare(reference.Records);
            if (why is not null)
            {
                return $"step #{i} {s.Steps[i]}:\n  {why}";
            }
        }

        return null;
    }

    /// <summary>Writes the descriptors into the queue (as the guest sees its geometry in IQA) and rings the doorbell.</summary>
    private static void Submit(ulong iqa, ulong iqt, ImmutableArray<VtdDescriptor> descriptors, byte[] queue, Action<ulong> ring)
    {
        int width = (iqa & IqaDw) != 0 ? 32 : 16;
        ulong queueBase = iqa & ~0xFFFUL;
        int slots = (4096 << (int)(iqa & 7)) / width;
        int slot = (int)(iqt / (ulong)width) % slots;
        foreach (VtdDescriptor d in descriptors)
        {
            ulong address = queueBase + (ulong)(slot * width);
            if (address >= QueueRegion && address + (ulong)width <= QueueRegion + (ulong)queue.Length)
            {
                d.Write(queue.AsSpan((int)(address - QueueRegion), width));
            }

            slot = (slot + 1) % slots;
        }

        ring((ulong)(slot * width));
    }

    private static void Recover(ulong iqa, ulong iqh, ulong fsts, byte[] queue)
    {
        if ((fsts & Iqe) == 0)
        {
            return;
        }

        int width = (iqa & IqaDw) != 0 ? 32 : 16;
        ulong address = (iqa & IqaBaseMask) + iqh;
        if (address >= QueueRegion && address + (ulong)width <= QueueRegion + (ulong)queue.Length)
        {
            VtdDescriptor.Wait(statusWrite: false, interrupt: false, fence: true).Write(queue.AsSpan((int)(address - QueueRegion), width));
        }
    }

    private static string? Compare(VtdIommu fast, ReferenceVtd reference, List<(ulong, uint)> fastMsis,
        byte[] fastQueue, byte[] refQueue, byte[] fastStatus, byte[] refStatus)
    {
        for (uint offset = 0; offset < 0x240; offset += 4)
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

        if (!fastQueue.AsSpan().SequenceEqual(refQueue) || !fastStatus.AsSpan().SequenceEqual(refStatus))
        {
            return "guest memory differs";
        }

        if (fast.DescriptorFetches != reference.Fetches)
        {
            return $"fetches: fast {fast.DescriptorFetches}, reference {reference.Fetches}";
        }

        return Scenarios.Differential.CompareCaches(fast.Engine, reference.Engine);
    }
}
