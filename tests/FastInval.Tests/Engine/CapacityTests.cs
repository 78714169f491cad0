namespace FastInval.Tests.Engine;

public class CapacityTests
{
    [Fact]
    public void CapacityOne_HoldsTheNewestEntryAndEvictsOneAtATime()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 1, DeviceTlbCapacity = 1, ConfigCacheCapacity = 1 });
        Assert.Equal(FillResult.Inserted, engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x1000, 0xA000)));
        Assert.Equal(FillResult.Replaced, engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x1000, 0xB000)));
        Assert.Equal(FillResult.InsertedAfterEviction, engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x2000, 0xC000)));
        Assert.Equal(1, engine.Iotlb.Count);
        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 0x1000, out _));
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 0x2000, out Translation t));
        Assert.Equal(0xC000UL, t.OutputAddress);

        Assert.Equal(FillResult.Inserted, engine.DeviceTlb.Fill(new DeviceTlbEntry(1, 1, 0x1000, 0x1000)));
        Assert.Equal(FillResult.InsertedAfterEviction, engine.DeviceTlb.Fill(new DeviceTlbEntry(1, 2, 0x1000, 0x1000)));
        Assert.Equal(FillResult.Inserted, engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, 1, AddressSpace.None, 1, 1)));
        Assert.Equal(FillResult.InsertedAfterEviction, engine.ConfigCache.Fill(new ConfigEntry(ConfigKinds.Context, 2, AddressSpace.None, 1, 1)));
        Assert.Equal(1, engine.DeviceTlb.Count);
        Assert.Equal(1, engine.ConfigCache.Count);
    }

    [Fact]
    public void FullCache_NeverEmptiesWholesaleAndKeepsRecentlyUsedEntriesLonger()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 256 });
        for (ulong p = 0; p < 256; p++)
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, p << 12, p << 12));
        }

        int hotHits = 0;
        for (ulong p = 256; p < 512; p++)
        {
            // Page 0 is used before every fill: CLOCK gives it a second chance each time round.
            hotHits += engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 0, out _) ? 1 : 0;
            Assert.Equal(FillResult.InsertedAfterEviction, engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, p << 12, p << 12)));
            Assert.Equal(256, engine.Iotlb.Count);
        }

        Assert.Equal(256, hotHits);
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 0, out _));
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 511UL << 12, out _));
    }

    [Fact]
    public void Capacity16M_FillsLooksUpAndFlushes()
    {
        const int capacity = 16 << 20;
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = capacity, DeviceTlbCapacity = 8, ConfigCacheCapacity = 8 });
        Assert.Equal(capacity, engine.Iotlb.Capacity);
        for (int i = 0; i < capacity; i++)
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, (ushort)(i & 15), 1, (ulong)i << 12, (ulong)i << 12));
        }

        Assert.Equal(capacity, engine.Iotlb.Count);
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 15, 1, ((ulong)capacity - 1) << 12, out Translation t));
        Assert.Equal(((ulong)capacity - 1) << 12, t.OutputAddress);
        Assert.Equal(InvalidationStatus.Ok, engine.Execute(InvalidationDescriptor.IotlbDomain(3)));
        Assert.Equal(capacity - (capacity / 16), engine.Iotlb.Count);
        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Stage1, 3, 1, 3UL << 12, out _));
        Assert.Equal(InvalidationStatus.Ok, engine.Execute(InvalidationDescriptor.IotlbRange(4, 1, 4UL << 12, (20UL << 12) - 1)));
        Assert.Equal(capacity - (capacity / 16) - 1, engine.Iotlb.Count); // pages 4 and 20 belong to domain 4; only 4 is in range
        // 24 (scan columns) + 32 (record) + 4 (spare stack) + 16 (index) + 1/8 (CLOCK bit) bytes per entry.
        Assert.True(engine.Iotlb.MemoryBytes < 77L * capacity, $"{engine.Iotlb.MemoryBytes / (double)capacity:F1} bytes per entry");
    }

    [Fact]
    public void CapacityOutside1To2Pow28_IsAHostError()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TranslationCache(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DeviceTlb(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConfigurationCache((1 << 28) + 1));
    }
}
