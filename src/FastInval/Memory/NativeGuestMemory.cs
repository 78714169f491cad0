using FastInval.Internals;

namespace FastInval;

/// <summary>
/// A guest-physical address space over native host memory: one or more RAM blocks given as (host pointer, length), of
/// any size (an mmap'd block of 2 GiB, 4 GiB or more is one mapping). Reads and writes copy straight from and to the host
/// pointers; <see cref="TryGetSpan"/> hands out the host memory itself. The caller owns the memory: this class never
/// allocates, pins or frees it, and the memory must stay valid until its mapping is removed with <see cref="Unmap"/>.
/// </summary>
/// <remarks>
/// <para>Mappings may not overlap; an access may span adjacent mappings (two RAM blocks placed back to back), and fails
/// as a whole if any byte falls in a gap or past 2^64. Reads and writes allocate nothing.</para>
/// <para><b>Threading.</b> <see cref="Map"/> and <see cref="Unmap"/> publish a new immutable block table, so they may run
/// while other threads access memory; they are serialized internally. Unmapping does not wait for accesses already under
/// way on other threads: keep the host memory valid until they are done (for a unit, until its MMIO path has returned).
/// Accesses are not atomic beyond what the host memory gives (as with real DMA).</para>
/// </remarks>
public sealed unsafe class NativeGuestMemory : GuestAddressSpace
{
    private readonly record struct Block(ulong First, ulong Last, nint Host) : IGuestRange;

    private Block[] _blocks = [];
    private readonly object _mapLock = new();

    /// <summary>Creates an empty address space: every access faults.</summary>
    public NativeGuestMemory()
    {
    }

    /// <summary>Maps <paramref name="length"/> bytes of host memory at <paramref name="hostAddress"/> at guest-physical
    /// <paramref name="guestPhysicalAddress"/>.</summary>
    /// <exception cref="ArgumentException">The host address is null, the length is 0, the range wraps past 2^64 in the
    /// guest or past the top of the host address space, or it overlaps an existing mapping.</exception>
    public void Map(ulong guestPhysicalAddress, nint hostAddress, ulong length)
    {
        if (hostAddress == 0)
        {
            ThrowHelper.Argument(nameof(hostAddress), "cannot map a null host address");
        }

        if (length == 0)
        {
            ThrowHelper.Argument(nameof(length), "cannot map an empty range");
        }

        ulong last = guestPhysicalAddress + (length - 1);
        if (last < guestPhysicalAddress)
        {
            ThrowHelper.Argument(nameof(guestPhysicalAddress), "mapping wraps past the top of the guest address space");
        }

        if ((ulong)(nuint)hostAddress + (length - 1) < (ulong)(nuint)hostAddress || length - 1 > nuint.MaxValue)
        {
            ThrowHelper.Argument(nameof(hostAddress), "host range wraps past the top of the host address space");
        }

        lock (_mapLock)
        {
            Volatile.Write(ref _blocks, GuestRangeTable.Insert(_blocks, new Block(guestPhysicalAddress, last, hostAddress), nameof(guestPhysicalAddress)));
        }
    }

    /// <summary>Removes the mapping that starts at <paramref name="guestPhysicalAddress"/>; returns false if there is none.
    /// The host memory is not touched.</summary>
    public bool Unmap(ulong guestPhysicalAddress)
    {
        lock (_mapLock)
        {
            Block[]? next = GuestRangeTable.Remove(_blocks, guestPhysicalAddress);
            if (next is null)
            {
                return false;
            }

            Volatile.Write(ref _blocks, next);
            return true;
        }
    }

    /// <summary>True when every byte of [address, address + length) is mapped (an empty range always is).</summary>
    public bool IsMapped(ulong address, int length) => GuestRangeTable.IsMapped(Volatile.Read(ref _blocks), address, length);

    /// <inheritdoc/>
    public override bool TryRead(ulong address, Span<byte> destination)
    {
        Block[] blocks = Volatile.Read(ref _blocks);
        int i = GuestRangeTable.Find(blocks, address);
        if (i >= 0 && (ulong)destination.Length <= blocks[i].Last - address + 1)
        {
            new ReadOnlySpan<byte>(HostPointer(in blocks[i], address), destination.Length).CopyTo(destination); // one block
            return true;
        }

        if (!GuestRangeTable.IsMapped(blocks, address, destination.Length))
        {
            return false;
        }

        while (!destination.IsEmpty)
        {
            Block b = blocks[GuestRangeTable.Find(blocks, address)];
            int n = (int)Math.Min((ulong)destination.Length, b.Last - address + 1);
            new ReadOnlySpan<byte>(HostPointer(in b, address), n).CopyTo(destination);
            destination = destination[n..];
            address += (ulong)n;
        }

        return true;
    }

    /// <inheritdoc/>
    public override bool TryWrite(ulong address, ReadOnlySpan<byte> source)
    {
        Block[] blocks = Volatile.Read(ref _blocks);
        int i = GuestRangeTable.Find(blocks, address);
        if (i >= 0 && (ulong)source.Length <= blocks[i].Last - address + 1)
        {
            source.CopyTo(new Span<byte>(HostPointer(in blocks[i], address), source.Length));
            return true;
        }

        if (!GuestRangeTable.IsMapped(blocks, address, source.Length))
        {
            return false;
        }

        while (!source.IsEmpty)
        {
            Block b = blocks[GuestRangeTable.Find(blocks, address)];
            int n = (int)Math.Min((ulong)source.Length, b.Last - address + 1);
            source[..n].CopyTo(new Span<byte>(HostPointer(in b, address), n));
            source = source[n..];
            address += (ulong)n;
        }

        return true;
    }

    /// <summary>Zero-copy: the host memory behind [address, address + length) when it lies inside one mapping.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    public override bool TryGetSpan(ulong address, int length, out Span<byte> span)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Block[] blocks = Volatile.Read(ref _blocks);
        int i = GuestRangeTable.Find(blocks, address);
        if (i >= 0 && (ulong)length <= blocks[i].Last - address + 1)
        {
            span = new Span<byte>(HostPointer(in blocks[i], address), length);
            return true;
        }

        span = default;
        return false;
    }

    private static byte* HostPointer(in Block b, ulong address) => (byte*)b.Host + (nuint)(address - b.First);
}
