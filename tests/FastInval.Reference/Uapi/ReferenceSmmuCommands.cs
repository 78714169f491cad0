namespace FastInval.Reference.Uapi;

/// <summary>
/// The reference's SMMUv3 vIOMMU command handling (spec/iommufd-uapi.md §7.2 for the conversion; Arm IHI 0070 §4 and
/// spec/smmuv3-command-queue.md for what a unit with every feature on accepts), for the eight opcodes a vIOMMU lets
/// through. Each field is taken out by shifting and masking its documented bit range; every bit that belongs to no field
/// of the command must be zero.
/// </summary>
public static class ReferenceSmmuCommands
{
    /// <summary>arm_vsmmu_convert_user_cmd: the command with the vIOMMU's VMID or the physical StreamID in place, or null when
    /// the opcode is not accepted or the vSID has no vDEVICE.</summary>
    public static (ulong Dw0, ulong Dw1)? Convert(ulong dw0, ulong dw1, ushort vmid, IReadOnlyDictionary<ulong, uint> streamIdOfVirtualId)
    {
        byte opcode = (byte)(dw0 & 0xFF);
        if (opcode == 0x30)
        {
            return (0x10UL | ((ulong)vmid << 32), 0UL); // TLBI_NSNH_ALL → TLBI_NH_ALL of the VMID, nothing else
        }

        if (opcode is 0x10 or 0x11 or 0x12 or 0x13)
        {
            ulong withoutVmid = dw0 & ~(0xFFFFUL << 32);
            return (withoutVmid | ((ulong)vmid << 32), dw1);
        }

        if (opcode is 0x05 or 0x06 or 0x40)
        {
            ulong virtualSid = dw0 >> 32;
            if (!streamIdOfVirtualId.TryGetValue(virtualSid, out uint sid))
            {
                return null;
            }

            return ((dw0 & 0xFFFF_FFFFUL) | ((ulong)sid << 32), dw1);
        }

        return null;
    }

    /// <summary>The invalidation a converted command asks for, or null when the SMMU would reject it (CERROR_ILL).</summary>
    public static InvalidationDescriptor? Decode(ulong dw0, ulong dw1)
    {
        byte opcode = (byte)(dw0 & 0xFF);
        ulong vmid = Bits(dw0, 32, 16);
        ulong asid = Bits(dw0, 48, 16);
        switch (opcode)
        {
            case 0x10: // TLBI_NH_ALL: VMID
                if (!OnlyFields(dw0, dw1, [(32, 16)], []))
                {
                    return null;
                }

                return InvalidationDescriptor.IotlbDomain((ushort)vmid, StageMask.FirstStage);

            case 0x11: // TLBI_NH_ASID: VMID, ASID
                if (!OnlyFields(dw0, dw1, [(32, 16), (48, 16)], []))
                {
                    return null;
                }

                return new InvalidationDescriptor(InvalidationScope.Iotlb, InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace,
                    StageMask.FirstStage, 0, Granule.Any, ConfigKinds.None, (ushort)vmid, (uint)asid, 0, 0, 0);

            case 0x12: // TLBI_NH_VA: NUM, SCALE, VMID, ASID | Leaf, TTL128, TTL, TG, Address
            case 0x13: // TLBI_NH_VAA: the same without ASID
            {
                bool byAsid = opcode == 0x12;
                (int, int)[] fields0 = byAsid ? [(12, 5), (20, 5), (32, 16), (48, 16)] : [(12, 5), (20, 5), (32, 16)];
                if (!OnlyFields(dw0, dw1, fields0, [(0, 1), (7, 1), (8, 2), (10, 2), (12, 52)]))
                {
                    return null;
                }

                ulong num = Bits(dw0, 12, 5);
                ulong scale = Bits(dw0, 20, 5);
                bool leaf = Bits(dw1, 0, 1) == 1;
                bool ttl128 = Bits(dw1, 7, 1) == 1;
                ulong ttl = Bits(dw1, 8, 2);
                ulong tg = Bits(dw1, 10, 2);
                ulong address = Bits(dw1, 12, 52) << 12;
                ulong first = address;
                ulong last = address + 0xFFF;
                byte level = 0;
                Granule granule = Granule.Any;
                if (tg == 0)
                {
                    // No range: NUM, SCALE, TTL and TTL128 are reserved.
                    if (num != 0 || scale != 0 || ttl != 0 || ttl128)
                    {
                        return null;
                    }
                }
                else
                {
                    if (ttl128)
                    {
                        return null;
                    }

                    if (tg == 2 && ttl == 1)
                    {
                        ttl = 0; // 16 KiB level 1 needs LPA2: "any level"
                    }

                    if (num == 0 && scale == 0 && ttl == 0)
                    {
                        return null;
                    }

                    int granuleBytesLog2 = tg == 1 ? 12 : tg == 2 ? 14 : 16;
                    UInt128 bytes = (UInt128)(num + 1) << (int)(scale + (ulong)granuleBytesLog2);
                    UInt128 end = (UInt128)address + bytes - 1;
                    last = end > ulong.MaxValue ? ulong.MaxValue : (ulong)end;
                    level = (byte)ttl;
                    granule = (Granule)tg;
                }

                InvalidationFlags flags = InvalidationFlags.MatchDomain;
                if (byAsid)
                {
                    flags |= InvalidationFlags.MatchAddressSpace | InvalidationFlags.IncludeGlobal;
                }

                if (leaf)
                {
                    flags |= InvalidationFlags.LeafOnly;
                }

                return new InvalidationDescriptor(InvalidationScope.IotlbRange, flags, StageMask.FirstStage, level, granule,
                    ConfigKinds.None, (ushort)vmid, byAsid ? (uint)asid : 0, 0, first, last);
            }

            case 0x05: // CFGI_CD: SSec, SubstreamID, StreamID | Leaf
            {
                if (!OnlyFields(dw0, dw1, [(10, 1), (12, 20), (32, 32)], [(0, 1)]) || Bits(dw0, 10, 1) == 1)
                {
                    return null;
                }

                uint sid = (uint)Bits(dw0, 32, 32);
                return InvalidationDescriptor.ConfigAddressSpace(ConfigKinds.ContextDescriptor, (uint)Bits(dw0, 12, 20), sourceId: sid);
            }

            case 0x06: // CFGI_CD_ALL: SSec, StreamID
            {
                if (!OnlyFields(dw0, dw1, [(10, 1), (32, 32)], []) || Bits(dw0, 10, 1) == 1)
                {
                    return null;
                }

                uint sid = (uint)Bits(dw0, 32, 32);
                return InvalidationDescriptor.ConfigSources(ConfigKinds.ContextDescriptor, sid, sid);
            }

            case 0x40: // ATC_INV: Global, SSV, SubstreamID, StreamID | Size, Address
            {
                if (!OnlyFields(dw0, dw1, [(9, 1), (11, 1), (12, 20), (32, 32)], [(0, 6), (12, 52)]))
                {
                    return null;
                }

                bool global = Bits(dw0, 9, 1) == 1;
                bool ssv = Bits(dw0, 11, 1) == 1;
                ulong size = Bits(dw1, 0, 6);
                if (size > 52 || (global && !ssv))
                {
                    return null;
                }

                ulong first = 0, last = ulong.MaxValue;
                if (size < 52)
                {
                    ulong span = 1UL << (int)(12 + size);
                    ulong address = Bits(dw1, 12, 52) << 12;
                    first = address / span * span;
                    last = first + span - 1;
                }

                uint sid = (uint)Bits(dw0, 32, 32);
                return ssv
                    ? InvalidationDescriptor.DeviceTlb(sid, (uint)Bits(dw0, 12, 20), first, last, includeGlobal: global)
                    : InvalidationDescriptor.DeviceTlb(sid, AddressSpace.None, first, last);
            }

            default:
                return null;
        }
    }

    private static ulong Bits(ulong word, int lowBit, int width) =>
        width == 64 ? word : (word >> lowBit) & ((1UL << width) - 1);

    /// <summary>True when every bit outside the opcode (DW0 bits 7:0) and the listed (low bit, width) fields is zero.</summary>
    private static bool OnlyFields(ulong dw0, ulong dw1, (int Low, int Width)[] fields0, (int Low, int Width)[] fields1)
    {
        ulong allowed0 = 0xFF;
        foreach ((int low, int width) in fields0)
        {
            allowed0 |= (width == 64 ? ulong.MaxValue : (1UL << width) - 1) << low;
        }

        ulong allowed1 = 0;
        foreach ((int low, int width) in fields1)
        {
            allowed1 |= (width == 64 ? ulong.MaxValue : (1UL << width) - 1) << low;
        }

        return (dw0 & ~allowed0) == 0 && (dw1 & ~allowed1) == 0;
    }
}
