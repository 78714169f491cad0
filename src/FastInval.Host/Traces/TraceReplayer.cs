using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace FastInval.Host.Traces;

/// <summary>
/// Replays a trace in process: every connection of the trace gets a fresh <see cref="Session"/> on one dispatcher
/// built with the recorded server's limits, every REQUEST record is answered by it, and every REPLY record is paired
/// with the next frame the replay sent on that connection. Unit ids are mapped: a recorded CREATE reply's id stands
/// for the id the replay's CREATE returned (requests are rewritten on the way in, replies on the way back). With
/// <c>verify</c>, each pair is compared (docs/traces.md §5) and the first difference stops the replay.
/// </summary>
public sealed class TraceReplayer : IDisposable
{
    /// <summary>The unit id a request naming a unit unknown to the recording is sent with: never issued by a replay.</summary>
    private const uint UnknownUnit = uint.MaxValue;

    private readonly ServerCore _core;
    private readonly bool _verify;
    private readonly Dictionary<uint, ReplayConnection> _connections = [];
    private readonly Dictionary<uint, uint> _recordedToReplay = [];
    private readonly Dictionary<uint, uint> _replayToRecorded = [];
    private readonly SortedDictionary<uint, UnitFigures> _units = [];
    private byte[] _scratch = new byte[4096];
    private long _frames;
    private readonly ushort _formatMinor;

    /// <summary>A replayer for a trace with <paramref name="header"/>, of format minor version
    /// <paramref name="formatMinor"/> (a 1.0 trace holds no shared memory: its CREATEs that pass descriptors cannot be
    /// replayed).</summary>
    public TraceReplayer(TraceHeader header, bool verify, ushort formatMinor = TraceFormat.Minor)
    {
        _core = new ServerCore(header.ToServerOptions());
        _verify = verify;
        _formatMinor = formatMinor;
    }

    /// <summary>The first difference found (with verify), or null.</summary>
    public TraceDifference? Difference { get; private set; }

    /// <summary>Figures per recorded unit id, in id order (0 first: requests addressed to no unit).</summary>
    public IReadOnlyCollection<UnitFigures> Units => _units.Values;

    /// <summary>Requests replayed.</summary>
    public long Requests { get; private set; }

    /// <summary>Recorded replies (and events) paired with the replay's.</summary>
    public long Replies { get; private set; }

    /// <summary>Operations replayed (see <see cref="UnitFigures.Operations"/>).</summary>
    public long Operations { get; private set; }

    /// <summary>Connections seen.</summary>
    public int Connections { get; private set; }

    /// <summary>MEMORY records applied: descriptor records (a fresh file per descriptor) and contents written into them.</summary>
    public long MemoryRecords { get; private set; }

    /// <summary>Bytes of shared memory the MEMORY records wrote into the replay's files.</summary>
    public long MemoryBytes { get; private set; }

    /// <summary>Records of a kind this build does not know (a later minor version), skipped.</summary>
    public long SkippedRecords { get; private set; }

    /// <summary>Reads every record of <paramref name="reader"/> into a replayer; stops at the first difference. Calls
    /// <paramref name="progress"/> (bytes read, records read) about every 4,096 records.</summary>
    public static TraceReplayer Run(TraceReader reader, bool verify, Action<long, long>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var replayer = new TraceReplayer(reader.Header, verify, reader.FormatMinor);
        try
        {
            long records = 0;
            while (reader.TryRead(out TraceRecord record))
            {
                if (!replayer.Apply(in record))
                {
                    return replayer;
                }

                if ((++records & 4095) == 0)
                {
                    progress?.Invoke(reader.Position, records);
                }
            }

            replayer.Finish(reader.Position);
            progress?.Invoke(reader.Position, records);
            return replayer;
        }
        catch
        {
            replayer.Dispose();
            throw;
        }
    }

    /// <summary>Applies one record. False when it made the replay differ from the trace (with verify): stop then.</summary>
    public bool Apply(in TraceRecord record)
    {
        switch (record.Kind)
        {
            case TraceRecordKind.Connect:
                if (_connections.ContainsKey(record.ConnectionId))
                {
                    throw new TraceFormatException($"bad record {record.Index} at offset {record.Offset}: connection {record.ConnectionId} connects twice", record.Offset);
                }

                var inbox = new FdInbox();
                _connections.Add(record.ConnectionId, new ReplayConnection(new Session(_core, inbox), inbox));
                Connections++;
                return true;
            case TraceRecordKind.Disconnect:
            {
                ReplayConnection c = Connection(in record);
                if (_verify && c.Unread > 0)
                {
                    return Differ(in record, record.ConnectionId, "frames", $"the trace closes connection {record.ConnectionId} here, the replay sent {Describe(c.Output.WrittenSpan[c.ReadCursor..])} more");
                }

                Close(c);
                _connections.Remove(record.ConnectionId);
                return true;
            }

            case TraceRecordKind.Request:
                _frames++;
                Request(in record, Connection(in record));
                return true;
            case TraceRecordKind.Reply:
                _frames++;
                Replies++;
                return Reply(in record, Connection(in record));
            case TraceRecordKind.Memory:
                Memory(in record, Connection(in record));
                MemoryRecords++;
                return true;
            default:
                SkippedRecords++;
                return true;
        }
    }

    /// <summary>The trace ended at <paramref name="offset"/>: connections still open are closed (a replay that sent more
    /// than the trace holds differs, with verify).</summary>
    public void Finish(long offset)
    {
        foreach ((uint id, ReplayConnection c) in _connections)
        {
            if (_verify && c.Unread > 0 && Difference is null)
            {
                Difference = new TraceDifference(_frames, -1, offset, id, "frames",
                    $"difference at the end of the trace (offset {offset}, connection {id}): the trace has no more frames, the replay sent {Describe(c.Output.WrittenSpan[c.ReadCursor..])}");
            }

            Close(c);
        }

        _connections.Clear();
    }

    private ReplayConnection Connection(in TraceRecord record) =>
        _connections.TryGetValue(record.ConnectionId, out ReplayConnection? c) ? c
            : throw new TraceFormatException($"bad record {record.Index} at offset {record.Offset}: connection {record.ConnectionId} is not open (no CONNECT record before it)", record.Offset);

    private void Close(ReplayConnection c)
    {
        foreach (UnitFigures f in _units.Values)
        {
            if (c.Created.Contains(f.RecordedUnitId))
            {
                f.Destroyed = true;
            }
        }

        c.Dispose();
    }

    /// <summary>A MEMORY record (docs/traces.md §4): a descriptor record makes a fresh file of the recorded kind and size
    /// for the connection's next REQUEST to pass; a contents record writes its bytes into its region's file, which the
    /// replayed unit maps as the recorded one mapped the client's.</summary>
    private void Memory(in TraceRecord record, ReplayConnection c)
    {
        ReadOnlySpan<byte> body = record.Body.Span;
        uint region = BinaryPrimitives.ReadUInt32LittleEndian(body);
        ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(body[16..]);
        string where = $"bad record {record.Index} at offset {record.Offset}";
        if ((record.Flags & TraceFormat.MemoryPassed) != 0)
        {
            if (region != (uint)c.Regions.Count)
            {
                throw new TraceFormatException($"{where}: descriptor MEMORY record of region {region}, connection {record.ConnectionId} has passed {c.Regions.Count} (regions are numbered in order)", record.Offset);
            }

            var file = ReplayRegion.Create(record.Flags, size, $"fastinval-replay-{record.ConnectionId}-{region}");
            if (file is null)
            {
                throw new TraceFormatException($"{where}: cannot make a {size}-byte file for region {region} of connection {record.ConnectionId}", record.Offset);
            }

            if (c.PendingFds.Count >= UnixFds.ControlFds)
            {
                file.Dispose();
                throw new TraceFormatException($"{where}: more than {UnixFds.ControlFds} descriptor MEMORY records before one REQUEST of connection {record.ConnectionId} (a frame carries at most {UnixFds.MaxFdsPerFrame})", record.Offset);
            }

            c.Regions.Add(file);
            c.PendingFds.Add(file.TakeDescriptorForSession());
            c.PendingTruncated |= (record.Flags & TraceFormat.MemoryTruncated) != 0;
            return;
        }

        if (region >= (uint)c.Regions.Count || c.Regions[(int)region].Fd < 0)
        {
            throw new TraceFormatException($"{where}: MEMORY record of region {region}, which no unit of connection {record.ConnectionId} maps (never passed, not a mappable file, its CREATE failed or its unit is destroyed)", record.Offset);
        }

        ReplayRegion r = c.Regions[(int)region];
        if (size != r.Size)
        {
            throw new TraceFormatException($"{where}: MEMORY record of region {region} says the region has {size} bytes, its descriptor record {r.Size}", record.Offset);
        }

        ReadOnlySpan<byte> bytes = body[TraceFormat.MemoryPrefixSize..];
        int rc = UnixFds.WriteAt(r.Fd, bytes, (long)offset);
        if (rc < 0)
        {
            throw new TraceFormatException($"{where}: writing {bytes.Length} bytes at {offset} of region {region}: errno {-rc}", record.Offset);
        }

        MemoryBytes += bytes.Length;
    }

    private void Request(in TraceRecord record, ReplayConnection c)
    {
        ReadOnlySpan<byte> frame = record.Body.Span;
        if (_scratch.Length < frame.Length)
        {
            _scratch = new byte[Math.Max(frame.Length, _scratch.Length * 2)];
        }

        frame.CopyTo(_scratch);
        ushort requestType = BinaryPrimitives.ReadUInt16LittleEndian(frame[4..]);
        if (_formatMinor < 1 && requestType == MessageType.Create && frame.Length >= ProtocolConstants.HeaderSize + 8 &&
            BinaryPrimitives.ReadUInt16LittleEndian(frame[ProtocolConstants.HeaderSize..]) is (ushort)UnitKind.Iommufd or (ushort)UnitKind.Vtd or (ushort)UnitKind.SmmuV3 &&
            BinaryPrimitives.ReadUInt32LittleEndian(frame[(ProtocolConstants.HeaderSize + 4)..]) != 0)
        {
            throw new TraceFormatException($"record {record.Index} at offset {record.Offset}: a CREATE that passes file descriptors in a format 1.0 trace, which holds no shared memory: it cannot be replayed (record the session again with a build that writes format 1.1)", record.Offset);
        }

        int passed = c.PendingFds.Count; // the regions this frame came with: the last `passed` of c.Regions
        if (passed > 0)
        {
            // The descriptors the recorded frame came with, at this frame's first byte of the replayed stream.
            c.Inbox.Add(c.StreamOffset, c.StreamOffset + Math.Max(frame.Length, 1), CollectionsMarshal.AsSpan(c.PendingFds), c.PendingTruncated);
            c.PendingFds.Clear();
            c.PendingTruncated = false;
        }

        c.StreamOffset += frame.Length;
        uint recordedUnit = BinaryPrimitives.ReadUInt32LittleEndian(frame[12..]);
        uint replayUnit = recordedUnit == 0 ? 0 : _recordedToReplay.GetValueOrDefault(recordedUnit, UnknownUnit);
        BinaryPrimitives.WriteUInt32LittleEndian(_scratch.AsSpan(12), replayUnit);
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(frame[4..]);
        Requests++;
        c.Pending.Enqueue((recordedUnit, replayUnit));
        if (c.Closed)
        {
            return; // the server closed this connection after a FRAME_ERROR: nothing more is read
        }

        Unit? unit = replayUnit is 0 or UnknownUnit ? null : c.Session.FindUnit(replayUnit);
        Span<int> before = [0, 0, 0];
        if (unit is not null && type == MessageType.Execute)
        {
            Counts(unit, before);
        }

        int start = c.Output.WrittenCount;
        c.Session.Process(new ReadOnlySequence<byte>(_scratch, 0, frame.Length), c.Output, int.MaxValue, out _, out bool close);
        if (close)
        {
            c.Closed = true;
            Close(c);
        }

        ReleaseRegions(c, type, passed, replayUnit, c.Output.WrittenSpan[start..]);
        Account(c, recordedUnit, unit, type, frame, c.Output.WrittenSpan[start..], before);
    }

    /// <summary>Keeps the replay's files only while a unit maps them: the regions a CREATE came with are tied to the
    /// unit its (replayed) success made, or closed when it failed; a successful DESTROY closes its unit's. A long trace of
    /// units created and destroyed therefore holds no more files than the units alive.</summary>
    private static void ReleaseRegions(ReplayConnection c, ushort type, int passed, uint replayUnit, ReadOnlySpan<byte> written)
    {
        if (passed == 0 && type != MessageType.Destroy)
        {
            return;
        }

        // The reply is the last frame the request caused (events come before it).
        uint status = uint.MaxValue, unitId = 0;
        while (written.Length >= ProtocolConstants.HeaderSize)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(written);
            if (length < ProtocolConstants.HeaderSize || length > written.Length)
            {
                break;
            }

            if (BinaryPrimitives.ReadUInt16LittleEndian(written[4..]) == (type | MessageType.ReplyBit))
            {
                status = BinaryPrimitives.ReadUInt16LittleEndian(written[6..]);
                unitId = BinaryPrimitives.ReadUInt32LittleEndian(written[12..]);
            }

            written = written[length..];
        }

        if (passed > 0)
        {
            for (int i = c.Regions.Count - passed; i < c.Regions.Count; i++)
            {
                if (type == MessageType.Create && status == 0)
                {
                    c.Regions[i].ReplayUnit = unitId;
                }
                else
                {
                    c.Regions[i].Dispose(); // no unit maps it: no contents record may name it
                }
            }
        }

        if (type == MessageType.Destroy && status == 0 && replayUnit != 0)
        {
            foreach (ReplayRegion r in c.Regions)
            {
                if (r.ReplayUnit == replayUnit)
                {
                    r.Dispose();
                }
            }
        }
    }

    private static void Counts(Unit unit, Span<int> counts)
    {
        counts[0] = unit.Engine.Iotlb.Count;
        counts[1] = unit.Engine.DeviceTlb.Count;
        counts[2] = unit.Engine.ConfigCache.Count;
    }

    /// <summary>The figures of one request, from the request and the replay's own reply.</summary>
    private void Account(ReplayConnection c, uint recordedUnit, Unit? unit, ushort type, ReadOnlySpan<byte> request, ReadOnlySpan<byte> reply,
        ReadOnlySpan<int> before)
    {
        uint key = unit is null ? 0 : recordedUnit;
        if (!_units.TryGetValue(key, out UnitFigures? f))
        {
            f = new UnitFigures(key, 0);
            _units.Add(key, f);
        }

        f.Requests++;
        ReadOnlySpan<byte> body = request.Length > ProtocolConstants.HeaderSize ? request[ProtocolConstants.HeaderSize..] : [];
        ushort status = reply.Length >= ProtocolConstants.HeaderSize ? BinaryPrimitives.ReadUInt16LittleEndian(reply[6..]) : (ushort)0;
        if (reply.Length < ProtocolConstants.HeaderSize || status != 0)
        {
            f.Errors[Math.Min((int)status, f.Errors.Length - 1)]++;
            f.Operations++;
            Operations++;
            return;
        }

        ReadOnlySpan<byte> answer = reply[ProtocolConstants.HeaderSize..(int)BinaryPrimitives.ReadUInt32LittleEndian(reply)];
        long operations = 1;
        switch (type)
        {
            case MessageType.Fill:
            {
                int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
                f.Filled[BinaryPrimitives.ReadUInt16LittleEndian(body) - 1] += count;
                operations = count;
                break;
            }

            case MessageType.Lookup:
            {
                int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
                f.Lookups += count;
                f.Hits += BinaryPrimitives.ReadUInt32LittleEndian(answer[4..]);
                operations = count;
                break;
            }

            case MessageType.Execute:
            {
                int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(body);
                for (int i = 0; i < count; i++)
                {
                    byte scope = body[ProtocolConstants.BatchPrefixSize + (i * ProtocolConstants.ItemSize)];
                    f.Descriptors[scope is >= 1 and <= 4 ? scope : 0]++;
                }

                f.TimedOut += BinaryPrimitives.ReadUInt32LittleEndian(answer[4..]);
                f.CompletionErrors += BinaryPrimitives.ReadUInt32LittleEndian(answer[8..]);
                f.Invalid += BinaryPrimitives.ReadUInt32LittleEndian(answer[12..]);
                if (unit is not null && !c.Closed)
                {
                    Span<int> after = [0, 0, 0];
                    Counts(unit, after);
                    for (int k = 0; k < 3; k++)
                    {
                        f.Removed[k] += Math.Max(0, before[k] - after[k]);
                    }
                }

                operations = count;
                break;
            }

            case MessageType.Destroy:
                f.Destroyed = true;
                break;
            default:
                break;
        }

        f.Operations += operations;
        Operations += operations;
    }

    private bool Reply(in TraceRecord record, ReplayConnection c)
    {
        ReadOnlySpan<byte> recorded = record.Body.Span;
        ReadOnlySpan<byte> unread = c.Output.WrittenSpan[c.ReadCursor..];
        if (unread.Length < ProtocolConstants.HeaderSize)
        {
            return !_verify || Differ(in record, record.ConnectionId, "frames",
                $"the trace has {Describe(recorded)} here, the replay sent nothing more on connection {record.ConnectionId}");
        }

        int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(unread);
        ReadOnlySpan<byte> replayed = unread[..length];
        c.ReadCursor += length;
        if (c.ReadCursor == c.Output.WrittenCount)
        {
            c.Output.ResetWrittenCount();
            c.ReadCursor = 0;
        }

        ushort replayedType = BinaryPrimitives.ReadUInt16LittleEndian(replayed[4..]);
        uint replayedUnit = BinaryPrimitives.ReadUInt32LittleEndian(replayed[12..]);
        bool isReply = (replayedType & MessageType.ReplyBit) != 0;
        (uint RecordedUnit, uint ReplayUnit) request = isReply && c.Pending.Count > 0 ? c.Pending.Dequeue() : (0, 0);

        // The unit id the replay's frame stands for, in the trace's numbering.
        uint back;
        ushort recordedType = BinaryPrimitives.ReadUInt16LittleEndian(recorded[4..]);
        uint recordedUnit = BinaryPrimitives.ReadUInt32LittleEndian(recorded[12..]);
        bool created = replayedType == (MessageType.Create | MessageType.ReplyBit) && recordedType == replayedType &&
            BinaryPrimitives.ReadUInt16LittleEndian(replayed[6..]) == 0 && BinaryPrimitives.ReadUInt16LittleEndian(recorded[6..]) == 0;
        if (created)
        {
            _recordedToReplay[recordedUnit] = replayedUnit;
            _replayToRecorded[replayedUnit] = recordedUnit;
            c.Created.Add(recordedUnit);
            back = recordedUnit;
            if (!_units.ContainsKey(recordedUnit))
            {
                _units.Add(recordedUnit, new UnitFigures(recordedUnit, record.ConnectionId));
            }
        }
        else if (isReply && replayedUnit == request.ReplayUnit)
        {
            back = request.RecordedUnit;
        }
        else
        {
            back = replayedUnit == 0 ? 0 : _replayToRecorded.GetValueOrDefault(replayedUnit, replayedUnit);
        }

        if (!_verify)
        {
            return true;
        }

        string? field = ReplyComparer.FirstDifference(recorded, replayed, back, created, out string recordedValue, out string replayedValue);
        if (field is null)
        {
            return true;
        }

        return Differ(in record, record.ConnectionId, field,
            $"{Describe(recorded)}: field {field}: recorded {recordedValue}, replayed {replayedValue}");
    }

    private bool Differ(in TraceRecord record, uint connection, string field, string what)
    {
        Difference = new TraceDifference(_frames - 1, record.Index, record.Offset, connection, field,
            $"difference at frame {_frames - 1} (record {record.Index}, offset {record.Offset}, connection {connection}): {what}");
        return false;
    }

    /// <summary>"the reply to request 7 (EXECUTE)" and the like, from a frame's header.</summary>
    internal static string Describe(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < ProtocolConstants.HeaderSize)
        {
            return $"{frame.Length} bytes";
        }

        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(frame[4..]);
        uint id = BinaryPrimitives.ReadUInt32LittleEndian(frame[8..]);
        if (type == MessageType.FrameError)
        {
            return $"a FRAME_ERROR (request id {id})";
        }

        if ((type & MessageType.ReplyBit) != 0)
        {
            return $"the reply to request {id} ({ReplyComparer.TypeName((ushort)(type & ~MessageType.ReplyBit))})";
        }

        return type is >= MessageType.FirstEvent and <= MessageType.LastEvent ? $"an event 0x{type:X4}" : $"a frame of type 0x{type:X4}";
    }

    /// <summary>Closes every session still open.</summary>
    public void Dispose()
    {
        foreach (ReplayConnection c in _connections.Values)
        {
            c.Dispose();
        }

        _connections.Clear();
    }

    private sealed class ReplayConnection(Session session, FdInbox inbox) : IDisposable
    {
        public Session Session { get; } = session;

        /// <summary>The session's descriptor inbox: the replay puts a recorded frame's descriptors there.</summary>
        public FdInbox Inbox { get; } = inbox;

        /// <summary>Offset in the replayed byte stream of the next frame (what the session's inbox is keyed by).</summary>
        public long StreamOffset { get; set; }

        /// <summary>The files standing for the descriptors the connection passed, by region index.</summary>
        public List<ReplayRegion> Regions { get; } = [];

        /// <summary>Descriptors for the next REQUEST (from descriptor records), the session's to close.</summary>
        public List<int> PendingFds { get; } = [];

        public bool PendingTruncated { get; set; }

        public void Dispose()
        {
            Session.Dispose(); // closes the inbox, and any descriptor it still holds
            foreach (int fd in PendingFds)
            {
                UnixFds.Close(fd);
            }

            PendingFds.Clear();
            foreach (ReplayRegion r in Regions)
            {
                r.Dispose();
            }

            Regions.Clear();
        }

        public ArrayBufferWriter<byte> Output { get; } = new(4096);

        public int ReadCursor { get; set; }

        public int Unread => Output.WrittenCount - ReadCursor;

        public bool Closed { get; set; }

        /// <summary>Requests not yet paired with a reply: their recorded and replayed unit ids.</summary>
        public Queue<(uint RecordedUnit, uint ReplayUnit)> Pending { get; } = new();

        /// <summary>Recorded ids of the units this connection created.</summary>
        public HashSet<uint> Created { get; } = [];
    }
}

/// <summary>A file a replay passes for a recorded descriptor: a memfd of the recorded size (the replay writes the
/// recorded contents into it), a read-only descriptor of one (a file that was sized but not mappable), or a pipe (a file
/// that could not be sized).</summary>
internal sealed class ReplayRegion : IDisposable
{
    private int _forSession;

    private ReplayRegion(int fd, int forSession, ulong size)
    {
        Fd = fd;
        _forSession = forSession;
        Size = size;
    }

    /// <summary>The replay's own descriptor of the memfd (−1 for a pipe or a read-only file: no contents go there).</summary>
    public int Fd { get; private set; }

    /// <summary>The recorded file size.</summary>
    public ulong Size { get; }

    /// <summary>The replay's unit that maps the file (0: none yet).</summary>
    public uint ReplayUnit { get; set; }

    /// <summary>The file for the recorded <paramref name="flags"/> and <paramref name="size"/>, or null when it cannot be made.</summary>
    public static ReplayRegion? Create(ushort flags, ulong size, string name)
    {
        if ((flags & TraceFormat.MemoryNotSizable) != 0)
        {
            if (UnixFds.Pipe(out int read, out int write) != 0)
            {
                return null;
            }

            UnixFds.Close(write);
            return new ReplayRegion(-1, read, size);
        }

        if (size > long.MaxValue)
        {
            return null;
        }

        int fd = UnixFds.CreateMemfd(name, (long)size);
        if (fd < 0)
        {
            return null;
        }

        if ((flags & TraceFormat.MemoryNotMappable) != 0)
        {
            int readOnly = OpenReadOnly(fd);
            UnixFds.Close(fd);
            return readOnly < 0 ? null : new ReplayRegion(-1, readOnly, size);
        }

        int dup = UnixFds.Dup(fd);
        if (dup < 0)
        {
            UnixFds.Close(fd);
            return null;
        }

        return new ReplayRegion(fd, dup, size);
    }

    /// <summary>A read-only descriptor of the file behind <paramref name="fd"/> (through /proc/self/fd), or −1.</summary>
    private static int OpenReadOnly(int fd)
    {
        try
        {
            using Microsoft.Win32.SafeHandles.SafeFileHandle h = File.OpenHandle($"/proc/self/fd/{fd}", FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return UnixFds.Dup((int)h.DangerousGetHandle());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    /// <summary>The descriptor to give the session (it closes it once the CREATE is answered); once only.</summary>
    public int TakeDescriptorForSession()
    {
        int fd = _forSession;
        _forSession = -1;
        return fd;
    }

    public void Dispose()
    {
        if (Fd >= 0)
        {
            UnixFds.Close(Fd);
            Fd = -1;
        }

        if (_forSession >= 0)
        {
            UnixFds.Close(_forSession);
            _forSession = -1;
        }
    }
}
