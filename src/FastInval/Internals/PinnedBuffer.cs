using System.Runtime.InteropServices;

namespace FastInval.Internals;

/// <summary>
/// The one owner of pinned memory in FastInval: a single 64-byte aligned, zeroed native allocation that
/// the cache tables carve into columns. Native memory keeps multi-gigabyte tables out of the GC heap and
/// gives every column a stable address for the lifetime of the owner.
/// </summary>
/// <remarks>
/// Threading: the allocation is created and freed by the owning table. Readers may access it until
/// <see cref="Dispose"/>; disposing while other threads still look up is a host error (the memory is freed).
/// </remarks>
internal sealed unsafe class PinnedBuffer : IDisposable
{
    public const int Alignment = 64;

    private byte* _base;
    private readonly nuint _length;
    private nuint _carved;

    public PinnedBuffer(nuint length)
    {
        _length = length == 0 ? Alignment : length;
        _base = (byte*)NativeMemory.AlignedAlloc(_length, Alignment);
        NativeMemory.Clear(_base, _length);
        GC.AddMemoryPressure((long)_length);
    }

    /// <summary>Total bytes owned.</summary>
    public nuint Length => _length;

    /// <summary>Rounds <paramref name="bytes"/> up to the alignment, so columns carved in order stay aligned.</summary>
    public static nuint Align(nuint bytes) => (bytes + (Alignment - 1)) & ~(nuint)(Alignment - 1);

    /// <summary>Returns the next aligned column of <paramref name="count"/> elements of <typeparamref name="T"/>.</summary>
    public T* Carve<T>(nuint count) where T : unmanaged
    {
        nuint bytes = Align(count * (nuint)sizeof(T));
        if (_base == null || _carved + bytes > _length)
        {
            ThrowHelper.Argument(nameof(count), "column does not fit in the pinned buffer");
        }

        T* p = (T*)(_base + _carved);
        _carved += bytes;
        return p;
    }

    public void Dispose()
    {
        if (_base != null)
        {
            NativeMemory.AlignedFree(_base);
            _base = null;
            GC.RemoveMemoryPressure((long)_length);
        }

        GC.SuppressFinalize(this);
    }

    ~PinnedBuffer()
    {
        if (_base != null)
        {
            NativeMemory.AlignedFree(_base);
            _base = null;
        }
    }
}
