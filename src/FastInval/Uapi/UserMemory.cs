namespace FastInval.Uapi;

/// <summary>
/// An emulated user address space: caller-owned buffers mapped at user addresses, so that the pointers inside iommufd
/// structs (<c>data_uptr</c>) resolve as they would in a process. Every access that is not entirely inside one mapping
/// is a fault (EFAULT).
/// </summary>
/// <remarks>
/// <para><b>Layout.</b> Mappings are placed in ascending order from 0x10000; each starts 4 KiB aligned and is followed by
/// at least one unmapped 4 KiB page, so two mappings are never adjacent and an access running off the end of one always
/// faults. A mapping is exactly the buffer's length: the bytes after its end, up to the next page, are unmapped too
/// (finer than a real process, whose faults come per page; FastInval's copy helpers therefore see faults at byte
/// granularity).</para>
/// <para><b>Threading.</b> <see cref="Map"/> and <see cref="Unmap"/> may be called from any thread, also while an
/// ioctl runs (it sees the mappings as they were when it looked). The buffers' contents are the caller's: an ioctl reads
/// and writes them in place.</para>
/// </remarks>
public sealed class UserMemory : UserAddressSpace
{
    /// <summary>The first address handed out (0 stays unmapped, as does the page after every mapping).</summary>
    public const ulong FirstAddress = 0x10000;

    private const ulong PageSize = 4096;

    private readonly object _lock = new();
    private Mapping[] _mappings = [];
    private ulong _next = FirstAddress;

    /// <summary>Maps <paramref name="buffer"/> and returns its user address (non-zero, 4 KiB aligned).</summary>
    public ulong Map(Memory<byte> buffer)
    {
        lock (_lock)
        {
            ulong address = _next;
            ulong length = (ulong)buffer.Length;
            _next = address + ((length + PageSize - 1) & ~(PageSize - 1)) + PageSize;
            Mapping[] old = _mappings;
            var grown = new Mapping[old.Length + 1];
            old.CopyTo(grown, 0);
            grown[^1] = new Mapping(address, buffer);
            Volatile.Write(ref _mappings, grown); // ascending by construction
            return address;
        }
    }

    /// <summary>Removes the mapping that starts at <paramref name="address"/>; false if there is none.</summary>
    public bool Unmap(ulong address)
    {
        lock (_lock)
        {
            Mapping[] old = _mappings;
            int index = Array.FindIndex(old, m => m.Address == address);
            if (index < 0)
            {
                return false;
            }

            var shrunk = new Mapping[old.Length - 1];
            Array.Copy(old, 0, shrunk, 0, index);
            Array.Copy(old, index + 1, shrunk, index, old.Length - index - 1);
            Volatile.Write(ref _mappings, shrunk);
            return true;
        }
    }

    /// <summary>Copies <paramref name="destination"/>.Length bytes from <paramref name="address"/>; false (nothing copied) on a fault.</summary>
    public override bool TryRead(ulong address, Span<byte> destination)
    {
        if (!TryGetSpan(address, (ulong)destination.Length, out Span<byte> source))
        {
            return false;
        }

        source.CopyTo(destination);
        return true;
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="address"/>; false (nothing written) on a fault.</summary>
    public override bool TryWrite(ulong address, ReadOnlySpan<byte> source)
    {
        if (!TryGetSpan(address, (ulong)source.Length, out Span<byte> destination))
        {
            return false;
        }

        source.CopyTo(destination);
        return true;
    }

    /// <inheritdoc/>
    internal override int ReadPrefix(ulong address, Span<byte> destination)
    {
        Span<byte> tail = Tail(address);
        int n = Math.Min(tail.Length, destination.Length);
        tail[..n].CopyTo(destination);
        return n;
    }

    /// <inheritdoc/>
    internal override UserMemory? Emulated => this;

    /// <summary>The bytes [address, address + length) when they lie inside one mapping. A zero-length access always
    /// succeeds, at any address (as copy_from_user of 0 bytes does).</summary>
    internal bool TryGetSpan(ulong address, ulong length, out Span<byte> span)
    {
        if (length == 0)
        {
            span = default;
            return true;
        }

        Span<byte> tail = Tail(address);
        if ((ulong)tail.Length < length)
        {
            span = default;
            return false;
        }

        span = tail[..(int)length];
        return true;
    }

    /// <summary>The bytes from <paramref name="address"/> to the end of the mapping that contains it (empty when the address
    /// is unmapped or is the end of a mapping).</summary>
    internal Span<byte> Tail(ulong address)
    {
        Mapping[] mappings = Volatile.Read(ref _mappings);
        int lo = 0, hi = mappings.Length - 1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            Mapping m = mappings[mid];
            if (address < m.Address)
            {
                hi = mid - 1;
            }
            else if (address - m.Address >= (ulong)m.Buffer.Length)
            {
                lo = mid + 1;
            }
            else
            {
                return m.Buffer.Span[(int)(address - m.Address)..];
            }
        }

        return default;
    }

    private readonly record struct Mapping(ulong Address, Memory<byte> Buffer);
}
