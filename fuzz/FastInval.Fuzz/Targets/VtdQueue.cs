using System.Collections.Immutable;
using FastInval.Reference;
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
public sealed class VtdQueue : IFuzzer
{
    private static readonly ushort[] Dids = [1, 2, 0xFFFF];
    private static readonly ushort[] Sids = [0x10, 0x11, 0x100];
    private static readonly uint[] Pasids = [0, 5, AddressSpace.MaxId];
    private static readonly ulong[] Addresses = [0, 0x1000, 0x7000, 0x20_0000, 0x4000_0000, 0xFFFF_F000];
    private static readonly int[] Ams = [0, 1, 2, 9, 18, 19, 52];

    public void FuzzTarget(ReadOnlySpan<byte> bytes)
    {
        VtdScenario scenario = Decode(bytes);
        string? disagreement;
        try
        {
            disagreement = VtdDifferential.Run(scenario);
        }
        catch (Exception e) when (e is not OracleException)
        {
            throw new OracleException($"exception {e.GetType().Name}: {e.Message}\nscenario: {scenario}", e);
        }

        if (disagreement is not null)
        {
            throw new OracleException($"{disagreement}\nscenario: {scenario}");
        }
    }

    /// <summary>Decodes an input into a scenario.</summary>
    public static VtdScenario Decode(ReadOnlySpan<byte> bytes)
    {
        var input = new FuzzInput(bytes);
        int preset = input.Byte() % 5;
        byte flags = input.Byte();
        VtdFaults faults = Faults(ref input);
        ulong queueBase = ((flags >> 2) & 3) switch
        {
            0 => VtdDifferential.QueueRegion,
            1 => VtdDifferential.QueueRegion + 0x1000,
            _ => VtdDifferential.Unmapped,
        };
        var steps = ImmutableArray.CreateBuilder<VtdStep>();
        while (input.HasMore && steps.Count < 40)
        {
            steps.Add(Step(ref input));
        }

        return new VtdScenario(preset, faults, (flags & 1) != 0, (flags >> 1) & 1, queueBase, (flags >> 4) & 3,
            (flags & 0x40) != 0, (flags & 0x80) != 0, steps.ToImmutable());
    }

    private static VtdFaults Faults(ref FuzzInput input)
    {
        byte f = input.Byte();
        ulong seed = 0;
        uint timeout = 0, ice = 0, fetch = 0;
        if ((f & 1) != 0)
        {
            seed = input.Byte();
            timeout = input.Byte() * 4000u;
            ice = input.Byte() * 4000u;
            fetch = input.Byte() * 4000u;
        }

        ImmutableArray<uint> dead = (f & 2) != 0 ? [input.Pick<ushort>(Sids)] : [];
        ImmutableArray<ulong> timeoutAt = (f & 4) != 0 ? [input.Byte() % 16UL] : [];
        ImmutableArray<ulong> iceAt = (f & 8) != 0 ? [input.Byte() % 16UL] : [];
        ImmutableArray<ulong> fetchAt = (f & 16) != 0 ? [input.Byte() % 32UL] : [];
        return new VtdFaults(seed, timeout, ice, fetch, dead, timeoutAt, iceAt, fetchAt);
    }

    private static VtdStep Step(ref FuzzInput input)
    {
        switch (input.Byte() % 8)
        {
            case 4:
                return Fill(ref input);
            case 5:
            {
                uint offset = (uint)(input.UInt16() % 0x1010);
                ulong value = input.UInt64();
                int size = (input.Byte() % 4) switch { 0 => 1, 1 => 2, 2 => 4, _ => 8 };
                return new VtdWrite(offset, value, size);
            }

            case 6:
                return new VtdRecover();
            case 7:
                return new VtdWrite(0x34, input.Byte(), 4);
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

    private static VtdFill Fill(ref FuzzInput input)
    {
        switch (input.Byte() % 3)
        {
            case 0:
            {
                var stage = (TranslationStage)(1 << (input.Byte() % 3));
                ushort did = input.Pick<ushort>(Dids);
                uint pasid = stage == TranslationStage.Stage2 ? AddressSpace.None : input.Pick<uint>(Pasids);
                byte size = (input.Byte() % 3) switch { 0 => 12, 1 => 21, _ => 30 };
                ulong a = input.Pick<ulong>(Addresses) & ~((1UL << size) - 1);
                return new VtdFill(TranslationEntry.Leaf(stage, did, pasid, a, a, size), null, null);
            }

            case 1:
            {
                ushort sid = input.Pick<ushort>(Sids);
                uint pasid = (input.Byte() & 1) != 0 ? AddressSpace.None : input.Pick<uint>(Pasids);
                ulong a = input.Pick<ulong>(Addresses);
                return new VtdFill(null, new DeviceTlbEntry(sid, pasid, a, a), null);
            }

            default:
            {
                ConfigKinds kind = (input.Byte() % 3) switch { 0 => ConfigKinds.Context, 1 => ConfigKinds.PasidEntry, _ => ConfigKinds.InterruptEntry };
                uint sid = 0x10u + (uint)(input.Byte() % 8);
                uint asid = kind == ConfigKinds.PasidEntry ? input.Pick<uint>(Pasids) : AddressSpace.None;
                return new VtdFill(null, null, new ConfigEntry(kind, sid, asid, input.Pick<ushort>(Dids), 1));
            }
        }
    }
}
