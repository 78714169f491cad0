using System.Collections.Immutable;
using FastInval.AmdVi;
using FastInval.Reference.AmdVi;
using FastInval.Reference.Scenarios;

namespace FastInval.Fuzz.Targets;

/// <summary>
/// The AMD-Vi command buffer and the reference AMD-Vi model agree. The input is decoded into an <see cref="AmdViScenario"/>
/// (feature preset, fault plan, ring geometry, control set-up, then command submissions, cache fills, register writes,
/// restarts after an error stop and event-log draining) and run through <see cref="AmdViDifferential"/>, which compares
/// every register, the status and head at each interrupt, guest memory (buffer, event log, completion stores), the fetch
/// ordinal, the notifier records and every cache after every step. Any exception escaping <see cref="AmdViIommu"/> is a crash.
/// </summary>
/// <remarks>
/// Input layout (missing bytes read as zero):
/// <code>
/// [0] preset (byte % 3)   [1] ComLen (byte % 16)   [2] EventLen (byte % 16)
/// [3] set-up: bit 0 unmapped buffer, bit 1 not enabled, bits 2-5 Control's EventLogEn, EventIntEn, ComWaitIntEn,
///     InvTimeOut ≠ 0 (bits set = off for the first three, so zero bytes give Linux's set-up)
/// [4] faults: bit 0 rates (then seed, time-out, completion-error, fetch bytes; ppm = byte × 4000), bit 1 dead DeviceID
///     (a byte), bit 2 a time-out ordinal, bit 3 a fetch-error ordinal (a byte each)
/// then up to 32 steps, a selector byte each (mod 8):
///   0-3 submit 1 + byte % 8 commands, each: kind byte (mod 4: 0 from palettes by opcode byte, 1 the same with one bit
///       flipped by the next byte, 2 the same with the opcode nibble of the next byte, 3 raw QW0 and QW1)
///   4 fill (byte % 3: IOTLB, device TLB, config) from palettes   5 register write: offset u16 (% 0x4000, 4-aligned), value
///   u64, size byte (1,2,4,8)   6 restart (clear CmdBufEn, head past the failing command, set CmdBufEn)   7 drain the event log
/// </code>
/// </remarks>
public sealed class AmdViQueue : QueueFuzzTarget<AmdViScenario>
{
    private static readonly ushort[] Domains = [0, 1, 7, 0xFFFF];
    private static readonly ushort[] FillDomains = [0, 1, 7, 0xFFFF];
    private static readonly ushort[] Devices = [0x10, 0x11, 0xFFFF];
    private static readonly uint[] FillDevices = [0x10, 0x11, 0xFFFF];
    private static readonly uint[] Pasids = [0, 3, 0xF_FFFF];
    private static readonly ulong[] Addresses = [0, 0x1000, 0x7000, 0x20_0000, 0x4000_0000, 0xFFFF_FFFF_F000];
    private static readonly ulong[] RangeBytes = [0x1000, 0x2000, 0x8000, 0x20_0000, 0x4000_0000];

    /// <inheritdoc/>
    protected override AmdViScenario DecodeScenario(ReadOnlySpan<byte> input) => Decode(input);

    /// <inheritdoc/>
    protected override string? Run(AmdViScenario scenario) => AmdViDifferential.Run(scenario);

    /// <summary>Decodes an input into a scenario.</summary>
    public static AmdViScenario Decode(ReadOnlySpan<byte> bytes)
    {
        var input = new FuzzInput(bytes);
        int preset = input.Byte() % 3;
        int comLen = input.Byte() % 16;
        int evtLen = input.Byte() % 16;
        byte setup = input.Byte();
        byte f = input.Byte();
        (ulong seed, uint timeout, uint ice, uint fetch) = Rates(ref input, (f & 1) != 0);
        ImmutableArray<uint> dead = (f & 2) != 0 ? [input.Pick<uint>(FillDevices)] : [];
        ImmutableArray<ulong> timeoutAt = (f & 4) != 0 ? [input.Byte() % 16UL] : [];
        ImmutableArray<ulong> fetchAt = (f & 8) != 0 ? [input.Byte() % 32UL] : [];
        ulong control = ((setup & 4) == 0 ? AmdViRegisters.ControlEventLogEn : 0) | ((setup & 8) == 0 ? AmdViRegisters.ControlEventIntEn : 0) |
                        ((setup & 16) == 0 ? AmdViRegisters.ControlComWaitIntEn : 0) | ((setup & 32) != 0 ? 4UL << AmdViRegisters.ControlInvTimeOutShift : 0);
        var steps = ImmutableArray.CreateBuilder<QueueStep>();
        while (input.HasMore && steps.Count < 32)
        {
            steps.Add(Step(ref input));
        }

        return new AmdViScenario(preset, new QueueFaults(seed, timeout, ice, fetch, dead, timeoutAt, [], fetchAt), comLen, evtLen,
            (setup & 1) != 0, control, (setup & 2) == 0, steps.ToImmutable());
    }

    private static QueueStep Step(ref FuzzInput input)
    {
        switch (input.Byte() % 8)
        {
            case 4:
                return Fill(ref input);
            case 5:
                return Write(ref input, AmdViRegisters.WindowSize, ~3u);
            case 6:
                return new QueueRecover();
            case 7:
                return new AmdViDrainEvents();
            default:
            {
                int n = 1 + (input.Byte() % 8);
                var commands = ImmutableArray.CreateBuilder<AmdViCommand>(n);
                for (int i = 0; i < n; i++)
                {
                    commands.Add(Command(ref input));
                }

                return new AmdViSubmit(commands.MoveToImmutable());
            }
        }
    }

    private static AmdViCommand Command(ref FuzzInput input)
    {
        int kind = input.Byte() % 4;
        if (kind == 3)
        {
            return new AmdViCommand(input.UInt64(), input.UInt64());
        }

        byte op = input.Byte();
        byte b = input.Byte();
        ushort dom = input.Pick<ushort>(Domains), dev = input.Pick<ushort>(Devices);
        uint pasid = input.Pick<uint>(Pasids);
        ulong addr = input.Pick<ulong>(Addresses);
        (ulong address, bool size) = (b & 3) switch
        {
            0 => (addr, false),
            1 => AmdViCommand.EncodeRange(addr, input.Pick<ulong>(RangeBytes)),
            2 => (AmdViCommand.AllPagesAddress, true),
            _ => ((addr | ((1UL << (input.Byte() % 53)) - 1)) & ~0xFFFUL, true),
        };
        bool guest = (b & 4) != 0, flag = (b & 8) != 0;
        AmdViCommand c = (op % 8) switch
        {
            0 => AmdViCommand.CompletionWait((b & 0x80) != 0 ? AmdViDifferential.Unmapped : AmdViDifferential.StoreRegion + ((ulong)(input.Byte() % 32) * 8),
                input.UInt64(), store: (b & 0x10) != 0 || !flag, interrupt: (b & 0x20) != 0, flush: (b & 0x40) != 0),
            1 => AmdViCommand.InvalidateIommuPages(dom, address, size, pde: !flag, guest ? pasid : null),
            2 => AmdViCommand.InvalidateIotlbPages(dev, address, size, guest ? pasid : null, input.Byte(), flag ? input.UInt16() : null),
            3 => AmdViCommand.InvalidateDevTabEntry(dev),
            4 => AmdViCommand.InvalidateInterruptTable(dev),
            5 => AmdViCommand.InvalidateIommuAll(),
            6 => AmdViCommand.InvalidateIommuPagesAll(dom, guest ? pasid : null),
            _ => new AmdViCommand(((ulong)(op >> 4) << 60) | (input.UInt64() & 0x0FFF_FFFF_FFFF_FFFFUL), input.UInt64()), // any opcode, raw fields
        };
        if (kind == 1)
        {
            int bit = input.Byte() % 128;
            c = bit < 64 ? new AmdViCommand(c.Qword0 ^ (1UL << bit), c.Qword1) : new AmdViCommand(c.Qword0, c.Qword1 ^ (1UL << (bit - 64)));
        }
        else if (kind == 2)
        {
            c = new AmdViCommand((c.Qword0 & ~(0xFUL << 60)) | ((ulong)(input.Byte() & 0xF) << 60), c.Qword1);
        }

        return c;
    }

    private static QueueFill Fill(ref FuzzInput input)
    {
        switch (input.Byte() % 3)
        {
            case 0:
                return IotlbFill(ref input, FillDomains, Pasids, Addresses);
            case 1:
                return DeviceTlbFill(ref input, FillDevices, Pasids, Addresses);
            default:
            {
                var kind = (input.Byte() % 3) switch { 0 => ConfigKinds.Context, 1 => ConfigKinds.PasidEntry, _ => ConfigKinds.InterruptEntry };
                uint dev = input.Pick<uint>(FillDevices);
                uint pasid = input.Pick<uint>(Pasids);
                return new QueueFill(null, null, new ConfigEntry(kind, dev, kind == ConfigKinds.PasidEntry ? pasid : AddressSpace.None,
                    input.Pick<ushort>(FillDomains), 1));
            }
        }
    }
}
