using FastInval.Vtd;

namespace FastInval.Benchmarks.Workloads;

/// <summary>
/// A guest's VT-d invalidation queue in its memory: a one-page ring of 256-bit descriptors at <c>ringBase</c>, a status
/// page at <c>statusAddress</c> for wait descriptors, and the guest's tail. Each benchmarked unit gets its own.
/// </summary>
internal sealed class GuestRing(ulong ringBase = GuestRing.RingBase, ulong statusAddress = GuestRing.StatusAddress, int slots = GuestRing.Slots)
{
    /// <summary>Default guest address of the ring page.</summary>
    public const ulong RingBase = 0x10_0000;

    /// <summary>Default guest address of the status page that wait descriptors write.</summary>
    public const ulong StatusAddress = 0x20_0000;

    /// <summary>IQA_REG for the default ring: 256-bit descriptors (DW = 1), QS = 0, so one page of 128 slots.</summary>
    public const ulong Iqa = RingBase | (1UL << 11);

    /// <summary>Slots of the default ring.</summary>
    public const int Slots = 128;

    /// <summary>A PASID-based IOTLB descriptor, page-selective within the PASID (G = 11b), AM = 0, IH = 0.</summary>
    public static VtdDescriptor PageInvalidation(ushort domain, uint pasid, ulong address) =>
        VtdDescriptor.PasidIotlbPages(domain, pasid, address);

    /// <summary>A wait descriptor that writes status 1 to the status page (SW = 1).</summary>
    public static VtdDescriptor Wait() => VtdDescriptor.Wait(statusWrite: true, interrupt: false, statusData: 1, StatusAddress);

    public readonly byte[] Bytes = new byte[4096];
    public readonly byte[] Status = new byte[4096];
    private int _tail;

    /// <summary>Empties the ring and returns a fresh guest memory mapping the ring and the status page.</summary>
    public GuestMemory Reset()
    {
        _tail = 0;
        var memory = new GuestMemory();
        memory.Map(ringBase, Bytes);
        memory.Map(statusAddress, Status);
        return memory;
    }

    /// <summary>The guest's side: copies the descriptors into the ring from the tail on; returns the new tail slot.</summary>
    public int Write(ReadOnlySpan<VtdDescriptor> descriptors)
    {
        int slot = _tail;
        foreach (ref readonly VtdDescriptor d in descriptors)
        {
            d.Write(Bytes.AsSpan(slot * 32, 32));
            slot = (slot + 1) % slots;
        }

        _tail = slot;
        return slot;
    }
}
