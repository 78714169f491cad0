using System.Collections.Immutable;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Smmu;
using FastInval.Smmu;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Smmu;

/// <summary>
/// Random command streams (valid and invalid), register writes, recoveries and cache fills through <see cref="SmmuV3"/>
/// and through the reference decoder + queue model + reference engine give identical registers, guest-memory writes,
/// interrupts, ordinals and cache state after every step.
/// </summary>
[Collection(SmmuPropertyCollection.Name)]
public class SmmuProperties
{
#if FSCHECK_SOAK
    private const int Cases = 200_000;
#else
    private const int Cases = 10_000;
#endif

    [Property(MaxTest = Cases, Arbitrary = [typeof(SmmuGenerators)])]
    public Property SmmuV3_RandomCommandStreams_AgreeWithReference(SmmuScenario scenario)
    {
        string? why = SmmuDifferential.Run(scenario);
        return (why is null).Label(why ?? "agree");
    }

    /// <summary>The same streams with the fault plan as the SMMU's device-TLB sink (CMD_ATC_INV as requests answered
    /// inside the sink call): the asynchronous path must give what the reference gives for the plan.</summary>
    [Property(MaxTest = Cases / 4, Arbitrary = [typeof(SmmuGenerators)])]
    public Property SmmuV3_WithTheFaultPlanAsItsDeviceTlbSink_AgreesWithReference(SmmuScenario scenario)
    {
        string? why = SmmuDifferential.Run(scenario, planAsSink: true);
        return (why is null).Label(why ?? "agree");
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SmmuPropertyCollection
{
    public const string Name = "SMMU properties";
}

public static class SmmuGenerators
{
    private static readonly ushort[] Vmids = [0, 1, 0x155];
    private static readonly ushort[] Asids = [1, 2, 0x1FF];
    private static readonly uint[] Sids = [0x10, 0x11, 0x1_0000];
    private static readonly uint[] Ssids = [0, 3, 0xF_FFFF];
    private static readonly ulong[] Addresses = [0, 0x1000, 0x7000, 0x1F_F000, 0x20_0000, 0x4000_0000, 0xFFFF_FFFF_F000];

    private static Gen<T> Pick<T>(params T[] values) => Gen.Elements(values);

    private static Gen<bool> Chance(int percent) => Gen.Choose(0, 99).Select(x => x < percent);

    private static Gen<ulong> U64 => from hi in Gen.Choose(int.MinValue, int.MaxValue)
                                     from lo in Gen.Choose(int.MinValue, int.MaxValue)
                                     select ((ulong)(uint)hi << 32) | (uint)lo;

    private static Gen<SmmuCommand> Wellformed =>
        from op in Gen.Frequency((6, Gen.Constant(0x12)), (3, Gen.Constant(0x13)), (3, Gen.Constant(0x11)), (2, Gen.Constant(0x10)),
            (2, Gen.Constant(0x28)), (3, Gen.Constant(0x2A)), (1, Gen.Constant(0x30)), (3, Gen.Constant(0x03)), (2, Gen.Constant(0x04)),
            (2, Gen.Constant(0x05)), (1, Gen.Constant(0x06)), (4, Gen.Constant(0x40)), (8, Gen.Constant(0x46)), (1, Gen.Constant(0x01)),
            (1, Gen.Constant(0x41)), (1, Gen.Constant(0x44)))
        from vmid in Pick(Vmids)
        from asid in Pick(Asids)
        from sid in Pick(Sids)
        from ssid in Pick(Ssids)
        from addr in Pick(Addresses)
        from range in Gen.Frequency((4, Gen.Constant((0, 0, 0, 0))), (5, Pick((0, 0, 3, 1), (1, 0, 0, 1), (24, 2, 0, 1), (0, 5, 3, 1),
            (2, 0, 3, 3), (1, 1, 2, 2), (0, 0, 1, 2), (31, 31, 0, 3), (0, 0, 0, 1))))
        from leaf in Chance(40)
        from small in Gen.Choose(0, 53)
        from cs in Gen.Frequency((3, Gen.Constant(1)), (2, Gen.Constant(2)), (2, Gen.Constant(0)), (1, Gen.Constant(3)))
        from msi in Gen.Frequency((6, Gen.Choose(0, 15).Select(x => SmmuDifferential.MsiRegion + (ulong)(x * 4))), (1, Gen.Constant(0UL)),
            (1, Gen.Constant(SmmuDifferential.Unmapped)))
        from data in Gen.Choose(0, 9)
        from flags in Gen.Choose(0, 7)
        select op switch
        {
            0x12 => Cmd.NhVa(vmid, asid, addr, leaf, range.Item1, range.Item2, range.Item3, range.Item4),
            0x13 => Cmd.NhVaa(vmid, addr, leaf, range.Item1, range.Item2, range.Item3, range.Item4),
            0x11 => Cmd.NhAsid(vmid, asid),
            0x10 => Cmd.NhAll(vmid),
            0x28 => Cmd.S12Vmall(vmid),
            0x2A => Cmd.S2Ipa(vmid, addr, leaf, range.Item1, range.Item2, range.Item3, range.Item4),
            0x30 => Cmd.NsnhAll(),
            0x03 => Cmd.CfgiSte(sid, leaf),
            0x04 => Cmd.CfgiSteRange(sid, small % 32),
            0x05 => Cmd.CfgiCd(sid, ssid, leaf),
            0x06 => Cmd.CfgiCdAll(sid),
            0x40 => Cmd.AtcInv(sid, addr, small % 54, (flags & 1) != 0 ? ssid : null, (flags & 2) != 0),
            0x46 => new SmmuCommand(0x46 | ((ulong)(uint)cs << 12) | (3UL << 22) | (0xFUL << 24) | ((ulong)(uint)data << 32), cs == 1 ? msi : 0),
            0x01 => Cmd.Of(SmmuOpcode.PrefetchConfig, (ulong)sid << 32),
            0x41 => Cmd.Of(SmmuOpcode.PriResp, (ulong)sid << 32, (ulong)(uint)(flags % 4) << 12),
            _ => Cmd.Of(SmmuOpcode.Resume, ((ulong)sid << 32) | (1UL << 12), 5),
        };

    private static Gen<SmmuCommand> Command => Gen.Frequency(
        (80, Wellformed),
        (10, from c in Wellformed
             from word in Gen.Choose(0, 1)
             from bit in Gen.Choose(8, 63)
             select word == 0 ? new SmmuCommand(c.Dword0 ^ (1UL << bit), c.Dword1) : new SmmuCommand(c.Dword0, c.Dword1 ^ (1UL << (bit - 8)))),
        (5, from c in Wellformed from op in Gen.Choose(0, 255) select new SmmuCommand((c.Dword0 & ~0xFFUL) | (uint)op, c.Dword1)),
        (2, from a in U64 from b in U64 select new SmmuCommand(a, b)));

    private static Gen<QueueStep> Fill => Gen.Frequency(
        (5, from stage in Pick(TranslationStage.Stage1, TranslationStage.Stage2, TranslationStage.Nested)
            from vmid in Pick(Vmids)
            from asid in Pick(Asids)
            from addr in Pick(Addresses)
            from size in Pick<byte>(12, 12, 21, 30)
            from global in Chance(10)
            from table in Chance(15)
            let s2 = stage == TranslationStage.Stage2
            let span = table ? (size == 12 ? (byte)21 : size) : size
            let input = addr & ~((1UL << span) - 1)
            select (QueueStep)new QueueFill(table
                ? TranslationEntry.Table(stage, vmid, s2 || global ? AddressSpace.None : asid, input, 0x1000, span, global: global && !s2)
                : TranslationEntry.Leaf(stage, vmid, s2 || global ? AddressSpace.None : asid, input, input, size, global: global && !s2), null, null)),
        (3, from sid in Pick(Sids)
            from ssid in Gen.Frequency((2, Gen.Constant(AddressSpace.None)), (3, Pick(Ssids)))
            from addr in Pick(Addresses)
            from global in Chance(10)
            select (QueueStep)new QueueFill(null, new DeviceTlbEntry(sid, ssid, addr, addr, 12, global: global), null)),
        (3, from kind in Pick(ConfigKinds.StreamTableEntry, ConfigKinds.ContextDescriptor)
            from sid in Gen.Choose(0x10, 0x17)
            from ssid in Pick(Ssids)
            from vmid in Pick(Vmids)
            select (QueueStep)new QueueFill(null, null, new ConfigEntry(kind, (uint)sid, kind == ConfigKinds.ContextDescriptor ? ssid : AddressSpace.None, vmid, 1))));

    private static Gen<QueueStep> RegisterWrite => Gen.Frequency(
        (3, Pick(SmmuRegisters.Cr0CmdqEn | SmmuRegisters.Cr0SmmuEn, SmmuRegisters.Cr0CmdqEn, 0u, SmmuRegisters.Cr0SmmuEn)
            .Select(v => (QueueStep)new QueueWrite(SmmuRegisters.Cr0, v, 4))),
        (2, Pick(0u, 1u, 0x10u, 0x1FDu).Select(v => (QueueStep)new QueueWrite(SmmuRegisters.Gerrorn, v, 4))),
        (1, Pick(0u, 1u).Select(v => (QueueStep)new QueueWrite(SmmuRegisters.IrqCtrl, v, 4))),
        (1, from l in Gen.Choose(0, 6) select (QueueStep)new QueueWrite(SmmuRegisters.CmdqBase, SmmuDifferential.QueueRegion | (uint)l, 8)),
        (1, from c in Gen.Choose(0, 40) select (QueueStep)new QueueWrite(SmmuRegisters.CmdqCons, (ulong)(uint)c, 4)),
        (1, from p in Gen.Choose(0, 40) select (QueueStep)new QueueWrite(SmmuRegisters.CmdqProd, (ulong)(uint)p, 4)),
        (1, from off in Gen.Choose(0, 0x40) from v in U64 from size in Pick(1, 2, 4, 8) select (QueueStep)new QueueWrite((uint)off * 4, v, size)));

    private static Gen<QueueStep> Step => Gen.Frequency(
        (40, from n in Gen.Frequency((3, Gen.Choose(1, 3)), (1, Gen.Choose(4, 12)))
             from cs in Command.ArrayOf(n)
             select (QueueStep)new SmmuSubmit([.. cs])),
        (20, Fill),
        (10, RegisterWrite),
        (10, Gen.Constant((QueueStep)new QueueRecover())));

    private static Gen<QueueFaults> Faults => Gen.Frequency(
        (2, Gen.Constant(QueueFaults.None)),
        (2, from seed in Gen.Choose(0, int.MaxValue)
            from timeout in Pick(0u, 100_000u, 400_000u)
            from ice in Pick(0u, 0u, 200_000u)
            from fetch in Pick(0u, 0u, 50_000u)
            from dead in Gen.Frequency((3, Gen.Constant(ImmutableArray<uint>.Empty)), (1, Pick(Sids).Select(s => ImmutableArray.Create(s))))
            from timeoutAt in Gen.Choose(0, 8).Select(x => (ulong)x).ArrayOf(2)
            from fetchAt in Gen.Choose(0, 30).Select(x => (ulong)x).ArrayOf(2)
            select new QueueFaults((ulong)seed, timeout, ice, fetch, dead, [.. timeoutAt], [], [.. fetchAt])));

    public static Arbitrary<SmmuScenario> Scenarios() => Arb.From(
        from preset in Gen.Frequency((5, Gen.Constant(0)), (1, Gen.Choose(1, 4)))
        from faults in Faults
        from log2 in Gen.Frequency((4, Gen.Choose(2, 5)), (1, Pick(0, 1, 31)))
        from unmapped in Gen.Frequency((30, Gen.Constant(false)), (1, Gen.Constant(true)))
        from irq in Gen.Choose(0, 3)
        from enabled in Chance(85)
        from count in Gen.Choose(3, 25)
        from steps in Step.ArrayOf(count)
        select new SmmuScenario(preset, faults, log2, unmapped, irq, enabled, [.. steps]));
}
