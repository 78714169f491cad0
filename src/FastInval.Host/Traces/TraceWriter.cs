using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;

namespace FastInval.Host.Traces;

/// <summary>
/// Writes a trace file (docs/traces.md): the header, then records appended by any number of connections' threads at
/// once (one lock, taken for the copy of one record into a buffer). Records go into a 1 MiB buffer that is written
/// out when full, on <see cref="Flush"/> and on <see cref="Dispose"/>, which appends the END record; so recording a
/// frame costs a copy and allocates nothing. An I/O error does not reach the caller: the writer stops recording, keeps
/// the error in <see cref="Failure"/> and drops later records, so a full disk never disturbs the sessions recorded.
/// </summary>
public sealed class TraceWriter : IDisposable
{
    /// <summary>Bytes buffered before a write to the stream.</summary>
    public const int BufferSize = 1 << 20;

    private static readonly double s_nanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    private readonly Lock _gate = new();
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly byte[] _buffer = new byte[BufferSize];
    private readonly long _start = Stopwatch.GetTimestamp();
    private int _used;
    private long _records;
    private int _nextConnectionId;
    private bool _closed;

    /// <summary>Starts a trace on <paramref name="stream"/> (its header is written at once).</summary>
    public TraceWriter(Stream stream, TraceHeader header, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        _leaveOpen = leaveOpen;
        Header = header;
        header.Write(_buffer);
        _used = TraceFormat.HeaderSize;
    }

    /// <summary>Creates (or truncates) the file at <paramref name="path"/> and starts a trace in it.</summary>
    public static TraceWriter Create(string path, TraceHeader header) =>
        new(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 0), header);

    /// <summary>The header written.</summary>
    public TraceHeader Header { get; }

    /// <summary>Records written so far (END excluded).</summary>
    public long Records => Interlocked.Read(ref _records);

    /// <summary>The I/O error that stopped the recording, or null.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>A fresh connection id (1, 2, …) for the records of one connection.</summary>
    public uint NextConnectionId() => (uint)Interlocked.Increment(ref _nextConnectionId);

    /// <summary>Appends a CONNECT record.</summary>
    public void WriteConnect(uint connectionId) => Append(TraceRecordKind.Connect, 0, connectionId, [], default);

    /// <summary>Appends a DISCONNECT record.</summary>
    public void WriteDisconnect(uint connectionId) => Append(TraceRecordKind.Disconnect, 0, connectionId, [], default);

    /// <summary>Appends a REQUEST or REPLY record holding <paramref name="frame"/>.</summary>
    public void WriteFrame(TraceRecordKind kind, uint connectionId, ReadOnlySpan<byte> frame)
    {
        CheckFrameKind(kind);
        Append(kind, 0, connectionId, frame, default);
    }

    /// <summary>Appends a REQUEST or REPLY record holding <paramref name="frame"/> (which may span segments).</summary>
    public void WriteFrame(TraceRecordKind kind, uint connectionId, in ReadOnlySequence<byte> frame)
    {
        CheckFrameKind(kind);
        if (frame.IsSingleSegment)
        {
            Append(kind, 0, connectionId, frame.FirstSpan, default);
        }
        else
        {
            Append(kind, 0, connectionId, [], frame);
        }
    }

    /// <summary>Appends a MEMORY record: <paramref name="contents"/> are the bytes at <paramref name="fileOffset"/> of the
    /// connection's shared-memory region <paramref name="region"/> (the zero-based index of the file descriptor among those
    /// the connection passed), which is <paramref name="regionSize"/> bytes long; <paramref name="unitId"/> is the unit
    /// that maps it (0 in a descriptor record); <paramref name="flags"/> are the record's flags
    /// (<see cref="TraceFormat.MemoryPassed"/> and the like, docs/traces.md §4).</summary>
    public void WriteMemory(uint connectionId, uint region, uint unitId, ulong fileOffset, ulong regionSize,
        ReadOnlySpan<byte> contents, ushort flags = 0)
    {
        Span<byte> prefix = stackalloc byte[TraceFormat.MemoryPrefixSize];
        BinaryPrimitives.WriteUInt32LittleEndian(prefix, region);
        BinaryPrimitives.WriteUInt32LittleEndian(prefix[4..], unitId);
        BinaryPrimitives.WriteUInt64LittleEndian(prefix[8..], fileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(prefix[16..], regionSize);
        lock (_gate)
        {
            // Two parts in one record: the prefix, then the contents (same lock: nothing comes between them).
            AppendLocked(TraceRecordKind.Memory, flags, connectionId, prefix,
                contents, default);
        }
    }

    private static void CheckFrameKind(TraceRecordKind kind)
    {
        if (kind is not (TraceRecordKind.Request or TraceRecordKind.Reply))
        {
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "a frame record is a Request or a Reply");
        }
    }

    private void Append(TraceRecordKind kind, ushort flags, uint connectionId, ReadOnlySpan<byte> body, in ReadOnlySequence<byte> bodySequence)
    {
        lock (_gate)
        {
            AppendLocked(kind, flags, connectionId, body, [], bodySequence);
        }
    }

    private void AppendLocked(TraceRecordKind kind, ushort flags, uint connectionId, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second,
        in ReadOnlySequence<byte> third)
    {
        if (_closed)
        {
            return;
        }

        long bodyLength = first.Length + second.Length + third.Length;
        long total = TraceFormat.RecordHeaderSize + bodyLength;
        if (total > uint.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(first), "a trace record is at most 4 GiB");
        }

        ulong now = (ulong)((Stopwatch.GetTimestamp() - _start) * s_nanosecondsPerTick);
        Span<byte> header = stackalloc byte[TraceFormat.RecordHeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)total);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], (ushort)kind);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], connectionId);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(header[16..], now);
        if (!Put(header) || !Put(first) || !Put(second))
        {
            return;
        }

        foreach (ReadOnlyMemory<byte> segment in third)
        {
            if (!Put(segment.Span))
            {
                return;
            }
        }

        _records++;
    }

    /// <summary>Copies into the buffer, writing it out when full (bytes larger than the buffer go straight to the stream).</summary>
    private bool Put(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length <= _buffer.Length - _used)
        {
            bytes.CopyTo(_buffer.AsSpan(_used));
            _used += bytes.Length;
            return true;
        }

        if (!WriteOut())
        {
            return false;
        }

        if (bytes.Length <= _buffer.Length)
        {
            bytes.CopyTo(_buffer);
            _used = bytes.Length;
            return true;
        }

        try
        {
            _stream.Write(bytes);
            return true;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException or UnauthorizedAccessException)
        {
            Fail(e);
            return false;
        }
    }

    private bool WriteOut()
    {
        if (_used == 0)
        {
            return true;
        }

        try
        {
            _stream.Write(_buffer, 0, _used);
            _used = 0;
            return true;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException or UnauthorizedAccessException)
        {
            Fail(e);
            return false;
        }
    }

    private void Fail(Exception e)
    {
        Failure ??= e;
        _closed = true;
        _used = 0;
    }

    /// <summary>Writes the buffered records to the stream (and the stream to its device).</summary>
    public void Flush()
    {
        lock (_gate)
        {
            if (!_closed && WriteOut())
            {
                try
                {
                    _stream.Flush();
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException)
                {
                    Fail(e);
                }
            }
        }
    }

    /// <summary>Appends the END record, writes everything out and closes the stream (unless left open). Records
    /// appended afterwards are dropped.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (!_closed)
            {
                Span<byte> body = stackalloc byte[TraceFormat.EndBodySize];
                BinaryPrimitives.WriteUInt64LittleEndian(body, (ulong)_records);
                long records = _records;
                AppendLocked(TraceRecordKind.End, 0, 0, body, [], default);
                _records = records; // END is not counted
                if (WriteOut())
                {
                    try
                    {
                        _stream.Flush();
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException)
                    {
                        Fail(e);
                    }
                }

                _closed = true;
            }

            if (!_leaveOpen)
            {
                _stream.Dispose();
            }
        }
    }
}
