namespace FastInval.Tests.Engine;

/// <summary>Hot paths allocate nothing after warm-up: fill, lookup, decode of descriptors into operators, execute, flush.</summary>
public class AllocationTests
{
    public static TheoryData<TagScanKernel> Kernels()
    {
        var data = new TheoryData<TagScanKernel>();
        foreach (TagScanKernel k in TagScanKernels.Available)
        {
            data.Add(k);
        }

        return data;
    }

    private static InvalidationDescriptor[] MixedBatch() =>
    [
        InvalidationDescriptor.IotlbDomain(3),
        InvalidationDescriptor.IotlbAddressSpace(1, 5),
        InvalidationDescriptor.IotlbDomain(2, StageMask.FirstStage),
        InvalidationDescriptor.IotlbAddressSpace(2, 6),
        InvalidationDescriptor.IotlbDomain(4, StageMask.Stage2),   // fifth tag flush: forces a second coalesced scan
        InvalidationDescriptor.IotlbRange(1, 5, 0x10000, 0x1FFFF),
        InvalidationDescriptor.IotlbRange(1, 5, 0, ulong.MaxValue, leafOnly: true, levelHint: 3, granuleHint: Granule.Size4K),
        InvalidationDescriptor.IotlbRangeAllAddressSpaces(1, 0x4000_0000, 0x7FFF_FFFF, StageMask.Stage2),
        InvalidationDescriptor.IotlbRangeAllAddressSpaces(1, 0x0, 0xFFFF, StageMask.FirstStage),
        InvalidationDescriptor.DeviceTlb(0x100, 5, 0x2000, 0x2FFF),
        InvalidationDescriptor.DeviceTlbAllPasids(0x101),
        InvalidationDescriptor.ConfigSources(ConfigKinds.Context | ConfigKinds.StreamTableEntry, 0x100, 0x107),
        InvalidationDescriptor.ConfigAddressSpace(ConfigKinds.PasidEntry, 5, domainId: 1),
        InvalidationDescriptor.ConfigAll(ConfigKinds.All),
        default, // invalid
    ];

    private static void Refill(InvalidationEngine engine)
    {
        for (ulong p = 0; p < 64; p++)
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, (ushort)(1 + (p % 4)), (uint)(5 + (p % 2)), p << 12, p << 12));
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x4000_0000 + (p << 21), p << 21, sizeLog2: 21));
            engine.DeviceTlb.Fill(new DeviceTlbEntry(0x100 + (uint)(p % 2), 5, p << 12, p << 12));
            engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, 0x100 + (uint)(p % 8), AddressSpace.None, 1, p));
            engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.PasidEntry, 0x100, (uint)p, 1, p));
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void FillLookupAndBatchExecute_AllocateNothingAfterWarmUp(TagScanKernel kernel)
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 256, DeviceTlbCapacity = 64, ConfigCacheCapacity = 128, Kernel = kernel });
        InvalidationDescriptor[] batch = MixedBatch();
        var statuses = new InvalidationStatus[batch.Length];
        for (int warm = 0; warm < 3; warm++)
        {
            Refill(engine);
            engine.Execute(batch, statuses);
            Lookups(engine);
        }

        int hits = 0;
        BatchResult result = default;
        long allocated = AllocationMeter.Measure(() =>
        {
            Refill(engine);
            hits = Lookups(engine);
            result = engine.Execute(batch, statuses);
            foreach (InvalidationDescriptor d in batch)
            {
                engine.Execute(in d);
            }
        });
        Assert.Equal(0, allocated);
        Assert.True(hits > 0);
        Assert.Equal(1, result.Invalid);
        Assert.Equal(0, engine.ConfigCache.Count);
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void EvictionPath_AllocatesNothing(TagScanKernel kernel)
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 8, Kernel = kernel });
        for (ulong p = 0; p < 64; p++)
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, p << 12, p << 12));
        }

        int evictions = 0;
        ulong next = 64;
        long allocated = AllocationMeter.Measure(() =>
        {
            evictions = 0;
            for (int i = 0; i < 1000; i++, next++)
            {
                evictions += engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, next << 12, next << 12)) == FillResult.InsertedAfterEviction ? 1 : 0;
                engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, next << 12, out _);
            }
        });
        Assert.Equal(0, allocated);
        Assert.Equal(1000, evictions);
        Assert.Equal(8, engine.Iotlb.Count);
    }

    private static int Lookups(InvalidationEngine engine)
    {
        int hits = 0;
        for (ulong p = 0; p < 64; p++)
        {
            hits += engine.Iotlb.TryLookup(TranslationStage.Stage1, (ushort)(1 + (p % 4)), (uint)(5 + (p % 2)), (p << 12) + 0x10, out _) ? 1 : 0;
            hits += engine.Iotlb.TryLookup(TranslationStage.Stage2, 1, AddressSpace.None, 0x4000_0000 + (p << 21), out _) ? 1 : 0;
            hits += engine.DeviceTlb.TryLookup(0x100, 5, p << 12, out _) ? 1 : 0;
            hits += engine.ConfigCache.TryLookup(ConfigKinds.Context, 0x100 + (uint)(p % 8), AddressSpace.None, out _) ? 1 : 0;
        }

        return hits;
    }
}
