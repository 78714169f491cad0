namespace FastInval.Tests.Engine;

public class EngineSmokeTests
{
    [Fact]
    public void FillThenLookupThenDomain_FlushRemovesOnlyThatDomain()
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
    public void Range_FlushByProbeRemovesOverlappingPagesAndBlocks()
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

public class DeviceTlbSemanticsTests
{
    [Fact]
    public void InvalidationWithoutPasid_RemovesNoPasidEntriesInRangeAndEveryPasidEntryOfTheDevice()
    {
        using var engine = new InvalidationEngine();
        engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x1000, 0x1000));
        engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x9000, 0x9000));   // out of range, no PASID: stays
        engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, 5, 0x9000_0000, 0x9000));               // PASID 5, far away: goes
        engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, 6, 0x1000, 0x1000, global: true));      // global: goes
        engine.DeviceTlb.Fill(new DeviceTlbEntry(0x11, 5, 0x1000, 0x1000));                    // other device: stays
        Assert.Equal(InvalidationStatus.Ok, engine.Execute(InvalidationDescriptor.DeviceTlb(0x10, AddressSpace.None, 0x1000, 0x1FFF)));
        Assert.False(engine.DeviceTlb.TryLookup(0x10, AddressSpace.None, 0x1000, out _));
        Assert.True(engine.DeviceTlb.TryLookup(0x10, AddressSpace.None, 0x9000, out _));
        Assert.False(engine.DeviceTlb.TryLookup(0x10, 5, 0x9000_0000, out _));
        Assert.False(engine.DeviceTlb.TryLookup(0x10, 6, 0x1000, out _));
        Assert.True(engine.DeviceTlb.TryLookup(0x11, 5, 0x1000, out _));
        Assert.Equal(2, engine.DeviceTlb.Count);
    }

    [Fact]
    public void InvalidationWithAPasid_KeepsOtherPasidsAndNoPasidEntries()
    {
        using var engine = new InvalidationEngine();
        engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x1000, 0x1000));
        engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, 5, 0x1000, 0x1000));
        engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, 6, 0x1000, 0x1000));
        engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, 7, 0x1000, 0x1000, global: true));
        Assert.Equal(InvalidationStatus.Ok, engine.Execute(InvalidationDescriptor.DeviceTlb(0x10, 5, 0, ulong.MaxValue)));
        Assert.Equal(3, engine.DeviceTlb.Count);
        Assert.Equal(InvalidationStatus.Ok, engine.Execute(InvalidationDescriptor.DeviceTlb(0x10, 6, 0, ulong.MaxValue, includeGlobal: true)));
        Assert.Equal(1, engine.DeviceTlb.Count);
        Assert.True(engine.DeviceTlb.TryLookup(0x10, AddressSpace.None, 0x1000, out _));
    }
}
