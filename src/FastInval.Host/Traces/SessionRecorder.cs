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

    /// <summary>The region index of the first descriptor the frame being handled came with (−1: none): region
    /// <c>FrameRegionBase + i</c> is the CREATE's region <c>i</c>.</summary>
    public int FrameRegionBase { get; private set; } = -1;

    private uint _regions; // descriptor records written: the next region index

    /// <summary>Before the REQUEST of a CREATE that declares descriptors: one descriptor record per descriptor that
    /// came with it (<paramref name="fds"/>; none came: nothing is recorded), so that a replay can pass the same kinds
    /// of files (docs/traces.md §4 rule 1).</summary>
    public void Passed(ReadOnlySpan<int> fds, bool truncated)
    {
        FrameRegionBase = fds.IsEmpty ? -1 : (int)_regions;
        foreach (int fd in fds)
        {
            long size = UnixFds.FileSize(fd);
            ushort flags = TraceFormat.MemoryPassed;
            if (size < 0)
            {
                flags |= TraceFormat.MemoryNotSizable;
                size = 0;
            }
            else
            {
                nint probe = UnixFds.MapShared(fd, 4096, 0, out _); // what the CREATE will do, on one page
                if (probe == 0)
                {
                    flags |= TraceFormat.MemoryNotMappable;
                }
                else
                {
                    UnixFds.Unmap(probe, 4096);
                }
            }

            if (truncated)
            {
                flags |= TraceFormat.MemoryTruncated;
            }

            _writer.WriteMemory(ConnectionId, _regions++, 0, 0, (ulong)size, [], flags);
        }
    }

    /// <summary>The frame being handled came with no descriptor (or is not a CREATE that declares some).</summary>
    public void NonePassed() => FrameRegionBase = -1;

    /// <summary>A CREATE answered with success mapped <paramref name="mappings"/> for unit <paramref name="unitId"/>:
    /// their initial contents (the bytes that are not zero) go into MEMORY records, and the recorder keeps a copy of
    /// each to find what changes later (rule 2).</summary>
    public void Mapped(uint unitId, ReadOnlySpan<SharedMapping> mappings)
    {
        foreach (SharedMapping m in mappings)
        {
            if (m.TraceRegion >= 0)
            {
                m.AllocateShadow();
                Capture(unitId, m);
            }
        }
    }

    /// <summary>Before a request that makes unit <paramref name="unitId"/> read its shared memory (a register write,
    /// an iommufd ioctl): the bytes of its regions that changed since the last capture (rule 2).</summary>
    public void Capture(uint unitId, ReadOnlySpan<SharedMapping> mappings)
    {
        foreach (SharedMapping m in mappings)
        {
            if (m.TraceRegion >= 0)
            {
                Capture(unitId, m);
            }
        }
    }

    private const int Page = 4096;
    private const int Chunk = 64;

    /// <summary>Compares the mapping with the copy page by page (64-byte chunks in a page that differs), copies each
    /// run of changed chunks into the copy and records it from there; without a copy, records the mapping whole.</summary>
    private unsafe void Capture(uint unitId, SharedMapping m)
    {
        byte* live = (byte*)m.Address;
        byte* shadow = (byte*)m.Shadow;
        ulong length = m.Length;
        ulong runStart = 0, runEnd = 0; // the pending run of changed bytes [runStart, runEnd)
        for (ulong page = 0; page < length; page += Page)
        {
            int n = (int)Math.Min(Page, length - page);
            if (shadow != null && new ReadOnlySpan<byte>(live + page, n).SequenceEqual(new ReadOnlySpan<byte>(shadow + page, n)))
            {
                continue;
            }

            for (int c = 0; c < n; c += Chunk)
            {
                ulong at = page + (ulong)c;
                int k = Math.Min(Chunk, n - c);
                if (shadow != null && new ReadOnlySpan<byte>(live + at, k).SequenceEqual(new ReadOnlySpan<byte>(shadow + at, k)))
                {
                    continue;
                }

                if (runEnd != at || runEnd - runStart >= TraceFormat.MemoryRecordMaxBytes)
                {
                    Flush(unitId, m, runStart, runEnd);
                    runStart = at;
                }

                runEnd = at + (ulong)k;
                if (shadow != null)
                {
                    new ReadOnlySpan<byte>(live + at, k).CopyTo(new Span<byte>(shadow + at, k));
                }
            }
        }

        Flush(unitId, m, runStart, runEnd);
    }

    /// <summary>One MEMORY record of bytes [<paramref name="start"/>, <paramref name="end"/>) of the mapping, from the
    /// copy (what the replay will hold) or, without one, from the mapping.</summary>
    private unsafe void Flush(uint unitId, SharedMapping m, ulong start, ulong end)
    {
        if (end <= start)
        {
            return;
        }

        byte* from = m.Shadow != 0 ? (byte*)m.Shadow : (byte*)m.Address;
        _writer.WriteMemory(ConnectionId, (uint)m.TraceRegion, unitId, m.FileOffset + start, m.FileSize,
            new ReadOnlySpan<byte>(from + start, (int)(end - start)));
    }

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
