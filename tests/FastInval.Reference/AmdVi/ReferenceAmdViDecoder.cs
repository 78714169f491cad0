using FastInval.AmdVi;

namespace FastInval.Reference.AmdVi;

/// <summary>What the reference decoder makes of one command.</summary>
public enum ReferenceAmdViKind
{
    /// <summary>ILLEGAL_COMMAND_ERROR.</summary>
    Illegal,

    /// <summary>COMPLETION_WAIT.</summary>
    Wait,

    /// <summary>Invalidations to execute, in order.</summary>
    Invalidate,
}

/// <summary>
/// The naive AMD-Vi command decoder: written from the command table of the AMD-Vi research notes and the scopes documented
/// on <c>FastInval.AmdVi.AmdViCommandDecoder</c>, bit by bit, with no code shared with the fast decoder (no layout constants,
/// no helpers); <see cref="AmdViOptions"/> and <see cref="InvalidationDescriptor"/>'s constructor are the only vocabulary used.
/// </summary>
public static class ReferenceAmdViDecoder
{
    private static ulong Bits(ulong word, int lo, int count) => (word >> lo) & (count == 64 ? ulong.MaxValue : (1UL << count) - 1);

    private static bool Bit(ulong word, int n) => ((word >> n) & 1) == 1;

    /// <summary>Decodes one command (QW0, QW1).</summary>
    public static (ReferenceAmdViKind Kind, List<InvalidationDescriptor> Descriptors) Decode(ulong qw0, ulong qw1, AmdViOptions o)
    {
        var list = new List<InvalidationDescriptor>();
        int opcode = (int)Bits(qw0, 60, 4);
        if (opcode == 1)
        {
            return (Bits(qw0, 52, 8) == 0 ? ReferenceAmdViKind.Wait : ReferenceAmdViKind.Illegal, list);
        }

        if (opcode == 2 || opcode == 5)
        {
            if (Bits(qw0, 16, 44) != 0 || qw1 != 0)
            {
                return (ReferenceAmdViKind.Illegal, list);
            }

            uint device = (uint)Bits(qw0, 0, 16);
            ConfigKinds kinds = opcode == 2 ? ConfigKinds.Context | ConfigKinds.PasidEntry : ConfigKinds.InterruptEntry;
            list.Add(new InvalidationDescriptor(InvalidationScope.Config, InvalidationFlags.MatchSource, StageMask.None, 0, Granule.Any,
                kinds, 0, 0, 0, device, device));
            return (ReferenceAmdViKind.Invalidate, list);
        }

        if (opcode == 3)
        {
            bool gn = Bit(qw1, 2);
            if (Bits(qw0, 20, 12) != 0 || Bits(qw0, 48, 12) != 0 || Bits(qw1, 3, 9) != 0 || (gn && !o.GuestTranslation))
            {
                return (ReferenceAmdViKind.Illegal, list);
            }

            ushort domain = (ushort)Bits(qw0, 32, 16);
            (ulong first, ulong last) = Range(qw1);
            InvalidationFlags leaf = Bit(qw1, 1) ? InvalidationFlags.None : InvalidationFlags.LeafOnly;
            if (gn)
            {
                list.Add(new InvalidationDescriptor(InvalidationScope.IotlbRange,
                    InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace | InvalidationFlags.IncludeGlobal | leaf,
                    StageMask.Stage1 | StageMask.Nested, 0, Granule.Any, ConfigKinds.None, domain, (uint)Bits(qw0, 0, 20), 0, first, last));
            }
            else
            {
                list.Add(new InvalidationDescriptor(InvalidationScope.IotlbRange, InvalidationFlags.MatchDomain | leaf, StageMask.Stage2, 0,
                    Granule.Any, ConfigKinds.None, domain, 0, 0, first, last));
                list.Add(new InvalidationDescriptor(InvalidationScope.Iotlb, InvalidationFlags.MatchDomain, StageMask.Nested, 0,
                    Granule.Any, ConfigKinds.None, domain, 0, 0, 0, 0));
            }

            return (ReferenceAmdViKind.Invalidate, list);
        }

        if (opcode == 4)
        {
            bool gn = Bit(qw1, 2);
            if (!o.DeviceTlb || Bit(qw1, 1) || Bit(qw1, 3) || Bits(qw1, 4, 2) != 0 || Bits(qw1, 6, 6) != 0 || (gn && !o.GuestTranslation))
            {
                return (ReferenceAmdViKind.Illegal, list);
            }

            uint pasid = (uint)((Bits(qw0, 56, 4) << 16) | (Bits(qw0, 16, 8) << 8) | Bits(qw0, 48, 8));
            (ulong first, ulong last) = Range(qw1);
            list.Add(new InvalidationDescriptor(InvalidationScope.DeviceTlb, InvalidationFlags.MatchSource | InvalidationFlags.MatchAddressSpace,
                StageMask.None, 0, Granule.Any, ConfigKinds.None, 0, gn ? pasid : AddressSpace.None, (uint)Bits(qw0, 0, 16), first, last));
            return (ReferenceAmdViKind.Invalidate, list);
        }

        if (opcode == 8)
        {
            if (!o.InvalidateAll || Bits(qw0, 0, 60) != 0 || qw1 != 0)
            {
                return (ReferenceAmdViKind.Illegal, list);
            }

            list.Add(new InvalidationDescriptor(InvalidationScope.Iotlb, InvalidationFlags.None, StageMask.All, 0, Granule.Any,
                ConfigKinds.None, 0, 0, 0, 0, 0));
            list.Add(new InvalidationDescriptor(InvalidationScope.Config, InvalidationFlags.None, StageMask.None, 0, Granule.Any,
                ConfigKinds.All, 0, 0, 0, 0, 0));
            return (ReferenceAmdViKind.Invalidate, list);
        }

        return (ReferenceAmdViKind.Illegal, list);
    }

    /// <summary>The byte range of Address[63:12] with the S bit: a page, a naturally aligned block, or everything.</summary>
    public static (ulong First, ulong Last) Range(ulong qw1)
    {
        ulong page = qw1 & 0xFFFF_FFFF_FFFF_F000UL;
        if (!Bit(qw1, 0))
        {
            return (page, page + 0xFFF);
        }

        int k = 12;
        while (k < 64 && Bit(page, k))
        {
            k++;
        }

        if (k >= 51)
        {
            return (0, ulong.MaxValue);
        }

        ulong size = 1UL << (k + 1);
        ulong first = page / size * size;
        return (first, first + (size - 1));
    }
}
