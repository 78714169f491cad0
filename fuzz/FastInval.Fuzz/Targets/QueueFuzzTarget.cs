using FastInval.Reference.Scenarios;

namespace FastInval.Fuzz.Targets;

/// <summary>
/// The body every queue front end's differential target shares: decode the input into a scenario, run it through the
/// front end's differential against its reference model, and turn a disagreement, or any exception escaping the product,
/// into an <see cref="OracleException"/> that carries the scenario. An <see cref="OracleException"/> thrown inside passes
/// through as it is.
/// </summary>
/// <typeparam name="TScenario">The front end's scenario record.</typeparam>
public abstract class QueueFuzzTarget<TScenario> : IFuzzer
    where TScenario : class
{
    /// <inheritdoc/>
    public void FuzzTarget(ReadOnlySpan<byte> input)
    {
        TScenario scenario = DecodeScenario(input);
        string? disagreement;
        try
        {
            disagreement = Run(scenario);
        }
        catch (Exception e) when (e is not OracleException)
        {
            throw new OracleException($"exception {e.GetType().Name}: {e.Message}\nscenario: {scenario}", e);
        }

        if (disagreement is not null)
        {
            throw new OracleException($"{disagreement}\nscenario: {scenario}");
        }
    }

    /// <summary>Decodes an input into a scenario (never throws).</summary>
    protected abstract TScenario DecodeScenario(ReadOnlySpan<byte> input);

    /// <summary>Runs the scenario's differential; null when both sides agree throughout.</summary>
    protected abstract string? Run(TScenario scenario);

    /// <summary>The fault-plan rates of the input: when <paramref name="present"/>, a seed byte then the time-out,
    /// completion-error and fetch-error bytes (ppm = byte × 4000); else all zero.</summary>
    protected static (ulong Seed, uint Timeout, uint CompletionError, uint Fetch) Rates(ref FuzzInput input, bool present) =>
        present ? (input.Byte(), input.Byte() * 4000u, input.Byte() * 4000u, input.Byte() * 4000u) : default;

    /// <summary>A register-write step: offset u16 reduced by <paramref name="offsetModulo"/> and cut to
    /// <paramref name="offsetMask"/>, value u64, size byte (1, 2, 4, 8).</summary>
    protected static QueueWrite Write(ref FuzzInput input, uint offsetModulo, uint offsetMask)
    {
        uint offset = (input.UInt16() % offsetModulo) & offsetMask;
        ulong value = input.UInt64();
        int size = (input.Byte() % 4) switch { 0 => 1, 1 => 2, 2 => 4, _ => 8 };
        return new QueueWrite(offset, value, size);
    }

    /// <summary>An IOTLB leaf fill from palettes: stage byte, domain, address space (none for stage 2), size byte
    /// (4 KiB, 2 MiB, 1 GiB) and address aligned down to the size.</summary>
    protected static QueueFill IotlbFill(ref FuzzInput input, ReadOnlySpan<ushort> domains, ReadOnlySpan<uint> addressSpaces, ReadOnlySpan<ulong> addresses)
    {
        var stage = (TranslationStage)(1 << (input.Byte() % 3));
        ushort domain = input.Pick(domains);
        uint addressSpace = stage == TranslationStage.Stage2 ? AddressSpace.None : input.Pick(addressSpaces);
        byte size = (input.Byte() % 3) switch { 0 => 12, 1 => 21, _ => 30 };
        ulong a = input.Pick(addresses) & ~((1UL << size) - 1);
        return new QueueFill(TranslationEntry.Leaf(stage, domain, addressSpace, a, a, size), null, null);
    }

    /// <summary>A device-TLB fill from palettes: source id, then a byte (odd: no PASID) and an address space, and an address.</summary>
    protected static QueueFill DeviceTlbFill(ref FuzzInput input, ReadOnlySpan<uint> sources, ReadOnlySpan<uint> addressSpaces, ReadOnlySpan<ulong> addresses)
    {
        uint sid = input.Pick(sources);
        uint addressSpace = (input.Byte() & 1) != 0 ? AddressSpace.None : input.Pick(addressSpaces);
        ulong a = input.Pick(addresses);
        return new QueueFill(null, new DeviceTlbEntry(sid, addressSpace, a, a), null);
    }
}
