using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastInval.Native;
using FastInval.Vtd;

namespace FastInval.Tests.Native;

/// <summary>The units' section of the C ABI on the managed side: the struct layouts fastinval.h asserts, handle rules
/// (a unit's handle as its engine's, an engine kept alive by its units, destroy racing calls), and no managed allocation
/// per call in steady state for register accesses that run the queue, interrupts, notifier delivery, guest-memory access
/// and state images.</summary>
[Collection(NativeCollection.Name)]
public sealed unsafe class NativeUnitsTests
{
    private const uint QueueGpa = 0x10000, StatusGpa = 0x20000, MsiGpa = 0x30000;
    private const uint Iqa = 0x90, Iqt = 0x88, Iqh = 0x80, Gcmd = 0x18, Ics = 0x9C, Iectl = 0xA0, Ieaddr = 0xA8, Iedata = 0xA4;
    private const uint Qie = 1u << 26;

    private static int s_interrupts;
    private static int s_records;

    [UnmanagedCallersOnly]
    private static void OnInterrupt(void* user, uint kind, ulong address, uint data) => s_interrupts++;

    [UnmanagedCallersOnly]
    private static void OnRecords(void* user, InvalidationRecord* records, nuint count) => s_records += (int)count;

    private static ulong NewMemory(byte* ram, ulong length)
    {
        ulong mem;
        Assert.Equal(0, ((delegate* unmanaged<ulong*, int>)&NativeExports.GuestMemoryCreate)(&mem));
        Assert.Equal(0, ((delegate* unmanaged<ulong, ulong, void*, ulong, int>)&NativeExports.GuestMemoryMap)(mem, 0, ram, length));
        return mem;
    }

    private static int VtdWrite(ulong unit, uint offset, uint size, ulong value) =>
        ((delegate* unmanaged<ulong, uint, uint, ulong, int>)&NativeExports.VtdWrite)(unit, offset, size, value);

    private static int VtdRead(ulong unit, uint offset, uint size, ulong* value) =>
        ((delegate* unmanaged<ulong, uint, uint, ulong*, int>)&NativeExports.VtdRead)(unit, offset, size, value);

    private static int SmmuWrite(ulong unit, uint offset, uint size, ulong value) =>
        ((delegate* unmanaged<ulong, uint, uint, ulong, int>)&NativeExports.SmmuWrite)(unit, offset, size, value);

    private static int SmmuRead(ulong unit, uint offset, uint size, ulong* value) =>
        ((delegate* unmanaged<ulong, uint, uint, ulong*, int>)&NativeExports.SmmuRead)(unit, offset, size, value);

    private static int VtdDestroy(ulong unit) => ((delegate* unmanaged<ulong, int>)&NativeExports.VtdDestroy)(unit);

    private static int MemoryDestroy(ulong mem) => ((delegate* unmanaged<ulong, int>)&NativeExports.GuestMemoryDestroy)(mem);

    private static void Put(byte* ram, ulong gpa, ulong lo, ulong hi)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(ram + gpa, 8), lo);
        BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(ram + gpa + 8, 8), hi);
    }

    [Fact]
    public void Structs_HaveTheSizesAndOffsetsTheHeaderAsserts()
    {
        Assert.Equal(96, sizeof(NativeVtdOptions));
        Assert.Equal(96, sizeof(NativeSmmuOptions));
        Assert.Equal(32, sizeof(NativeDeviceTlbSink));
        Assert.Equal(64, sizeof(NativeDeviceTlbRequest));
        var q = default(NativeDeviceTlbRequest);
        Assert.Equal(8, (int)((byte*)&q.Descriptor - (byte*)&q));
        Assert.Equal(40, (int)((byte*)&q.Index - (byte*)&q));
        Assert.Equal(48, (int)((byte*)&q.Ordinal - (byte*)&q));
        Assert.Equal(56, (int)((byte*)&q.Source - (byte*)&q));
        var k = default(NativeDeviceTlbSink);
        Assert.Equal(16, (int)((byte*)&k.TimeoutNs - (byte*)&k));
        Assert.Equal(24, (int)((byte*)&k.MaxOutstanding - (byte*)&k));
        Assert.Equal(32, sizeof(NativeNotifierFilter));
        Assert.Equal(48, sizeof(InvalidationRecord));
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<InvalidationRecord>());
        var v = default(NativeVtdOptions);
        Assert.Equal(8, (int)((byte*)&v.HostAddressWidth - (byte*)&v));
        Assert.Equal(16, (int)((byte*)&v.Engine - (byte*)&v));
        Assert.Equal(40, (int)((byte*)&v.FaultPlan - (byte*)&v));
        Assert.Equal(48, (int)((byte*)&v.Interrupt - (byte*)&v));
        Assert.Equal(56, (int)((byte*)&v.InterruptUser - (byte*)&v));
        Assert.Equal(64, (int)((byte*)&v.DeviceTlb - (byte*)&v));
        var s = default(NativeSmmuOptions);
        Assert.Equal(8, (int)((byte*)&s.SubstreamIdBits - (byte*)&s));
        Assert.Equal(16, (int)((byte*)&s.Engine - (byte*)&s));
        Assert.Equal(48, (int)((byte*)&s.Interrupt - (byte*)&s));
        Assert.Equal(64, (int)((byte*)&s.DeviceTlb - (byte*)&s));
        Assert.Equal(96, sizeof(NativeAmdViOptions));
        var a = default(NativeAmdViOptions);
        Assert.Equal(8, (int)((byte*)&a.Reserved - (byte*)&a));
        Assert.Equal(16, (int)((byte*)&a.Engine - (byte*)&a));
        Assert.Equal(40, (int)((byte*)&a.FaultPlan - (byte*)&a));
        Assert.Equal(48, (int)((byte*)&a.Interrupt - (byte*)&a));
        Assert.Equal(56, (int)((byte*)&a.InterruptUser - (byte*)&a));
        Assert.Equal(64, (int)((byte*)&a.DeviceTlb - (byte*)&a));
        var f = default(NativeNotifierFilter);
        Assert.Equal(8, (int)((byte*)&f.AddressSpaceId - (byte*)&f));
        Assert.Equal(16, (int)((byte*)&f.First - (byte*)&f));
        var r = new InvalidationRecord(default, InvalidationSource.VtdQueue, 0x1122, InvalidationStatus.CompletionError);
        byte* p = (byte*)&r;
        Assert.Equal(0x1122UL, *(ulong*)(p + 32));
        Assert.Equal((byte)InvalidationSource.VtdQueue, p[40]);
        Assert.Equal((byte)InvalidationStatus.CompletionError, p[41]);
        Assert.Equal(136, VtdIommu.StateSize);
        Assert.Equal(128, FastInval.Smmu.SmmuV3.StateSize);
        Assert.Equal(144, FastInval.AmdVi.AmdViIommu.StateSize);
        Assert.Equal(4, (int)InvalidationSource.AmdViCommandBuffer);
    }

    [Fact]
    public void UnitHandle_StandsForItsEngine_AndKeepsACallersEngineAlive()
    {
        byte* ram = (byte*)NativeMemory.AllocZeroed(1 << 20);
        try
        {
            ulong mem = NewMemory(ram, 1 << 20);
            ulong engine;
            Assert.Equal(0, ((delegate* unmanaged<NativeEngineOptions*, ulong*, int>)&NativeExports.EngineCreate)(null, &engine));
            ulong unit;
            var create = (delegate* unmanaged<ulong, NativeVtdOptions*, ulong, ulong*, int>)&NativeExports.VtdCreate;
            Assert.Equal(0, create(mem, null, engine, &unit));
            Assert.Equal(0, HandleTable.Enter(unit, HandleKind.Engine, out InvalidationEngine? viaUnit));
            Assert.Equal(0, HandleTable.Enter(engine, HandleKind.Engine, out InvalidationEngine? direct));
            Assert.Same(direct, viaUnit);
            HandleTable.Leave(engine);
            Assert.Equal(-NativeErrno.EBUSY, VtdDestroy(unit)); // a call through the unit's handle is in flight
            HandleTable.Leave(unit);
            var destroyEngine = (delegate* unmanaged<ulong, int>)&NativeExports.EngineDestroy;
            Assert.Equal(-NativeErrno.EBUSY, destroyEngine(engine));
            Assert.Equal(-NativeErrno.EBADF, destroyEngine(unit));
            Assert.Equal(0, VtdDestroy(unit));
            Assert.Equal(-NativeErrno.EBADF, HandleTable.Enter(unit, HandleKind.Engine, out viaUnit));
            Assert.Equal(0, destroyEngine(engine));
            Assert.Equal(0, MemoryDestroy(mem));
        }
        finally
        {
            NativeMemory.Free(ram);
        }
    }

    [Fact]
    public void VtdDestroy_RacingRegisterWritesOnAnotherThread_EveryCallGetsOkOrEbadf()
    {
        byte* ram = (byte*)NativeMemory.AllocZeroed(1 << 20);
        try
        {
            ulong mem = NewMemory(ram, 1 << 20);
            ulong created;
            Assert.Equal(0, ((delegate* unmanaged<ulong, NativeVtdOptions*, ulong, ulong*, int>)&NativeExports.VtdCreate)(mem, null, 0, &created));
            ulong unit = created;
            for (uint i = 0; i < 256; i++)
            {
                Put(ram, QueueGpa + (i * 16), 0x5 | (1u << 5) | ((ulong)i << 32), StatusGpa); // waits with status write
            }

            Assert.Equal(0, VtdWrite(unit, Iqa, 8, QueueGpa));
            Assert.Equal(0, VtdWrite(unit, Gcmd, 4, Qie));
            int other = 0, stale = 0;
            var worker = new Thread(() =>
            {
                for (uint i = 1; ; i++)
                {
                    int rc = VtdWrite(unit, Iqt, 8, (i % 256) * 16);
                    if (rc == -NativeErrno.EBADF)
                    {
                        stale++;
                        return;
                    }

                    if (rc != 0)
                    {
                        other++;
                    }
                }
            });
            worker.Start();
            Thread.Sleep(5);
            int destroy;
            while ((destroy = VtdDestroy(unit)) == -NativeErrno.EBUSY)
            {
                Thread.Yield();
            }

            worker.Join();
            Assert.Equal(0, destroy);
            Assert.Equal(0, other);
            Assert.Equal(1, stale);
            Assert.Equal(0, MemoryDestroy(mem));
        }
        finally
        {
            NativeMemory.Free(ram);
        }
    }

    [Fact]
    public void VtdQueueThroughRegisters_WithInterruptAndNotifier_AllocatesNothingPerCall()
    {
        byte* ram = (byte*)NativeMemory.AllocZeroed(1 << 20);
        try
        {
            ulong mem = NewMemory(ram, 1 << 20);
            var options = new NativeVtdOptions
            {
                Size = (uint)sizeof(NativeVtdOptions),
                Interrupt = &OnInterrupt,
            };
            ulong created;
            Assert.Equal(0, ((delegate* unmanaged<ulong, NativeVtdOptions*, ulong, ulong*, int>)&NativeExports.VtdCreate)(mem, &options, 0, &created));
            ulong unit = created;
            ulong notifier;
            Assert.Equal(0, ((delegate* unmanaged<ulong, NativeNotifierFilter*, delegate* unmanaged<void*, InvalidationRecord*, nuint, void>, void*, ulong*, int>)
                &NativeExports.NotifierSubscribe)(unit, null, &OnRecords, null, &notifier));
            Assert.Equal(0, VtdWrite(unit, Iedata, 4, 0x40));
            Assert.Equal(0, VtdWrite(unit, Ieaddr, 4, 0xFEE00000));
            Assert.Equal(0, VtdWrite(unit, Iectl, 4, 0));
            Assert.Equal(0, VtdWrite(unit, Iqa, 8, QueueGpa));
            Assert.Equal(0, VtdWrite(unit, Gcmd, 4, Qie));
            var fill = (delegate* unmanaged<ulong, NativeIotlbEntry*, int>)&NativeExports.IotlbFill;
            var lookup = (delegate* unmanaged<ulong, byte, ushort, uint, ulong, NativeTranslation*, int>)&NativeExports.IotlbLookup;
            var save = (delegate* unmanaged<ulong, void*, nuint, int>)&NativeExports.VtdSaveState;
            var read = (delegate* unmanaged<ulong, ulong, void*, nuint, int>)&NativeExports.GuestMemoryRead;
            var write = (delegate* unmanaged<ulong, ulong, void*, nuint, int>)&NativeExports.GuestMemoryWrite;
            byte* image = stackalloc byte[VtdIommu.StateSize];
            uint tail = 0;
            int wrong = 0;
            void Region()
            {
                var entry = new NativeIotlbEntry { InputAddress = 0x40000, OutputAddress = 0x80000, AddressSpaceId = AddressSpace.None, DomainId = 5, Rights = 3, Stage = 2, Granule = 1, SizeLog2 = 12 };
                NativeTranslation t;
                ulong value;
                uint status;
                for (int i = 0; i < 50; i++)
                {
                    wrong += fill(unit, &entry) < 0 ? 1 : 0;
                    Put(ram, QueueGpa + (tail % 256 * 16), 0x2 | (3u << 4) | (5UL << 16), 0x40000); // IOTLB page, DID 5
                    Put(ram, QueueGpa + ((tail + 1) % 256 * 16), 0x5 | (1u << 4) | (1u << 5) | ((ulong)(uint)i << 32), StatusGpa);
                    tail += 2;
                    wrong += VtdWrite(unit, Iqt, 8, tail % 256 * 16) != 0 ? 1 : 0;
                    wrong += VtdRead(unit, Iqh, 8, &value) != 0 || value != tail % 256 * 16 ? 1 : 0;
                    wrong += read(mem, StatusGpa, &status, 4) != 0 || status != (uint)i ? 1 : 0;
                    wrong += lookup(unit, 2, 5, AddressSpace.None, 0x40000, &t) != 0 ? 1 : 0;
                    wrong += VtdWrite(unit, Ics, 4, 1) != 0 ? 1 : 0; // acknowledge IWC: the next wait interrupts again
                    uint scratch = tail;
                    wrong += write(mem, StatusGpa, &scratch, 4) != 0 ? 1 : 0;
                    wrong += save(unit, image, (nuint)VtdIommu.StateSize) != VtdIommu.StateSize ? 1 : 0;
                }
            }

            Region(); // warm-up
            s_interrupts = 0;
            s_records = 0;
            Assert.Equal(0, AllocationMeter.Measure(Region));
            Assert.Equal(0, wrong);
            Assert.True(s_interrupts >= 50, $"{s_interrupts} interrupts");
            Assert.True(s_records >= 50, $"{s_records} records");
            Assert.Equal(0, ((delegate* unmanaged<ulong, int>)&NativeExports.NotifierUnsubscribe)(notifier));
            Assert.Equal(0, VtdDestroy(unit));
            Assert.Equal(0, MemoryDestroy(mem));
        }
        finally
        {
            NativeMemory.Free(ram);
        }
    }

    [Fact]
    public void SmmuQueueThroughRegisters_AllocatesNothingPerCall()
    {
        byte* ram = (byte*)NativeMemory.AllocZeroed(1 << 20);
        try
        {
            ulong mem = NewMemory(ram, 1 << 20);
            var options = new NativeSmmuOptions { Size = (uint)sizeof(NativeSmmuOptions), Interrupt = &OnInterrupt };
            ulong created;
            Assert.Equal(0, ((delegate* unmanaged<ulong, NativeSmmuOptions*, ulong, ulong*, int>)&NativeExports.SmmuCreate)(mem, &options, 0, &created));
            ulong unit = created;
            Assert.Equal(0, SmmuWrite(unit, 0x90, 8, QueueGpa | 8)); // CMDQ_BASE, 2^8 commands
            Assert.Equal(0, SmmuWrite(unit, 0x20, 4, 1u << 3));      // CR0.CMDQEN
            uint prod = 0;
            int wrong = 0;
            void Region()
            {
                ulong cons;
                for (int i = 0; i < 50; i++)
                {
                    Put(ram, QueueGpa + (prod % 256 * 16), 0x11 | (2UL << 32) | (7UL << 48), 0); // CMD_TLBI_NH_ASID
                    Put(ram, QueueGpa + ((prod + 1) % 256 * 16), 0x46 | (1UL << 12) | ((ulong)(uint)i << 32), MsiGpa); // CMD_SYNC, MSI
                    prod += 2;
                    uint p = (prod % 256) | ((prod / 256 % 2) << 8);
                    wrong += SmmuWrite(unit, 0x98, 4, p) != 0 ? 1 : 0;
                    wrong += SmmuRead(unit, 0x9C, 4, &cons) != 0 || cons != p ? 1 : 0;
                    wrong += *(uint*)(ram + MsiGpa) != (uint)i ? 1 : 0;
                }
            }

            Region();
            Assert.Equal(0, AllocationMeter.Measure(Region));
            Assert.Equal(0, wrong);
            Assert.Equal(0, ((delegate* unmanaged<ulong, int>)&NativeExports.SmmuDestroy)(unit));
            Assert.Equal(0, MemoryDestroy(mem));
        }
        finally
        {
            NativeMemory.Free(ram);
        }
    }

    [Fact]
    public void HostMisuse_NullsSizesAndStaleHandles_AreCodes()
    {
        ulong h = 5;
        Assert.Equal(-NativeErrno.EFAULT, ((delegate* unmanaged<ulong*, int>)&NativeExports.GuestMemoryCreate)(null));
        Assert.Equal(-NativeErrno.EFAULT, ((delegate* unmanaged<delegate* unmanaged<void*, ulong, void*, nuint, int>, delegate* unmanaged<void*, ulong, void*, nuint, int>, void*, ulong*, int>)
            &NativeExports.GuestMemoryCreateCallbacks)(null, null, null, &h));
        Assert.Equal(0UL, h);
        Assert.Equal(-NativeErrno.EBADF, ((delegate* unmanaged<ulong, NativeVtdOptions*, ulong, ulong*, int>)&NativeExports.VtdCreate)(0, null, 0, &h));
        Assert.Equal(-NativeErrno.EBADF, VtdWrite(0x1234_0000_1100_0001, Iqt, 4, 0));
        ulong v;
        Assert.Equal(-NativeErrno.EINVAL, VtdRead(0, Iqt, 3, &v));
        Assert.Equal(-NativeErrno.EFAULT, VtdRead(0, Iqt, 4, null));
        Assert.Equal(-NativeErrno.EBADF, ((delegate* unmanaged<ulong, int>)&NativeExports.NotifierUnsubscribe)(0));
        Assert.Equal(-NativeErrno.EFAULT, ((delegate* unmanaged<ulong, void*, nuint, int>)&NativeExports.SmmuRestoreState)(0, null, 0));
    }
}
