using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using FastInval.Benchmarks.Infrastructure;
using FastInval.Benchmarks.Workloads;
using FastInval.Vtd;

namespace FastInval.Benchmarks;

/// <summary>
/// One VT-d doorbell of <see cref="BatchSize"/> page-selective PASID-based IOTLB descriptors and a wait, as in
/// <see cref="VtdQueueBenchmarks"/>, with the queue and status page reached through each guest-memory implementation:
/// <see cref="GuestMemory"/> (baseline), <see cref="NativeGuestMemory"/> over the same pinned buffers, and
/// <see cref="CallbackGuestMemory"/> whose callbacks copy through a <see cref="GuestMemory"/>. The ratio column is the
/// cost of the abstraction and of each implementation's fetch path. Times are per descriptor.
/// </summary>
[MemoryDiagnoser]
[DescriptorsPerSecondColumn]
public class GuestMemoryBenchmarks : IDisposable
{
    /// <summary>Page-selective descriptors per doorbell.</summary>
    public const int BatchSize = 64;

    /// <summary>Descriptors per operation: the batch and its wait.</summary>
    public const int Descriptors = BatchSize + 1;

    private const int Slots = 128;

    private sealed class Ring : IDisposable
    {
        public readonly byte[] Bytes = GC.AllocateArray<byte>(Slots * 32, pinned: true);
        public readonly byte[] Status = GC.AllocateArray<byte>(4096, pinned: true);
        public readonly VtdIommu Unit;
        private int _tail;

        public Ring(Func<Ring, GuestAddressSpace> space)
        {
            Unit = new VtdIommu(space(this), new VtdOptions
            {
                Engine = new EngineOptions { IotlbCapacity = 1 << 12, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 },
            });
            Unit.WriteRegister(VtdRegisters.Iqa, GuestRing.RingBase | VtdRegisters.IqaDw, 8);
            Unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
        }

        public GuestMemory Managed()
        {
            var memory = new GuestMemory();
            memory.Map(GuestRing.RingBase, Bytes);
            memory.Map(GuestRing.StatusAddress, Status);
            return memory;
        }

        public int Doorbell(ReadOnlySpan<VtdDescriptor> descriptors, TranslationEntry[] refill)
        {
            TranslationCache iotlb = Unit.Engine.Iotlb;
            foreach (ref readonly TranslationEntry e in refill.AsSpan())
            {
                iotlb.Fill(in e);
            }

            int before = iotlb.Count;
            foreach (ref readonly VtdDescriptor d in descriptors)
            {
                d.Write(Bytes.AsSpan(_tail * 32, 32));
                _tail = (_tail + 1) % Slots;
            }

            Unit.WriteRegister(VtdRegisters.Iqt, (ulong)(_tail << 5), 4);
            return before - iotlb.Count;
        }

        public void Dispose() => Unit.Dispose();
    }

    private TranslationEntry[] _refill = [];
    private VtdDescriptor[] _batch = [];
    private Ring? _managed, _native, _callback;

    private static ushort Domain => WorkloadShape.Realistic.DomainOf(0);

    private static uint Pasid => WorkloadShape.PasidOf(0);

    [GlobalSetup]
    public void Setup()
    {
        _refill = Workload.Pages(Domain, Pasid, Workload.ReservedIova, BatchSize);
        _batch = new VtdDescriptor[Descriptors];
        for (int i = 0; i < BatchSize; i++)
        {
            _batch[i] = GuestRing.PageInvalidation(Domain, Pasid, Workload.ReservedIova + ((ulong)i << 12));
        }

        _batch[BatchSize] = GuestRing.Wait();
        _managed = new Ring(r => r.Managed());
        _native = new Ring(r =>
        {
            var memory = new NativeGuestMemory();
            memory.Map(GuestRing.RingBase, Marshal.UnsafeAddrOfPinnedArrayElement(r.Bytes, 0), (ulong)r.Bytes.Length);
            memory.Map(GuestRing.StatusAddress, Marshal.UnsafeAddrOfPinnedArrayElement(r.Status, 0), (ulong)r.Status.Length);
            return memory;
        });
        _callback = new Ring(r =>
        {
            GuestMemory backing = r.Managed();
            return new CallbackGuestMemory((a, d) => backing.TryRead(a, d), (a, s) => backing.TryWrite(a, s));
        });
    }

    /// <summary>Entries removed.</summary>
    [Benchmark(Baseline = true, Description = "GuestMemory", OperationsPerInvoke = Descriptors)]
    public int Managed() => _managed!.Doorbell(_batch, _refill);

    /// <summary>Entries removed.</summary>
    [Benchmark(Description = "NativeGuestMemory", OperationsPerInvoke = Descriptors)]
    public int Native() => _native!.Doorbell(_batch, _refill);

    /// <summary>Entries removed.</summary>
    [Benchmark(Description = "CallbackGuestMemory", OperationsPerInvoke = Descriptors)]
    public int Callback() => _callback!.Doorbell(_batch, _refill);

    [GlobalCleanup]
    public void Cleanup()
    {
        _managed?.Dispose();
        _native?.Dispose();
        _callback?.Dispose();
        _managed = _native = _callback = null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }
}
