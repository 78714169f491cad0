namespace FastInval.Uapi;

/// <summary>
/// The memory that the user pointers of iommufd structs (<c>data_uptr</c>, entry arrays) resolve in: either an emulated
/// address space (<see cref="UserMemory"/>: caller-owned buffers mapped at made-up addresses, for tests and fuzzing) or
/// the calling process's own memory (<see cref="ProcessMemory"/>: the pointers are real addresses). Every access that
/// does not resolve is a fault, which the iommufd front end answers with EFAULT as the kernel does.
/// </summary>
/// <remarks>Threading: every member may be called from any thread.</remarks>
public abstract class UserAddressSpace
{
    private const int ZeroCheckChunk = 256;

    private protected UserAddressSpace()
    {
    }

    /// <summary>Copies <paramref name="destination"/>.Length bytes from <paramref name="address"/>; false on a fault
    /// (the destination's contents are then unspecified).</summary>
    public abstract bool TryRead(ulong address, Span<byte> destination);

    /// <summary>Copies <paramref name="source"/> to <paramref name="address"/>; false on a fault (bytes before the faulting
    /// page may have been written, as with the kernel's copy_to_user).</summary>
    public abstract bool TryWrite(ulong address, ReadOnlySpan<byte> source);

    /// <summary>Copies the longest readable prefix of [address, address + destination.Length) and returns its length.</summary>
    internal abstract int ReadPrefix(ulong address, Span<byte> destination);

    /// <summary>The emulated space, whose buffers the front end reads in place; null for the process's own memory.</summary>
    internal virtual UserMemory? Emulated => null;

    /// <summary><c>check_zeroed_user(address, length)</c> in address order: 0 when every byte is zero, -E2BIG at the first
    /// non-zero byte, -EFAULT at the first unreadable one.</summary>
    internal int CheckZeroed(ulong address, ulong length)
    {
        Span<byte> chunk = stackalloc byte[ZeroCheckChunk];
        while (length != 0)
        {
            int n = (int)Math.Min(length, (ulong)ZeroCheckChunk);
            int readable = ReadPrefix(address, chunk[..n]);
            if (chunk[..readable].IndexOfAnyExcept((byte)0) >= 0)
            {
                return -Errno.E2BIG;
            }

            if (readable < n)
            {
                return -Errno.EFAULT;
            }

            address += (ulong)n;
            length -= (ulong)n;
        }

        return 0;
    }
}
