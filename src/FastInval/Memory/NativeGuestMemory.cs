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
    private readonly record struct Block(ulong First, ulong Last, nint Host);

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
            Block[] old = _blocks;
            foreach (Block b in old)
            {
                if (guestPhysicalAddress <= b.Last && last >= b.First)
                {
                    ThrowHelper.Argument(nameof(guestPhysicalAddress), $"mapping 0x{guestPhysicalAddress:x}..0x{last:x} overlaps 0x{b.First:x}..0x{b.Last:x}");
                }
            }

            var next = new Block[old.Length + 1];
            int i = 0;
            while (i < old.Length && old[i].First < guestPhysicalAddress)
            {
                next[i] = old[i];
                i++;
            }

            next[i] = new Block(guestPhysicalAddress, last, hostAddress);
            Array.Copy(old, i, next, i + 1, old.Length - i);
            Volatile.Write(ref _blocks, next);
        }
    }

    /// <summary>Removes the mapping that starts at <paramref name="guestPhysicalAddress"/>; returns false if there is none.
    /// The host memory is not touched.</summary>
    public bool Unmap(ulong guestPhysicalAddress)
    {
        lock (_mapLock)
        {
            Block[] old = _blocks;
            int index = Array.FindIndex(old, b => b.First == guestPhysicalAddress);
            if (index < 0)
            {
                return false;
            }

            var next = new Block[old.Length - 1];
            Array.Copy(old, 0, next, 0, index);
            Array.Copy(old, index + 1, next, index, old.Length - index - 1);
            Volatile.Write(ref _blocks, next);
            return true;
        }
    }

    /// <summary>True when every byte of [address, address + length) is mapped (an empty range always is).</summary>
    public bool IsMapped(ulong address, int length) => IsMapped(Volatile.Read(ref _blocks), address, length);

    /// <inheritdoc/>
    public override bool TryRead(ulong address, Span<byte> destination)
    {
        Block[] blocks = Volatile.Read(ref _blocks);
        int i = Find(blocks, address);
        if (i >= 0 && (ulong)destination.Length <= blocks[i].Last - address + 1)
        {
            new ReadOnlySpan<byte>(HostPointer(in blocks[i], address), destination.Length).CopyTo(destination); // one block
            return true;
        }

        if (!IsMapped(blocks, address, destination.Length))
        {
            return false;
        }

        while (!destination.IsEmpty)
        {
            Block b = blocks[Find(blocks, address)];
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
        int i = Find(blocks, address);
        if (i >= 0 && (ulong)source.Length <= blocks[i].Last - address + 1)
        {
            source.CopyTo(new Span<byte>(HostPointer(in blocks[i], address), source.Length));
            return true;
        }

        if (!IsMapped(blocks, address, source.Length))
        {
            return false;
        }

        while (!source.IsEmpty)
        {
            Block b = blocks[Find(blocks, address)];
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
        int i = Find(blocks, address);
        if (i >= 0 && (ulong)length <= blocks[i].Last - address + 1)
        {
            span = new Span<byte>(HostPointer(in blocks[i], address), length);
            return true;
        }

        span = default;
        return false;
    }

    private static byte* HostPointer(in Block b, ulong address) => (byte*)b.Host + (nuint)(address - b.First);

    private static bool IsMapped(Block[] blocks, ulong address, int length)
    {
        if (length < 0)
        {
            return false;
        }

        ulong remaining = (ulong)length;
        while (remaining > 0)
        {
            int i = Find(blocks, address);
            if (i < 0)
            {
                return false;
            }

            ulong available = blocks[i].Last - address + 1; // 0 only for a block ending at 2^64 - 1 entered at its start
            if (available == 0 || remaining <= available)
            {
                return true;
            }

            remaining -= available;
            address = blocks[i].Last + 1;
            if (address == 0)
            {
                return false; // crosses 2^64
            }
        }

        return true;
    }

    /// <summary>Index of the block containing <paramref name="address"/>, or -1 (binary search over sorted blocks).</summary>
    private static int Find(Block[] blocks, ulong address)
    {
        int lo = 0, hi = blocks.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            Block b = blocks[mid];
            if (address < b.First)
            {
                hi = mid - 1;
            }
            else if (address > b.Last)
            {
                lo = mid + 1;
            }
            else
            {
                return mid;
            }
        }

        return -1;
    }
}
