using System.Collections.Immutable;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Vtd;
using FastInval.Vtd;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Vtd;

/// <summary>
/// <see cref="VtdIommu"/> against the naive <see cref="ReferenceVtd"/> + reference engine on random descriptor streams
/// (valid and invalid, both widths, every capability preset, random fault plans with fetch errors, time-outs and
/// completion errors), interleaved with random register writes, recoveries and cache fills: registers, MSIs, guest
/// memory, ordinals and caches agree after every step. On failure FsCheck prints the seed to replay and the shrunk
/// scenario; the label names the first disagreement.
/// </summary>
public class VtdProperties
{
#if FSCHECK_SOAK
    private const int Cases = 200_000; // dotnet test -c Release -p:FsCheckSoak=true
#else
    private const int Cases = 10_000;
#endif

    [Property(MaxTest = Cases)]
    public Property VtdIommu_RandomDescriptorStreams_AgreeWithTheReferenceAfterEveryStep() =>
        Prop.ForAll(VtdGenerators.Scenarios(), s =>
        {
            string? why;
            try
            {
                why = VtdDifferential.Run(s);
            }
            catch (Exception ex)
            {
                why = "exception: " + ex;
            }

            return (why is null).Label(why ?? "agree")
                .Classify(s.Wide, "256-bit")
                .Classify(s.Steps.Any(x => x is QueueRecover), "with recovery");
        });

    /// <summary>The same streams with the fault plan as the unit's device-TLB sink: every device-TLB invalidation goes
    /// out as a request and is answered inside the sink call, so the asynchronous path (tickets, held waits, answers
    /// applied to the engine, ITE / ICE from the answers) must give what the reference gives for the plan.</summary>
    [Property(MaxTest = Cases / 4)]
    public Property VtdIommu_WithTheFaultPlanAsItsDeviceTlbSink_AgreesWithTheReference() =>
        Prop.ForAll(VtdGenerators.Scenarios(), s =>
        {
            string? why;
            try
            {
                why = VtdDifferential.Run(s, planAsSink: true);
            }
            catch (Exception ex)
            {
                why = "exception: " + ex;
            }

            return (why is null).Label(why ?? "agree");
        });
}

/// <summary>Small palettes, so descriptors hit cached entries and each other all the time.</summary>
internal static class VtdGenerators
{
    private static readonly ushort[] Dids = [0, 1, 2];
    private static readonly ushort[] Sids = [0x10, 0x11, 0x14, 0x17, 0x1234];
    private static readonly uint[] Pasids = [5, 6, 0xF_FFFF];
    private static readonly ulong[] Addresses = [0x0, 0x1000, 0x3000, 0x7000, 0x20_0000, 0x21_3000, 0x4000_0000, 0xFFFF_FFFF_F000];
    private static readonly int[] Ams = [0, 0, 1, 2, 3, 9, 18, 19, 30, 52, 63];

    private static Gen<T> Pick<T>(params T[] values) => Gen.Elements(values);

    private static Gen<bool> Chance(int percent) => Gen.Choose(0, 99).Select(x => x < percent);

    private static Gen<ulong> U64 => from hi in Gen.Choose(int.MinValue, int.MaxValue)
                                     from lo in Gen.Choose(int.MinValue, int.MaxValue)
                                     select ((ulong)(uint)hi << 32) | (uint)lo;

    private static Gen<VtdDescriptor> Wellformed =>
        from type in Gen.Frequency((8, Gen.Constant(1)), (12, Gen.Constant(2)), (8, Gen.Constant(3)), (5, Gen.Constant(4)),
            (20, Gen.Constant(5)), (14, Gen.Constant(6)), (6, Gen.Constant(7)), (8, Gen.Constant(8)))
        from g in Gen.Frequency((1, Gen.Constant(0)), (3, Gen.Constant(1)), (4, Gen.Constant(2)), (6, Gen.Constant(3)))
        from did in Pick(Dids)
        from sid in Pick(Sids)
        from pasid in Pick(Pasids)
        from addr in Pick(Addresses)
        from am in Pick(Ams)
        from bits in Gen.Choose(0, 255)
        from size in Gen.Choose(0, 20)
        from data in Gen.Choose(0, 9)
        from statusSlot in Gen.Frequency((9, Gen.Choose(0, 15).Select(x => VtdDifferential.StatusRegion + (ulong)(x * 4))),
            (1, Gen.Constant(VtdDifferential.Unmapped)))
        select type switch
        {
            1 => new VtdDescriptor(0x1 | ((ulong)(uint)g << 4) | ((ulong)did << 16) | ((ulong)sid << 32) | ((ulong)(uint)(bits & 3) << 48), 0),
            2 => new VtdDescriptor(0x2 | ((ulong)(uint)g << 4) | ((ulong)(uint)(bits & 0xC) << 4) | ((ulong)did << 16),
                addr | ((bits & 0x10) != 0 ? 1UL << 6 : 0) | (uint)am),
            3 => new VtdDescriptor(0x3 | ((ulong)(uint)(bits & 0x1F) << 16) | ((ulong)sid << 32) | ((bits & 0x80) != 0 ? 0x5UL << 12 : 0),
                SizeEncoded(addr, size, bit: 0)),
            4 => new VtdDescriptor(0x4 | ((bits & 1) != 0 ? 1UL << 4 : 0) | ((ulong)(uint)(bits >> 3 & 0x1F) << 27) | ((ulong)sid << 32), 0),
            5 => new VtdDescriptor(0x5 | ((ulong)(uint)(bits & 0xF) << 4) | ((ulong)(uint)data << 32), statusSlot),
            6 => new VtdDescriptor(0x6 | ((ulong)(uint)g << 4) | ((ulong)did << 16) | ((ulong)pasid << 32),
                g == 3 ? addr | ((bits & 0x10) != 0 ? 1UL << 6 : 0) | (uint)am : 0),
            7 => new VtdDescriptor(0x7 | ((ulong)(uint)g << 4) | ((ulong)did << 16) | ((ulong)pasid << 32), 0),
            _ => new VtdDescriptor(0x8 | ((ulong)(uint)(bits & 0x1F) << 4) | ((ulong)sid << 16) | ((ulong)pasid << 32) |
                ((bits & 0x80) != 0 ? 0xABCUL << 52 : 0), SizeEncoded(addr, size, bit: 11) | ((bits & 0x40) != 0 ? 1UL : 0)),
        };

    /// <summary>ADDR with the ATS size encoding for 2^size pages (size 0: S clear), S at <paramref name="bit"/>.</summary>
    private static ulong SizeEncoded(ulong addr, int size, int bit) =>
        size == 0 ? addr : (addr | (((1UL << (size - 1)) - 1) << 12)) & ~(1UL << (12 + size - 1)) | (1UL << bit);

    /// <summary>Mostly well-formed descriptors; some with one random bit flipped (often reserved), an upper half, a
    /// random type, or random words.</summary>
    private static Gen<VtdDescriptor> Descriptor => Gen.Frequency(
        (80, Wellformed),
        (10, from d in Wellformed
             from word in Gen.Choose(0, 1)
             from bit in Gen.Choose(0, 63)
             select word == 0 ? new VtdDescriptor(d.Qw0 ^ (1UL << bit), d.Qw1) : new VtdDescriptor(d.Qw0, d.Qw1 ^ (1UL << bit))),
        (3, from d in Wellformed from bit in Gen.Choose(0, 63) select new VtdDescriptor(d.Qw0, d.Qw1, 1UL << bit, 0)),
        (3, from d in Wellformed
            from t in Gen.Choose(0, 127)
            select new VtdDescriptor((d.Qw0 & ~0xE0FUL) | ((ulong)(uint)t & 0xF) | ((ulong)((uint)t >> 4) << 9), d.Qw1)),
        (2, from a in U64 from b in U64 select new VtdDescriptor(a, b)));

    private static Gen<QueueFaults> Faults =>
        Gen.Frequency(
            (2, Gen.Constant(QueueFaults.None)),
            (3, from seed in Gen.Choose(0, int.MaxValue)
                from timeout in Pick(0u, 0u, 100_000u, 400_000u)
                from ice in Pick(0u, 0u, 100_000u, 400_000u)
                from fetch in Pick(0u, 0u, 0u, 30_000u, 150_000u)
                from dead in Gen.Frequency((4, Gen.Constant(ImmutableArray<uint>.Empty)), (1, Pick(Sids).Select(s => ImmutableArray.Create((uint)s))))
                from timeoutCount in Gen.Choose(0, 2)
                from timeoutAt in Gen.Choose(0, 10).Select(x => (ulong)x).ArrayOf(timeoutCount)
                from iceAt in Gen.Choose(0, 10).Select(x => (ulong)x).ArrayOf(2)
                from fetchAt in Gen.Choose(0, 30).Select(x => (ulong)x).ArrayOf(2)
                select new QueueFaults((ulong)seed * 0x9E37_79B9_7F4A_7C15UL, timeout, ice, fetch, dead, [.. timeoutAt], [.. iceAt], [.. fetchAt])));

    private static Gen<QueueStep> Fill =>
        Gen.Frequency(
            (5, from stage in Pick(TranslationStage.Stage1, TranslationStage.Stage2, TranslationStage.Nested)
                from did in Pick(Dids)
                from pasid in Pick(Pasids)
                from addr in Pick(Addresses)
                from size in Pick<byte>(12, 12, 21, 30)
                from global in Chance(10)
                from table in Chance(15)
                let s2 = stage == TranslationStage.Stage2
                let g = global && !s2
                let input = addr & ~((1UL << (table ? (size == 12 ? 21 : size) : size)) - 1)
                select (QueueStep)new QueueFill(table
                    ? TranslationEntry.Table(stage, did, s2 || g ? AddressSpace.None : pasid, input, 0x1000, size == 12 ? (byte)21 : size, global: g)
                    : TranslationEntry.Leaf(stage, did, s2 || g ? AddressSpace.None : pasid, input, input, size, global: g), null, null)),
            (3, from sid in Pick(Sids)
                from pasid in Gen.Frequency((2, Gen.Constant(AddressSpace.None)), (3, Pick(Pasids)))
                from addr in Pick(Addresses)
                from size in Pick<byte>(12, 13, 21)
                from global in Chance(10)
                let input = addr & ~((1UL << size) - 1)
                select (QueueStep)new QueueFill(null, new DeviceTlbEntry(sid, global ? AddressSpace.None : pasid, input, input, size, global: global), null)),
            (3, from kind in Pick(ConfigKinds.Context, ConfigKinds.PasidEntry, ConfigKinds.InterruptEntry)
                from sid in Gen.Choose(0x10, 0x18)
                from did in Pick(Dids)
                from pasid in Pick(Pasids)
                select (QueueStep)new QueueFill(null, null, new ConfigEntry(kind, (uint)sid, kind == ConfigKinds.PasidEntry ? pasid : AddressSpace.None, did, 1))));

    private static Gen<QueueStep> RegisterWrite =>
        Gen.Frequency(
            (4, Pick(0x10u, 0x20u, 0x40u, 0x50u, 0x70u, 0x01u).Select(v => (QueueStep)new QueueWrite(0x34, v, 4))),     // FSTS
            (2, Pick(0u, 1u << 31).Select(v => (QueueStep)new QueueWrite(0x38, v, 4))),                                   // FECTL
            (2, Pick(0u, 1u << 31).Select(v => (QueueStep)new QueueWrite(0xA0, v, 4))),                                   // IECTL
            (2, Gen.Constant((QueueStep)new QueueWrite(0x9C, 1, 4))),                                                     // ICS
            (1, Pick(0u, 1u << 26, (1u << 26) | (1u << 30), (1u << 31) | (1u << 26), 1u << 25 | 1u << 24 | 1u << 26)
                .Select(v => (QueueStep)new QueueWrite(0x18, v, 4))),                                                     // GCMD
            (1, from ttm in Gen.Choose(0, 3) select (QueueStep)new QueueWrite(0x20, 0x30_0000UL | ((ulong)(uint)ttm << 10), 8)),
            (1, from dw in Chance(50)
                from qs in Gen.Choose(0, 1)
                from b in Pick(VtdDifferential.QueueRegion, VtdDifferential.QueueRegion + 0x1000)
                select (QueueStep)new QueueWrite(0x90, b | (dw ? 1UL << 11 : 0) | (uint)qs, 8)),                           // IQA
            (2, from t in Gen.Choose(0, 0x2100) select (QueueStep)new QueueWrite(0x88, (ulong)(uint)t & ~0xFUL, 4)),     // IQT, any value
            (1, from off in Gen.Choose(0, 0x1004) from v in U64 from size in Pick(1, 2, 4, 8, 16) select (QueueStep)new QueueWrite((uint)off, v, size)));

    private static Gen<QueueStep> Step => Gen.Frequency(
        (40, from n in Gen.Frequency((3, Gen.Choose(1, 3)), (1, Gen.Choose(4, 10)))
             from ds in Descriptor.ArrayOf(n)
             select (QueueStep)new VtdSubmit([.. ds])),
        (20, Fill),
        (12, RegisterWrite),
        (8, Gen.Constant((QueueStep)new QueueRecover())));

    public static Arbitrary<VtdScenario> Scenarios() => Arb.From(
        from preset in Gen.Frequency((5, Gen.Constant(0)), (1, Gen.Constant(1)), (1, Gen.Constant(2)), (1, Gen.Constant(3)), (1, Gen.Constant(4)))
        from faults in Faults
        from wide in Chance(65)
        from qs in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Constant(1)))
        from queueBase in Gen.Frequency((30, Gen.Constant(VtdDifferential.QueueRegion)), (1, Gen.Constant(VtdDifferential.Unmapped)),
            (2, Gen.Constant(VtdDifferential.QueueRegion + 0x1000)))
        from ttm in Gen.Frequency((6, Gen.Constant(0)), (3, Gen.Constant(1)), (1, Gen.Choose(2, 3)))
        from maskFaults in Chance(20)
        from maskCompletions in Chance(30)
        from count in Gen.Choose(3, 25)
        from steps in Step.ArrayOf(count)
        select new VtdScenario(preset, faults, wide, qs, queueBase, ttm, maskFaults, maskCompletions, [.. steps]),
        Shrink);

    private static IEnumerable<VtdScenario> Shrink(VtdScenario s)
    {
        ImmutableArray<QueueStep> steps = s.Steps;
        for (int chunk = steps.Length / 2; chunk >= 1; chunk /= 2)
        {
            for (int start = 0; start + chunk <= steps.Length; start += chunk)
            {
                yield return s with { Steps = steps.RemoveRange(start, chunk) };
            }
        }

        for (int i = 0; i < steps.Length; i++)
        {
            if (steps[i] is VtdSubmit { Descriptors.Length: > 1 } submit)
            {
                for (int j = 0; j < submit.Descriptors.Length; j++)
                {
                    yield return s with { Steps = steps.SetItem(i, new VtdSubmit(submit.Descriptors.RemoveAt(j))) };
                }
            }
        }

        if (s.Faults != QueueFaults.None)
        {
            yield return s with { Faults = QueueFaults.None };
        }
    }
}
