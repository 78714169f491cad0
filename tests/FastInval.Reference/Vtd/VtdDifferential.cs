using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using FastInval.Reference.Scenarios;
using FastInval.Vtd;
using static FastInval.Vtd.VtdRegisters;

namespace FastInval.Reference.Vtd;

/// <summary>The guest writes <paramref name="Descriptors"/> into the queue slots from IQT on (wrapping) and rings the
/// doorbell once with the new tail.</summary>
public sealed record VtdSubmit(ImmutableArray<VtdDescriptor> Descriptors) : QueueStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Submit({string.Join(", ", Descriptors.Select(d => $"new VtdDescriptor({Hex(d.Qw0)}, {Hex(d.Qw1)}, {Hex(d.Qw2)}, {Hex(d.Qw3)})"))})";

    private static string Hex(ulong v) => "0x" + v.ToString("X", CultureInfo.InvariantCulture);
}

/// <summary>
/// A VT-d differential scenario: a capability preset, a fault plan, the guest's set-up (queue width and size, queue
/// base, translation mode, interrupt masks) and the steps.
/// </summary>
public sealed record VtdScenario(int Preset, QueueFaults Faults, bool Wide, int QueueSize, ulong QueueBase, int TranslationMode,
    bool MaskFaults, bool MaskCompletions, ImmutableArray<QueueStep> Steps)
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
    public static VtdOptions WithHost(VtdOptions capabilities, Action<ulong, uint>? msi, FaultPlan? plan, EngineOptions? engine,
        DeviceTlbSinkOptions? sink = null) => new()
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
            DeviceTlbSink = sink ?? capabilities.DeviceTlbSink,
        };

    /// <summary>Runs the scenario; null when both units agree on everything after every step. With
    /// <paramref name="planAsSink"/> the fast unit's device-TLB invalidations go to the scenario's fault plan as its
    /// device-TLB sink (the engine keeps the plan for fetch errors), so the sink path is checked against the reference.</summary>
    public static string? Run(VtdScenario s, bool planAsSink = false)
    {
        using var pair = new Pair(s, planAsSink);
        var records = new RecordingNotifier { OrderInsensitive = planAsSink };
        using NotifierSubscription subscription = pair.Fast.Engine.Notifiers.Subscribe(records);
        pair.SetUp(s);
        return QueueDifferential.Run(pair, s.Steps, records);
    }

    /// <summary>The two units, each over its own copy of guest memory.</summary>
    private sealed class Pair : IQueuePair, IDisposable
    {
        private readonly byte[] _fastQueue = new byte[8192], _fastStatus = new byte[4096];
        private readonly byte[] _refQueue = new byte[8192], _refStatus = new byte[4096];
        private readonly List<(ulong, uint)> _fastMsis = [];
        private readonly ReferenceVtd _reference;

        public Pair(VtdScenario s, bool planAsSink)
        {
            var memory = new GuestMemory();
            memory.Map(QueueRegion, _fastQueue);
            memory.Map(StatusRegion, _fastStatus);
            var refMemory = new ReferenceGuestMemory();
            refMemory.Map(QueueRegion, _refQueue);
            refMemory.Map(StatusRegion, _refStatus);
            FaultPlan plan = s.Faults.Build();
            VtdOptions options = WithHost(VtdScenario.Options(s.Preset), (a, d) => _fastMsis.Add((a, d)), plan,
                new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
                planAsSink ? new DeviceTlbSinkOptions { Sink = plan } : null);
            Fast = new VtdIommu(memory, options);
            _reference = new ReferenceVtd(refMemory, options, new ReferenceEngine(plan));
        }

        public VtdIommu Fast { get; }

        public InvalidationEngine FastEngine => Fast.Engine;

        public ReferenceEngine ReferenceEngine => _reference.Engine;

        public IReadOnlyList<InvalidationRecord> ReferenceRecords => _reference.Records;

        /// <summary>The guest's set-up.</summary>
        public void SetUp(VtdScenario s)
        {
            Write(Feaddr, FeAddress, 4);
            Write(Fedata, 0x41, 4);
            Write(Ieaddr, IeAddress, 4);
            Write(Iedata, 0x42, 4);
            Write(Fectl, s.MaskFaults ? InterruptMask : 0, 4);
            Write(Iectl, s.MaskCompletions ? InterruptMask : 0, 4);
            if (s.TranslationMode != 0)
            {
                Write(Rtaddr, 0x30_0000UL | ((ulong)(uint)s.TranslationMode << RtaddrTtmShift), 8);
                Write(Gcmd, Srtp, 4);
            }

            Write(Iqt, 0, 4);
            Write(Iqa, s.QueueBase | (s.Wide ? IqaDw : 0) | (uint)s.QueueSize, 8);
            Write(Gcmd, Qie | (s.TranslationMode != 0 ? Srtp : 0), 4);
        }

        public void Write(uint offset, ulong value, int size)
        {
            Fast.WriteRegister(offset, value, size);
            _reference.Write(offset, value, size);
        }

        public void Apply(QueueStep entry)
        {
            if (entry is VtdSubmit submit)
            {
                Submit(Fast.ReadRegister(Iqa, 8), Fast.ReadRegister(Iqt, 8), submit.Descriptors, _fastQueue, v => Fast.WriteRegister(Iqt, v, 4));
                Submit(_reference.Read(Iqa, 8), _reference.Read(Iqt, 8), submit.Descriptors, _refQueue, v => _reference.Write(Iqt, v, 4));
            }
        }

        public void Recover()
        {
            VtdDifferential.Recover(Fast.ReadRegister(Iqa, 8), Fast.ReadRegister(Iqh, 8), Fast.ReadRegister(Fsts, 4), _fastQueue);
            VtdDifferential.Recover(_reference.Read(Iqa, 8), _reference.Read(Iqh, 8), _reference.Read(Fsts, 4), _refQueue);
            Write(Fsts, Iqe | Ice | Ite, 4);
        }

        public string? CompareState() =>
            QueueDifferential.CompareRegisters(o => Fast.ReadRegister(o, 4), o => _reference.Read(o, 4), 0x240) ??
            QueueDifferential.CompareSequence("MSIs", _fastMsis, _reference.Messages) ??
            QueueDifferential.CompareMemory((_fastQueue, _refQueue), (_fastStatus, _refStatus)) ??
            (Fast.DescriptorFetches != _reference.Fetches ? $"fetches: fast {Fast.DescriptorFetches}, reference {_reference.Fetches}" : null);

        public void Dispose() => Fast.Dispose();
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
}
