using System.Buffers.Binary;
using System.Net.Sockets;

namespace FastInval.Tests.Host;

/// <summary>A reply as read off the socket.</summary>
internal readonly record struct WireReply(uint Length, ushort Type, ushort Status, uint RequestId, uint UnitId, byte[] Payload)
{
    public uint Detail => Payload.Length >= 4 ? BinaryPrimitives.ReadUInt32LittleEndian(Payload) : 0;
}

/// <summary>
/// Builds request frames byte by byte from docs/protocol.md (independently of the server's code) and talks to a server
/// over a blocking Unix socket.
/// </summary>
internal sealed class WireClient : IDisposable
{
    private readonly Socket _socket;
    private uint _nextId = 1;

    public WireClient(string path, bool hello = true, int timeoutMs = 20_000, ushort minor = 0)
    {
        _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        {
            ReceiveTimeout = timeoutMs,
            SendTimeout = timeoutMs,
        };
        _socket.Connect(new UnixDomainSocketEndPoint(path));
        if (hello)
        {
            WireReply r = Call(Frames.Hello(NextId(), minor: minor));
            Assert.Equal(0x8001, r.Type);
            Assert.Equal(0, r.Status);
            HelloReply = r;
        }
    }

    public WireReply HelloReply { get; }

    public Socket Socket => _socket;

    public uint NextId() => _nextId++;

    public void Send(ReadOnlySpan<byte> bytes) => _socket.Send(bytes);

    /// <summary>Reads one frame; null at end of stream (a partial frame at the end is an assertion failure).</summary>
    public WireReply? Receive()
    {
        byte[] header = new byte[16];
        int got = ReadFully(header);
        if (got == 0)
        {
            return null;
        }

        Assert.Equal(16, got);
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        Assert.InRange(length, 16u, 1u << 24);
        byte[] payload = new byte[length - 16];
        Assert.Equal(payload.Length, ReadFully(payload));
        return new WireReply(length, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(4)), BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(6)),
            BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8)), BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(12)), payload);
    }

    private int ReadFully(byte[] buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = _socket.Receive(buffer, total, buffer.Length - total, SocketFlags.None);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }

    /// <summary>Sends one frame and reads its reply, checking the id and type echo.</summary>
    public WireReply Call(byte[] frame)
    {
        Send(frame);
        WireReply? reply = Receive();
        Assert.NotNull(reply);
        Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(8)), reply.Value.RequestId);
        Assert.Equal(BinaryPrimitives.ReadUInt16LittleEndian(frame.AsSpan(4)) | 0x8000, reply.Value.Type);
        return reply.Value;
    }

    /// <summary>Calls and asserts success.</summary>
    public byte[] Ok(byte[] frame)
    {
        WireReply r = Call(frame);
        Assert.True(r.Status == 0, $"error {r.Status} detail {r.Detail} for type 0x{BinaryPrimitives.ReadUInt16LittleEndian(frame.AsSpan(4)):x4}");
        return r.Payload;
    }

    public uint CreateEngine(int iotlb = 256, int deviceTlb = 64, int config = 32)
    {
        byte[] p = Ok(Frames.Create(NextId(), iotlb, deviceTlb, config));
        return BinaryPrimitives.ReadUInt32LittleEndian(p);
    }

    public void Dispose() => _socket.Dispose();
}

/// <summary>Request frames, encoded from the protocol document.</summary>
internal static class Frames
{
    public static byte[] Frame(ushort type, uint requestId, uint unitId, ReadOnlySpan<byte> payload)
    {
        byte[] f = new byte[16 + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(f, (uint)f.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(4), type);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(8), requestId);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(12), unitId);
        payload.CopyTo(f.AsSpan(16));
        return f;
    }

    public static byte[] Hello(uint id, ushort major = 1, ushort minor = 0)
    {
        byte[] p = new byte[8];
        BinaryPrimitives.WriteUInt16LittleEndian(p, major);
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(2), minor);
        return Frame(0x0001, id, 0, p);
    }

    public static byte[] Create(uint id, int iotlb, int deviceTlb, int config, ushort kind = 1)
    {
        byte[] p = new byte[24];
        BinaryPrimitives.WriteUInt16LittleEndian(p, kind);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(8), iotlb);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(12), deviceTlb);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(16), config);
        return Frame(0x0002, id, 0, p);
    }

    public static byte[] Destroy(uint id, uint unit) => Frame(0x0003, id, unit, []);

    public static byte[] Stats(uint id, uint unit) => Frame(0x0014, id, unit, []);

    private static byte[] Batch(ushort type, uint id, uint unit, ushort cache, int count, Action<Span<byte>, int> item)
    {
        byte[] p = new byte[8 + (32 * count)];
        BinaryPrimitives.WriteUInt16LittleEndian(p, cache);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(4), count);
        for (int i = 0; i < count; i++)
        {
            item(p.AsSpan(8 + (32 * i), 32), i);
        }

        return Frame(type, id, unit, p);
    }

    public static byte[] FillIotlb(uint id, uint unit, IReadOnlyList<TranslationEntry> entries) =>
        Batch(0x0010, id, unit, 1, entries.Count, (s, i) =>
        {
            TranslationEntry e = entries[i];
            BinaryPrimitives.WriteUInt64LittleEndian(s, e.InputAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(s[8..], e.OutputAddress);
            BinaryPrimitives.WriteUInt32LittleEndian(s[16..], e.AddressSpaceId);
            BinaryPrimitives.WriteUInt16LittleEndian(s[20..], e.DomainId);
            BinaryPrimitives.WriteUInt16LittleEndian(s[22..], (ushort)e.Rights);
            s[24] = (byte)e.Stage;
            s[25] = (byte)e.Granule;
            s[26] = e.SizeLog2;
            s[27] = (byte)((e.Global ? 1 : 0) | (e.IsTable ? 2 : 0));
        });

    public static byte[] FillDeviceTlb(uint id, uint unit, IReadOnlyList<DeviceTlbEntry> entries) =>
        Batch(0x0010, id, unit, 2, entries.Count, (s, i) =>
        {
            DeviceTlbEntry e = entries[i];
            BinaryPrimitives.WriteUInt64LittleEndian(s, e.InputAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(s[8..], e.OutputAddress);
            BinaryPrimitives.WriteUInt32LittleEndian(s[16..], e.SourceId);
            BinaryPrimitives.WriteUInt32LittleEndian(s[20..], e.Pasid);
            BinaryPrimitives.WriteUInt16LittleEndian(s[24..], (ushort)e.Rights);
            s[26] = e.SizeLog2;
            s[27] = (byte)(e.Global ? 1 : 0);
        });

    public static byte[] FillConfig(uint id, uint unit, IReadOnlyList<ConfigEntry> entries) =>
        Batch(0x0010, id, unit, 3, entries.Count, (s, i) =>
        {
            ConfigEntry e = entries[i];
            BinaryPrimitives.WriteUInt64LittleEndian(s, e.Value);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], e.SourceId);
            BinaryPrimitives.WriteUInt32LittleEndian(s[12..], e.AddressSpaceId);
            BinaryPrimitives.WriteUInt16LittleEndian(s[16..], e.DomainId);
            s[18] = (byte)e.Kind;
        });

    public readonly record struct IotlbQuery(TranslationStage Stage, ushort Domain, uint AddressSpace, ulong Address, byte TableSpanLog2 = 0);

    public readonly record struct AtcQuery(uint Source, uint Pasid, ulong Address);

    public readonly record struct ConfigQuery(ConfigKinds Kind, uint Source, uint AddressSpace);

    public static byte[] LookupIotlb(uint id, uint unit, IReadOnlyList<IotlbQuery> queries) =>
        Batch(0x0011, id, unit, 1, queries.Count, (s, i) =>
        {
            IotlbQuery q = queries[i];
            BinaryPrimitives.WriteUInt64LittleEndian(s, q.Address);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], q.AddressSpace);
            BinaryPrimitives.WriteUInt16LittleEndian(s[12..], q.Domain);
            s[14] = (byte)q.Stage;
            s[15] = q.TableSpanLog2;
        });

    public static byte[] LookupDeviceTlb(uint id, uint unit, IReadOnlyList<AtcQuery> queries) =>
        Batch(0x0011, id, unit, 2, queries.Count, (s, i) =>
        {
            BinaryPrimitives.WriteUInt64LittleEndian(s, queries[i].Address);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], queries[i].Source);
            BinaryPrimitives.WriteUInt32LittleEndian(s[12..], queries[i].Pasid);
        });

    public static byte[] LookupConfig(uint id, uint unit, IReadOnlyList<ConfigQuery> queries) =>
        Batch(0x0011, id, unit, 3, queries.Count, (s, i) =>
        {
            s[0] = (byte)queries[i].Kind;
            BinaryPrimitives.WriteUInt32LittleEndian(s[4..], queries[i].Source);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], queries[i].AddressSpace);
        });

    public static byte[] Execute(uint id, uint unit, IReadOnlyList<InvalidationDescriptor> descriptors)
    {
        byte[] p = new byte[8 + (32 * descriptors.Count)];
        BinaryPrimitives.WriteInt32LittleEndian(p, descriptors.Count);
        for (int i = 0; i < descriptors.Count; i++)
        {
            InvalidationDescriptor d = descriptors[i];
            Span<byte> s = p.AsSpan(8 + (32 * i), 32);
            s[0] = (byte)d.Scope;
            s[1] = (byte)d.Flags;
            s[2] = (byte)d.Stages;
            s[3] = d.LevelHint;
            s[4] = (byte)d.GranuleHint;
            s[5] = (byte)d.ConfigKinds;
            BinaryPrimitives.WriteUInt16LittleEndian(s[6..], d.DomainId);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], d.AddressSpaceId);
            BinaryPrimitives.WriteUInt32LittleEndian(s[12..], d.SourceId);
            BinaryPrimitives.WriteUInt64LittleEndian(s[16..], d.First);
            BinaryPrimitives.WriteUInt64LittleEndian(s[24..], d.Last);
        }

        return Frame(0x0012, id, unit, p);
    }

    public static byte[] FaultPlan(uint id, uint unit, ulong seed, uint timeoutPerMillion, uint errorPerMillion,
        IReadOnlyList<uint> timeoutSources, IReadOnlyList<ulong> timeoutOrdinals, IReadOnlyList<ulong> errorOrdinals)
    {
        byte[] p = new byte[32 + (4 * timeoutSources.Count) + (8 * timeoutOrdinals.Count) + (8 * errorOrdinals.Count)];
        BinaryPrimitives.WriteUInt64LittleEndian(p, seed);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(8), timeoutPerMillion);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(12), errorPerMillion);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(16), timeoutSources.Count);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(20), timeoutOrdinals.Count);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(24), errorOrdinals.Count);
        int o = 32;
        foreach (uint s in timeoutSources)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(o), s);
            o += 4;
        }

        foreach (ulong t in timeoutOrdinals)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(o), t);
            o += 8;
        }

        foreach (ulong t in errorOrdinals)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(o), t);
            o += 8;
        }

        return Frame(0x0013, id, unit, p);
    }
}

/// <summary>Decodes reply payloads.</summary>
internal static class Replies
{
    public static byte[] FillResults(byte[] p)
    {
        int count = BinaryPrimitives.ReadInt32LittleEndian(p);
        Assert.Equal(8 + count, p.Length);
        return p.AsSpan(8, count).ToArray();
    }

    /// <summary>(hit, output, inputBase, rights, sizeLog2, global) per IOTLB / device-TLB result.</summary>
    public static (bool Hit, ulong Output, ulong InputBase, ushort Rights, byte SizeLog2, bool Global)[] Translations(byte[] p)
    {
        int count = BinaryPrimitives.ReadInt32LittleEndian(p);
        Assert.Equal(8 + (32 * count), p.Length);
        var results = new (bool, ulong, ulong, ushort, byte, bool)[count];
        int hits = 0;
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> r = p.AsSpan(8 + (32 * i), 32);
            results[i] = (r[0] == 1, BinaryPrimitives.ReadUInt64LittleEndian(r[8..]), BinaryPrimitives.ReadUInt64LittleEndian(r[16..]),
                BinaryPrimitives.ReadUInt16LittleEndian(r[4..]), r[1], (r[2] & 1) != 0);
            if (r[0] == 0)
            {
                Assert.True(r.IndexOfAnyExcept((byte)0) < 0, "a miss is 32 zero bytes");
            }
            else
            {
                hits++;
            }
        }

        Assert.Equal(hits, BinaryPrimitives.ReadInt32LittleEndian(p.AsSpan(4)));
        return results;
    }

    public static (bool Hit, ConfigEntry Entry)[] Configs(byte[] p)
    {
        int count = BinaryPrimitives.ReadInt32LittleEndian(p);
        Assert.Equal(8 + (32 * count), p.Length);
        var results = new (bool, ConfigEntry)[count];
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> r = p.AsSpan(8 + (32 * i), 32);
            results[i] = (r[0] == 1, new ConfigEntry((ConfigKinds)r[3], BinaryPrimitives.ReadUInt32LittleEndian(r[24..]),
                BinaryPrimitives.ReadUInt32LittleEndian(r[28..]), BinaryPrimitives.ReadUInt16LittleEndian(r[6..]), BinaryPrimitives.ReadUInt64LittleEndian(r[8..])));
        }

        return results;
    }

    public static (BatchResult Result, InvalidationStatus[] Statuses) Execute(byte[] p)
    {
        int count = BinaryPrimitives.ReadInt32LittleEndian(p.AsSpan(20));
        Assert.Equal(24 + count, p.Length);
        var result = new BatchResult(BinaryPrimitives.ReadInt32LittleEndian(p), BinaryPrimitives.ReadInt32LittleEndian(p.AsSpan(4)),
            BinaryPrimitives.ReadInt32LittleEndian(p.AsSpan(8)), BinaryPrimitives.ReadInt32LittleEndian(p.AsSpan(12)), BinaryPrimitives.ReadInt32LittleEndian(p.AsSpan(16)));
        return (result, p.AsSpan(24, count).ToArray().Select(b => (InvalidationStatus)b).ToArray());
    }
}

/// <summary>A server in this process on a socket in a fresh temporary directory.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    public TestServer(Func<string, FastInval.Host.ServerOptions>? options = null)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("fastinval-host-");
        SocketPath = Path.Combine(Directory.FullName, "s.sock");
        Server = new FastInval.Host.FastInvalServer(options?.Invoke(SocketPath) ?? new FastInval.Host.ServerOptions { SocketPath = SocketPath });
        Server.Start();
    }

    public DirectoryInfo Directory { get; }

    public string SocketPath { get; }

    public FastInval.Host.FastInvalServer Server { get; }

    public WireClient Connect(bool hello = true, ushort minor = 0) => new(SocketPath, hello, minor: minor);

    /// <summary>Waits until <paramref name="condition"/> holds (the server notices closed connections asynchronously).</summary>
    public static void Eventually(Func<bool> condition, string what, int timeoutMs = 10_000)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.ElapsedMilliseconds < timeoutMs, $"timed out waiting for: {what}");
            Thread.Sleep(5);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        try
        {
            Directory.Delete(recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }
}
