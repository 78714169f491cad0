using System.Buffers.Binary;
using FastInval.Host;
using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Host;

/// <summary>An iommufd-context unit over the wire: its user memory is a memfd the client shares (the pointers inside
/// the ioctl arguments are user addresses of it, as the CREATE reply gives them), and every ioctl's result and
/// written-back argument equal an in-process <see cref="Iommufd"/> run with the same calls on a copy of that memory.</summary>
public class IommufdUnitTests
{
    [Fact]
    public async Task IoctlsOverTheWire_MatchAnInProcessContextOverTheSameUserMemory()
    {
        await using var server = new TestServer();
        using var ram = new SharedRam($"fastinval-test-iommufd-{Environment.ProcessId}-{Guid.NewGuid():N}", 16 * 1024);
        using WireClient c = server.Connect(minor: 1);
        byte[] reply = c.OkWithEvents(SharedFrames.CreateIommufd(c.NextId(), [(ulong)ram.Length], [(1, true, 0x10), (2, false, 0x100)]), out _, ram.Fd);
        Assert.Equal(8 + 8 + 8, reply.Length);
        uint unit = BinaryPrimitives.ReadUInt32LittleEndian(reply);
        ulong user = BinaryPrimitives.ReadUInt64LittleEndian(reply.AsSpan(8));

        byte[] twinBytes = new byte[ram.Length];
        var twinMemory = new UserMemory();
        using var twin = new Iommufd(twinMemory, new IommufdOptions
        {
            Selftest = true,
            EngineOptions = new EngineOptions { IotlbCapacity = 256, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
        });
        Assert.Equal(user, twinMemory.Map(twinBytes)); // the same user address: the same pointers work in both
        Assert.Equal(twin.AddDevice(IommuKind.IntelVtd, 0x10, ats: true), BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(16)));
        Assert.Equal(twin.AddDevice(IommuKind.ArmSmmuV3, 0x100, ats: false), BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(20)));

        // Runs one ioctl both ways; returns the wire's result and argument after the call.
        (int Result, byte[] Arg) Both(uint request, byte[] arg)
        {
            byte[] p = c.OkWithEvents(SharedFrames.IommufdIoctl(c.NextId(), unit, request, arg), out List<WireEvent> events);
            Assert.Empty(events);
            int result = BinaryPrimitives.ReadInt32LittleEndian(p);
            Assert.Equal((uint)arg.Length, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(4)));
            byte[] after = p.AsSpan(8).ToArray();
            byte[] twinArg = (byte[])arg.Clone();
            Assert.Equal(twin.Ioctl(request, twinArg), result);
            Assert.Equal(twinArg, after);
            Assert.Equal(twinBytes, ram.Bytes.ToArray()); // what the ioctl wrote into user memory, too
            return (result, after);
        }

        void Put(int offset, ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(ram.Bytes[offset..]);
            bytes.CopyTo(twinBytes.AsSpan(offset));
        }

        (int rc, byte[] a) = Both(IommufdRequest.IoasAlloc, Ufd.Struct(12));
        Assert.Equal(0, rc);
        uint ioas = Ufd.U32(a, 8);
        (rc, a) = Both(IommufdRequest.TestCmd, Ufd.Struct(72, (4, MockSelftest.OpMockDomain), (8, ioas)));
        Assert.Equal(0, rc);
        uint mockDevice = Ufd.U32(a, 24);
        (rc, a) = Both(IommufdRequest.HwptAlloc, Ufd.Struct(48, (4, (uint)HwptAllocFlags.NestParent), (8, mockDevice), (12, ioas)));
        Assert.Equal(0, rc);
        uint parent = Ufd.U32(a, 16);

        // A selftest nested HWPT whose driver data (the IOTLB value) lies in the shared memory.
        Put(0, BitConverter.GetBytes(0x1234u));
        byte[] alloc = Ufd.Struct(48, (8, mockDevice), (12, parent), (24, HwptDataType.Selftest), (28, 4));
        BinaryPrimitives.WriteUInt64LittleEndian(alloc.AsSpan(32), user);
        (rc, a) = Both(IommufdRequest.HwptAlloc, alloc);
        Assert.Equal(0, rc);
        uint nested = Ufd.U32(a, 16);
        Assert.Equal(0, Both(IommufdRequest.TestCmd, Ufd.Struct(72, (4, MockSelftest.OpMdCheckIotlb), (8, nested), (16, 1), (20, 0x1234))).Result);

        // Invalidate slot 1 with an entry array in shared memory; entry_num is written back.
        byte[] entry = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(4), 1);
        Put(0x100, entry);
        (rc, a) = Both(IommufdRequest.HwptInvalidate, Ufd.InvalidateStruct(nested, user + 0x100, InvalidateDataType.Selftest, 8, 1));
        Assert.Equal(0, rc);
        Assert.Equal(1u, Ufd.U32(a, 24));
        Assert.Equal(0, Both(IommufdRequest.TestCmd, Ufd.Struct(72, (4, MockSelftest.OpMdCheckIotlb), (8, nested), (16, 1), (20, 0))).Result);
        Assert.Equal(0, Both(IommufdRequest.TestCmd, Ufd.Struct(72, (4, MockSelftest.OpMdCheckIotlb), (8, nested), (16, 2), (20, 0x1234))).Result);

        // A pointer past the shared memory faults, as in the kernel; an unknown ioctl is ENOTTY.
        (rc, _) = Both(IommufdRequest.HwptInvalidate, Ufd.InvalidateStruct(nested, user + (ulong)ram.Length - 4, InvalidateDataType.Selftest, 8, 1));
        Assert.Equal(-Errno.EFAULT, rc);
        Assert.Equal(-Errno.ENOTTY, Both(0x3BFF, Ufd.Struct(8)).Result);

        // The engine of the kind CREATE named (VT-d) answers FILL and STATS.
        byte[] stats = c.Ok(Frames.Stats(c.NextId(), unit));
        Assert.Equal(256u, BinaryPrimitives.ReadUInt32LittleEndian(stats));
        c.Ok(Frames.Destroy(c.NextId(), unit));
        Assert.Equal(1, ram.MappingsInProcess());
    }

    [Fact]
    public async Task HelloAt1_1AdvertisesTheSharedMemoryLimitsAnd1_0_Stays1_0()
    {
        await using var server = new TestServer();
        using WireClient c11 = server.Connect(minor: 1);
        byte[] p = c11.HelloReply.Payload;
        Assert.Equal(40, p.Length);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(p.AsSpan(2)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(24))); // server_flags: shared-memory units
        Assert.Equal(64u, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(32)));
        Assert.Equal(8u, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(36)));

        using WireClient c10 = server.Connect();
        Assert.Equal(32, c10.HelloReply.Payload.Length);
        uint engine = c10.CreateEngine();
        WireReply r = c10.Call(SharedFrames.ReadRegister(c10.NextId(), engine, 0, 4));
        Assert.Equal(((ushort)ErrorCode.UnknownType, 0x20u), (r.Status, r.Detail));
    }
}
