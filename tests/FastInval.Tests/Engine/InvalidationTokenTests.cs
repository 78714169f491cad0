using Xunit.Abstractions;

namespace FastInval.Tests.Engine;

/// <summary>The <see cref="InvalidationToken"/> contract of the three caches: which invalidations make a token stale,
/// which do not, and what a foreign or default token does.</summary>
public class InvalidationTokenTests
{
    private readonly ITestOutputHelper _output;

    public InvalidationTokenTests(ITestOutputHelper output) => _output = output;

    private static TranslationEntry Page(ushort domain, ulong address, ulong output = 0x1000_0000) =>
        TranslationEntry.Leaf(TranslationStage.Stage1, domain, 1, address, output);

    [Fact]
    public void AFreshToken_FillsAndAMissReturnsOne()
    {
        using var engine = new InvalidationEngine();
        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Stage1, 3, 1, 0x4000, out _, out InvalidationToken token));
        Assert.True(token.IsValid);
        Assert.True(engine.Iotlb.TryFill(Page(3, 0x4000), in token, out FillResult result));
        Assert.Equal(FillResult.Inserted, result);
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 3, 1, 0x4123, out Translation t, out InvalidationToken hitToken));
        Assert.Equal(0x1000_0123UL, t.OutputAddress);
        Assert.False(hitToken.IsValid);

        // The same token may fill again (a replacement) as long as nothing was invalidated.
        Assert.True(engine.Iotlb.TryFill(Page(3, 0x4000, 0x2000_0000), in token, out result));
        Assert.Equal(FillResult.Replaced, result);
    }

    [Fact]
    public void DefaultForeignAndMismatchedTokens_NeverFill()
    {
        using var engine = new InvalidationEngine();
        using var other = new TranslationCache(64);
        InvalidationToken foreign = other.GetInvalidationToken(3, 0x4000);
        Assert.False(engine.Iotlb.TryFill(Page(3, 0x4000), default(InvalidationToken), out FillResult r));
        Assert.Equal(FillResult.Stale, r);
        Assert.False(engine.Iotlb.TryFill(Page(3, 0x4000), in foreign));
        InvalidationToken token = engine.Iotlb.GetInvalidationToken(3, 0x4000);
        Assert.False(engine.Iotlb.TryFill(Page(4, 0x4000), in token));                  // another domain
        Assert.False(engine.Iotlb.TryFill(Page(3, 0x4000_0000), in token));             // another 2 MiB region
        Assert.True(engine.Iotlb.TryFill(Page(3, 0x1F_F000), in token));                // same region
        Assert.Equal(1, engine.Iotlb.Count);

        // Malformed entries are Rejected, not Stale, and change nothing.
        Assert.False(engine.Iotlb.TryFill(TranslationEntry.Leaf(TranslationStage.Stage1, 3, 1, 0x4001, 0), in token, out r));
        Assert.Equal(FillResult.Rejected, r);
        Assert.Equal(1, engine.Iotlb.Count);
    }

    public static TheoryData<string> CoveringInvalidations() => new()
    {
        "page", "range-wide", "domain", "address-space", "all", "all-stage1", "clear", "batch",
    };

    [Theory]
    [MemberData(nameof(CoveringInvalidations))]
    public void EveryInvalidationThatMay_CoverTheEntryMakesTheTokenStale(string kind)
    {
        using var engine = new InvalidationEngine();
        InvalidationToken small = engine.Iotlb.GetInvalidationToken(3, 0x20_4000);
        InvalidationToken large = engine.Iotlb.GetInvalidationToken(3, 0x4000_0000);
        switch (kind)
        {
            case "page": engine.Execute(InvalidationDescriptor.IotlbRange(3, 1, 0x20_4000, 0x20_4FFF)); break;
            case "range-wide": engine.Execute(InvalidationDescriptor.IotlbRange(3, 9, 0, ulong.MaxValue)); break;
            case "domain": engine.Execute(InvalidationDescriptor.IotlbDomain(3)); break;
            case "address-space": engine.Execute(InvalidationDescriptor.IotlbAddressSpace(3, 1)); break;
            case "all": engine.Execute(InvalidationDescriptor.IotlbAll()); break;
            case "all-stage1": engine.Execute(InvalidationDescriptor.IotlbAll(StageMask.FirstStage)); break;
            case "clear": engine.Iotlb.Clear(); break;
            default:
                engine.Execute([InvalidationDescriptor.IotlbDomain(9), InvalidationDescriptor.IotlbAddressSpace(3, 2)], new InvalidationStatus[2]);
                break;
        }

        Assert.False(engine.Iotlb.TryFill(Page(3, 0x20_4000), in small, out FillResult r));
        Assert.Equal(FillResult.Stale, r);

        // A 1 GiB block checks the whole domain's range invalidations (it spans 512 regions).
        if (kind != "page")
        {
            Assert.False(engine.Iotlb.TryFill(TranslationEntry.Leaf(TranslationStage.Stage1, 3, 1, 0x4000_0000, 0x8000_0000, 30), in large));
        }

        Assert.Equal(0, engine.Iotlb.Count);
    }

    [Fact]
    public void ASmallRangeInvalidationStalesA_BlockContainingItButNotOtherRegions()
    {
        using var engine = new InvalidationEngine();
        InvalidationToken block = engine.Iotlb.GetInvalidationToken(3, 0x4000_0000);
        InvalidationToken elsewhere = engine.Iotlb.GetInvalidationToken(3, 0x20_0000);
        engine.Execute(InvalidationDescriptor.IotlbRange(3, 1, 0x4010_0000, 0x4010_0FFF));
        Assert.False(engine.Iotlb.TryFill(TranslationEntry.Leaf(TranslationStage.Stage1, 3, 1, 0x4000_0000, 0x8000_0000, 30), in block));
        Assert.True(engine.Iotlb.TryFill(Page(3, 0x20_0000), in elsewhere));
    }

    [Fact]
    public void Unrelated_InvalidationsRarelyStaleAToken()
    {
        // Tokens of domain 3, page-sized invalidations of other domains and of other regions of domain 3: only counter
        // stripes shared by hashing can reject. Measures the false-positive rate (reported in the test output).
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 256 });
        var rng = new Random(11);
        int trials = 20_000, rejected = 0;
        for (int i = 0; i < trials; i++)
        {
            ulong address = (ulong)rng.Next(1 << 20) << 12;
            InvalidationToken token = engine.Iotlb.GetInvalidationToken(3, address);
            ulong other = (ulong)rng.Next(1 << 20) << 12;
            bool sameRegion = (other >> 21) == (address >> 21);
            if (rng.Next(2) == 0 || sameRegion)
            {
                ushort domain = (ushort)(4 + rng.Next(4000));
                engine.Execute(InvalidationDescriptor.IotlbRange(domain, 1, other, other | 0xFFF));
            }
            else
            {
                engine.Execute(InvalidationDescriptor.IotlbRange(3, 1, other, other | 0xFFF));
            }

            if (!engine.Iotlb.TryFill(Page(3, address), in token))
            {
                rejected++;
            }
        }

        double rate = (double)rejected / trials;
        _output.WriteLine($"false-positive rate: {rejected} of {trials} = {rate:P3}");
        Assert.True(rate < 0.005, $"false-positive rate {rate:P3}");
    }

    [Fact]
    public void Device_TlbTokensFollowTheSourceIdAndRange()
    {
        using var engine = new InvalidationEngine();
        DeviceTlb tlb = engine.DeviceTlb;
        var entry = new DeviceTlbEntry(0x10, 5, 0x8000, 0x9000);
        Assert.False(tlb.TryLookup(0x10, 5, 0x8000, out _, out InvalidationToken token));
        engine.Execute(InvalidationDescriptor.DeviceTlb(0x11, 5));                 // another device
        engine.Execute(InvalidationDescriptor.DeviceTlb(0x10, 5, 0x4000_0000, 0x4000_0FFF)); // another region
        Assert.True(tlb.TryFill(in entry, in token, out FillResult r));
        Assert.Equal(FillResult.Inserted, r);

        token = tlb.GetInvalidationToken(0x10, 0x8000);
        engine.Execute(InvalidationDescriptor.DeviceTlb(0x10, 5, 0x8000, 0x8FFF));
        Assert.False(tlb.TryFill(in entry, in token, out r));
        Assert.Equal(FillResult.Stale, r);

        // A request without PASID removes PASID-tagged entries at any address: every token of the device goes stale.
        token = tlb.GetInvalidationToken(0x10, 0x8000);
        engine.Execute(InvalidationDescriptor.DeviceTlb(0x10, AddressSpace.None, 0x4000_0000, 0x4000_0FFF));
        Assert.False(tlb.TryFill(in entry, in token));

        token = tlb.GetInvalidationToken(0x10, 0x8000);
        engine.Execute(new InvalidationDescriptor(InvalidationScope.DeviceTlb, InvalidationFlags.None, StageMask.None, 0,
            Granule.Any, ConfigKinds.None, 0, 0, 0, 0, ulong.MaxValue));
        Assert.False(tlb.TryFill(in entry, in token));
        Assert.False(tlb.TryFill(new DeviceTlbEntry(0x10, 5, 0x8001, 0x9000), tlb.GetInvalidationToken(0x10, 0x8000), out r));
        Assert.Equal(FillResult.Rejected, r);
    }

    [Fact]
    public void Configuration_TokensFollowTheSourceId()
    {
        using var engine = new InvalidationEngine();
        ConfigurationCache cache = engine.ConfigCache;
        var entry = new ConfigEntry(ConfigKinds.Context, 0x20, AddressSpace.None, 4, 0xABC);
        Assert.False(cache.TryLookup(ConfigKinds.Context, 0x20, AddressSpace.None, out _, out InvalidationToken token));
        engine.Execute(InvalidationDescriptor.ConfigSources(ConfigKinds.Context, 0x21, 0x2F));
        Assert.True(cache.TryFill(in entry, in token));
        Assert.True(cache.TryLookup(ConfigKinds.Context, 0x20, AddressSpace.None, out ConfigEntry found));
        Assert.Equal(0xABCUL, found.Value);

        foreach (InvalidationDescriptor d in new[]
                 {
                     InvalidationDescriptor.ConfigSources(ConfigKinds.Context, 0x18, 0x27),
                     InvalidationDescriptor.ConfigSources(ConfigKinds.StreamTableEntry, 0, 0xFFFF),
                     InvalidationDescriptor.ConfigDomain(ConfigKinds.Context, 9),
                     InvalidationDescriptor.ConfigAll(ConfigKinds.PasidEntry),
                 })
        {
            token = cache.GetInvalidationToken(0x20);
            engine.Execute(in d);
            Assert.False(cache.TryFill(in entry, in token, out FillResult r));
            Assert.Equal(FillResult.Stale, r);
        }

        token = cache.GetInvalidationToken(0x20);
        cache.Clear();
        Assert.False(cache.TryFill(in entry, in token));
        Assert.False(cache.TryFill(in entry, cache.GetInvalidationToken(0x21)));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void An_InvalidDescriptorChangesNoSequence()
    {
        using var engine = new InvalidationEngine();
        InvalidationToken token = engine.Iotlb.GetInvalidationToken(3, 0x4000);
        Assert.Equal(InvalidationStatus.Invalid, engine.Execute(default(InvalidationDescriptor)));
        Assert.True(engine.Iotlb.TryFill(Page(3, 0x4000), in token));
    }

    [Fact]
    public void TryFillAndToken_ReadsAllocateNothing()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 64 });
        TranslationEntry e = Page(3, 0x4000);
        long bytes = AllocationMeter.Measure(() =>
        {
            for (int i = 0; i < 1000; i++)
            {
                engine.Iotlb.TryLookup(TranslationStage.Stage1, 3, 1, 0x9000, out _, out InvalidationToken token);
                engine.Iotlb.TryFill(in e, in token);
                engine.DeviceTlb.TryFill(new DeviceTlbEntry(1, 1, 0x4000, 0x4000), engine.DeviceTlb.GetInvalidationToken(1, 0x4000));
                engine.ConfigCache.TryFill(new ConfigEntry(ConfigKinds.Context, 1, AddressSpace.None, 1, 1), engine.ConfigCache.GetInvalidationToken(1));
            }
        });
        Assert.Equal(0, bytes);
    }
}
