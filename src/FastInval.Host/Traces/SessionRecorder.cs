using System.Buffers;
using System.Buffers.Binary;

namespace FastInval.Host.Traces;

/// <summary>
/// One connection's tap into a <see cref="TraceWriter"/>: the session hands it every frame it read (<see cref="Received"/>)
/// and writes its output through <see cref="Wrap"/>, whose <see cref="IBufferWriter{T}.Advance"/> records the bytes
/// committed, split into frames by their <c>length</c> fields, whatever the frame type (replies, FRAME_ERROR, events).
/// Allocates nothing per frame.
/// </summary>
internal sealed class SessionRecorder : IBufferWriter<byte>
{
    private readonly TraceWriter _writer;
    private IBufferWriter<byte>? _inner;
    private Memory<byte> _lastMemory;
    private byte[] _carry = [];
    private int _carried;

    public SessionRecorder(TraceWriter writer)
    {
        _writer = writer;
        ConnectionId = writer.NextConnectionId();
        writer.WriteConnect(ConnectionId);
    }

    /// <summary>The connection id of this session's records.</summary>
    public uint ConnectionId { get; }

    /// <summary>A frame the session read (its header only when the server could not read it: FRAME_ERROR).</summary>
    public void Received(in ReadOnlySequence<byte> frame) => _writer.WriteFrame(TraceRecordKind.Request, ConnectionId, in frame);

    /// <summary>This recorder, writing into <paramref name="output"/> (the same object every call: nothing allocated).</summary>
    public IBufferWriter<byte> Wrap(IBufferWriter<byte> output)
    {
        _inner = output;
        return this;
    }

    /// <summary>The session closed: its DISCONNECT record, and the buffer written out (a server killed later keeps
    /// every whole session).</summary>
    public void Closed()
    {
        _writer.WriteDisconnect(ConnectionId);
        _writer.Flush();
    }

    public Memory<byte> GetMemory(int sizeHint = 0) => _lastMemory = _inner!.GetMemory(sizeHint);

    public Span<byte> GetSpan(int sizeHint = 0) => (_lastMemory = _inner!.GetMemory(sizeHint)).Span;

    public void Advance(int count)
    {
        Sent(_lastMemory.Span[..count]);
        _lastMemory = default;
        _inner!.Advance(count);
    }

    /// <summary>Records the committed bytes, frame by frame; a frame split across two commits is carried over.</summary>
    private void Sent(ReadOnlySpan<byte> bytes)
    {
        while (_carried > 0 && !bytes.IsEmpty)
        {
            int take = Math.Min(Need(_carry.AsSpan(0, _carried)) - _carried, bytes.Length);
            Carry(bytes[..take]);
            bytes = bytes[take..];
            if (_carried == Need(_carry.AsSpan(0, _carried)))
            {
                _writer.WriteFrame(TraceRecordKind.Reply, ConnectionId, _carry.AsSpan(0, _carried));
                _carried = 0;
            }
        }

        while (bytes.Length >= ProtocolConstants.HeaderSize)
        {
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
            if (length < ProtocolConstants.HeaderSize)
            {
                length = ProtocolConstants.HeaderSize; // never written by the server; recorded as a bare header
            }

            if (length > bytes.Length)
            {
                break;
            }

            _writer.WriteFrame(TraceRecordKind.Reply, ConnectionId, bytes[..(int)length]);
            bytes = bytes[(int)length..];
        }

        if (!bytes.IsEmpty)
        {
            Carry(bytes);
        }
    }

    /// <summary>Bytes the carried frame needs in all: its header first, then its length.</summary>
    private static int Need(ReadOnlySpan<byte> carried) =>
        carried.Length < ProtocolConstants.HeaderSize ? ProtocolConstants.HeaderSize
            : (int)Math.Max(ProtocolConstants.HeaderSize, BinaryPrimitives.ReadUInt32LittleEndian(carried));

    private void Carry(ReadOnlySpan<byte> bytes)
    {
        if (_carry.Length < _carried + bytes.Length)
        {
            Array.Resize(ref _carry, Math.Max(_carried + bytes.Length, 256));
        }

        bytes.CopyTo(_carry.AsSpan(_carried));
        _carried += bytes.Length;
    }
}
