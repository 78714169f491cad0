namespace FastInval.Smmu;

/// <summary>
/// The SMMUv3 capabilities that decide which commands are legal (the IDR0/IDR1/IDR3/IDR5 bits a command decoder needs).
/// The defaults model a current server part: SMMUv3.1 (AIDR 1) with v3.2's range invalidation, both stages, ATS, MSI,
/// SEV, 16-bit ASIDs and VMIDs, 20-bit SubstreamIDs; no PRI, no stalling, no EL2 (HYP, which v3.2 would require with
/// both stages), no MPAM, no Secure state.
/// </summary>
public sealed record SmmuFeatures
{
    /// <summary>IDR0.S1P: stage-1 translation.</summary>
    public bool Stage1 { get; init; } = true;

    /// <summary>IDR0.S2P: stage-2 translation.</summary>
    public bool Stage2 { get; init; } = true;

    /// <summary>IDR3.RIL: range invalidation and the TTL hint.</summary>
    public bool RangeInvalidation { get; init; } = true;

    /// <summary>IDR0.ATS: PCIe ATS (CMD_ATC_INV).</summary>
    public bool Ats { get; init; } = true;

    /// <summary>IDR0.PRI: page requests (CMD_PRI_RESP).</summary>
    public bool Pri { get; init; }

    /// <summary>IDR0.STALL_MODEL allows stalling (CMD_RESUME, CMD_STALL_TERM).</summary>
    public bool Stall { get; init; }

    /// <summary>IDR0.MSI: MSI signalling (CMD_SYNC with CS = SIG_IRQ writes an MSI).</summary>
    public bool Msi { get; init; } = true;

    /// <summary>IDR0.SEV: CMD_SYNC may signal an event (CS = SIG_SEV).</summary>
    public bool Sev { get; init; } = true;

    /// <summary>IDR0.ASID16: 16-bit ASIDs (else the upper 8 bits are RES0).</summary>
    public bool Asid16 { get; init; } = true;

    /// <summary>IDR0.VMID16: 16-bit VMIDs (else the upper 8 bits are RES0).</summary>
    public bool Vmid16 { get; init; } = true;

    /// <summary>IDR1.SSIDSIZE: SubstreamID bits (0 = no substreams: SSV must be 0).</summary>
    public int SubstreamIdBits { get; init; } = 20;

    /// <summary>Treat a non-zero RES0 field as CERROR_ILL (permitted by the architecture, spec §1.1; default on).
    /// When off, reserved fields are ignored as QEMU does.</summary>
    public bool StrictReservedFields { get; init; } = true;
}
