using System.Collections.Immutable;

namespace FastInval.Reference.Scenarios;

/// <summary>One step of a queue front end's differential scenario (VT-d, SMMUv3, …), applied to both units alike. The
/// steps every front end has are here; a front end adds its own submit step.</summary>
public abstract record QueueStep;

/// <summary>A register write (any offset and size, including bad ones).</summary>
public sealed record QueueWrite(uint Offset, ulong Value, int Size) : QueueStep
{
    /// <inheritdoc/>
    public override string ToString() => $"WriteRegister(0x{Offset:X}, 0x{Value:X}, {Size})";
}

/// <summary>The Linux driver's recovery from a queue error, as the front end's harness models it (VT-d: overwrite the
/// descriptor at IQH with a fenced no-op wait, then clear FSTS.IQE/ICE/ITE; SMMUv3: skip a CERROR_ILL command with a
/// CMD_SYNC, then acknowledge every active error).</summary>
public sealed record QueueRecover : QueueStep
{
    /// <inheritdoc/>
    public override string ToString() => "Recover()";
}

/// <summary>The host caches an entry (one of the three kinds; the others are null).</summary>
public sealed record QueueFill(TranslationEntry? Iotlb, DeviceTlbEntry? DeviceTlb, ConfigEntry? Config) : QueueStep
{
    /// <inheritdoc/>
    public override string ToString() => $"Fill({(object?)Iotlb ?? (object?)DeviceTlb ?? Config})";
}

/// <summary>Fault-plan settings of a queue scenario (fetch errors as well as device-TLB failures).</summary>
public sealed record QueueFaults(ulong Seed, uint TimeoutPerMillion, uint CompletionErrorPerMillion, uint FetchErrorPerMillion,
    ImmutableArray<uint> TimeoutSourceIds, ImmutableArray<ulong> TimeoutOrdinals, ImmutableArray<ulong> CompletionErrorOrdinals,
    ImmutableArray<ulong> FetchErrorOrdinals)
{
    /// <summary>No faults.</summary>
    public static QueueFaults None { get; } = new(0, 0, 0, 0, [], [], [], []);

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

/// <summary>A fast unit and its reference model, side by side, as one front end's harness drives them.</summary>
public interface IQueuePair
{
    /// <summary>The fast unit's engine.</summary>
    InvalidationEngine FastEngine { get; }

    /// <summary>The reference model's engine.</summary>
    ReferenceEngine ReferenceEngine { get; }

    /// <summary>The records the reference model says a notifier must have received so far.</summary>
    IReadOnlyList<InvalidationRecord> ReferenceRecords { get; }

    /// <summary>Writes a register of both units.</summary>
    void Write(uint offset, ulong value, int size);

    /// <summary>Applies a front-end step (its submit, <paramref name="entry"/>) to both units.</summary>
    void Apply(QueueStep entry);

    /// <summary>The driver's error recovery on both units.</summary>
    void Recover();

    /// <summary>The first disagreement of the architectural state (registers, interrupts, guest memory, ordinals), or null.</summary>
    string? CompareState();
}

/// <summary>
/// The step plumbing every queue differential shares: after the front end's set-up, each step is applied to both units
/// (fills go to both engines and must give the same result), then the units' state, their caches and the records a
/// notifier of the fast unit's engine received are compared. Reports the first disagreement, or null.
/// </summary>
public static class QueueDifferential
{
    /// <summary>Runs <paramref name="steps"/> on <paramref name="pair"/> (already set up); null when both agree after every step.</summary>
    public static string? Run(IQueuePair pair, ImmutableArray<QueueStep> steps, RecordingNotifier records)
    {
        string? why = Compare(pair, records);
        if (why is not null)
        {
            return $"set-up: {why}";
        }

        for (int i = 0; i < steps.Length; i++)
        {
            switch (steps[i])
            {
                case QueueWrite w:
                    pair.Write(w.Offset, w.Value, w.Size);
                    break;
                case QueueRecover:
                    pair.Recover();
                    break;
                case QueueFill f:
                    why = Fill(pair.FastEngine, pair.ReferenceEngine, f);
                    if (why is not null)
                    {
                        return $"step #{i} {steps[i]}: {why}";
                    }

                    break;
                default:
                    pair.Apply(steps[i]);
                    break;
            }

            why = Compare(pair, records);
            if (why is not null)
            {
                return $"step #{i} {steps[i]}:\n  {why}";
            }
        }

        return null;
    }

    /// <summary>Fills both engines alike; a message when their fill results differ.</summary>
    public static string? Fill(InvalidationEngine fast, ReferenceEngine reference, QueueFill f)
    {
        if (f.Iotlb is TranslationEntry t)
        {
            FillResult a = fast.Iotlb.Fill(t), b = reference.FillIotlb(t);
            if (a != b)
            {
                return $"fill {a} vs {b}";
            }
        }

        if (f.DeviceTlb is DeviceTlbEntry d)
        {
            fast.DeviceTlb.Fill(d);
            reference.FillDeviceTlb(d);
        }

        if (f.Config is ConfigEntry c)
        {
            fast.ConfigCache.Fill(c);
            reference.FillConfig(c);
        }

        return null;
    }

    /// <summary>Every 32-bit register in [0, <paramref name="end"/>) read from both sides; the first that differs.</summary>
    public static string? CompareRegisters(Func<uint, ulong> fast, Func<uint, ulong> reference, uint end)
    {
        for (uint offset = 0; offset < end; offset += 4)
        {
            ulong a = fast(offset), b = reference(offset);
            if (a != b)
            {
                return $"register 0x{offset:X}: fast 0x{a:X}, reference 0x{b:X}";
            }
        }

        return null;
    }

    /// <summary>Two sequences of observed events (MSIs, interrupts, …); a message naming <paramref name="what"/> when they differ.</summary>
    public static string? CompareSequence<T>(string what, IEnumerable<T> fast, IEnumerable<T> reference) =>
        fast.SequenceEqual(reference) ? null : $"{what}: fast [{string.Join(", ", fast)}], reference [{string.Join(", ", reference)}]";

    /// <summary>Guest memory regions of both sides, pairwise.</summary>
    public static string? CompareMemory(params (byte[] Fast, byte[] Reference)[] regions)
    {
        foreach ((byte[] a, byte[] b) in regions)
        {
            if (!a.AsSpan().SequenceEqual(b))
            {
                return "guest memory differs";
            }
        }

        return null;
    }

    private static string? Compare(IQueuePair pair, RecordingNotifier records) =>
        pair.CompareState() ?? Differential.CompareCaches(pair.FastEngine, pair.ReferenceEngine) ?? records.Compare(pair.ReferenceRecords);
}
