using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace FastInval.Host;

/// <summary>A frame header (docs/protocol.md §2).</summary>
/// <param name="Length">Whole frame length, header included.</param>
/// <param name="Type">Message type.</param>
/// <param name="Status">Status (0 in requests).</param>
/// <param name="RequestId">Client-chosen id, echoed.</param>
/// <param name="UnitId">Addressed unit, or 0.</param>
public readonly record struct FrameHeader(uint Length, ushort Type, ushort Status, uint RequestId, uint UnitId)
{
    /// <summary>Reads a header from 16 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FrameHeader Read(ReadOnlySpan<byte> bytes) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(bytes),
        BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]),
        BinaryPrimitives.ReadUInt16LittleEndian(bytes[6..]),
        BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(bytes[12..]));

    /// <summary>Writes this header into 16 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(Span<byte> bytes)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, Length);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[4..], Type);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[6..], Status);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[8..], RequestId);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[12..], UnitId);
    }
}

/// <summary>What <see cref="FrameReader.TryRead"/> found.</summary>
public enum FrameReadStatus
{
    /// <summary>Not a whole frame yet: nothing consumed, read more and call again.</summary>
    NeedMoreData = 0,

    /// <summary>A whole frame: header and payload are set, the reader is past it.</summary>
    Frame = 1,

    /// <summary>The header cannot be trusted (<see cref="ErrorCode.BadLength"/> or <see cref="ErrorCode.FrameTooLarge"/>):
    /// the header is set, the stream is out of step and the connection must close after a FRAME_ERROR reply.</summary>
    Fatal = 2,
}

/// <summary>
/// Splits a byte stream into frames, the way Kestrel's request parser reads a pipe: it looks at whole frames only,
/// answers "need more data" without consuming anything when a frame is incomplete, reads the header from one span
/// when it can (the fast path) and across segments otherwise (the cold path). It never throws on input.
/// </summary>
public static class FrameReader
{
    /// <summary>Reads one frame from <paramref name="reader"/>. On <see cref="FrameReadStatus.Frame"/> the reader has
    /// advanced past the frame; otherwise it has not moved.</summary>
    /// <param name="reader">The buffered bytes.</param>
    /// <param name="maxFrameBytes">The advertised largest frame.</param>
    /// <param name="header">The frame's header (also set on <see cref="FrameReadStatus.Fatal"/>).</param>
    /// <param name="payload">The frame's payload.</param>
    /// <param name="error">On <see cref="FrameReadStatus.Fatal"/>: why.</param>
    public static FrameReadStatus TryRead(ref SequenceReader<byte> reader, int maxFrameBytes, out FrameHeader header,
        out ReadOnlySequence<byte> payload, out ErrorCode error)
    {
        payload = default;
        error = ErrorCode.Ok;
        ReadOnlySpan<byte> span = reader.UnreadSpan;
        if (span.Length >= ProtocolConstants.HeaderSize)
        {
            header = FrameHeader.Read(span);
        }
        else if (!TryReadHeaderSlow(ref reader, out header))
        {
            return FrameReadStatus.NeedMoreData;
        }

        if (header.Length < ProtocolConstants.HeaderSize)
        {
            error = ErrorCode.BadLength;
            return FrameReadStatus.Fatal;
        }

        if (header.Length > (uint)maxFrameBytes)
        {
            error = ErrorCode.FrameTooLarge;
            return FrameReadStatus.Fatal;
        }

        if (reader.Remaining < header.Length)
        {
            return FrameReadStatus.NeedMoreData;
        }

        SequencePosition start = reader.Position;
        ReadOnlySequence<byte> frame = reader.Sequence.Slice(start, header.Length);
        payload = frame.Slice(ProtocolConstants.HeaderSize);
        reader.Advance(header.Length);
        return FrameReadStatus.Frame;
    }

    /// <summary>The cold path: the header straddles segments.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    [SkipLocalsInit]
    private static bool TryReadHeaderSlow(ref SequenceReader<byte> reader, out FrameHeader header)
    {
        Span<byte> bytes = stackalloc byte[ProtocolConstants.HeaderSize];
        if (!reader.TryCopyTo(bytes))
        {
            header = default;
            return false;
        }

        header = FrameHeader.Read(bytes);
        return true;
    }
}
