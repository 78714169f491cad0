using System.Runtime.InteropServices;

namespace FastInval.Host;

/// <summary>
/// The libc calls the server needs for shared guest memory on Linux: <c>recvmsg</c> with an SCM_RIGHTS control buffer
/// (the socket's bytes and the file descriptors sent with them), <c>mmap</c>/<c>munmap</c> of a received file,
/// <c>lseek</c> for its size and <c>close</c>; plus <c>sendmsg</c> and <c>memfd_create</c> for clients written in C#
/// (tests). 64-bit Linux layouts only (struct msghdr is 56 bytes, struct cmsghdr 16).
/// </summary>
internal static unsafe partial class UnixFds
{
    public const int SolSocket = 1;
    public const int ScmRights = 1;
    public const int MsgDontWait = 0x40;
    public const int MsgCtrunc = 0x08;
    public const int MsgCmsgCloexec = 0x40000000;
    public const int EAgain = 11;
    public const int EIntr = 4;
    public const int ProtRead = 1;
    public const int ProtWrite = 2;
    public const int MapSharedFlag = 1;
    public const int SeekEnd = 2;

    /// <summary>Most descriptors one frame may carry (advertised in HELLO as max_fds_per_frame).</summary>
    public const int MaxFdsPerFrame = 8;

    /// <summary>Room for more descriptors than a frame may carry, so that an excess is seen (and refused) rather than cut.</summary>
    public const int ControlFds = 2 * MaxFdsPerFrame;

    private const int CmsgHeader = 16;

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public void* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint MMap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int MUnmap(nint address, nuint length);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LSeek(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int CloseFd(int fd);

    [LibraryImport("libc", EntryPoint = "memfd_create", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MemfdCreate(string name, uint flags);

    [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    private static partial int FTruncate(int fd, long length);

    [LibraryImport("libc", EntryPoint = "dup", SetLastError = true)]
    private static partial int DupFd(int fd);

    [LibraryImport("libc", EntryPoint = "pwrite", SetLastError = true)]
    private static partial nint PWrite(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "pipe", SetLastError = true)]
    private static partial int PipeFds(int* fds);

    /// <summary>A second descriptor of the same open file, or −errno.</summary>
    public static int Dup(int fd)
    {
        int d = DupFd(fd);
        return d < 0 ? -Marshal.GetLastPInvokeError() : d;
    }

    /// <summary>Writes all of <paramref name="bytes"/> at <paramref name="offset"/> of <paramref name="fd"/>. Returns 0,
    /// or −errno (−EIO for a write that stopped short).</summary>
    public static int WriteAt(int fd, ReadOnlySpan<byte> bytes, long offset)
    {
        fixed (byte* p = bytes)
        {
            int done = 0;
            while (done < bytes.Length)
            {
                nint n = PWrite(fd, p + done, (nuint)(bytes.Length - done), offset + done);
                if (n < 0)
                {
                    int e = Marshal.GetLastPInvokeError();
                    if (e == EIntr)
                    {
                        continue;
                    }

                    return -e;
                }

                if (n == 0)
                {
                    return -5; // EIO
                }

                done += (int)n;
            }

            return 0;
        }
    }

    /// <summary>A pipe: its read end in <paramref name="read"/>, its write end in <paramref name="write"/>; 0 or −errno.</summary>
    public static int Pipe(out int read, out int write)
    {
        int* fds = stackalloc int[2];
        read = write = -1;
        if (PipeFds(fds) != 0)
        {
            return -Marshal.GetLastPInvokeError();
        }

        read = fds[0];
        write = fds[1];
        return 0;
    }

    /// <summary>
    /// One non-blocking <c>recvmsg</c> into <paramref name="buffer"/>. Returns the bytes read (0 at end of stream) or
    /// −errno. The descriptors that came with the bytes are stored in <paramref name="fds"/> (close-on-exec), their
    /// number in <paramref name="fdCount"/>; <paramref name="truncated"/> is set when the kernel had to drop some
    /// (MSG_CTRUNC: it closes those itself).
    /// </summary>
    public static int Receive(int socket, Span<byte> buffer, Span<int> fds, out int fdCount, out bool truncated)
    {
        fdCount = 0;
        truncated = false;
        const int ControlBytes = CmsgHeader + (ControlFds * sizeof(int));
        byte* control = stackalloc byte[ControlBytes];
        new Span<byte>(control, ControlBytes).Clear();
        nint got;
        int flags;
        fixed (byte* data = buffer)
        {
            var iov = new IoVec { Base = data, Length = (nuint)buffer.Length };
            var message = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlBytes };
            got = RecvMsg(socket, &message, MsgDontWait | MsgCmsgCloexec);
            if (got < 0)
            {
                return -Marshal.GetLastPInvokeError();
            }

            flags = message.Flags;
            truncated = (flags & MsgCtrunc) != 0;
            // One SCM_RIGHTS message at most (the kernel merges the descriptors of one skb into one).
            nuint length = *(nuint*)control;
            if (message.ControlLength >= CmsgHeader && length > CmsgHeader &&
                *(int*)(control + 8) == SolSocket && *(int*)(control + 12) == ScmRights)
            {
                int n = (int)Math.Min((length - CmsgHeader) / sizeof(int), (nuint)ControlFds);
                for (int i = 0; i < n; i++)
                {
                    int fd = *(int*)(control + CmsgHeader + (i * sizeof(int)));
                    if (i < fds.Length)
                    {
                        fds[fdCount++] = fd;
                    }
                    else
                    {
                        Close(fd);
                        truncated = true;
                    }
                }
            }
        }

        return (int)got;
    }

    /// <summary><c>sendmsg</c> of <paramref name="data"/> with <paramref name="fds"/> as SCM_RIGHTS (blocking socket).
    /// Returns the bytes sent or −errno.</summary>
    public static int Send(int socket, ReadOnlySpan<byte> data, ReadOnlySpan<int> fds)
    {
        int controlBytes = fds.IsEmpty ? 0 : CmsgHeader + (fds.Length * sizeof(int));
        byte* control = stackalloc byte[Math.Max(controlBytes, 8)];
        if (controlBytes != 0)
        {
            *(nuint*)control = (nuint)controlBytes;
            *(int*)(control + 8) = SolSocket;
            *(int*)(control + 12) = ScmRights;
            for (int i = 0; i < fds.Length; i++)
            {
                *(int*)(control + CmsgHeader + (i * sizeof(int))) = fds[i];
            }
        }

        fixed (byte* p = data)
        {
            var iov = new IoVec { Base = p, Length = (nuint)data.Length };
            var message = new MsgHdr { Iov = &iov, IovLength = 1, Control = controlBytes == 0 ? null : control, ControlLength = (nuint)controlBytes };
            nint sent = SendMsg(socket, &message, 0);
            return sent < 0 ? -Marshal.GetLastPInvokeError() : (int)sent;
        }
    }

    /// <summary>Maps <paramref name="length"/> bytes of <paramref name="fd"/> at <paramref name="offset"/> read-write and
    /// shared. Returns the address, or 0 with <paramref name="errno"/> set.</summary>
    public static nint MapShared(int fd, ulong length, ulong offset, out int errno)
    {
        errno = 0;
        nint p = MMap(0, (nuint)length, ProtRead | ProtWrite, MapSharedFlag, fd, (long)offset);
        if (p == -1)
        {
            errno = Marshal.GetLastPInvokeError();
            return 0;
        }

        return p;
    }

    /// <summary>Removes a mapping made by <see cref="MapShared"/>.</summary>
    public static void Unmap(nint address, ulong length) => _ = MUnmap(address, (nuint)length);

    /// <summary>The size of the file behind <paramref name="fd"/> (its end offset), or −errno when it cannot seek.</summary>
    public static long FileSize(int fd)
    {
        long end = LSeek(fd, 0, SeekEnd);
        return end < 0 ? -Marshal.GetLastPInvokeError() : end;
    }

    /// <summary>Closes a descriptor (errors ignored: it is gone either way).</summary>
    public static void Close(int fd) => _ = CloseFd(fd);

    /// <summary>A memfd of <paramref name="length"/> zero bytes (close-on-exec), or −errno.</summary>
    public static int CreateMemfd(string name, long length)
    {
        int fd = MemfdCreate(name, 1 /* MFD_CLOEXEC */);
        if (fd < 0)
        {
            return -Marshal.GetLastPInvokeError();
        }

        if (FTruncate(fd, length) != 0)
        {
            int e = Marshal.GetLastPInvokeError();
            Close(fd);
            return -e;
        }

        return fd;
    }
}
