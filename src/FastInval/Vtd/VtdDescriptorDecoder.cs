using System.Numerics;
using System.Runtime.CompilerServices;

namespace FastInval.Vtd;

/// <summary>What one descriptor asks for.</summary>
internal enum VtdDecodeOutcome : byte
{
    /// <summary>Execute the engine descriptors written to the output (1 to <see cref="VtdDescriptorDecoder.MaxOutput"/>).</summary>
    Invalidation = 0,

    /// <summary>An invalidation wait: complete everything before it, then act on SW / IF.</summary>
    Wait = 1,

    /// <summary>An IQE: the queue stops on this descriptor with the given IQEI.</summary>
    Error = 2,
}

/// <summary>The translation-table mode the unit runs in: RTADDR.TTM as latched by the last GCMD.SRTP.</summary>
internal enum VtdTranslationMode : byte
{
    /// <summary>TTM = 00b (also before the first SRTP).</summary>
    Legacy = 0,

    /// <summary>TTM = 01b on a unit with ECAP.SMTS.</summary>
    Scalable = 1,

    /// <summary>TTM = 10b or 11b, or 01b without ECAP.SMTS: every descriptor is an IQE with IQEI 7.</summary>
    Invalid = 2,
}

/// <summary>The capability bits the decoder needs, taken once from <see cref="VtdOptions"/>.</summary>
internal readonly struct VtdCapabilities
{
    public readonly bool DeviceTlb;
    public readonly bool Pasid;
    public readonly bool Throttling;
    public readonly bool PageRequestDrain;
    public readonly bool InterruptRemapping;
    public readonly int MaxAddressMask;
    public readonly int MaxHandleMask;
    public readonly ulong HostAddressMask;

    public VtdCapabilities(VtdOptions o)
    {
        DeviceTlb = o.DeviceTlb;
        Pasid = o.ScalableMode && o.Pasid;            // ECAP.PASID needs scalable mode
        Throttling = o.DeviceTlb && o.DeviceTlbThrottling;
        PageRequestDrain = o.PageRequestDrain;
        InterruptRemapping = o.InterruptRemapping;
        MaxAddressMask = o.MaxAddressMask;
        MaxHandleMask = o.MaxHandleMask;
        HostAddressMask = o.HostAddressWidth >= 64 ? ulong.MaxValue : (1UL << o.HostAddressWidth) - 1;
    }
}

/// <summary>
/// Validates one VT-d invalidation descriptor and turns it into the engine's <see cref="InvalidationDescriptor"/>s.
/// Never throws: a bad descriptor is <see cref="VtdDecodeOutcome.Error"/> with its IQEI.
/// </summary>
/// <remarks>
/// <para><b>Checks, in order</b> (the first failing one names the IQEI): the active translation-table mode is valid
/// (else 7); in scalable mode the queue holds 256-bit descriptors (else 3: 128-bit descriptors are invalid in scalable
/// mode, VT-d §6.5.2 as quoted by Linux; QEMU accepts them); the type is 0x1–0x8 with its feature present — type 0x3
/// needs ECAP.DT, 0x4 ECAP.IR, 0x8 ECAP.DT and ECAP.PASID, and 0x6–0x8 a 256-bit queue (else 3); no reserved bit is set,
/// QW2/QW3 are zero in a 256-bit queue, and no field holds a reserved encoding (else 4). Reserved encodings: G = 00b of
/// types 0x1 and 0x2, G = 00b/01b of type 0x6, G = 10b of type 0x7, AM &gt; CAP.MAMV in type 0x2, IM &gt; ECAP.MHMV in
/// type 0x4. PFSID (types 0x3, 0x8) is reserved without ECAP.DIT, PD (type 0x5) without ECAP.PDS. DR and DW (type 0x2)
/// are never reserved: without CAP.DRD/DWD they are ignored. MIP (types 0x3, 0x8) is accepted and ignored.</para>
///
/// <para><b>Scopes.</b> Each choice names its source; "QEMU" notes where QEMU's emulation (hw/i386/intel_iommu.c,
/// spec/vtd-queued-invalidation.md §3) differs.</para>
/// <list type="bullet">
/// <item><b>0x1 context cache</b> (<see cref="ConfigKinds.Context"/> entries only; PASID-cache entries are invalidated by
/// type 0x7, which software issues separately, VT-d §6.5.3.3 as followed by Linux <c>intel_context_flush_present</c>).
/// G = 01b global: every context entry. G = 10b domain-selective: context entries tagged with DID. G = 11b
/// device-selective: the entries whose SID equals SID outside the FM-masked function bits (FM 01b ignores SID bit 2, 10b
/// bits 2:1, 11b bits 2:0), whatever their DID — the DID field of a device-selective request is not a selector (QEMU and
/// VirtualBox use SID and FM only; removing more than asked is always allowed of a cache). QEMU performs domain-selective
/// as global.</item>
/// <item><b>0x2 IOTLB</b>. G = 01b: every entry of every stage. G = 10b: every entry of DID (all PASIDs, all stages,
/// global and paging-structure entries included). G = 11b page-selective-within-domain: second-stage entries of DID that
/// overlap the naturally aligned block of 2^AM 4 KiB pages containing ADDR (a large page containing part of the block
/// too), leaves only when IH = 1; and every first-stage and nested entry of DID at any address, leaf or not, whatever IH
/// (VT-d §6.5.2.3 in scalable mode: ADDR is a second-stage address, which cannot select entries cached by first-stage
/// input address; QEMU's <c>vtd_hash_remove_by_page</c> keeps the same rule for PGTT = 001b). AM &gt; MAMV is an IQE, as
/// in QEMU.</item>
/// <item><b>0x3 device TLB</b>: an ATS invalidation request without PASID to SID over ADDR with the S-bit size
/// (S = 0: the 4 KiB page; S = 1: the lowest clear bit of ADDR[63:12] at position k gives 2^(k+1) pages, naturally
/// aligned; no clear bit below 64 − 12 = everything, Linux's flush-all encoding). The engine applies PCIe 6.2 §10.3.8: the
/// device's no-PASID entries in the range and every PASID-tagged entry of the device.</item>
/// <item><b>0x4 interrupt entry cache</b> (<see cref="ConfigKinds.InterruptEntry"/>, index in the source-id field).
/// G = 0: every entry. G = 1: the 2^IM entries of the naturally aligned block containing IIDX.</item>
/// <item><b>0x6 PASID-based IOTLB</b> (first-stage and nested entries only: VT-d §6.5.2.4, as QEMU: "does not flush
/// stage-2 entries"). G = 10b PASID-selective: non-global entries of (DID, PASID), paging-structure entries included
/// (Linux <c>QI_GRAN_NONG_PASID</c>: global entries are kept). G = 11b page-selective-within-PASID: entries of
/// (DID, PASID) overlapping the 2^AM-page block, and global entries of DID there (VT-d 3.0 removed the descriptor's
/// global hint, so a page invalidation must leave no translation of that page for the PASID, global or not — as x86
/// INVLPG and SMMU TLBI_NH_VA); leaves only when IH = 1. AM is not limited by MAMV: Linux sends first-stage PSIs with AM
/// up to 51 without checking MAMV (<c>cache_tag_flush_iotlb</c>); AM ≥ 52 covers the whole 64-bit space. QEMU computes
/// <c>1 &lt;&lt; am</c> in a 32-bit int (undefined from AM 31) and matches first-stage entries only.</item>
/// <item><b>0x7 PASID cache</b> (<see cref="ConfigKinds.PasidEntry"/>). G = 00b domain-selective: entries tagged with
/// DID. G = 01b PASID-selective: entries of PASID tagged with DID. G = 11b: every entry. Upstream QEMU treats the
/// descriptor as a no-op.</item>
/// <item><b>0x8 PASID-based device TLB</b>: an ATS invalidation request with PASID to SID over ADDR with the S size
/// (QW1 bit 11). G = 0: the entries of PASID in the range. G = 1 is the ATS Global Invalidate bit, which "affects all
/// PASID values" (PCIe ATS Invalidation Request, GI): every entry of the device in the range. The engine has no selector
/// for "any PASID but not the no-PASID ones", so the device's no-PASID entries in the range go too: more than asked, which
/// an ATC may always do; QEMU notifies only the device's address spaces that have a PASID.</item>
/// </list>
/// </remarks>
internal static class VtdDescriptorDecoder
{
    /// <summary>The most engine descriptors one VT-d descriptor turns into (device-selective context invalidation with
    /// FM = 10b: four function numbers).</summary>
    public const int MaxOutput = 4;

    // Reserved bits (QW0, QW1) per type in either queue width; a 256-bit queue also needs QW2 = QW3 = 0.
    private const ulong ContextReserved0 = 0xFFFC_0000_0000_F1C0;       // 8:6, 15:12, 63:50
    private const ulong IotlbReserved0 = 0xFFFF_FFFF_0000_F100;         // 8, 15:12, 63:32
    private const ulong PageReserved1 = 0xF80;                          // QW1 11:7 (types 0x2, 0x6)
    private const ulong DeviceTlbReserved0 = 0x000F_0000_FFE0_01F0;     // 8:4, 31:21, 51:48
    private const ulong DeviceTlbReserved1 = 0xFFE;                     // QW1 11:1
    private const ulong InterruptReserved0 = 0xFFFF_0000_07FF_F1E0;     // 8:5, 26:12, 63:48
    private const ulong WaitReserved0 = 0xFFFF_F100;                    // 8, 31:12 (bit 7 PD without PDS)
    private const ulong WaitReserved1 = 0x3;                            // QW1 1:0
    private const ulong PasidReserved0 = 0xFFF0_0000_0000_F1C0;         // 8:6, 15:12, 63:52 (types 0x6, 0x7)
    private const ulong PasidDeviceTlbReserved1 = 0x7FE;                // QW1 10:1
    private const ulong PfsidBits = 0xFFF0_0000_0000_F000;              // 15:12, 63:52 (types 0x3, 0x8)
    private const ulong PageRequestDrainBit = 1UL << 7;

    /// <summary>Decodes <paramref name="d"/>. For <see cref="VtdDecodeOutcome.Invalidation"/> the engine descriptors are
    /// in <paramref name="output"/>[0..<paramref name="count"/>); for <see cref="VtdDecodeOutcome.Error"/>
    /// <paramref name="error"/> is the IQEI.</summary>
    /// <param name="d">The descriptor as fetched (QW2/QW3 zero when read from a 128-bit queue).</param>
    /// <param name="caps">The unit's capabilities.</param>
    /// <param name="wide">True for a 256-bit queue (IQA.DW = 1).</param>
    /// <param name="mode">The active translation-table mode.</param>
    /// <param name="output">At least <see cref="MaxOutput"/> slots.</param>
    /// <param name="count">Engine descriptors written.</param>
    /// <param name="error">The IQEI of an error, else <see cref="VtdQueueError.None"/>.</param>
    public static VtdDecodeOutcome Decode(in VtdDescriptor d, in VtdCapabilities caps, bool wide, VtdTranslationMode mode,
        Span<InvalidationDescriptor> output, out int count, out VtdQueueError error)
    {
        count = 0;
        error = VtdQueueError.None;
        if (mode == VtdTranslationMode.Invalid)
        {
            return Fail(VtdQueueError.InvalidTranslationMode, out error);
        }

        if (mode == VtdTranslationMode.Scalable && !wide)
        {
            return Fail(VtdQueueError.InvalidType, out error);
        }

        if (!IsKnownType(d.Type, in caps, wide))
        {
            return Fail(VtdQueueError.InvalidType, out error);
        }

        if ((d.Qw2 | d.Qw3) != 0)
        {
            return Fail(VtdQueueError.ReservedField, out error); // the upper half of a 256-bit descriptor is reserved
        }

        switch ((VtdDescriptorType)d.Type)
        {
            case VtdDescriptorType.ContextCache:
                return ContextCache(in d, output, out count, out error);
            case VtdDescriptorType.Iotlb:
                return Iotlb(in d, in caps, output, out count, out error);
            case VtdDescriptorType.DeviceTlb:
            {
                ulong reserved0 = DeviceTlbReserved0 | (caps.Throttling ? 0 : PfsidBits);
                if ((d.Qw0 & reserved0) != 0 || (d.Qw1 & DeviceTlbReserved1) != 0)
                {
                    return Fail(VtdQueueError.ReservedField, out error);
                }

                (ulong first, ulong last) = SizeBitRange(d.PageAddress, d.SizeBit);
                output[0] = InvalidationDescriptor.DeviceTlb(d.SourceId, AddressSpace.None, first, last);
                count = 1;
                return VtdDecodeOutcome.Invalidation;
            }

            case VtdDescriptorType.InterruptEntryCache:
                return InterruptEntryCache(in d, in caps, output, out count, out error);
            case VtdDescriptorType.Wait:
            {
                ulong reserved0 = WaitReserved0 | (caps.PageRequestDrain ? 0 : PageRequestDrainBit);
                return (d.Qw0 & reserved0) != 0 || (d.Qw1 & WaitReserved1) != 0
                    ? Fail(VtdQueueError.ReservedField, out error)
                    : VtdDecodeOutcome.Wait;
            }

            case VtdDescriptorType.PasidIotlb:
                return PasidIotlb(in d, output, out count, out error);
            case VtdDescriptorType.PasidCache:
            {
                if ((d.Qw0 & PasidReserved0) != 0 || d.Qw1 != 0 || d.Granularity == 2)
                {
                    return Fail(VtdQueueError.ReservedField, out error);
                }

                output[0] = d.Granularity switch
                {
                    0 => InvalidationDescriptor.ConfigDomain(ConfigKinds.PasidEntry, d.DomainId),
                    1 => InvalidationDescriptor.ConfigAddressSpace(ConfigKinds.PasidEntry, d.Pasid, domainId: d.DomainId),
                    _ => InvalidationDescriptor.ConfigAll(ConfigKinds.PasidEntry),
                };
                count = 1;
                return VtdDecodeOutcome.Invalidation;
            }

            default: // VtdDescriptorType.PasidDeviceTlb
            {
                if ((d.Qw0 & (caps.Throttling ? 0 : PfsidBits)) != 0 || (d.Qw1 & PasidDeviceTlbReserved1) != 0)
                {
                    return Fail(VtdQueueError.ReservedField, out error);
                }

                (ulong first, ulong last) = SizeBitRange(d.PageAddress, d.PasidSizeBit);
                output[0] = d.GlobalInvalidate
                    ? InvalidationDescriptor.DeviceTlbAllPasids(d.PasidDeviceSourceId, first, last)
                    : InvalidationDescriptor.DeviceTlb(d.PasidDeviceSourceId, d.Pasid, first, last);
                count = 1;
                return VtdDecodeOutcome.Invalidation;
            }
        }
    }

    /// <summary>True when <paramref name="type"/> is a type this unit defines for the queue width: its feature is present
    /// and, for the PASID-based types, the queue holds 256-bit descriptors.</summary>
    private static bool IsKnownType(int type, in VtdCapabilities caps, bool wide) => (VtdDescriptorType)type switch
    {
        VtdDescriptorType.ContextCache or VtdDescriptorType.Iotlb or VtdDescriptorType.Wait => true,
        VtdDescriptorType.DeviceTlb => caps.DeviceTlb,
        VtdDescriptorType.InterruptEntryCache => caps.InterruptRemapping,
        VtdDescriptorType.PasidIotlb or VtdDescriptorType.PasidCache => wide,
        VtdDescriptorType.PasidDeviceTlb => wide && caps.DeviceTlb && caps.Pasid,
        _ => false,
    };

    private static VtdDecodeOutcome ContextCache(in VtdDescriptor d, Span<InvalidationDescriptor> output, out int count,
        out VtdQueueError error)
    {
        count = 0;
        error = VtdQueueError.None;
        if ((d.Qw0 & ContextReserved0) != 0 || d.Qw1 != 0 || d.Granularity == 0)
        {
            return Fail(VtdQueueError.ReservedField, out error);
        }

        switch (d.Granularity)
        {
            case 1:
                output[0] = InvalidationDescriptor.ConfigAll(ConfigKinds.Context);
                count = 1;
                break;
            case 2:
                output[0] = InvalidationDescriptor.ConfigDomain(ConfigKinds.Context, d.DomainId);
                count = 1;
                break;
            default:
            {
                // FM 00b: the SID; 01b: SID bit 2 ignored; 10b: bits 2:1; 11b: bits 2:0 (eight consecutive SIDs).
                uint ignored = d.FunctionMask switch { 0 => 0u, 1 => 0b100u, 2 => 0b110u, _ => 0b111u };
                uint sid = d.SourceId & ~ignored;
                if (ignored == 0b111)
                {
                    output[0] = InvalidationDescriptor.ConfigSources(ConfigKinds.Context, sid, sid | 0b111);
                    count = 1;
                    break;
                }

                // Every subset of the ignored bits (0b100: 2 SIDs; 0b110: 4).
                uint subset = 0;
                do
                {
                    output[count++] = InvalidationDescriptor.ConfigSources(ConfigKinds.Context, sid | subset, sid | subset);
                    subset = (subset - ignored) & ignored;
                }
                while (subset != 0);

                break;
            }
        }

        return VtdDecodeOutcome.Invalidation;
    }

    private static VtdDecodeOutcome Iotlb(in VtdDescriptor d, in VtdCapabilities caps, Span<InvalidationDescriptor> output,
        out int count, out VtdQueueError error)
    {
        count = 0;
        error = VtdQueueError.None;
        if ((d.Qw0 & IotlbReserved0) != 0 || (d.Qw1 & PageReserved1) != 0 || d.Granularity == 0 ||
            (d.Granularity == 3 && d.AddressMask > caps.MaxAddressMask))
        {
            return Fail(VtdQueueError.ReservedField, out error);
        }

        switch (d.Granularity)
        {
            case 1:
                output[0] = InvalidationDescriptor.IotlbAll(StageMask.All);
                count = 1;
                break;
            case 2:
                output[0] = InvalidationDescriptor.IotlbDomain(d.DomainId, StageMask.All);
                count = 1;
                break;
            default:
            {
                (ulong first, ulong last) = MaskRange(d.PageAddress, d.AddressMask);
                output[0] = InvalidationDescriptor.IotlbRangeAllAddressSpaces(d.DomainId, first, last, StageMask.Stage2,
                    leafOnly: d.InvalidationHint);
                output[1] = InvalidationDescriptor.IotlbDomain(d.DomainId, StageMask.FirstStage);
                count = 2;
                break;
            }
        }

        return VtdDecodeOutcome.Invalidation;
    }

    private static VtdDecodeOutcome InterruptEntryCache(in VtdDescriptor d, in VtdCapabilities caps,
        Span<InvalidationDescriptor> output, out int count, out VtdQueueError error)
    {
        count = 0;
        error = VtdQueueError.None;
        bool selective = (d.Granularity & 1) != 0;
        if ((d.Qw0 & InterruptReserved0) != 0 || d.Qw1 != 0 || (selective && d.IndexMask > caps.MaxHandleMask))
        {
            return Fail(VtdQueueError.ReservedField, out error);
        }

        if (!selective)
        {
            output[0] = InvalidationDescriptor.ConfigAll(ConfigKinds.InterruptEntry);
        }
        else
        {
            uint span = (1u << d.IndexMask) - 1;
            uint first = d.SourceId & ~span;
            output[0] = InvalidationDescriptor.ConfigSources(ConfigKinds.InterruptEntry, first, first + span);
        }

        count = 1;
        return VtdDecodeOutcome.Invalidation;
    }

    private static VtdDecodeOutcome PasidIotlb(in VtdDescriptor d, Span<InvalidationDescriptor> output, out int count,
        out VtdQueueError error)
    {
        count = 0;
        error = VtdQueueError.None;
        if ((d.Qw0 & PasidReserved0) != 0 || (d.Qw1 & PageReserved1) != 0 || d.Granularity < 2)
        {
            return Fail(VtdQueueError.ReservedField, out error);
        }

        if (d.Granularity == 2)
        {
            output[0] = InvalidationDescriptor.IotlbAddressSpace(d.DomainId, d.Pasid, StageMask.FirstStage);
        }
        else
        {
            (ulong first, ulong last) = MaskRange(d.PageAddress, d.AddressMask);
            output[0] = InvalidationDescriptor.IotlbRange(d.DomainId, d.Pasid, first, last, leafOnly: d.InvalidationHint,
                includeGlobal: true, stages: StageMask.FirstStage);
        }

        count = 1;
        return VtdDecodeOutcome.Invalidation;
    }

    /// <summary>The naturally aligned block of 2^<paramref name="am"/> 4 KiB pages containing <paramref name="address"/>
    /// (the whole 64-bit space from AM 52).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (ulong First, ulong Last) MaskRange(ulong address, int am) => BlockOf(address, 12 + am);

    /// <summary>The ATS S-bit range: one 4 KiB page, or 2^(k+1) pages where k is the lowest clear bit of ADDR[63:12].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (ulong First, ulong Last) SizeBitRange(ulong address, bool sizeBit) =>
        BlockOf(address, sizeBit ? 13 + BitOperations.TrailingZeroCount(~(address >> 12)) : 12);

    private static (ulong First, ulong Last) BlockOf(ulong address, int log2)
    {
        if (log2 >= 64)
        {
            return (0, ulong.MaxValue);
        }

        ulong span = (1UL << log2) - 1;
        ulong first = address & ~span;
        return (first, first | span);
    }

    private static VtdDecodeOutcome Fail(VtdQueueError code, out VtdQueueError error)
    {
        error = code;
        return VtdDecodeOutcome.Error;
    }
}
