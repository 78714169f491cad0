using System.Buffers;
using System.Buffers.Binary;
using FastInval.Host;

namespace FastInval.Fuzz.Targets;

/// <summary>
/// The server's frame decoder and dispatcher (no socket): a byte stream goes to a fresh connection session, once as
/// one segment and once cut into small segments. Oracles: nothing throws; both runs write byte-identical replies and
/// consume the same bytes; there is exactly one well-formed reply per frame read (reply type = request type | 0x8000
/// with the request's id, or one FRAME_ERROR, after which nothing more is read); no reply is INTERNAL; every request
/// context goes back to its pool; and destroying the session frees every unit it created.
/// </summary>
/// <remarks>
/// Input layout:
/// <code>
/// [0]    bits 0-3: segment size of the second run = 1 + value (1..16 bytes);
///        bit 7: prepend HELLO (id 0xFFFFFFF0) and CREATE of a small engine (id 0xFFFFFFF1), so frames for unit 1 reach it
/// [1..]  the byte stream: frames as docs/protocol.md lays them out (header: u32 length, u16 type, u16 status,
///        u32 request id, u32 unit id; then the payload)
/// </code>
/// The session's limits are small (frames up to 2,048 bytes, 2 units, caches of at most 64 entries) so inputs stay cheap.
/// </remarks>
public sealed class FrameDecoder : IFuzzer
{
    private static readonly ServerOptions s_options = new()
    {
        SocketPath = "/nonexistent/fuzz.sock",
        MaxFrameBytes = 2048,
        MaxUnitsPerConnection = 2,
        MaxCacheEntries = 64,
    };

    public void FuzzTarget(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            return;
        }

        int segment = 1 + (input[0] & 0xF);
        byte[] stream = (input[0] & 0x80) != 0 ? [.. Prelude(), .. input[1..]] : input[1..].ToArray();
        (byte[] whole, long consumedWhole, int unitsWhole) = Run(new ReadOnlySequence<byte>(stream));
        (byte[] cut, long consumedCut, _) = Run(Chunks(stream, segment));
        if (!whole.AsSpan().SequenceEqual(cut) || consumedWhole != consumedCut)
        {
            throw new OracleException($"segment size {segment} changed the replies ({whole.Length} vs {cut.Length} bytes) or the bytes consumed ({consumedWhole} vs {consumedCut})");
        }

        CheckReplies(stream, consumedWhole, whole);
        if (unitsWhole != 0)
        {
            throw new OracleException($"{unitsWhole} units left after the session was disposed");
        }
    }

    private static byte[] Prelude()
    {
        byte[] p = new byte[24 + 40];
        BinaryPrimitives.WriteUInt32LittleEndian(p, 24);
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(4), MessageType.Hello);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(8), 0xFFFFFFF0);
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(16), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(24), 40);
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(28), MessageType.Create);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(32), 0xFFFFFFF1);
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(40), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(48), 16);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(52), 8);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(56), 8);
        return p;
    }

    private static (byte[] Output, long Consumed, int UnitsLeft) Run(in ReadOnlySequence<byte> input)
    {
        var pool = new CountingPool();
        var core = new ServerCore(s_options, pool);
        var output = new ArrayBufferWriter<byte>();
        long consumed;
        using (var session = new Session(core))
        {
            SequencePosition position = session.Process(in input, output, int.MaxValue, out _, out _);
            consumed = input.Slice(0, position).Length;
        }

        if (pool.Outstanding != 0)
        {
            throw new OracleException($"{pool.Outstanding} request contexts not returned to the pool");
        }

        return (output.WrittenSpan.ToArray(), consumed, core.Units);
    }

    /// <summary>Walks the frames the session consumed and the replies it wrote, pairing them.</summary>
    private static void CheckReplies(byte[] stream, long consumed, byte[] output)
    {
        int reply = 0, frame = 0;
        while (frame < consumed)
        {
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(stream.AsSpan(frame));
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(stream.AsSpan(frame + 4));
            uint id = BinaryPrimitives.ReadUInt32LittleEndian(stream.AsSpan(frame + 8));
            ReadReply(output, ref reply, out ushort replyType, out ushort status, out uint replyId);
            if (replyType != (ushort)(type | MessageType.ReplyBit) || replyId != id || status == (ushort)ErrorCode.Internal || status > (ushort)ErrorCode.Internal)
            {
                throw new OracleException($"frame at {frame} (type 0x{type:x4}, id {id}) got reply type 0x{replyType:x4}, id {replyId}, status {status}");
            }

            frame += (int)length;
        }

        if (reply < output.Length)
        {
            // Only a FRAME_ERROR may follow, for the header that could not be trusted, and nothing after it.
            ReadReply(output, ref reply, out ushort replyType, out ushort status, out uint replyId);
            if (replyType != MessageType.FrameError || status is not ((ushort)ErrorCode.BadLength or (ushort)ErrorCode.FrameTooLarge) ||
                replyId != BinaryPrimitives.ReadUInt32LittleEndian(stream.AsSpan(frame + 8)) || reply != output.Length)
            {
                throw new OracleException($"unexpected trailing reply type 0x{replyType:x4} status {status}");
            }
        }
    }

    private static void ReadReply(byte[] output, ref int at, out ushort type, out ushort status, out uint id)
    {
        if (output.Length - at < 16)
        {
            throw new OracleException($"a frame at {at} got no reply");
        }

        uint length = BinaryPrimitives.ReadUInt32LittleEndian(output.AsSpan(at));
        if (length < 16 || length > output.Length - at)
        {
            throw new OracleException($"reply at {at} has length {length}");
        }

        type = BinaryPrimitives.ReadUInt16LittleEndian(output.AsSpan(at + 4));
        status = BinaryPrimitives.ReadUInt16LittleEndian(output.AsSpan(at + 6));
        id = BinaryPrimitives.ReadUInt32LittleEndian(output.AsSpan(at + 8));
        if (status != 0 && length != 24)
        {
            throw new OracleException($"error reply of {length} bytes");
        }

        at += (int)length;
    }

    private static ReadOnlySequence<byte> Chunks(byte[] bytes, int size)
    {
        if (bytes.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Chunk(bytes.AsMemory(0, Math.Min(size, bytes.Length)), 0);
        Chunk last = first;
        for (int at = size; at < bytes.Length; at += size)
        {
            last = last.Append(bytes.AsMemory(at, Math.Min(size, bytes.Length - at)));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Chunk : ReadOnlySequenceSegment<byte>
    {
        public Chunk(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Chunk Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Chunk(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    private sealed class CountingPool : Microsoft.Extensions.ObjectPool.ObjectPool<RequestContext>
    {
        public int Outstanding { get; private set; }

        public override RequestContext Get()
        {
            Outstanding++;
            return new RequestContext();
        }

        public override void Return(RequestContext obj) => Outstanding--;
    }
}
