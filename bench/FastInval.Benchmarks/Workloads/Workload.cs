using FastInval.Benchmarks.Qemu;

namespace FastInval.Benchmarks.Workloads;

/// <summary>
/// The shape of a generated IOTLB population: how many domains, address spaces (PASIDs) per domain, which addresses.
/// Every address space is one VT-d first-stage PASID of one domain; PASIDs are globally unique, as Linux allocates them.
/// </summary>
/// <param name="Domains">Domains (DIDs <see cref="FirstDomain"/>, +1, …).</param>
/// <param name="PasidsPerDomain">Address spaces per domain.</param>
/// <param name="PageFrames">4 KiB pages are drawn from frames [0, PageFrames).</param>
/// <param name="HugeEvery">One entry in this many is a 2 MiB page (0 = none).</param>
/// <param name="HugeBase">Input address of the first 2 MiB block 2 MiB pages are drawn from.</param>
/// <param name="HugeBlocks">2 MiB pages are drawn from blocks [0, HugeBlocks) above <paramref name="HugeBase"/>.</param>
internal readonly record struct WorkloadShape(int Domains, int PasidsPerDomain, int PageFrames, int HugeEvery, ulong HugeBase, int HugeBlocks)
{
    /// <summary>First domain id of the population.</summary>
    public const ushort FirstDomain = 1;

    /// <summary>PASID of address space 0; address space <c>s</c> has PASID <c>FirstPasid + s</c>.</summary>
    public const uint FirstPasid = 0x400;

    /// <summary>A host running many guests: 128 domains × 8 PASIDs = 1,024 address spaces; 4 KiB pages spread over
    /// 64 GiB of IOVA, one entry in 32 a 2 MiB page (in its own 128 GiB IOVA region above 1 TiB, so pages and blocks of
    /// one address space never overlap).</summary>
    public static WorkloadShape Realistic => new(128, 8, 1 << 24, 32, 1UL << 40, 1 << 16);

    public int AddressSpaces => Domains * PasidsPerDomain;

    public ushort DomainOf(int space) => (ushort)(FirstDomain + (space / PasidsPerDomain));

    public static uint PasidOf(int space) => FirstPasid + (uint)space;
}

/// <summary>Seeded generators of IOTLB contents and of the entries benchmarks refill; everything is deterministic.</summary>
internal static class Workload
{
    /// <summary>The seed of every generated workload.</summary>
    public const int Seed = 0x5EED_2026;

    /// <summary>A domain no generated population uses: holds only the entries a domain-flush benchmark refills.</summary>
    public const ushort ReservedDomain = 0xF000;

    /// <summary>A PASID no generated population uses: holds only the entries a PASID-flush benchmark refills.</summary>
    public const uint ReservedPasid = 0xF_F000;

    /// <summary>Base of an IOVA region no generated population uses (2 MiB aligned): page-invalidation targets.</summary>
    public const ulong ReservedIova = 0x7F00_0000_0000;

    /// <summary><paramref name="count"/> distinct first-stage leaf entries of the given shape.</summary>
    public static TranslationEntry[] Population(int count, WorkloadShape shape, int seed = Seed)
    {
        var rng = new Random(seed);
        var seen = new HashSet<(int Space, ulong Address)>(count);
        var result = new TranslationEntry[count];
        int n = 0;
        while (n < count)
        {
            int space = rng.Next(shape.AddressSpaces);
            bool huge = shape.HugeEvery > 0 && rng.Next(shape.HugeEvery) == 0;
            ulong input = huge
                ? shape.HugeBase + ((ulong)rng.Next(shape.HugeBlocks) << 21)
                : (ulong)rng.Next(shape.PageFrames) << 12;
            if (!seen.Add((space, input)))
            {
                continue;
            }

            ulong output = huge ? (ulong)rng.Next(1 << 20) << 21 : (ulong)rng.Next(1 << 28) << 12;
            result[n++] = TranslationEntry.Leaf(TranslationStage.Stage1, shape.DomainOf(space), WorkloadShape.PasidOf(space),
                input, output, sizeLog2: (byte)(huge ? 21 : 12));
        }

        return result;
    }

    /// <summary><paramref name="count"/> 4 KiB entries of one address space at consecutive pages from <paramref name="firstAddress"/>.</summary>
    public static TranslationEntry[] Pages(ushort domain, uint pasid, ulong firstAddress, int count)
    {
        var result = new TranslationEntry[count];
        for (int i = 0; i < count; i++)
        {
            ulong input = firstAddress + ((ulong)i << 12);
            result[i] = TranslationEntry.Leaf(TranslationStage.Stage1, domain, pasid, input, 0x40_0000_0000 + input);
        }

        return result;
    }

    /// <summary>Lookup requests for entries of <paramref name="entries"/> picked at random (with repetition), each at a
    /// random byte inside the entry's span.</summary>
    public static LookupQuery[] Queries(TranslationEntry[] entries, int count, int seed = Seed)
    {
        var rng = new Random(seed);
        var result = new LookupQuery[count];
        for (int i = 0; i < count; i++)
        {
            ref readonly TranslationEntry e = ref entries[rng.Next(entries.Length)];
            ulong offset = (ulong)rng.NextInt64(1L << e.SizeLog2);
            result[i] = new LookupQuery(e.DomainId, e.AddressSpaceId, e.InputAddress + offset);
        }

        return result;
    }

    /// <summary>At least <paramref name="count"/> entries of the realistic shape (another seed) that overlap no entry of
    /// <paramref name="cached"/> in the same address space: lookups of them miss.</summary>
    public static TranslationEntry[] Absent(TranslationEntry[] cached, int count)
    {
        var taken = new HashSet<(ushort, uint, ulong)>(cached.Length);
        foreach (ref readonly TranslationEntry e in cached.AsSpan())
        {
            taken.Add((e.DomainId, e.AddressSpaceId, e.InputAddress >> 21)); // the 2 MiB block of every cached entry
        }

        var result = new List<TranslationEntry>(count);
        int seed = Seed + 99;
        while (result.Count < count)
        {
            foreach (TranslationEntry e in Population(count, WorkloadShape.Realistic, seed++))
            {
                if (!taken.Contains((e.DomainId, e.AddressSpaceId, e.InputAddress >> 21)))
                {
                    result.Add(e);
                }
            }
        }

        return [.. result];
    }

    /// <summary>An engine whose IOTLB holds <paramref name="entries"/> (every fill must be accepted).</summary>
    public static InvalidationEngine FastInval(ReadOnlySpan<TranslationEntry> entries, int capacity, TagScanKernel kernel)
    {
        var engine = new InvalidationEngine(new EngineOptions
        {
            IotlbCapacity = capacity,
            DeviceTlbCapacity = 64,
            ConfigCacheCapacity = 64,
            Kernel = kernel,
        });
        foreach (ref readonly TranslationEntry e in entries)
        {
            if (engine.Iotlb.Fill(in e) == FillResult.Rejected)
            {
                throw new InvalidOperationException($"FastInval rejected a generated entry: {e}");
            }
        }

        return engine;
    }

    /// <summary>Fills <paramref name="refill"/> into the engine's IOTLB, executes <paramref name="descriptor"/>, and returns
    /// how many entries it removed: the body of every FastInval invalidation benchmark.</summary>
    public static int RefillAndExecute(InvalidationEngine engine, ReadOnlySpan<TranslationEntry> refill, in InvalidationDescriptor descriptor)
    {
        TranslationCache iotlb = engine.Iotlb;
        foreach (ref readonly TranslationEntry e in refill)
        {
            iotlb.Fill(in e);
        }

        int before = iotlb.Count;
        engine.Execute(in descriptor);
        return before - iotlb.Count;
    }

    /// <summary>A QEMU-style table holding <paramref name="entries"/>, aged (<see cref="QemuStyleIotlb.Age"/>) so that its
    /// flushes meet the entries in random memory order, as QEMU's GLib table does.</summary>
    public static QemuStyleIotlb Qemu(ReadOnlySpan<TranslationEntry> entries, int maxSize)
    {
        var qemu = new QemuStyleIotlb(maxSize);
        Fill(qemu, entries);
        qemu.Age(Seed);
        return qemu;
    }

    /// <summary>Caches every entry of <paramref name="entries"/> in a QEMU-style table (see the single-entry overload).</summary>
    public static void Fill(QemuStyleIotlb qemu, ReadOnlySpan<TranslationEntry> entries)
    {
        foreach (ref readonly TranslationEntry e in entries)
        {
            Fill(qemu, in e);
        }
    }

    /// <summary>
    /// Caches <paramref name="e"/> in a QEMU-style table the way QEMU's page walk would: a first-stage entry of the
    /// entry's PASID at the level of its size. QEMU keys by requester id; each domain is given one device whose source
    /// id is the domain id (<see cref="SourceIdOf"/>).
    /// </summary>
    public static void Fill(QemuStyleIotlb qemu, in TranslationEntry e) =>
        qemu.Update(SourceIdOf(e.DomainId), e.DomainId, e.InputAddress, e.OutputAddress | (ulong)e.Rights, (byte)e.Rights,
            LevelOf(e.SizeLog2), e.AddressSpaceId,
            e.Stage == TranslationStage.Stage2 ? QemuStyleIotlb.PgttSecondStage : QemuStyleIotlb.PgttFirstStage);

    /// <summary>The one device of a domain in the QEMU-style model.</summary>
    public static ushort SourceIdOf(ushort domain) => domain;

    /// <summary>VT-d level of a 4 KiB (1), 2 MiB (2) or 1 GiB (3) page.</summary>
    public static int LevelOf(int sizeLog2) => ((sizeLog2 - 12) / 9) + 1;

    /// <summary>The translated address a QEMU-style entry gives for <paramref name="address"/>.</summary>
    public static ulong Translate(QemuStyleIotlb.Entry entry, ulong address) =>
        (entry.Pte & entry.Mask) | (address & ~entry.Mask);
}

/// <summary>One lookup request: (domain, PASID, address). The QEMU-style table is asked with the domain's source id.</summary>
internal readonly record struct LookupQuery(ushort Domain, uint Pasid, ulong Address);
