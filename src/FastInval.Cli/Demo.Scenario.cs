namespace FastInval.Cli;

internal static partial class Demo
{
    /// <summary>A device of the guest, behind the IOMMU.</summary>
    private sealed record Device(string Name, uint Sid, ushort Did, bool Ats)
    {
        public string Label => $"{Name} ({Bdf(Sid)})";
    }

    /// <summary>An address space the guest maps: a (domain, PASID) of a device. <see cref="AtcPasid"/> is the PASID its
    /// device-TLB entries carry (<see cref="AddressSpace.None"/> for a device that sends requests without PASID).</summary>
    private sealed record Space(Device Device, uint Pasid, uint AtcPasid, int Index)
    {
        public ushort Did => Device.Did;

        /// <summary>Host-physical base of this address space's memory (4 GiB apart).</summary>
        public ulong HostBase => 0x40_0000_0000UL + ((ulong)Index << 32);
    }

    // The guest's layout, the same in every address space: 1,024 pages of 4 KiB at 2 GiB (its DMA buffers) and
    // 16 pages of 2 MiB at 4 GiB (a large pool). The host backs them at HostBase + offset.
    private const ulong PagesBase = 0x8000_0000;
    private const int PageCount = 1024;
    private const ulong BlocksBase = 0x1_0000_0000;
    private const int BlockCount = 16;
    private const ulong Page = 0x1000;
    private const ulong Block = 0x20_0000;
    private const int AtcPages = 256;
    private const int AtcBlocks = 4;
    private const int Stage2Blocks = 32;

    private static readonly Device Nic = new("NIC", 0x0100, 1, Ats: true);
    private static readonly Device Nvme = new("NVMe drive", 0x0200, 2, Ats: false);
    private static readonly Device Accel = new("accelerator", 0x0300, 3, Ats: true);

    private static readonly Space NicSpace = new(Nic, 0, AddressSpace.None, 0);          // requests without PASID use RID_PASID 0
    private static readonly Space NvmeSpace = new(Nvme, 0, AddressSpace.None, 1);
    private static readonly Space AccelP11 = new(Accel, 0x11, 0x11, 2);                  // two processes sharing the accelerator (SVA)
    private static readonly Space AccelP12 = new(Accel, 0x12, 0x12, 3);

    private static readonly Space[] Spaces = [NicSpace, NvmeSpace, AccelP11, AccelP12];

    private static void RunScenario(TextWriter o, SelfChecks checks)
    {
        using var engine = new InvalidationEngine(new EngineOptions
        {
            IotlbCapacity = 1 << 16,
            DeviceTlbCapacity = 1 << 12,
            ConfigCacheCapacity = 256,
        });
        var story = new Story(o, engine, checks);

        o.WriteLine("FastInval demo: a host with a VT-d-like IOMMU serves one guest (vm1), which owns its stage-1 page tables.");
        o.WriteLine("Every cache entry is tagged with a domain id (DID) and, for the guest's translations, a PASID.");
        o.WriteLine();
        o.WriteLine("  device                 domain  address spaces                       device TLB (ATS)");
        o.WriteLine($"  {Nic.Label,-21}  DID {Nic.Did}   requests without PASID (RID_PASID 0)  yes");
        o.WriteLine($"  {Nvme.Label,-21}  DID {Nvme.Did}   requests without PASID (RID_PASID 0)  no");
        o.WriteLine($"  {Accel.Label,-21}  DID {Accel.Did}   PASIDs 0x11 and 0x12 (two processes)   yes, per PASID");
        o.WriteLine();

        // ---- 1. map -------------------------------------------------------------------------------------
        story.Step("The guest maps memory; the host walks the page tables and fills the caches.");
        int rejected = 0;
        foreach (Space s in Spaces)
        {
            rejected += MapSpace(engine, s);
        }

        foreach (Device d in new[] { Nic, Nvme, Accel })
        {
            for (int g = 0; g < Stage2Blocks; g++)
            {
                // The host's own stage-2 translations (guest-physical -> host-physical), tagged with the DID only.
                rejected += Bad(engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, d.Did, AddressSpace.None,
                    (ulong)g * Block, 0x20_0000_0000UL + ((ulong)d.Did << 32) + ((ulong)g * Block), sizeLog2: 21)));
            }

            rejected += Bad(engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, d.Sid, AddressSpace.None, d.Did, 0x7000_0000UL + (d.Sid * 16UL))));
        }

        checks.Check(rejected == 0, $"every fill was accepted into a free slot ({rejected} were not)");
        o.WriteLine($"  per address space: {N(PageCount)} leaf entries of 4 KiB at {Hex(PagesBase)}, {BlockCount} of 2 MiB at {Hex(BlocksBase)},");
        o.WriteLine("  5 paging-structure entries (the walk's 512 GiB, 1 GiB and 2 MiB table entries); per domain 32 host stage-2 entries;");
        o.WriteLine($"  the NIC's device TLB caches {AtcPages} pages, the accelerator's {AtcPages} pages + {AtcBlocks} pages of 2 MiB per PASID;");
        o.WriteLine("  one context entry per device and one PASID-table entry per address space.");
        o.WriteLine($"  now cached: IOTLB {N(engine.Iotlb.Count)} entries, device TLB {N(engine.DeviceTlb.Count)} entries, config cache {N(engine.ConfigCache.Count)} entries");

        // ---- 2. DMA ---------------------------------------------------------------------------------------
        story.Step("Devices do DMA; the host translates through the caches.");
        story.Lookup("NIC DMA", NicSpace, PagesBase + (5 * Page) + 0x123, expectHit: true);
        story.AtcLookup("NIC translated DMA", NicSpace, PagesBase + (5 * Page) + 0x123, expectHit: true);
        story.Lookup("NVMe DMA", NvmeSpace, PagesBase + (256 * Page) + 0x40, expectHit: true);
        story.Lookup("accelerator DMA", AccelP11, BlocksBase + 0x1234, expectHit: true);
        story.AtcLookup("accelerator translated DMA", AccelP12, PagesBase + 0x40, expectHit: true);
        story.TableLookup("page walk of the NIC", NicSpace, PagesBase + (5 * Page), 21, expectHit: true);
        story.Stage2Lookup(Nic.Did, 0x0123_4567, expectHit: true);

        // ---- 3. page-selective ranges -----------------------------------------------------------------------
        story.Step("The guest unmaps two buffers, page-selectively, in one batch.");
        story.Asked(
            $"drop the NIC's 16 pages {Hex(PagesBase)}..{Hex(PagesBase + (16 * Page) - 1)} (DID 1, PASID 0; page-selective, AM=4, IH=1:",
            "only leaf entries changed), the accelerator's 2 MiB page at " + Hex(BlocksBase) + " (DID 3, PASID 0x11; AM=9, IH=0:",
            "its page-table pages changed too), and the same two ranges from each device's TLB.");
        story.Execute(
        [
            InvalidationDescriptor.IotlbRange(Nic.Did, NicSpace.Pasid, PagesBase, PagesBase + (16 * Page) - 1, leafOnly: true),
            InvalidationDescriptor.DeviceTlb(Nic.Sid, AddressSpace.None, PagesBase, PagesBase + (16 * Page) - 1),
            InvalidationDescriptor.IotlbRange(Accel.Did, AccelP11.Pasid, BlocksBase, BlocksBase + Block - 1),
            InvalidationDescriptor.DeviceTlb(Accel.Sid, AccelP11.AtcPasid, BlocksBase, BlocksBase + Block - 1),
        ]);
        story.Lookup("NIC DMA", NicSpace, PagesBase + (5 * Page) + 0x123, expectHit: false);
        story.AtcLookup("NIC translated DMA", NicSpace, PagesBase + (5 * Page) + 0x123, expectHit: false);
        story.Lookup("NIC DMA to the next page", NicSpace, PagesBase + (16 * Page) + 0x123, expectHit: true);
        story.TableLookup("page walk of the NIC (IH=1 kept it)", NicSpace, PagesBase + (5 * Page), 21, expectHit: true);
        story.Lookup("accelerator DMA", AccelP11, BlocksBase + 0x1234, expectHit: false);
        story.Lookup("accelerator DMA to the next 2 MiB", AccelP11, BlocksBase + Block + 0x1234, expectHit: true);
        story.Lookup("the other process (PASID 0x12)", AccelP12, BlocksBase + 0x1234, expectHit: true);

        // ---- 4. PASID flush -----------------------------------------------------------------------------------
        story.Step("A process on the accelerator exits: the guest flushes its PASID 0x12.");
        story.Asked(
            "drop every non-global translation of DID 3, PASID 0x12 (PASID-based IOTLB invalidate, G=non-globals),",
            "everything the accelerator's TLB holds for PASID 0x12, and the cached PASID-table entry 0x12.");
        story.Execute(
        [
            InvalidationDescriptor.IotlbAddressSpace(Accel.Did, AccelP12.Pasid),
            InvalidationDescriptor.DeviceTlb(Accel.Sid, AccelP12.AtcPasid),
            InvalidationDescriptor.ConfigAddressSpace(ConfigKinds.PasidEntry, AccelP12.Pasid, domainId: Accel.Did),
        ]);
        story.Lookup("process 0x12", AccelP12, PagesBase + 0x40, expectHit: false);
        story.AtcLookup("process 0x12 translated DMA", AccelP12, PagesBase + 0x40, expectHit: false);
        story.ConfigLookup(ConfigKinds.PasidEntry, Accel.Sid, AccelP12.Pasid, expectHit: false);
        story.Lookup("process 0x11", AccelP11, PagesBase + 0x40, expectHit: true);
        story.AtcLookup("process 0x11 translated DMA", AccelP11, PagesBase + 0x40, expectHit: true);
        story.Stage2Lookup(Accel.Did, 0x0123_4567, expectHit: true, note: "the PASID flush leaves stage 2 alone");

        // ---- 5. domain flush -------------------------------------------------------------------------------
        story.Step("The guest takes the accelerator away from its driver: a domain flush of DID 3.");
        story.Asked(
            "drop everything tagged DID 3 in the IOTLB (domain-selective, every PASID and stage), every entry of the",
            "accelerator's device TLB, and the context and PASID-table entries of DID 3.");
        int domainBefore = story.IotlbOfDomain(Accel.Did);
        int othersBefore = engine.Iotlb.Count - domainBefore;
        int removed = story.Execute(
        [
            InvalidationDescriptor.IotlbDomain(Accel.Did),
            InvalidationDescriptor.DeviceTlbAllPasids(Accel.Sid),
            InvalidationDescriptor.ConfigDomain(ConfigKinds.Context | ConfigKinds.PasidEntry, Accel.Did),
        ]).Iotlb;
        int domainAfter = story.IotlbOfDomain(Accel.Did);
        int othersAfter = engine.Iotlb.Count - domainAfter;
        o.WriteLine($"  exactly DID 3:  DID 3 held {N(domainBefore)} IOTLB entries and now holds {N(domainAfter)}; the other domains held {N(othersBefore)} and hold {N(othersAfter)}");
        checks.Check(removed == domainBefore && domainAfter == 0 && othersAfter == othersBefore,
            "the domain flush removed exactly the domain's IOTLB entries");
        story.Lookup("accelerator DMA", AccelP11, PagesBase + 0x40, expectHit: false);
        story.Stage2Lookup(Accel.Did, 0x0123_4567, expectHit: false);
        story.Lookup("NIC DMA", NicSpace, PagesBase + (16 * Page) + 0x123, expectHit: true);
        story.Lookup("NVMe DMA", NvmeSpace, PagesBase + (256 * Page) + 0x40, expectHit: true);

        // ---- 6. device-TLB time-out ---------------------------------------------------------------------------
        const ulong staleFirst = PagesBase + (16 * Page), staleLast = PagesBase + (32 * Page) - 1;
        story.Step("The guest unmaps more NIC pages, but the NIC has stopped answering (fault injected).");
        engine.FaultPlan = new FaultPlan { TimeoutSourceIds = [Nic.Sid] };
        o.WriteLine($"  fault plan:   every device-TLB invalidation sent to {Nic.Label} times out");
        story.Asked($"drop the NIC's pages {Hex(staleFirst)}..{Hex(staleLast)} from the IOTLB (IH=1) and from the NIC's device TLB.");
        int staleBefore = story.AtcInRange(Nic.Sid, staleFirst, staleLast);
        story.Execute(
        [
            InvalidationDescriptor.IotlbRange(Nic.Did, NicSpace.Pasid, staleFirst, staleLast, leafOnly: true),
            InvalidationDescriptor.DeviceTlb(Nic.Sid, AddressSpace.None, staleFirst, staleLast),
        ], expected: [InvalidationStatus.Ok, InvalidationStatus.TimedOut]);
        int staleAfter = story.AtcInRange(Nic.Sid, staleFirst, staleLast);
        o.WriteLine($"  time-out:     descriptor #1 (device TLB of {Bdf(Nic.Sid)}) TimedOut. A VT-d queue front end reports this as an");
        o.WriteLine($"                Invalidation Time-out Error (ITE, ITESID = {Bdf(Nic.Sid)}); iommufd's per-entry hw_error mode sets its ITE bit.");
        o.WriteLine($"  stale:        the NIC's device TLB still holds {N(staleAfter)} of its {N(staleBefore)} entries for the unmapped range");
        checks.Check(staleBefore == 16 && staleAfter == staleBefore, "the timed-out device keeps its device-TLB entries");
        story.Lookup("NIC DMA", NicSpace, staleFirst + 0x123, expectHit: false, note: "the IOTLB part succeeded");
        story.AtcLookup("NIC translated DMA", NicSpace, staleFirst + 0x123, expectHit: true,
            note: "STALE: the host must not reuse these pages until a retry succeeds");

        // ---- 7. retry ----------------------------------------------------------------------------------------
        story.Step("The NIC answers again (a new, empty fault plan); the host retries the device-TLB invalidation.");
        engine.FaultPlan = new FaultPlan();
        story.Asked($"drop the NIC's pages {Hex(staleFirst)}..{Hex(staleLast)} from its device TLB (the retry).");
        story.Execute([InvalidationDescriptor.DeviceTlb(Nic.Sid, AddressSpace.None, staleFirst, staleLast)]);
        int staleRetried = story.AtcInRange(Nic.Sid, staleFirst, staleLast);
        o.WriteLine($"  stale:        the NIC's device TLB now holds {N(staleRetried)} entries for the unmapped range");
        checks.Check(staleRetried == 0, "after the retry the device holds no entry of the range");
        story.AtcLookup("NIC translated DMA", NicSpace, staleFirst + 0x123, expectHit: false);
        story.AtcLookup("NIC translated DMA to a page still mapped", NicSpace, PagesBase + (100 * Page) + 0x10, expectHit: true);

        o.WriteLine();
        o.WriteLine($"At the end: IOTLB {N(engine.Iotlb.Count)} entries, device TLB {N(engine.DeviceTlb.Count)} entries, config cache {N(engine.ConfigCache.Count)} entries;");
        o.WriteLine($"{N((long)engine.DeviceTlbInvalidations)} device-TLB invalidations were sent.");
    }

    private static int Bad(FillResult r) => r == FillResult.Inserted ? 0 : 1;

    /// <summary>Fills everything the host caches for one address space; returns how many fills were not plain inserts.</summary>
    private static int MapSpace(InvalidationEngine engine, Space s)
    {
        int bad = 0;
        for (int p = 0; p < PageCount; p++)
        {
            bad += Bad(engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, s.Did, s.Pasid,
                PagesBase + ((ulong)p * Page), s.HostBase + ((ulong)p * Page))));
        }

        for (int b = 0; b < BlockCount; b++)
        {
            bad += Bad(engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, s.Did, s.Pasid,
                BlocksBase + ((ulong)b * Block), s.HostBase + 0x8000_0000UL + ((ulong)b * Block), sizeLog2: 21)));
        }

        // The walk cache: where the next-level tables are (the level-0 entry, two 1 GiB entries, two 2 MiB entries).
        ulong tables = s.HostBase + 0xF000_0000UL;
        bad += Bad(engine.Iotlb.Fill(TranslationEntry.Table(TranslationStage.Nested, s.Did, s.Pasid, 0, tables, spanLog2: 39)));
        bad += Bad(engine.Iotlb.Fill(TranslationEntry.Table(TranslationStage.Nested, s.Did, s.Pasid, PagesBase, tables + 0x1000, spanLog2: 30)));
        bad += Bad(engine.Iotlb.Fill(TranslationEntry.Table(TranslationStage.Nested, s.Did, s.Pasid, BlocksBase, tables + 0x2000, spanLog2: 30)));
        bad += Bad(engine.Iotlb.Fill(TranslationEntry.Table(TranslationStage.Nested, s.Did, s.Pasid, PagesBase, tables + 0x3000, spanLog2: 21)));
        bad += Bad(engine.Iotlb.Fill(TranslationEntry.Table(TranslationStage.Nested, s.Did, s.Pasid, PagesBase + Block, tables + 0x4000, spanLog2: 21)));

        if (s.Device.Ats)
        {
            for (int p = 0; p < AtcPages; p++)
            {
                bad += Bad(engine.DeviceTlb.Fill(new DeviceTlbEntry(s.Device.Sid, s.AtcPasid, PagesBase + ((ulong)p * Page), s.HostBase + ((ulong)p * Page))));
            }

            for (int b = 0; s.AtcPasid != AddressSpace.None && b < AtcBlocks; b++)
            {
                bad += Bad(engine.DeviceTlb.Fill(new DeviceTlbEntry(s.Device.Sid, s.AtcPasid, BlocksBase + ((ulong)b * Block),
                    s.HostBase + 0x8000_0000UL + ((ulong)b * Block), sizeLog2: 21)));
            }
        }

        bad += Bad(engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.PasidEntry, s.Device.Sid, s.Pasid, s.Did, 0x7100_0000UL + ((ulong)s.Index * 64))));
        return bad;
    }
}
