using System.Buffers;
using System.Buffers.Binary;
using FastInval.Host;
using Microsoft.Extensions.ObjectPool;

namespace FastInval.Tests.Host;

/// <summary>A pool that counts what was taken and not given back, so a leaked request context fails a test.</summary>
internal sealed class LeakCheckingPool : ObjectPool<RequestContext>
{
    private readonly ObjectPool<RequestContext> _inner = new DefaultObjectPool<RequestContext>(new RequestContextPolicy());
    private int _outstanding;

    public int Outstanding => Volatile.Read(ref _outstanding);

    public int Taken { get; private set; }

    public override RequestContext Get()
    {
        Interlocked.Increment(ref _outstanding);
        Taken++;
        return _inner.Get();
    }

    public override void Return(RequestContext obj)
    {
        Interlocked.Decrement(ref _outstanding);
        _inner.Return(obj);
    }
}

/// <summary>Builds a <see cref="ReadOnlySequence{T}"/> from chunks, one segment per chunk.</summary>
internal static class Segments
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    public static ReadOnlySequence<byte> Of(IReadOnlyList<byte[]> chunks)
    {
        if (chunks.Count == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(chunks[0], 0);
        Segment last = first;
        for (int i = 1; i < chunks.Count; i++)
        {
            last = last.Append(chunks[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    public static ReadOnlySequence<byte> OneBytePerSegment(ReadOnlySpan<byte> bytes) =>
        Of([.. bytes.ToArray().Select(b => new[] { b })]);

    public static ReadOnlySequence<byte> SplitAt(byte[] bytes, int offset) => Of([bytes[..offset], bytes[offset..]]);
}

/// <summary>The dispatcher without a socket: framing across segments, replies, pool hygiene and allocation.</summary>
public class DispatcherTests
{
    private static ServerOptions Options => new() { SocketPath = "/nonexistent/unused.sock", MaxFrameBytes = 8192 };

    /// <summary>A stream of every request type (unit ids assume a fresh core: the first unit is 1), plus errors that keep
    /// the stream in step.</summary>
    private static byte[] Stream()
    {
        var frames = new List<byte[]>
        {
            Frames.Hello(1),
            Frames.Create(2, 64, 32, 16),
            Frames.FillIotlb(3, 1, [TranslationEntry.Leaf(TranslationStage.Stage1, 2, 7, 0x5000, 0x9000), TranslationEntry.Leaf(TranslationStage.Stage2, 2, AddressSpace.None, 0x6000, 0xA000, global: false)]),
            Frames.FillDeviceTlb(4, 1, [new DeviceTlbEntry(3, AddressSpace.None, 0x1000, 0x2000)]),
            Frames.FillConfig(5, 1, [new ConfigEntry(ConfigKinds.Context, 9, AddressSpace.None, 2, 0x1234)]),
            Frames.LookupIotlb(6, 1, [new(TranslationStage.Stage1, 2, 7, 0x5ABC), new(TranslationStage.Stage2, 2, AddressSpace.None, 0x7000)]),
            Frames.LookupDeviceTlb(7, 1, [new(3, AddressSpace.None, 0x1800)]),
            Frames.LookupConfig(8, 1, [new(ConfigKinds.Context, 9, AddressSpace.None)]),
            Frames.Execute(9, 1, [InvalidationDescriptor.IotlbDomain(2), InvalidationDescriptor.DeviceTlb(3, AddressSpace.None), default]),
            Frames.FaultPlan(10, 1, 5, 0, 0, [3], [], []),
            Frames.Execute(11, 1, [InvalidationDescriptor.DeviceTlb(3, AddressSpace.None)]),
            Frames.Stats(12, 1),
            Frames.Stats(13, 0),
            Frames.Frame(0x0777, 14, 1, [1, 2, 3]), // unknown type
            Frames.Stats(15, 99), // unknown unit
            Frames.Frame(0x0012, 16, 1, [1, 0, 0, 0]), // EXECUTE with a short payload
            Frames.Destroy(17, 1),
        };
        return [.. frames.SelectMany(f => f)];
    }

    private static (byte[] Output, int Consumed, bool Close) Run(in ReadOnlySequence<byte> input, LeakCheckingPool? pool = null)
    {
        var core = new ServerCore(Options, pool);
        using var session = new Session(core);
        var output = new ArrayBufferWriter<byte>();
        SequencePosition consumed = session.Process(in input, output, int.MaxValue, out _, out bool close);
        return (output.WrittenSpan.ToArray(), (int)input.Slice(0, consumed).Length, close);
    }

    private static List<(ushort Type, ushort Status, uint Id)> Parse(byte[] output)
    {
        var replies = new List<(ushort, ushort, uint)>();
        for (int o = 0; o < output.Length;)
        {
            int length = BinaryPrimitives.ReadInt32LittleEndian(output.AsSpan(o));
            replies.Add((BinaryPrimitives.ReadUInt16LittleEndian(output.AsSpan(o + 4)), BinaryPrimitives.ReadUInt16LittleEndian(output.AsSpan(o + 6)), BinaryPrimitives.ReadUInt32LittleEndian(output.AsSpan(o + 8))));
            o += length;
        }

        return replies;
    }

    [Fact]
    public void OneSegmentStream_GetsOneReplyPerFrameInOrderWithTheExpectedStatuses()
    {
        byte[] stream = Stream();
        (byte[] output, int consumed, bool close) = Run(new ReadOnlySequence<byte>(stream));
        Assert.Equal(stream.Length, consumed);
        Assert.False(close);
        var replies = Parse(output);
        Assert.Equal(Enumerable.Range(1, 17).Select(i => (uint)i), replies.Select(r => r.Id));
        Assert.All(replies, r => Assert.True((r.Type & 0x8000) != 0));
        Assert.Equal([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (ushort)ErrorCode.UnknownType, (ushort)ErrorCode.UnknownUnit, (ushort)ErrorCode.Malformed, 0], replies.Select(r => r.Status));
    }

    [Fact]
    public void OneBytePerSegment_GivesTheSameRepliesAsOneSegment()
    {
        byte[] stream = Stream();
        byte[] expected = Run(new ReadOnlySequence<byte>(stream)).Output;
        (byte[] output, int consumed, _) = Run(Segments.OneBytePerSegment(stream));
        Assert.Equal(stream.Length, consumed);
        Assert.Equal(expected, output);
    }

    [Fact]
    public void SplitAtEveryOffset_GivesTheSameRepliesAsOneSegment()
    {
        byte[] stream = Stream();
        byte[] expected = Run(new ReadOnlySequence<byte>(stream)).Output;
        for (int k = 0; k <= stream.Length; k++)
        {
            (byte[] output, int consumed, _) = Run(Segments.SplitAt(stream, k));
            Assert.Equal(stream.Length, consumed);
            Assert.True(expected.AsSpan().SequenceEqual(output), $"split at {k}");
        }
    }

    [Fact]
    public void BytesArrivingOneAtATime_AreAnsweredExactlyWhenEachFrameCompletes()
    {
        byte[] stream = Stream();
        byte[] expected = Run(new ReadOnlySequence<byte>(stream)).Output;
        var core = new ServerCore(Options);
        using var session = new Session(core);
        var output = new ArrayBufferWriter<byte>();
        var pending = new List<byte>();
        int frameEnd = BinaryPrimitives.ReadInt32LittleEndian(stream);
        for (int i = 0; i < stream.Length; i++)
        {
            pending.Add(stream[i]);
            ReadOnlySequence<byte> seq = Segments.OneBytePerSegment(pending.ToArray());
            int before = output.WrittenCount;
            SequencePosition consumed = session.Process(in seq, output, int.MaxValue, out bool needMore, out bool close);
            Assert.False(close);
            Assert.True(needMore);
            int used = (int)seq.Slice(0, consumed).Length;
            if (i + 1 == frameEnd)
            {
                Assert.Equal(pending.Count, used); // the frame is answered as soon as its last byte is in
                Assert.True(output.WrittenCount > before);
                if (i + 1 < stream.Length)
                {
                    frameEnd += BinaryPrimitives.ReadInt32LittleEndian(stream.AsSpan(frameEnd));
                }
            }
            else
            {
                Assert.Equal(0, used); // need more data: nothing consumed, nothing answered
                Assert.Equal(before, output.WrittenCount);
            }

            pending.RemoveRange(0, used);
        }

        Assert.Equal(expected, output.WrittenSpan.ToArray());
    }

    [Theory]
    [InlineData(0u, ErrorCode.BadLength)]
    [InlineData(15u, ErrorCode.BadLength)]
    [InlineData(8193u, ErrorCode.FrameTooLarge)]
    [InlineData(uint.MaxValue, ErrorCode.FrameTooLarge)]
    public void ALengthThat_CannotBeTrustedGetsAFrameErrorAndCloses(uint length, ErrorCode code)
    {
        byte[] bad = Frames.Stats(42, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(bad, length);
        byte[] stream = [.. Frames.Hello(1), .. bad, .. Frames.Stats(43, 0)];
        (byte[] output, int consumed, bool close) = Run(new ReadOnlySequence<byte>(stream));
        Assert.True(close);
        Assert.Equal(Frames.Hello(1).Length, consumed); // the bad frame and what follows are not consumed
        var replies = Parse(output);
        Assert.Equal(2, replies.Count);
        Assert.Equal((0xFFFF, (ushort)code, 42u), replies[1]);
        uint detail = BinaryPrimitives.ReadUInt32LittleEndian(output.AsSpan(output.Length - 8));
        Assert.Equal(code == ErrorCode.FrameTooLarge ? 8192u : length, detail);
    }

    [Fact]
    public void EveryRequestContext_GoesBackToThePoolWhateverTheOutcome()
    {
        var pool = new LeakCheckingPool();
        byte[] stream = Stream();
        Run(Segments.OneBytePerSegment(stream), pool);
        Assert.Equal(17, pool.Taken);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void SteadyStateRequests_AllocateNothingOneSegmentAndAcrossSegments()
    {
        var core = new ServerCore(Options);
        using var session = new Session(core);
        var output = new ArrayBufferWriter<byte>(1 << 16);
        ReadOnlySequence<byte> setup = new([.. Frames.Hello(1), .. Frames.Create(2, 256, 64, 32)]);
        session.Process(in setup, output, int.MaxValue, out _, out _);
        byte[] work =
        [
            .. Frames.FillIotlb(3, 1, [.. Enumerable.Range(0, 8).Select(i => TranslationEntry.Leaf(TranslationStage.Stage1, 1, 3, (ulong)i << 12, 0x100000 + ((ulong)i << 12)))]),
            .. Frames.FillDeviceTlb(4, 1, [new DeviceTlbEntry(1, 3, 0x4000, 0x8000)]),
            .. Frames.FillConfig(5, 1, [new ConfigEntry(ConfigKinds.PasidEntry, 1, 3, 1, 77)]),
            .. Frames.LookupIotlb(6, 1, [new(TranslationStage.Stage1, 1, 3, 0x2345), new(TranslationStage.Stage1, 1, 4, 0x2345)]),
            .. Frames.LookupDeviceTlb(7, 1, [new(1, 3, 0x4100)]),
            .. Frames.LookupConfig(8, 1, [new(ConfigKinds.PasidEntry, 1, 3)]),
            .. Frames.Execute(9, 1, [.. Enumerable.Range(0, 16).Select(i => InvalidationDescriptor.IotlbRange(1, 3, (ulong)i << 12, ((ulong)i << 12) + 0xFFF)), InvalidationDescriptor.DeviceTlb(1, 3), InvalidationDescriptor.ConfigAll(ConfigKinds.All)]),
            .. Frames.Stats(10, 1),
            .. Frames.Stats(11, 0),
            .. Frames.Stats(12, 77), // an error reply
        ];
        ReadOnlySequence<byte> oneSegment = new(work);
        ReadOnlySequence<byte> manySegments = Segments.Of([.. work.Chunk(7)]);
        foreach (ReadOnlySequence<byte> input in new[] { oneSegment, manySegments })
        {
            void Region()
            {
                output.ResetWrittenCount();
                SequencePosition consumed = session.Process(in input, output, int.MaxValue, out _, out _);
                if (!consumed.Equals(input.End))
                {
                    throw new InvalidOperationException("not all consumed");
                }
            }

            for (int i = 0; i < 20; i++)
            {
                Region(); // warm: pool, scratch buffer, JIT tiers
            }

            Assert.Equal(0, AllocationMeter.Measure(Region));
            Assert.Equal(10, Parse(output.WrittenSpan.ToArray()).Count);
        }
    }
}
