using System.Buffers.Binary;
using System.Globalization;
using FastInval.Host;
using FastInval.Host.Traces;
using FastInval.Reference.Uapi;
using FastInval.Smmu;
using FastInval.Tests.Host;
using FastInval.Tests.Vtd;
using FastInval.Uapi;
using FastInval.Vtd;

namespace FastInval.Tests.Traces;

/// <summary>MEMORY records (docs/traces.md §4): sessions whose units run over shared memfd guest RAM are recorded with
/// the memory the units read, and `replay --verify` reproduces every reply from them; damaged MEMORY records are
/// refused with a clear error; a replay without them differs.</summary>
public class MemoryTraceTests
{
    private const ulong GuestBase = 0x8000_0000;
    private const int RamBytes = 64 * 1024;
    private const ulong Queue = GuestBase + 0x1000;
    private const ulong Status = GuestBase + 0x3000;

    private static readonly TraceHeader s_header = TraceHeader.For(new ServerOptions { SocketPath = "x" });

    private static string Name(string what) => $"fastinval-trace-{what}-{Environment.ProcessId}-{Guid.NewGuid():N}";

    private sealed class TempDir : IDisposable
    {
        public DirectoryInfo Directory { get; } = System.IO.Directory.CreateTempSubdirectory("fastinval-memtrace-");

        public string PathOf(string name) => Path.Combine(Directory.FullName, name);

        public void Dispose() => Directory.Delete(recursive: true);
    }

    /// <summary>Records what <paramref name="session"/> does over one 1.1 connection of a recorded server.</summary>
    private static async Task<string> RecordAsync(TempDir temp, string name, Action<WireClient> session)
    {
        string path = temp.PathOf(name);
        TraceWriter trace = TraceWriter.Create(path, s_header);
        await using (var server = new TestServer(socket => new ServerOptions { SocketPath = socket, Trace = trace }))
        {
            using (WireClient c = server.Connect(minor: 1))
            {
                session(c);
            }

            TestServer.Eventually(() => server.Server.ConnectionCount == 0, "the connection closed");
        }

        trace.Dispose();
        Assert.Null(trace.Failure);
        return path;
    }

    private sealed record Rec(long Offset, TraceRecordKind Kind, ushort Flags, uint Connection, byte[] Body);

    private static List<Rec> ReadAll(string path)
    {
        using TraceReader reader = TraceReader.Open(path);
        var records = new List<Rec>();
        while (reader.TryRead(out TraceRecord r))
        {
            records.Add(new Rec(r.Offset, r.Kind, r.Flags, r.ConnectionId, r.Body.ToArray()));
        }

        return records;
    }

    /// <summary>Writes a trace with <paramref name="header"/>'s bytes and <paramref name="records"/> (and a fresh END).</summary>
    private static void Write(string path, byte[] header, IEnumerable<Rec> records)
    {
        using var output = new MemoryStream();
        output.Write(header);
        long count = 0;
        foreach (Rec r in records)
        {
            WriteRecord(output, (ushort)r.Kind, r.Flags, r.Connection, r.Body);
            count++;
        }

        byte[] end = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(end, count);
        WriteRecord(output, (ushort)TraceRecordKind.End, 0, 0, end);
        File.WriteAllBytes(path, output.ToArray());
    }

    private static void WriteRecord(Stream output, ushort kind, ushort flags, uint connection, byte[] body)
    {
        byte[] h = new byte[TraceFormat.RecordHeaderSize];
        BinaryPrimitives.WriteInt32LittleEndian(h, h.Length + body.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(4), kind);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(6), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), connection);
        output.Write(h);
        output.Write(body);
    }

    private static byte[] HeaderOf(string path) => File.ReadAllBytes(path).AsSpan(0, TraceFormat.HeaderSize).ToArray();

    private static TraceReplayer Replay(string path)
    {
        using TraceReader reader = TraceReader.Open(path);
        return TraceReplayer.Run(reader, verify: true);
    }

    private static (int Exit, string Out, string Err) Cli(params string[] args)
    {
        using var stdout = new StringWriter(CultureInfo.InvariantCulture);
        using var stderr = new StringWriter(CultureInfo.InvariantCulture);
        int exit = FastInval.Cli.CommandLine.Run(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static bool IsContents(Rec r) => r.Kind == TraceRecordKind.Memory && (r.Flags & TraceFormat.MemoryPassed) == 0;

    private static bool IsDescriptor(Rec r) => r.Kind == TraceRecordKind.Memory && (r.Flags & TraceFormat.MemoryPassed) != 0;

    /// <summary>A VT-d guest driver over a memfd: a wait already in the queue before CREATE, queued invalidation brought
    /// up, an IOTLB invalidation and a wait (status write, completion event), a bad descriptor's IQE and fault event, the
    /// recovery; and CREATEs the server refuses after looking at their files: a pipe, a read-only descriptor, a file too
    /// short, a wrong descriptor count.</summary>
    private static void VtdSession(WireClient c, SharedRam ram)
    {
        Dsc.Wait(sw: true, data: 0x11, addr: Status + 8).Write(ram.Bytes.Slice(0x1000, 16)); // before CREATE: the initial contents
        uint unit = c.CreateVtd(ram, GuestBase);
        c.Write(unit, VtdRegisters.Iedata, 0x55);
        c.Write(unit, VtdRegisters.Ieaddr, 0xFEE0_0000);
        c.Write(unit, VtdRegisters.Iectl, 0);
        c.Write(unit, VtdRegisters.Fedata, 0x77);
        c.Write(unit, VtdRegisters.Feaddr, 0xFEE0_1000);
        c.Write(unit, VtdRegisters.Fectl, 0);
        c.Write(unit, VtdRegisters.Iqa, Queue, 8);
        c.Write(unit, VtdRegisters.Gcmd, VtdRegisters.Qie);
        Assert.Empty(c.Write(unit, VtdRegisters.Iqt, 0x10)); // the wait written before CREATE
        Assert.Equal(0x11u, BinaryPrimitives.ReadUInt32LittleEndian(ram.Bytes[0x3008..]));

        c.Ok(Frames.FillIotlb(c.NextId(), unit, [TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x4000, 0x9000)]));
        Dsc.Iotlb(2, did: 1).Write(ram.Bytes.Slice(0x1010, 16));
        Dsc.Wait(sw: true, iflag: true, data: 0xC0FFEE, addr: Status).Write(ram.Bytes.Slice(0x1020, 16));
        Assert.Single(c.Write(unit, VtdRegisters.Iqt, 0x30));
        Assert.Equal(0xC0FFEEu, BinaryPrimitives.ReadUInt32LittleEndian(ram.Bytes[0x3000..]));

        new VtdDescriptor(0xF, 0).Write(ram.Bytes.Slice(0x1030, 16)); // an undefined type: IQE
        Assert.Single(c.Write(unit, VtdRegisters.Iqt, 0x40));
        Dsc.Wait(sw: true, data: 2, addr: Status).Write(ram.Bytes.Slice(0x1030, 16));
        c.Write(unit, VtdRegisters.Fsts, VtdRegisters.Iqe); // recovery: the queue resumes at IQH
        Assert.Equal(0x40UL, c.Read(unit, VtdRegisters.Iqh, 8));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(ram.Bytes[0x3000..]));

        Assert.Equal(0, UnixFds.Pipe(out int read, out int write));
        try
        {
            (WireReply r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [new(GuestBase, 0x1000)]), read);
            Assert.Equal(((ushort)ErrorCode.BadFd, 0u), (r.Status, r.Detail));
        }
        finally
        {
            UnixFds.Close(read);
            UnixFds.Close(write);
        }

        using (Microsoft.Win32.SafeHandles.SafeFileHandle ro = File.OpenHandle($"/proc/self/fd/{ram.Fd}", FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            (WireReply r, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [new(GuestBase, 0x1000)]), (int)ro.DangerousGetHandle());
            Assert.Equal(((ushort)ErrorCode.BadFd, 0u), (r.Status, r.Detail));
        }

        (WireReply s, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [new(GuestBase, (ulong)RamBytes, 0x1000)]), ram.Fd);
        Assert.Equal((ushort)ErrorCode.ShortFile, s.Status);
        (WireReply two, _) = c.CallWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [new(GuestBase, 0x1000)]), ram.Fd, ram.Fd);
        Assert.Equal(((ushort)ErrorCode.BadFd, uint.MaxValue), (two.Status, two.Detail));
        Assert.Equal(0x60UL, c.Read(unit, VtdRegisters.Ver));
    }

    [Fact]
    public async Task AVtdSessionOverAMemfd_ReplaysAndVerifiesFromItsMemoryRecords()
    {
        using var temp = new TempDir();
        using var ram = new SharedRam(Name("vtd"), RamBytes);
        string path = await RecordAsync(temp, "vtd.fitrace", c => VtdSession(c, ram));
        List<Rec> records = ReadAll(path);

        // Rule 1: the descriptor record right before the CREATE's REQUEST, with the file's size.
        int create = records.FindIndex(r => r.Kind == TraceRecordKind.Request && BinaryPrimitives.ReadUInt16LittleEndian(r.Body.AsSpan(4)) == 0x0002);
        Rec passed = records[create - 1];
        Assert.True(IsDescriptor(passed));
        Assert.Equal(TraceFormat.MemoryPassed, passed.Flags);
        Assert.Equal((0u, 0u, (ulong)RamBytes), (BinaryPrimitives.ReadUInt32LittleEndian(passed.Body), BinaryPrimitives.ReadUInt32LittleEndian(passed.Body.AsSpan(4)), BinaryPrimitives.ReadUInt64LittleEndian(passed.Body.AsSpan(16))));
        // The initial contents after the CREATE's reply: the wait written before CREATE, and nothing of the zero pages.
        Assert.Equal(TraceRecordKind.Reply, records[create + 1].Kind);
        uint unit = BinaryPrimitives.ReadUInt32LittleEndian(records[create + 1].Body.AsSpan(12));
        Rec initial = records[create + 2];
        Assert.True(IsContents(initial));
        Assert.Equal(unit, BinaryPrimitives.ReadUInt32LittleEndian(initial.Body.AsSpan(4)));
        Assert.Equal(0x1000UL, BinaryPrimitives.ReadUInt64LittleEndian(initial.Body.AsSpan(8)));
        Assert.Equal(64, initial.Body.Length - TraceFormat.MemoryPrefixSize);

        // The refused CREATEs' descriptors: a pipe (not sizable), a read-only memfd (not mappable), then two plain ones.
        ushort[] descriptorFlags = [.. records.Where(IsDescriptor).Select(r => r.Flags)];
        Assert.Equal([TraceFormat.MemoryPassed, (ushort)(TraceFormat.MemoryPassed | TraceFormat.MemoryNotSizable),
            (ushort)(TraceFormat.MemoryPassed | TraceFormat.MemoryNotMappable), TraceFormat.MemoryPassed, TraceFormat.MemoryPassed, TraceFormat.MemoryPassed], descriptorFlags);
        Assert.Equal([0u, 1, 2, 3, 4, 5], records.Where(IsDescriptor).Select(r => BinaryPrimitives.ReadUInt32LittleEndian(r.Body)));

        // Rule 2: contents only before register writes, small (the changed chunks, not the region), of that unit.
        long contents = records.Where(IsContents).Sum(r => (long)r.Body.Length - TraceFormat.MemoryPrefixSize);
        Assert.InRange(contents, 64, 4096);
        for (int i = create + 3; i < records.Count; i++)
        {
            if (IsContents(records[i]))
            {
                Rec next = records[i + 1];
                Assert.True(IsContents(next) || BinaryPrimitives.ReadUInt16LittleEndian(next.Body.AsSpan(4)) == SharedFrames.RegWrite,
                    $"record {i + 1} after a contents record is a REG_WRITE");
            }
        }

        using (TraceReplayer replayer = Replay(path))
        {
            Assert.Null(replayer.Difference);
            Assert.Equal(records.Count(r => r.Kind == TraceRecordKind.Memory), replayer.MemoryRecords);
            Assert.Equal(contents, replayer.MemoryBytes);
        }

        (int exit, string stdout, _) = Cli("replay", path, "--verify");
        Assert.Equal(0, exit);
        Assert.Contains("verify: ok", stdout, StringComparison.Ordinal);

        // Without the contents records the replayed unit reads zeros: the first doorbell's reply already differs.
        string stripped = temp.PathOf("stripped.fitrace");
        Write(stripped, HeaderOf(path), records.Where(r => !IsContents(r)));
        using (TraceReplayer replayer = Replay(stripped))
        {
            Assert.NotNull(replayer.Difference);
        }
    }

    private static void SmmuSession(WireClient c, SharedRam ram)
    {
        uint unit = c.CreateSmmu(ram, GuestBase);
        c.Write(unit, SmmuRegisters.CmdqBase, Queue | 8, 8);
        c.Write(unit, SmmuRegisters.IrqCtrl, SmmuRegisters.IrqGerrorEn);
        c.Write(unit, SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn | SmmuRegisters.Cr0SmmuEn);
        c.Ok(Frames.FillIotlb(c.NextId(), unit, [TranslationEntry.Leaf(TranslationStage.Stage1, 3, 5, 0x4000, 0x9000)]));
        SmmuCommand.TlbiNhAll(3).Write(ram.Bytes.Slice(0x1000, 16));
        SmmuCommand.Sync(1, Status, 0xABCD).Write(ram.Bytes.Slice(0x1010, 16));
        WireEvent sync = Assert.Single(c.Write(unit, SmmuRegisters.CmdqProd, 2));
        Assert.Equal((SharedFrames.EventSmmuSync, 0xABCDu), (sync.Type, sync.Data));
        Assert.Equal(0xABCDu, BinaryPrimitives.ReadUInt32LittleEndian(ram.Bytes[0x3000..])); // the MSI, in the memfd
        new SmmuCommand(0xFF, 0).Write(ram.Bytes.Slice(0x1020, 16)); // illegal: GERROR
        Assert.Equal(SharedFrames.EventSmmuGerror, Assert.Single(c.Write(unit, SmmuRegisters.CmdqProd, 3)).Type);
        // The driver replaces the bad command with a CMD_SYNC whose MSI overwrites the first one's, and acknowledges the
        // error: the queue resumes at the replaced command.
        SmmuCommand.Sync(1, Status, 0x5678).Write(ram.Bytes.Slice(0x1020, 16));
        c.Write(unit, SmmuRegisters.Gerrorn, (uint)c.Read(unit, SmmuRegisters.Gerror));
        c.Write(unit, SmmuRegisters.CmdqProd, 3);
        Assert.Equal(0x5678u, BinaryPrimitives.ReadUInt32LittleEndian(ram.Bytes[0x3000..]));
    }

    [Fact]
    public async Task AnSmmuSessionOverAMemfd_ReplaysAndVerifiesItsCmdSyncMsisAndGerror()
    {
        using var temp = new TempDir();
        using var ram = new SharedRam(Name("smmu"), RamBytes);
        string path = await RecordAsync(temp, "smmu.fitrace", c => SmmuSession(c, ram));
        List<Rec> records = ReadAll(path);
        Assert.Single(records, IsDescriptor);
        // The unit's own MSI write (0xabcd at the status address) is recorded at the next capture, as changed memory.
        Assert.Contains(records, r => IsContents(r) && BinaryPrimitives.ReadUInt64LittleEndian(r.Body.AsSpan(8)) <= 0x3000 &&
            BinaryPrimitives.ReadUInt64LittleEndian(r.Body.AsSpan(8)) + (ulong)(r.Body.Length - TraceFormat.MemoryPrefixSize) > 0x3000);
        using (TraceReplayer replayer = Replay(path))
        {
            Assert.Null(replayer.Difference);
            Assert.True(replayer.MemoryRecords >= 3);
        }

        string stripped = temp.PathOf("stripped.fitrace");
        Write(stripped, HeaderOf(path), records.Where(r => !IsContents(r)));
        using (TraceReplayer replayer = Replay(stripped))
        {
            Assert.NotNull(replayer.Difference); // no commands in the replayed queue: no CMD_SYNC event
        }
    }

    [Fact]
    public async Task AnIommufdSession_ReplaysIoctlsWhoseArgumentsPointIntoSharedMemory()
    {
        using var temp = new TempDir();
        using var ram = new SharedRam(Name("iommufd"), 16 * 1024);
        string path = await RecordAsync(temp, "iommufd.fitrace", c =>
        {
            byte[] reply = c.OkWithEvents(SharedFrames.CreateIommufd(c.NextId(), [(ulong)ram.Length], [(1, true, 0x10)]), out _, ram.Fd);
            uint unit = BinaryPrimitives.ReadUInt32LittleEndian(reply);
            ulong user = BinaryPrimitives.ReadUInt64LittleEndian(reply.AsSpan(8));
            int Ioctl(uint request, byte[] arg, out byte[] after)
            {
                byte[] p = c.Ok(SharedFrames.IommufdIoctl(c.NextId(), unit, request, arg));
                after = p.AsSpan(8).ToArray();
                return BinaryPrimitives.ReadInt32LittleEndian(p);
            }

            Assert.Equal(0, Ioctl(IommufdRequest.IoasAlloc, Ufd.Struct(12), out byte[] a));
            uint ioas = Ufd.U32(a, 8);
            Assert.Equal(0, Ioctl(IommufdRequest.TestCmd, Ufd.Struct(72, (4, MockSelftest.OpMockDomain), (8, ioas)), out a));
            uint mock = Ufd.U32(a, 24);
            Assert.Equal(0, Ioctl(IommufdRequest.HwptAlloc, Ufd.Struct(48, (4, (uint)HwptAllocFlags.NestParent), (8, mock), (12, ioas)), out a));
            uint parent = Ufd.U32(a, 16);
            BitConverter.GetBytes(0x1234u).CopyTo(ram.Bytes); // the driver data the next ioctl reads from user memory
            byte[] alloc = Ufd.Struct(48, (8, mock), (12, parent), (24, HwptDataType.Selftest), (28, 4));
            BinaryPrimitives.WriteUInt64LittleEndian(alloc.AsSpan(32), user);
            Assert.Equal(0, Ioctl(IommufdRequest.HwptAlloc, alloc, out a));
            uint nested = Ufd.U32(a, 16);
            Assert.Equal(0, Ioctl(IommufdRequest.TestCmd, Ufd.Struct(72, (4, MockSelftest.OpMdCheckIotlb), (8, nested), (16, 1), (20, 0x1234)), out _));
        });

        using (TraceReplayer replayer = Replay(path))
        {
            Assert.Null(replayer.Difference);
        }

        List<Rec> records = ReadAll(path);
        Assert.Single(records, IsContents); // the 4 bytes written before the HWPT_ALLOC that reads them
        string stripped = temp.PathOf("stripped.fitrace");
        Write(stripped, HeaderOf(path), records.Where(r => !IsContents(r)));
        using (TraceReplayer replayer = Replay(stripped))
        {
            Assert.NotNull(replayer.Difference); // the mock domain's IOTLB holds 0, not 0x1234: the check fails
        }
    }

    /// <summary>Writes the VT-d trace with its first contents record changed by <paramref name="damage"/> (given the body)
    /// or its flags replaced, and returns the error a replay reports (via the CLI: exit 3).</summary>
    private static string Damaged(TempDir temp, string path, Action<byte[]> damage, ushort? flags = null)
    {
        List<Rec> records = ReadAll(path);
        int at = records.FindIndex(IsContents);
        byte[] body = (byte[])records[at].Body.Clone();
        damage(body);
        records[at] = records[at] with { Body = body, Flags = flags ?? records[at].Flags };
        string damaged = temp.PathOf($"damaged-{Guid.NewGuid():N}.fitrace");
        Write(damaged, HeaderOf(path), records);
        TraceFormatException e = Assert.Throws<TraceFormatException>(() => Replay(damaged).Dispose());
        (int exit, _, string stderr) = Cli("replay", damaged, "--verify");
        Assert.Equal(3, exit);
        Assert.Contains(e.Message, stderr, StringComparison.Ordinal);
        return e.Message;
    }

    [Fact]
    public async Task ACorruptedMemory_RecordIsRefusedWithAClearError()
    {
        using var temp = new TempDir();
        using var ram = new SharedRam(Name("vtd-bad"), RamBytes);
        string path = await RecordAsync(temp, "vtd.fitrace", c => VtdSession(c, ram));

        Assert.Contains("region 7, which no unit of connection 1 maps", Damaged(temp, path, b => BinaryPrimitives.WriteUInt32LittleEndian(b, 7)), StringComparison.Ordinal);
        Assert.Contains("says the region has 131072 bytes, its descriptor record 65536", Damaged(temp, path, b => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(16), 2 * RamBytes)), StringComparison.Ordinal);
        Assert.Contains("lie outside the 65536-byte region", Damaged(temp, path, b => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(8), RamBytes - 8)), StringComparison.Ordinal);
        Assert.Contains("known flags (0x10)", Damaged(temp, path, _ => { }, flags: 0x10), StringComparison.Ordinal);
        Assert.Contains("a contents MEMORY record has no flags, a unit id", Damaged(temp, path, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), 0)), StringComparison.Ordinal);
        Assert.Contains("descriptor MEMORY record (flag PASSED) has no contents", Damaged(temp, path, _ => { }, flags: TraceFormat.MemoryPassed), StringComparison.Ordinal);

        // A contents record naming the region of a refused CREATE (the pipe, region 1), placed after it.
        List<Rec> all = ReadAll(path);
        int pipeCreate = all.FindIndex(r => IsDescriptor(r) && BinaryPrimitives.ReadUInt32LittleEndian(r.Body) == 1) + 1;
        byte[] late = (byte[])all.First(IsContents).Body.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(late, 1);
        all.Insert(pipeCreate + 2, all.First(IsContents) with { Body = late });
        string refused = temp.PathOf("refused-region.fitrace");
        Write(refused, HeaderOf(path), all);
        Assert.Contains("region 1, which no unit of connection 1 maps", Assert.Throws<TraceFormatException>(() => Replay(refused).Dispose()).Message, StringComparison.Ordinal);

        // A descriptor record out of order: region numbers must count up from 0.
        List<Rec> records = ReadAll(path);
        int first = records.FindIndex(IsDescriptor);
        byte[] body = (byte[])records[first].Body.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(body, 1);
        records[first] = records[first] with { Body = body };
        string damaged = temp.PathOf("order.fitrace");
        Write(damaged, HeaderOf(path), records);
        Assert.Contains("regions are numbered in order", Assert.Throws<TraceFormatException>(() => Replay(damaged).Dispose()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFormat1_0Trace_HasNoMemoryRecordsAndItsSharedCreatesAreRefused()
    {
        using var temp = new TempDir();
        using var ram = new SharedRam(Name("vtd-old"), RamBytes);
        string path = await RecordAsync(temp, "vtd.fitrace", c => VtdSession(c, ram));
        byte[] header = HeaderOf(path);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(10))); // this build writes format 1.1
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(10), 0);
        List<Rec> records = ReadAll(path);

        string withMemory = temp.PathOf("old-memory.fitrace");
        Write(withMemory, header, records);
        Assert.Contains("a MEMORY record in a format 1.0 trace", Assert.Throws<TraceFormatException>(() => ReadAll(withMemory)).Message, StringComparison.Ordinal);

        string without = temp.PathOf("old.fitrace");
        Write(without, header, records.Where(r => r.Kind != TraceRecordKind.Memory));
        TraceFormatException e = Assert.Throws<TraceFormatException>(() => Replay(without).Dispose());
        Assert.Contains("a CREATE that passes file descriptors in a format 1.0 trace", e.Message, StringComparison.Ordinal);

        // An engine-only 1.0 trace (the committed ones) still replays, an engine CREATE declaring descriptors included.
        string engine = temp.PathOf("engine.fitrace");
        await RecordAsync(temp, "engine.fitrace", c =>
        {
            byte[] p = c.Ok(Frames.Create(c.NextId(), 64, 64, 64));
            uint unit = BinaryPrimitives.ReadUInt32LittleEndian(p);
            c.Ok(Frames.FillIotlb(c.NextId(), unit, [TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x4000, 0x9000)]));
            byte[] withFds = Frames.Create(c.NextId(), 64, 64, 64);
            BinaryPrimitives.WriteUInt32LittleEndian(withFds.AsSpan(16 + 4), 1); // an engine CREATE declaring a descriptor
            WireReply refused = c.Call(withFds);
            Assert.Equal(((ushort)ErrorCode.InvalidArgument, 4u), (refused.Status, refused.Detail));
        });
        byte[] engineHeader = HeaderOf(engine);
        BinaryPrimitives.WriteUInt16LittleEndian(engineHeader.AsSpan(10), 0);
        string oldEngine = temp.PathOf("old-engine.fitrace");
        Write(oldEngine, engineHeader, ReadAll(engine));
        using TraceReplayer replayer = Replay(oldEngine);
        Assert.Null(replayer.Difference);
        Assert.Equal(0, replayer.MemoryRecords);
    }

    [Fact]
    public async Task RandomDamageToAMemfdTrace_IsReplayedOrRefusedNeverACrash()
    {
        using var temp = new TempDir();
        using var ram = new SharedRam(Name("vtd-fuzz"), RamBytes);
        string path = await RecordAsync(temp, "vtd.fitrace", c => VtdSession(c, ram));
        byte[] good = File.ReadAllBytes(path);
        List<Rec> records = ReadAll(path);
        // Byte offsets of the MEMORY records' headers and prefixes (where damage reaches the new code), and anywhere.
        var targets = new List<int>();
        foreach (Rec r in records.Where(r => r.Kind == TraceRecordKind.Memory))
        {
            targets.AddRange(Enumerable.Range((int)r.Offset, TraceFormat.RecordHeaderSize + TraceFormat.MemoryPrefixSize));
        }

        var random = new Random(11);
        string damaged = temp.PathOf("damaged.fitrace");
        int refused = 0, replayed = 0;
        for (int i = 0; i < 400; i++)
        {
            byte[] bytes = (byte[])good.Clone();
            int at = i % 2 == 0 ? targets[random.Next(targets.Count)] : random.Next(TraceFormat.HeaderSize, bytes.Length);
            bytes[at] ^= (byte)(1 << random.Next(8));
            File.WriteAllBytes(damaged, bytes);
            try
            {
                using TraceReplayer replayer = Replay(damaged);
                replayed++;
            }
            catch (TraceFormatException)
            {
                refused++;
            }
        }

        Assert.True(refused > 100 && replayed > 0, $"{refused} refused, {replayed} replayed");
    }
}
