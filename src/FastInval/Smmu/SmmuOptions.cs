namespace FastInval.Smmu;

/// <summary>Wired interrupt outputs of an <see cref="SmmuV3"/>.</summary>
public enum SmmuInterrupt : byte
{
    /// <summary>The global-error interrupt (GERROR), when IRQ_CTRL.GERROR_IRQEN is set and no MSI is configured.</summary>
    GlobalError = 1,

    /// <summary>The CMD_SYNC completion output, asserted for every CMD_SYNC with CS = SIG_IRQ (Arm IHI 0070 §4.7.3).</summary>
    CommandSync = 2,

    /// <summary>A wake-up event to the PE: CMD_SYNC with CS = SIG_SEV on an SMMU with IDR0.SEV.</summary>
    Event = 3,
}

/// <summary>Capabilities, fault plan, engine and interrupt sinks of an <see cref="SmmuV3"/>.</summary>
/// <remarks>The defaults model a current server part: SMMUv3.1 (with v3.2's range invalidation), both stages, ATS,
/// MSI, SEV, 16-bit ASIDs and VMIDs, 20-bit SubstreamIDs, 16-bit StreamIDs, a command queue of up to 2^19 entries.</remarks>
public sealed class SmmuOptions
{
    /// <summary>Command legality and the IDR fields that follow from it (stages, RIL, ATS, PRI, stall, MSI, SEV, ASID16,
    /// VMID16, SSIDSIZE, strict reserved fields).</summary>
    public SmmuFeatures Features { get; init; } = new();

    /// <summary>IDR1.SIDSIZE: StreamID bits (0-32).</summary>
    public int StreamIdBits { get; init; } = 16;

    /// <summary>IDR1.CMDQS: the largest command queue, log2 of entries (0-19).</summary>
    public int MaxCommandQueueLog2 { get; init; } = 19;

    /// <summary>IDR5.OAS: output address size in bits (32, 36, 40, 42, 44, 48 or 52); SMMU-originated accesses (command
    /// fetches, MSIs) are truncated to it.</summary>
    public int OutputAddressBits { get; init; } = 48;

    /// <summary>Injected failures: ATC invalidation time-outs (decided by the engine) and command-fetch errors (decided by
    /// the unit with its own fetch ordinal). Null: the engine options' plan.</summary>
    public FaultPlan? FaultPlan { get; init; }

    /// <summary>Capacities and kernel of the unit's engine (default capacities when null).</summary>
    public EngineOptions? Engine { get; init; }

    /// <summary>Every MSI the SMMU writes: (address, data) of CMD_SYNC completions and GERROR interrupts.</summary>
    public Action<ulong, uint>? Msi { get; init; }

    /// <summary>Every wired interrupt or event the SMMU asserts.</summary>
    public Action<SmmuInterrupt>? WiredInterrupt { get; init; }

    /// <summary>Where CMD_ATC_INV goes: each becomes a request to the sink, answered later by the device, and a CMD_SYNC
    /// after it is held (CONS on it, no completion signal) until every earlier request is answered. A time-out (the
    /// sink's answer or <see cref="DeviceTlbSinkOptions.Timeout"/>) fails that CMD_SYNC with CERROR_ATC_INV_SYNC; a
    /// completion error removes the entries and is not reported, as the architecture has no error for it. Null (the
    /// default): the fault plan answers at once, inside the batch.</summary>
    public DeviceTlbSinkOptions? DeviceTlbSink { get; init; }
}
