using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FastInval.Native;
using FastInval.Uapi;

namespace FastInval.Tests.Native;

/// <summary>The C ABI's managed side: the handle table's generations and EBUSY, status codes instead of exceptions, the
/// struct layouts fastinval.h asserts, and no managed allocation per call.</summary>
[Collection(NativeCollection.Name)]
public sealed unsafe class NativeExportsTests
{
    private static readonly Abi s_abi = Abi.InProcess();

    private static ulong NewEngine()
    {
        var o = new NativeEngineOptions { Size = (uint)sizeof(NativeEngineOptions), IotlbCapacity = 1024, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256, Kernel = -1 };
        ulong h;
        Assert.Equal(0, s_abi.EngineCreate(&o, &h));
        Assert.NotEqual(0UL, h);
        return h;
    }

    [Fact]
    public void Structs_HaveTheSizesAndOffsetsTheHeaderAsserts()
    {
        Assert.Equal(32, sizeof(InvalidationDescriptor));
        Assert.Equal(24, sizeof(NativeEngineOptions));
        Assert.Equal(32, sizeof(NativeIotlbEntry));
        Assert.Equal(32, sizeof(NativeDeviceTlbEntry));
        Assert.Equal(24, sizeof(NativeConfigEntry));
        Assert.Equal(24, sizeof(NativeTranslation));
        Assert.Equal(24, sizeof(NativeBatchResult));
        Assert.Equal(32, sizeof(NativeEngineCounts));
        Assert.Equal(64, sizeof(NativeFaultPlan));
        Assert.Equal(32, sizeof(NativeIommufdOptions));
        var e = default(NativeIotlbEntry);
        Assert.Equal(24, (int)((byte*)&e.Stage - (byte*)&e));
        var d = default(NativeDeviceTlbEntry);
        Assert.Equal(24, (int)((byte*)&d.Rights - (byte*)&d));
        var c = default(NativeConfigEntry);
        Assert.Equal(18, (int)((byte*)&c.Kind - (byte*)&c));
        var p = default(NativeFaultPlan);
        Assert.Equal(48, (int)((byte*)&p.TimeoutSourceIdCount - (byte*)&p));
    }

    [Fact]
    public void HandleTable_DestroyedHandle_StaysRefusedAfterItsSlotIsReused()
    {
        ulong first = NewEngine();
        Assert.Equal(0, s_abi.EngineDestroy(first));
        Assert.Equal(-NativeErrno.EBADF, s_abi.EngineDestroy(first));
        ulong second = NewEngine();
        NativeEngineCounts counts;
        Assert.Equal(-NativeErrno.EBADF, s_abi.EngineCounts(first, &counts));
        Assert.Equal(0, s_abi.EngineCounts(second, &counts));
        Assert.Equal(-NativeErrno.EBADF, s_abi.IommufdDestroy(second)); // wrong kind
        Assert.Equal(-NativeErrno.EBADF, s_abi.EngineCounts(second ^ (1UL << 40), &counts)); // forged generation
        Assert.Equal(-NativeErrno.EBADF, s_abi.EngineCounts(second + 1, &counts)); // a slot never issued
        Assert.Equal(0, s_abi.EngineDestroy(second));
    }

    [Fact]
    public void HandleTable_RemoveWhileACallIsInFlight_EbusyAndTheHandleStaysValid()
    {
        ulong h = NewEngine();
        Assert.Equal(0, HandleTable.Enter(h, HandleKind.Engine, out InvalidationEngine? engine));
        Assert.NotNull(engine);
        Assert.Equal(-NativeErrno.EBUSY, s_abi.EngineDestroy(h));
        HandleTable.Leave(h);
        NativeEngineCounts counts;
        Assert.Equal(0, s_abi.EngineCounts(h, &counts));
        Assert.Equal(0, s_abi.EngineDestroy(h));
        Assert.Equal(-NativeErrno.EBADF, HandleTable.Enter(h, HandleKind.Engine, out engine));
    }

    [Fact]
    public void HandleTable_ConcurrentCallsAndDestroy_NeverCrashAndEveryCallGetsOkOrEbadf()
    {
        ulong h = NewEngine();
        int bad = 0, other = 0;
        var worker = new Thread(() =>
        {
            NativeTranslation t;
            for (int i = 0; i < 200_000; i++)
            {
                int rc = s_abi.IotlbLookup(h, 1, 1, 1, 0x1000, &t);
                if (rc == -NativeErrno.EBADF)
                {
                    bad++;
                    break;
                }

                if (rc != 0)
                {
                    other++;
                }
            }
        });
        worker.Start();
        int destroy;
        while ((destroy = s_abi.EngineDestroy(h)) == -NativeErrno.EBUSY)
        {
            Thread.Yield();
        }

        worker.Join();
        Assert.Equal(0, destroy);
        Assert.Equal(0, other);
        Assert.True(bad <= 1);
    }

    [Fact]
    public void EngineCreate_HostErrors_AreCodesNotExceptions()
    {
        var o = new NativeEngineOptions { Size = (uint)sizeof(NativeEngineOptions), IotlbCapacity = int.MaxValue, Kernel = -1 };
        ulong h = 77;
        int rc = s_abi.EngineCreate(&o, &h); // far too large: OutOfMemory or an argument error, never a throw
        Assert.True(rc is -NativeErrno.ENOMEM or -NativeErrno.EINVAL, $"rc {rc}");
        Assert.Equal(0UL, h);
        Assert.Equal(-NativeErrno.EFAULT, s_abi.EngineCreate(null, null));
    }

    [Fact]
    public void Version_IsTheHeaderVersion() => Assert.Equal(0x000100u, s_abi.Version());

    [Fact]
    public void HotEntryPoints_AllocateNothingPerCall()
    {
        ulong h = NewEngine();
        var entry = new NativeIotlbEntry { InputAddress = 0x1000, OutputAddress = 0x2000, AddressSpaceId = 3, DomainId = 2, Rights = 3, Stage = 1, Granule = 1, SizeLog2 = 12 };
        var descriptors = new InvalidationDescriptor[64];
        for (int i = 0; i < descriptors.Length; i++)
        {
            descriptors[i] = InvalidationDescriptor.IotlbRange(2, 3, (ulong)i << 12, ((ulong)i << 12) + 0xFFF);
        }

        var statuses = new InvalidationStatus[64];
        int wrong = 0; // the region asserts nothing itself: xunit's Assert.Equal allocates
        void Region()
        {
            NativeTranslation t;
            NativeBatchResult r;
            NativeIotlbEntry e = entry;
            fixed (InvalidationDescriptor* d = descriptors)
            fixed (InvalidationStatus* s = statuses)
            {
                for (int i = 0; i < 100; i++)
                {
                    wrong += s_abi.IotlbFill(h, &e) < 0 ? 1 : 0;
                    wrong += s_abi.IotlbLookup(h, 1, 2, 3, 0x1000, &t) != 1 ? 1 : 0;
                    wrong += s_abi.Execute(h, d, 64, s, &r) != 0 || r.Ok != 64 ? 1 : 0;
                    wrong += s_abi.IotlbLookup(h, 1, 2, 3, 0x1000, &t) != 0 ? 1 : 0;
                }
            }
        }

        Region(); // warm-up
        Assert.Equal(0, AllocationMeter.Measure(Region));
        Assert.Equal(0, wrong);
        Assert.Equal(0, s_abi.EngineDestroy(h));
    }

    [Fact]
    public void IommufdIoctl_MockInvalidateInProcessMemory_AllocatesNothingOnceWarm()
    {
        ulong created;
        Assert.Equal(0, s_abi.IommufdCreate(null, &created));
        ulong fd = created;
        uint hwpt = MockNested(fd);
        uint* entries = stackalloc uint[8]; // four { flags, iotlb_id } entries
        for (uint i = 0; i < 4; i++)
        {
            entries[2 * i] = 0;
            entries[(2 * i) + 1] = i;
        }

        byte* inv = stackalloc byte[32];
        int wrong = 0;
        void Region()
        {
            for (int i = 0; i < 100; i++)
            {
                var span = new Span<byte>(inv, 32);
                span.Clear();
                BinaryPrimitives.WriteUInt32LittleEndian(span, 32);
                BinaryPrimitives.WriteUInt32LittleEndian(span[4..], hwpt);
                BinaryPrimitives.WriteUInt64LittleEndian(span[8..], (ulong)entries);
                BinaryPrimitives.WriteUInt32LittleEndian(span[16..], InvalidateDataType.Selftest);
                BinaryPrimitives.WriteUInt32LittleEndian(span[20..], 8);
                BinaryPrimitives.WriteUInt32LittleEndian(span[24..], 4);
                wrong += s_abi.IommufdIoctl(fd, IommufdRequest.HwptInvalidate, inv) != 0 ? 1 : 0;
                wrong += BinaryPrimitives.ReadUInt32LittleEndian(span[24..]) != 4 ? 1 : 0;
            }
        }

        Region();
        Assert.Equal(0, AllocationMeter.Measure(Region));
        Assert.Equal(0, wrong);
        Assert.Equal(0, s_abi.IommufdDestroy(fd));
    }

    /// <summary>IOAS, mock device, nest parent and a mock nested HWPT, all through the C ABI ioctl on real memory.</summary>
    private static uint MockNested(ulong fd)
    {
        byte[] ioas = [12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.Equal(0, Ioctl(fd, IommufdRequest.IoasAlloc, ioas));
        byte[] md = new byte[72];
        Put(md, 0, 72);
        Put(md, 4, MockSelftest.OpMockDomain);
        Put(md, 8, Get(ioas, 8));
        Assert.Equal(0, Ioctl(fd, IommufdRequest.TestCmd, md));
        uint dev = Get(md, 24);
        byte[] parent = new byte[48];
        Put(parent, 0, 48);
        Put(parent, 4, (uint)HwptAllocFlags.NestParent);
        Put(parent, 8, dev);
        Put(parent, 12, Get(ioas, 8));
        Assert.Equal(0, Ioctl(fd, IommufdRequest.HwptAlloc, parent));
        uint data = MockSelftest.IotlbDefault;
        byte[] nested = new byte[48];
        Put(nested, 0, 48);
        Put(nested, 8, dev);
        Put(nested, 12, Get(parent, 16));
        Put(nested, 24, HwptDataType.Selftest);
        Put(nested, 28, 4);
        BinaryPrimitives.WriteUInt64LittleEndian(nested.AsSpan(32), (ulong)Unsafe.AsPointer(ref data));
        Assert.Equal(0, Ioctl(fd, IommufdRequest.HwptAlloc, nested));
        return Get(nested, 16);
    }

    private static int Ioctl(ulong fd, uint request, byte[] arg)
    {
        fixed (byte* p = arg)
        {
            return s_abi.IommufdIoctl(fd, request, p);
        }
    }

    private static void Put(byte[] a, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(offset), value);

    private static uint Get(byte[] a, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(a.AsSpan(offset));
}

/// <summary>The native tests share the process-wide handle table: they run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NativeCollection
{
    public const string Name = "Native C ABI";
}
