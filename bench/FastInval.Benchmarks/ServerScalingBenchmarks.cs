using System.Buffers.Binary;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using FastInval.Host;

namespace FastInval.Benchmarks;

/// <summary>
/// Does the server scale with connections? One connection against two, each on its own unit, over Unix sockets to a
/// server in this process, in one run: the same total work (EXECUTE requests of 64 page-range descriptors, pipelined
/// <see cref="Depth"/> deep: a burst of requests is sent, then its replies read) done by one connection, or split
/// between two connections driven from two threads. The descriptors hit pages that are not cached, so the engine work
/// is the same in every request. Figures are per descriptor: the Ratio column is the two-connection time over the
/// one-connection time, so a speed-up of 1.6× is a ratio of 0.625 or less. On a 2-core machine the clients share the
/// cores with the server's connection threads; the target is for a quiet machine.
/// </summary>
[MemoryDiagnoser]
public class ServerScalingBenchmarks : IDisposable
{
    /// <summary>Requests in flight per connection (the server reads up to 64 ahead).</summary>
    public const int Depth = 16;

    /// <summary>Bursts each connection sends per operation of the two-connection benchmark (one connection sends twice as many).</summary>
    public const int Rounds = 16;

    private const int Descriptors = Rounds * 2 * Depth * ServerBenchmarks.BatchSize;

    private FastInvalServer? _server;
    private readonly Socket?[] _sockets = new Socket?[2];
    private readonly byte[][] _bursts = new byte[2][];
    private readonly byte[][] _replies = new byte[2][];
    private string? _directory;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Directory.CreateTempSubdirectory("fastinval-scaling-").FullName;
        string path = Path.Combine(_directory, "s.sock");
        _server = new FastInvalServer(new ServerOptions { SocketPath = path });
        _server.Start();
        var entries = Enumerable.Range(0, 2048).Select(i => TranslationEntry.Leaf(TranslationStage.Stage1, (ushort)(i % 8), (uint)(i % 16), 0x10_0000_0000UL + ((ulong)i << 12), (ulong)i << 12)).ToArray();
        InvalidationDescriptor[] batch = [.. Enumerable.Range(0, ServerBenchmarks.BatchSize).Select(i => InvalidationDescriptor.IotlbRange((ushort)(i % 8), (uint)(i % 16), 0x20_0000_0000UL + ((ulong)i << 12), 0x20_0000_0000UL + ((ulong)i << 12) + 0xFFF))];
        for (int k = 0; k < 2; k++)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(path));
            _sockets[k] = socket;
            RoundTrip(socket, ServerBenchmarks.Hello());
            uint unit = BinaryPrimitives.ReadUInt32LittleEndian(RoundTrip(socket, ServerBenchmarks.Create()).AsSpan(16));
            RoundTrip(socket, ServerBenchmarks.FillFrame(unit, entries));
            byte[] frame = ServerBenchmarks.ExecuteFrame(unit, batch);
            _bursts[k] = [.. Enumerable.Repeat(frame, Depth).SelectMany(f => f)];
            _replies[k] = new byte[Depth * (16 + 24 + ServerBenchmarks.BatchSize)];
            Burst(k); // the replies are what they should be
            for (int r = 0; r < Depth; r++)
            {
                ReadOnlySpan<byte> reply = _replies[k].AsSpan(r * (16 + 24 + ServerBenchmarks.BatchSize));
                if (BinaryPrimitives.ReadUInt16LittleEndian(reply[4..]) != 0x8012 || BinaryPrimitives.ReadUInt16LittleEndian(reply[6..]) != 0 ||
                    BinaryPrimitives.ReadInt32LittleEndian(reply[16..]) != ServerBenchmarks.BatchSize)
                {
                    throw new InvalidOperationException("an EXECUTE of the burst failed");
                }
            }
        }
    }

    private static byte[] RoundTrip(Socket socket, byte[] frame)
    {
        socket.Send(frame);
        byte[] header = new byte[16];
        Receive(socket, header);
        byte[] whole = new byte[BinaryPrimitives.ReadInt32LittleEndian(header)];
        header.CopyTo(whole, 0);
        Receive(socket, whole.AsSpan(16));
        if (BinaryPrimitives.ReadUInt16LittleEndian(whole.AsSpan(6)) != 0)
        {
            throw new InvalidOperationException("setup request failed");
        }

        return whole;
    }

    private static void Receive(Socket socket, Span<byte> buffer)
    {
        for (int got = 0; got < buffer.Length;)
        {
            int n = socket.Receive(buffer[got..]);
            if (n == 0)
            {
                throw new InvalidOperationException("server closed");
            }

            got += n;
        }
    }

    /// <summary>One burst on connection <paramref name="k"/>: <see cref="Depth"/> requests sent, their replies read.</summary>
    private void Burst(int k)
    {
        _sockets[k]!.Send(_bursts[k]);
        Receive(_sockets[k]!, _replies[k]);
    }

    private void Bursts(int k, int rounds)
    {
        for (int r = 0; r < rounds; r++)
        {
            Burst(k);
        }
    }

    [Benchmark(Baseline = true, Description = "one connection", OperationsPerInvoke = Descriptors)]
    public void OneConnection() => Bursts(0, 2 * Rounds);

    [Benchmark(Description = "two connections, two units", OperationsPerInvoke = Descriptors)]
    public void TwoConnections() => Parallel.Invoke(() => Bursts(0, Rounds), () => Bursts(1, Rounds));

    [GlobalCleanup]
    public void Dispose()
    {
        foreach (Socket? s in _sockets)
        {
            s?.Dispose();
        }

        _server?.StopAsync().GetAwaiter().GetResult();
        if (_directory is not null && Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }

        GC.SuppressFinalize(this);
    }
}
