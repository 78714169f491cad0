using BenchmarkDotNet.Attributes;
using FastInval.AmdVi;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Qemu;

namespace FastInval.Benchmarks;

/// <summary>
/// Commands through an AMD-Vi command buffer: the guest writes <see cref="BatchSize"/> INVALIDATE_IOMMU_PAGES commands
/// (host page table, GN = 0, S = 0: one 4 KiB page each, PDE = 1 as Linux sets it) and a store-only COMPLETION_WAIT into a
/// 256-entry buffer and writes the tail once; the unit processes them inside that write. The invalidated pages belong to
/// one busy domain (its device 07:00.0) of a cache of <see cref="Entries"/> entries (random 4 KiB pages of 16 devices in
/// 16 domains) and are refilled at the start of every operation, identically for both. "FastInval" is
/// <see cref="AmdViIommu"/>; "QEMU-style" (baseline) is <see cref="QemuStyleAmdViCommandBuffer"/> over
/// <see cref="QemuStyleAmdViIotlb"/>, where every page invalidation walks the whole table for the domain. Times are per
/// command (<c>OperationsPerInvoke</c> = 65); the column gives commands/s.
/// </summary>
[MemoryDiagnoser]
[DescriptorsPerSecondColumn]
public class AmdViQueueBenchmarks : IDisposable
{
    /// <summary>INVALIDATE_IOMMU_PAGES commands per tail write.</summary>
    public const int BatchSize = 64;

    /// <summary>Commands per operation: the batch and its COMPLETION_WAIT.</summary>
    public const int Commands = BatchSize + 1;

    private const ulong BufferBase = 0x10_0000;
    private const ulong SemaphoreBase = 0x20_0000;
    private const int Log2 = 8; // 256 entries
    private const ushort Domain = 7;
    private const ushort Device = 0x0700;
    private const ulong Iova = 0x7F00_0000_0000;

    /// <summary>1024: QEMU's own AMD-Vi IOTLB limit (AMDVI_IOTLB_MAX_SIZE); 64K: a larger cache.</summary>
    [Params(1 << 10, 1 << 16)]
    public int Entries;

    private readonly byte[] _fastBuffer = new byte[16 << Log2];
    private readonly byte[] _qemuBuffer = new byte[16 << Log2];
    private readonly byte[] _fastSemaphore = new byte[4096];
    private readonly byte[] _qemuSemaphore = new byte[4096];
    private AmdViCommand[] _batch = [];
    private ulong _fastTail;
    private ulong _qemuTail;
    private ulong _fastSequence;
    private ulong _qemuSequence;
    private AmdViIommu? _unit;
    private QemuStyleAmdViIotlb? _qemu;
    private QemuStyleAmdViCommandBuffer? _buffer;

    internal AmdViIommu? Unit => _unit;

    internal QemuStyleAmdViIotlb? Qemu => _qemu;

    internal QemuStyleAmdViCommandBuffer? Buffer => _buffer;

    internal ulong FastSemaphore => BitConverter.ToUInt64(_fastSemaphore);

    internal ulong QemuSemaphore => BitConverter.ToUInt64(_qemuSemaphore);

    /// <summary>The background: distinct (device, page) pairs of devices 0x0100..0x1000 (domain = bus), none in the busy
    /// domain.</summary>
    private static IEnumerable<(ushort Device, ushort Domain, ulong Page)> Population(int count)
    {
        var r = new Random(0x5EED);
        var seen = new HashSet<(int, ulong)>();
        while (seen.Count < count)
        {
            int bus = r.Next(1, 17);
            if (bus == Domain)
            {
                continue;
            }

            var e = ((ushort)(bus << 8), (ushort)bus, (ulong)r.Next(0, 1 << 24) << 12);
            if (seen.Add((e.Item1, e.Item3)))
            {
                yield return e;
            }
        }
    }

    [GlobalSetup(Target = nameof(FastInval))]
    public void SetupFastInval()
    {
        SetupBatch();
        var memory = new GuestMemory();
        memory.Map(BufferBase, _fastBuffer);
        memory.Map(SemaphoreBase, _fastSemaphore);
        _unit = new AmdViIommu(memory, new AmdViOptions
        {
            Engine = new EngineOptions { IotlbCapacity = Entries + (2 * BatchSize), DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 },
        });
        foreach ((ushort _, ushort domain, ulong page) in Population(Entries))
        {
            _unit.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, domain, AddressSpace.None, page, page));
        }

        _unit.WriteRegister(AmdViRegisters.CommandBufferBase, BufferBase | ((ulong)Log2 << AmdViRegisters.RingLengthShift), 8);
        _unit.WriteRegister(AmdViRegisters.Control, AmdViRegisters.ControlIommuEn | AmdViRegisters.ControlCmdBufEn, 8);
        _fastTail = 0;
        _fastSequence = 0;
    }

    [GlobalSetup(Target = nameof(QemuStyle))]
    public void SetupQemuStyle()
    {
        SetupBatch();
        var memory = new GuestMemory();
        memory.Map(BufferBase, _qemuBuffer);
        memory.Map(SemaphoreBase, _qemuSemaphore);
        _qemu = new QemuStyleAmdViIotlb(QemuStyleAmdViIotlb.Unlimited);
        foreach ((ushort device, ushort domain, ulong page) in Population(Entries))
        {
            _qemu.Update(device, page, page, domain);
        }

        _qemu.Age(0x5EED);
        _buffer = new QemuStyleAmdViCommandBuffer(memory, _qemu, BufferBase, Log2);
        _qemuTail = 0;
        _qemuSequence = 0;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _unit?.Dispose();
        _unit = null;
        _qemu = null;
        _buffer = null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }

    /// <summary>Entries removed.</summary>
    [Benchmark(Description = "FastInval", OperationsPerInvoke = Commands)]
    public int FastInval()
    {
        AmdViIommu unit = _unit!;
        TranslationCache iotlb = unit.Engine.Iotlb;
        for (int i = 0; i < BatchSize; i++)
        {
            iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, Domain, AddressSpace.None, Iova + ((ulong)i << 12), Iova));
        }

        int before = iotlb.Count;
        _fastTail = Write(_fastBuffer, _fastTail, ++_fastSequence);
        unit.WriteRegister(AmdViRegisters.CommandBufferTail, _fastTail, 4);
        return before - iotlb.Count;
    }

    /// <summary>Entries removed.</summary>
    [Benchmark(Baseline = true, Description = "QEMU-style", OperationsPerInvoke = Commands)]
    public int QemuStyle()
    {
        QemuStyleAmdViIotlb qemu = _qemu!;
        for (int i = 0; i < BatchSize; i++)
        {
            qemu.Update(Device, Iova + ((ulong)i << 12), Iova, Domain);
        }

        int before = qemu.Count;
        _qemuTail = Write(_qemuBuffer, _qemuTail, ++_qemuSequence);
        _buffer!.WriteTail(_qemuTail);
        return before - qemu.Count;
    }

    private void SetupBatch()
    {
        _batch = new AmdViCommand[Commands];
        for (int i = 0; i < BatchSize; i++)
        {
            _batch[i] = AmdViCommand.InvalidateIommuPages(Domain, Iova + ((ulong)i << 12));
        }
    }

    /// <summary>The batch and a COMPLETION_WAIT of <paramref name="sequence"/>, from <paramref name="tail"/> on (with wrap).</summary>
    private ulong Write(byte[] buffer, ulong tail, ulong sequence)
    {
        _batch[BatchSize] = AmdViCommand.CompletionWait(SemaphoreBase, sequence);
        ulong size = (ulong)buffer.Length;
        foreach (ref readonly AmdViCommand c in _batch.AsSpan())
        {
            c.Write(buffer.AsSpan((int)tail, 16));
            tail = (tail + 16) % size;
        }

        return tail;
    }
}
