namespace FastInval;

/// <summary>Reads guest-physical memory for a <see cref="CallbackGuestMemory"/>: fill all of
/// <paramref name="destination"/> from <paramref name="address"/> and return true, or return false (a guest fault) if
/// any byte is not readable.</summary>
/// <param name="address">First guest-physical address; the range never crosses 2^64 and is never empty.</param>
/// <param name="destination">Where the bytes go.</param>
public delegate bool GuestMemoryReader(ulong address, Span<byte> destination);

/// <summary>Writes guest-physical memory for a <see cref="CallbackGuestMemory"/>: write all of <paramref name="source"/>
/// at <paramref name="address"/> and return true, or write nothing and return false (a guest fault) if any byte is not
/// writable.</summary>
/// <param name="address">First guest-physical address; the range never crosses 2^64 and is never empty.</param>
/// <param name="source">The bytes to write.</param>
public delegate bool GuestMemoryWriter(ulong address, ReadOnlySpan<byte> source);

/// <summary>
/// A guest-physical address space reached through the VMM's own accessor: a read callback and a write callback (for
/// example the VMM's DMA helpers over its memory map, with its own MMIO and ROM rules). Nothing is directly addressable,
/// so <see cref="GuestAddressSpace.TryGetSpan"/> always returns false.
/// </summary>
/// <remarks>
/// <para><b>Bounds.</b> An empty access succeeds without calling back; an access that would cross 2^64 fails without
/// calling back. Every other access is one call, and the callback decides: it must keep the all-or-nothing contract of
/// <see cref="GuestAddressSpace"/> (return false and write nothing if any byte is not accessible).</para>
/// <para><b>Calls</b> happen synchronously on the thread of the front end's register write, once per descriptor or
/// command fetched and once per status or MSI write. An exception thrown by a callback propagates to the host's register
/// write and nothing consumed is lost: a VT-d unit leaves IQH on the first descriptor it has not executed (fetched again
/// the next time the queue runs), an SMMUv3 executes the commands it has consumed and leaves CONS on the one whose fetch
/// threw. Invoking the delegates allocates nothing.</para>
/// </remarks>
public sealed class CallbackGuestMemory : GuestAddressSpace
{
    private readonly GuestMemoryReader _read;
    private readonly GuestMemoryWriter _write;

    /// <summary>Creates an address space over <paramref name="read"/> and <paramref name="write"/>.</summary>
    /// <exception cref="ArgumentNullException">A callback is null.</exception>
    public CallbackGuestMemory(GuestMemoryReader read, GuestMemoryWriter write)
    {
        ArgumentNullException.ThrowIfNull(read);
        ArgumentNullException.ThrowIfNull(write);
        _read = read;
        _write = write;
    }

    /// <inheritdoc/>
    public override bool TryRead(ulong address, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return true;
        }

        return !Wraps(address, destination.Length) && _read(address, destination);
    }

    /// <inheritdoc/>
    public override bool TryWrite(ulong address, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty)
        {
            return true;
        }

        return !Wraps(address, source.Length) && _write(address, source);
    }
}
