using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using FastInval.Cli;
using FastInval.Host;
using FastInval.Host.Traces;
using FastInval.Tests.Host;

namespace FastInval.Tests.Traces;

/// <summary>Recording, reading, replaying and verifying traces; generated workloads.</summary>
public class TraceTests
{
    private static readonly TraceHeader s_header = TraceHeader.For(new ServerOptions { SocketPath = "x" });

    /// <summary>A trace file in a fresh temporary directory.</summary>
    private sealed class TempTrace : IDisposable
    {
        public TempTrace() => Directory = System.IO.Directory.CreateTempSubdirectory("fastinval-trace-");

        public DirectoryInfo Directory { get; }

        public string PathOf(string name) => Path.Combine(Directory.FullName, name);

        public void Dispose() => Directory.Delete(recursive: true);
    }

    private static (int Exit, string Out, string Err) Cli(params string[] args)
    {
        using var stdout = new StringWriter(CultureInfo.InvariantCulture);
        using var stderr = new StringWriter(CultureInfo.InvariantCulture);
        int exit = FastInval.Cli.CommandLine.Run(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static List<(TraceRecordKind Kind, uint Connection, byte[] Body)> ReadAll(string path)
    {
        using TraceReader reader = TraceReader.Open(path);
        var records = new List<(TraceRecordKind, uint, byte[])>();
        while (reader.TryRead(out TraceRecord r))
        {
            records.Add((r.Kind, r.ConnectionId, r.Body.ToArray()));
        }

        return records;
    }

    private static TraceReplayer ReplayFile(string path, bool verify)
    {
        using TraceReader reader = TraceReader.Open(path);
        return TraceReplayer.Run(reader, verify);
    }

    /// <summary>Records a session with two concurrent connections (random operation streams checked against an
    /// in-process twin, a request for a foreign unit, a malformed request, server STATS) and returns the trace path.</summary>
    private static async Task<string> RecordSessionAsync(TempTrace temp)
    {
        string path = temp.PathOf("session.fitrace");
        TraceWriter trace = TraceWriter.Create(path, s_header);
        await using (var server = new TestServer(socket => new ServerOptions { SocketPath = socket, Trace = trace }))
        {
            uint foreign = 0;
            using (WireClient a = server.Connect())
            using (WireClient b = server.Connect())
            {
                using var twinA = new TwinSession(a, seed: 5);
                using var twinB = new TwinSession(b, seed: 6);
                foreign = twinA.Unit;
                Task ta = Task.Run(() => { for (int i = 0; i < 300; i++) { twinA.Step(); } });
                Task tb = Task.Run(() => { for (int i = 0; i < 300; i++) { twinB.Step(); } });
                await Task.WhenAll(ta, tb);
                Assert.Equal(ErrorCode.UnknownUnit, (ErrorCode)b.Call(Frames.Stats(b.NextId(), foreign)).Status);
                Assert.Equal(ErrorCode.Malformed, (ErrorCode)a.Call(Frames.Frame(0x0012, a.NextId(), twinA.Unit, [1, 2, 3])).Status);
                Assert.Equal(0, a.Call(Frames.Stats(a.NextId(), 0)).Status);
            }

            TestServer.Eventually(() => server.Server.ConnectionCount == 0, "both connections closed");
        }

        trace.Dispose();
        Assert.Null(trace.Failure);
        return path;
    }

    [Fact]
    public async Task ARecordedSession_ReplaysAndVerifiesWithEveryFrameInItsRecords()
    {
        using var temp = new TempTrace();
        string path = await RecordSessionAsync(temp);
        List<(TraceRecordKind Kind, uint Connection, byte[] Body)> records = ReadAll(path);
        Assert.Equal(2, records.Count(r => r.Kind == TraceRecordKind.Connect));
        Assert.Equal(2, records.Count(r => r.Kind == TraceRecordKind.Disconnect));
        int requests = records.Count(r => r.Kind == TraceRecordKind.Request);
        Assert.Equal(requests, records.Count(r => r.Kind == TraceRecordKind.Reply)); // one reply per request, no events
        Assert.True(requests > 600, $"{requests} requests recorded");

        // Within a connection each REPLY follows its REQUEST and echoes its request id.
        foreach (uint c in new uint[] { 1, 2 })
        {
            var frames = records.Where(r => r.Connection == c && r.Kind is TraceRecordKind.Request or TraceRecordKind.Reply).ToList();
            for (int i = 0; i < frames.Count; i += 2)
            {
                Assert.Equal(TraceRecordKind.Request, frames[i].Kind);
                Assert.Equal(TraceRecordKind.Reply, frames[i + 1].Kind);
                Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(frames[i].Body.AsSpan(8)), BinaryPrimitives.ReadUInt32LittleEndian(frames[i + 1].Body.AsSpan(8)));
            }
        }

        using TraceReplayer replayer = ReplayFile(path, verify: true);
        Assert.Null(replayer.Difference);
        Assert.Equal(requests, replayer.Requests);
        Assert.Equal(2, replayer.Connections);
        UnitFigures[] units = [.. replayer.Units.Where(u => u.RecordedUnitId != 0)];
        Assert.Equal(2, units.Length);
        Assert.All(units, u => Assert.True(u.Destroyed && u.Requests > 250 && u.Descriptors.Sum() > 0 && u.Filled.Sum() > 0));
        // The foreign STATS names a unit the connection does not hold: counted apart; the malformed EXECUTE on unit A.
        Assert.True(replayer.Units.Single(u => u.RecordedUnitId == 0).Errors[(int)ErrorCode.UnknownUnit] >= 1);
        Assert.True(units.Single(u => u.ConnectionId == 1).Errors[(int)ErrorCode.Malformed] >= 1);

        (int exit, string stdout, _) = Cli("replay", path, "--verify");
        Assert.Equal(0, exit);
        Assert.Contains($"verify: ok, all {requests.ToString("N0", CultureInfo.InvariantCulture)} replies equal the recorded ones", stdout, StringComparison.Ordinal);
        Assert.Matches(@"replay: [\d,]+ operations in [\d,]+ requests in [\d.]+ s: [\d,]+ operations/s", stdout);
    }

    [Fact]
    public async Task AFlippedByteInAReply_FailsVerifyAtThatFrameAndField()
    {
        using var temp = new TempTrace();
        string path = await RecordSessionAsync(temp);

        // Find the first successful EXECUTE reply with at least one status and flip its first status byte.
        byte[] file = await File.ReadAllBytesAsync(path);
        long offset = TraceFormat.HeaderSize, frameIndex = 0, target = -1, targetFrame = -1;
        while (offset < file.Length)
        {
            int length = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan((int)offset));
            var kind = (TraceRecordKind)BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan((int)offset + 4));
            if (kind is TraceRecordKind.Request or TraceRecordKind.Reply)
            {
                ReadOnlySpan<byte> frame = file.AsSpan((int)offset + TraceFormat.RecordHeaderSize, length - TraceFormat.RecordHeaderSize);
                if (kind == TraceRecordKind.Reply && BinaryPrimitives.ReadUInt16LittleEndian(frame[4..]) == 0x8012 &&
                    BinaryPrimitives.ReadUInt16LittleEndian(frame[6..]) == 0 && frame.Length > 16 + 24)
                {
                    target = offset + TraceFormat.RecordHeaderSize + 16 + 24;
                    targetFrame = frameIndex;
                    break;
                }

                frameIndex++;
            }

            offset += length;
        }

        Assert.True(target > 0, "the session has an EXECUTE reply");
        file[target] ^= 0x02;
        string bad = temp.PathOf("flipped.fitrace");
        await File.WriteAllBytesAsync(bad, file);

        using (TraceReplayer replayer = ReplayFile(bad, verify: true))
        {
            TraceDifference d = Assert.IsType<TraceDifference>(replayer.Difference);
            Assert.Equal(targetFrame, d.FrameIndex);
            Assert.Equal("statuses[0]", d.Field);
            Assert.Contains("(EXECUTE): field statuses[0]: recorded", d.Message, StringComparison.Ordinal);
        }

        (int exit, string stdout, string stderr) = Cli("replay", bad, "--verify");
        Assert.Equal(1, exit);
        Assert.Contains($"verify: FAILED at frame {targetFrame}, field statuses[0]", stdout, StringComparison.Ordinal);
        Assert.Contains($"difference at frame {targetFrame} ", stderr, StringComparison.Ordinal);

        // Without --verify the same trace replays (the reply is only compared on request).
        Assert.Equal(0, Cli("replay", bad).Exit);
    }

    [Fact]
    public void TruncatedTracesAndABadMagic_AreUnreadableWithExit3AndSayWhy()
    {
        using var temp = new TempTrace();
        string path = temp.PathOf("w.fitrace");
        Assert.Equal(0, Cli("generate", "busy-nic-ats", "--seed", "3", "--operations", "600", "-o", path).Exit);
        byte[] file = File.ReadAllBytes(path);

        // Cut inside a record: the record says how long it is.
        string cut = temp.PathOf("cut.fitrace");
        File.WriteAllBytes(cut, file[..(file.Length / 2)]);
        (int exit, _, string stderr) = Cli("replay", cut, "--verify");
        Assert.Equal(Replay.UnreadableTrace, exit);
        Assert.Matches(@"truncated: record \d+ at offset \d+ (needs \d+ bytes, the file ends after \d+|is cut inside its header)", stderr);

        // Cut at a record boundary, before the END record: the END record is missing.
        int last = FindEndRecord(file);
        string noEnd = temp.PathOf("noend.fitrace");
        File.WriteAllBytes(noEnd, file[..last]);
        (exit, _, stderr) = Cli("replay", noEnd, "--verify");
        Assert.Equal(Replay.UnreadableTrace, exit);
        Assert.Contains("without its END record", stderr, StringComparison.Ordinal);

        // Not a trace.
        byte[] magic = (byte[])file.Clone();
        magic[3] ^= 0xFF;
        string notTrace = temp.PathOf("magic.fitrace");
        File.WriteAllBytes(notTrace, magic);
        (exit, _, stderr) = Cli("replay", notTrace, "--verify");
        Assert.Equal(Replay.UnreadableTrace, exit);
        Assert.Contains("not a FastInval trace: bad magic", stderr, StringComparison.Ordinal);

        // A frame whose length field disagrees with its record.
        byte[] inconsistent = (byte[])file.Clone();
        int first = TraceFormat.HeaderSize + TraceFormat.RecordHeaderSize; // CONNECT, then the HELLO request
        Assert.Equal((ushort)TraceRecordKind.Request, BinaryPrimitives.ReadUInt16LittleEndian(inconsistent.AsSpan(first + 4)));
        inconsistent[first + TraceFormat.RecordHeaderSize] ^= 0x04;
        string bad = temp.PathOf("len.fitrace");
        File.WriteAllBytes(bad, inconsistent);
        (exit, _, stderr) = Cli("replay", bad);
        Assert.Equal(Replay.UnreadableTrace, exit);
        Assert.Contains("the frame's length field says", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = Cli("replay", temp.PathOf("missing.fitrace"));
        Assert.Equal(Replay.UnreadableTrace, exit);
        Assert.Contains("missing.fitrace", stderr, StringComparison.Ordinal);
    }

    private static int FindEndRecord(byte[] file)
    {
        int offset = TraceFormat.HeaderSize;
        while (true)
        {
            int length = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(offset));
            if (BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(offset + 4)) == (ushort)TraceRecordKind.End)
            {
                Assert.Equal(file.Length, offset + length);
                return offset;
            }

            offset += length;
        }
    }

    [Theory]
    [InlineData("unmap-storm")]
    [InlineData("busy-nic-ats")]
    [InlineData("process-churn")]
    [InlineData("live-migration")]
    public void Generate_IsDeterministicPerSeedAndItsTraceVerifies(string workload)
    {
        using var temp = new TempTrace();
        string a = temp.PathOf("a.fitrace"), b = temp.PathOf("b.fitrace"), c = temp.PathOf("c.fitrace");
        Assert.Equal(0, Cli("generate", workload, "--seed", "42", "--operations", "2000", "-o", a).Exit);
        Assert.Equal(0, Cli("generate", workload, "--seed", "42", "--operations", "2000", "-o", b).Exit);
        Assert.Equal(0, Cli("generate", workload, "--seed", "43", "--operations", "2000", "-o", c).Exit);
        var ra = ReadAll(a);
        var rb = ReadAll(b);
        Assert.Equal(ra.Count, rb.Count);
        for (int i = 0; i < ra.Count; i++)
        {
            Assert.Equal(ra[i].Kind, rb[i].Kind);
            Assert.Equal(ra[i].Connection, rb[i].Connection);
            Assert.True(ra[i].Body.AsSpan().SequenceEqual(rb[i].Body), $"record {i} differs between two runs of seed 42");
        }

        var rc = ReadAll(c);
        Assert.False(ra.Count == rc.Count && ra.Zip(rc).All(p => p.First.Body.AsSpan().SequenceEqual(p.Second.Body)), "seed 43 gives another trace");

        using TraceReader reader = TraceReader.Open(a);
        Assert.True(reader.Header.Generated);
        using TraceReplayer replayer = TraceReplayer.Run(reader, verify: true);
        Assert.Null(replayer.Difference);
        Assert.InRange(replayer.Operations, 2000, 2000 + 200);
    }

    private static UnitFigures GenerateAndReplay(TempTrace temp, string workload, int operations, out List<(TraceRecordKind Kind, uint Connection, byte[] Body)> records)
    {
        string path = temp.PathOf(workload + ".fitrace");
        (int exit, string stdout, string stderr) = Cli("generate", workload, "--seed", "9", "--operations", operations.ToString(CultureInfo.InvariantCulture), "-o", path);
        Assert.True(exit == 0, stdout + stderr);
        records = ReadAll(path);
        using TraceReplayer replayer = ReplayFile(path, verify: true);
        Assert.Null(replayer.Difference);
        return Assert.Single(replayer.Units, u => u.RecordedUnitId != 0);
    }

    private static IEnumerable<InvalidationDescriptor> ExecutedDescriptors(List<(TraceRecordKind Kind, uint Connection, byte[] Body)> records) =>
        records.Where(r => r.Kind == TraceRecordKind.Request && BinaryPrimitives.ReadUInt16LittleEndian(r.Body.AsSpan(4)) == MessageType.Execute)
            .SelectMany(r => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, InvalidationDescriptor>(r.Body.AsSpan(24)).ToArray());

    [Fact]
    public void UnmapStorm_RemovesEveryPageItFilledOne4KiBDescriptorEach()
    {
        using var temp = new TempTrace();
        UnitFigures u = GenerateAndReplay(temp, "unmap-storm", 20_000, out var records);
        Assert.True(u.Filled[0] >= 8192, $"{u.Filled[0]} pages filled");
        Assert.Equal(u.Filled[0], u.Removed[0]);
        Assert.Equal(u.Filled[0], u.Descriptors[2]);
        Assert.All(ExecutedDescriptors(records), d => Assert.Equal(0xFFFUL, d.Last - d.First));
        Assert.Equal(u.Filled[0], ExecutedDescriptors(records).Select(d => d.First).Distinct().LongCount());
        Assert.Equal(0, u.TimedOut + u.Invalid + u.CompletionErrors + u.ErrorReplies);
    }

    [Fact]
    public void BusyNicAts_FillsAndLooksUpBothTlbsInvalidatesTheDeviceTlbAndTimesOutOnce()
    {
        using var temp = new TempTrace();
        UnitFigures u = GenerateAndReplay(temp, "busy-nic-ats", 5000, out var records);
        Assert.True(u.Filled[0] > 0 && u.Filled[1] > 0, "IOTLB and device-TLB fills");
        Assert.True(u.Lookups > u.Filled[1], "DMA lookups");
        Assert.True(u.Descriptors[3] > 0 && u.Descriptors[2] > 0, "device-TLB and IOTLB invalidations");
        Assert.Equal(1, u.TimedOut);
        Assert.Equal(u.Descriptors[3] - 1, u.Removed[1]); // every device-TLB descriptor removed its page but the timed-out one (retried)
        Assert.Equal(2, records.Count(r => r.Kind == TraceRecordKind.Request && BinaryPrimitives.ReadUInt16LittleEndian(r.Body.AsSpan(4)) == MessageType.FaultPlan));
    }

    [Fact]
    public void ProcessChurnCreatesAnd_FlushesPasidsAndReusesThem()
    {
        using var temp = new TempTrace();
        UnitFigures u = GenerateAndReplay(temp, "process-churn", 8000, out var records);
        InvalidationDescriptor[] flushes = [.. ExecutedDescriptors(records).Where(d => d.Scope == InvalidationScope.Config)];
        Assert.True(flushes.Length >= 10, $"{flushes.Length} processes exited");
        Assert.True(flushes.Select(d => d.AddressSpaceId).Distinct().Count() < flushes.Length, "PASIDs are reused");
        Assert.True(u.Filled[2] > 16, "PASID entries created past the 16 live at once");
        Assert.Equal(flushes.Length, u.Removed[2]);                  // each flush removed its PASID entry
        Assert.Equal(flushes.Length * 32L, u.Removed[0]);            // and its process's 32 first-stage entries
        Assert.Equal(flushes.Length * 32L, u.Removed[1]);            // and its 32 device-TLB entries
    }

    [Fact]
    public void LiveMigrationInvalidatesTheSameRanges_RoundAfterRound()
    {
        using var temp = new TempTrace();
        UnitFigures u = GenerateAndReplay(temp, "live-migration", 12_000, out var records);
        var ranges = ExecutedDescriptors(records).Where(d => d.Last - d.First == (64 * 4096) - 1).GroupBy(d => d.First).ToList();
        Assert.Equal(16, ranges.Count);
        Assert.All(ranges, g => Assert.True(g.Count() >= 2, $"range 0x{g.Key:X} protected {g.Count()} times"));
        Assert.True(u.Removed[0] >= 16 * 64 * 2, $"{u.Removed[0]} entries removed");
        Assert.Equal(0, u.ErrorReplies);
    }

    [Fact]
    public void Recording_KeepsTheDispatcherAllocationFree()
    {
        using var trace = new TraceWriter(Stream.Null, s_header);
        var core = new ServerCore(new ServerOptions { SocketPath = "/nonexistent/t.sock" });
        using var session = new Session(core, trace: trace);
        var output = new ArrayBufferWriter<byte>(1 << 16);
        session.Process(new ReadOnlySequence<byte>([.. Frames.Hello(1), .. Frames.Create(2, 256, 64, 32)]), output, int.MaxValue, out _, out _);
        byte[] work =
        [
            .. Frames.FillIotlb(3, 1, [.. Enumerable.Range(0, 8).Select(i => TranslationEntry.Leaf(TranslationStage.Stage1, 1, 3, (ulong)i << 12, 0x100000 + ((ulong)i << 12)))]),
            .. Frames.LookupIotlb(4, 1, [new(TranslationStage.Stage1, 1, 3, 0x2345)]),
            .. Frames.Execute(5, 1, [.. Enumerable.Range(0, 16).Select(i => InvalidationDescriptor.IotlbRange(1, 3, (ulong)i << 12, ((ulong)i << 12) + 0xFFF))]),
            .. Frames.Stats(6, 1),
        ];
        var input = new ReadOnlySequence<byte>(work);
        void Region()
        {
            output.ResetWrittenCount();
            session.Process(in input, output, int.MaxValue, out _, out _);
        }

        for (int i = 0; i < 20; i++)
        {
            Region();
        }

        long before = trace.Records;
        Assert.Equal(0, AllocationMeter.Measure(Region));
        Assert.True(trace.Records >= before + 8, "the measured region was recorded (4 requests, 4 replies)");
    }

    [Fact]
    public void TheRecorderSplitsCommittedBytesIntoFramesEvenWhenAFrame_IsCommittedInPieces()
    {
        using var stream = new MemoryStream();
        var trace = new TraceWriter(stream, s_header, leaveOpen: true);
        var recorder = new SessionRecorder(trace);
        var sink = new ArrayBufferWriter<byte>();
        IBufferWriter<byte> output = recorder.Wrap(sink);
        byte[] frames = [.. Frames.Stats(1, 0), .. Frames.Frame(0x8012, 2, 1, new byte[30]), .. Frames.Frame(0x4001, 0, 1, new byte[5])];
        foreach (int cut in new[] { 3, 11, 20, 33, 50, frames.Length })
        {
            int done = sink.WrittenCount;
            frames.AsSpan(done, cut - done).CopyTo(output.GetSpan(cut - done));
            output.Advance(cut - done);
        }

        recorder.Closed();
        trace.Dispose();
        stream.Position = 0;
        using var reader = new TraceReader(stream);
        var replies = new List<byte[]>();
        while (reader.TryRead(out TraceRecord r))
        {
            if (r.Kind == TraceRecordKind.Reply)
            {
                replies.Add(r.Body.ToArray());
            }
        }

        Assert.Equal([Frames.Stats(1, 0), Frames.Frame(0x8012, 2, 1, new byte[30]), Frames.Frame(0x4001, 0, 1, new byte[5])], replies);
        Assert.Equal(frames, sink.WrittenSpan.ToArray());
    }

    [Fact]
    public void AFailingFile_StopsTheRecordingWithoutDisturbingTheCaller()
    {
        var stream = new FailingStream();
        var trace = new TraceWriter(stream, s_header);
        byte[] frame = Frames.Stats(1, 0);
        for (int i = 0; i < 50_000; i++) // past the 1 MiB buffer: the write fails
        {
            trace.WriteFrame(TraceRecordKind.Request, 1, frame);
        }

        Assert.IsType<IOException>(trace.Failure);
        long records = trace.Records;
        trace.WriteFrame(TraceRecordKind.Request, 1, frame);
        Assert.Equal(records, trace.Records);
        trace.Dispose();
        Assert.True(stream.Disposed);
    }

    private sealed class FailingStream : MemoryStream
    {
        public bool Disposed { get; private set; }

        public override void Write(byte[] buffer, int offset, int count) => throw new IOException("No space left on device");

        public override void Write(ReadOnlySpan<byte> buffer) => throw new IOException("No space left on device");

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            base.Dispose(disposing);
        }
    }

    [Theory]
    [InlineData("replay")]
    [InlineData("replay", "a", "b")]
    [InlineData("generate", "unmap-storm", "-o", "x")]
    [InlineData("generate", "no-such-workload", "--seed", "1", "-o", "x")]
    [InlineData("generate", "unmap-storm", "--seed", "1", "-o", "x", "--operations", "0")]
    public void ReplayAndGenerate_ParseErrorsExit2(params string[] args) => Assert.Equal(2, Cli(args).Exit);

    [Fact]
    public void ReplayAndGenerateHelp_Exits0()
    {
        (int exit, string stdout, _) = Cli("replay", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("--verify", stdout, StringComparison.Ordinal);
        (exit, stdout, _) = Cli("generate", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("live-migration", stdout, StringComparison.Ordinal);
    }
}
