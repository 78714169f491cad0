using System.Collections.Immutable;
using FastInval.AmdVi;
using FastInval.Reference.AmdVi;
using FastInval.Reference.Scenarios;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.Tests.AmdVi;

/// <summary>
/// Random command streams (every invalidation command, COMPLETION_WAIT with store and interrupt, illegal and corrupted
/// commands), head, tail, base and control writes, restarts, event-log draining, cache fills and fault plans (device-TLB
/// time-outs and completion errors, command-fetch errors) through <see cref="AmdViIommu"/> and through the naive reference
/// (its own decoder and buffer model over the reference engine) give identical registers, interrupts, guest memory,
/// fetch ordinals, notifier records and caches after every step.
/// </summary>
[Collection(AmdViPropertyCollection.Name)]
public class AmdViProperties
{
#if FSCHECK_SOAK
    private const int Cases = 200_000;
#else
    private const int Cases = 10_000;
#endif

    [Property(MaxTest = Cases, Arbitrary = [typeof(AmdViGenerators)])]
    public Property AmdViIommu_RandomCommandStreams_AgreeWithReference(AmdViScenario scenario)
    {
        string? why = AmdViDifferential.Run(scenario);
        return (why is null).Label(why ?? "agree");
    }

    /// <summary>The same streams with the fault plan as the unit's device-TLB sink (INVALIDATE_IOTLB_PAGES as requests
    /// answered inside the sink call): the asynchronous path must give what the reference gives for the plan.</summary>
    [Property(MaxTest = Cases / 4, Arbitrary = [typeof(AmdViGenerators)])]
    public Property AmdViIommu_WithTheFaultPlanAsItsDeviceTlbSink_AgreesWithReference(AmdViScenario scenario)
    {
        string? why = AmdViDifferential.Run(scenario, planAsSink: true);
        return (why is null).Label(why ?? "agree");
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AmdViPropertyCollection
{
    public const string Name = "AMD-Vi properties";
}

public static class AmdViGenerators
{
    private static readonly ushort[] Domains = [0, 1, 7, 0xFFFF];
    private static readonly ushort[] Devices = [0x10, 0x11, 0xFFFF];
    private static readonly uint[] Pasids = [0, 3, 0xF_FFFF];
    private static readonly ulong[] Addresses = [0, 0x1000, 0x7000, 0x1F_F000, 0x20_0000, 0x4000_0000, 0xFFFF_FFFF_F000];
    private static readonly byte[] Others = [0x0, 0x6, 0x7, 0x9, 0xA, 0xB, 0xC, 0xD, 0xE, 0xF];

    private static Gen<T> Pick<T>(params T[] values) => Gen.Elements(values);

    private static Gen<bool> Chance(int percent) => Gen.Choose(0, 99).Select(x => x < percent);

    private static Gen<ulong> U64 => from hi in Gen.Choose(int.MinValue, int.MaxValue)
                                     from lo in Gen.Choose(int.MinValue, int.MaxValue)
                                     select ((ulong)(uint)hi << 32) | (uint)lo;

    private static Gen<(ulong Address, bool Size)> Range =>
        Gen.Frequency(
            (3, from a in Pick(Addresses) select (a, false)),
            (3, from a in Pick(Addresses) from bytes in Pick(0x2000UL, 0x8000UL, 0x20_0000UL, 0x4000_0000UL) select AmdViCommand.EncodeRange(a, bytes)),
            (1, Gen.Constant((AmdViCommand.AllPagesAddress, true))),
            (1, from a in Pick(Addresses) from low in Gen.Choose(0, 52) select ((a | ((1UL << low) - 1)) & ~0xFFFUL, true)));

    private static Gen<AmdViCommand> Wait =>
        from store in Chance(80)
        from interrupt in Chance(40)
        from flush in Chance(20)
        from target in Gen.Frequency((12, Gen.Choose(0, 31).Select(x => AmdViDifferential.StoreRegion + (ulong)(x * 8))),
            (1, Gen.Constant(AmdViDifferential.Unmapped)), (1, Gen.Constant(AmdViDifferential.StoreRegion + 0xFFC)))
        from data in U64
        select AmdViCommand.CompletionWait(target, data, store, interrupt, flush);

    private static Gen<AmdViCommand> Wellformed => Gen.Frequency(
        (10, Wait),
        (12, from dom in Pick(Domains)
             from r in Range
             from pde in Chance(70)
             from guest in Chance(40)
             from pasid in Pick(Pasids)
             select AmdViCommand.InvalidateIommuPages(dom, r.Address, r.Size, pde, guest ? pasid : null)),
        (8, from dev in Pick(Devices)
            from r in Range
            from guest in Chance(40)
            from pasid in Pick(Pasids)
            from qdep in Gen.Choose(0, 255)
            from queue in Gen.Frequency((3, Gen.Constant<ushort?>(null)), (1, Gen.Choose(0, 0xFFFF).Select(q => (ushort?)q)))
            select AmdViCommand.InvalidateIotlbPages(dev, r.Address, r.Size, guest ? pasid : null, (byte)qdep, queue)),
        (4, Pick(Devices).Select(AmdViCommand.InvalidateDevTabEntry)),
        (3, Pick(Devices).Select(AmdViCommand.InvalidateInterruptTable)),
        (2, Gen.Constant(AmdViCommand.InvalidateIommuAll())),
        (1, from op in Pick(Others)
            from a in U64
            from b in U64
            select new AmdViCommand(((ulong)op << 60) | (a & 0x0FFF_FFFF_FFFF_FFFFUL), b)));

    private static Gen<AmdViCommand> Command => Gen.Frequency(
        (80, Wellformed),
        (12, from c in Wellformed
             from bit in Gen.Choose(0, 127)
             select bit < 64 ? new AmdViCommand(c.Qword0 ^ (1UL << bit), c.Qword1) : new AmdViCommand(c.Qword0, c.Qword1 ^ (1UL << (bit - 64)))),
        (4, from c in Wellformed from op in Gen.Choose(0, 15) select new AmdViCommand((c.Qword0 & ~(0xFUL << 60)) | ((ulong)op << 60), c.Qword1)),
        (2, from a in U64 from b in U64 select new AmdViCommand(a, b)));

    private static Gen<QueueStep> Fill => Gen.Frequency(
        (5, from stage in Pick(TranslationStage.Stage1, TranslationStage.Stage2, TranslationStage.Nested)
            from dom in Pick(Domains)
            from pasid in Pick(Pasids)
            from addr in Pick(Addresses)
            from size in Pick<byte>(12, 12, 21, 30)
            from global in Chance(10)
            from table in Chance(15)
            let s2 = stage == TranslationStage.Stage2
            let span = table ? (size == 12 ? (byte)21 : size) : size
            let input = addr & ~((1UL << span) - 1)
            let space = s2 || global ? AddressSpace.None : pasid
            select (QueueStep)new QueueFill(table
                ? TranslationEntry.Table(stage, dom, space, input, 0x1000, span, global: global && !s2)
                : TranslationEntry.Leaf(stage, dom, space, input, input, size, global: global && !s2), null, null)),
        (3, from dev in Pick(Devices)
            from pasid in Gen.Frequency((2, Gen.Constant(AddressSpace.None)), (3, Pick(Pasids)))
            from addr in Pick(Addresses)
            from size in Pick<byte>(12, 12, 21)
            from global in Chance(10)
            let input = addr & ~((1UL << size) - 1)
            select (QueueStep)new QueueFill(null, new DeviceTlbEntry(dev, pasid, input, input, size, global: global), null)),
        (3, from kind in Pick(ConfigKinds.Context, ConfigKinds.PasidEntry, ConfigKinds.InterruptEntry)
            from dev in Pick(Devices)
            from pasid in Pick(Pasids)
            from dom in Pick(Domains)
            select (QueueStep)new QueueFill(null, null, new ConfigEntry(kind, dev, kind == ConfigKinds.PasidEntry ? pasid : AddressSpace.None, dom, 1))));

    private static Gen<ulong> ControlValue =>
        from bits in Gen.Choose(0, 63)
        from inv in Gen.Choose(0, 7)
        from enable in Chance(70)
        select (enable ? ControlIommuEn | ControlCmdBufEn : ((bits & 32) != 0 ? ControlCmdBufEn : 0)) |
               ((bits & 1) != 0 ? ControlEventLogEn : 0) | ((bits & 2) != 0 ? ControlEventIntEn : 0) |
               ((bits & 4) != 0 ? ControlComWaitIntEn : 0) | ((bits & 8) != 0 ? ControlIommuEn : 0) | ((ulong)inv << ControlInvTimeOutShift);

    private static Gen<QueueStep> RegisterWrite => Gen.Frequency(
        (4, ControlValue.Select(v => (QueueStep)new QueueWrite(AmdViRegisters.Control, v, 8))),
        (2, Gen.Choose(0, 7).Select(v => (QueueStep)new QueueWrite(AmdViRegisters.Status, (ulong)v, 4))),
        (2, from h in Gen.Choose(0, 40) from size in Pick(4, 8) select (QueueStep)new QueueWrite(CommandBufferHead, (ulong)h * 16, size)),
        (2, from t in Gen.Choose(0, 40) select (QueueStep)new QueueWrite(CommandBufferTail, (ulong)t * 16, 4)),
        (2, from h in Gen.Choose(0, 4) select (QueueStep)new QueueWrite(EventLogHead, (ulong)h * 16, 4)),
        (1, from t in Gen.Choose(0, 4) select (QueueStep)new QueueWrite(EventLogTail, (ulong)t * 16, 4)),
        (1, from len in Pick(8, 8, 9, 3) select (QueueStep)new QueueWrite(CommandBufferBase, AmdViDifferential.BufferRegion | ((ulong)len << 56), 8)),
        (1, from len in Pick(8, 8, 0, 9) select (QueueStep)new QueueWrite(EventLogBase, AmdViDifferential.EventRegion | ((ulong)len << 56), 8)),
        (1, from off in Gen.Choose(0, 0x1000)
            from v in U64
            from size in Pick(1, 2, 4, 8)
            select (QueueStep)new QueueWrite((uint)((off & 0x7FF) * 4) | (uint)((off & 0x800) << 2), v, size)));

    private static Gen<QueueStep> Step => Gen.Frequency(
        (40, from n in Gen.Frequency((3, Gen.Choose(1, 3)), (1, Gen.Choose(4, 12)))
             from cs in Command.ArrayOf(n)
             select (QueueStep)new AmdViSubmit([.. cs])),
        (20, Fill),
        (12, RegisterWrite),
        (8, Gen.Constant((QueueStep)new QueueRecover())),
        (6, Gen.Constant((QueueStep)new AmdViDrainEvents())));

    private static Gen<QueueFaults> Faults => Gen.Frequency(
        (2, Gen.Constant(QueueFaults.None)),
        (2, from seed in Gen.Choose(0, int.MaxValue)
            from timeout in Pick(0u, 100_000u, 400_000u)
            from ice in Pick(0u, 0u, 200_000u)
            from fetch in Pick(0u, 0u, 50_000u)
            from dead in Gen.Frequency((3, Gen.Constant(ImmutableArray<uint>.Empty)), (1, Pick(Devices).Select(d => ImmutableArray.Create((uint)d))))
            from timeoutAt in Gen.Choose(0, 8).Select(x => (ulong)x).ArrayOf(2)
            from iceAt in Gen.Choose(0, 8).Select(x => (ulong)x).ArrayOf(1)
            from fetchAt in Gen.Choose(0, 30).Select(x => (ulong)x).ArrayOf(2)
            select new QueueFaults((ulong)seed, timeout, ice, fetch, dead, [.. timeoutAt], [.. iceAt], [.. fetchAt])));

    public static Arbitrary<AmdViScenario> Scenarios() => Arb.From(
        from preset in Gen.Frequency((5, Gen.Constant(0)), (1, Gen.Choose(1, 2)))
        from faults in Faults
        from comLen in Gen.Frequency((6, Gen.Constant(8)), (2, Gen.Constant(9)), (1, Pick(0, 7, 10, 15)))
        from evtLen in Gen.Frequency((6, Gen.Constant(8)), (1, Pick(0, 9, 15)))
        from unmapped in Gen.Frequency((30, Gen.Constant(false)), (1, Gen.Constant(true)))
        from control in Gen.Frequency((4, Gen.Constant(ControlEventLogEn | ControlEventIntEn | ControlComWaitIntEn)), (1, ControlValue))
        from enabled in Chance(90)
        from count in Gen.Choose(3, 25)
        from steps in Step.ArrayOf(count)
        select new AmdViScenario(preset, faults, comLen, evtLen, unmapped, control, enabled, [.. steps]));
}
