using System.Reflection;
using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Qemu;
using FastInval.Benchmarks.Workloads;

namespace FastInval.Benchmarks.Infrastructure;

/// <summary>
/// <c>--verify</c>: sanity checks that the baseline is right and that every benchmark measures what it says, without a
/// test framework. (1) The QEMU-style table against hand-worked cases of QEMU's rules. (2) The QEMU-style table against
/// FastInval on random states and invalidations with small palettes (collisions are common): same lookups after every
/// step. (3) Each benchmark operation run for real on its setup: it removes/fills what it claims, and both engines agree.
/// Prints "N passed, M failed"; exit code 1 on any failure.
/// </summary>
internal sealed class Verify
{
    private int _passed;
    private int _failed;

    public static int Run()
    {
        var v = new Verify();
        v.QemuModel();
        v.Differential(seeds: 40);
        v.TagFlush();
        v.PageInvalidation();
        v.LookupAndFill();
        v.Batch();
        v.Notifier();
        v.IommufdInvalidate();
        v.VtdQueue();
        v.SmmuQueue();
        v.AmdViQueue();
        v.Unmap();
        v.MemoryBandwidth();
        Console.WriteLine($"{v._passed} passed, {v._failed} failed");
        return v._failed == 0 ? 0 : 1;
    }

    private void Check(bool condition, string what)
    {
        if (condition)
        {
            _passed++;
        }
        else
        {
            _failed++;
            Console.WriteLine($"FAIL {what}");
        }
    }

    private void Equal<T>(T expected, T actual, string what)
    {
        bool ok = EqualityComparer<T>.Default.Equals(expected, actual);
        Check(ok, ok ? what : $"{what}: expected {expected}, got {actual}");
    }

    // ---- (1) QEMU's rules, by hand ---------------------------------------------------------------------------

    private void QemuModel()
    {
        const byte Fs = QemuStyleIotlb.PgttFirstStage, Ss = QemuStyleIotlb.PgttSecondStage;
        var q = new QemuStyleIotlb(QemuStyleIotlb.Unlimited);
        q.Update(sourceId: 1, domainId: 5, addr: 0x1234_5000, pte: 0xAAA_A000, accessFlags: 3, level: 1, pasid: 7, pgtt: Fs);
        Equal(0x12345UL, q.Lookup(1, 7, 0x1234_5678)?.Gfn, "4K entry found at an inner address, gfn = frame");
        Check(q.Lookup(2, 7, 0x1234_5678) is null, "other source id misses");
        Check(q.Lookup(1, 8, 0x1234_5678) is null, "other PASID misses");
        Check(q.Lookup(1, 7, 0x1234_6000) is null, "next page misses");

        q.Update(1, 5, 0x4000_0000, 0xC000_0000, 3, level: 2, pasid: 7, pgtt: Fs);
        q.Update(1, 5, 0x8000_0000, 0x1_0000_0000, 3, level: 3, pasid: 7, pgtt: Fs);
        Equal(0x40000UL, q.Lookup(1, 7, 0x401F_FFFF)?.Gfn, "2M entry found through level 2, gfn = first frame");
        Equal(0xC01F_FFFFUL, Workload.Translate(q.Lookup(1, 7, 0x401F_FFFF)!, 0x401F_FFFF), "2M translation keeps the offset");
        Equal(0x80000UL, q.Lookup(1, 7, 0xBFFF_F000)?.Gfn, "1G entry found through level 3");
        q.Update(1, 5, 0x4000_1000, 0xD000_0000, 3, level: 1, pasid: 7, pgtt: Fs);
        Equal(1UL << QemuStyleIotlb.LevelShiftOf(1), ~q.Lookup(1, 7, 0x4000_1234)!.Mask + 1, "a 4K entry inside a 2M entry wins (level 1 first)");

        q.Update(1, 5, 0x1234_5000, 0xBBB_B000, 3, level: 1, pasid: 7, pgtt: Fs);
        Equal(0xBBB_B000UL, q.Lookup(1, 7, 0x1234_5000)?.Pte & ~0xFFFUL, "update of an existing key replaces the entry");
        Equal(4, q.Count, "replace does not add an entry");

        // Domain- and PASID-selective.
        q.Update(2, 5, 0x9000, 0x9000, 3, 1, pasid: 9, pgtt: Fs);   // same domain, other device and PASID
        q.Update(3, 6, 0x9000, 0x9000, 3, 1, pasid: 7, pgtt: Fs);   // other domain, same PASID
        Equal(1, q.InvalidatePasid(5, 9), "PASID flush removes (did 5, pasid 9) only");
        Equal(1, q.InvalidateDomain(6), "domain flush removes domain 6 only");
        Equal(4, q.InvalidateDomain(5), "domain flush removes every entry of domain 5 (any PASID, any level)");
        Equal(0, q.Count, "nothing left");

        // PASID-based page-selective (PIOTLB G=11b): clause A (start frame in the AM block), clause B (entry holds ADDR).
        for (ulong p = 0; p < 1024; p++)
        {
            q.Update(1, 5, 0x20_0000 + (p << 12), p << 12, 3, 1, 7, Fs);
        }

        q.Update(1, 5, 0x20_0000, 0x20_0000, 3, 1, pasid: QemuStyleIotlb.NoPasid, pgtt: Ss); // second stage, same page
        q.Update(1, 5, 0x4000_0000, 0xC000_0000, 3, 2, 7, Fs);                              // a 2M block elsewhere
        Equal(1, q.InvalidatePasidPage(5, 7, 0x20_1000, am: 0), "AM=0 removes exactly one page");
        Check(q.Lookup(1, 7, 0x20_1000) is null && q.Lookup(1, 7, 0x20_2000) is not null, "…that page, not its neighbour");
        Equal(511, q.InvalidatePasidPage(5, 7, 0x20_0000 + 0x1234, am: 9), "AM=9 removes the rest of the 2M-aligned block (low ADDR bits ignored)");
        Check(q.Lookup(1, QemuStyleIotlb.NoPasid, 0x20_0000) is not null, "PIOTLB page invalidation keeps second-stage entries");
        Equal(1, q.InvalidatePasidPage(5, 7, 0x4012_3000, am: 0), "AM=0 inside a 2M block removes the block (clause B)");
        Equal(512 + 1, q.Count, "pages outside the block stay");

        // Page-selective within domain (IOTLB G=11b): first-stage entries of the domain go whatever the address.
        Equal(513, q.InvalidatePage(5, 0x20_0000, am: 0), "domain page invalidation removes every first-stage entry of the domain and the matching second-stage one");
        q.Update(1, 5, 0x30_0000, 0x30_0000, 3, 1, QemuStyleIotlb.NoPasid, Ss);
        Equal(0, q.InvalidatePage(5, 0x31_0000, am: 0), "…but a second-stage entry only when its address matches");
        Equal(1, q.InvalidatePage(5, 0x30_0000, am: 4), "…which it does inside the AM block");

        // The size limit: an update that finds MaxSize entries empties the table first.
        var small = new QemuStyleIotlb(maxSize: 4);
        for (ulong p = 0; p < 4; p++)
        {
            small.Update(1, 1, p << 12, 0, 3, 1, 7, Fs);
        }

        Equal(4, small.Count, "a table below its limit grows");
        small.Update(1, 1, 4 << 12, 0, 3, 1, 7, Fs);
        Equal(1, small.Count, "the update at the limit empties the table, then inserts");
        Equal(QemuStyleIotlb.QemuMaxSize, new QemuStyleIotlb().MaxSize, "the default limit is QEMU's 1024");
    }

    // ---- (2) QEMU-style vs FastInval on random states ---------------------------------------------------------

    private void Differential(int seeds)
    {
        // Few domains, PASIDs and pages, 2 MiB blocks overlapping the 4 KiB pages: invalidations hit often.
        var shape = new WorkloadShape(Domains: 3, PasidsPerDomain: 2, PageFrames: 4096, HugeEvery: 6, HugeBase: 0, HugeBlocks: 8);
        int mismatches = 0;
        for (int seed = 1; seed <= seeds; seed++)
        {
            var rng = new Random(seed);
            TranslationEntry[] entries = Workload.Population(600, shape, seed);
            using InvalidationEngine engine = Workload.FastInval(entries, 1024, TagScanKernels.Available[seed % TagScanKernels.Available.Length]);
            QemuStyleIotlb qemu = Workload.Qemu(entries, QemuStyleIotlb.Unlimited);
            for (int step = 0; step < 12 && mismatches == 0; step++)
            {
                int space = rng.Next(shape.AddressSpaces);
                ushort domain = shape.DomainOf(space);
                uint pasid = WorkloadShape.PasidOf(space);
                string op;
                int removedQemu;
                int before = engine.Iotlb.Count;
                switch (rng.Next(3))
                {
                    case 0:
                        op = $"domain {domain}";
                        removedQemu = qemu.InvalidateDomain(domain);
                        engine.Execute(InvalidationDescriptor.IotlbDomain(domain));
                        break;
                    case 1:
                        op = $"pasid {domain}/{pasid:x}";
                        removedQemu = qemu.InvalidatePasid(domain, pasid);
                        engine.Execute(InvalidationDescriptor.IotlbAddressSpace(domain, pasid));
                        break;
                    default:
                        int am = rng.Next(10);
                        ulong addr = ((ulong)rng.Next(shape.PageFrames) << 12) + (ulong)rng.Next(4096);
                        ulong first = addr & ~((4096UL << am) - 1);
                        op = $"pasid page {domain}/{pasid:x} 0x{addr:x} am={am}";
                        removedQemu = qemu.InvalidatePasidPage(domain, pasid, addr, am);
                        engine.Execute(InvalidationDescriptor.IotlbRange(domain, pasid, first, first + (4096UL << am) - 1));
                        break;
                }

                int removedFast = before - engine.Iotlb.Count;
                if (removedFast != removedQemu || qemu.Count != engine.Iotlb.Count)
                {
                    mismatches++;
                    Console.WriteLine($"  seed {seed} step {step} {op}: removed FastInval {removedFast}, QEMU-style {removedQemu}");
                }

                foreach (TranslationEntry e in entries)
                {
                    foreach (ulong a in (ReadOnlySpan<ulong>)[e.InputAddress, e.InputAddress + (1UL << e.SizeLog2) - 1])
                    {
                        bool hitFast = engine.Iotlb.TryLookup(TranslationStage.Stage1, e.DomainId, e.AddressSpaceId, a, out Translation t);
                        QemuStyleIotlb.Entry? hitQemu = qemu.Lookup(Workload.SourceIdOf(e.DomainId), e.AddressSpaceId, a);
                        if (hitFast != hitQemu is not null || (hitFast && t.OutputAddress != Workload.Translate(hitQemu!, a)))
                        {
                            mismatches++;
                            Console.WriteLine($"  seed {seed} after {op}: lookup 0x{a:x} of {e}: FastInval {(hitFast ? t.ToString() : "miss")}, QEMU-style {(hitQemu is null ? "miss" : $"0x{Workload.Translate(hitQemu, a):x}")}");
                        }
                    }
                }
            }
        }

        Check(mismatches == 0, $"QEMU-style and FastInval agree on {seeds} random states × 12 invalidations (removals and every lookup)");
    }

    // ---- (3) the benchmark operations themselves ----------------------------------------------------------------

    private void TagFlush()
    {
        var declared = typeof(TagFlushBenchmarks).GetMethods()
            .Select(m => m.GetCustomAttribute<BenchmarkAttribute>()?.Description).Where(d => d is not null).ToHashSet();
        foreach (TagScanKernel k in TagScanKernels.Available)
        {
            Check(declared.Contains(TagScanKernels.Name(k)), $"TagFlushBenchmarks has a row for {TagScanKernels.Name(k)}");
        }

        foreach (FlushScope scope in Enum.GetValues<FlushScope>())
        {
            var b = new TagFlushBenchmarks { Entries = 1 << 10, Scope = scope };
            foreach (TagScanKernel k in TagScanKernels.Available)
            {
                typeof(TagFlushBenchmarks).GetMethod("Setup" + k)!.Invoke(b, null);
                MethodInfo op = typeof(TagFlushBenchmarks).GetMethod(k.ToString())!;
                for (int i = 0; i < 3; i++)
                {
                    Equal(TagFlushBenchmarks.RefilledEntries, (int)op.Invoke(b, null)!, $"TagFlush {scope} {k} op {i} removes the refilled entries");
                }

                Equal(b.Entries, b.Engine!.Iotlb.Count, $"TagFlush {scope} {k}: the background stays");
                b.Cleanup();
            }

            b.SetupQemuStyle();
            Equal(b.Entries, b.Qemu!.Count, $"TagFlush {scope} QEMU-style holds Entries entries (limit off)");
            for (int i = 0; i < 3; i++)
            {
                Equal(TagFlushBenchmarks.RefilledEntries, b.QemuStyle(), $"TagFlush {scope} QEMU-style op {i} removes the refilled entries");
            }

            Equal(b.Entries, b.Qemu!.Count, $"TagFlush {scope} QEMU-style: the background stays");
            b.Cleanup();
        }
    }

    private void PageInvalidation()
    {
        foreach (int pages in new[] { 1, 512 })
        {
            var b = new PageInvalidationBenchmarks { Entries = 1 << 16, Pages = pages };
            b.SetupFastInval();
            b.SetupQemuStyle();
            for (int i = 0; i < 2; i++)
            {
                Equal(pages, b.FastInval(), $"PageInvalidation {pages} FastInval op {i} removes the refilled pages");
                Equal(pages, b.QemuStyle(), $"PageInvalidation {pages} QEMU-style op {i} removes the refilled pages");
            }

            Equal(b.Entries, b.Engine!.Iotlb.Count, $"PageInvalidation {pages}: FastInval background stays");
            Equal(b.Entries, b.Qemu!.Count, $"PageInvalidation {pages}: QEMU-style background stays");
            b.Cleanup();
        }
    }

    private void IommufdInvalidate()
    {
        const int N = IommufdInvalidateBenchmarks.ArrayEntries;
        foreach (int entries in new[] { 1 << 10, 1 << 16 })
        {
            var b = new IommufdInvalidateBenchmarks { Entries = entries };
            b.SetupFastInval();
            for (int i = 0; i < 2; i++)
            {
                Equal(N, b.RefillAndIoctl(), $"IommufdInvalidate {entries} refill + Ioctl op {i} removes the refilled pages");
                Equal(N, b.Ioctl(), $"IommufdInvalidate {entries} Ioctl op {i} handles every entry");
            }

            Equal(entries, b.Engine!.Iotlb.Count, $"IommufdInvalidate {entries}: FastInval background stays");
            b.Cleanup();
            b.SetupFastInvalAts();
            Equal(N, b.IoctlWithAtsDevice(), $"IommufdInvalidate {entries} Ioctl with an ATS device handles every entry");
            Equal(0, b.Engine!.DeviceTlb.Count, $"IommufdInvalidate {entries}: the ATS device's TLB entries are gone");
            Equal((ulong)N, b.Engine!.DeviceTlbInvalidations, $"IommufdInvalidate {entries}: one device-TLB invalidation per entry");
            b.Cleanup();
            b.SetupQemuStyle();
            for (int i = 0; i < 2; i++)
            {
                Equal(N, b.QemuStyle(), $"IommufdInvalidate {entries} QEMU-style op {i} removes the refilled pages");
            }

            Equal(entries <= N ? 0 : entries, b.Qemu!.Count, $"IommufdInvalidate {entries}: QEMU-style background (emptied at 1,024 entries)");
            b.Cleanup();
        }
    }

    private void SmmuQueue()
    {
        foreach (int entries in new[] { 1 << 8, 1 << 16 })
        {
            var b = new SmmuQueueBenchmarks { Entries = entries };
            b.SetupFastInval();
            b.SetupQemuStyle();
            for (int i = 0; i < 5; i++) // the fifth round wraps the 256-entry queue
            {
                Equal(4 * SmmuQueueBenchmarks.BatchSize, b.FastInval(), $"SmmuQueue {entries} FastInval op {i} removes the refilled pages");
                Equal(4 * SmmuQueueBenchmarks.BatchSize, b.QemuStyle(), $"SmmuQueue {entries} QEMU-style op {i} removes the refilled pages");
            }

            ulong cons = b.Unit!.ReadRegister(FastInval.Smmu.SmmuRegisters.CmdqCons, 4);
            Equal(b.Unit.ReadRegister(FastInval.Smmu.SmmuRegisters.CmdqProd, 4), cons, $"SmmuQueue {entries}: FastInval queue drained without error");
            Equal(entries, b.Unit.Engine.Iotlb.Count, $"SmmuQueue {entries}: FastInval background stays");
            Equal(entries, b.Qemu!.Count, $"SmmuQueue {entries}: QEMU-style background stays");
            b.Cleanup();
        }
    }

    private void AmdViQueue()
    {
        foreach (int entries in new[] { 1 << 10, 1 << 16 })
        {
            var b = new AmdViQueueBenchmarks { Entries = entries };
            b.SetupFastInval();
            b.SetupQemuStyle();
            for (int i = 0; i < 5; i++) // the fourth round wraps the 256-entry buffer
            {
                Equal(AmdViQueueBenchmarks.BatchSize, b.FastInval(), $"AmdViQueue {entries} FastInval op {i} removes the refilled pages");
                Equal(AmdViQueueBenchmarks.BatchSize, b.QemuStyle(), $"AmdViQueue {entries} QEMU-style op {i} removes the refilled pages");
            }

            ulong end = (ulong)(5 * AmdViQueueBenchmarks.Commands % 256 * 16);
            Equal(end, b.Unit!.ReadRegister(global::FastInval.AmdVi.AmdViRegisters.CommandBufferHead, 8), $"AmdViQueue {entries}: FastInval head at the tail");
            Check((b.Unit.ReadRegister(global::FastInval.AmdVi.AmdViRegisters.Status, 8) & global::FastInval.AmdVi.AmdViRegisters.StatusCmdBufRun) != 0,
                $"AmdViQueue {entries}: FastInval buffer still running (no error)");
            Equal(end, b.Buffer!.Head, $"AmdViQueue {entries}: QEMU-style head at the tail");
            Equal(0, b.Buffer.IllegalLogged, $"AmdViQueue {entries}: QEMU-style logged no illegal command");
            Equal((5UL, 5UL), (b.FastSemaphore, b.QemuSemaphore), $"AmdViQueue {entries}: the completion waits stored their sequence numbers");
            Equal(entries, b.Unit.Engine.Iotlb.Count, $"AmdViQueue {entries}: FastInval background stays");
            Equal(entries, b.Qemu!.Count, $"AmdViQueue {entries}: QEMU-style background stays");
            b.Cleanup();
        }
    }

    private void VtdQueue()
    {
        foreach (int entries in new[] { 1 << 10, 1 << 16 })
        {
            var b = new VtdQueueBenchmarks { Entries = entries };
            b.SetupFastInval();
            b.SetupQemuStyle();
            for (int i = 0; i < 3; i++) // the third round wraps the 128-slot ring
            {
                Equal(VtdQueueBenchmarks.BatchSize, b.FastInval(), $"VtdQueue {entries} FastInval op {i} removes the refilled pages");
                Equal(VtdQueueBenchmarks.BatchSize, b.QemuStyle(), $"VtdQueue {entries} QEMU-style op {i} removes the refilled pages");
            }

            Equal(0UL, b.Unit!.ReadRegister(0x34, 4), $"VtdQueue {entries}: FastInval FSTS clear");
            Equal((ulong)(3 * VtdQueueBenchmarks.Descriptors % 128 * 32), b.Unit.ReadRegister(0x80, 8), $"VtdQueue {entries}: FastInval IQH at the tail");
            Check(!b.Queue!.QueueError, $"VtdQueue {entries}: QEMU-style raised no IQE");
            Equal((ulong)(3 * VtdQueueBenchmarks.Descriptors % 128 * 32), b.Queue.Head, $"VtdQueue {entries}: QEMU-style head at the tail");
            Equal((1u, 1u), (b.FastStatus, b.QemuStatus), $"VtdQueue {entries}: the waits wrote their status");
            Equal(entries, b.Unit.Engine.Iotlb.Count, $"VtdQueue {entries}: FastInval background stays");
            Equal(entries, b.Qemu!.Count, $"VtdQueue {entries}: QEMU-style background stays");
            b.Cleanup();
        }
    }

    private void LookupAndFill()
    {
        // Two instances walk the same request sequence in lockstep.
        var fastLookup = new LookupBenchmarks { Entries = 1 << 16 };
        var qemuLookup = new LookupBenchmarks { Entries = 1 << 16 };
        fastLookup.SetupFastInval();
        qemuLookup.SetupQemuStyle();
        // The expected checksum of each operation, from the generated entries themselves.
        TranslationEntry[] population = Workload.Population(1 << 16, WorkloadShape.Realistic);
        var byKey = new Dictionary<(ushort, uint, ulong, int), TranslationEntry>();
        foreach (TranslationEntry e in population)
        {
            byKey[(e.DomainId, e.AddressSpaceId, e.InputAddress, e.SizeLog2)] = e;
        }

        LookupQuery[] queries = Workload.Queries(population, LookupBenchmarks.QueryCount);
        int agreeing = 0, ops = LookupBenchmarks.QueryCount / LookupBenchmarks.LookupsPerOperation;
        for (int i = 0; i < ops; i++)
        {
            ulong expected = 0;
            foreach (LookupQuery q in queries.AsSpan(i * LookupBenchmarks.LookupsPerOperation, LookupBenchmarks.LookupsPerOperation))
            {
                TranslationEntry e = byKey.TryGetValue((q.Domain, q.Pasid, q.Address & ~0xFFFUL, 12), out TranslationEntry page)
                    ? page
                    : byKey[(q.Domain, q.Pasid, q.Address & ~0x1F_FFFFUL, 21)];
                expected += e.OutputAddress + (q.Address - e.InputAddress);
            }

            ulong fast = fastLookup.FastInval();
            ulong qemu = qemuLookup.QemuStyle();
            agreeing += fast == expected && qemu == expected ? 1 : 0;
        }

        Equal(ops, agreeing, "Lookup: both engines translate every request as the generated entries say");
        fastLookup.Cleanup();
        qemuLookup.Cleanup();

        // Separate instances: each walks its own stream cursor, through the wrap-around.
        var fastFill = new FillBenchmarks { Entries = 1 << 16 };
        var qemuFill = new FillBenchmarks { Entries = 1 << 16 };
        fastFill.SetupFastInval();
        qemuFill.SetupQemuStyle();
        Equal(fastFill.Entries, fastFill.Engine!.Iotlb.Count, "Fill: FastInval starts full");
        bool steady = true;
        for (int i = 0; i < 3 * 2 * fastFill.Entries / FillBenchmarks.FillsPerOperation; i++)
        {
            int fast = fastFill.FastInval();
            int qemuCount = qemuFill.QemuStyle();
            if (fast != (int)FillResult.InsertedAfterEviction * FillBenchmarks.FillsPerOperation || qemuCount <= 0 || qemuCount > qemuFill.Entries)
            {
                Console.WriteLine($"  fill op {i}: FastInval result sum {fast}, QEMU-style count {qemuCount}");
                steady = false;
                break;
            }
        }

        Check(steady, "Fill: every FastInval fill inserts after one eviction; the QEMU-style table stays within its limit");
        Equal(fastFill.Entries, fastFill.Engine!.Iotlb.Count, "Fill: FastInval stays full");
        fastFill.Cleanup();
        qemuFill.Cleanup();
    }

    private void Batch()
    {
        var b = new BatchBenchmarks { Entries = 1 << 16 };
        b.Setup();
        int expected = BatchBenchmarks.BatchSize * BatchBenchmarks.EntriesPerTarget;
        for (int i = 0; i < 2; i++)
        {
            Equal(expected, b.OneAtATime(), $"Batch op {i} one at a time removes every refilled entry");
            Equal(expected, b.OneBatch(), $"Batch op {i} one batch removes every refilled entry");
        }

        bool allOk = true;
        foreach (InvalidationStatus s in b.Statuses)
        {
            allOk &= s == InvalidationStatus.Ok;
        }

        Check(allOk, "Batch: every descriptor Ok");
        Equal(b.Entries, b.Engine!.Iotlb.Count, "Batch: the background stays");
        b.Cleanup();
    }

    private void Notifier()
    {
        foreach (NotifierWork work in new[] { NotifierWork.TagFlushes, NotifierWork.Pages })
        {
            int expected = NotifierBenchmarks.BatchSize * (work == NotifierWork.Pages ? 1 : BatchBenchmarks.EntriesPerTarget);
            var plain = new NotifierBenchmarks { Entries = 1 << 16, Work = work };
            plain.Setup();
            Equal(expected, plain.NoNotifier(), $"Notifier {work}: no notifier removes every refilled entry");
            Check(plain.Checksum == 0, $"Notifier {work}: no record without a subscriber");
            plain.Cleanup();
            var notified = new NotifierBenchmarks { Entries = 1 << 16, Work = work };
            notified.SetupNotified();
            Equal(expected, notified.OneNotifier(), $"Notifier {work}: 1 notifier removes every refilled entry");
            Check(notified.Checksum != 0, $"Notifier {work}: the notifier read the records");
            notified.Cleanup();
            var filtered = new NotifierBenchmarks { Entries = 1 << 16, Work = work };
            filtered.SetupFiltered();
            Equal(expected, filtered.OneFilteredNotifier(), $"Notifier {work}: 1 filtered notifier removes every refilled entry");
            Check(filtered.Checksum != 0, $"Notifier {work}: the filtered notifier got records");
            filtered.Cleanup();
        }
    }

    private void Unmap()
    {
        var queue = new UnmapBenchmarks();
        queue.SetupQueue();
        var engine = new UnmapBenchmarks();
        engine.SetupEngine();
        var qemu = new UnmapBenchmarks();
        qemu.SetupQemuStyle();
        for (int i = 0; i < 2; i++)
        {
            queue.Map();
            Equal(UnmapBenchmarks.Background + UnmapBenchmarks.Pages, queue.Iotlb!.Count, $"Unmap op {i}: the VT-d queue's IOTLB holds the background and the GiB");
            Equal(UnmapBenchmarks.Background, queue.FastInvalQueue(), $"Unmap op {i}: the VT-d queue removes every page of the GiB and nothing else");
            engine.Map();
            Equal(UnmapBenchmarks.Background, engine.FastInvalEngine(), $"Unmap op {i}: engine batches remove every page of the GiB and nothing else");
            qemu.Map();
            Equal(QemuStyleIotlb.QemuMaxSize, qemu.Qemu!.Count, $"Unmap op {i}: the QEMU-style table holds its last 1,024 pages");
            Equal(0, qemu.QemuStyle(), $"Unmap op {i}: the QEMU-style queue removes them");
        }

        queue.Cleanup();
        engine.Cleanup();
        qemu.Cleanup();
    }

    private unsafe void MemoryBandwidth()
    {
        foreach (int entries in new[] { 1 << 10, (1 << 10) + 7 })
        {
            var b = new MemoryBandwidthBenchmarks { Entries = entries };
            b.Setup();
            ulong expected = 0;
            for (int i = 0; i < b.Entries; i++)
            {
                expected += (ulong)i * 0x9E37_79B9_7F4A_7C15UL;
            }

            Equal(expected, b.Read(), "MemoryBandwidth: the vector sum reads every word");
            b.Cleanup();
        }
    }
}
