using System.Buffers.Binary;

namespace FastInval.Host.Traces;

/// <summary>Kinds of trace records (docs/traces.md §3).</summary>
public enum TraceRecordKind : ushort
{
    /// <summary>A connection was accepted (empty body).</summary>
    Connect = 1,

    /// <summary>A connection closed; the server destroyed its units (empty body).</summary>
    Disconnect = 2,

    /// <summary>A frame the client sent (the frame's bytes; a frame the server could not read: its 16 header bytes).</summary>
    Request = 3,

    /// <summary>A frame the server sent: a reply, a FRAME_ERROR or an event (the frame's bytes).</summary>
    Reply = 4,

    /// <summary>Contents of shared guest memory (a region passed by file descriptor) at that point of the session.</summary>
    Memory = 5,

    /// <summary>The last record: the recorder closed the trace (body: the number of records before it).</summary>
    End = 6,
}

/// <summary>The fixed part of a trace file (docs/traces.md §2): versions, creation time and the limits of the server
/// that was recorded, which a replay gives its own dispatcher so that limit errors come out the same.</summary>
/// <param name="ProtocolMajor">Wire protocol major version of the recorded frames.</param>
/// <param name="ProtocolMinor">Wire protocol minor version.</param>
/// <param name="CreatedUnixNanoseconds">Wall-clock time the trace was created, nanoseconds since the Unix epoch (UTC).</param>
/// <param name="Flags">Bit 0 <see cref="TraceFormat.FlagGenerated"/>; other bits reserved.</param>
/// <param name="MaxFrameBytes">The server's largest frame.</param>
/// <param name="MaxUnitsPerConnection">The server's unit limit per connection.</param>
/// <param name="MaxOutstandingRequests">The server's read-ahead limit.</param>
/// <param name="MaxConnections">The server's connection limit.</param>
/// <param name="MaxCacheEntries">The largest capacity the server's CREATE accepts.</param>
public readonly record struct TraceHeader(ushort ProtocolMajor, ushort ProtocolMinor, ulong CreatedUnixNanoseconds, uint Flags,
    uint MaxFrameBytes, uint MaxUnitsPerConnection, uint MaxOutstandingRequests, uint MaxConnections, uint MaxCacheEntries)
{
    /// <summary>A header for a session served with <paramref name="options"/>, created now.</summary>
    public static TraceHeader For(ServerOptions options, uint flags = 0)
    {
        ArgumentNullException.ThrowIfNull(options);
        ulong now = (ulong)(DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100;
        return new TraceHeader(ProtocolConstants.Major, ProtocolConstants.Minor, now, flags, (uint)options.MaxFrameBytes,
            (uint)options.MaxUnitsPerConnection, (uint)options.MaxOutstandingRequests, (uint)options.MaxConnections, (uint)options.MaxCacheEntries);
    }

    /// <summary>True when <c>fastinval generate</c> wrote the trace (its replies were produced in process).</summary>
    public bool Generated => (Flags & TraceFormat.FlagGenerated) != 0;

    /// <summary>Server options with the recorded limits (the socket path is a placeholder: a replay listens nowhere).</summary>
    public ServerOptions ToServerOptions() => new()
    {
        SocketPath = "(replay)",
        MaxFrameBytes = (int)MaxFrameBytes,
        MaxUnitsPerConnection = (int)MaxUnitsPerConnection,
        MaxOutstandingRequests = (int)MaxOutstandingRequests,
        MaxConnections = (int)MaxConnections,
        MaxCacheEntries = (int)MaxCacheEntries,
    };

    /// <summary>Writes the 64 header bytes.</summary>
    public void Write(Span<byte> bytes)
    {
        bytes[..TraceFormat.HeaderSize].Clear();
        TraceFormat.Magic.CopyTo(bytes);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[8..], TraceFormat.Major);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[10..], TraceFormat.Minor);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[12..], ProtocolMajor);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[14..], ProtocolMinor);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[16..], CreatedUnixNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[24..], TraceFormat.HeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[28..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[32..], MaxFrameBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[36..], MaxUnitsPerConnection);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[40..], MaxOutstandingRequests);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[44..], MaxConnections);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[48..], MaxCacheEntries);
    }
}

/// <summary>Numbers of the trace file format (docs/traces.md).</summary>
public static class TraceFormat
{
    /// <summary>Trace format major version.</summary>
    public const ushort Major = 1;

    /// <summary>Trace format minor version (1: MEMORY records hold the shared guest memory, docs/traces.md §4).</summary>
    public const ushort Minor = 1;

    /// <summary>Bytes of the file header.</summary>
    public const int HeaderSize = 64;

    /// <summary>Bytes of a record header.</summary>
    public const int RecordHeaderSize = 24;

    /// <summary>Bytes of a MEMORY record's fixed body (before the contents).</summary>
    public const int MemoryPrefixSize = 24;

    /// <summary>Bytes of an END record's body.</summary>
    public const int EndBodySize = 8;

    /// <summary>Header flag: written by <c>fastinval generate</c>.</summary>
    public const uint FlagGenerated = 1;

    /// <summary>MEMORY record flag: a descriptor record — the next REQUEST of the connection (a CREATE) came with this
    /// file descriptor; the body holds no contents, <c>region_size</c> is the file's size.</summary>
    public const ushort MemoryPassed = 1;

    /// <summary>MEMORY record flag (with <see cref="MemoryPassed"/>): the file could not be sized (a pipe, a socket).</summary>
    public const ushort MemoryNotSizable = 2;

    /// <summary>MEMORY record flag (with <see cref="MemoryPassed"/>): the file was sized but cannot be mapped shared and
    /// read-write (a read-only descriptor).</summary>
    public const ushort MemoryNotMappable = 4;

    /// <summary>MEMORY record flag (with <see cref="MemoryPassed"/>): the kernel dropped descriptors of the same message
    /// (MSG_CTRUNC), so the CREATE could not claim them.</summary>
    public const ushort MemoryTruncated = 8;

    /// <summary>The MEMORY record flags a 1.1 trace may hold.</summary>
    public const ushort MemoryFlagsKnown = MemoryPassed | MemoryNotSizable | MemoryNotMappable | MemoryTruncated;

    /// <summary>Most content bytes the recorder puts in one MEMORY record (a longer change is split).</summary>
    public const int MemoryRecordMaxBytes = 1 << 20;

    /// <summary>The 8 bytes a trace file starts with: "FITRACE" and a NUL.</summary>
    public static ReadOnlySpan<byte> Magic => "FITRACE\0"u8;
}

/// <summary>A trace file that cannot be read: not a trace, a version this build does not read, a truncated or
/// inconsistent record. <see cref="Offset"/> is where in the file the problem is.</summary>
public sealed class TraceFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TraceFormatException(string message, long offset) : base(message) => Offset = offset;

    /// <summary>Creates the exception.</summary>
    public TraceFormatException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public TraceFormatException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public TraceFormatException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>Byte offset in the file of the damaged part (−1 when not known).</summary>
    public long Offset { get; } = -1;
}
