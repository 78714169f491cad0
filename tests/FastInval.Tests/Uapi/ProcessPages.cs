using System.Runtime.InteropServices;

namespace FastInval.Tests.Uapi;

/// <summary>Three pages of this process from mmap: [0] read-write, [1] read-write until <see cref="MakeReadOnly"/>,
/// [2] without any access (PROT_NONE), so that an access running off page 1 faults.</summary>
/// <remarks>Page 2 is made inaccessible rather than unmapped: in this multi-threaded test process another thread's mmap
/// may land in a freshly unmapped hole at any moment (seen: a 24-byte read across the hole succeeded), while a PROT_NONE
/// page stays a fault. The kernel answers both the same way (EFAULT); the C tests, single-threaded, use a real munmap.</remarks>
internal sealed unsafe partial class ProcessPages : IDisposable
{
    private const int ProtRead = 1;
    private const int ProtWrite = 2;
    private const int MapPrivate = 2;
    private const int MapAnonymous = 0x20;

    public static readonly ulong PageSize = (ulong)Environment.SystemPageSize;

    public ProcessPages()
    {
        Base = (byte*)Mmap(null, (nuint)(3 * PageSize), ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        Assert.True((nint)Base != -1);
        Assert.Equal(0, Mprotect(Base + (2 * PageSize), (nuint)PageSize, 0));
    }

    public byte* Base { get; }

    /// <summary>Address of byte <paramref name="offset"/> (page 2 starts at 2 × page size).</summary>
    public ulong At(ulong offset) => (ulong)Base + offset;

    public Span<byte> Span(ulong offset, int length) => new(Base + offset, length);

    public ulong Unmapped => At(2 * PageSize); // inaccessible: see the remarks

    public void MakeReadOnly() => Assert.Equal(0, Mprotect(Base + PageSize, (nuint)PageSize, ProtRead));

    public void Dispose() => Assert.Equal(0, Munmap(Base, (nuint)(3 * PageSize)));

    [LibraryImport("libc", EntryPoint = "mmap")]
    private static partial void* Mmap(void* address, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap")]
    private static partial int Munmap(void* address, nuint length);

    [LibraryImport("libc", EntryPoint = "mprotect")]
    private static partial int Mprotect(void* address, nuint length, int prot);
}
