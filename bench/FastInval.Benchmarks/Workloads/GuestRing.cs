using FastInval.Vtd;

namespace FastInval.Benchmarks.Workloads;

/// <summary>
/// A guest's VT-d invalidation queue in its memory: a one-page ring of 256-bit descriptors at <c>ringBase</c>, a status
/// page at <c>statusAddress</c> for wait descriptors, and the guest's tail. Each benchmarked unit gets its own.
/// </summary>
internal sealed class GuestRing(ulong ringBase, ulong statusAddress, int slots)
{
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
