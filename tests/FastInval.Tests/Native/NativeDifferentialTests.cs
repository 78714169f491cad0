using FastInval.Native;

namespace FastInval.Tests.Native;

/// <summary>
/// The same random fills and descriptor batches through the C ABI and through the .NET API give the same statuses,
/// batch results and cache contents. By default the C ABI is this process's entry points; native/test.sh runs this
/// class again with FASTINVAL_NATIVE_LIB set, so the batches go through the NativeAOT-compiled libfastinval.so.
/// </summary>
[Collection(NativeCollection.Name)]
public sealed unsafe class NativeDifferentialTests
{
    private static readonly Abi s_abi = Abi.FromEnvironment();

    private static readonly ushort[] s_domains = [1, 2];
    private static readonly uint[] s_pasids = [0, 1, AddressSpace.None];
    private static readonly uint[] s_sources = [0x10, 0x11];

    [Fact]
    public void Abi_IsTheLibraryTheEnvironmentNames()
    {
        // A loaded libfastinval.so has its own runtime and handle table: its handles mean nothing to this process's.
        bool loaded = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("FASTINVAL_NATIVE_LIB"));
        ulong h;
        Assert.Equal(0, s_abi.EngineCreate(null, &h));
        NativeEngineCounts counts;
        Assert.Equal(loaded ? -NativeErrno.EBADF : 0, Abi.InProcess().EngineCounts(h, &counts));
        Assert.Equal(0, s_abi.EngineDestroy(h));
        Assert.Equal(NativeExports.AbiVersion, s_abi.Version());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void RandomBatches_CAbiAndDotNetApi_SameStatusesAndCacheContents(int seed)
    {
        var random = new Random(seed);
        var native = new NativeEngineOptions { Size = (uint)sizeof(NativeEngineOptions), IotlbCapacity = 512, DeviceTlbCapacity = 128, ConfigCacheCapacity = 128, Kernel = -1 };
        ulong h;
        Assert.Equal(0, s_abi.EngineCreate(&native, &h));
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 128, ConfigCacheCapacity = 128 });

        ulong[] timeouts = [3, 9, 20];
        fixed (ulong* t = timeouts)
        {
            var plan = new NativeFaultPlan
            {
                Size = (uint)sizeof(NativeFaultPlan),
                Seed = (ulong)seed,
                TimeoutPerMillion = 150_000,
                CompletionErrorPerMillion = 150_000,
                TimeoutOrdinals = t,
                TimeoutOrdinalCount = 3,
            };
            Assert.Equal(0, s_abi.SetFaultPlan(h, &plan));
        }

        engine.FaultPlan = new FaultPlan { Seed = (ulong)seed, TimeoutPerMillion = 150_000, CompletionErrorPerMillion = 150_000, TimeoutOrdinals = [.. timeouts] };

        var iotlbKeys = new List<NativeIotlbEntry>();
        var devKeys = new List<NativeDeviceTlbEntry>();
        var configKeys = new List<NativeConfigEntry>();
        int descriptorsRun = 0;
        for (int round = 0; round < 40; round++)
        {
            for (int i = 0; i < 24; i++)
            {
                NativeIotlbEntry e = RandomIotlbEntry(random);
                Assert.Equal((int)engine.Iotlb.Fill(ToEntry(e)), s_abi.IotlbFill(h, &e));
                iotlbKeys.Add(e);
                NativeDeviceTlbEntry d = RandomDeviceTlbEntry(random);
                Assert.Equal((int)engine.DeviceTlb.Fill(new DeviceTlbEntry(d.SourceId, d.Pasid, d.InputAddress, d.OutputAddress, d.SizeLog2, (AccessRights)d.Rights, d.Flags != 0)), s_abi.DeviceTlbFill(h, &d));
                devKeys.Add(d);
                NativeConfigEntry c = RandomConfigEntry(random);
                Assert.Equal((int)engine.ConfigCache.Fill(new ConfigEntry((ConfigKinds)c.Kind, c.SourceId, c.AddressSpaceId, c.DomainId, c.Value)), s_abi.ConfigFill(h, &c));
                configKeys.Add(c);
            }

            var batch = new InvalidationDescriptor[random.Next(0, 40)];
            for (int i = 0; i < batch.Length; i++)
            {
                batch[i] = RandomDescriptor(random);
            }

            var expectedStatuses = new InvalidationStatus[batch.Length];
            var actualStatuses = new InvalidationStatus[batch.Length];
            BatchResult expected = engine.Execute(batch, expectedStatuses);
            NativeBatchResult actual;
            fixed (InvalidationDescriptor* b = batch)
            fixed (InvalidationStatus* s = actualStatuses)
            {
                Assert.Equal(0, s_abi.Execute(h, b, (nuint)batch.Length, s, &actual));
            }

            descriptorsRun += batch.Length;
            Assert.Equal(expectedStatuses, actualStatuses);
            Assert.Equal(expected, new BatchResult((int)actual.Ok, (int)actual.TimedOut, (int)actual.CompletionErrors, (int)actual.Invalid, actual.FirstFailureIndex));
            CompareCaches(h, engine, iotlbKeys, devKeys, configKeys, $"seed {seed} round {round} via {s_abi.Source}");
        }

        Assert.True(descriptorsRun > 400);
        Assert.Equal(0, s_abi.EngineDestroy(h));
    }

    private static void CompareCaches(ulong h, InvalidationEngine engine, List<NativeIotlbEntry> iotlb, List<NativeDeviceTlbEntry> dev,
        List<NativeConfigEntry> config, string where)
    {
        NativeEngineCounts counts;
        Assert.Equal(0, s_abi.EngineCounts(h, &counts));
        Assert.Equal((engine.Iotlb.Count, engine.DeviceTlb.Count, engine.ConfigCache.Count, engine.DeviceTlbInvalidations),
            ((int)counts.IotlbCount, (int)counts.DeviceTlbCount, (int)counts.ConfigCount, counts.DeviceTlbInvalidations));
        NativeTranslation t;
        foreach (NativeIotlbEntry e in iotlb)
        {
            foreach (uint pasid in s_pasids)
            {
                bool hit = engine.Iotlb.TryLookup((TranslationStage)e.Stage, e.DomainId, pasid, e.InputAddress + 0x10, out Translation x);
                int rc = s_abi.IotlbLookup(h, e.Stage, e.DomainId, pasid, e.InputAddress + 0x10, &t);
                Assert.True((hit ? 1 : 0) == rc, where);
                if (hit)
                {
                    Assert.Equal((x.OutputAddress, x.InputBase, (ushort)x.Rights, x.SizeLog2, x.Global), (t.OutputAddress, t.InputBase, t.Rights, t.SizeLog2, t.Global != 0));
                }
            }
        }

        foreach (NativeDeviceTlbEntry d in dev)
        {
            bool hit = engine.DeviceTlb.TryLookup(d.SourceId, d.Pasid, d.InputAddress, out Translation x);
            Assert.True((hit ? 1 : 0) == s_abi.DeviceTlbLookup(h, d.SourceId, d.Pasid, d.InputAddress, &t), where);
            if (hit)
            {
                Assert.Equal((x.OutputAddress, x.SizeLog2), (t.OutputAddress, t.SizeLog2));
            }
        }

        NativeConfigEntry got;
        foreach (NativeConfigEntry c in config)
        {
            bool hit = engine.ConfigCache.TryLookup((ConfigKinds)c.Kind, c.SourceId, c.AddressSpaceId, out ConfigEntry x);
            Assert.True((hit ? 1 : 0) == s_abi.ConfigLookup(h, c.Kind, c.SourceId, c.AddressSpaceId, &got), where);
            if (hit)
            {
                Assert.Equal((x.Value, x.DomainId), (got.Value, got.DomainId));
            }
        }
    }

    private static TranslationEntry ToEntry(NativeIotlbEntry e) =>
        new((TranslationStage)e.Stage, e.DomainId, e.AddressSpaceId, e.InputAddress, e.OutputAddress, e.SizeLog2,
            (AccessRights)e.Rights, (Granule)e.Granule, (e.Flags & 1) != 0, (e.Flags & 2) != 0);

    private static NativeIotlbEntry RandomIotlbEntry(Random r)
    {
        byte stage = (byte)(1 << r.Next(3));
        bool big = r.Next(8) == 0;
        byte sizeLog2 = big ? (byte)21 : (byte)12;
        ulong input = big ? (ulong)r.Next(2) << 21 : (ulong)r.Next(16) << 12;
        uint pasid = stage == 2 ? AddressSpace.None : s_pasids[r.Next(2)];
        return new NativeIotlbEntry
        {
            InputAddress = input,
            OutputAddress = (ulong)r.Next(1, 1 << 20) << 21,
            AddressSpaceId = pasid,
            DomainId = s_domains[r.Next(s_domains.Length)],
            Rights = (ushort)r.Next(1, 4),
            Stage = stage,
            Granule = 1,
            SizeLog2 = sizeLog2,
            Flags = (byte)((stage != 2 && r.Next(6) == 0 ? 1 : 0) | (r.Next(5) == 0 ? 2 : 0)),
        };
    }

    private static NativeDeviceTlbEntry RandomDeviceTlbEntry(Random r) => new()
    {
        InputAddress = (ulong)r.Next(16) << 12,
        OutputAddress = (ulong)r.Next(1, 1 << 20) << 12,
        SourceId = s_sources[r.Next(s_sources.Length)],
        Pasid = s_pasids[r.Next(s_pasids.Length)],
        Rights = 1,
        SizeLog2 = 12,
        Flags = (byte)(r.Next(8) == 0 ? 1 : 0),
    };

    private static NativeConfigEntry RandomConfigEntry(Random r) => new()
    {
        Value = (ulong)r.NextInt64(),
        SourceId = (uint)r.Next(8),
        AddressSpaceId = s_pasids[r.Next(s_pasids.Length)],
        DomainId = s_domains[r.Next(s_domains.Length)],
        Kind = (byte)(1 << r.Next(5)),
    };

    private static InvalidationDescriptor RandomDescriptor(Random r)
    {
        var scope = (InvalidationScope)r.Next(0, 6); // 0 and 5 are invalid scopes
        var flags = (InvalidationFlags)(r.Next(20) == 0 ? r.Next(256) : r.Next(32));
        var stages = (StageMask)(r.Next(10) == 0 ? r.Next(16) : r.Next(1, 8));
        byte level = 0;
        var granule = Granule.Any;
        if (scope == InvalidationScope.IotlbRange && r.Next(4) == 0)
        {
            granule = (Granule)r.Next(0, 4);
            level = (byte)r.Next(0, 4);
        }

        ulong first = (ulong)r.Next(20) << 12;
        ulong last = r.Next(10) == 0 ? first - 1 : first + ((ulong)r.Next(1, 8) << 12) - 1; // sometimes first > last
        uint asid = r.Next(30) == 0 ? 0x12345678u : s_pasids[r.Next(s_pasids.Length)];
        if (scope == InvalidationScope.Config)
        {
            first = (ulong)r.Next(8);
            last = first + (ulong)r.Next(0, 3);
        }

        var kinds = scope == InvalidationScope.Config ? (ConfigKinds)r.Next(0, 32) : ConfigKinds.None;
        return new InvalidationDescriptor(scope, flags, stages, level, granule, kinds, s_domains[r.Next(s_domains.Length)], asid,
            s_sources[r.Next(s_sources.Length)], first, last);
    }
}
