namespace FastInval.Native;

/// <summary>The Linux errno numbers the C ABI answers with (negated), and the mapping of host-misuse exceptions.</summary>
internal static class NativeErrno
{
    public const int ENOENT = 2;
    public const int EIO = 5;
    public const int EBADF = 9;
    public const int ENOMEM = 12;
    public const int EFAULT = 14;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int EINVAL = 22;
    public const int EMFILE = 24;
    public const int ENOSPC = 28;
    public const int ERANGE = 34;
    public const int ENOSYS = 38;

    /// <summary>The code an exception that reached an entry point becomes: nothing but a code crosses the boundary.</summary>
    public static int FromException(Exception e) => e switch
    {
        OutOfMemoryException or InsufficientExecutionStackException => -ENOMEM,
        ObjectDisposedException => -EBADF,
        PlatformNotSupportedException => -ENOSYS,
        ArgumentException => -EINVAL, // includes ArgumentOutOfRangeException
        InvalidOperationException => -EINVAL,
        _ => -EIO,
    };
}
