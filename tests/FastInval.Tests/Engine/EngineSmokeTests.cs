namespace FastInval.Tests.Engine;

public class EngineSmokeTests
{
    [Fact]
    public void Fill_then_lookup_then_domain_flush_removes_only_that_domain()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 1024 });
        for (ulong p = 0; p < 100; p++)
        {
            Assert.Equal(FillResult.Inserted, engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 7, p << 12, 0x10_0000_0000 + (p << 12))));
            Assert.Equal(FillResult.Inserted, engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 2, 7, p << 12, 0x20_0000_0000 + (p << 12))));
        }

        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 7, 0x5123, out Translation t));
        Assert.Equal(0x10_0000_5123UL, t.OutputAddress);
        Assert.Equal(InvalidationStatus.Ok, engine.Execute(InvalidationDescriptor.IotlbDomain(1)));
        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 7, 0x5123, out _));
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 2, 7, 0x5123, out t));
        Assert.Equal(0x20_0000_5123UL, t.OutputAddress);
        Assert.Equal(100, engine.Iotlb.Count);
    }

    [Fact]
    public void Range_flush_by_probe_removes_overlapping_pages_and_blocks()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 1 << 16 });
        for (ulong p = 0; p < 4096; p++)
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 3, 9, p << 12, p << 12));
        }

        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 3, 9, 0x4000_0000, 0x8000_0000, sizeLog2: 21));
        Assert.Equal(InvalidationStatus.Ok, engine.Execute(InvalidationDescriptor.IotlbRange(3, 9, 0x10000, 0x10000 + 0xFFFF)));
        Assert.Equal(4096 + 1 - 16, engine.Iotlb.Count);
        Assert.Equal(InvalidationStatus.Ok, engine.Execute(InvalidationDescriptor.IotlbRange(3, 9, 0x4010_0000, 0x4010_0FFF)));
        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Stage1, 3, 9, 0x4000_0000, out _));
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 3, 9, 0x20000, out _));
    }
}
