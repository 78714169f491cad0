using System.Collections.Immutable;
using System.Runtime.InteropServices;
using FastInval.Reference.Scenarios;

namespace FastInval.Fuzz.Targets;

/// <summary>
/// The fast engine and the reference engine agree on every outcome and every lookup. The input is decoded into a
/// <see cref="Scenario"/> (engine settings, a fault plan, a sequence of fills, lookups and invalidation batches) and run
/// through <see cref="Differential"/>: exactly when capacities are roomy, "never invent or resurrect" when they are tiny.
/// </summary>
/// <remarks>
/// Input layout (missing bytes read as zero):
/// <code>
/// [0]  kernel = Available[byte % 4]
/// [1]  bit 0: tiny capacities (1..8 entries per cache, evictions) else roomy (512);  bits 1..3: tiny capacity − 1
/// [2]  fault-plan flags: bit 0 seeded rates, bit 1 a dead source id, bit 2 a time-out ordinal, bit 3 a completion-error ordinal
///      then, per set bit in that order: rates = seed byte, time-out ppm byte × 4000, completion ppm byte × 4000;
///      dead = source-id palette index; ordinals = one byte each
/// then up to 64 operations, each an opcode byte (mod 13) and its operands (palette indices are single bytes):
///  0 fill IOTLB leaf:  stage, domain, address space, address, span (leaf spans), output, rights, flags (bit 0 global)
///  1 fill IOTLB table: stage, domain, address space, address, span (table spans), output, flags (bit 0 global)
///  2 fill device TLB:  source id, PASID, address, span = 12 + byte % 52, output, flags (bit 0 global)
///  3 fill config:      kind, source id, address space, domain, value byte
///  4 IOTLB lookup:     stage, domain, address space, address, jitter
///  5 IOTLB table lookup: stage, domain, address space, address, span byte (any)
///  6 device-TLB lookup: source id, PASID, address, jitter
///  7 config lookup:    kind, source id, address space
///  8 execute one structured descriptor (see below)
///  9 execute one raw 32-byte descriptor (any bytes: mostly invalid)
/// 10 batch: 1 + byte % 8 structured descriptors
/// 11 clear a cache (byte % 3)
/// 12 replace the fault plan (as in [2])
/// structured descriptor: scope byte % 5, flags byte (& 0x1F), stages byte (& 7), hints byte (level = b & 3,
/// granule = b >> 2 & 3, kept only for IotlbRange), kinds byte (& 0x1F), domain, address space, source id, first address,
/// range length class (0 one byte, 1 one page, 2 512 pages, 3 1 GiB, 4 to the top, 5 everything from 0)
/// </code>
/// Palettes are small so that collisions, overlaps and the probe/scan boundary are common.
/// </remarks>
public sealed class EngineDifferential : IFuzzer
{
    private static readonly TagScanKernel[] Kernels = [.. TagScanKernels.Available];
    private static readonly ushort[] Domains = [0, 1, 2, 0xFFFF];
    private static readonly uint[] AddressSpaces = [AddressSpace.None, 0, 5, AddressSpace.MaxId, AddressSpace.MaxId + 1];
    private static readonly uint[] SourceIds = [0x10, 0x11, 0x1_0010, 0];
    private static readonly ulong[] Addresses =
        [0, 0x1000, 0x7000, 0x1F_F000, 0x20_0000, 0x20_1000, 0x3FFF_F000, 0x4000_0000, 0x4020_0000, 0xFFFF_FFFF_FFFF_F000];
    private static readonly ulong[] Jitters = [0, 0x10, 0xFFF, 0x1_0234, 0x1F_FFFF];
    private static readonly ulong[] Outputs = [0, 0x12_3456_7000, 0x4000_0000, 0x8000_0000_0000_0000];
    private static readonly byte[] LeafSpans = [12, 21, 30, 14, 25, 36, 16, 29, 42, 13];
    private static readonly byte[] TableSpans = [21, 30, 39, 25, 36, 47, 29, 42, 55, 12];
    private static readonly TranslationStage[] Stages = [TranslationStage.Stage1, TranslationStage.Stage2, TranslationStage.Nested, (TranslationStage)3];
    private static readonly ConfigKinds[] Kinds =
        [ConfigKinds.Context, ConfigKinds.PasidEntry, ConfigKinds.StreamTableEntry, ConfigKinds.ContextDescriptor, ConfigKinds.InterruptEntry, ConfigKinds.Context | ConfigKinds.PasidEntry];

    public void FuzzTarget(ReadOnlySpan<byte> bytes)
    {
        Scenario scenario = Decode(bytes);
        bool tiny = scenario.IotlbCapacity <= 8;
        string? disagreement = tiny ? Differential.RunEvicting(scenario) : Differential.RunExact(scenario);
        if (disagreement is not null)
        {
            throw new OracleException($"{disagreement}\nscenario:{scenario}");
        }
    }

    /// <summary>Decodes an input into a scenario (public so that tests and tools can print one).</summary>
    public static Scenario Decode(ReadOnlySpan<byte> bytes)
    {
        var input = new FuzzInput(bytes);
        TagScanKernel kernel = input.Pick<TagScanKernel>(Kernels);
        byte mode = input.Byte();
        int capacity = (mode & 1) != 0 ? 1 + ((mode >> 1) & 7) : 512;
        FaultSpec plan = Plan(ref input);
        var ops = ImmutableArray.CreateBuilder<Op>();
        while (input.HasMore && ops.Count < 64)
        {
            ops.Add(Operation(ref input));
        }

        return new Scenario(kernel, capacity, capacity, capacity, plan, ops.ToImmutable());
    }

    private static FaultSpec Plan(ref FuzzInput input)
    {
        byte flags = input.Byte();
        ulong seed = 0;
        uint timeout = 0, ice = 0;
        ImmutableArray<uint> dead = [];
        ImmutableArray<ulong> timeoutAt = [], iceAt = [];
        if ((flags & 1) != 0)
        {
            seed = input.Byte();
            timeout = input.Byte() * 4000u;
            ice = input.Byte() * 4000u;
        }

        if ((flags & 2) != 0)
        {
            dead = [input.Pick<uint>(SourceIds)];
        }

        if ((flags & 4) != 0)
        {
            timeoutAt = [input.Byte()];
        }

        if ((flags & 8) != 0)
        {
            iceAt = [input.Byte()];
        }

        return new FaultSpec(seed, timeout, ice, dead, timeoutAt, iceAt);
    }

    private static Op Operation(ref FuzzInput input)
    {
        switch (input.Byte() % 13)
        {
            case 0:
            {
                TranslationStage stage = input.Pick<TranslationStage>(Stages);
                ushort domain = input.Pick<ushort>(Domains);
                uint asid = input.Pick<uint>(AddressSpaces);
                ulong address = input.Pick<ulong>(Addresses);
                byte span = input.Pick<byte>(LeafSpans);
                ulong output = input.Pick<ulong>(Outputs);
                var rights = (AccessRights)(input.Byte() & 0xF);
                bool global = (input.Byte() & 1) != 0;
                Granule g = span switch { 14 or 25 or 36 => Granule.Size16K, 16 or 29 or 42 => Granule.Size64K, _ => Granule.Size4K };
                ulong mask = span >= 64 ? ulong.MaxValue : (1UL << span) - 1;
                return new FillIotlbOp(new TranslationEntry(stage, domain, asid, address & ~mask, output & ~mask, span, rights, g, global, isTable: false));
            }

            case 1:
            {
                TranslationStage stage = input.Pick<TranslationStage>(Stages);
                ushort domain = input.Pick<ushort>(Domains);
                uint asid = input.Pick<uint>(AddressSpaces);
                ulong address = input.Pick<ulong>(Addresses);
                byte span = input.Pick<byte>(TableSpans);
                ulong output = input.Pick<ulong>(Outputs);
                bool global = (input.Byte() & 1) != 0;
                Granule g = span switch { 25 or 36 or 47 => Granule.Size16K, 29 or 42 or 55 => Granule.Size64K, _ => Granule.Size4K };
                ulong mask = (1UL << span) - 1;
                return new FillIotlbOp(TranslationEntry.Table(stage, domain, asid, address & ~mask, output & ~0xFFFFUL, span, g, global));
            }

            case 2:
            {
                uint sid = input.Pick<uint>(SourceIds);
                uint pasid = input.Pick<uint>(AddressSpaces);
                ulong address = input.Pick<ulong>(Addresses);
                byte span = (byte)(12 + (input.Byte() % 52));
                ulong output = input.Pick<ulong>(Outputs);
                bool global = (input.Byte() & 1) != 0;
                ulong mask = (1UL << span) - 1;
                return new FillDeviceTlbOp(new DeviceTlbEntry(sid, pasid, address & ~mask, output & ~mask, span, AccessRights.ReadWrite, global));
            }

            case 3:
                return new FillConfigOp(new ConfigEntry(input.Pick<ConfigKinds>(Kinds), input.Pick<uint>(SourceIds),
                    input.Pick<uint>(AddressSpaces), input.Pick<ushort>(Domains), input.Byte()));
            case 4:
                return new LookupIotlbOp(input.Pick<TranslationStage>(Stages), input.Pick<ushort>(Domains), input.Pick<uint>(AddressSpaces),
                    input.Pick<ulong>(Addresses) + input.Pick<ulong>(Jitters));
            case 5:
                return new LookupIotlbTableOp(input.Pick<TranslationStage>(Stages), input.Pick<ushort>(Domains), input.Pick<uint>(AddressSpaces),
                    input.Pick<ulong>(Addresses), input.Byte());
            case 6:
                return new LookupDeviceTlbOp(input.Pick<uint>(SourceIds), input.Pick<uint>(AddressSpaces),
                    input.Pick<ulong>(Addresses) + input.Pick<ulong>(Jitters));
            case 7:
                return new LookupConfigOp(input.Pick<ConfigKinds>(Kinds), input.Pick<uint>(SourceIds), input.Pick<uint>(AddressSpaces));
            case 8:
                return new ExecuteOp(Structured(ref input));
            case 9:
            {
                Span<byte> raw = stackalloc byte[32];
                input.Bytes(raw);
                return new ExecuteOp(MemoryMarshal.Read<InvalidationDescriptor>(raw));
            }

            case 10:
            {
                int n = 1 + (input.Byte() % 8);
                var batch = ImmutableArray.CreateBuilder<InvalidationDescriptor>(n);
                for (int i = 0; i < n; i++)
                {
                    batch.Add(Structured(ref input));
                }

                return new BatchOp(batch.MoveToImmutable());
            }

            case 11:
                return new ClearOp((CacheKind)(input.Byte() % 3));
            default:
                return new SetFaultPlanOp(Plan(ref input));
        }
    }

    private static InvalidationDescriptor Structured(ref FuzzInput input)
    {
        var scope = (InvalidationScope)(input.Byte() % 5);
        var flags = (InvalidationFlags)(input.Byte() & 0x1F);
        var stages = (StageMask)(input.Byte() & 7);
        byte hints = input.Byte();
        var kinds = (ConfigKinds)(input.Byte() & 0x1F);
        ushort domain = input.Pick<ushort>(Domains);
        uint asid = input.Pick<uint>(AddressSpaces);
        uint sid = input.Pick<uint>(SourceIds);
        ulong first = input.Pick<ulong>(Addresses);
        ulong last = (input.Byte() % 6) switch
        {
            0 => first,
            1 => first + 0xFFF,
            2 => first + (512UL << 12) - 1,
            3 => first + (1UL << 30) - 1,
            4 => ulong.MaxValue,
            _ => ulong.MaxValue,
        };
        if (last < first)
        {
            last = ulong.MaxValue;
        }

        if (scope == InvalidationScope.Config)
        {
            (first, last) = (sid, sid + (first >> 12 & 7));
        }

        bool range = scope == InvalidationScope.IotlbRange;
        return new InvalidationDescriptor(scope, flags, stages, range ? (byte)(hints & 3) : (byte)0,
            range ? (Granule)((hints >> 2) & 3) : Granule.Any, kinds, domain, asid, sid, first, last);
    }
}
