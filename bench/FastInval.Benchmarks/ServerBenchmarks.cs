using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using FastInval.Host;

namespace FastInval.Benchmarks;

/// <summary>
/// What the out-of-process host costs over the in-process call, in one run: an EXECUTE of <see cref="BatchSize"/>
/// page-range descriptors and a one-query LOOKUP, (1) called in process on the engine (baseline), (2) through the
/// server's dispatcher from a byte buffer (frame decoding, dispatch and reply encoding, no socket), (3) as a round trip
/// over a Unix socket to a server in this process (a blocking client: send the frame, read the reply). The engine work
/// is the same in all three: the descriptors hit pages that are not cached, so nothing changes between operations.
/// (4) is (2) with the session recording a trace (serve --record): the frame and its reply copied into the trace
/// writer's buffer under its lock; the writer's stream is <see cref="Stream.Null"/>, so the row is the cost on the
/// connection's thread without the disk (the buffer goes to the file once per MiB).
/// </summary>
[MemoryDiagnoser]
public class ServerBenchmarks : IDisposable
{
    /// <summary>Descriptors per EXECUTE.</summary>
    public const int BatchSize = 64;

    [Params("execute 64", "lookup 1")]
    public string Request = "execute 64";

    private InvalidationEngine? _engine;
    private InvalidationDescriptor[] _batch = [];
    private InvalidationStatus[] _statuses = [];
    private byte[] _frame = [];
    private byte[] _reply = [];
    private ServerCore? _core;
    private Session? _session;
    private Session? _recordingSession;
    private FastInval.Host.Traces.TraceWriter? _trace;
    private readonly ArrayBufferWriter<byte> _recordingOutput = new();
    private readonly ArrayBufferWriter<byte> _output = new();
    private FastInvalServer? _server;
    private Socket? _socket;
    private string? _directory;
    private uint _unit;

    private bool IsExecute => Request == "execute 64";

    [GlobalSetup]
    public void Setup()
    {
        var entries = Enumerable.Range(0, 2048).Select(i => TranslationEntry.Leaf(TranslationStage.Stage1, (ushort)(i % 8), (uint)(i % 16), 0x10_0000_0000UL + ((ulong)i << 12), (ulong)i << 12)).ToArray();
        _batch = [.. Enumerable.Range(0, BatchSize).Select(i => InvalidationDescriptor.IotlbRange((ushort)(i % 8), (uint)(i % 16), 0x20_0000_0000UL + ((ulong)i << 12), 0x20_0000_0000UL + ((ulong)i << 12) + 0xFFF))];
        _statuses = new InvalidationStatus[BatchSize];
        _engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 4096, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 });
        foreach (TranslationEntry e in entries)
        {
            _engine.Iotlb.Fill(in e);
        }

        // The dispatcher and the server get the same unit: CREATE then the same FILL, as frames.
        _core = new ServerCore(new ServerOptions { SocketPath = "/nonexistent/bench.sock" });
        _session = new Session(_core);
        var setup = new ArrayBufferWriter<byte>();
        byte[] fill = FillFrame(1, entries);
        _session.Process(new ReadOnlySequence<byte>([.. Hello(), .. Create(), .. fill]), setup, int.MaxValue, out _, out _);
        var recordingCore = new ServerCore(new ServerOptions { SocketPath = "/nonexistent/bench.sock" });
        _trace = new FastInval.Host.Traces.TraceWriter(Stream.Null, FastInval.Host.Traces.TraceHeader.For(recordingCore.Options));
        _recordingSession = new Session(recordingCore, trace: _trace);
        _recordingSession.Process(new ReadOnlySequence<byte>([.. Hello(), .. Create(), .. fill]), setup, int.MaxValue, out _, out _);

        _directory = Directory.CreateTempSubdirectory("fastinval-bench-").FullName;
        string path = Path.Combine(_directory, "s.sock");
        _server = new FastInvalServer(new ServerOptions { SocketPath = path });
        _server.Start();
        _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _socket.Connect(new UnixDomainSocketEndPoint(path));
        RoundTrip(Hello());
        _unit = BinaryPrimitives.ReadUInt32LittleEndian(RoundTrip(Create()).AsSpan(16));
        RoundTrip(FillFrame(_unit, entries));
        if (_unit != 1)
        {
            throw new InvalidOperationException("the benchmark's frames assume unit 1");
        }

        _frame = IsExecute ? ExecuteFrame(_unit, _batch) : LookupFrame(_unit);
        _reply = new byte[16 + (IsExecute ? 24 + BatchSize : 8 + 32)];
    }

    private byte[] RoundTrip(byte[] frame)
    {
        _socket!.Send(frame);
        byte[] header = new byte[16];
        ReceiveExactly(header);
        byte[] whole = new byte[BinaryPrimitives.ReadInt32LittleEndian(header)];
        header.CopyTo(whole, 0);
        ReceiveExactly(whole.AsSpan(16));
        if (BinaryPrimitives.ReadUInt16LittleEndian(whole.AsSpan(6)) != 0)
        {
            throw new InvalidOperationException("setup request failed");
        }

        return whole;
    }

    private void ReceiveExactly(Span<byte> buffer)
    {
        for (int got = 0; got < buffer.Length;)
        {
            int n = _socket!.Receive(buffer[got..]);
            if (n == 0)
            {
                throw new InvalidOperationException("server closed");
            }

            got += n;
        }
    }

    [Benchmark(Baseline = true, Description = "in process")]
    public int InProcess()
    {
        if (IsExecute)
        {
            return _engine!.Execute(_batch, _statuses).Ok;
        }

        return _engine!.Iotlb.TryLookup(TranslationStage.Stage1, 3, 3, 0x10_0000_0000UL + (3UL << 12), out Translation t) ? (int)t.SizeLog2 : 0;
    }

    [Benchmark(Description = "dispatcher (no socket)")]
    public int Dispatcher()
    {
        _output.ResetWrittenCount();
        _session!.Process(new ReadOnlySequence<byte>(_frame), _output, int.MaxValue, out _, out _);
        return _output.WrittenCount;
    }

    [Benchmark(Description = "dispatcher, recording a trace")]
    public int DispatcherRecording()
    {
        _recordingOutput.ResetWrittenCount();
        _recordingSession!.Process(new ReadOnlySequence<byte>(_frame), _recordingOutput, int.MaxValue, out _, out _);
        return _recordingOutput.WrittenCount;
    }

    [Benchmark(Description = "Unix socket round trip")]
    public int Socket()
    {
        _socket!.Send(_frame);
        ReceiveExactly(_reply);
        return _reply[16];
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _socket?.Dispose();
        _server?.StopAsync().GetAwaiter().GetResult();
        _session?.Dispose();
        _recordingSession?.Dispose();
        _trace?.Dispose();
        _engine?.Dispose();
        if (_directory is not null && Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }

        GC.SuppressFinalize(this);
    }

    internal static byte[] Frame(ushort type, uint id, uint unit, byte[] payload)
    {
        byte[] f = new byte[16 + payload.Length];
        BinaryPrimitives.WriteInt32LittleEndian(f, f.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(4), type);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(8), id);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(12), unit);
        payload.CopyTo(f, 16);
        return f;
    }

    internal static byte[] Hello() => Frame(MessageType.Hello, 1, 0, [1, 0, 0, 0, 0, 0, 0, 0]);

    internal static byte[] Create()
    {
        byte[] p = new byte[24];
        p[0] = 1;
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(8), 4096);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(12), 64);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(16), 64);
        return Frame(MessageType.Create, 2, 0, p);
    }

    internal static byte[] FillFrame(uint unit, TranslationEntry[] entries)
    {
        byte[] p = new byte[8 + (32 * entries.Length)];
        p[0] = 1;
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(4), entries.Length);
        for (int i = 0; i < entries.Length; i++)
        {
            Span<byte> s = p.AsSpan(8 + (32 * i));
            TranslationEntry e = entries[i];
            BinaryPrimitives.WriteUInt64LittleEndian(s, e.InputAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(s[8..], e.OutputAddress);
            BinaryPrimitives.WriteUInt32LittleEndian(s[16..], e.AddressSpaceId);
            BinaryPrimitives.WriteUInt16LittleEndian(s[20..], e.DomainId);
            BinaryPrimitives.WriteUInt16LittleEndian(s[22..], (ushort)e.Rights);
            s[24] = (byte)e.Stage;
            s[25] = (byte)e.Granule;
            s[26] = e.SizeLog2;
        }

        return Frame(MessageType.Fill, 3, unit, p);
    }

    internal static byte[] ExecuteFrame(uint unit, InvalidationDescriptor[] batch)
    {
        byte[] p = new byte[8 + (32 * batch.Length)];
        BinaryPrimitives.WriteInt32LittleEndian(p, batch.Length);
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(batch.AsSpan()).CopyTo(p.AsSpan(8));
        return Frame(MessageType.Execute, 4, unit, p);
    }

    private static byte[] LookupFrame(uint unit)
    {
        byte[] p = new byte[8 + 32];
        p[0] = 1;
        p[4] = 1;
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(8), 0x10_0000_0000UL + (3UL << 12));
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(16), 3);
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(20), 3);
        p[22] = (byte)TranslationStage.Stage1;
        return Frame(MessageType.Lookup, 5, unit, p);
    }
}
