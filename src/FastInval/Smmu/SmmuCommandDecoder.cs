namespace FastInval.Smmu;

/// <summary>Command-queue errors, in the SMMU_CMDQ_CONS.ERR encoding (spec/smmuv3-command-queue.md §3.2).</summary>
public enum SmmuCommandError : byte
{
    /// <summary>No error.</summary>
    None = 0,

    /// <summary>CERROR_ILL: unknown opcode, a command for an absent feature, a non-zero reserved field or an illegal combination.</summary>
    Illegal = 1,

    /// <summary>CERROR_ABT: the command fetch from memory aborted.</summary>
    Abort = 2,

    /// <summary>CERROR_ATC_INV_SYNC: a CMD_SYNC could not complete earlier ATC invalidations (ATS completion time-out).</summary>
    AtcInvalidationSync = 3,
}

/// <summary>What a decoded command asks for.</summary>
public enum SmmuCommandKind : byte
{
    /// <summary>Rejected: see <see cref="SmmuDecodedCommand.Error"/>.</summary>
    Rejected = 0,

    /// <summary>An invalidation: execute <see cref="SmmuDecodedCommand.Descriptor"/>.</summary>
    Invalidation = 1,

    /// <summary>CMD_SYNC: complete everything before it and signal as CS says.</summary>
    Sync = 2,

    /// <summary>CMD_PREFETCH_*: a hint; nothing to do.</summary>
    Prefetch = 3,

    /// <summary>CMD_PRI_RESP.</summary>
    PriResponse = 4,

    /// <summary>CMD_RESUME.</summary>
    Resume = 5,

    /// <summary>CMD_STALL_TERM.</summary>
    StallTerminate = 6,
}

/// <summary>The decoder's answer for one command.</summary>
public readonly record struct SmmuDecodedCommand(SmmuCommandKind Kind, SmmuCommandError Error, InvalidationDescriptor Descriptor)
{
    internal static SmmuDecodedCommand Illegal => new(SmmuCommandKind.Rejected, SmmuCommandError.Illegal, default);

    internal static SmmuDecodedCommand Of(SmmuCommandKind kind) => new(kind, SmmuCommandError.None, default);

    internal static SmmuDecodedCommand Invalidate(in InvalidationDescriptor d) => new(SmmuCommandKind.Invalidation, SmmuCommandError.None, d);
}

/// <summary>
/// Validates one SMMUv3 command against the unit's features and turns each invalidation into the engine's
/// <see cref="InvalidationDescriptor"/>. Shared by the command queue and by iommufd's ARM vIOMMU invalidation.
/// Never throws: a malformed command is <see cref="SmmuCommandError.Illegal"/>.
/// </summary>
/// <remarks>
/// <para><b>Legality</b> (spec/smmuv3-command-queue.md §1–§2, Arm IHI 0070 §4.1–4.7): an unknown or Secure/EL3/EL2/MPAM
/// opcode, a command for an absent feature (CFGI_CD*, TLBI_NH_* without stage 1; S12_VMALL, S2_IPA without stage 2;
/// ATC_INV without ATS; PRI_RESP without PRI; RESUME/STALL_TERM without stalling), SSec = 1 on this Non-secure queue,
/// CMD_SYNC with CS = 0b11, PRI_RESP with Resp = 0b11, ATC_INV with Size &gt; 52, and the reserved range combination
/// (TG ≠ 0, NUM = SCALE = 0 and TTL = 0, where TG = 16 KiB with TTL = 1 counts as TTL = 0 without LPA2) are illegal.
/// With <see cref="SmmuFeatures.StrictReservedFields"/>, so is any non-zero bit outside the command's fields, including
/// NUM/SCALE/TG/TTL without range invalidation or with TG = 0, the upper VMID/ASID byte without 16-bit support, a VMID
/// in TLBI_NH_* without stage 2, SSV without substreams, Global without SSV, and TTL128 (no 128-bit descriptors).</para>
/// <para><b>Scopes</b>: CFGI_STE / CFGI_STE_RANGE / CFGI_ALL → STEs and CDs cached through the StreamIDs (§4.3.1: CFGI_STE
/// also invalidates every CD cached using that StreamID); CFGI_CD → one CD (StreamID, SubstreamID); CFGI_CD_ALL → every CD
/// of the StreamID; TLBI_NH_ALL → stage-1 and nested entries of the VMID, global ones included; TLBI_NH_ASID → non-global
/// ones of (VMID, ASID); TLBI_NH_VA → (VMID, ASID) plus global entries of the VMID over the range; TLBI_NH_VAA → every ASID
/// of the VMID over the range; TLBI_S12_VMALL → every stage of the VMID; TLBI_S2_IPA → stage-2 entries of the VMID over
/// the IPA range (combined entries need not be touched, §2.1); TLBI_NSNH_ALL → everything. Without stage 2 the VMID is
/// not matched. A range is Address .. Address + (NUM+1)·2^SCALE·granule − 1 (saturating at the top; no wrap) with TG
/// and TTL as hints and Leaf as the leaf hint; TG = 0 is the 4 KiB page at Address (every entry containing it).
/// ATC_INV → the device TLB of StreamID over the naturally aligned 4 KiB·2^Size block (Size 52 = everything), for
/// SubstreamID when SSV = 1 (Global adds global entries) or as a request without PASID when SSV = 0.</para>
/// </remarks>
public static class SmmuCommandDecoder
{
    // Field sets of the reserved-field checks, from the one layout table (SmmuCommandLayout).
    private const ulong Global = SmmuCommandLayout.GlobalMask;
    private const ulong SSec = SmmuCommandLayout.SSecMask;
    private const ulong Ssv = SmmuCommandLayout.SsvMask;
    private const ulong Ssid = SmmuCommandLayout.SubstreamIdMask;
    private const ulong Sid = SmmuCommandLayout.StreamIdMask;
    private const ulong Vmid = SmmuCommandLayout.VmidMask;
    private const ulong Asid = SmmuCommandLayout.AsidMask;
    private const ulong Num = SmmuCommandLayout.NumMask;
    private const ulong Scale = SmmuCommandLayout.ScaleMask;
    private const ulong ResumeAction = SmmuCommandLayout.CompletionSignalMask; // RESUME's Action shares CS's bits
    private const ulong SyncFields = SmmuCommandLayout.CompletionSignalMask | SmmuCommandLayout.MsiShareabilityMask |
                                     SmmuCommandLayout.MsiAttributesMask | SmmuCommandLayout.MsiDataMask;
    private const ulong Leaf = SmmuCommandLayout.LeafMask;
    private const ulong RangeField = SmmuCommandLayout.RangeMask;
    private const ulong AtcSize = SmmuCommandLayout.AtcSizeMask;
    private const ulong Ttl128 = SmmuCommandLayout.Ttl128Mask;
    private const ulong Ttl = SmmuCommandLayout.TtlMask;
    private const ulong Tg = SmmuCommandLayout.TranslationGranuleMask;
    private const ulong VaAddress = SmmuCommandLayout.AddressMask;
    private const ulong IpaAddress = SmmuCommandLayout.IpaAddressMask;
    private const ulong MsiAddress = SmmuCommandLayout.MsiAddressMask;
    private const ulong PriFields = SmmuCommandLayout.PrgIndexMask | SmmuCommandLayout.PriResponseMask;
    private const ulong StallTag = SmmuCommandLayout.StallTagMask;
    private const ulong RangeHints = Leaf | Ttl128 | Ttl | Tg;

    /// <summary>Decodes and validates one command.</summary>
    public static SmmuDecodedCommand Decode(in SmmuCommand command, SmmuFeatures features)
    {
        ArgumentNullException.ThrowIfNull(features);
        ulong dw0 = command.Dword0;
        ulong dw1 = command.Dword1;
        bool strict = features.StrictReservedFields;
        switch ((SmmuOpcode)command.Opcode)
        {
            case SmmuOpcode.PrefetchConfig:
                return Fields(dw0, dw1, SSec | Ssv | Ssid | Sid, 0, strict) && !command.SSec && SubstreamsOk(command, features)
                    ? SmmuDecodedCommand.Of(SmmuCommandKind.Prefetch) : SmmuDecodedCommand.Illegal;
            case SmmuOpcode.PrefetchAddr:
                // DW1 carries Size, Stride, NS and the address; a hint, so DW1 is not checked.
                return Fields(dw0, 0, SSec | Ssv | Ssid | Sid, 0, strict) && !command.SSec && SubstreamsOk(command, features)
                    ? SmmuDecodedCommand.Of(SmmuCommandKind.Prefetch) : SmmuDecodedCommand.Illegal;
            case SmmuOpcode.CfgiSte:
                if (!Fields(dw0, dw1, SSec | Sid, Leaf, strict) || command.SSec)
                {
                    return SmmuDecodedCommand.Illegal;
                }

                return SmmuDecodedCommand.Invalidate(InvalidationDescriptor.ConfigSources(
                    ConfigKinds.StreamTableEntry | ConfigKinds.ContextDescriptor, command.StreamId, command.StreamId));
            case SmmuOpcode.CfgiSteRange:
            {
                if (!Fields(dw0, dw1, SSec | Sid, RangeField, strict) || command.SSec)
                {
                    return SmmuDecodedCommand.Illegal;
                }

                const ConfigKinds kinds = ConfigKinds.StreamTableEntry | ConfigKinds.ContextDescriptor;
                if (command.Range == 31)
                {
                    return SmmuDecodedCommand.Invalidate(InvalidationDescriptor.ConfigAll(kinds)); // CMD_CFGI_ALL
                }

                uint span = (2u << command.Range) - 1;            // 2^(Range+1) StreamIDs, aligned to their size
                uint first = command.StreamId & ~span;
                return SmmuDecodedCommand.Invalidate(InvalidationDescriptor.ConfigSources(kinds, first, first + span));
            }

            case SmmuOpcode.CfgiCd:
                if (!features.Stage1 || !Fields(dw0, dw1, SSec | Ssid | Sid, Leaf, strict) || command.SSec)
                {
                    return SmmuDecodedCommand.Illegal;
                }

                return SmmuDecodedCommand.Invalidate(InvalidationDescriptor.ConfigAddressSpace(
                    ConfigKinds.ContextDescriptor, command.SubstreamId, sourceId: command.StreamId));
            case SmmuOpcode.CfgiCdAll:
                if (!features.Stage1 || !Fields(dw0, dw1, SSec | Sid, 0, strict) || command.SSec)
                {
                    return SmmuDecodedCommand.Illegal;
                }

                return SmmuDecodedCommand.Invalidate(InvalidationDescriptor.ConfigSources(
                    ConfigKinds.ContextDescriptor, command.StreamId, command.StreamId));
            case SmmuOpcode.TlbiNhAll:
                if (!features.Stage1 || !Fields(dw0, dw1, Vmid, 0, strict) || !VmidOk(command, features, strict))
                {
                    return SmmuDecodedCommand.Illegal;
                }

                return SmmuDecodedCommand.Invalidate(features.Stage2
                    ? InvalidationDescriptor.IotlbDomain(command.Vmid, StageMask.FirstStage)
                    : InvalidationDescriptor.IotlbAll(StageMask.FirstStage));
            case SmmuOpcode.TlbiNhAsid:
                if (!features.Stage1 || !Fields(dw0, dw1, Vmid | Asid, 0, strict) || !VmidOk(command, features, strict) ||
                    !AsidOk(command, features, strict))
                {
                    return SmmuDecodedCommand.Illegal;
                }

                return SmmuDecodedCommand.Invalidate(new InvalidationDescriptor(InvalidationScope.Iotlb,
                    InvalidationFlags.MatchAddressSpace | (features.Stage2 ? InvalidationFlags.MatchDomain : 0),
                    StageMask.FirstStage, 0, Granule.Any, ConfigKinds.None, features.Stage2 ? command.Vmid : (ushort)0,
                    command.Asid, 0, 0, 0));
            case SmmuOpcode.TlbiNhVa:
            case SmmuOpcode.TlbiNhVaa:
            {
                bool byAsid = command.Opcode == (byte)SmmuOpcode.TlbiNhVa;
                if (!features.Stage1 || !Fields(dw0, dw1, Num | Scale | Vmid | (byAsid ? Asid : 0), RangeHints | VaAddress, strict) ||
                    !VmidOk(command, features, strict) || (byAsid && !AsidOk(command, features, strict)) ||
                    !TryRange(command, command.Address, features, strict, out ulong first, out ulong last, out byte level, out Granule granule))
                {
                    return SmmuDecodedCommand.Illegal;
                }

                InvalidationFlags flags = (features.Stage2 ? InvalidationFlags.MatchDomain : 0) |
                                          (byAsid ? InvalidationFlags.MatchAddressSpace | InvalidationFlags.IncludeGlobal : 0) |
                                          (command.Leaf ? InvalidationFlags.LeafOnly : 0);
                return SmmuDecodedCommand.Invalidate(new InvalidationDescriptor(InvalidationScope.IotlbRange, flags,
                    StageMask.FirstStage, level, granule, ConfigKinds.None, features.Stage2 ? command.Vmid : (ushort)0,
                    byAsid ? command.Asid : 0u, 0, first, last));
            }

            case SmmuOpcode.TlbiS12Vmall:
                if (!features.Stage2 || !Fields(dw0, dw1, Vmid, 0, strict) || !VmidOk(command, features, strict))
                {
                    return SmmuDecodedCommand.Illegal;
                }

                return SmmuDecodedCommand.Invalidate(InvalidationDescriptor.IotlbDomain(command.Vmid, StageMask.All));
            case SmmuOpcode.TlbiS2Ipa:
            {
                if (!features.Stage2 || !Fields(dw0, dw1, Num | Scale | Vmid, RangeHints | IpaAddress, strict) ||
                    !VmidOk(command, features, strict) ||
                    !TryRange(command, dw1 & IpaAddress, features, strict, out ulong first, out ulong last, out byte level, out Granule granule))
                {
                    return SmmuDecodedCommand.Illegal;
                }

                return SmmuDecodedCommand.Invalidate(InvalidationDescriptor.IotlbRangeAllAddressSpaces(command.Vmid, first, last,
                    StageMask.Stage2, command.Leaf, level, granule));
            }

            case SmmuOpcode.TlbiNsnhAll:
                return Fields(dw0, dw1, 0, 0, strict)
                    ? SmmuDecodedCommand.Invalidate(InvalidationDescriptor.IotlbAll(StageMask.All))
                    : SmmuDecodedCommand.Illegal;
            case SmmuOpcode.AtcInv:
            {
                if (!features.Ats || !Fields(dw0, dw1, Global | Ssv | Ssid | Sid, AtcSize | VaAddress, strict) ||
                    !SubstreamsOk(command, features) || command.AtcSize > 52 ||
                    (strict && command.Global && !command.SubstreamValid))
                {
                    return SmmuDecodedCommand.Illegal;
                }

                ulong first = 0, last = ulong.MaxValue;
                if (command.AtcSize < 52)
                {
                    ulong span = (1UL << (12 + command.AtcSize)) - 1;
                    first = command.Address & ~span;
                    last = first + span;
                }

                return SmmuDecodedCommand.Invalidate(command.SubstreamValid
                    ? InvalidationDescriptor.DeviceTlb(command.StreamId, command.SubstreamId, first, last, includeGlobal: command.Global)
                    : InvalidationDescriptor.DeviceTlb(command.StreamId, AddressSpace.None, first, last));
            }

            case SmmuOpcode.PriResp:
                return features.Pri && Fields(dw0, dw1, Ssv | Ssid | Sid, PriFields, strict) && SubstreamsOk(command, features) &&
                       command.PriResponse != 3
                    ? SmmuDecodedCommand.Of(SmmuCommandKind.PriResponse) : SmmuDecodedCommand.Illegal;
            case SmmuOpcode.Resume:
                return features.Stall && Fields(dw0, dw1, SSec | ResumeAction | Sid, StallTag, strict) && !command.SSec
                    ? SmmuDecodedCommand.Of(SmmuCommandKind.Resume) : SmmuDecodedCommand.Illegal;
            case SmmuOpcode.StallTerm:
                return features.Stall && Fields(dw0, dw1, SSec | Sid, 0, strict) && !command.SSec
                    ? SmmuDecodedCommand.Of(SmmuCommandKind.StallTerminate) : SmmuDecodedCommand.Illegal;
            case SmmuOpcode.Sync:
                return Fields(dw0, dw1, SyncFields, MsiAddress, strict) && command.CompletionSignal != 3
                    ? SmmuDecodedCommand.Of(SmmuCommandKind.Sync) : SmmuDecodedCommand.Illegal;
            default:
                // Reserved opcodes, CFGI_VMS_PIDM (no MPAM), EL2 (no HYP), EL3 and Secure variants (Non-secure queue).
                return SmmuDecodedCommand.Illegal;
        }
    }

    /// <summary>Only the command's own fields (besides the opcode) may be non-zero, when reserved fields are checked.</summary>
    private static bool Fields(ulong dw0, ulong dw1, ulong allowed0, ulong allowed1, bool strict) =>
        !strict || ((dw0 & ~(allowed0 | SmmuCommandLayout.OpcodeMask)) == 0 && (dw1 & ~allowed1) == 0);

    private static bool SubstreamsOk(in SmmuCommand c, SmmuFeatures f) => !c.SubstreamValid || f.SubstreamIdBits > 0;

    private static bool VmidOk(in SmmuCommand c, SmmuFeatures f, bool strict) =>
        !strict || (f.Stage2 ? f.Vmid16 || c.Vmid <= 0xFF : c.Vmid == 0);

    private static bool AsidOk(in SmmuCommand c, SmmuFeatures f, bool strict) => !strict || f.Asid16 || c.Asid <= 0xFF;

    /// <summary>Decodes the address range, granule and level hints of a TLBI; false for an illegal combination.</summary>
    private static bool TryRange(in SmmuCommand c, ulong address, SmmuFeatures f, bool strict,
        out ulong first, out ulong last, out byte level, out Granule granule)
    {
        first = address;
        last = address | 0xFFF;
        level = 0;
        granule = Granule.Any;
        int tg = c.TranslationGranule;
        bool rangeFields = c.Num != 0 || c.Scale != 0 || c.Ttl != 0 || c.Ttl128;
        if (!f.RangeInvalidation || tg == 0)
        {
            // NUM, SCALE, TG (without RIL) and TTL are RES0: a non-range invalidation of the page at Address.
            return !strict || (!rangeFields && (f.RangeInvalidation || tg == 0));
        }

        if (strict && c.Ttl128)
        {
            return false; // no 128-bit translation tables here
        }

        int ttl = tg == 2 && c.Ttl == 1 ? 0 : c.Ttl; // 16 KiB level 1 exists only with LPA2 (DS): treated as 0
        if (c.Num == 0 && c.Scale == 0 && ttl == 0)
        {
            return false; // the reserved combination of §4.4.1.1
        }

        int granuleLog2 = 10 + (2 * tg);
        ulong bytes = (ulong)(c.Num + 1) << (c.Scale + granuleLog2);
        last = address > ulong.MaxValue - (bytes - 1) ? ulong.MaxValue : address + (bytes - 1);
        level = (byte)ttl;
        granule = (Granule)tg;
        return true;
    }
}
