using System.Collections.Immutable;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Smmu;
using FastInval.Smmu;

namespace FastInval.Fuzz.Targets;

/// <summary>
/// The SMMUv3 command queue and the reference SMMU model agree. The input is decoded into an <see cref="SmmuScenario"/>
/// (feature preset, fault plan, queue geometry, GERROR interrupt set-up, then command submissions, cache fills, register
/// writes and Linux-style recoveries) and run through <see cref="SmmuDifferential"/>, which compares every register, MSI,
/// wired interrupt, guest-memory byte, ordinal and cache after every step. Any exception escaping <see cref="SmmuV3"/> is a crash.
/// </summary>
/// <remarks>
/// Input layout (missing bytes read as zero):
/// <code>
/// [0] preset (byte % 5)   [1] LOG2SIZE (byte % 8; 7 means 31)   [2] bits 0-1 GERROR IRQ mode, bit 2 unmapped queue,
///     bit 3 SMMUEN off
/// [3] faults: bit 0 rates (then seed, time-out, completion-error, fetch bytes; ppm = byte × 4000), bit 1 dead StreamID
///     (a byte), bit 2 a time-out ordinal, bit 3 a fetch-error ordinal (a byte each)
/// then up to 32 steps, a selector byte each (mod 8):
///   0-3 submit 1 + byte % 6 commands, each: kind byte (mod 3: 0 from palettes by opcode byte, 1 the same with one bit
///       flipped by the next byte, 2 raw DW0 and DW1)
///   4 fill (byte % 3: IOTLB, ATC, config) from palettes    5 register write: offset u16 (% 0x100, 4-aligned), value u64,
///   size byte (1,2,4,8)    6 recover (skip_err + acknowledge)    7 GERRORN write of a byte
/// </code>
/// </remarks>
public sealed class SmmuQueue : QueueFuzzTarget<SmmuScenario>
{
    private static readonly ushort[] Vmids = [0, 1, 0x155];
    private static readonly ushort[] Asids = [1, 2, 0x1FF];
    private static readonly uint[] FillAsids = [1, 2, 0x1FF];
    private static readonly uint[] Sids = [0x10, 0x11, 0x1_0000];
    private static readonly uint[] Ssids = [0, 3, 0xF_FFFF];
    private static readonly ulong[] Addresses = [0, 0x1000, 0x7000, 0x20_0000, 0x4000_0000, 0xFFFF_FFFF_F000];
    private static readonly byte[] Opcodes = [0x12, 0x13, 0x11, 0x10, 0x28, 0x2A, 0x30, 0x03, 0x04, 0x05, 0x06, 0x40, 0x46, 0x01, 0x41, 0x44];

    /// <inheritdoc/>
    protected override SmmuScenario DecodeScenario(ReadOnlySpan<byte> input) => Decode(input);

    /// <inheritdoc/>
    protected override string? Run(SmmuScenario scenario) => SmmuDifferential.Run(scenario);

    /// <summary>Decodes an input into a scenario.</summary>
    public static SmmuScenario Decode(ReadOnlySpan<byte> bytes)
    {
        var input = new FuzzInput(bytes);
        int preset = input.Byte() % 5;
        int log2 = input.Byte() % 8;
        byte setup = input.Byte();
        byte f = input.Byte();
        (ulong seed, uint timeout, uint ice, uint fetch) = Rates(ref input, (f & 1) != 0);

        ImmutableArray<uint> dead = (f & 2) != 0 ? [input.Pick<uint>(Sids)] : [];
        ImmutableArray<ulong> timeoutAt = (f & 4) != 0 ? [input.Byte() % 16UL] : [];
        ImmutableArray<ulong> fetchAt = (f & 8) != 0 ? [input.Byte() % 32UL] : [];
        var steps = ImmutableArray.CreateBuilder<QueueStep>();
        while (input.HasMore && steps.Count < 32)
        {
            steps.Add(Step(ref input));
        }

        return new SmmuScenario(preset, new QueueFaults(seed, timeout, ice, fetch, dead, timeoutAt, [], fetchAt), log2 == 7 ? 31 : log2,
            (setup & 4) != 0, setup & 3, (setup & 8) == 0, steps.ToImmutable());
    }

    private static QueueStep Step(ref FuzzInput input)
    {
        switch (input.Byte() % 8)
        {
            case 4:
                return Fill(ref input);
            case 5:
                return Write(ref input, 0x100, ~3u);

            case 6:
                return new QueueRecover();
            case 7:
                return new QueueWrite(SmmuRegisters.Gerrorn, input.Byte(), 4);
            default:
            {
                int n = 1 + (input.Byte() % 6);
                var commands = ImmutableArray.CreateBuilder<SmmuCommand>(n);
                for (int i = 0; i < n; i++)
                {
                    commands.Add(Command(ref input));
                }

                return new SmmuSubmit(commands.MoveToImmutable());
            }
        }
    }

    private static SmmuCommand Command(ref FuzzInput input)
    {
        int kind = input.Byte() % 3;
        if (kind == 2)
        {
            return new SmmuCommand(input.UInt64(), input.UInt64());
        }

        byte op = input.Pick<byte>(Opcodes);
        ulong vmid = input.Pick<ushort>(Vmids), asid = input.Pick<ushort>(Asids), sid = input.Pick<uint>(Sids), ssid = input.Pick<uint>(Ssids);
        ulong addr = input.Pick<ulong>(Addresses);
        byte b = input.Byte();
        ulong num = (ulong)(input.Byte() % 32), scale = (ulong)(input.Byte() % 32), ttl = (ulong)(b & 3), tg = (ulong)((b >> 2) & 3);
        bool leaf = (b & 0x10) != 0;
        ulong small = input.Byte();
        ushort vmid16 = (ushort)vmid, asid16 = (ushort)asid;
        int n = (int)num, sc = (int)scale, tl = (int)ttl, g = (int)tg;
        var c = op switch
        {
            0x12 => SmmuCommand.TlbiNhVa(vmid16, asid16, addr, leaf, n, sc, tl, g),
            0x13 => SmmuCommand.TlbiNhVaa(vmid16, addr, leaf, n, sc, tl, g),
            0x2A => SmmuCommand.TlbiS2Ipa(vmid16, addr, leaf, n, sc, tl, g),
            0x11 => SmmuCommand.TlbiNhAsid(vmid16, asid16),
            0x10 => SmmuCommand.TlbiNhAll(vmid16),
            0x28 => SmmuCommand.TlbiS12Vmall(vmid16),
            0x30 => SmmuCommand.TlbiNsnhAll(),
            0x03 => SmmuCommand.CfgiSte((uint)sid, leaf),
            0x04 => SmmuCommand.CfgiSteRange((uint)sid, (int)(small % 32)),
            0x05 => SmmuCommand.CfgiCd((uint)sid, (uint)ssid, leaf),
            0x06 => SmmuCommand.CfgiCdAll((uint)sid),
            0x40 => SmmuCommand.AtcInv((uint)sid, addr, (int)(small % 54), (b & 0x20) != 0 ? (uint)ssid : null, global: (b & 0x40) != 0),
            0x46 => SmmuCommand.Sync(b & 3,
                (b & 3) == 1 ? ((b & 0x80) != 0 ? SmmuDifferential.Unmapped : SmmuDifferential.MsiRegion + ((small % 16) * 4)) : 0, (uint)small),
            _ => new SmmuCommand(op | (sid << 32), small & 0x3FFF), // PREFETCH_CONFIG, PRI_RESP, RESUME: raw fields
        };
        if (kind == 1)
        {
            int bit = input.Byte() % 128;
            c = bit < 64 ? new SmmuCommand(c.Dword0 ^ (1UL << bit), c.Dword1) : new SmmuCommand(c.Dword0, c.Dword1 ^ (1UL << (bit - 64)));
        }

        return c;
    }

    private static QueueFill Fill(ref FuzzInput input)
    {
        switch (input.Byte() % 3)
        {
            case 0:
                return IotlbFill(ref input, Vmids, FillAsids, Addresses);
            case 1:
                return DeviceTlbFill(ref input, Sids, Ssids, Addresses);

            default:
            {
                bool cd = (input.Byte() & 1) != 0;
                uint sid = 0x10u + (uint)(input.Byte() % 8);
                return new QueueFill(null, null, new ConfigEntry(cd ? ConfigKinds.ContextDescriptor : ConfigKinds.StreamTableEntry, sid,
                    cd ? input.Pick<uint>(Ssids) : AddressSpace.None, input.Pick<ushort>(Vmids), 1));
            }
        }
    }
}
