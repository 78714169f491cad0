using System.Buffers.Binary;
using FastInval.Host.Traces;

namespace FastInval.Cli;

/// <summary>
/// The synthetic workloads of <c>fastinval generate</c>. Each drives one engine unit through a <see cref="TraceClient"/>
/// (so the trace holds real replies), is deterministic for a seed (<see cref="Random"/> with a seed), stops once it has
/// sent the requested number of operations (entries filled, queries looked up, descriptors executed, plus one per other
/// request; the last step may overshoot by one batch) and checks what it asks as it goes: a reply that is not what the
/// workload means to cause throws, so a generated trace is also a self-check of the engine.
/// Capacities leave room (at least twice what is cached at once), so no trace depends on the eviction policy.
/// </summary>
internal static class Workloads
{
    /// <summary>Batch size of FILL, LOOKUP and EXECUTE requests (what a VMM's queue typically gathers).</summary>
    public const int Batch = 64;

    private const ulong Page = 4096;

    /// <summary>The workloads by name, with a one-line description.</summary>
    public static IReadOnlyList<(string Name, string Description, long DefaultOperations, Action<TraceClient, Random, long> Run)> All { get; } =
    [
        ("unmap-storm", "a guest unmaps GiBs in 4 KiB pages: 64 MiB at a time is filled page by page, looked up, invalidated one 4 KiB page per descriptor, looked up again (all miss)", 8192, UnmapStorm),
        ("busy-nic-ats", "a NIC with ATS: buffers mapped in the IOTLB and its device TLB, DMA lookups, buffers recycled with IOTLB and device-TLB invalidations, one injected device-TLB time-out (the entry stays) and its retry", 8192, BusyNicAts),
        ("process-churn", "processes come and go on an SVA device: each PASID gets a PASID-table entry, first-stage and device-TLB entries; an exiting process's PASID is flushed from all three caches before it is reused", 8192, ProcessChurn),
        ("live-migration", "dirty logging: the same ranges are write-protected (range invalidation, read-only refill) and dirtied pages remapped writable (page invalidation, refill), round after round", 8192, LiveMigration),
    ];

    private static void Expect(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"workload self-check failed: {what}");
        }
    }

    private static void ExpectAll(ReadOnlySpan<byte> results, FillResult expected, string what)
    {
        foreach (byte r in results)
        {
            Expect(r == (byte)expected, $"{what}: fill result {(FillResult)r}, expected {expected}");
        }
    }

    /// <summary>unmap-storm: a guest unmapping GiBs in 4 KiB pages.</summary>
    private static void UnmapStorm(TraceClient c, Random random, long operations)
    {
        const int ChunkPages = 16_384; // 64 MiB
        int chunk = (int)Math.Clamp(operations / 2 / Batch * Batch, Batch, ChunkPages);
        ushort domain = (ushort)random.Next(1, 256);
        uint unit = c.CreateEngine(iotlb: 2 * ChunkPages, deviceTlb: 64, config: 64);
        ulong iova = (ulong)random.Next(1, 64) << 30; // GiB-aligned guest range
        var entries = new TranslationEntry[Batch];
        var descriptors = new InvalidationDescriptor[Batch];
        var sample = new ulong[Batch];
        while (c.Operations < operations)
        {
            ulong hostBase = (ulong)random.Next(1, 1 << 20) << 21;
            for (int done = 0; done < chunk; done += Batch)
            {
                for (int i = 0; i < Batch; i++)
                {
                    ulong page = (ulong)(done + i);
                    entries[i] = TranslationEntry.Leaf(TranslationStage.Stage2, domain, AddressSpace.None, iova + (page * Page), hostBase + (page * Page));
                }

                ExpectAll(c.FillIotlb(unit, entries), FillResult.Inserted, "unmap-storm fill");
            }

            for (int i = 0; i < Batch; i++)
            {
                sample[i] = iova + ((ulong)random.Next(chunk) * Page) + (ulong)random.Next(4096);
            }

            Expect(c.LookupIotlb(unit, TranslationStage.Stage2, domain, AddressSpace.None, sample) == Batch, "unmap-storm: every mapped page hits");
            for (int done = 0; done < chunk; done += Batch)
            {
                for (int i = 0; i < Batch; i++)
                {
                    ulong first = iova + ((ulong)(done + i) * Page);
                    descriptors[i] = InvalidationDescriptor.IotlbRangeAllAddressSpaces(domain, first, first + Page - 1, StageMask.Stage2,
                        leafOnly: true, granuleHint: Granule.Size4K);
                }

                Expect(c.Execute(unit, descriptors).AllOk, "unmap-storm: every page invalidation is OK");
            }

            Expect(c.LookupIotlb(unit, TranslationStage.Stage2, domain, AddressSpace.None, sample) == 0, "unmap-storm: no unmapped page hits");
            iova += (ulong)chunk * Page;
        }

        Expect(BinaryPrimitives.ReadUInt32LittleEndian(c.Stats(unit)[4..]) == 0, "unmap-storm: the IOTLB is empty at the end");
        c.Destroy(unit);
    }

    /// <summary>busy-nic-ats: a NIC with ATS, its buffers recycled, one device-TLB time-out.</summary>
    private static void BusyNicAts(TraceClient c, Random random, long operations)
    {
        const int Buffers = 512;
        const uint Nic = 0x0300; // bus 3, device 0, function 0
        ushort domain = (ushort)random.Next(1, 256);
        uint unit = c.CreateEngine(iotlb: 4 * Buffers, deviceTlb: 4 * Buffers, config: 64);
        ulong ring = (ulong)random.Next(1, 1024) << 24;
        var host = new ulong[Buffers];
        var iotlb = new TranslationEntry[Batch];
        var atc = new DeviceTlbEntry[Batch];
        var dma = new ulong[Batch];
        var recycle = new InvalidationDescriptor[2 * 8];
        ulong Iova(int buffer) => ring + ((ulong)buffer * Page);

        // Post every buffer: the driver maps it (IOTLB) and the NIC's first DMA caches the translation (ATS).
        for (int b = 0; b < Buffers; b++)
        {
            host[b] = (ulong)random.Next(1, 1 << 24) << 12;
        }

        for (int b = 0; b < Buffers; b += Batch)
        {
            for (int i = 0; i < Batch; i++)
            {
                iotlb[i] = TranslationEntry.Leaf(TranslationStage.Stage2, domain, AddressSpace.None, Iova(b + i), host[b + i]);
                atc[i] = new DeviceTlbEntry(Nic, AddressSpace.None, Iova(b + i), host[b + i]);
            }

            ExpectAll(c.FillIotlb(unit, iotlb), FillResult.Inserted, "busy-nic-ats: IOTLB fill");
            ExpectAll(c.FillDeviceTlb(unit, atc), FillResult.Inserted, "busy-nic-ats: ATS fill");
        }

        bool injected = false;
        while (c.Operations < operations || !injected)
        {
            // DMA: the NIC translates through its ATC; the IOMMU's IOTLB answers its translation requests.
            for (int i = 0; i < Batch; i++)
            {
                dma[i] = Iova(random.Next(Buffers)) + (ulong)random.Next(4096);
            }

            Expect(c.LookupDeviceTlb(unit, Nic, AddressSpace.None, dma) == Batch, "busy-nic-ats: posted buffers hit in the ATC");
            Expect(c.LookupIotlb(unit, TranslationStage.Stage2, domain, AddressSpace.None, dma.AsSpan(0, 16)) == 16, "busy-nic-ats: posted buffers hit in the IOTLB");

            // Recycle 8 buffers: unmap each (IOTLB page, then the device's ATC page), then map fresh pages there.
            int start = random.Next(Buffers - 8);
            for (int i = 0; i < 8; i++)
            {
                ulong first = Iova(start + i);
                recycle[2 * i] = InvalidationDescriptor.IotlbRangeAllAddressSpaces(domain, first, first + Page - 1, StageMask.Stage2, leafOnly: true);
                recycle[(2 * i) + 1] = InvalidationDescriptor.DeviceTlb(Nic, AddressSpace.None, first, first + Page - 1);
            }

            bool inject = !injected && c.Operations >= operations / 2;
            ulong ordinal = 0;
            if (inject)
            {
                // The NIC stops answering one invalidation: the fault plan makes the next device-TLB descriptor time out.
                ordinal = BinaryPrimitives.ReadUInt64LittleEndian(c.Stats(unit)[24..]);
                c.FaultPlan(unit, (ulong)random.NextInt64(), [ordinal]);
            }

            BatchResult result = c.Execute(unit, recycle);
            if (inject)
            {
                Expect(result.TimedOut == 1 && result.FirstFailureIndex == 1 && result.Ok == recycle.Length - 1, "busy-nic-ats: the injected time-out");
                ulong stale = Iova(start);
                Expect(c.LookupDeviceTlb(unit, Nic, AddressSpace.None, [stale]) == 1, "busy-nic-ats: a timed-out invalidation leaves the ATC entry");
                c.FaultPlan(unit, 0, []);
                Expect(c.Execute(unit, recycle.AsSpan(1, 1)).AllOk, "busy-nic-ats: the retry completes");
                Expect(c.LookupDeviceTlb(unit, Nic, AddressSpace.None, [stale]) == 0, "busy-nic-ats: the retry removed the ATC entry");
                injected = true;
            }
            else
            {
                Expect(result.AllOk, "busy-nic-ats: recycle invalidations are OK");
            }

            for (int i = 0; i < 8; i++)
            {
                host[start + i] = (ulong)random.Next(1, 1 << 24) << 12;
                iotlb[i] = TranslationEntry.Leaf(TranslationStage.Stage2, domain, AddressSpace.None, Iova(start + i), host[start + i]);
                atc[i] = new DeviceTlbEntry(Nic, AddressSpace.None, Iova(start + i), host[start + i]);
            }

            ExpectAll(c.FillIotlb(unit, iotlb.AsSpan(0, 8)), FillResult.Inserted, "busy-nic-ats: remap");
            ExpectAll(c.FillDeviceTlb(unit, atc.AsSpan(0, 8)), FillResult.Inserted, "busy-nic-ats: ATS refill");
        }

        c.Destroy(unit);
    }

    /// <summary>process-churn: PASIDs created and flushed on an SVA device.</summary>
    private static void ProcessChurn(TraceClient c, Random random, long operations)
    {
        const uint Device = 0x0500;
        const int Live = 16, PagesPerProcess = 32;
        ushort domain = (ushort)random.Next(1, 256);
        uint unit = c.CreateEngine(iotlb: 4 * Live * PagesPerProcess, deviceTlb: 4 * Live * PagesPerProcess, config: 4 * Live);
        var free = new Queue<uint>(Enumerable.Range(1, 2 * Live).Select(p => (uint)p));
        var live = new List<uint>();
        var pages = new TranslationEntry[PagesPerProcess];
        var atc = new DeviceTlbEntry[PagesPerProcess];
        var addresses = new ulong[PagesPerProcess];
        var flush = new InvalidationDescriptor[3];
        static ulong Va(int page) => 0x7F00_0000_0000UL + ((ulong)page * Page);
        for (int p = 0; p < PagesPerProcess; p++)
        {
            addresses[p] = Va(p) + 0x123;
        }

        while (c.Operations < operations)
        {
            if (live.Count < Live && (live.Count == 0 || random.Next(3) != 0))
            {
                // A process binds to the device: its PASID-table entry, its page tables' translations, the device's ATS.
                uint pasid = free.Dequeue();
                Expect(c.LookupIotlb(unit, TranslationStage.Stage1, domain, pasid, addresses) == 0, "process-churn: a reused PASID starts empty");
                ExpectAll(c.FillConfig(unit, [new ConfigEntry(ConfigKinds.PasidEntry, Device, pasid, domain, ((ulong)random.Next(1, 1 << 20) << 12) | 1)]),
                    FillResult.Inserted, "process-churn: PASID entry");
                for (int p = 0; p < PagesPerProcess; p++)
                {
                    ulong pa = (ulong)random.Next(1, 1 << 24) << 12;
                    pages[p] = TranslationEntry.Leaf(TranslationStage.Stage1, domain, pasid, Va(p), pa);
                    atc[p] = new DeviceTlbEntry(Device, pasid, Va(p), pa);
                }

                ExpectAll(c.FillIotlb(unit, pages), FillResult.Inserted, "process-churn: first-stage fill");
                ExpectAll(c.FillDeviceTlb(unit, atc), FillResult.Inserted, "process-churn: ATS fill");
                Expect(c.LookupDeviceTlb(unit, Device, pasid, addresses) == PagesPerProcess, "process-churn: the new process's DMA hits");
                live.Add(pasid);
            }
            else
            {
                // A process exits: its PASID is flushed from the IOTLB, the device TLB and the PASID cache, then freed.
                int k = random.Next(live.Count);
                uint pasid = live[k];
                live.RemoveAt(k);
                flush[0] = InvalidationDescriptor.IotlbAddressSpace(domain, pasid);
                flush[1] = InvalidationDescriptor.DeviceTlb(Device, pasid);
                flush[2] = InvalidationDescriptor.ConfigAddressSpace(ConfigKinds.PasidEntry, pasid, domainId: domain);
                Expect(c.Execute(unit, flush).AllOk, "process-churn: PASID flush");
                Expect(c.LookupDeviceTlb(unit, Device, pasid, addresses) == 0, "process-churn: the exited process's ATC entries are gone");
                Expect(c.LookupConfig(unit, ConfigKinds.PasidEntry, Device, [pasid]) == 0, "process-churn: its PASID entry is gone");
                free.Enqueue(pasid);
            }
        }

        c.Destroy(unit);
    }

    /// <summary>live-migration: dirty logging over the same ranges, round after round.</summary>
    private static void LiveMigration(TraceClient c, Random random, long operations)
    {
        const int Ranges = 16, PagesPerRange = 64;
        ushort domain = (ushort)random.Next(1, 256);
        uint unit = c.CreateEngine(iotlb: 4 * Ranges * PagesPerRange, deviceTlb: 64, config: 64);
        ulong guest = (ulong)random.Next(1, 256) << 30;
        var host = new ulong[Ranges];
        var entries = new TranslationEntry[PagesPerRange];
        var protect = new InvalidationDescriptor[1];
        var dirty = new InvalidationDescriptor[8];
        var probe = new ulong[PagesPerRange];
        ulong RangeBase(int r) => guest + ((ulong)r * 2 * PagesPerRange * Page); // ranges with holes between them
        void Map(int r, AccessRights rights)
        {
            for (int p = 0; p < PagesPerRange; p++)
            {
                entries[p] = TranslationEntry.Leaf(TranslationStage.Stage2, domain, AddressSpace.None, RangeBase(r) + ((ulong)p * Page), host[r] + ((ulong)p * Page), rights: rights);
            }
        }

        for (int r = 0; r < Ranges; r++)
        {
            host[r] = (ulong)random.Next(1, 1 << 20) << 18;
            Map(r, AccessRights.ReadWrite);
            ExpectAll(c.FillIotlb(unit, entries), FillResult.Inserted, "live-migration: initial map");
        }

        while (c.Operations < operations)
        {
            // A dirty-logging pass: each range is write-protected (one range invalidation, then read-only translations) …
            for (int r = 0; r < Ranges && c.Operations < operations; r++)
            {
                protect[0] = InvalidationDescriptor.IotlbRangeAllAddressSpaces(domain, RangeBase(r), RangeBase(r) + (PagesPerRange * Page) - 1, StageMask.Stage2);
                Expect(c.Execute(unit, protect).AllOk, "live-migration: write-protect invalidation");
                for (int p = 0; p < PagesPerRange; p++)
                {
                    probe[p] = RangeBase(r) + ((ulong)p * Page);
                }

                Expect(c.LookupIotlb(unit, TranslationStage.Stage2, domain, AddressSpace.None, probe) == 0, "live-migration: the protected range misses");
                Map(r, AccessRights.Read);
                ExpectAll(c.FillIotlb(unit, entries), FillResult.Inserted, "live-migration: read-only refill");
                Expect(c.LookupIotlb(unit, TranslationStage.Stage2, domain, AddressSpace.None, probe) == PagesPerRange, "live-migration: the read-only range hits");

                // … and the pages the device then writes fault and are remapped writable (marked dirty).
                for (int i = 0; i < dirty.Length; i++)
                {
                    ulong first = RangeBase(r) + ((ulong)random.Next(PagesPerRange) * Page);
                    dirty[i] = InvalidationDescriptor.IotlbRangeAllAddressSpaces(domain, first, first + Page - 1, StageMask.Stage2, leafOnly: true);
                    int p = (int)((first - RangeBase(r)) / Page);
                    entries[i] = TranslationEntry.Leaf(TranslationStage.Stage2, domain, AddressSpace.None, first, host[r] + ((ulong)p * Page), rights: AccessRights.ReadWrite);
                }

                Expect(c.Execute(unit, dirty).AllOk, "live-migration: dirty page invalidations");
                ReadOnlySpan<byte> results = c.FillIotlb(unit, entries.AsSpan(0, dirty.Length));
                foreach (byte b in results)
                {
                    // A page drawn twice in one pass is filled again with the same identity: REPLACED.
                    Expect(b is (byte)FillResult.Inserted or (byte)FillResult.Replaced, "live-migration: writable refill");
                }
            }
        }

        c.Destroy(unit);
    }
}
