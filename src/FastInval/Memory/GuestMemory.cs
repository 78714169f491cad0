using FastInval.Internals;

namespace FastInval;

/// <summary>
/// A guest-physical address space assembled from managed host buffers (<see cref="Memory{T}"/>, so at most 2 GiB each):
/// the memory the VT-d invalidation queue and the SMMUv3 command queue live in, and where wait-descriptor status and
/// CMD_SYNC MSI writes land. Any access that is not entirely inside mapped memory is a fault, reported as <c>false</c>
/// (never an exception): front ends turn it into the architected error (VT-d IQE with a fetch-error code, SMMU
/// CERROR_ABT). For native RAM blocks of any size see <see cref="NativeGuestMemory"/>; for a VMM's own accessor see
/// <see cref="CallbackGuestMemory"/>.
/// </summary>
/// <remarks>
/// <para>Mappings may not overlap; an access may span adjacent mappings. Reads and writes allocate nothing.</para>
/// <para><b>Threading.</b> <see cref="Map"/> and <see cref="Unmap"/> publish a new immutable region table, so they may
/// run while other threads read or write; concurrent <see cref="Map"/> calls are serialized internally. Reads and writes
/// of guest memory itself are not atomic beyond what the host's buffers give (as with real DMA).</para>
/// </remarks>
public sealed class GuestMemory : GuestAddressSpace
{
    private readonly record struct Region(ulong First, ulong Last, Memory<byte> Buffer) : IGuestRange;

    private Region[] _regions = [];
    private readonly object _mapLock = new();

    /// <summary>Creates an empty address space: every access faults.</summary>
    public GuestMemory()
    {
    }

    /// <summary>Maps <paramref name="buffer"/> at <paramref name="guestPhysicalAddress"/>.</summary>
    /// <exception cref="ArgumentException">The buffer is empty, wraps past 2^64, or overlaps an existing mapping.</exception>
    public void Map(ulong guestPhysicalAddress, Memory<byte> buffer)
    {
        if (buffer.IsEmpty)
        {
            ThrowHelper.Argument(nameof(buffer), "cannot map an empty buffer");
        }

        ulong last = guestPhysicalAddress + (ulong)buffer.Length - 1;
        if (last < guestPhysicalAddress)
        {
            ThrowHelper.Argument(nameof(guestPhysicalAddress), "mapping wraps past the top of the address space");
        }

        lock (_mapLock)
        {
            Volatile.Write(ref _regions, GuestRangeTable.Insert(_regions, new Region(guestPhysicalAddress, last, buffer), nameof(guestPhysicalAddress)));
        }
    }

    /// <summary>Removes the mapping that starts at <paramref name="guestPhysicalAddress"/>; returns false if there is none.</summary>
    public bool Unmap(ulong guestPhysicalAddress)
    {
        lock (_mapLock)
        {
            Region[]? next = GuestRangeTable.Remove(_regions, guestPhysicalAddress);
            if (next is null)
            {
                return false;
            }

            Volatile.Write(ref _regions, next);
            return true;
        }
    }

    /// <summary>True when every byte of [address, address + length) is mapped.</summary>
    public bool IsMapped(ulong address, int length) => GuestRangeTable.IsMapped(Volatile.Read(ref _regions), address, length);

    /// <summary>Copies guest memory at <paramref name="address"/> into <paramref name="destination"/>. Nothing is read
    /// (and false returned) unless every byte is mapped.</summary>
    public override bool TryRead(ulong address, Span<byte> destination)
    {
        Region[] regions = Volatile.Read(ref _regions);
        if (!GuestRangeTable.IsMapped(regions, address, destination.Length))
        {
            return false;
        }

        while (!destination.IsEmpty)
        {
            Region r = regions[GuestRangeTable.Find(regions, address)];
            int offset = (int)(address - r.First);
            int n = Math.Min(destination.Length, r.Buffer.Length - offset);
            r.Buffer.Span.Slice(offset, n).CopyTo(destination);
            destination = destination[n..];
            address += (ulong)n;
        }

        return true;
    }

    /// <summary>Copies <paramref name="source"/> into guest memory at <paramref name="address"/>. Nothing is written (and
    /// false returned) unless every byte is mapped.</summary>
    public override bool TryWrite(ulong address, ReadOnlySpan<byte> source)
    {
        Region[] regions = Volatile.Read(ref _regions);
        if (!GuestRangeTable.IsMapped(regions, address, source.Length))
        {
            return false;
        }

        while (!source.IsEmpty)
        {
            Region r = regions[GuestRangeTable.Find(regions, address)];
            int offset = (int)(address - r.First);
            int n = Math.Min(source.Length, r.Buffer.Length - offset);
            source[..n].CopyTo(r.Buffer.Span.Slice(offset, n));
            source = source[n..];
            address += (ulong)n;
        }

        return true;
    }

    /// <summary>Zero-copy: the host buffer behind [address, address + length) when it lies inside one mapping.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    public override bool TryGetSpan(ulong address, int length, out Span<byte> span)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Region[] regions = Volatile.Read(ref _regions);
        int i = GuestRangeTable.Find(regions, address);
        if (i >= 0 && (ulong)length <= regions[i].Last - address + 1)
        {
            span = regions[i].Buffer.Span.Slice((int)(address - regions[i].First), length);
            return true;
        }

        span = default;
        return false;
    }
}
