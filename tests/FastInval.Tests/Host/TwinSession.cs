using System.Buffers.Binary;

namespace FastInval.Tests.Host;

/// <summary>
/// Random operation streams for one unit, run over the wire and on an in-process twin engine built with the same
/// capacities: every reply is compared with what the public API answers on the twin. Small palettes of domains,
/// address spaces, sources and pages make hits, replacements and removals common.
/// </summary>
internal sealed class TwinSession : IDisposable
{
    private static readonly uint[] s_spaces = [0, 1, 2, AddressSpace.None];
    private static readonly TranslationStage[] s_stages = [TranslationStage.Stage1, TranslationStage.Stage2, TranslationStage.Nested];
    private static readonly ConfigKinds[] s_kinds = [ConfigKinds.Context, ConfigKinds.PasidEntry, ConfigKinds.StreamTableEntry, ConfigKinds.ContextDescriptor, ConfigKinds.InterruptEntry];

    private readonly WireClient _client;
    private readonly Random _random;
    private readonly InvalidationEngine _twin;
    private ulong _requests = 1; // CREATE
    private ulong _descriptors;
    private ulong _fills;

    public TwinSession(WireClient client, int seed, int iotlb = 64, int deviceTlb = 32, int config = 16)
    {
        _client = client;
        _random = new Random(seed);
        Unit = client.CreateEngine(iotlb, deviceTlb, config);
        _twin = new InvalidationEngine(new EngineOptions { IotlbCapacity = iotlb, DeviceTlbCapacity = deviceTlb, ConfigCacheCapacity = config });
    }

    public uint Unit { get; }

    /// <summary>Operations run so far.</summary>
    public int Operations { get; private set; }

    private ulong Page() => (ulong)_random.Next(0, 48) << 12;

    private T Pick<T>(T[] values) => values[_random.Next(values.Length)];

    private TranslationEntry IotlbEntry()
    {
        TranslationStage stage = Pick(s_stages);
        ushort domain = (ushort)_random.Next(0, 3);
        uint space = stage == TranslationStage.Stage2 ? AddressSpace.None : Pick(s_spaces);
        bool global = stage != TranslationStage.Stage2 && _random.Next(8) == 0;
        int shape = _random.Next(10);
        if (shape == 0)
        {
            return TranslationEntry.Table(stage, domain, space, 0, Page(), 21, global: global); // 2 MiB table entry
        }

        if (shape == 1)
        {
            return TranslationEntry.Leaf(stage, domain, space, 0x200000, 0x40000000, 21, global: global); // a block
        }

        if (shape == 2)
        {
            return TranslationEntry.Leaf(stage, domain, space, Page() | 0x10, Page()); // misaligned: rejected
        }

        return TranslationEntry.Leaf(stage, domain, space, Page(), Page() | 0x100000, rights: (AccessRights)_random.Next(0, 16), global: global);
    }

    private DeviceTlbEntry AtcEntry() =>
        new((uint)_random.Next(0, 3), Pick(s_spaces), Page(), Page() | 0x200000, _random.Next(6) == 0 ? (byte)13 : (byte)12, global: _random.Next(10) == 0);

    private ConfigEntry ConfigEntry() =>
        new(_random.Next(12) == 0 ? ConfigKinds.Context | ConfigKinds.PasidEntry : Pick(s_kinds), (uint)_random.Next(0, 6), Pick(s_spaces), (ushort)_random.Next(0, 3), (ulong)_random.NextInt64());

    private InvalidationDescriptor Descriptor()
    {
        ushort domain = (ushort)_random.Next(0, 3);
        ulong first = Page();
        ulong last = first + ((ulong)_random.Next(1, 8) << 12) - 1;
        return _random.Next(12) switch
        {
            0 => InvalidationDescriptor.IotlbAll(),
            1 => InvalidationDescriptor.IotlbDomain(domain),
            2 => InvalidationDescriptor.IotlbAddressSpace(domain, Pick(s_spaces)),
            3 => InvalidationDescriptor.IotlbRange(domain, Pick(s_spaces), first, last, leafOnly: _random.Next(2) == 0),
            4 => InvalidationDescriptor.IotlbRangeAllAddressSpaces(domain, first, last, StageMask.Stage2),
            5 => InvalidationDescriptor.DeviceTlb((uint)_random.Next(0, 3), Pick(s_spaces), first, last),
            6 => InvalidationDescriptor.DeviceTlbAllPasids((uint)_random.Next(0, 3)),
            7 => InvalidationDescriptor.ConfigAll(Pick(s_kinds)),
            8 => InvalidationDescriptor.ConfigSources(ConfigKinds.All, (uint)_random.Next(0, 3), (uint)_random.Next(3, 6)),
            9 => InvalidationDescriptor.ConfigDomain(ConfigKinds.All, domain),
            10 => new InvalidationDescriptor((InvalidationScope)_random.Next(0, 7), (InvalidationFlags)_random.Next(0, 64), (StageMask)_random.Next(0, 9),
                (byte)_random.Next(0, 5), (Granule)_random.Next(0, 5), (ConfigKinds)_random.Next(0, 40), domain, Pick(s_spaces), (uint)_random.Next(0, 3), first, _random.Next(4) == 0 ? 0 : last),
            _ => InvalidationDescriptor.DeviceTlb((uint)_random.Next(0, 3), AddressSpace.None, first, last),
        };
    }

    private T[] Many<T>(Func<T> make, int max) => Enumerable.Range(0, _random.Next(0, max + 1)).Select(_ => make()).ToArray();

    /// <summary>Runs one random operation over the wire and on the twin, asserting the replies agree.</summary>
    public void Step()
    {
        Operations++;
        int kind = _random.Next(100);
        if (kind < 18)
        {
            TranslationEntry[] entries = Many(IotlbEntry, 8);
            byte[] results = Replies.FillResults(_client.Ok(Frames.FillIotlb(_client.NextId(), Unit, entries)));
            Assert.Equal(entries.Select(e => (byte)_twin.Iotlb.Fill(in e)).ToArray(), results);
            _fills += (ulong)entries.Length;
        }
        else if (kind < 28)
        {
            DeviceTlbEntry[] entries = Many(AtcEntry, 6);
            byte[] results = Replies.FillResults(_client.Ok(Frames.FillDeviceTlb(_client.NextId(), Unit, entries)));
            Assert.Equal(entries.Select(e => (byte)_twin.DeviceTlb.Fill(in e)).ToArray(), results);
            _fills += (ulong)entries.Length;
        }
        else if (kind < 34)
        {
            ConfigEntry[] entries = Many(ConfigEntry, 5);
            byte[] results = Replies.FillResults(_client.Ok(Frames.FillConfig(_client.NextId(), Unit, entries)));
            Assert.Equal(entries.Select(e => (byte)_twin.ConfigCache.Fill(in e)).ToArray(), results);
            _fills += (ulong)entries.Length;
        }
        else if (kind < 52)
        {
            Frames.IotlbQuery[] queries = Many(() => new Frames.IotlbQuery(Pick(s_stages), (ushort)_random.Next(0, 3), Pick(s_spaces),
                Page() + (ulong)_random.Next(0, 4096), _random.Next(6) == 0 ? (byte)21 : (byte)0), 8);
            var got = Replies.Translations(_client.Ok(Frames.LookupIotlb(_client.NextId(), Unit, queries)));
            for (int i = 0; i < queries.Length; i++)
            {
                Frames.IotlbQuery q = queries[i];
                bool hit = q.TableSpanLog2 == 0
                    ? _twin.Iotlb.TryLookup(q.Stage, q.Domain, q.AddressSpace, q.Address, out Translation t)
                    : _twin.Iotlb.TryLookupTable(q.Stage, q.Domain, q.AddressSpace, q.Address, q.TableSpanLog2, out t);
                Assert.Equal(hit, got[i].Hit);
                if (hit)
                {
                    Assert.Equal((t.OutputAddress, t.InputBase, (ushort)t.Rights, t.SizeLog2, t.Global), (got[i].Output, got[i].InputBase, got[i].Rights, got[i].SizeLog2, got[i].Global));
                }
            }
        }
        else if (kind < 60)
        {
            Frames.AtcQuery[] queries = Many(() => new Frames.AtcQuery((uint)_random.Next(0, 3), Pick(s_spaces), Page() + 0x123), 6);
            var got = Replies.Translations(_client.Ok(Frames.LookupDeviceTlb(_client.NextId(), Unit, queries)));
            for (int i = 0; i < queries.Length; i++)
            {
                bool hit = _twin.DeviceTlb.TryLookup(queries[i].Source, queries[i].Pasid, queries[i].Address, out Translation t);
                Assert.Equal(hit, got[i].Hit);
                if (hit)
                {
                    Assert.Equal((t.OutputAddress, t.InputBase, (ushort)t.Rights, t.SizeLog2, t.Global), (got[i].Output, got[i].InputBase, got[i].Rights, got[i].SizeLog2, got[i].Global));
                }
            }
        }
        else if (kind < 66)
        {
            Frames.ConfigQuery[] queries = Many(() => new Frames.ConfigQuery(Pick(s_kinds), (uint)_random.Next(0, 6), Pick(s_spaces)), 6);
            var got = Replies.Configs(_client.Ok(Frames.LookupConfig(_client.NextId(), Unit, queries)));
            for (int i = 0; i < queries.Length; i++)
            {
                bool hit = _twin.ConfigCache.TryLookup(queries[i].Kind, queries[i].Source, queries[i].AddressSpace, out ConfigEntry e);
                Assert.Equal(hit, got[i].Hit);
                if (hit)
                {
                    Assert.Equal(e, got[i].Entry);
                }
            }
        }
        else if (kind < 90)
        {
            InvalidationDescriptor[] batch = Many(Descriptor, 7);
            var statuses = new InvalidationStatus[batch.Length];
            BatchResult expected = _twin.Execute(batch, statuses);
            (BatchResult result, InvalidationStatus[] got) = Replies.Execute(_client.Ok(Frames.Execute(_client.NextId(), Unit, batch)));
            Assert.Equal(expected, result);
            Assert.Equal(statuses, got);
            _descriptors += (ulong)batch.Length;
        }
        else if (kind < 94)
        {
            uint[] sources = _random.Next(3) == 0 ? [(uint)_random.Next(0, 3)] : [];
            ulong[] timeouts = Many(() => _twin.DeviceTlbInvalidations + (ulong)_random.Next(0, 6), 2);
            ulong[] errors = Many(() => _twin.DeviceTlbInvalidations + (ulong)_random.Next(0, 6), 2);
            ulong seed = (ulong)_random.NextInt64();
            uint timeoutRate = _random.Next(2) == 0 ? 0 : (uint)_random.Next(0, 300_000);
            uint errorRate = _random.Next(2) == 0 ? 0 : (uint)_random.Next(0, 300_000);
            _client.Ok(Frames.FaultPlan(_client.NextId(), Unit, seed, timeoutRate, errorRate, sources, timeouts, errors));
            _twin.FaultPlan = new FaultPlan
            {
                Seed = seed,
                TimeoutPerMillion = timeoutRate,
                CompletionErrorPerMillion = errorRate,
                TimeoutSourceIds = [.. sources],
                TimeoutOrdinals = [.. timeouts],
                CompletionErrorOrdinals = [.. errors],
            };
        }
        else
        {
            byte[] p = _client.Ok(Frames.Stats(_client.NextId(), Unit));
            Assert.Equal(64, p.Length);
            Assert.Equal((uint)_twin.Iotlb.Capacity, BinaryPrimitives.ReadUInt32LittleEndian(p));
            Assert.Equal((uint)_twin.Iotlb.Count, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(4)));
            Assert.Equal((uint)_twin.DeviceTlb.Capacity, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(8)));
            Assert.Equal((uint)_twin.DeviceTlb.Count, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(12)));
            Assert.Equal((uint)_twin.ConfigCache.Capacity, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(16)));
            Assert.Equal((uint)_twin.ConfigCache.Count, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(20)));
            Assert.Equal(_twin.DeviceTlbInvalidations, BinaryPrimitives.ReadUInt64LittleEndian(p.AsSpan(24)));
            Assert.Equal(_requests, BinaryPrimitives.ReadUInt64LittleEndian(p.AsSpan(32)));
            Assert.Equal(_descriptors, BinaryPrimitives.ReadUInt64LittleEndian(p.AsSpan(40)));
            Assert.Equal(_fills, BinaryPrimitives.ReadUInt64LittleEndian(p.AsSpan(48)));
        }

        _requests++;
    }

    public void Dispose() => _twin.Dispose();
}
