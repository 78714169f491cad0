using System.Collections.Immutable;

using FastInval.Reference;
using FastInval.Reference.Scenarios;

using FsCheck;
using FsCheck.Fluent;

namespace FastInval.Tests.Properties;

/// <summary>
/// Small palettes (so that tags collide and spans overlap all the time) and the FsCheck generators of the
/// differential properties. Most generated values are valid; a few percent break exactly one documented rule.
/// </summary>
public static class Generators
{
    // ---- palettes -------------------------------------------------------------------------------------

    /// <summary>Domains (DID / VMID), including both ends of the 16-bit range.</summary>
    public static readonly ushort[] Domains = [0, 1, 0xFFFF];

    /// <summary>Address spaces, including "none" and the largest id.</summary>
    public static readonly uint[] AddressSpaces = [AddressSpace.None, 0, AddressSpace.MaxId];

    /// <summary>Ids that are neither ≤ MaxId nor None.</summary>
    public static readonly uint[] BadAddressSpaces = [AddressSpace.MaxId + 1, 0x8000_0000];

    /// <summary>Source ids / StreamIDs (32-bit: 0x1_0010 equals 0x10 in its low 16 bits).</summary>
    public static readonly uint[] SourceIds = [0x10, 0x11, 0x1_0010];

    /// <summary>A dozen addresses around 2 MiB and 1 GiB boundaries, and at the top of the address space.</summary>
    public static readonly ulong[] Addresses =
    [
        0x0, 0x1000, 0x7000, 0x1F_F000, 0x20_0000, 0x20_3000, 0x3FE0_0000, 0x3FFF_F000, 0x4000_0000, 0x4020_1000,
        0x8000_0000_0000, 0xFFFF_FFFF_FFFF_F000,
    ];

    /// <summary>Offsets added to a lookup address or a range start.</summary>
    public static readonly ulong[] Jitters = [0, 0x10, 0xFFF, 0x1_0234, 0x1F_FFFF];

    /// <summary>Output bases (aligned down to the span or granule of the entry that uses them).</summary>
    public static readonly ulong[] Outputs = [0x0, 0x12_3456_7000, 0x4000_0000, 0xFFFF_F000_0000, 0x8000_0000_0000_0000];

    /// <summary>Every table span of the three granules (4K: 2M, 1G, 512G; 16K: 32M, 64G, 128T; 64K: 512M, 4T, 32P).</summary>
    public static readonly int[] TableSpans = [21, 30, 39, 25, 36, 47, 29, 42, 55];

    private static readonly ConfigKinds[] SingleKinds =
        [ConfigKinds.Context, ConfigKinds.PasidEntry, ConfigKinds.StreamTableEntry, ConfigKinds.ContextDescriptor, ConfigKinds.InterruptEntry];

    private static readonly TranslationStage[] Stages = [TranslationStage.Stage1, TranslationStage.Stage2, TranslationStage.Nested];

    // ---- small helpers ----------------------------------------------------------------------------------

    private static Gen<T> Pick<T>(params T[] values) => Gen.Elements(values);

    private static Gen<bool> Chance(int percent) => Gen.Choose(0, 99).Select(x => x < percent);

    /// <summary><paramref name="usual"/> 19 times in 20, else <paramref name="rare"/>.</summary>
    private static Gen<T> Mostly<T>(Gen<T> usual, Gen<T> rare, int rarePercent = 5) =>
        Gen.Frequency((100 - rarePercent, usual), (rarePercent, rare));

    private static ulong AlignDown(ulong value, int log2) => log2 >= 64 ? 0 : value & ~((1UL << log2) - 1);

    private static int GranuleLog2(Granule g) => g switch { Granule.Size4K => 12, Granule.Size16K => 14, _ => 16 };

    private static Gen<ushort> Domain => Pick(Domains);

    private static Gen<uint> ValidAsid => Pick(AddressSpaces);

    private static Gen<uint> Asid => Mostly(ValidAsid, Pick(BadAddressSpaces), 3);

    private static Gen<uint> Sid => Pick(SourceIds);

    private static Gen<ulong> Address => Pick(Addresses);

    private static Gen<ulong> LookupAddress => from a in Address from j in Pick(Jitters) select unchecked(a + j);

    private static Gen<AccessRights> Rights => Mostly(
        Pick(AccessRights.ReadWrite, AccessRights.Read, AccessRights.AllBits, AccessRights.Write | AccessRights.Privileged),
        Pick((AccessRights)0x1000, (AccessRights)0xFFFF), 2);

    // ---- IOTLB entries ----------------------------------------------------------------------------------

    private enum EntryDefect
    {
        None,
        MisalignInput,
        MisalignOutput,
        LeafOutputGranuleAligned,
        BadSize,
        BadLevel,
        BadGranule,
        BadStage,
        Stage2Tags,
        BadAsid,
        GlobalBadAsid,
    }

    private static Gen<EntryDefect> Defect => Gen.Frequency(
        (150, Gen.Constant(EntryDefect.None)),
        (3, Gen.Constant(EntryDefect.MisalignInput)),
        (3, Gen.Constant(EntryDefect.MisalignOutput)),
        (5, Gen.Constant(EntryDefect.LeafOutputGranuleAligned)),
        (2, Gen.Constant(EntryDefect.BadSize)),
        (2, Gen.Constant(EntryDefect.BadLevel)),
        (2, Gen.Constant(EntryDefect.BadGranule)),
        (2, Gen.Constant(EntryDefect.BadStage)),
        (2, Gen.Constant(EntryDefect.Stage2Tags)),
        (2, Gen.Constant(EntryDefect.BadAsid)),
        (2, Gen.Constant(EntryDefect.GlobalBadAsid)));

    /// <summary>IOTLB entries: leaves and tables of every stage, granule and level, a few malformed.</summary>
    public static Gen<TranslationEntry> IotlbEntry =>
        from stage in Pick(Stages)
        from granule in Gen.Frequency((6, Gen.Constant(Granule.Size4K)), (2, Gen.Constant(Granule.Size16K)), (2, Gen.Constant(Granule.Size64K)))
        from isTable in Chance(25)
        from level in isTable ? Gen.Choose(0, 2) : Gen.Frequency((6, Gen.Constant(3)), (3, Gen.Constant(2)), (1, Gen.Constant(1)))
        from domain in Domain
        from asid in ValidAsid
        from global in Chance(20)
        from address in Address
        from output in Pick(Outputs)
        from rights in Rights
        from defect in Defect
        select MakeEntry(stage, granule, isTable, level, domain, asid, global, address, output, rights, defect);

    private static TranslationEntry MakeEntry(TranslationStage stage, Granule granule, bool isTable, int level, ushort domain,
        uint asid, bool global, ulong address, ulong output, AccessRights rights, EntryDefect defect)
    {
        int g = GranuleLog2(granule);
        int size = g + ((3 - level) * (g - 3));
        if (stage == TranslationStage.Stage2)
        {
            asid = AddressSpace.None;
            global = false;
        }

        ulong input = AlignDown(address, size);
        ulong outputAddress = AlignDown(output, isTable ? g : size);
        switch (defect)
        {
            case EntryDefect.MisalignInput:
                input |= 0x800;
                break;
            case EntryDefect.MisalignOutput:
                outputAddress |= 0x800;
                break;
            case EntryDefect.LeafOutputGranuleAligned:
                // Valid for a table or a page; a block's output must be aligned to the block.
                outputAddress = AlignDown(output, g) | (1UL << g);
                break;
            case EntryDefect.BadSize:
                size++;
                break;
            case EntryDefect.BadLevel:
                size = isTable ? g : g + (3 * (g - 3)); // a table at level 3, or a leaf at level 0
                input = AlignDown(address, size);
                break;
            case EntryDefect.BadGranule:
                granule = granule == Granule.Size4K ? Granule.Any : (Granule)4;
                break;
            case EntryDefect.BadStage:
                stage = stage == TranslationStage.Stage1 ? 0 : (TranslationStage)((byte)stage | 8);
                break;
            case EntryDefect.Stage2Tags:
                stage = TranslationStage.Stage2;
                if (asid == AddressSpace.None || global)
                {
                    asid = 0;
                }
                else
                {
                    global = true;
                }

                break;
            case EntryDefect.BadAsid:
                asid = AddressSpace.MaxId + 1;
                global = false;
                stage = stage == TranslationStage.Stage2 ? TranslationStage.Stage1 : stage;
                break;
            case EntryDefect.GlobalBadAsid:
                // Ambiguous in the docs: the address space of a global entry "is ignored".
                asid = AddressSpace.MaxId + 1;
                global = true;
                stage = stage == TranslationStage.Stage2 ? TranslationStage.Nested : stage;
                break;
        }

        return new TranslationEntry(stage, domain, asid, input, outputAddress, (byte)size, rights, granule, global, isTable);
    }

    // ---- device-TLB and configuration entries -----------------------------------------------------------

    /// <summary>Device-TLB entries of every span from 4 KiB up, a few malformed.</summary>
    public static Gen<DeviceTlbEntry> DeviceTlbEntry =>
        from sid in Sid
        from pasid in Asid
        from global in Chance(20)
        from size in Gen.Frequency(
            (10, Gen.Constant(12)), (6, Pick(13, 16, 21)), (3, Pick(30, 39, 63)), (1, Pick(0, 11, 64)))
        from address in Address
        from output in Pick(Outputs)
        from rights in Rights
        from defect in Gen.Frequency((30, Gen.Constant(0)), (1, Gen.Constant(1)), (1, Gen.Constant(2)))
        select new DeviceTlbEntry(sid, pasid,
            AlignDown(address, size) | (defect == 1 ? 0x800UL : 0),
            AlignDown(output, size) | (defect == 2 ? 0x800UL : 0),
            (byte)size, rights, global);

    /// <summary>Configuration entries of every kind, a few malformed.</summary>
    public static Gen<ConfigEntry> ConfigEntry =>
        from kind in Mostly(Pick(SingleKinds), Pick(ConfigKinds.None, ConfigKinds.Context | ConfigKinds.PasidEntry, (ConfigKinds)0x20))
        from sid in Sid
        from asid in kind is ConfigKinds.PasidEntry or ConfigKinds.ContextDescriptor
            ? Mostly(Pick(0u, 5u, AddressSpace.MaxId), Pick(AddressSpace.None, AddressSpace.MaxId + 1))
            : Mostly(Gen.Constant(AddressSpace.None), Pick(0u, 5u))
        from domain in Domain
        from value in Pick(0x1000UL, 0x2000UL, 0xDEAD_BEEF_0000UL, ulong.MaxValue)
        select new ConfigEntry(kind, sid, asid, domain, value);

    // ---- descriptors --------------------------------------------------------------------------------------

    private static Gen<(ulong First, ulong Last)> Range => Gen.Frequency(
        // A single address (SMMU TG = 0, or one page).
        (4, from a in LookupAddress select (a, a)),
        // VT-d page-selective: 2^AM pages, naturally aligned.
        (4, from a in Address
            from am in Pick(0, 1, 2, 9, 18)
            let first = AlignDown(a, 12 + am)
            select (first, first + ((1UL << (12 + am)) - 1))),
        // SMMU range: (NUM + 1) · 2^SCALE · granule bytes from an address aligned to the granule.
        (3, from a in Address
            from j in Pick(Jitters)
            from g in Pick(12, 14, 16)
            from num in Pick(0, 1, 31)
            from scale in Pick(0, 1, 9)
            let first = AlignDown(unchecked(a + j), g)
            let length = (ulong)(num + 1) << (scale + g)
            select (first, first > ulong.MaxValue - (length - 1) ? ulong.MaxValue : first + (length - 1))),
        // Everything, and everything from an address up.
        (1, Gen.Constant((0UL, ulong.MaxValue))),
        (1, from a in Address select (a, ulong.MaxValue)));

    private static Gen<StageMask> StageMasks => Gen.Frequency(
        (4, Gen.Constant(StageMask.FirstStage)),
        (2, Gen.Constant(StageMask.Stage2)),
        (1, Gen.Constant(StageMask.All)),
        (3, Gen.Choose(1, 7).Select(x => (StageMask)x)));

    private static Gen<InvalidationFlags> IotlbFlags =>
        from domain in Chance(85)
        from space in Chance(50)
        from global in Chance(50)
        from leaf in Chance(25)
        from source in Chance(5)
        select (domain ? InvalidationFlags.MatchDomain : 0) | (space ? InvalidationFlags.MatchAddressSpace : 0) |
               (global ? InvalidationFlags.IncludeGlobal : 0) | (leaf ? InvalidationFlags.LeafOnly : 0) |
               (source ? InvalidationFlags.MatchSource : 0);

    private static Gen<InvalidationDescriptor> IotlbDescriptor =>
        from flags in IotlbFlags
        from stages in StageMasks
        from domain in Domain
        from asid in ValidAsid
        from junk in Range
        from sid in Sid
        select new InvalidationDescriptor(InvalidationScope.Iotlb, flags, stages, 0, Granule.Any, ConfigKinds.None,
            domain, asid, sid, junk.Last, junk.First);

    private static Gen<InvalidationDescriptor> IotlbRangeDescriptor =>
        from flags in IotlbFlags
        from stages in StageMasks
        from domain in Domain
        from asid in ValidAsid
        from range in Range
        from granule in Gen.Frequency((3, Gen.Constant(Granule.Any)), (2, Gen.Constant(Granule.Size4K)),
            (1, Gen.Constant(Granule.Size16K)), (1, Gen.Constant(Granule.Size64K)))
        from level in granule == Granule.Any ? Gen.Constant(0) : Gen.Choose(0, 3)
        select new InvalidationDescriptor(InvalidationScope.IotlbRange, flags, stages, (byte)level, granule, ConfigKinds.None,
            domain, asid, 0, range.First, range.Last);

    private static Gen<InvalidationDescriptor> DeviceTlbDescriptor =>
        from source in Chance(85)
        from space in Chance(60)
        from global in Chance(40)
        from sid in Sid
        from pasid in ValidAsid
        from range in Range
        from domain in Domain
        select new InvalidationDescriptor(InvalidationScope.DeviceTlb,
            (source ? InvalidationFlags.MatchSource : 0) | (space ? InvalidationFlags.MatchAddressSpace : 0) |
            (global ? InvalidationFlags.IncludeGlobal : 0),
            StageMask.None, 0, Granule.Any, ConfigKinds.None, domain, pasid, sid, range.First, range.Last);

    private static Gen<InvalidationDescriptor> ConfigDescriptor =>
        from kinds in Gen.Frequency((3, Pick(SingleKinds)), (1, Gen.Choose(1, 31).Select(x => (ConfigKinds)x)))
        from source in Chance(60)
        from domainFlag in Chance(30)
        from space in Chance(40)
        from a in Sid
        from b in Sid
        from domain in Domain
        from asid in Pick(AddressSpace.None, 0u, 5u, AddressSpace.MaxId)
        from wide in Gen.Frequency((12, Gen.Constant(0)), (1, Gen.Choose(1, 3)))
        let first = wide switch { 1 => 0UL, 2 => 0x1_0000_0000UL | Math.Min(a, b), 3 => Math.Min(a, b), _ => Math.Min(a, b) }
        let last = wide switch { 1 => ulong.MaxValue, 2 => 0x1_0000_0000UL | Math.Max(a, b), 3 => 0x1_0000_0000UL, _ => Math.Max(a, b) }
        select new InvalidationDescriptor(InvalidationScope.Config,
            (source ? InvalidationFlags.MatchSource : 0) | (domainFlag ? InvalidationFlags.MatchDomain : 0) |
            (space ? InvalidationFlags.MatchAddressSpace : 0),
            StageMask.None, 0, Granule.Any, kinds, domain, asid, 0, first, last);

    private static Gen<InvalidationDescriptor> ValidDescriptor => Gen.Frequency(
        (5, IotlbDescriptor), (8, IotlbRangeDescriptor), (5, DeviceTlbDescriptor), (4, ConfigDescriptor));

    /// <summary>A descriptor with one documented rule broken (or, for some scopes, an unused field set: still valid).</summary>
    private static Gen<InvalidationDescriptor> MutatedDescriptor =>
        from d in ValidDescriptor
        from mutation in Gen.Choose(0, 9)
        from bad in Pick(BadAddressSpaces)
        select Mutate(d, mutation, bad);

    private static InvalidationDescriptor Mutate(InvalidationDescriptor d, int mutation, uint badAsid)
    {
        InvalidationScope scope = d.Scope;
        InvalidationFlags flags = d.Flags;
        StageMask stages = d.Stages;
        byte level = d.LevelHint;
        Granule granule = d.GranuleHint;
        ConfigKinds kinds = d.ConfigKinds;
        uint asid = d.AddressSpaceId;
        ulong first = d.First;
        ulong last = d.Last;
        switch (mutation)
        {
            case 0: scope = (InvalidationScope)(d.Scope == InvalidationScope.Iotlb ? 0 : 5); break;
            case 1: flags |= (InvalidationFlags)0x20; break;
            case 2: stages = d.Stages == StageMask.FirstStage ? StageMask.None : stages | (StageMask)8; break;
            case 3: level = 4; granule = granule == Granule.Any ? Granule.Size4K : granule; break;
            case 4: granule = (Granule)4; break;
            case 5: level = 2; granule = Granule.Any; break;
            case 6: granule = Granule.Size16K; break; // a hint: valid only in IotlbRange
            case 7: (first, last) = (last == ulong.MaxValue ? 1 : last + 1, first); break;
            case 8: kinds = d.ConfigKinds == ConfigKinds.Context ? ConfigKinds.None : kinds | (ConfigKinds)0x40; break;
            default: flags |= InvalidationFlags.MatchAddressSpace; asid = badAsid; break;
        }

        return new InvalidationDescriptor(scope, flags, stages, level, granule, kinds, d.DomainId, asid, d.SourceId, first, last);
    }

    /// <summary>Descriptors of every scope, about one in twelve broken.</summary>
    public static Gen<InvalidationDescriptor> Descriptor => Gen.Frequency((11, ValidDescriptor), (1, MutatedDescriptor));

    // ---- operations and scenarios --------------------------------------------------------------------------

    private static Gen<Op> LookupIotlb =>
        from stage in Mostly(Pick(Stages), Pick((TranslationStage)0, (TranslationStage)3), 2)
        from domain in Domain
        from asid in Asid
        from address in LookupAddress
        select (Op)new LookupIotlbOp(stage, domain, asid, address);

    private static Gen<Op> LookupIotlbTable =>
        from stage in Pick(Stages)
        from domain in Domain
        from asid in Asid
        from address in LookupAddress
        from span in Mostly(Pick(TableSpans), Pick(12, 14, 16, 63, 64, -1, 255), 5)
        select (Op)new LookupIotlbTableOp(stage, domain, asid, address, span);

    private static Gen<Op> LookupDeviceTlb =>
        from sid in Sid
        from pasid in Asid
        from address in LookupAddress
        select (Op)new LookupDeviceTlbOp(sid, pasid, address);

    private static Gen<Op> LookupConfig =>
        from kind in Mostly(Pick(SingleKinds), Pick(ConfigKinds.None, ConfigKinds.All), 3)
        from sid in Sid
        from asid in Pick(AddressSpace.None, 0u, 5u, AddressSpace.MaxId)
        select (Op)new LookupConfigOp(kind, sid, asid);

    private static Gen<Op> Batch => Gen.Frequency(
        (3, from n in Gen.Choose(1, 12)
            from ds in Descriptor.ArrayOf(n)
            select (Op)new BatchOp([.. ds])),
        // A storm of tag flushes, which the fast engine holds back (16 at most) and coalesces, up to eight of one shape
        // to a scan: long enough to fill the hold-back and to carry more than eight flushes of a shape.
        (1, from n in Gen.Choose(4, 40)
            from ds in Gen.Frequency((4, IotlbDescriptor), (1, ConfigDescriptor), (1, IotlbRangeDescriptor), (1, DeviceTlbDescriptor)).ArrayOf(n)
            select (Op)new BatchOp([.. ds])));

    /// <summary>A random fault plan: dead devices, faulting ordinals, random rates with a seed.</summary>
    public static Gen<FaultSpec> FaultSpec =>
        from seed in Gen.Choose(0, int.MaxValue)
        from timeoutRate in Pick(0u, 0u, 50_000u, 250_000u, 1_000_000u)
        from errorRate in Pick(0u, 0u, 100_000u, 500_000u)
        from deadCount in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Constant(1)))
        from deadSid in Sid
        from timeoutCount in Gen.Choose(0, 3)
        from errorCount in Gen.Choose(0, 3)
        from timeoutOrdinals in Gen.Choose(0, 12).Select(x => (ulong)x).ArrayOf(timeoutCount)
        from errorOrdinals in Gen.Choose(0, 12).Select(x => (ulong)x).ArrayOf(errorCount)
        select new FaultSpec((ulong)seed * 0x9E37_79B9_7F4A_7C15UL, timeoutRate, errorRate, deadCount == 0 ? [] : [deadSid], [.. timeoutOrdinals], [.. errorOrdinals]);

    /// <summary>Operations: fills, lookups, single descriptors and batches; with <paramref name="planChanges"/>, fault-plan swaps.</summary>
    public static Gen<Op> Operation(bool planChanges)
    {
        var ops = new List<(int, Gen<Op>)>
        {
            (30, IotlbEntry.Select(e => (Op)new FillIotlbOp(e))),
            (3, from e in IotlbEntry from n in Gen.Choose(2, 48) select (Op)new FillIotlbRunOp(e, n)),
            (10, DeviceTlbEntry.Select(e => (Op)new FillDeviceTlbOp(e))),
            (1, from e in DeviceTlbEntry from n in Gen.Choose(2, 24) select (Op)new FillDeviceTlbRunOp(e, n)),
            (8, ConfigEntry.Select(e => (Op)new FillConfigOp(e))),
            (12, LookupIotlb),
            (5, LookupIotlbTable),
            (6, LookupDeviceTlb),
            (4, LookupConfig),
            (12, Descriptor.Select(d => (Op)new ExecuteOp(d))),
            (6, Batch),
            (1, Pick(CacheKind.Iotlb, CacheKind.DeviceTlb, CacheKind.ConfigCache).Select(c => (Op)new ClearOp(c))),
        };
        if (planChanges)
        {
            ops.Add((2, FaultSpec.Select(p => (Op)new SetFaultPlanOp(p))));
        }

        return Gen.Frequency(ops);
    }

    /// <summary>
    /// A sequence of operations in which most lookups and descriptors are aimed at an entry filled earlier in the
    /// sequence (its tags, an address inside it, a range through it), so that hits and removals are common.
    /// </summary>
    public static Gen<ImmutableArray<Op>> Operations(bool planChanges) =>
        from ops in Operation(planChanges).ListOf()
        from aims in Gen.Choose(0, 1 << 24).ArrayOf(ops.Count)
        select Aim(ops, aims);

    private static ImmutableArray<Op> Aim(List<Op> ops, int[] aims)
    {
        var iotlb = new List<TranslationEntry>();
        var leaves = new List<TranslationEntry>();
        var tables = new List<TranslationEntry>();
        var deviceTlb = new List<DeviceTlbEntry>();
        var config = new List<ConfigEntry>();
        var result = ImmutableArray.CreateBuilder<Op>(ops.Count);
        for (int i = 0; i < ops.Count; i++)
        {
            int aim = aims[i];
            bool aimed = aim % 10 < 7;
            int pick = aim / 10;
            Op op = ops[i];
            switch (op)
            {
                case FillIotlbOp f:
                {
                    TranslationEntry n = f.Entry;
                    if (aim % 10 == 9 && iotlb.Count > 0)
                    {
                        // A refill of an earlier identity with this op's output and rights.
                        TranslationEntry e = iotlb[pick % iotlb.Count];
                        int align = e.IsTable ? EntryRules.GranuleLog2(e.Granule) : e.SizeLog2;
                        n = new TranslationEntry(e.Stage, e.DomainId, e.AddressSpaceId, e.InputAddress,
                            AlignDown(n.OutputAddress, Math.Clamp(align, 12, 64)), e.SizeLog2, n.Rights, e.Granule, e.Global, e.IsTable);
                        op = new FillIotlbOp(n);
                    }

                    iotlb.Add(n);
                    (n.IsTable ? tables : leaves).Add(n);
                    break;
                }

                case FillIotlbRunOp f:
                    foreach (TranslationEntry n in f.Entries())
                    {
                        iotlb.Add(n);
                        (n.IsTable ? tables : leaves).Add(n);
                    }

                    break;
                case FillDeviceTlbRunOp f:
                    deviceTlb.AddRange(f.Entries());
                    break;
                case FillDeviceTlbOp f:
                {
                    DeviceTlbEntry n = f.Entry;
                    if (aim % 10 == 9 && deviceTlb.Count > 0)
                    {
                        DeviceTlbEntry e = deviceTlb[pick % deviceTlb.Count];
                        n = new DeviceTlbEntry(e.SourceId, e.Pasid, e.InputAddress, AlignDown(n.OutputAddress, Math.Clamp((int)e.SizeLog2, 12, 64)),
                            e.SizeLog2, n.Rights, e.Global);
                        op = new FillDeviceTlbOp(n);
                    }

                    deviceTlb.Add(n);
                    break;
                }

                case FillConfigOp f:
                {
                    ConfigEntry n = f.Entry;
                    if (aim % 10 == 9 && config.Count > 0)
                    {
                        ConfigEntry e = config[pick % config.Count];
                        n = new ConfigEntry(e.Kind, e.SourceId, e.AddressSpaceId, n.DomainId, n.Value);
                        op = new FillConfigOp(n);
                    }

                    config.Add(n);
                    break;
                }
                case LookupIotlbOp l when aimed && leaves.Count > 0:
                {
                    TranslationEntry e = leaves[pick % leaves.Count];
                    op = new LookupIotlbOp(e.Stage, e.DomainId, e.Global ? l.AddressSpaceId : e.AddressSpaceId, Inside(e.InputAddress, e.SizeLog2, l.Address));
                    break;
                }

                case LookupIotlbTableOp l when aimed && tables.Count > 0:
                {
                    TranslationEntry e = tables[pick % tables.Count];
                    op = new LookupIotlbTableOp(e.Stage, e.DomainId, e.Global ? l.AddressSpaceId : e.AddressSpaceId,
                        Inside(e.InputAddress, e.SizeLog2, l.Address), e.SizeLog2);
                    break;
                }

                case LookupDeviceTlbOp l when aimed && deviceTlb.Count > 0:
                {
                    DeviceTlbEntry e = deviceTlb[pick % deviceTlb.Count];
                    op = new LookupDeviceTlbOp(e.SourceId, e.Global ? l.Pasid : e.Pasid, Inside(e.InputAddress, e.SizeLog2, l.Address));
                    break;
                }

                case LookupConfigOp when aimed && config.Count > 0:
                {
                    ConfigEntry e = config[pick % config.Count];
                    op = new LookupConfigOp(e.Kind, e.SourceId, e.AddressSpaceId);
                    break;
                }

                case ExecuteOp x when aimed:
                    op = new ExecuteOp(AimDescriptor(x.Descriptor, pick, iotlb, deviceTlb, config));
                    break;
                case BatchOp b:
                {
                    var aimedBatch = ImmutableArray.CreateBuilder<InvalidationDescriptor>(b.Descriptors.Length);
                    for (int j = 0; j < b.Descriptors.Length; j++)
                    {
                        int sub = (pick / (j + 1)) + (j * 7919);
                        aimedBatch.Add(sub % 10 < 7 ? AimDescriptor(b.Descriptors[j], sub / 10, iotlb, deviceTlb, config) : b.Descriptors[j]);
                    }

                    op = new BatchOp(aimedBatch.MoveToImmutable());
                    break;
                }
            }

            result.Add(op);
        }

        return result.MoveToImmutable();
    }

    /// <summary>An address inside the span at <paramref name="input"/>: the low bits of <paramref name="address"/>.</summary>
    private static ulong Inside(ulong input, int sizeLog2, ulong address) =>
        unchecked(input + (address & EntryRules.SpanMinusOne(Math.Clamp(sizeLog2, 0, 64))));

    /// <summary>Moves a descriptor's tags and range onto an earlier entry of its cache; keeps what makes it invalid.</summary>
    private static InvalidationDescriptor AimDescriptor(InvalidationDescriptor d, int pick, List<TranslationEntry> iotlb,
        List<DeviceTlbEntry> deviceTlb, List<ConfigEntry> config)
    {
        bool keepAsid = !EntryRules.IsValidAddressSpace(d.AddressSpaceId);
        bool keepRange = d.First > d.Last;
        ushort domain = d.DomainId;
        uint asid = d.AddressSpaceId;
        uint sid = d.SourceId;
        StageMask stages = d.Stages;
        ulong first = d.First;
        ulong last = d.Last;
        switch (d.Scope)
        {
            case InvalidationScope.Iotlb or InvalidationScope.IotlbRange when iotlb.Count > 0:
            {
                TranslationEntry e = iotlb[pick % iotlb.Count];
                domain = e.DomainId;
                asid = keepAsid || e.Global ? asid : e.AddressSpaceId;
                stages = (pick & 0x100) != 0 && stages != StageMask.None ? stages | (StageMask)e.Stage : stages;
                if (d.Scope == InvalidationScope.IotlbRange && !keepRange)
                {
                    (first, last) = Through(e.InputAddress, e.SizeLog2, d.First, d.Last);
                }

                break;
            }

            case InvalidationScope.DeviceTlb when deviceTlb.Count > 0:
            {
                DeviceTlbEntry e = deviceTlb[pick % deviceTlb.Count];
                sid = e.SourceId;
                asid = keepAsid || e.Global ? asid : e.Pasid;
                if (!keepRange)
                {
                    (first, last) = Through(e.InputAddress, e.SizeLog2, d.First, d.Last);
                }

                break;
            }

            case InvalidationScope.Config when config.Count > 0:
            {
                ConfigEntry e = config[pick % config.Count];
                domain = e.DomainId;
                asid = keepAsid ? asid : e.AddressSpaceId;
                if (!keepRange)
                {
                    (first, last) = (Math.Min(first, e.SourceId), Math.Max(last, e.SourceId));
                }

                break;
            }
        }

        return new InvalidationDescriptor(d.Scope, d.Flags, stages, d.LevelHint, d.GranuleHint, d.ConfigKinds, domain, asid, sid, first, last);
    }

    /// <summary>The range [first, last] moved so that it starts inside the span at <paramref name="input"/>, same length.</summary>
    private static (ulong First, ulong Last) Through(ulong input, int sizeLog2, ulong first, ulong last)
    {
        ulong length = last - first;
        ulong start = Inside(input, sizeLog2, first);
        return (start, start > ulong.MaxValue - length ? ulong.MaxValue : start + length);
    }

    /// <summary>Scenarios whose capacities are at least the working set, so nothing is ever evicted: half of them with
    /// 512 entries per cache, half with exactly as many as the distinct entries the scenario fills (see <see cref="Tight"/>).</summary>
    public static Arbitrary<Scenario> Roomy(bool faults) => Arb.From(
        from kernel in Gen.Elements(TagScanKernels.Available.ToArray())
        from plan in faults ? FaultSpec : Gen.Constant(FastInval.Reference.Scenarios.FaultSpec.None)
        from ops in Operations(planChanges: faults)
        from tight in Chance(50)
        from capacity in Gen.Frequency((19, Gen.Constant(0)), (1, Gen.Constant(1)))
        select tight
            ? Tight(kernel, plan, ops)
            : capacity == 0 ? new Scenario(kernel, 512, 512, 512, plan, ops)
            : new Scenario(kernel, 3000, 1000, 1 << 16, plan, ops),
        Shrink);

    /// <summary>
    /// Capacities exactly as large as the number of distinct identities the scenario ever fills into each cache (at
    /// least 1): the working set can never exceed them, and a scenario that fills everything before flushing runs full.
    /// </summary>
    private static Scenario Tight(TagScanKernel kernel, FaultSpec plan, ImmutableArray<Op> ops)
    {
        var everything = new ReferenceEngine();
        foreach (Op op in ops)
        {
            switch (op)
            {
                case FillIotlbOp f: everything.FillIotlb(f.Entry); break;
                case FillIotlbRunOp f: foreach (TranslationEntry e in f.Entries()) { everything.FillIotlb(e); } break;
                case FillDeviceTlbOp f: everything.FillDeviceTlb(f.Entry); break;
                case FillDeviceTlbRunOp f: foreach (DeviceTlbEntry e in f.Entries()) { everything.FillDeviceTlb(e); } break;
                case FillConfigOp f: everything.FillConfig(f.Entry); break;
            }
        }

        return new Scenario(kernel, Math.Max(1, everything.IotlbCount), Math.Max(1, everything.DeviceTlbCount),
            Math.Max(1, everything.ConfigCount), plan, ops);
    }

    /// <summary>Scenarios with tiny capacities (1–8 entries per cache): evictions happen all the time.</summary>
    public static Arbitrary<Scenario> Cramped() => Arb.From(
        from kernel in Gen.Elements(TagScanKernels.Available.ToArray())
        from iotlb in Gen.Choose(1, 8)
        from deviceTlb in Gen.Choose(1, 8)
        from config in Gen.Choose(1, 8)
        from ops in Operations(planChanges: false)
        select new Scenario(kernel, iotlb, deviceTlb, config, FastInval.Reference.Scenarios.FaultSpec.None, ops),
        Shrink);

    /// <summary>Shrinks a scenario by dropping chunks of operations (halves first, then single ones), then batch entries,
    /// then by moving to the scalar kernel.</summary>
    public static IEnumerable<Scenario> Shrink(Scenario s)
    {
        ImmutableArray<Op> ops = s.Ops;
        for (int chunk = ops.Length / 2; chunk >= 1; chunk /= 2)
        {
            for (int start = 0; start + chunk <= ops.Length; start += chunk)
            {
                yield return s with { Ops = ops.RemoveRange(start, chunk) };
            }
        }

        for (int i = 0; i < ops.Length; i++)
        {
            if (ops[i] is BatchOp { Descriptors.Length: > 1 } batch)
            {
                for (int j = 0; j < batch.Descriptors.Length; j++)
                {
                    yield return s with { Ops = ops.SetItem(i, new BatchOp(batch.Descriptors.RemoveAt(j))) };
                }

                yield return s with { Ops = ops.SetItem(i, new ExecuteOp(batch.Descriptors[0])).InsertRange(i + 1, batch.Descriptors.Skip(1).Select(d => (Op)new ExecuteOp(d))) };
            }
        }

        if (s.Kernel != TagScanKernel.Scalar)
        {
            yield return s with { Kernel = TagScanKernel.Scalar };
        }
    }
}
