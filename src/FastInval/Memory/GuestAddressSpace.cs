using System.Buffers.Binary;

namespace FastInval;

/// <summary>
/// A guest-physical address space as a front end sees it: the memory its invalidation or command queue lives in, and
/// where wait-descriptor status writes and CMD_SYNC MSI writes land. A VMM passes whichever implementation matches how it
/// holds guest RAM: <see cref="GuestMemory"/> (managed <see cref="Memory{T}"/> buffers), <see cref="NativeGuestMemory"/>
/// (native pointer ranges of any size, such as mmap'd RAM blocks) or <see cref="CallbackGuestMemory"/> (the VMM's own
/// read/write accessor).
/// </summary>
/// <remarks>
/// <para><b>Contract.</b> An access either reaches every byte of [address, address + length) or none: a read that cannot
/// be satisfied fills nothing the caller may rely on and returns <c>false</c>, a write that cannot be satisfied writes
/// nothing and returns <c>false</c>. Guest addresses are not wrapped: an access that would cross 2^64 fails. An empty
/// access succeeds at any address. Failures are guest faults, never exceptions; front ends turn them into the architected
/// error (VT-d IQE with a fetch-error code, or IQEI 0 for a wait-status write; SMMU CERROR_ABT or
/// GERROR.MSI_CMDQ_ABT_ERR).</para>
/// <para><b>Speed.</b> This is an abstract class, not an interface, so that a front end's descriptor fetch is one virtual
/// call that copies 16 or 32 bytes; the implementations here allocate nothing per access.
/// <see cref="TryGetSpan"/> is the zero-copy path: it hands out the host memory behind a range when the range is directly
/// addressable and contiguous on the host.</para>
/// </remarks>
public abstract class GuestAddressSpace
{
    /// <summary>Initializes the base class.</summary>
    protected GuestAddressSpace()
    {
    }

    /// <summary>Copies guest memory at <paramref name="address"/> into <paramref name="destination"/>; false (a guest fault)
    /// unless every byte could be read.</summary>
    public abstract bool TryRead(ulong address, Span<byte> destination);

    /// <summary>Copies <paramref name="source"/> into guest memory at <paramref name="address"/>; nothing is written (and
    /// false returned) unless every byte can be written.</summary>
    public abstract bool TryWrite(ulong address, ReadOnlySpan<byte> source);

    /// <summary>The zero-copy path: when [address, address + length) is backed by one contiguous piece of host memory,
    /// sets <paramref name="span"/> to it and returns true; otherwise (unmapped, split between host blocks, or not directly
    /// addressable at all) returns false and the caller uses <see cref="TryRead"/> / <see cref="TryWrite"/>. The span is
    /// valid while the mapping behind it stays mapped. The base implementation always returns false.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    public virtual bool TryGetSpan(ulong address, int length, out Span<byte> span)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        span = default;
        return false;
    }

    /// <summary>Reads a little-endian u32 (0 on a fault).</summary>
    public bool TryReadUInt32(ulong address, out uint value)
    {
        Span<byte> b = stackalloc byte[4];
        bool ok = TryRead(address, b);
        value = ok ? BinaryPrimitives.ReadUInt32LittleEndian(b) : 0;
        return ok;
    }

    /// <summary>Reads a little-endian u64 (0 on a fault).</summary>
    public bool TryReadUInt64(ulong address, out ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        bool ok = TryRead(address, b);
        value = ok ? BinaryPrimitives.ReadUInt64LittleEndian(b) : 0;
        return ok;
    }

    /// <summary>Writes a little-endian u32.</summary>
    public bool TryWriteUInt32(ulong address, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return TryWrite(address, b);
    }

    /// <summary>Writes a little-endian u64.</summary>
    public bool TryWriteUInt64(ulong address, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return TryWrite(address, b);
    }

    /// <summary>True when an access of <paramref name="length"/> bytes at <paramref name="address"/> would cross 2^64.</summary>
    private protected static bool Wraps(ulong address, int length) => length > 0 && address + (ulong)(length - 1) < address;
}
