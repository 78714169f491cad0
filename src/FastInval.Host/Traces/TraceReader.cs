using System.Buffers.Binary;

namespace FastInval.Host.Traces;

/// <summary>One record of a trace. <see cref="Body"/> is valid until the next <see cref="TraceReader.TryRead"/>.</summary>
/// <param name="Index">Zero-based index of the record in the file.</param>
/// <param name="Offset">Byte offset of the record in the file.</param>
/// <param name="Kind">Record kind.</param>
/// <param name="Flags">Record flags (MEMORY: <see cref="TraceFormat.MemoryPassed"/> and the like).</param>
/// <param name="ConnectionId">Connection the record belongs to (0 for END).</param>
/// <param name="TimeNanoseconds">Nanoseconds since the trace was created.</param>
/// <param name="Body">The record's body.</param>
public readonly record struct TraceRecord(long Index, long Offset, TraceRecordKind Kind, ushort Flags, uint ConnectionId, ulong TimeNanoseconds,
    ReadOnlyMemory<byte> Body);

/// <summary>
/// Reads a trace file record by record, checking what the format lets it check: the magic and versions, every record's
/// length against the file and its header's reserved fields, a frame record's length against the frame's own
/// <c>length</c>, a MEMORY record's prefix, and that the file ends with an END record that counts the records before it.
/// A violation is a <see cref="TraceFormatException"/> that says which record, at which offset.
/// </summary>
public sealed class TraceReader : IDisposable
{
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private byte[] _buffer = new byte[64 * 1024];
    private long _offset;
    private long _index;
    private bool _ended;
    private readonly ushort _minor;

    /// <summary>Opens a trace on <paramref name="stream"/> and reads its header.</summary>
    public TraceReader(Stream stream, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        _leaveOpen = leaveOpen;
        Span<byte> bytes = stackalloc byte[TraceFormat.HeaderSize];
        int got = ReadFully(bytes);
        if (got < 16 || !bytes[..8].SequenceEqual(TraceFormat.Magic))
        {
            throw new TraceFormatException(got < 8 ? $"not a FastInval trace: the file has {got} bytes, a trace starts with the 8-byte magic \"FITRACE\\0\""
                : "not a FastInval trace: bad magic (the file must start with \"FITRACE\\0\")", 0);
        }

        ushort major = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]);
        ushort minor = BinaryPrimitives.ReadUInt16LittleEndian(bytes[10..]);
        if (major != TraceFormat.Major)
        {
            throw new TraceFormatException($"trace format version {major}.{minor} is not read by this build (it reads {TraceFormat.Major}.x)", 8);
        }

        _minor = minor;
        if (got < 28)
        {
            throw new TraceFormatException($"truncated: the file ends inside the trace header ({got} bytes)", got);
        }

        uint headerLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes[24..]);
        if (headerLength < TraceFormat.HeaderSize || headerLength > 1 << 20)
        {
            throw new TraceFormatException($"bad trace header: header_length {headerLength} (at least {TraceFormat.HeaderSize})", 24);
        }

        if (got < TraceFormat.HeaderSize)
        {
            throw new TraceFormatException($"truncated: the file ends inside the trace header ({got} of {headerLength} bytes)", got);
        }

        Header = new TraceHeader(BinaryPrimitives.ReadUInt16LittleEndian(bytes[12..]), BinaryPrimitives.ReadUInt16LittleEndian(bytes[14..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[16..]), BinaryPrimitives.ReadUInt32LittleEndian(bytes[28..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[32..]), BinaryPrimitives.ReadUInt32LittleEndian(bytes[36..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[40..]), BinaryPrimitives.ReadUInt32LittleEndian(bytes[44..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[48..]));
        if (Header.ProtocolMajor != ProtocolConstants.Major)
        {
            throw new TraceFormatException($"the trace holds protocol {Header.ProtocolMajor}.{Header.ProtocolMinor} frames; this build speaks {ProtocolConstants.Major}.x", 12);
        }

        if (Header.MaxFrameBytes < 64 || Header.MaxUnitsPerConnection < 1 || Header.MaxOutstandingRequests < 1 ||
            Header.MaxConnections < 1 || Header.MaxCacheEntries < 1 || Header.MaxCacheEntries > 1 << 28 || Header.MaxFrameBytes > int.MaxValue ||
            Header.MaxUnitsPerConnection > int.MaxValue || Header.MaxOutstandingRequests > int.MaxValue || Header.MaxConnections > int.MaxValue)
        {
            throw new TraceFormatException("bad trace header: a server limit is out of range", 32);
        }

        for (long skip = headerLength - TraceFormat.HeaderSize; skip > 0;)
        {
            int n = ReadFully(_buffer.AsSpan(0, (int)Math.Min(skip, _buffer.Length)));
            if (n == 0)
            {
                throw new TraceFormatException($"truncated: the file ends inside the trace header ({headerLength} bytes)", TraceFormat.HeaderSize);
            }

            skip -= n;
        }

        _offset = headerLength;
    }

    /// <summary>Opens the trace file at <paramref name="path"/>.</summary>
    public static TraceReader Open(string path) =>
        new(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16));

    /// <summary>The file header.</summary>
    public TraceHeader Header { get; }

    /// <summary>The trace format's minor version (MEMORY records are replayed from 1.1 on).</summary>
    public ushort FormatMinor => _minor;

    /// <summary>Bytes read so far.</summary>
    public long Position => _offset;

    /// <summary>Length of the file, when the stream knows it (else −1).</summary>
    public long Length => _stream.CanSeek ? _stream.Length : -1;

    /// <summary>Reads the next record. False after the END record; a missing END record, a truncated or an inconsistent
    /// record throws <see cref="TraceFormatException"/>.</summary>
    public bool TryRead(out TraceRecord record)
    {
        record = default;
        if (_ended)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[TraceFormat.RecordHeaderSize];
        int got = ReadFully(header);
        if (got == 0)
        {
            throw new TraceFormatException($"truncated: the trace ends after record {_index - 1} without its END record (the recorder did not close it)", _offset);
        }

        if (got < TraceFormat.RecordHeaderSize)
        {
            throw new TraceFormatException($"truncated: record {_index} at offset {_offset} is cut inside its header ({got} of {TraceFormat.RecordHeaderSize} bytes)", _offset);
        }

        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        var kind = (TraceRecordKind)BinaryPrimitives.ReadUInt16LittleEndian(header[4..]);
        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(header[6..]);
        uint connection = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
        if (length < TraceFormat.RecordHeaderSize)
        {
            throw new TraceFormatException($"bad record {_index} at offset {_offset}: record_length {length} is below {TraceFormat.RecordHeaderSize}", _offset);
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(header[12..]) != 0)
        {
            throw new TraceFormatException($"bad record {_index} at offset {_offset}: reserved field at 12 is not zero", _offset + 12);
        }

        int bodyLength = (int)Math.Min(length - TraceFormat.RecordHeaderSize, int.MaxValue);
        if (Length >= 0 && _offset + length > Length)
        {
            throw new TraceFormatException($"truncated: record {_index} at offset {_offset} needs {length} bytes, the file ends after {Length - _offset}", _offset);
        }

        if (_buffer.Length < bodyLength)
        {
            _buffer = new byte[Math.Max(bodyLength, _buffer.Length * 2)];
        }

        int bodyGot = ReadFully(_buffer.AsSpan(0, bodyLength));
        if (bodyGot < bodyLength)
        {
            throw new TraceFormatException($"truncated: record {_index} at offset {_offset} needs {length} bytes, the file ends after {TraceFormat.RecordHeaderSize + bodyGot}", _offset);
        }

        ReadOnlySpan<byte> body = _buffer.AsSpan(0, bodyLength);
        Check(kind, flags, connection, body);
        record = new TraceRecord(_index, _offset, kind, flags, connection, BinaryPrimitives.ReadUInt64LittleEndian(header[16..]), _buffer.AsMemory(0, bodyLength));
        _offset += length;
        _index++;
        if (kind == TraceRecordKind.End)
        {
            _ended = true;
            return false;
        }

        return true;
    }

    private void Check(TraceRecordKind kind, ushort flags, uint connection, ReadOnlySpan<byte> body)
    {
        string where = $"record {_index} at offset {_offset}";
        switch (kind)
        {
            case TraceRecordKind.Connect or TraceRecordKind.Disconnect:
                if (!body.IsEmpty || flags != 0 || connection == 0)
                {
                    throw new TraceFormatException($"bad {where}: a {kind} record has an empty body, no flags and a connection id", _offset);
                }

                break;
            case TraceRecordKind.Request or TraceRecordKind.Reply:
                if (flags != 0 || connection == 0 || body.Length < ProtocolConstants.HeaderSize)
                {
                    throw new TraceFormatException($"bad {where}: a frame record holds at least a 16-byte frame header, no flags and a connection id", _offset);
                }

                uint frameLength = BinaryPrimitives.ReadUInt32LittleEndian(body);
                bool unreadable = kind == TraceRecordKind.Request && body.Length == ProtocolConstants.HeaderSize &&
                    (frameLength < ProtocolConstants.HeaderSize || frameLength > Header.MaxFrameBytes);
                if (frameLength != body.Length && !unreadable)
                {
                    throw new TraceFormatException($"bad {where}: the frame's length field says {frameLength} bytes, the record holds {body.Length}", _offset + TraceFormat.RecordHeaderSize);
                }

                break;
            case TraceRecordKind.Memory:
                CheckMemory(flags, connection, body, where);
                break;
            case TraceRecordKind.End:
                if (body.Length != TraceFormat.EndBodySize || flags != 0 || connection != 0)
                {
                    throw new TraceFormatException($"bad {where}: an END record has an 8-byte body, no flags and connection 0", _offset);
                }

                ulong records = BinaryPrimitives.ReadUInt64LittleEndian(body);
                if (records != (ulong)_index)
                {
                    throw new TraceFormatException($"bad {where}: the END record counts {records} records before it, the file has {_index}", _offset);
                }

                break;
            default:
                // A later minor version may add record kinds (a reader skips them); a 1.0 trace has none.
                if (_minor <= TraceFormat.Minor)
                {
                    throw new TraceFormatException($"bad {where}: unknown record kind {(ushort)kind}", _offset + 4);
                }

                break;
        }
    }

    /// <summary>A MEMORY record (docs/traces.md §4): the prefix, the flags, and the bytes inside the region.</summary>
    private void CheckMemory(ushort flags, uint connection, ReadOnlySpan<byte> body, string where)
    {
        if (_minor < 1)
        {
            throw new TraceFormatException($"bad {where}: a MEMORY record in a format 1.0 trace (MEMORY records are read from format 1.1 on; no 1.0 recorder wrote one)", _offset + 4);
        }

        if ((flags & ~TraceFormat.MemoryFlagsKnown) != 0 || connection == 0 || body.Length < TraceFormat.MemoryPrefixSize)
        {
            throw new TraceFormatException($"bad {where}: a MEMORY record holds a 24-byte prefix, known flags (0x{flags:X}) and a connection id", _offset);
        }

        uint unit = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(body[16..]);
        ulong count = (ulong)(body.Length - TraceFormat.MemoryPrefixSize);
        if ((flags & TraceFormat.MemoryPassed) != 0)
        {
            bool sizable = (flags & TraceFormat.MemoryNotSizable) == 0;
            if (count != 0 || unit != 0 || offset != 0 || (!sizable && size != 0) || (!sizable && (flags & TraceFormat.MemoryNotMappable) != 0) ||
                size > long.MaxValue)
            {
                throw new TraceFormatException($"bad {where}: a descriptor MEMORY record (flag PASSED) has no contents, unit 0, offset 0 and a file size (0 when not sizable)", _offset);
            }
        }
        else if (flags != 0 || unit == 0 || count == 0)
        {
            throw new TraceFormatException($"bad {where}: a contents MEMORY record has no flags, a unit id and at least one byte", _offset);
        }

        if (offset > size || count > size - offset)
        {
            throw new TraceFormatException($"bad {where}: MEMORY bytes [{offset}, {offset + count}) lie outside the {size}-byte region", _offset);
        }
    }

    private int ReadFully(Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = _stream.Read(buffer[total..]);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }

    /// <summary>Closes the stream (unless left open).</summary>
    public void Dispose()
    {
        if (!_leaveOpen)
        {
            _stream.Dispose();
        }
    }
}
