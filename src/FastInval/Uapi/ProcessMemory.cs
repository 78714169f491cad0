using System.Runtime.InteropServices;

namespace FastInval.Uapi;

/// <summary>
/// The calling process's own memory as the user address space of an <see cref="Iommufd"/>: the pointers inside ioctl
/// arguments are real addresses of this process, read and written in place, as the kernel's copy_from_user and
/// copy_to_user would. A pointer into an unmapped page, or a write into a page that is not writable, is a fault
/// (EFAULT), never a signal.
/// </summary>
/// <remarks>
/// <para><b>How faults are caught.</b> Every access goes through <c>process_vm_readv</c> / <c>process_vm_writev</c> on the
/// process's own pid. The kernel performs the copy with its own user-access routines, so an unmapped page, a page without
/// read (or, for writes, write) permission and a kernel-half address all end the copy with EFAULT (or a short count at
/// the first bad page) instead of raising SIGSEGV in the caller. Checking a range with <c>mincore</c> or <c>msync</c>
/// first would race with another thread's <c>munmap</c>, and would not see protections; these calls check and copy in
/// one step.</para>
/// <para><b>Availability.</b> A seccomp filter may forbid the two calls (some container profiles do unless the process may
/// ptrace); <see cref="Current"/> then throws <see cref="PlatformNotSupportedException"/>, as it does off Linux.</para>
/// <para><b>Threading.</b> Safe from any thread. <b>Allocation:</b> none.</para>
/// </remarks>
public sealed unsafe partial class ProcessMemory : UserAddressSpace
{
    private static ProcessMemory? s_current;
    private static readonly object s_lock = new();

    private ProcessMemory()
    {
    }

    /// <summary>The calling process's memory (one instance per process).</summary>
    /// <exception cref="PlatformNotSupportedException">Not Linux, or <c>process_vm_readv</c> is not permitted here.</exception>
    public static ProcessMemory Current
    {
        get
        {
            ProcessMemory? current = Volatile.Read(ref s_current);
            return current ?? Create();
        }
    }

    private static ProcessMemory Create()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the process's own memory is reached through Linux process_vm_readv");
        }

        lock (s_lock)
        {
            if (s_current is null)
            {
                var memory = new ProcessMemory();
                ulong probe = 0x0123_4567_89AB_CDEF, copy = 0;
                int errno = Marshal.GetLastSystemError();
                Transfer((ulong)&copy, (byte*)&probe, sizeof(ulong), write: true, out nint n);
                int probeErrno = Marshal.GetLastSystemError();
                Marshal.SetLastSystemError(errno);
                if (n != sizeof(ulong) || copy != probe)
                {
                    throw new PlatformNotSupportedException($"process_vm_writev on the own process failed (errno {probeErrno})");
                }

                s_current = memory;
            }

            return s_current;
        }
    }

    /// <summary>Reads from a real address of this process; false on a fault.</summary>
    public override bool TryRead(ulong address, Span<byte> destination) => ReadPrefix(address, destination) == destination.Length;

    /// <summary>Writes to a real address of this process; false on a fault (bytes of the pages before the faulting one may
    /// have been written, as copy_to_user may).</summary>
    public override bool TryWrite(ulong address, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty)
        {
            return true;
        }

        fixed (byte* p = source)
        {
            return Copy(address, p, source.Length, write: true) == source.Length;
        }
    }

    /// <inheritdoc/>
    internal override int ReadPrefix(ulong address, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return 0;
        }

        fixed (byte* p = destination)
        {
            return Copy(address, p, destination.Length, write: false);
        }
    }

    /// <summary>Copies until done or the first fault; returns the bytes copied.</summary>
    private static int Copy(ulong address, byte* local, int length, bool write)
    {
        if (address + (ulong)length < address)
        {
            return 0; // wraps: access_ok fails for the whole range
        }

        int done = 0;
        while (done < length)
        {
            Transfer(address + (ulong)done, local + done, length - done, write, out nint n);
            if (n <= 0)
            {
                break;
            }

            done += (int)n;
        }

        return done;
    }

    /// <summary>One process_vm_readv/writev call. errno is left as the call set it: callers outside .NET (the C ABI) save
    /// and restore theirs around an ioctl.</summary>
    private static void Transfer(ulong address, byte* local, int length, bool write, out nint n)
    {
        int pid = GetPid(); // not cached: a forked child must reach its own memory, not its parent's
        var localVec = new IoVec { Base = local, Length = (nuint)length };
        var remoteVec = new IoVec { Base = (void*)address, Length = (nuint)length };
        n = write
            ? ProcessVmWritev(pid, &localVec, 1, &remoteVec, 1, 0)
            : ProcessVmReadv(pid, &localVec, 1, &remoteVec, 1, 0);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [LibraryImport("libc", EntryPoint = "getpid")]
    private static partial int GetPid();

    [LibraryImport("libc", EntryPoint = "process_vm_readv")]
    private static partial nint ProcessVmReadv(int pid, IoVec* local, nuint localCount, IoVec* remote, nuint remoteCount, nuint flags);

    [LibraryImport("libc", EntryPoint = "process_vm_writev")]
    private static partial nint ProcessVmWritev(int pid, IoVec* local, nuint localCount, IoVec* remote, nuint remoteCount, nuint flags);
}
