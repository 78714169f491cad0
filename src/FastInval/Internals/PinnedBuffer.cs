using System.Runtime.InteropServices;

namespace FastInval.Internals;

/// <summary>
/// The one owner of pinned memory in FastInval: a single aligned, zeroed native allocation that the cache tables
/// carve into columns. Native memory keeps multi-gigabyte tables out of the GC heap and gives every column a stable
/// address for the lifetime of the owner.
/// </summary>
/// <remarks>
/// <para>Large buffers (≥ 4 MiB) are aligned to 2 MiB and, on Linux, advised as transparent huge pages
/// (<c>madvise(MADV_HUGEPAGE)</c>) before first touch: a random lookup in a million-entry table then costs one cache
/// miss per column instead of a cache miss plus a page-walk. Where the advice is refused, ordinary pages are used.</para>
/// <para>Threading: the allocation is created and freed by the owning table. The public caches free it only through
/// their lifetime guard, which waits until no lookup or writer is inside (so no thread touches freed memory).</para>
/// </remarks>
internal sealed unsafe partial class PinnedBuffer : IDisposable
{
    public const int Alignment = 64;
    private const nuint HugePage = 2 * 1024 * 1024;
    private const nuint HugeThreshold = 4 * 1024 * 1024;
    private const int MadviseHugePage = 14; // MADV_HUGEPAGE

    private byte* _base;
    private readonly nuint _length;
    private nuint _carved;

    public PinnedBuffer(nuint length)
    {
        _length = length == 0 ? Alignment : length;
        bool huge = _length >= HugeThreshold;
        if (huge)
        {
            _length = (_length + HugePage - 1) & ~(HugePage - 1);
        }

        _base = (byte*)NativeMemory.AlignedAlloc(_length, huge ? HugePage : Alignment);
        if (huge && OperatingSystem.IsLinux())
        {
            try
            {
                HugePages = Madvise(_base, _length, MadviseHugePage) == 0;
            }
            catch (DllNotFoundException)
            {
            }
            catch (EntryPointNotFoundException)
            {
            }
        }

        NativeMemory.Clear(_base, _length);
        GC.AddMemoryPressure((long)_length);
    }

    /// <summary>Total bytes owned.</summary>
    public nuint Length => _length;

    /// <summary>True when the kernel accepted the huge-page advice.</summary>
    public bool HugePages { get; }

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

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);
}
