namespace FastInval.Tests.Engine;

/// <summary>
/// Safe lifetimes: after Dispose every public member of the engine's operations and of the caches throws
/// <see cref="ObjectDisposedException"/>; Dispose is idempotent; and lookups racing Dispose on other threads either
/// finish normally or throw <see cref="ObjectDisposedException"/>, never touching freed memory (the storage of these
/// capacities is large enough to be a separate mapping that the free unmaps, so a read after it would fault).
/// </summary>
public class LifetimeTests
{
    private static readonly TranslationEntry s_entry = TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x4000, 0x8000);
    private static readonly TranslationEntry s_badEntry = TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x4001, 0x8000);
    private static readonly DeviceTlbEntry s_devEntry = new(1, 1, 0x4000, 0x8000);
    private static readonly ConfigEntry s_configEntry = new(ConfigKinds.Context, 1, AddressSpace.None, 1, 5);

    public static TheoryData<string> TranslationCacheMembers() => new()
    {
        "Capacity", "Count", "MemoryBytes", "Fill", "Fill-malformed", "TryFill", "TryFill-out", "GetInvalidationToken",
        "TryLookup", "TryLookup-token", "TryLookup-invalid", "TryLookupPinned", "TryLookupTable", "TryLookupTable-bad-span", "Clear", "CopyTo", "ToArray",
    };

    [Theory]
    [MemberData(nameof(TranslationCacheMembers))]
    public void EveryTranslationCacheMember_ThrowsAfterDispose(string member)
    {
        var cache = new TranslationCache(64);
        cache.Fill(in s_entry);
        InvalidationToken token = cache.GetInvalidationToken(1, 0x4000);
        cache.Dispose();
        cache.Dispose(); // idempotent
        Action call = member switch
        {
            "Capacity" => () => _ = cache.Capacity,
            "Count" => () => _ = cache.Count,
            "MemoryBytes" => () => _ = cache.MemoryBytes,
            "Fill" => () => cache.Fill(in s_entry),
            "Fill-malformed" => () => cache.Fill(in s_badEntry),
            "TryFill" => () => cache.TryFill(in s_entry, in token),
            "TryFill-out" => () => cache.TryFill(in s_badEntry, in token, out _),
            "GetInvalidationToken" => () => cache.GetInvalidationToken(1, 0),
            "TryLookup" => () => cache.TryLookup(TranslationStage.Stage1, 1, 1, 0x4000, out _),
            "TryLookup-token" => () => cache.TryLookup(TranslationStage.Stage1, 1, 1, 0x4000, out _, out _),
            "TryLookup-invalid" => () => cache.TryLookup((TranslationStage)3, 1, 1, 0x4000, out _),
            "TryLookupPinned" => () => cache.TryLookupPinned(TranslationStage.Stage1, 1, 1, 0x4000, out _),
            "TryLookupTable" => () => cache.TryLookupTable(TranslationStage.Stage1, 1, 1, 0x4000, 21, out _),
            "TryLookupTable-bad-span" => () => cache.TryLookupTable(TranslationStage.Stage1, 1, 1, 0x4000, 64, out _),
            "Clear" => cache.Clear,
            "CopyTo" => () => cache.CopyTo(new TranslationEntry[4]),
            _ => () => cache.ToArray(),
        };
        ObjectDisposedException e = Assert.Throws<ObjectDisposedException>(call);
        Assert.Equal(nameof(TranslationCache), e.ObjectName);
    }

    public static TheoryData<string> DeviceTlbMembers() => new()
    {
        "Capacity", "Count", "MemoryBytes", "Fill", "Fill-malformed", "TryFill", "TryFill-out", "GetInvalidationToken",
        "TryLookup", "TryLookup-token", "TryLookup-invalid", "TryLookupPinned", "Clear", "ToArray",
    };

    [Theory]
    [MemberData(nameof(DeviceTlbMembers))]
    public void EveryDeviceTlbMember_ThrowsAfterDispose(string member)
    {
        var tlb = new DeviceTlb(64);
        tlb.Fill(in s_devEntry);
        InvalidationToken token = tlb.GetInvalidationToken(1, 0x4000);
        tlb.Dispose();
        tlb.Dispose();
        var bad = new DeviceTlbEntry(1, 1, 0x4001, 0x8000);
        Action call = member switch
        {
            "Capacity" => () => _ = tlb.Capacity,
            "Count" => () => _ = tlb.Count,
            "MemoryBytes" => () => _ = tlb.MemoryBytes,
            "Fill" => () => tlb.Fill(in s_devEntry),
            "Fill-malformed" => () => tlb.Fill(in bad),
            "TryFill" => () => tlb.TryFill(in s_devEntry, in token),
            "TryFill-out" => () => tlb.TryFill(in bad, in token, out _),
            "GetInvalidationToken" => () => tlb.GetInvalidationToken(1, 0),
            "TryLookup" => () => tlb.TryLookup(1, 1, 0x4000, out _),
            "TryLookup-token" => () => tlb.TryLookup(1, 1, 0x4000, out _, out _),
            "TryLookup-invalid" => () => tlb.TryLookup(1, uint.MaxValue - 5, 0x4000, out _),
            "TryLookupPinned" => () => tlb.TryLookupPinned(1, 1, 0x4000, out _),
            "Clear" => tlb.Clear,
            _ => () => tlb.ToArray(),
        };
        ObjectDisposedException e = Assert.Throws<ObjectDisposedException>(call);
        Assert.Equal(nameof(DeviceTlb), e.ObjectName);
    }

    public static TheoryData<string> ConfigMembers() => new()
    {
        "Capacity", "Count", "MemoryBytes", "Fill", "Fill-malformed", "TryFill", "TryFill-out", "GetInvalidationToken",
        "TryLookup", "TryLookup-token", "TryLookup-invalid", "Clear", "ToArray",
    };

    [Theory]
    [MemberData(nameof(ConfigMembers))]
    public void EveryConfigurationCacheMember_ThrowsAfterDispose(string member)
    {
        var cache = new ConfigurationCache(64);
        cache.Fill(in s_configEntry);
        InvalidationToken token = cache.GetInvalidationToken(1);
        cache.Dispose();
        cache.Dispose();
        var bad = new ConfigEntry(ConfigKinds.None, 1, AddressSpace.None, 1, 5);
        Action call = member switch
        {
            "Capacity" => () => _ = cache.Capacity,
            "Count" => () => _ = cache.Count,
            "MemoryBytes" => () => _ = cache.MemoryBytes,
            "Fill" => () => cache.Fill(in s_configEntry),
            "Fill-malformed" => () => cache.Fill(in bad),
            "TryFill" => () => cache.TryFill(in s_configEntry, in token),
            "TryFill-out" => () => cache.TryFill(in bad, in token, out _),
            "GetInvalidationToken" => () => cache.GetInvalidationToken(1),
            "TryLookup" => () => cache.TryLookup(ConfigKinds.Context, 1, AddressSpace.None, out _),
            "TryLookup-token" => () => cache.TryLookup(ConfigKinds.Context, 1, AddressSpace.None, out _, out _),
            "TryLookup-invalid" => () => cache.TryLookup(ConfigKinds.None, 1, AddressSpace.None, out _),
            "Clear" => cache.Clear,
            _ => () => cache.ToArray(),
        };
        ObjectDisposedException e = Assert.Throws<ObjectDisposedException>(call);
        Assert.Equal(nameof(ConfigurationCache), e.ObjectName);
    }

    [Fact]
    public void EngineOperations_ThrowAfterDisposeAndSoDoItsCaches()
    {
        var engine = new InvalidationEngine();
        engine.Iotlb.Fill(in s_entry);
        engine.Dispose();
        engine.Dispose();
        Assert.Throws<ObjectDisposedException>(() => engine.Execute(InvalidationDescriptor.IotlbAll()));
        Assert.Throws<ObjectDisposedException>(() => engine.Execute(default(InvalidationDescriptor))); // even an invalid one
        Assert.Throws<ObjectDisposedException>(() => engine.Execute([InvalidationDescriptor.IotlbAll()], new InvalidationStatus[1]));
        Assert.Throws<ObjectDisposedException>(() => engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 0x4000, out _));
        Assert.Throws<ObjectDisposedException>(() => engine.DeviceTlb.Fill(in s_devEntry));
        Assert.Throws<ObjectDisposedException>(() => engine.ConfigCache.TryLookup(ConfigKinds.Context, 1, AddressSpace.None, out _));

        // Configuration stays readable.
        _ = engine.Kernel.ToString();
        Assert.NotNull(engine.FaultPlan);
        Assert.Equal(0UL, engine.DeviceTlbInvalidations);
    }

    [Fact]
    public void DisposingOneCacheOfAnEngine_MakesExecuteThrowInsteadOfTouchingIt()
    {
        using var engine = new InvalidationEngine();
        engine.DeviceTlb.Dispose();
        Assert.Throws<ObjectDisposedException>(() => engine.Execute(InvalidationDescriptor.IotlbAll()));
        Assert.Throws<ObjectDisposedException>(() => engine.Execute([InvalidationDescriptor.IotlbAll()], new InvalidationStatus[1]));
        Assert.True(engine.Iotlb.Fill(in s_entry) == FillResult.Inserted); // the others still work
    }

    [Theory]
    [InlineData("iotlb")]
    [InlineData("device")]
    [InlineData("config")]
    [InlineData("engine")]
    public void LookupsRacingDisposeFinishOr_ThrowObjectDisposedException(string target)
    {
        const int Rounds = 60;
        long completed = 0, disposedSeen = 0;
        for (int round = 0; round < Rounds; round++)
        {
            InvalidationEngine? engine = null;
            TranslationCache? iotlb = null;
            DeviceTlb? device = null;
            ConfigurationCache? config = null;
            IDisposable victim;
            switch (target)
            {
                case "iotlb": victim = iotlb = new TranslationCache(1 << 14); break;
                case "device": victim = device = new DeviceTlb(1 << 14); break;
                case "config": victim = config = new ConfigurationCache(1 << 14); break;
                default:
                    victim = engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 1 << 14 });
                    iotlb = engine.Iotlb;
                    break;
            }

            for (int i = 0; i < 256; i++)
            {
                iotlb?.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, (ulong)i << 12, (ulong)i << 20));
                device?.Fill(new DeviceTlbEntry(1, 1, (ulong)i << 12, (ulong)i << 20));
                config?.Fill(new ConfigEntry(ConfigKinds.Context, (uint)i, AddressSpace.None, 1, (ulong)i));
            }

            int started = 0;
            Exception? unexpected = null;
            void Reader(int seed)
            {
                var rng = new Random(seed);
                Interlocked.Increment(ref started);
                try
                {
                    while (true)
                    {
                        int i = rng.Next(512);
                        bool hit = iotlb is not null ? iotlb.TryLookup(TranslationStage.Stage1, 1, 1, (ulong)i << 12, out _)
                            : device is not null ? device.TryLookup(1, 1, (ulong)i << 12, out _)
                            : config!.TryLookup(ConfigKinds.Context, (uint)i, AddressSpace.None, out _);
                        if (hit != (i < 256))
                        {
                            throw new InvalidOperationException($"lookup {i}: hit {hit}");
                        }

                        Interlocked.Increment(ref completed);
                    }
                }
                catch (ObjectDisposedException)
                {
                    Interlocked.Increment(ref disposedSeen);
                }
                catch (Exception e)
                {
                    unexpected = e;
                }
            }

            var readers = new[] { new Thread(() => Reader(round * 2)), new Thread(() => Reader((round * 2) + 1)) };
            foreach (Thread t in readers)
            {
                t.Start();
            }

            while (Volatile.Read(ref started) < 2)
            {
                Thread.Yield();
            }

            Thread.SpinWait(1000 * (round % 7));
            if (engine is not null && round % 2 == 0)
            {
                // An invalidation on a third thread while Dispose runs: it either completes or throws ObjectDisposedException.
                var writer = new Thread(() =>
                {
                    try
                    {
                        while (true)
                        {
                            engine.Execute(InvalidationDescriptor.IotlbRange(1, 1, 0x100_0000, 0x100_0FFF));
                        }
                    }
                    catch (ObjectDisposedException)
                    {
                    }
                });
                writer.Start();
                Thread.SpinWait(500);
                victim.Dispose();
                writer.Join();
            }
            else
            {
                victim.Dispose();
            }

            foreach (Thread t in readers)
            {
                t.Join();
            }

            Assert.Null(unexpected);
        }

        Assert.Equal(2L * Rounds, disposedSeen); // every reader ended by seeing the disposal
        Assert.True(completed > Rounds, $"only {completed} lookups completed");
    }
}
