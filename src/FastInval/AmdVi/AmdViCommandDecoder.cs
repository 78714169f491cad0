using System.Numerics;
using static FastInval.AmdVi.AmdViCommandLayout;

namespace FastInval.AmdVi;

/// <summary>What one command asks for.</summary>
internal enum AmdViDecodeOutcome : byte
{
    /// <summary>Execute the engine descriptors written to the output (1 or 2).</summary>
    Invalidation = 0,

    /// <summary>COMPLETION_WAIT: complete everything before it, then store and interrupt as S and I say.</summary>
    Wait = 1,

    /// <summary>ILLEGAL_COMMAND_ERROR: the buffer stops on this command.</summary>
    Illegal = 2,
}

/// <summary>The capabilities the decoder needs, taken once from <see cref="AmdViOptions"/>.</summary>
internal readonly struct AmdViCapabilities(AmdViOptions o)
{
    public readonly bool GuestTranslation = o.GuestTranslation;
    public readonly bool DeviceTlb = o.DeviceTlb;
    public readonly bool InvalidateAll = o.InvalidateAll;
}

/// <summary>
/// Validates one AMD-Vi command and turns each invalidation into the engine's <see cref="InvalidationDescriptor"/>s.
/// Never throws: a bad command is <see cref="AmdViDecodeOutcome.Illegal"/>.
/// </summary>
/// <remarks>
/// <para><b>Legality.</b> Opcodes 0h and 0Bh–0Fh are not defined; PREFETCH_IOMMU_PAGES, COMPLETE_PPR_REQUEST,
/// INSERT_GUEST_EVENT and RESET_VMMIO need features this unit does not have; INVALIDATE_IOMMU_ALL needs IASup and
/// INVALIDATE_IOTLB_PAGES IotlbSup. Every reserved bit is checked: a set one makes the command illegal (COMPLETION_WAIT
/// QW0 59:52; INVALIDATE_DEVTAB_ENTRY and INVALIDATE_INTERRUPT_TABLE QW0 59:16 and QW1; INVALIDATE_IOMMU_PAGES QW0 31:20,
/// 59:48 and QW1 11:3; INVALIDATE_IOTLB_PAGES QW1 1, 3, 11:6 and the Type field 5:4, which is reserved without
/// InvIotlbTypeSup; INVALIDATE_IOMMU_ALL QW0 59:0 and QW1). GN is reserved without GTSup. The PASID field of a GN = 0
/// page invalidation is not reserved and is ignored.</para>
/// <para><b>Ranges.</b> S = 0: the 4 KiB page at Address. S = 1: the lowest clear bit of Address at or above bit 12, at
/// position k, gives the naturally aligned 2^(k+1)-byte block containing Address; when bits 50:12 are all set (k ≥ 51)
/// the range is every address (Linux's 0x7FFF_FFFF_FFFF_F000 and the specification's all-pages encodings).</para>
/// <para><b>Scopes.</b> INVALIDATE_IOMMU_PAGES GN = 1: first-stage and nested entries of (DomainID, PASID) overlapping the
/// range, global entries of DomainID there too (removing more than asked is always allowed of a cache); GN = 0: stage-2
/// (host page table) entries of DomainID overlapping the range, any PASID, and every nested (combined) entry of DomainID
/// at any address, since the guest-physical address cannot select entries cached by guest-virtual address. PDE = 0 keeps
/// page-directory (table) entries of the range (<see cref="InvalidationFlags.LeafOnly"/>). INVALIDATE_IOTLB_PAGES: an ATS
/// invalidation request to DeviceID over the range, with the PASID when GN = 1 and without one when GN = 0 (the engine then
/// applies the PCIe no-PASID rule); QueueID and Maxpend select nothing. INVALIDATE_DEVTAB_ENTRY: the configuration
/// entries cached through the DeviceID's device-table entry, <see cref="ConfigKinds.Context"/> (the DTE itself) and
/// <see cref="ConfigKinds.PasidEntry"/> (guest CR3 table entries reached through it). INVALIDATE_INTERRUPT_TABLE: the
/// DeviceID's interrupt-remapping entries (<see cref="ConfigKinds.InterruptEntry"/> with the DeviceID as source id).
/// INVALIDATE_IOMMU_ALL: every IOTLB entry of every stage and every configuration entry (not the devices' ATS
/// IOTLBs, which only INVALIDATE_IOTLB_PAGES reaches).</para>
/// </remarks>
internal static class AmdViCommandDecoder
{
    /// <summary>The most engine descriptors one command turns into.</summary>
    public const int MaxOutput = 2;

    private const ulong WaitFields = StoreMask | InterruptMask | FlushMask | StoreAddressMask;
    private const ulong PagesFields0 = PasidMask | DomainIdMask;
    private const ulong PagesFields1 = SizeMask | PdeMask | GuestMask | AddressMask;
    private const ulong IotlbFields0 = DeviceIdMask | IotlbPasidMiddleMask | MaxPendingMask | QueueIdMask | IotlbPasidLowMask | IotlbPasidHighMask;
    private const ulong IotlbFields1 = SizeMask | GuestMask | AddressMask;

    /// <summary>Decodes and validates one command; invalidations are written to <paramref name="output"/> (at least
    /// <see cref="MaxOutput"/> long) and counted in <paramref name="count"/>.</summary>
    public static AmdViDecodeOutcome Decode(in AmdViCommand command, in AmdViCapabilities caps, Span<InvalidationDescriptor> output, out int count)
    {
        count = 0;
        ulong qw0 = command.Qword0 & ~OpcodeMask;
        ulong qw1 = command.Qword1;
        switch ((AmdViOpcode)command.Opcode)
        {
            case AmdViOpcode.CompletionWait:
                return (qw0 & ~WaitFields) == 0 ? AmdViDecodeOutcome.Wait : AmdViDecodeOutcome.Illegal;
            case AmdViOpcode.InvalidateDevTabEntry:
                if ((qw0 & ~DeviceIdMask) != 0 || qw1 != 0)
                {
                    return AmdViDecodeOutcome.Illegal;
                }

                output[0] = InvalidationDescriptor.ConfigSources(ConfigKinds.Context | ConfigKinds.PasidEntry, command.DeviceId, command.DeviceId);
                count = 1;
                return AmdViDecodeOutcome.Invalidation;
            case AmdViOpcode.InvalidateIommuPages:
            {
                if ((qw0 & ~PagesFields0) != 0 || (qw1 & ~PagesFields1) != 0 || (command.Guest && !caps.GuestTranslation))
                {
                    return AmdViDecodeOutcome.Illegal;
                }

                Range(command.Qword1, out ulong first, out ulong last);
                bool leafOnly = !command.Pde;
                if (command.Guest)
                {
                    output[0] = InvalidationDescriptor.IotlbRange(command.DomainId, command.PagesPasid, first, last, leafOnly,
                        includeGlobal: true, StageMask.FirstStage);
                    count = 1;
                }
                else
                {
                    output[0] = InvalidationDescriptor.IotlbRangeAllAddressSpaces(command.DomainId, first, last, StageMask.Stage2, leafOnly);
                    output[1] = InvalidationDescriptor.IotlbDomain(command.DomainId, StageMask.Nested);
                    count = 2;
                }

                return AmdViDecodeOutcome.Invalidation;
            }

            case AmdViOpcode.InvalidateIotlbPages:
            {
                if (!caps.DeviceTlb || (qw0 & ~IotlbFields0) != 0 || (qw1 & ~IotlbFields1) != 0 || (command.Guest && !caps.GuestTranslation))
                {
                    return AmdViDecodeOutcome.Illegal;
                }

                Range(command.Qword1, out ulong first, out ulong last);
                output[0] = InvalidationDescriptor.DeviceTlb(command.DeviceId, command.Guest ? command.IotlbPasid : AddressSpace.None, first, last);
                count = 1;
                return AmdViDecodeOutcome.Invalidation;
            }

            case AmdViOpcode.InvalidateInterruptTable:
                if ((qw0 & ~DeviceIdMask) != 0 || qw1 != 0)
                {
                    return AmdViDecodeOutcome.Illegal;
                }

                output[0] = InvalidationDescriptor.ConfigSources(ConfigKinds.InterruptEntry, command.DeviceId, command.DeviceId);
                count = 1;
                return AmdViDecodeOutcome.Invalidation;
            case AmdViOpcode.InvalidateIommuAll:
                if (!caps.InvalidateAll || qw0 != 0 || qw1 != 0)
                {
                    return AmdViDecodeOutcome.Illegal;
                }

                output[0] = InvalidationDescriptor.IotlbAll(StageMask.All);
                output[1] = InvalidationDescriptor.ConfigAll(ConfigKinds.All);
                count = 2;
                return AmdViDecodeOutcome.Invalidation;
            default:
                // 0h, 0Bh-0Fh undefined; PREFETCH (no PreFSup), COMPLETE_PPR (no PPRSup), 09h/0Ah (no vIOMMU).
                return AmdViDecodeOutcome.Illegal;
        }
    }

    /// <summary>The byte range of a page invalidation's QW1 (Address and S).</summary>
    internal static void Range(ulong qw1, out ulong first, out ulong last)
    {
        ulong address = qw1 & AddressMask;
        if ((qw1 & SizeMask) == 0)
        {
            first = address;
            last = address | 0xFFF;
            return;
        }

        int k = BitOperations.TrailingZeroCount(~(address | 0xFFF)); // 64 when every bit is set
        if (k >= 51)
        {
            first = 0;
            last = ulong.MaxValue;
            return;
        }

        ulong span = (2UL << k) - 1;
        first = address & ~span;
        last = first | span;
    }
}
