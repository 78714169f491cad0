using System.Buffers.Binary;
using System.Collections.Immutable;
using FastInval.Reference.Uapi;
using FastInval.Uapi;
using FsCheck;
using FsCheck.Fluent;

namespace FastInval.Tests.Uapi;

/// <summary>
/// Generators of IOMMU_HWPT_INVALIDATE calls for <see cref="Topology"/>: most calls are well formed for their target (the
/// right type, entry size and mostly valid entries from small palettes, so ranges overlap the fills); a steady fraction
/// breaks one rule (type, length, pointer, framing, a field), and a few are noise.
/// </summary>
public static class InvalidateGenerators
{
    /// <summary>Number of <see cref="Topology.Targets"/>.</summary>
    public const int TargetCount = 19;

    private static Gen<T> Pick<T>(params T[] values) => Gen.Elements(values);

    private static Gen<T> Mostly<T>(Gen<T> usual, Gen<T> rare, int rarePercent = 10) =>
        Gen.Frequency((100 - rarePercent, usual), (rarePercent, rare));

    private static Gen<uint> AnyUInt => Gen.Choose(int.MinValue, int.MaxValue).Select(x => (uint)x);

    private static Gen<ulong> AnyULong => from hi in AnyUInt from lo in AnyUInt select ((ulong)hi << 32) | lo;

    /// <summary>The entry family of a target index: 0 VT-d, 1 mock HWPT, 2 SMMUv3 vIOMMU, 3 mock vIOMMU, 4 other.</summary>
    public static int Family(int target) => target switch
    {
        0 or 1 or 2 => 0,
        3 or 4 => 1,
        6 => 2,
        7 => 3,
        _ => 4,
    };

    private static Gen<byte[]> VtdEntry =>
        from addr in Mostly(Pick(0x0UL, 0x1000UL, 0x3000UL, 0x7000UL, 0xE000UL, 0x20_0000UL),
            Pick(0x1001UL, 0xFFFF_FFFF_FFFF_F000UL, 0x8000_0000_0000UL, 0x800UL))
        from npages in Mostly(Pick(1UL, 1UL, 2UL, 3UL, 4UL, 5UL, 16UL, ulong.MaxValue),
            Pick(0UL, 1UL << 52, (1UL << 52) + 1, (1UL << 52) - 1, 0x8000_0000_0000_0000UL, 512UL))
        from flags in Mostly(Pick(0u, 1u), Pick(2u, 3u, 0x8000_0000u))
        from last in Mostly(Gen.Constant(0u), Pick(1u, 0xFFFF_FFFFu, 2u))
        select Entry(24, (0, addr, 8), (8, npages, 8), (16, flags, 4), (20, last, 4));

    private static Gen<byte[]> MockHwptEntry =>
        from flags in Mostly(Pick(0u, 0u, 1u, 2u, 3u), Pick(4u, 0xFFFF_FFFFu))
        from id in Mostly(Gen.Choose(0, 3).Select(x => (uint)x), Pick(4u, 0xFFFF_FFFFu))
        from hwError in Pick(0u, 1u, 0xABCDu)
        from reserved in Mostly(Gen.Constant(0u), Pick(1u, 0x1234u))
        select Entry(16, (0, flags, 4), (4, id, 4), (8, hwError, 4), (12, reserved, 4));

    private static Gen<byte[]> MockViommuEntry =>
        from flags in Mostly(Pick(0u, 0u, 1u), Pick(2u, 0xFFFF_FFFFu))
        from vdev in Mostly(Gen.Constant((uint)Topology.MockVirtualId), Pick(0x9u, 0u, 1u))
        from cache in Mostly(Gen.Choose(0, 3).Select(x => (uint)x), Pick(4u, 0x8000_0000u))
        select Entry(12, (0, flags, 4), (4, vdev, 4), (8, cache, 4));

    private static Gen<byte[]> SmmuCommand =>
        from op in Mostly(Pick<ulong>(0x10, 0x11, 0x12, 0x12, 0x13, 0x30, 0x05, 0x06, 0x40, 0x40), Pick<ulong>(0x03, 0x04, 0x20, 0x28, 0x2A, 0x46, 0x01, 0x00, 0x7F))
        from vmid in Pick<ulong>(0, 1, 0x55)
        from asid in Pick<ulong>(1, 2)
        from vsid in Mostly(Pick<ulong>(1, 2), Pick<ulong>(3, 0x100, 0xFFFF_FFFF))
        from ssid in Pick<ulong>(0, 1, 2)
        from page in Pick<ulong>(0x0, 0x1000, 0x3000, 0x7000, 0x20_0000)
        from range in Mostly(Gen.Constant((0UL, 0UL, 0UL, 0UL)),
            Pick((1UL, 0UL, 3UL, 1UL), (3UL, 1UL, 0UL, 1UL), (0UL, 0UL, 0UL, 1UL), (1UL, 2UL, 2UL, 2UL), (0UL, 0UL, 1UL, 2UL), (2UL, 0UL, 3UL, 3UL), (1UL, 0UL, 0UL, 0UL)), 30)
        from leaf in Pick(0UL, 1UL)
        from atc in Pick((0UL, false, false), (1UL, true, false), (2UL, true, true), (52UL, false, false), (53UL, false, false), (3UL, false, true))
        from noise in Mostly(Gen.Constant((0UL, 0UL)), Pick((1UL << 10, 0UL), (0UL, 1UL << 7), (1UL << 25, 0UL), (0UL, 1UL << 6)), 8)
        select SmmuBytes(op, vmid, asid, vsid, ssid, page, range, leaf, atc, noise);

    private static byte[] SmmuBytes(ulong op, ulong vmid, ulong asid, ulong vsid, ulong ssid, ulong page,
        (ulong Num, ulong Scale, ulong Ttl, ulong Tg) range, ulong leaf, (ulong Size, bool Ssv, bool Global) atc, (ulong Dw0, ulong Dw1) noise)
    {
        ulong dw0 = op, dw1 = 0;
        switch (op)
        {
            case 0x10:
            case 0x30:
                dw0 |= vmid << 32;
                break;
            case 0x11:
                dw0 |= (vmid << 32) | (asid << 48);
                break;
            case 0x12:
            case 0x13:
                dw0 |= (vmid << 32) | (op == 0x12 ? asid << 48 : 0) | (range.Num << 12) | (range.Scale << 20);
                dw1 = page | leaf | (range.Ttl << 8) | (range.Tg << 10);
                break;
            case 0x05:
                dw0 |= (vsid << 32) | (ssid << 12);
                dw1 = leaf;
                break;
            case 0x06:
                dw0 |= vsid << 32;
                break;
            case 0x40:
                dw0 |= (vsid << 32) | (atc.Ssv ? (1UL << 11) | (ssid << 12) : 0) | (atc.Global ? 1UL << 9 : 0);
                dw1 = page | atc.Size;
                break;
            default:
                dw0 |= vsid << 32;
                dw1 = page;
                break;
        }

        return Entry(16, (0, dw0 | noise.Dw0, 8), (8, dw1 | noise.Dw1, 8));
    }

    private static byte[] Entry(int size, params (int Offset, ulong Value, int Width)[] fields)
    {
        byte[] e = new byte[size];
        foreach ((int offset, ulong value, int width) in fields)
        {
            if (width == 8)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(offset), value);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(offset), (uint)value);
            }
        }

        return e;
    }

    /// <summary>One call, well formed for its target most of the time.</summary>
    public static Gen<InvalidateCall> Call(bool hwError) =>
        from target in Gen.Frequency((70, Gen.Choose(0, 7)), (8, Gen.Choose(8, TargetCount - 1)))
        let family = Family(target)
        from typeChoice in Gen.Choose(0, 99)
        from randomType in Pick<uint>(0, 1, InvalidateDataType.Selftest, InvalidateDataType.SelftestInvalid, 0xdead, 7)
        let nativeType = family switch { 0 => 0u, 1 => InvalidateDataType.Selftest, 2 => 1u, 3 => InvalidateDataType.Selftest, _ => 0u }
        let type = typeChoice < 85 ? nativeType : randomType
        let natural = family switch { 0 => 24u, 1 => hwError ? 16u : 8u, 2 => 16u, 3 => 12u, _ => 24u }
        from lenChoice in Gen.Choose(0, 99)
        from oddLen in Pick(0u, 1u, 8u, 12u, 13u, 15u, 16u, 17u, 23u, 24u, 25u, 32u, 40u)
        let entryLen = lenChoice < 80 ? natural : lenChoice < 90 ? natural + 8 : oddLen
        from count in Gen.Frequency((85, Gen.Choose(0, 5)), (10, Gen.Choose(6, 70)), (5, Gen.Constant(0)))
        from hugeNum in Gen.Frequency((97, Gen.Constant(0u)), (3, Pick(262_145u, 349_526u, 262_144u, 0xFFFF_FFFFu)))
        from entries in (family switch { 0 => VtdEntry, 1 => MockHwptEntry, 2 => SmmuCommand, 3 => MockViommuEntry, _ => VtdEntry }).ArrayOf(count)
        from tailNoise in Gen.Frequency((90, Gen.Constant(0)), (10, Gen.Choose(1, 255)))
        from pointer in Gen.Frequency((85, Gen.Constant(PointerKind.Mapped)), (3, Gen.Constant(PointerKind.Null)),
            (3, Gen.Constant(PointerKind.Unmapped)), (3, Gen.Constant(PointerKind.Offset)), (6, Gen.Constant(PointerKind.Truncated)))
        from truncate in Gen.Choose(1, 30)
        from framing in Gen.Frequency((90, Gen.Constant((32, (byte)0, 32))), (10, Pick((31, (byte)0, 32), (33, (byte)0, 40), (33, (byte)1, 40),
            (40, (byte)0, 36), (40, (byte)0, 40), (32, (byte)0, 20), (32, (byte)0, 3))))
        from reserved in Gen.Frequency((96, Gen.Constant(0u)), (4, Pick(1u, 0x8000_0000u)))
        select new InvalidateCall(target, type, entryLen, hugeNum != 0 ? hugeNum : (uint)count, pointer, framing.Item1, framing.Item2,
            framing.Item3, reserved, Layout(entries, natural, entryLen, tailNoise), truncate);

    /// <summary>Lays entries out at <paramref name="entryLen"/> strides: each entry's bytes (cut to the stride), then a tail
    /// that is zero unless <paramref name="tailNoise"/> puts a byte into it.</summary>
    private static ImmutableArray<byte> Layout(byte[][] entries, uint natural, uint entryLen, int tailNoise)
    {
        byte[] array = new byte[Math.Max(1, entries.Length * (int)entryLen)];
        for (int i = 0; i < entries.Length; i++)
        {
            int at = i * (int)entryLen;
            int n = (int)Math.Min((uint)entries[i].Length, entryLen);
            entries[i].AsSpan(0, n).CopyTo(array.AsSpan(at));
            if (tailNoise != 0 && entryLen > natural && i == entries.Length - 1)
            {
                array[at + (int)natural + (tailNoise % (int)(entryLen - natural))] = (byte)tailNoise;
            }
        }

        return [.. array];
    }

    /// <summary>A fill: VT-d IOTLB (nested, the topology's DIDs and a foreign one, PASID 0 or 5, pages 0–31, some globals and
    /// 2 MiB entries and tables), VT-d device TLBs, SMMUv3 IOTLB (VMID 1 and a foreign one, ASIDs 1–2), SMMUv3 device TLBs
    /// and CDs.</summary>
    public static Gen<Fill> FillGen =>
        from engine in Pick(0, 1)
        from kind in Gen.Frequency((6, Gen.Constant(0)), (2, Gen.Constant(1)), (1, Gen.Constant(2)), (1, Gen.Constant(3)))
        from domain in engine == 0 ? Pick<ushort>(2, 3, 4, 9) : Pick<ushort>(1, 1, 0x55)
        from space in engine == 0 ? Pick(0u, 0u, 5u) : Pick(1u, 2u)
        from sid in engine == 0 ? Pick(0x10u, 0x18u, 0x20u) : Pick(0x100u, 0x101u, 1u)
        from page in Gen.Choose(0, 31).Select(p => (ulong)p)
        from global in Gen.Frequency((9, Gen.Constant(false)), (1, Gen.Constant(true)))
        select new Fill(engine, kind, domain, space, sid, page, global);

    /// <summary>A whole differential case.</summary>
    public static Arbitrary<InvalidateCase> Cases() => Arb.From(
        from hwError in Pick(false, true)
        from timeouts in Gen.Frequency((2, Gen.Constant(ImmutableArray<ulong>.Empty)),
            (1, from n in Gen.Choose(1, 4) from a in Gen.Choose(0, 20).Select(x => (ulong)x).ArrayOf(n) select a.ToImmutableArray()))
        from ice in Gen.Frequency((2, Gen.Constant(ImmutableArray<ulong>.Empty)),
            (1, from n in Gen.Choose(1, 4) from a in Gen.Choose(0, 20).Select(x => (ulong)x).ArrayOf(n) select a.ToImmutableArray()))
        from stepCount in Gen.Choose(1, 12)
        from steps in Gen.Frequency((3, FillGen.Select(f => (object)f)), (2, Call(hwError).Select(c => (object)c))).ArrayOf(stepCount)
        select new InvalidateCase(hwError, timeouts, ice, [.. steps]));
}
