using System.Buffers.Binary;
using System.Net.Sockets;
using FastInval.Host;
using Xunit.Abstractions;

namespace FastInval.Tests.Host;

/// <summary>
/// Hostile clients: every truncation and every single-byte corruption of every request type, random garbage, an
/// oversized length and clients that die mid-frame, each on its own connection, while a healthy connection keeps
/// running checked operations against its twin engine. The server must answer only well-formed frames, never crash,
/// never touch the healthy unit, and free every unit of the hostile connections.
/// </summary>
public class MalformedInputTests(ITestOutputHelper output)
{
    /// <summary>One valid request of every type for <paramref name="unit"/>.</summary>
    private static List<(string Name, byte[] Frame)> Requests(uint unit) =>
    [
        ("hello", Frames.Hello(100)),
        ("create", Frames.Create(101, 32, 16, 8)),
        ("destroy", Frames.Destroy(102, unit)),
        ("fill-iotlb", Frames.FillIotlb(103, unit, [TranslationEntry.Leaf(TranslationStage.Stage1, 1, 2, 0x3000, 0x7000), TranslationEntry.Table(TranslationStage.Stage2, 1, AddressSpace.None, 0, 0x9000, 21)])),
        ("fill-atc", Frames.FillDeviceTlb(104, unit, [new DeviceTlbEntry(4, 2, 0x1000, 0x5000)])),
        ("fill-config", Frames.FillConfig(105, unit, [new ConfigEntry(ConfigKinds.StreamTableEntry, 4, AddressSpace.None, 1, 99)])),
        ("lookup-iotlb", Frames.LookupIotlb(106, unit, [new(TranslationStage.Stage1, 1, 2, 0x3010)])),
        ("lookup-atc", Frames.LookupDeviceTlb(107, unit, [new(4, 2, 0x1010)])),
        ("lookup-config", Frames.LookupConfig(108, unit, [new(ConfigKinds.StreamTableEntry, 4, AddressSpace.None)])),
        ("execute", Frames.Execute(109, unit, [InvalidationDescriptor.IotlbRange(1, 2, 0x3000, 0x3FFF), InvalidationDescriptor.DeviceTlb(4, 2)])),
        ("fault-plan", Frames.FaultPlan(110, unit, 1, 10, 10, [4], [3], [5])),
        ("stats", Frames.Stats(111, unit)),
    ];

    /// <summary>Runs one hostile connection: HELLO and a unit, then <paramref name="bytes"/>, then closes its sending
    /// side and reads to the end. Every frame it gets back must be a well-formed reply.</summary>
    private static int Hostile(TestServer server, Func<uint, byte[]> bytes, bool abort = false)
    {
        using WireClient c = server.Connect();
        uint unit = c.CreateEngine(32, 16, 8);
        c.Send(bytes(unit));
        if (abort)
        {
            c.Socket.LingerState = new LingerOption(true, 0); // RST: the client dies
            c.Socket.Close();
            return 0;
        }

        c.Socket.Shutdown(SocketShutdown.Send);
        int replies = 0;
        while (c.Receive() is { } r)
        {
            Assert.True(r.Type == 0xFFFF || (r.Type & 0x8000) != 0, $"reply type 0x{r.Type:x4}");
            Assert.InRange(r.Status, (ushort)0, (ushort)ErrorCode.Internal);
            Assert.NotEqual((ushort)ErrorCode.Internal, r.Status);
            if (r.Status != 0)
            {
                Assert.Equal(8, r.Payload.Length);
            }

            replies++;
        }

        return replies;
    }

    [Fact]
    public async Task TruncationsCorruptionsGarbageAndDyingClients_NeverDisturbAHealthyConnection()
    {
        await using var server = new TestServer(p => new ServerOptions { SocketPath = p, MaxFrameBytes = 4096, MaxConnections = 8 });
        using WireClient healthy = server.Connect();
        using var twin = new TwinSession(healthy, seed: 11);
        int cases = 0;
        // The healthy connection runs checked operations on its own thread for as long as the hostile ones last.
        using var barrageOver = new ManualResetEventSlim();
        Task healthyRun = Task.Factory.StartNew(() =>
        {
            while (!barrageOver.IsSet)
            {
                twin.Step();
            }
        }, TaskCreationOptions.LongRunning);
        void Check()
        {
            Assert.False(healthyRun.IsCompleted, healthyRun.Exception?.ToString() ?? "the healthy connection stopped");
        }

        // Every truncation: the connection ends inside the frame (the client died mid-frame); nothing is answered for it.
        foreach ((string name, byte[] _) in Requests(0))
        {
            int length = Requests(0).First(r => r.Name == name).Frame.Length;
            for (int cut = 1; cut < length; cut++)
            {
                int replies = Hostile(server, unit => Requests(unit).First(r => r.Name == name).Frame[..cut]);
                Assert.Equal(0, replies);
                cases++;
            }

            Check();
        }

        // Every single-byte corruption (three values per byte): at most one reply per frame the bytes can hold, all well formed.
        var rng = new Random(5);
        foreach ((string name, byte[] _) in Requests(0))
        {
            int length = Requests(0).First(r => r.Name == name).Frame.Length;
            for (int at = 0; at < length; at++)
            {
                foreach (Func<byte, byte> corrupt in new Func<byte, byte>[] { b => (byte)~b, b => (byte)(b + 1), _ => (byte)rng.Next(256) })
                {
                    int replies = Hostile(server, unit =>
                    {
                        byte[] frame = Requests(unit).First(r => r.Name == name).Frame;
                        frame[at] = corrupt(frame[at]);
                        return frame;
                    });
                    Assert.InRange(replies, 0, 1 + (length / 16));
                    cases++;
                }
            }

            Check();
        }

        // Random garbage.
        for (int i = 0; i < 60; i++)
        {
            byte[] garbage = new byte[rng.Next(1, 600)];
            rng.NextBytes(garbage);
            Hostile(server, _ => garbage);
            cases++;
        }

        Check();

        // An oversized length: FRAME_ERROR (FRAME_TOO_LARGE, the limit as detail), then the connection is closed.
        using (WireClient c = server.Connect())
        {
            byte[] big = Frames.Stats(777, 0);
            BinaryPrimitives.WriteUInt32LittleEndian(big, 1u << 30);
            c.Send(big);
            WireReply? r = c.Receive();
            Assert.NotNull(r);
            Assert.Equal((0xFFFF, (ushort)ErrorCode.FrameTooLarge, 777u, 4096u), (r.Value.Type, r.Value.Status, r.Value.RequestId, r.Value.Detail));
            Assert.Null(c.Receive());
        }

        // Clients that die (RST) in the middle of a frame, with units and half-sent batches.
        foreach ((string name, byte[] _) in Requests(0))
        {
            Hostile(server, unit => Requests(unit).First(r => r.Name == name).Frame[..^3], abort: true);
            cases++;
        }

        Check();
        barrageOver.Set();
        await healthyRun; // rethrows a failed check of the healthy connection
        Assert.True(twin.Operations > 100, $"the healthy connection ran only {twin.Operations} operations");
        Assert.True(cases > 2000, $"{cases} cases");
        output.WriteLine($"{cases} hostile connections; healthy connection ran {twin.Operations} checked operations beside them");

        // The healthy connection's unit and replies held throughout; every hostile unit is gone.
        TestServer.Eventually(() => server.Server.UnitCount == 1 && server.Server.ConnectionCount == 1, "hostile connections to be closed and their units freed");
        for (int i = 0; i < 200; i++)
        {
            twin.Step();
        }
    }

    [Fact]
    public async Task ReservedBytesAndBadSelectors_GetInvalidArgumentWithTheOffsetAndChangeNothing()
    {
        await using var server = new TestServer();
        using WireClient c = server.Connect();
        uint unit = c.CreateEngine();
        byte[] fill = Frames.FillIotlb(c.NextId(), unit, [TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000, 0x2000), TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x3000, 0x4000)]);
        fill[16 + 8 + 32 + 29] = 1; // second entry's reserved word
        WireReply r = c.Call(fill);
        Assert.Equal(((ushort)ErrorCode.InvalidArgument, (uint)(8 + 32 + 29)), (r.Status, r.Detail));
        var hits = Replies.Translations(c.Ok(Frames.LookupIotlb(c.NextId(), unit, [new(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000)])));
        Assert.False(hits[0].Hit); // the valid first entry was not filled either

        byte[] badCache = Frames.LookupIotlb(c.NextId(), unit, []);
        badCache[16] = 9;
        Assert.Equal(((ushort)ErrorCode.InvalidArgument, 0u), (c.Call(badCache).Status, c.Call(badCache).Detail));
        byte[] vtd = Frames.Create(c.NextId(), 0, 0, 0, kind: 3);
        r = c.Call(vtd);
        Assert.Equal(((ushort)ErrorCode.UnsupportedKind, 3u), (r.Status, r.Detail));
        r = c.Call(Frames.Create(c.NextId(), 1 << 21, 0, 0));
        Assert.Equal(((ushort)ErrorCode.InvalidArgument, 8u), (r.Status, r.Detail));
        r = c.Call(Frames.FaultPlan(c.NextId(), unit, 0, 1_000_001, 0, [], [], []));
        Assert.Equal(((ushort)ErrorCode.InvalidArgument, 8u), (r.Status, r.Detail));
        byte[] statusSet = Frames.Stats(c.NextId(), unit);
        statusSet[6] = 1;
        Assert.Equal((ushort)ErrorCode.Malformed, c.Call(statusSet).Status);
        Assert.Equal(0, c.Call(Frames.Stats(c.NextId(), unit)).Status);
    }
}
