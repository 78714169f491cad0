using System.Collections.Immutable;
using FastInval.Reference;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Vtd;
using FastInval.Vtd;

namespace FastInval.Fuzz.Targets;

/// <summary>
/// The VT-d queued-invalidation unit and the reference VT-d model agree. The input is decoded into a
/// <see cref="VtdScenario"/> (capability preset, fault plan, queue set-up, then descriptor submissions, cache fills,
/// register writes and error recoveries) and run through <see cref="VtdDifferential"/>, which compares every register,
/// MSI, guest-memory byte, ordinal and cache after every step. Any exception escaping <see cref="VtdIommu"/> is a crash.
/// </summary>
/// <remarks>
/// Input layout (missing bytes read as zero):
/// <code>
/// [0] preset (byte % 5)   [1] flags: bit 0 256-bit queue, bit 1 QS = 1, bits 2-3 queue base (0 ring, 1 ring + 4 KiB,
///     2 unmapped), bits 4-5 translation mode, bit 6 FECTL.IM, bit 7 IECTL.IM
/// [2] faults: bit 0 rates (then seed, timeout, ICE, fetch bytes; ppm = byte × 4000), bit 1 dead source id (then a byte),
///     bit 2 time-out ordinal, bit 3 ICE ordinal, bit 4 fetch-error ordinal (a byte each)
/// then up to 40 steps, each a selector byte (mod 8):
///   0-3 submit 1 + byte % 4 descriptors; each descriptor: kind byte (mod 4: 0 typed from palettes, 1 typed with one flipped
///       bit, 2 raw QW0/QW1, 3 raw QW0..QW3), then for typed: type byte (1..8), granularity, DID, SID, PASID, address,
///       AM, bits, size, data, status slot bytes; for raw: 2 or 4 u64 words
///   4 fill (kind byte % 3: IOTLB leaf, device TLB, config) from palettes
///   5 register write: offset u16 (masked to the window), value u64, size byte (1,2,4,8)
///   6 recover (clear FSTS errors and ring the doorbell)
///   7 FSTS write of a byte
/// </code>
/// </remarks>
public sealed class VtdQueue : QueueFuzzTarget<VtdScenario>
{
    private static readonly ushort[] Dids = [1, 2, 0xFFFF];
    private static readonly ushort[] Sids = [0x10, 0x11, 0x100];
    private static readonly uint[] FillSids = [0x10, 0x11, 0x100];
    private static readonly uint[] Pasids = [0, 5, AddressSpace.MaxId];
    private static readonly ulong[] Addresses = [0, 0x1000, 0x7000, 0x20_0000, 0x4000_0000, 0xFFFF_F000];
    private static readonly int[] Ams = [0, 1, 2, 9, 18, 19, 52];

    /// <inheritdoc/>
    protected override VtdScenario DecodeScenario(ReadOnlySpan<byte> input) => Decode(input);

    /// <inheritdoc/>
    protected override string? Run(VtdScenario scenario) => VtdDifferential.Run(scenario);

    /// <summary>Decodes an input into a scenario.</summary>
    public static VtdScenario Decode(ReadOnlySpan<byte> bytes)
    {
        var input = new FuzzInput(bytes);
        int preset = input.Byte() % 5;
        byte flags = input.Byte();
        QueueFaults faults = Faults(ref input);
        ulong queueBase = ((flags >> 2) & 3) switch
        {
            0 => VtdDifferential.QueueRegion,
            1 => VtdDifferential.QueueRegion + 0x1000,
            _ => VtdDifferential.Unmapped,
        };
        var steps = ImmutableArray.CreateBuilder<QueueStep>();
        while (input.HasMore && steps.Count < 40)
        {
            steps.Add(Step(ref input));
        }

        return new VtdScenario(preset, faults, (flags & 1) != 0, (flags >> 1) & 1, queueBase, (flags >> 4) & 3,
            (flags & 0x40) != 0, (flags & 0x80) != 0, steps.ToImmutable());
    }

    private static QueueFaults Faults(ref FuzzInput input)
    {
        byte f = input.Byte();
        (ulong seed, uint timeout, uint ice, uint fetch) = Rates(ref input, (f & 1) != 0);

        ImmutableArray<uint> dead = (f & 2) != 0 ? [input.Pick<ushort>(Sids)] : [];
        ImmutableArray<ulong> timeoutAt = (f & 4) != 0 ? [input.Byte() % 16UL] : [];
        ImmutableArray<ulong> iceAt = (f & 8) != 0 ? [input.Byte() % 16UL] : [];
        ImmutableArray<ulong> fetchAt = (f & 16) != 0 ? [input.Byte() % 32UL] : [];
        return new QueueFaults(seed, timeout, ice, fetch, dead, timeoutAt, iceAt, fetchAt);
    }

    private static QueueStep Step(ref FuzzInput input)
    {
        switch (input.Byte() % 8)
        {
            case 4:
                return Fill(ref input);
            case 5:
                return Write(ref input, 0x1010, ~0u);

            case 6:
                return new QueueRecover();
            case 7:
                return new QueueWrite(0x34, input.Byte(), 4);
            default:
            {
                int n = 1 + (input.Byte() % 4);
                var ds = ImmutableArray.CreateBuilder<VtdDescriptor>(n);
                for (int i = 0; i < n; i++)
                {
                    ds.Add(Descriptor(ref input));
                }

                return new VtdSubmit(ds.MoveToImmutable());
            }
        }
    }

    private static VtdDescriptor Descriptor(ref FuzzInput input)
    {
        int kind = input.Byte() % 4;
        if (kind == 2)
        {
            return new VtdDescriptor(input.UInt64(), input.UInt64());
        }

        if (kind == 3)
        {
            return new VtdDescriptor(input.UInt64(), input.UInt64(), input.UInt64(), input.UInt64());
        }

        int type = 1 + (input.Byte() % 8);
        ulong g = (ulong)(input.Byte() & 3);
        ulong did = input.Pick<ushort>(Dids);
        ulong sid = input.Pick<ushort>(Sids);
        ulong pasid = input.Pick<uint>(Pasids);
        ulong addr = input.Pick<ulong>(Addresses);
        ulong am = (ulong)input.Pick<int>(Ams);
        byte bits = input.Byte();
        int size = input.Byte() % 21;
        ulong data = input.Byte();
        ulong status = VtdDifferential.StatusRegion + (ulong)((input.Byte() % 17) * 4);
        if (status == VtdDifferential.StatusRegion + 64)
        {
            status = VtdDifferential.Unmapped;
        }

        VtdDescriptor d = type switch
        {
            1 => new VtdDescriptor(0x1 | (g << 4) | (did << 16) | (sid << 32) | ((ulong)(bits & 3) << 48), 0),
            2 => new VtdDescriptor(0x2 | (g << 4) | ((ulong)(bits & 0xC) << 4) | (did << 16), addr | ((bits & 0x10) != 0 ? 1UL << 6 : 0) | am),
            3 => new VtdDescriptor(0x3 | ((ulong)(bits & 0x1F) << 16) | (sid << 32), SizeEncoded(addr, size, 0)),
            4 => new VtdDescriptor(0x4 | ((bits & 1) != 0 ? 1UL << 4 : 0) | ((ulong)((bits >> 3) & 0x1F) << 27) | (sid << 32), 0),
            5 => new VtdDescriptor(0x5 | ((ulong)(bits & 0xF) << 4) | (data << 32), status),
            6 => new VtdDescriptor(0x6 | (g << 4) | (did << 16) | (pasid << 32), g == 3 ? addr | ((bits & 0x10) != 0 ? 1UL << 6 : 0) | am : 0),
            7 => new VtdDescriptor(0x7 | (g << 4) | (did << 16) | (pasid << 32), 0),
            _ => new VtdDescriptor(0x8 | ((ulong)(bits & 0x1F) << 4) | (sid << 16) | (pasid << 32),
                SizeEncoded(addr, size, 11) | ((bits & 0x40) != 0 ? 1UL : 0)),
        };
        if (kind == 1)
        {
            int flip = input.Byte() % 128;
            d = flip < 64 ? new VtdDescriptor(d.Qw0 ^ (1UL << flip), d.Qw1) : new VtdDescriptor(d.Qw0, d.Qw1 ^ (1UL << (flip - 64)));
        }

        return d;
    }

    private static ulong SizeEncoded(ulong addr, int size, int bit) =>
        size == 0 ? addr : ((addr | (((1UL << (size - 1)) - 1) << 12)) & ~(1UL << (12 + size - 1))) | (1UL << bit);

    private static QueueFill Fill(ref FuzzInput input)
    {
        switch (input.Byte() % 3)
        {
            case 0:
                return IotlbFill(ref input, Dids, Pasids, Addresses);
            case 1:
                return DeviceTlbFill(ref input, FillSids, Pasids, Addresses);

            default:
            {
                ConfigKinds kind = (input.Byte() % 3) switch { 0 => ConfigKinds.Context, 1 => ConfigKinds.PasidEntry, _ => ConfigKinds.InterruptEntry };
                uint sid = 0x10u + (uint)(input.Byte() % 8);
                uint asid = kind == ConfigKinds.PasidEntry ? input.Pick<uint>(Pasids) : AddressSpace.None;
                return new QueueFill(null, null, new ConfigEntry(kind, sid, asid, input.Pick<ushort>(Dids), 1));
            }
        }
    }
}
