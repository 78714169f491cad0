using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Runtime.InteropServices;

namespace FastInval.Host;

/// <summary>
/// One connection's protocol state and its dispatcher: takes the bytes read so far, answers every whole frame into an
/// <see cref="IBufferWriter{T}"/> and leaves an incomplete one for the next read. It owns the connection's units and
/// destroys them when disposed. Not thread-safe: one connection's frames are handled in order, on one thread at a time.
/// Handling a FILL, LOOKUP, EXECUTE or STATS request allocates nothing once the pool and the output are warm.
/// </summary>
internal sealed partial class Session : IDisposable
{
    private readonly ServerCore _core;
    private readonly Dictionary<uint, Unit> _units = [];
    private readonly Traces.SessionRecorder? _recorder;
    private bool _negotiated;
    private ushort _minor; // the agreed minor version: a 1.0 client gets exactly the 1.0 server
    private bool _disposed;
    private readonly FdInbox? _inbox;
    private long _frameStart; // stream offset of the frame being handled (whole frames are consumed in order)

    /// <summary>A session; with <paramref name="inbox"/>, file descriptors passed with the frames are received; with
    /// <paramref name="trace"/>, every frame read and written is recorded in it.</summary>
    public Session(ServerCore core, FdInbox? inbox = null, Traces.TraceWriter? trace = null)
    {
        _core = core;
        _inbox = inbox;
        _recorder = trace is null ? null : new Traces.SessionRecorder(trace);
    }

    /// <summary>The connection id of this session's trace records (0 when not recorded).</summary>
    public uint TraceConnectionId => _recorder?.ConnectionId ?? 0;

    /// <summary>The unit <paramref name="id"/> of this connection, or null (for a replay's figures).</summary>
    internal Unit? FindUnit(uint id) => _units.GetValueOrDefault(id);

    /// <summary>Units this connection holds.</summary>
    public int UnitCount => _units.Count;

    /// <summary>
    /// Answers every whole frame at the start of <paramref name="buffer"/>, at most <paramref name="maxFrames"/> of
    /// them. Returns the position up to which bytes were consumed. <paramref name="needMoreData"/> is true when
    /// the rest is an incomplete frame; <paramref name="close"/> when the stream cannot be trusted any more (a
    /// FRAME_ERROR reply was written and the connection must close).
    /// </summary>
    public SequencePosition Process(in ReadOnlySequence<byte> buffer, IBufferWriter<byte> output, int maxFrames,
        out bool needMoreData, out bool close)
    {
        var reader = new SequenceReader<byte>(buffer);
        needMoreData = false;
        close = false;
        if (_recorder is not null)
        {
            output = _recorder.Wrap(output); // records what is sent (the one place replies and events are committed)
        }

        for (int frames = 0; frames < maxFrames; frames++)
        {
            SequencePosition start = reader.Position;
            FrameReadStatus status = FrameReader.TryRead(ref reader, _core.Options.MaxFrameBytes, out FrameHeader header,
                out ReadOnlySequence<byte> payload, out ErrorCode error);
            if (status == FrameReadStatus.NeedMoreData)
            {
                needMoreData = true;
                break;
            }

            _core.FrameRead();
            if (_recorder is not null && status == FrameReadStatus.Frame)
            {
                RecordMemory(in header, in payload); // MEMORY records go before the REQUEST they serve
            }

            // Records what is read: the frame, or the header the server could not trust.
            _recorder?.Received(buffer.Slice(start, status == FrameReadStatus.Fatal ? ProtocolConstants.HeaderSize : header.Length));
            if (status == FrameReadStatus.Fatal)
            {
                uint detail = error == ErrorCode.FrameTooLarge ? (uint)_core.Options.MaxFrameBytes : header.Length;
                WriteFrameError(output, header.RequestId, error, detail);
                _core.ErrorReplied();
                close = true;
                break;
            }

            Handle(in header, in payload, output);
            _frameStart += header.Length;
            _inbox?.ReleaseBefore(_frameStart); // descriptors no later frame can claim
        }

        return reader.Position;
    }

    /// <summary>The MEMORY records a recorded frame needs before its REQUEST (docs/traces.md §4): the descriptors a
    /// CREATE that declares some came with; the changes to a unit's shared memory before a request that makes the unit
    /// read it (REG_WRITE of a VT-d or SMMUv3 unit, IOMMUFD_IOCTL).</summary>
    private void RecordMemory(in FrameHeader header, in ReadOnlySequence<byte> payload)
    {
        Traces.SessionRecorder recorder = _recorder!;
        if (header.Type == MessageType.Create)
        {
            Span<byte> prefix = stackalloc byte[8];
            Span<int> fds = stackalloc int[UnixFds.ControlFds];
            int count = -1;
            bool truncated = false;
            if (_inbox is not null && payload.Length >= 8)
            {
                payload.Slice(0, 8).CopyTo(prefix);
                if (BinaryPrimitives.ReadUInt32LittleEndian(prefix[4..]) != 0)
                {
                    count = _inbox.Peek(_frameStart, fds, out truncated);
                }
            }

            if (count > 0)
            {
                recorder.Passed(fds[..Math.Min(count, fds.Length)], truncated);
            }
            else
            {
                recorder.NonePassed();
            }
        }
        else if (header.Type is MessageType.RegisterWrite or MessageType.IommufdIoctl && _minor >= 1 &&
            _units.TryGetValue(header.UnitId, out Unit? unit) && !unit.Mappings.IsEmpty &&
            (header.Type == MessageType.IommufdIoctl) == (unit.Kind == UnitKind.Iommufd))
        {
            recorder.Capture(unit.Id, unit.Mappings);
        }
    }

    /// <summary>Writes a FRAME_ERROR reply (a frame that could not be read, or a refused connection).</summary>
    public static void WriteFrameError(IBufferWriter<byte> output, uint requestId, ErrorCode code, uint detail)
    {
        const int Total = ProtocolConstants.HeaderSize + ProtocolConstants.ErrorPayloadSize;
        Span<byte> span = output.GetSpan(Total)[..Total];
        new FrameHeader(Total, MessageType.FrameError, (ushort)code, requestId, 0).Write(span);
        BinaryPrimitives.WriteUInt32LittleEndian(span[16..], detail);
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], 0);
        output.Advance(Total);
    }

    /// <summary>Answers one whole frame.</summary>
    public void Handle(in FrameHeader header, in ReadOnlySequence<byte> payload, IBufferWriter<byte> output)
    {
        RequestContext context = _core.Contexts.Get();
        try
        {
            ReadOnlySpan<byte> body = payload.IsSingleSegment ? payload.FirstSpan : context.Gather(in payload);
            (ErrorCode code, uint detail) = Dispatch(in header, body, output);
            if (code != ErrorCode.Ok)
            {
                WriteError(output, in header, code, detail);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Nothing of a failed reply was committed (replies are advanced only when complete).
            WriteError(output, in header, ErrorCode.Internal, 0);
        }
        finally
        {
            _core.Contexts.Return(context);
        }
    }

    private (ErrorCode, uint) Dispatch(in FrameHeader header, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (header.Status != 0)
        {
            return (ErrorCode.Malformed, 0);
        }

        switch (header.Type)
        {
            case MessageType.Hello:
                return Hello(in header, body, output);
            case MessageType.Create:
            case MessageType.Destroy:
            case MessageType.Fill:
            case MessageType.Lookup:
            case MessageType.Execute:
            case MessageType.FaultPlan:
            case MessageType.Stats:
                break;
            case MessageType.RegisterRead:
            case MessageType.RegisterWrite:
            case MessageType.IommufdIoctl:
                if (_minor < 1)
                {
                    return (ErrorCode.UnknownType, header.Type); // not a 1.0 request (nor known before HELLO)
                }

                break;
            default:
                return (ErrorCode.UnknownType, header.Type);
        }

        if (!_negotiated)
        {
            return (ErrorCode.HelloState, 0);
        }

        if (header.Type == MessageType.Create)
        {
            return Create(in header, body, output);
        }

        if (header.Type == MessageType.Stats && header.UnitId == 0)
        {
            return ServerStats(in header, body, output);
        }

        if (header.UnitId == 0 || !_units.TryGetValue(header.UnitId, out Unit? unit))
        {
            return (ErrorCode.UnknownUnit, 0);
        }

        (ErrorCode, uint) result = header.Type switch
        {
            MessageType.Destroy => Destroy(in header, unit, body, output),
            MessageType.Fill => Fill(in header, unit, body, output),
            MessageType.Lookup => Lookup(in header, unit, body, output),
            MessageType.Execute => Execute(in header, unit, body, output),
            MessageType.FaultPlan => SetFaultPlan(in header, unit, body, output),
            MessageType.RegisterRead => RegisterRead(in header, unit, body, output),
            MessageType.RegisterWrite => RegisterWrite(in header, unit, body, output),
            MessageType.IommufdIoctl => IommufdIoctl(in header, unit, body, output),
            _ => UnitStats(in header, unit, body, output),
        };
        if (result.Item1 == ErrorCode.Ok)
        {
            unit.Requests++;
        }

        return result;
    }

    private static Span<byte> BeginReply(IBufferWriter<byte> output, in FrameHeader request, uint unitId, int payloadBytes, out int total)
    {
        total = ProtocolConstants.HeaderSize + payloadBytes;
        Span<byte> span = output.GetSpan(total)[..total];
        new FrameHeader((uint)total, (ushort)(request.Type | MessageType.ReplyBit), 0, request.RequestId, unitId).Write(span);
        span[ProtocolConstants.HeaderSize..].Clear();
        return span[ProtocolConstants.HeaderSize..];
    }

    private void WriteError(IBufferWriter<byte> output, in FrameHeader request, ErrorCode code, uint detail)
    {
        const int Total = ProtocolConstants.HeaderSize + ProtocolConstants.ErrorPayloadSize;
        Span<byte> span = output.GetSpan(Total)[..Total];
        new FrameHeader(Total, (ushort)(request.Type | MessageType.ReplyBit), (ushort)code, request.RequestId, request.UnitId).Write(span);
        BinaryPrimitives.WriteUInt32LittleEndian(span[16..], detail);
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], 0);
        output.Advance(Total);
        _core.ErrorReplied();
    }

    private (ErrorCode, uint) Hello(in FrameHeader header, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (header.UnitId != 0 || body.Length != ProtocolConstants.HelloRequestSize)
        {
            return (ErrorCode.Malformed, 0);
        }

        if (_negotiated)
        {
            return (ErrorCode.HelloState, 0);
        }

        ushort major = BinaryPrimitives.ReadUInt16LittleEndian(body);
        ushort minor = BinaryPrimitives.ReadUInt16LittleEndian(body[2..]);
        if (major != ProtocolConstants.Major)
        {
            return (ErrorCode.Version, ProtocolConstants.Major);
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(body[4..]) != 0)
        {
            return (ErrorCode.InvalidArgument, 4);
        }

        _negotiated = true;
        _minor = Math.Min(minor, ProtocolConstants.Minor);
        ServerOptions o = _core.Options;
        Span<byte> reply = BeginReply(output, in header, 0, _minor >= 1 ? ProtocolConstants.HelloReplySize : ProtocolConstants.HelloReplySize10, out int total);
        BinaryPrimitives.WriteUInt16LittleEndian(reply, ProtocolConstants.Major);
        BinaryPrimitives.WriteUInt16LittleEndian(reply[2..], _minor);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[4..], (uint)o.MaxFrameBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[8..], (uint)o.MaxUnitsPerConnection);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[12..], (uint)o.MaxOutstandingRequests);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[16..], (uint)o.MaxConnections);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[20..], (uint)o.MaxCacheEntries);
        if (_minor >= 1)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(reply[24..], ProtocolConstants.ServerFlagSharedMemoryUnits);
            BinaryPrimitives.WriteUInt32LittleEndian(reply[32..], ProtocolConstants.MaxEventsPerRequest);
            BinaryPrimitives.WriteUInt32LittleEndian(reply[36..], UnixFds.MaxFdsPerFrame);
        }

        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    private (ErrorCode, uint) Create(in FrameHeader header, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (header.UnitId != 0 || body.Length < ProtocolConstants.CreateRequestSize ||
            body.Length - ProtocolConstants.CreateRequestSize != BinaryPrimitives.ReadUInt32LittleEndian(body[20..]))
        {
            return (ErrorCode.Malformed, 0);
        }

        var kind = (UnitKind)BinaryPrimitives.ReadUInt16LittleEndian(body);
        if (kind is UnitKind.Iommufd or UnitKind.Vtd or UnitKind.SmmuV3)
        {
            if (_minor < 1)
            {
                return (ErrorCode.UnsupportedKind, (uint)kind); // what a 1.0 server answers
            }

            return CreateShared(in header, kind, body, output);
        }

        if (kind != UnitKind.Engine)
        {
            return (ErrorCode.InvalidArgument, 0);
        }

        if (BinaryPrimitives.ReadUInt16LittleEndian(body[2..]) != 0)
        {
            return (ErrorCode.InvalidArgument, 2);
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(body[4..]) != 0)
        {
            return (ErrorCode.InvalidArgument, 4);
        }

        Span<int> capacities = [0, 0, 0];
        (ErrorCode code, uint detail) = ReadCapacities(body, capacities);
        if (code != ErrorCode.Ok)
        {
            return (code, detail);
        }

        if (body.Length != ProtocolConstants.CreateRequestSize)
        {
            return (ErrorCode.InvalidArgument, 20); // ENGINE takes no options
        }

        if (_units.Count >= _core.Options.MaxUnitsPerConnection)
        {
            return (ErrorCode.UnitLimit, (uint)_core.Options.MaxUnitsPerConnection);
        }

        var engine = new InvalidationEngine(new EngineOptions
        {
            IotlbCapacity = capacities[0],
            DeviceTlbCapacity = capacities[1],
            ConfigCacheCapacity = capacities[2],
        });
        var unit = new Unit(_core.NextUnitId(), engine) { Requests = 1 };
        _units.Add(unit.Id, unit);
        _core.UnitCreated();
        Span<byte> reply = BeginReply(output, in header, unit.Id, ProtocolConstants.CreateReplySize, out int total);
        BinaryPrimitives.WriteUInt32LittleEndian(reply, unit.Id);
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    private static readonly int[] s_defaultCapacities = [1 << 16, 1 << 14, 1 << 12];

    /// <summary>CREATE's three capacities (payload offsets 8, 12, 16), 0 meaning the default.</summary>
    private (ErrorCode, uint) ReadCapacities(ReadOnlySpan<byte> body, Span<int> capacities)
    {
        int[] defaults = s_defaultCapacities;
        for (int i = 0; i < 3; i++)
        {
            uint requested = BinaryPrimitives.ReadUInt32LittleEndian(body[(8 + (4 * i))..]);
            if (requested > (uint)_core.Options.MaxCacheEntries)
            {
                return (ErrorCode.InvalidArgument, (uint)(8 + (4 * i)));
            }

            capacities[i] = requested == 0 ? Math.Min(defaults[i], _core.Options.MaxCacheEntries) : (int)requested;
        }

        return (ErrorCode.Ok, 0);
    }

    private (ErrorCode, uint) Destroy(in FrameHeader header, Unit unit, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (!body.IsEmpty)
        {
            return (ErrorCode.Malformed, 0);
        }

        _units.Remove(unit.Id);
        unit.Dispose();
        _core.UnitDestroyed();
        BeginReply(output, in header, unit.Id, 0, out int total);
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    /// <summary>Reads a FILL/LOOKUP prefix: selector and count, with the length check.</summary>
    private static (ErrorCode, uint) ReadBatchPrefix(ReadOnlySpan<byte> body, out CacheSelector cache, out int count)
    {
        cache = 0;
        count = 0;
        if (body.Length < ProtocolConstants.BatchPrefixSize)
        {
            return (ErrorCode.Malformed, 0);
        }

        uint n = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        if ((ulong)body.Length != ProtocolConstants.BatchPrefixSize + ((ulong)n * ProtocolConstants.ItemSize))
        {
            return (ErrorCode.Malformed, 0);
        }

        cache = (CacheSelector)BinaryPrimitives.ReadUInt16LittleEndian(body);
        if (cache is not (CacheSelector.Iotlb or CacheSelector.DeviceTlb or CacheSelector.Config))
        {
            return (ErrorCode.InvalidArgument, 0);
        }

        if (BinaryPrimitives.ReadUInt16LittleEndian(body[2..]) != 0)
        {
            return (ErrorCode.InvalidArgument, 2);
        }

        count = (int)n;
        return (ErrorCode.Ok, 0);
    }

    /// <summary>Offset in the payload of the first reserved byte or unknown flag bit that is set among the items, or −1.</summary>
    private static int FirstBadItemByte(ReadOnlySpan<byte> items, CacheSelector cache, bool lookup)
    {
        for (int i = 0; i < items.Length; i += ProtocolConstants.ItemSize)
        {
            ReadOnlySpan<byte> item = items.Slice(i, ProtocolConstants.ItemSize);
            int bad;
            if (lookup)
            {
                bad = cache == CacheSelector.Config
                    ? FirstSet(item, 1, 3, 12, 20)
                    : FirstSet(item, 16, 16, 0, 0);
            }
            else
            {
                bad = cache switch
                {
                    CacheSelector.Iotlb => (item[27] & ~(ProtocolConstants.EntryGlobal | ProtocolConstants.EntryTable)) != 0 ? 27 : FirstSet(item, 28, 4, 0, 0),
                    CacheSelector.DeviceTlb => (item[27] & ~ProtocolConstants.EntryGlobal) != 0 ? 27 : FirstSet(item, 28, 4, 0, 0),
                    _ => FirstSet(item, 19, 13, 0, 0),
                };
            }

            if (bad >= 0)
            {
                return ProtocolConstants.BatchPrefixSize + i + bad;
            }
        }

        return -1;
    }

    private static int FirstSet(ReadOnlySpan<byte> item, int start1, int length1, int start2, int length2)
    {
        int k = item.Slice(start1, length1).IndexOfAnyExcept((byte)0);
        if (k >= 0)
        {
            return start1 + k;
        }

        k = item.Slice(start2, length2).IndexOfAnyExcept((byte)0);
        return k >= 0 ? start2 + k : -1;
    }

    private static (ErrorCode, uint) Fill(in FrameHeader header, Unit unit, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        (ErrorCode code, uint detail) = ReadBatchPrefix(body, out CacheSelector cache, out int count);
        if (code != ErrorCode.Ok)
        {
            return (code, detail);
        }

        ReadOnlySpan<byte> items = body[ProtocolConstants.BatchPrefixSize..];
        int bad = FirstBadItemByte(items, cache, lookup: false);
        if (bad >= 0)
        {
            return (ErrorCode.InvalidArgument, (uint)bad);
        }

        Span<byte> reply = BeginReply(output, in header, unit.Id, ProtocolConstants.BatchPrefixSize + count, out int total);
        BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)count);
        Span<byte> results = reply[ProtocolConstants.BatchPrefixSize..];
        InvalidationEngine engine = unit.Engine;
        lock (unit.WriteGate)
        {
            for (int i = 0; i < count; i++)
            {
                ReadOnlySpan<byte> e = items.Slice(i * ProtocolConstants.ItemSize, ProtocolConstants.ItemSize);
                FillResult result;
                switch (cache)
                {
                    case CacheSelector.Iotlb:
                        var entry = new TranslationEntry((TranslationStage)e[24], BinaryPrimitives.ReadUInt16LittleEndian(e[20..]),
                            BinaryPrimitives.ReadUInt32LittleEndian(e[16..]), BinaryPrimitives.ReadUInt64LittleEndian(e),
                            BinaryPrimitives.ReadUInt64LittleEndian(e[8..]), e[26], (AccessRights)BinaryPrimitives.ReadUInt16LittleEndian(e[22..]),
                            (Granule)e[25], (e[27] & ProtocolConstants.EntryGlobal) != 0, (e[27] & ProtocolConstants.EntryTable) != 0);
                        result = engine.Iotlb.Fill(in entry);
                        break;
                    case CacheSelector.DeviceTlb:
                        var atc = new DeviceTlbEntry(BinaryPrimitives.ReadUInt32LittleEndian(e[16..]), BinaryPrimitives.ReadUInt32LittleEndian(e[20..]),
                            BinaryPrimitives.ReadUInt64LittleEndian(e), BinaryPrimitives.ReadUInt64LittleEndian(e[8..]), e[26],
                            (AccessRights)BinaryPrimitives.ReadUInt16LittleEndian(e[24..]), (e[27] & ProtocolConstants.EntryGlobal) != 0);
                        result = engine.DeviceTlb.Fill(in atc);
                        break;
                    default:
                        var config = new ConfigEntry((ConfigKinds)e[18], BinaryPrimitives.ReadUInt32LittleEndian(e[8..]),
                            BinaryPrimitives.ReadUInt32LittleEndian(e[12..]), BinaryPrimitives.ReadUInt16LittleEndian(e[16..]),
                            BinaryPrimitives.ReadUInt64LittleEndian(e));
                        result = engine.ConfigCache.Fill(in config);
                        break;
                }

                results[i] = (byte)result;
            }

            unit.Fills += (ulong)count;
        }

        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    private static (ErrorCode, uint) Lookup(in FrameHeader header, Unit unit, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        (ErrorCode code, uint detail) = ReadBatchPrefix(body, out CacheSelector cache, out int count);
        if (code != ErrorCode.Ok)
        {
            return (code, detail);
        }

        ReadOnlySpan<byte> items = body[ProtocolConstants.BatchPrefixSize..];
        int bad = FirstBadItemByte(items, cache, lookup: true);
        if (bad >= 0)
        {
            return (ErrorCode.InvalidArgument, (uint)bad);
        }

        Span<byte> reply = BeginReply(output, in header, unit.Id, ProtocolConstants.BatchPrefixSize + (count * ProtocolConstants.ItemSize), out int total);
        InvalidationEngine engine = unit.Engine;
        uint hits = 0;
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> q = items.Slice(i * ProtocolConstants.ItemSize, ProtocolConstants.ItemSize);
            Span<byte> r = reply.Slice(ProtocolConstants.BatchPrefixSize + (i * ProtocolConstants.ItemSize), ProtocolConstants.ItemSize);
            bool hit;
            Translation t = default;
            switch (cache)
            {
                case CacheSelector.Iotlb:
                {
                    ulong address = BinaryPrimitives.ReadUInt64LittleEndian(q);
                    uint asid = BinaryPrimitives.ReadUInt32LittleEndian(q[8..]);
                    ushort domain = BinaryPrimitives.ReadUInt16LittleEndian(q[12..]);
                    var stage = (TranslationStage)q[14];
                    hit = q[15] == 0
                        ? engine.Iotlb.TryLookup(stage, domain, asid, address, out t)
                        : engine.Iotlb.TryLookupTable(stage, domain, asid, address, q[15], out t);
                    break;
                }

                case CacheSelector.DeviceTlb:
                    hit = engine.DeviceTlb.TryLookup(BinaryPrimitives.ReadUInt32LittleEndian(q[8..]), BinaryPrimitives.ReadUInt32LittleEndian(q[12..]),
                        BinaryPrimitives.ReadUInt64LittleEndian(q), out t);
                    break;
                default:
                {
                    hit = engine.ConfigCache.TryLookup((ConfigKinds)q[0], BinaryPrimitives.ReadUInt32LittleEndian(q[4..]),
                        BinaryPrimitives.ReadUInt32LittleEndian(q[8..]), out ConfigEntry c);
                    if (hit)
                    {
                        r[0] = 1;
                        r[3] = (byte)c.Kind;
                        BinaryPrimitives.WriteUInt16LittleEndian(r[6..], c.DomainId);
                        BinaryPrimitives.WriteUInt64LittleEndian(r[8..], c.Value);
                        BinaryPrimitives.WriteUInt32LittleEndian(r[24..], c.SourceId);
                        BinaryPrimitives.WriteUInt32LittleEndian(r[28..], c.AddressSpaceId);
                        hits++;
                    }

                    continue;
                }
            }

            if (hit)
            {
                r[0] = 1;
                r[1] = t.SizeLog2;
                r[2] = t.Global ? ProtocolConstants.ResultGlobal : (byte)0;
                BinaryPrimitives.WriteUInt16LittleEndian(r[4..], (ushort)t.Rights);
                BinaryPrimitives.WriteUInt64LittleEndian(r[8..], t.OutputAddress);
                BinaryPrimitives.WriteUInt64LittleEndian(r[16..], t.InputBase);
                hits++;
            }
        }

        BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)count);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[4..], hits);
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    private static (ErrorCode, uint) Execute(in FrameHeader header, Unit unit, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (body.Length < ProtocolConstants.BatchPrefixSize)
        {
            return (ErrorCode.Malformed, 0);
        }

        uint n = BinaryPrimitives.ReadUInt32LittleEndian(body);
        if ((ulong)body.Length != ProtocolConstants.BatchPrefixSize + ((ulong)n * ProtocolConstants.ItemSize))
        {
            return (ErrorCode.Malformed, 0);
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(body[4..]) != 0)
        {
            return (ErrorCode.InvalidArgument, 4);
        }

        int count = (int)n;
        ReadOnlySpan<InvalidationDescriptor> batch = MemoryMarshal.Cast<byte, InvalidationDescriptor>(body[ProtocolConstants.BatchPrefixSize..]);
        Span<byte> reply = BeginReply(output, in header, unit.Id, ProtocolConstants.ExecuteReplyPrefixSize + count, out int total);
        Span<InvalidationStatus> statuses = MemoryMarshal.Cast<byte, InvalidationStatus>(reply.Slice(ProtocolConstants.ExecuteReplyPrefixSize, count));
        BatchResult result;
        lock (unit.WriteGate)
        {
            result = unit.Engine.Execute(batch, statuses);
            unit.Descriptors += (ulong)count;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)result.Ok);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[4..], (uint)result.TimedOut);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[8..], (uint)result.CompletionErrors);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[12..], (uint)result.Invalid);
        BinaryPrimitives.WriteInt32LittleEndian(reply[16..], result.FirstFailureIndex);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[20..], (uint)count);
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    private static (ErrorCode, uint) SetFaultPlan(in FrameHeader header, Unit unit, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (body.Length < ProtocolConstants.FaultPlanPrefixSize)
        {
            return (ErrorCode.Malformed, 0);
        }

        uint sources = BinaryPrimitives.ReadUInt32LittleEndian(body[16..]);
        uint timeouts = BinaryPrimitives.ReadUInt32LittleEndian(body[20..]);
        uint errors = BinaryPrimitives.ReadUInt32LittleEndian(body[24..]);
        ulong expected = ProtocolConstants.FaultPlanPrefixSize + (4UL * sources) + (8UL * timeouts) + (8UL * errors);
        if ((ulong)body.Length != expected)
        {
            return (ErrorCode.Malformed, 0);
        }

        uint timeoutRate = BinaryPrimitives.ReadUInt32LittleEndian(body[8..]);
        uint errorRate = BinaryPrimitives.ReadUInt32LittleEndian(body[12..]);
        if (timeoutRate > 1_000_000)
        {
            return (ErrorCode.InvalidArgument, 8);
        }

        if (errorRate > 1_000_000)
        {
            return (ErrorCode.InvalidArgument, 12);
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(body[28..]) != 0)
        {
            return (ErrorCode.InvalidArgument, 28);
        }

        int offset = ProtocolConstants.FaultPlanPrefixSize;
        var sourceIds = ImmutableArray.CreateBuilder<uint>((int)sources);
        for (uint i = 0; i < sources; i++, offset += 4)
        {
            sourceIds.Add(BinaryPrimitives.ReadUInt32LittleEndian(body[offset..]));
        }

        var timeoutOrdinals = ImmutableArray.CreateBuilder<ulong>((int)timeouts);
        for (uint i = 0; i < timeouts; i++, offset += 8)
        {
            timeoutOrdinals.Add(BinaryPrimitives.ReadUInt64LittleEndian(body[offset..]));
        }

        var errorOrdinals = ImmutableArray.CreateBuilder<ulong>((int)errors);
        for (uint i = 0; i < errors; i++, offset += 8)
        {
            errorOrdinals.Add(BinaryPrimitives.ReadUInt64LittleEndian(body[offset..]));
        }

        var plan = new FaultPlan
        {
            Seed = BinaryPrimitives.ReadUInt64LittleEndian(body),
            TimeoutPerMillion = timeoutRate,
            CompletionErrorPerMillion = errorRate,
            TimeoutSourceIds = sourceIds.MoveToImmutable(),
            TimeoutOrdinals = timeoutOrdinals.MoveToImmutable(),
            CompletionErrorOrdinals = errorOrdinals.MoveToImmutable(),
        };
        lock (unit.WriteGate)
        {
            unit.Engine.FaultPlan = plan;
        }

        BeginReply(output, in header, unit.Id, 0, out int total);
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    private static (ErrorCode, uint) UnitStats(in FrameHeader header, Unit unit, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (!body.IsEmpty)
        {
            return (ErrorCode.Malformed, 0);
        }

        InvalidationEngine e = unit.Engine;
        Span<byte> reply = BeginReply(output, in header, unit.Id, ProtocolConstants.UnitStatsSize, out int total);
        BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)e.Iotlb.Capacity);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[4..], (uint)e.Iotlb.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[8..], (uint)e.DeviceTlb.Capacity);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[12..], (uint)e.DeviceTlb.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[16..], (uint)e.ConfigCache.Capacity);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[20..], (uint)e.ConfigCache.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(reply[24..], e.DeviceTlbInvalidations);
        BinaryPrimitives.WriteUInt64LittleEndian(reply[32..], unit.Requests);
        BinaryPrimitives.WriteUInt64LittleEndian(reply[40..], unit.Descriptors);
        BinaryPrimitives.WriteUInt64LittleEndian(reply[48..], unit.Fills);
        BinaryPrimitives.WriteUInt64LittleEndian(reply[56..], (ulong)(e.Iotlb.MemoryBytes + e.DeviceTlb.MemoryBytes + e.ConfigCache.MemoryBytes));
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    private (ErrorCode, uint) ServerStats(in FrameHeader header, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (!body.IsEmpty)
        {
            return (ErrorCode.Malformed, 0);
        }

        Span<byte> reply = BeginReply(output, in header, 0, ProtocolConstants.ServerStatsSize, out int total);
        BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)_core.Connections);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[4..], (uint)_core.Units);
        BinaryPrimitives.WriteUInt64LittleEndian(reply[8..], (ulong)_core.Frames);
        BinaryPrimitives.WriteUInt64LittleEndian(reply[16..], (ulong)_core.ErrorReplies);
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    /// <summary>Destroys every unit the connection still holds.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (Unit unit in _units.Values)
        {
            unit.Dispose();
            _core.UnitDestroyed();
        }

        _units.Clear();
        _recorder?.Closed();
        _inbox?.Dispose();
    }
}
