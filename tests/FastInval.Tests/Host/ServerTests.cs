using System.Buffers.Binary;
using System.Net.Sockets;
using FastInval.Host;

namespace FastInval.Tests.Host;

/// <summary>The server in this process over a real Unix socket in a temporary directory.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class ServerTests
{
    [Fact]
    public async Task Hello_AdvertisesTheVersionAndTheLimits()
    {
        await using var server = new TestServer(p => new ServerOptions { SocketPath = p, MaxUnitsPerConnection = 3, MaxConnections = 5, MaxFrameBytes = 4096 });
        using WireClient c = server.Connect();
        byte[] p = c.HelloReply.Payload;
        Assert.Equal(32, p.Length);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(p));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(p.AsSpan(2)));
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(4)));
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(8)));
        Assert.Equal(64u, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(12)));
        Assert.Equal(5u, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(16)));
        Assert.Equal((uint)(1 << 20), BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(20)));
    }

    [Fact]
    public async Task HelloNegotiatesTheLowerMinorAnd_RefusesAnotherMajor()
    {
        await using var server = new TestServer();
        using var c = server.Connect(hello: false);
        WireReply r = c.Call(Frames.Hello(7, major: 2));
        Assert.Equal((ushort)ErrorCode.Version, r.Status);
        Assert.Equal(1u, r.Detail);
        r = c.Call(Frames.Create(8, 16, 16, 16));
        Assert.Equal((ushort)ErrorCode.HelloState, r.Status); // still not negotiated
        r = c.Call(Frames.Hello(9, major: 1, minor: 5));
        Assert.Equal(0, r.Status);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(r.Payload.AsSpan(2))); // the server speaks 1.1
        Assert.Equal((ushort)ErrorCode.HelloState, c.Call(Frames.Hello(10)).Status);
    }

    [Fact]
    public async Task AUnit_FillsLooksUpAndInvalidatesOverTheSocket()
    {
        await using var server = new TestServer();
        using WireClient c = server.Connect();
        uint unit = c.CreateEngine();
        Assert.NotEqual(0u, unit);
        TranslationEntry[] pages = [.. Enumerable.Range(0, 8).Select(i => TranslationEntry.Leaf(TranslationStage.Stage2, 5, AddressSpace.None, (ulong)i << 12, 0x100000 + ((ulong)i << 12)))];
        Assert.All(Replies.FillResults(c.Ok(Frames.FillIotlb(c.NextId(), unit, pages))), r => Assert.Equal((byte)FillResult.Inserted, r));
        var hits = Replies.Translations(c.Ok(Frames.LookupIotlb(c.NextId(), unit, [new(TranslationStage.Stage2, 5, AddressSpace.None, 0x3456)])));
        Assert.Equal((true, 0x103456UL, 0x3000UL), (hits[0].Hit, hits[0].Output, hits[0].InputBase));

        (BatchResult result, InvalidationStatus[] statuses) = Replies.Execute(c.Ok(Frames.Execute(c.NextId(), unit,
            [InvalidationDescriptor.IotlbRangeAllAddressSpaces(5, 0x2000, 0x4FFF, StageMask.Stage2), default])));
        Assert.Equal(new BatchResult(1, 0, 0, 1, 1), result);
        Assert.Equal([InvalidationStatus.Ok, InvalidationStatus.Invalid], statuses);
        hits = Replies.Translations(c.Ok(Frames.LookupIotlb(c.NextId(), unit, [.. Enumerable.Range(0, 8).Select(i => new Frames.IotlbQuery(TranslationStage.Stage2, 5, AddressSpace.None, (ulong)i << 12))])));
        Assert.Equal([true, true, false, false, false, true, true, true], hits.Select(h => h.Hit));
    }

    [Fact]
    public async Task SocketFile_IsMode0600AndRemovedOnStop()
    {
        var server = new TestServer();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(server.SocketPath));
        await server.Server.StopAsync();
        Assert.False(File.Exists(server.SocketPath));
        await server.DisposeAsync();
    }

    [Fact]
    public async Task Start_RefusesAPathALiveServerHoldsAndLeavesItServing()
    {
        await using var server = new TestServer();
        var second = new FastInvalServer(new ServerOptions { SocketPath = server.SocketPath });
        ServerStartException e = Assert.Throws<ServerStartException>(second.Start);
        Assert.Contains("already listening", e.Message, StringComparison.Ordinal);
        using WireClient c = server.Connect();
        Assert.NotEqual(0u, c.CreateEngine());
    }

    [Fact]
    public async Task Start_RemovesAStaleSocketButRefusesARegularFile()
    {
        DirectoryInfo dir = Directory.CreateTempSubdirectory("fastinval-host-");
        try
        {
            string path = Path.Combine(dir.FullName, "stale.sock");
            // Bound and never listening: connecting is refused, as on the file a killed server leaves. (Disposing a .NET
            // socket unlinks its file, so this one stays open until the new server has replaced the file.)
            var dead = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            dead.Bind(new UnixDomainSocketEndPoint(path));
            Assert.True(File.Exists(path));
            await using (var server = new FastInvalServer(new ServerOptions { SocketPath = path }))
            {
                server.Start();
                using var c = new WireClient(path);
                Assert.NotEqual(0u, c.CreateEngine());
            }

            dead.Dispose();
            string file = Path.Combine(dir.FullName, "file");
            File.WriteAllText(file, "keep me");
            var refused = new FastInvalServer(new ServerOptions { SocketPath = file });
            Assert.Throws<ServerStartException>(refused.Start);
            Assert.Equal("keep me", File.ReadAllText(file));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task ConnectionLimit_RefusesWithAFrameErrorAndFreesTheSlotOnClose()
    {
        await using var server = new TestServer(p => new ServerOptions { SocketPath = p, MaxConnections = 2 });
        using WireClient a = server.Connect();
        using (WireClient b = server.Connect())
        {
            TestServer.Eventually(() => server.Server.ConnectionCount == 2, "two connections");
            using var refused = server.Connect(hello: false);
            WireReply? r = refused.Receive();
            Assert.NotNull(r);
            Assert.Equal((ushort)0xFFFF, r.Value.Type);
            Assert.Equal((ushort)ErrorCode.ConnectionLimit, r.Value.Status);
            Assert.Equal(2u, r.Value.Detail);
            Assert.Null(refused.Receive()); // closed
        }

        TestServer.Eventually(() => server.Server.ConnectionCount == 1, "the closed connection's slot to be freed");
        using WireClient c = server.Connect();
        Assert.NotEqual(0u, c.CreateEngine());
    }

    [Fact]
    public async Task UnitLimitPerConnectionAndUnitsFreedWhenTheClient_Goes()
    {
        await using var server = new TestServer(p => new ServerOptions { SocketPath = p, MaxUnitsPerConnection = 2 });
        using (WireClient c = server.Connect())
        {
            c.CreateEngine();
            c.CreateEngine();
            WireReply r = c.Call(Frames.Create(c.NextId(), 16, 16, 16));
            Assert.Equal((ushort)ErrorCode.UnitLimit, r.Status);
            Assert.Equal(2u, r.Detail);
            Assert.Equal(2, server.Server.UnitCount);
        }

        TestServer.Eventually(() => server.Server.UnitCount == 0, "units of the closed connection to be destroyed");
    }

    [Fact]
    public async Task UnitsOfAnotherConnection_AreUnknownHereAndUntouched()
    {
        await using var server = new TestServer();
        using WireClient owner = server.Connect();
        using WireClient other = server.Connect();
        uint unit = owner.CreateEngine();
        owner.Ok(Frames.FillIotlb(owner.NextId(), unit, [TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000, 0x2000)]));
        foreach (byte[] frame in new[] { Frames.Execute(other.NextId(), unit, [InvalidationDescriptor.IotlbAll()]), Frames.Destroy(other.NextId(), unit), Frames.Stats(other.NextId(), unit) })
        {
            WireReply r = other.Call(frame);
            Assert.Equal((ushort)ErrorCode.UnknownUnit, r.Status);
            Assert.Equal(unit, r.UnitId);
        }

        var hits = Replies.Translations(owner.Ok(Frames.LookupIotlb(owner.NextId(), unit, [new(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000)])));
        Assert.True(hits[0].Hit);
        owner.Ok(Frames.Destroy(owner.NextId(), unit));
        Assert.Equal((ushort)ErrorCode.UnknownUnit, owner.Call(Frames.Stats(owner.NextId(), unit)).Status);
    }

    [Fact]
    public async Task PipelinedRequests_AreAnsweredInOrder()
    {
        await using var server = new TestServer(p => new ServerOptions { SocketPath = p, MaxOutstandingRequests = 4 });
        using WireClient c = server.Connect();
        uint unit = c.CreateEngine();
        var all = new List<byte>();
        for (uint i = 0; i < 200; i++)
        {
            all.AddRange(i % 2 == 0 ? Frames.Stats(1000 + i, unit) : Frames.Execute(1000 + i, unit, [InvalidationDescriptor.IotlbAll()]));
        }

        c.Send(all.ToArray());
        for (uint i = 0; i < 200; i++)
        {
            WireReply? r = c.Receive();
            Assert.NotNull(r);
            Assert.Equal(1000 + i, r.Value.RequestId);
            Assert.Equal(0, r.Value.Status);
        }
    }

    [Fact]
    public async Task StopDrainsTheRequestsAlreadyReceivedThen_Closes()
    {
        var server = new TestServer();
        using WireClient c = server.Connect();
        uint unit = c.CreateEngine();
        var all = new List<byte>();
        for (uint i = 0; i < 50; i++)
        {
            all.AddRange(Frames.Execute(500 + i, unit, [InvalidationDescriptor.IotlbAll()]));
        }

        c.Send(all.ToArray());
        TestServer.Eventually(() => server.Server.FramesRead >= 52, "the server to read the pipelined frames");
        Task stop = server.Server.StopAsync();
        int replies = 0;
        while (c.Receive() is { } r)
        {
            Assert.Equal(500u + (uint)replies, r.RequestId);
            Assert.Equal(0, r.Status);
            replies++;
        }

        await stop;
        Assert.Equal(50, replies);
        Assert.Equal(0, server.Server.UnitCount);
        Assert.False(File.Exists(server.SocketPath));
        await server.DisposeAsync();
    }

    [Fact]
    public async Task Stop_EndsEvenWhenAClientNeverReadsItsReplies()
    {
        var server = new TestServer();
        using WireClient c = server.Connect();
        uint unit = c.CreateEngine();
        byte[] lookup = Frames.LookupIotlb(1, unit, [.. Enumerable.Range(0, 120).Select(i => new Frames.IotlbQuery(TranslationStage.Stage2, 1, AddressSpace.None, (ulong)i << 12))]);
        c.Socket.SendTimeout = 0;
        Task flood = Task.Run(() =>
        {
            try
            {
                for (int i = 0; i < 4000; i++)
                {
                    c.Send(lookup); // replies pile up unread until the server's writes block
                }
            }
            catch (SocketException)
            {
                // the server aborted the connection
            }
            catch (ObjectDisposedException)
            {
            }
        });
        TestServer.Eventually(() => server.Server.FramesRead > 20, "the server to read part of the flood");
        long read;
        do
        {
            read = server.Server.FramesRead;
            Thread.Sleep(300);
        }
        while (server.Server.FramesRead != read); // the server is stuck writing replies nobody reads
        Assert.True(read < 4000, "the server should not have been able to answer the whole flood");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await server.Server.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(clock.Elapsed < FastInvalServer.DrainTimeout + TimeSpan.FromSeconds(10), $"stop took {clock.Elapsed}");
        Assert.Equal(0, server.Server.UnitCount);
        Assert.False(File.Exists(server.SocketPath));
        c.Socket.Dispose();
        await flood.WaitAsync(TimeSpan.FromSeconds(30));
        await server.DisposeAsync();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task RandomOperationStreamsOverTheSocket_MatchTheInProcessApi(int seed)
    {
        await using var server = new TestServer();
        using WireClient c = server.Connect();
        using var twin = new TwinSession(c, seed);
        for (int i = 0; i < 1500; i++)
        {
            twin.Step();
        }

        Assert.Equal(1500, twin.Operations);
    }
}
