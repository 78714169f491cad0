using FastInval.Smmu;

namespace FastInval.Reference.Smmu;

/// <summary>What the reference decoder makes of one command.</summary>
public enum ReferenceCommandKind
{
    /// <summary>CERROR_ILL.</summary>
    Illegal,

    /// <summary>An invalidation (see the descriptor).</summary>
    Invalidate,

    /// <summary>CMD_SYNC.</summary>
    Sync,

    /// <summary>Accepted, no effect (prefetch, PRI response, resume, stall termination).</summary>
    NoEffect,
}

/// <summary>
/// The reference's own SMMUv3 command decoder: one rule per <c>if</c>, field positions read bit by bit from the Arm
/// IHI 0070 tables as restated in spec/smmuv3-command-queue.md §1.3–§2.3. Shares nothing with
/// <c>FastInval.Smmu.SmmuCommandDecoder</c>; <see cref="SmmuFeatures"/> and <see cref="InvalidationDescriptor"/> are the
/// shared vocabulary.
/// </summary>
public static class ReferenceSmmuDecoder
{
    private static ulong Bits(ulong word, int hi, int lo) => (word >> lo) & (hi - lo == 63 ? ulong.MaxValue : (1UL << (hi - lo + 1)) - 1);

    private static ulong FieldMask(int hi, int lo) => Bits(ulong.MaxValue, hi - lo, 0) << lo;

    /// <summary>True when every set bit of the words lies in one of the listed fields (absolute bit numbers 0..127;
    /// the opcode, bits 7:0, is always allowed).</summary>
    private static bool OnlyFields(ulong dw0, ulong dw1, params (int Hi, int Lo)[] fields)
    {
        ulong allowed0 = FieldMask(7, 0), allowed1 = 0;
        foreach ((int hi, int lo) in fields)
        {
            if (lo < 64)
            {
                allowed0 |= FieldMask(Math.Min(hi, 63), lo);
            }

            if (hi >= 64)
            {
                allowed1 |= FieldMask(hi - 64, Math.Max(lo, 64) - 64);
            }
        }

        return (dw0 & ~allowed0) == 0 && (dw1 & ~allowed1) == 0;
    }

    /// <summary>Decodes one command.</summary>
    public static (ReferenceCommandKind Kind, InvalidationDescriptor Descriptor) Decode(ulong dw0, ulong dw1, SmmuFeatures f)
    {
        (ReferenceCommandKind, InvalidationDescriptor) ill = (ReferenceCommandKind.Illegal, default);
        (ReferenceCommandKind, InvalidationDescriptor) none = (ReferenceCommandKind.NoEffect, default);
        bool strict = f.StrictReservedFields;
        int opcode = (int)Bits(dw0, 7, 0);
        bool ssec = Bits(dw0, 10, 10) == 1;
        bool ssv = Bits(dw0, 11, 11) == 1;
        uint ssid = (uint)Bits(dw0, 31, 12);
        uint sid = (uint)Bits(dw0, 63, 32);
        ushort vmid = (ushort)Bits(dw0, 47, 32);
        ushort asid = (ushort)Bits(dw0, 63, 48);
        bool leaf = Bits(dw1, 0, 0) == 1;

        bool VmidOk()
        {
            if (!strict)
            {
                return true;
            }

            if (!f.Stage2)
            {
                return vmid == 0;
            }

            if (!f.Vmid16 && vmid > 0xFF)
            {
                return false;
            }

            return true;
        }

        bool AsidOk() => !strict || f.Asid16 || asid <= 0xFF;

        if (opcode == 0x01 || opcode == 0x02)
        {
            if (strict && !OnlyFields(dw0, opcode == 0x02 ? 0 : dw1, (10, 10), (11, 11), (31, 12), (63, 32)))
            {
                return ill;
            }

            if (ssec)
            {
                return ill;
            }

            if (ssv && f.SubstreamIdBits == 0)
            {
                return ill;
            }

            return none;
        }

        if (opcode == 0x03)
        {
            if (strict && !OnlyFields(dw0, dw1, (10, 10), (63, 32), (64, 64)))
            {
                return ill;
            }

            if (ssec)
            {
                return ill;
            }

            return (ReferenceCommandKind.Invalidate, InvalidationDescriptor.ConfigSources(ConfigKinds.StreamTableEntry | ConfigKinds.ContextDescriptor, sid, sid));
        }

        if (opcode == 0x04)
        {
            if (strict && !OnlyFields(dw0, dw1, (10, 10), (63, 32), (68, 64)))
            {
                return ill;
            }

            if (ssec)
            {
                return ill;
            }

            int range = (int)Bits(dw1, 4, 0);
            if (range == 31)
            {
                return (ReferenceCommandKind.Invalidate, InvalidationDescriptor.ConfigAll(ConfigKinds.StreamTableEntry | ConfigKinds.ContextDescriptor));
            }

            ulong count = 1UL << (range + 1);
            ulong first = sid / count * count;
            return (ReferenceCommandKind.Invalidate, InvalidationDescriptor.ConfigSources(ConfigKinds.StreamTableEntry | ConfigKinds.ContextDescriptor,
                (uint)first, (uint)(first + count - 1)));
        }

        if (opcode == 0x05)
        {
            if (!f.Stage1)
            {
                return ill;
            }

            if (strict && !OnlyFields(dw0, dw1, (10, 10), (31, 12), (63, 32), (64, 64)))
            {
                return ill;
            }

            if (ssec)
            {
                return ill;
            }

            return (ReferenceCommandKind.Invalidate, InvalidationDescriptor.ConfigAddressSpace(ConfigKinds.ContextDescriptor, ssid, sourceId: sid));
        }

        if (opcode == 0x06)
        {
            if (!f.Stage1)
            {
                return ill;
            }

            if (strict && !OnlyFields(dw0, dw1, (10, 10), (63, 32)))
            {
                return ill;
            }

            if (ssec)
            {
                return ill;
            }

            return (ReferenceCommandKind.Invalidate, InvalidationDescriptor.ConfigSources(ConfigKinds.ContextDescriptor, sid, sid));
        }

        if (opcode == 0x10)
        {
            if (!f.Stage1 || (strict && !OnlyFields(dw0, dw1, (47, 32))) || !VmidOk())
            {
                return ill;
            }

            return (ReferenceCommandKind.Invalidate, f.Stage2
                ? InvalidationDescriptor.IotlbDomain(vmid, StageMask.Stage1 | StageMask.Nested)
                : InvalidationDescriptor.IotlbAll(StageMask.Stage1 | StageMask.Nested));
        }

        if (opcode == 0x11)
        {
            if (!f.Stage1 || (strict && !OnlyFields(dw0, dw1, (63, 32))) || !VmidOk() || !AsidOk())
            {
                return ill;
            }

            InvalidationFlags flags = InvalidationFlags.MatchAddressSpace;
            if (f.Stage2)
            {
                flags |= InvalidationFlags.MatchDomain;
            }

            return (ReferenceCommandKind.Invalidate, new InvalidationDescriptor(InvalidationScope.Iotlb, flags,
                StageMask.Stage1 | StageMask.Nested, 0, Granule.Any, ConfigKinds.None, f.Stage2 ? vmid : (ushort)0, asid, 0, 0, 0));
        }

        if (opcode == 0x12 || opcode == 0x13 || opcode == 0x2A)
        {
            bool ipa = opcode == 0x2A;
            bool byAsid = opcode == 0x12;
            if (ipa ? !f.Stage2 : !f.Stage1)
            {
                return ill;
            }

            bool fieldsOk = byAsid
                ? OnlyFields(dw0, dw1, (16, 12), (24, 20), (63, 32), (64, 64), (71, 71), (73, 72), (75, 74), (127, 76))
                : ipa
                    ? OnlyFields(dw0, dw1, (16, 12), (24, 20), (47, 32), (64, 64), (71, 71), (73, 72), (75, 74), (119, 76))
                    : OnlyFields(dw0, dw1, (16, 12), (24, 20), (47, 32), (64, 64), (71, 71), (73, 72), (75, 74), (127, 76));
            if (strict && !fieldsOk)
            {
                return ill;
            }

            if (!VmidOk() || (byAsid && !AsidOk()))
            {
                return ill;
            }

            ulong address = ipa ? Bits(dw1, 55, 12) << 12 : Bits(dw1, 63, 12) << 12;
            int num = (int)Bits(dw0, 16, 12), scale = (int)Bits(dw0, 24, 20);
            int ttl = (int)Bits(dw1, 9, 8), tg = (int)Bits(dw1, 11, 10);
            bool ttl128 = Bits(dw1, 7, 7) == 1;
            ulong first = address, last = address + 0xFFF;
            byte levelHint = 0;
            Granule granuleHint = Granule.Any;
            if (!f.RangeInvalidation || tg == 0)
            {
                if (strict && (num != 0 || scale != 0 || ttl != 0 || ttl128))
                {
                    return ill;
                }

                if (strict && !f.RangeInvalidation && tg != 0)
                {
                    return ill;
                }
            }
            else
            {
                if (strict && ttl128)
                {
                    return ill;
                }

                int effectiveTtl = ttl;
                if (tg == 2 && ttl == 1)
                {
                    effectiveTtl = 0; // 16 KiB level 1 needs LPA2
                }

                if (num == 0 && scale == 0 && effectiveTtl == 0)
                {
                    return ill;
                }

                int granuleBits = tg == 1 ? 12 : tg == 2 ? 14 : 16;
                System.Numerics.BigInteger length = (System.Numerics.BigInteger)(num + 1) << (scale + granuleBits);
                System.Numerics.BigInteger end = first + length - 1;
                last = end > ulong.MaxValue ? ulong.MaxValue : (ulong)end;
                levelHint = (byte)effectiveTtl;
                granuleHint = (Granule)tg;
            }

            if (ipa)
            {
                return (ReferenceCommandKind.Invalidate, InvalidationDescriptor.IotlbRangeAllAddressSpaces(vmid, first, last,
                    StageMask.Stage2, leaf, levelHint, granuleHint));
            }

            InvalidationFlags flags = leaf ? InvalidationFlags.LeafOnly : InvalidationFlags.None;
            if (f.Stage2)
            {
                flags |= InvalidationFlags.MatchDomain;
            }

            if (byAsid)
            {
                flags |= InvalidationFlags.MatchAddressSpace | InvalidationFlags.IncludeGlobal;
            }

            return (ReferenceCommandKind.Invalidate, new InvalidationDescriptor(InvalidationScope.IotlbRange, flags,
                StageMask.Stage1 | StageMask.Nested, levelHint, granuleHint, ConfigKinds.None, f.Stage2 ? vmid : (ushort)0,
                byAsid ? asid : 0u, 0, first, last));
        }

        if (opcode == 0x28)
        {
            if (!f.Stage2 || (strict && !OnlyFields(dw0, dw1, (47, 32))) || !VmidOk())
            {
                return ill;
            }

            return (ReferenceCommandKind.Invalidate, InvalidationDescriptor.IotlbDomain(vmid, StageMask.All));
        }

        if (opcode == 0x30)
        {
            if (strict && !OnlyFields(dw0, dw1))
            {
                return ill;
            }

            return (ReferenceCommandKind.Invalidate, InvalidationDescriptor.IotlbAll(StageMask.All));
        }

        if (opcode == 0x40)
        {
            if (!f.Ats)
            {
                return ill;
            }

            if (strict && !OnlyFields(dw0, dw1, (9, 9), (11, 11), (31, 12), (63, 32), (69, 64), (127, 76)))
            {
                return ill;
            }

            if (ssv && f.SubstreamIdBits == 0)
            {
                return ill;
            }

            int size = (int)Bits(dw1, 5, 0);
            if (size > 52)
            {
                return ill;
            }

            bool global = Bits(dw0, 9, 9) == 1;
            if (strict && global && !ssv)
            {
                return ill;
            }

            ulong address = Bits(dw1, 63, 12) << 12;
            ulong first = 0, last = ulong.MaxValue;
            if (size < 52)
            {
                ulong spanBytes = 4096UL << size;
                first = address / spanBytes * spanBytes;
                last = first + spanBytes - 1;
            }

            return (ReferenceCommandKind.Invalidate, ssv
                ? InvalidationDescriptor.DeviceTlb(sid, ssid, first, last, includeGlobal: global)
                : InvalidationDescriptor.DeviceTlb(sid, AddressSpace.None, first, last));
        }

        if (opcode == 0x41)
        {
            if (!f.Pri || (strict && !OnlyFields(dw0, dw1, (11, 11), (31, 12), (63, 32), (72, 64), (77, 76))))
            {
                return ill;
            }

            if (ssv && f.SubstreamIdBits == 0)
            {
                return ill;
            }

            return Bits(dw1, 13, 12) == 3 ? ill : none;
        }

        if (opcode == 0x44)
        {
            if (!f.Stall || (strict && !OnlyFields(dw0, dw1, (10, 10), (12, 12), (13, 13), (63, 32), (79, 64))) || ssec)
            {
                return ill;
            }

            return none;
        }

        if (opcode == 0x45)
        {
            if (!f.Stall || (strict && !OnlyFields(dw0, dw1, (10, 10), (63, 32))) || ssec)
            {
                return ill;
            }

            return none;
        }

        if (opcode == 0x46)
        {
            if (strict && !OnlyFields(dw0, dw1, (13, 12), (23, 22), (27, 24), (63, 32), (119, 66)))
            {
                return ill;
            }

            return Bits(dw0, 13, 12) == 3 ? ill : (ReferenceCommandKind.Sync, default);
        }

        return ill;
    }
}
