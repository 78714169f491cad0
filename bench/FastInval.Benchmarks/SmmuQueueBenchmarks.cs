using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Qemu;
using FastInval.Smmu;

namespace FastInval.Benchmarks;

/// <summary>
/// Commands through an SMMUv3 command queue: the guest writes <see cref="BatchSize"/> range TLBI_NH_VA commands (each
/// four 4 KiB pages: TG = 4 KiB, NUM = 3, SCALE = 0, TTL = 3, Leaf, as Linux's splitter emits for 16 KiB) and a CMD_SYNC
/// into the queue and writes CMDQ_PROD once; the unit consumes them inside that write. The invalidated pages belong to one
/// busy (VMID, ASID) of a cache of <see cref="Entries"/> entries (random 4 KiB pages over 16 VMIDs × 64 ASIDs) and are
/// refilled at the start of every operation, identically for both. "FastInval" is <see cref="SmmuV3"/>; "QEMU-style"
/// (baseline) is <see cref="QemuStyleCommandQueue"/> over <see cref="QemuStyleSmmuIotlb"/>, where each 4-page chunk is a
/// scan of the whole table. Times are per command (<c>OperationsPerInvoke</c> = 65); the column gives commands/s.
/// </summary>
[MemoryDiagnoser]
[DescriptorsPerSecondColumn]
public class SmmuQueueBenchmarks : IDisposable
{
    /// <summary>TLBI commands per doorbell.</summary>
    public const int BatchSize = 64;

    /// <summary>Commands per operation: the batch and its CMD_SYNC.</summary>
    public const int Commands = BatchSize + 1;

    private const ulong QueueBase = 0x10_0000;
    private const int Log2 = 8; // 256 entries
    private const ushort Vmid = 7;
    private const ushort Asid = 0x2A;
    private const ulong Iova = 0x7F00_0000_0000;

    /// <summary>256: QEMU's own SMMU IOTLB limit; 64K: a larger cache.</summary>
    [Params(1 << 8, 1 << 16)]
    public int Entries;

    private readonly byte[] _fastQueue = new byte[16 << Log2];
    private readonly byte[] _qemuQueue = new byte[16 << Log2];
    private SmmuCommand[] _batch = [];
    private uint _fastProd;
    private uint _qemuProd;
    private SmmuV3? _unit;
    private QemuStyleSmmuIotlb? _qemu;
    private QemuStyleCommandQueue? _queue;

    internal SmmuV3? Unit => _unit;

    internal QemuStyleSmmuIotlb? Qemu => _qemu;

    private static IEnumerable<(ushort Vmid, ushort Asid, ulong Page)> Population(int count)
    {
        var r = new Random(0x5EED);
        var seen = new HashSet<(int, int, ulong)>();
        while (seen.Count < count)
        {
            var e = ((ushort)r.Next(1, 17), (ushort)r.Next(1, 65), (ulong)r.Next(0, 1 << 24) << 12);
            if (seen.Add(e))
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
        memory.Map(QueueBase, _fastQueue);
        _unit = new SmmuV3(memory, new SmmuOptions
        {
            Engine = new EngineOptions { IotlbCapacity = Entries + (4 * BatchSize), DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 },
        });
        foreach ((ushort vmid, ushort asid, ulong page) in Population(Entries))
        {
            _unit.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, vmid, asid, page, page));
        }

        _unit.WriteRegister(SmmuRegisters.CmdqBase, QueueBase | Log2, 8);
        _unit.WriteRegister(SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn | SmmuRegisters.Cr0SmmuEn, 4);
        _fastProd = 0;
    }

    [GlobalSetup(Target = nameof(QemuStyle))]
    public void SetupQemuStyle()
    {
        SetupBatch();
        var memory = new GuestMemory();
        memory.Map(QueueBase, _qemuQueue);
        _qemu = new QemuStyleSmmuIotlb(QemuStyleSmmuIotlb.Unlimited);
        foreach ((ushort vmid, ushort asid, ulong page) in Population(Entries))
        {
            _qemu.Insert(asid, vmid, page, 3, page);
        }

        _queue = new QemuStyleCommandQueue(memory, _qemu, QueueBase, Log2);
        _qemuProd = 0;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _unit?.Dispose();
        _unit = null;
        _qemu = null;
        _queue = null;
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
        SmmuV3 unit = _unit!;
        TranslationCache iotlb = unit.Engine.Iotlb;
        for (int i = 0; i < 4 * BatchSize; i++)
        {
            iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, Vmid, Asid, Iova + ((ulong)i << 12), Iova));
        }

        int before = iotlb.Count;
        _fastProd = Write(_fastQueue, _fastProd);
        unit.WriteRegister(SmmuRegisters.CmdqProd, _fastProd, 4);
        return before - iotlb.Count;
    }

    /// <summary>Entries removed.</summary>
    [Benchmark(Baseline = true, Description = "QEMU-style", OperationsPerInvoke = Commands)]
    public int QemuStyle()
    {
        QemuStyleSmmuIotlb qemu = _qemu!;
        for (int i = 0; i < 4 * BatchSize; i++)
        {
            qemu.Insert(Asid, Vmid, Iova + ((ulong)i << 12), 3, Iova);
        }

        int before = qemu.Count;
        _qemuProd = Write(_qemuQueue, _qemuProd);
        _queue!.WriteProd(_qemuProd);
        return before - qemu.Count;
    }

    private void SetupBatch()
    {
        _batch = new SmmuCommand[Commands];
        for (int i = 0; i < BatchSize; i++)
        {
            ulong va = Iova + ((ulong)i << 14);
            _batch[i] = SmmuCommand.TlbiNhVa(Vmid, Asid, va, leaf: true, num: 3, ttl: 3, tg: 1);
        }

        _batch[BatchSize] = SmmuCommand.Sync(2); // CMD_SYNC, SIG_SEV
    }

    private uint Write(byte[] queue, uint prod)
    {
        uint span = (2u << Log2) - 1;
        foreach (ref readonly SmmuCommand c in _batch.AsSpan())
        {
            c.Write(queue.AsSpan((int)((prod & ((1u << Log2) - 1)) * 16), 16));
            prod = (prod + 1) & span;
        }

        return prod;
    }
}
