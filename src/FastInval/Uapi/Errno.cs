namespace FastInval.Uapi;

/// <summary>
/// The Linux generic errno numbers <see cref="Iommufd.Ioctl"/> answers with (negated, as the kernel returns them);
/// identical on x86-64 and arm64.
/// </summary>
public static class Errno
{
    /// <summary>No such object (missing, reserved, destroyed or wrong-type id).</summary>
    public const int ENOENT = 2;

    /// <summary>I/O error: an SMMUv3 command the vIOMMU does not accept or cannot convert; invalid vSTE data.</summary>
    public const int EIO = 5;

    /// <summary>Argument list too long: non-zero bytes beyond the kernel's struct size.</summary>
    public const int E2BIG = 7;

    /// <summary>Out of memory: a driver's whole-array copy larger than the kernel's kmalloc limit.</summary>
    public const int ENOMEM = 12;

    /// <summary>Bad address: an access outside every mapping of the <see cref="UserMemory"/>.</summary>
    public const int EFAULT = 14;

    /// <summary>Device or resource busy: the object is still in use.</summary>
    public const int EBUSY = 16;

    /// <summary>File exists: duplicate virtual id, or a device that already has a vDEVICE.</summary>
    public const int EEXIST = 17;

    /// <summary>No such device: IOMMU_VFIO_IOAS GET without a compatibility IOAS.</summary>
    public const int ENODEV = 19;

    /// <summary>Invalid argument.</summary>
    public const int EINVAL = 22;

    /// <summary>Inappropriate ioctl: unknown request code.</summary>
    public const int ENOTTY = 25;

    /// <summary>Bad file descriptor: a fault-queue read, write or close on a descriptor that is not open.</summary>
    public const int EBADF = 9;

    /// <summary>No space left: the domain-id (DID / VMID) space is exhausted.</summary>
    public const int ENOSPC = 28;

    /// <summary>Illegal seek: a fault-queue read or write whose length is not a multiple of the record size.</summary>
    public const int ESPIPE = 29;

    /// <summary>Value too large: an IOVA or length at or above ULONG_MAX (IOAS_MAP, IOAS_COPY, IOAS_UNMAP).</summary>
    public const int EOVERFLOW = 75;

    /// <summary>Operation not supported.</summary>
    public const int EOPNOTSUPP = 95;

    /// <summary>Timed out: an SMMUv3 ATC invalidation that never completed.</summary>
    public const int ETIMEDOUT = 110;

    /// <summary>The symbolic name of <paramref name="errno"/> (sign ignored), for messages.</summary>
    public static string Name(int errno) => Math.Abs(errno) switch
    {
        0 => "0",
        ENOENT => nameof(ENOENT),
        EIO => nameof(EIO),
        E2BIG => nameof(E2BIG),
        ENOMEM => nameof(ENOMEM),
        EFAULT => nameof(EFAULT),
        EBUSY => nameof(EBUSY),
        EEXIST => nameof(EEXIST),
        ENODEV => nameof(ENODEV),
        EINVAL => nameof(EINVAL),
        ENOTTY => nameof(ENOTTY),
        EBADF => nameof(EBADF),
        ENOSPC => nameof(ENOSPC),
        ESPIPE => nameof(ESPIPE),
        EOVERFLOW => nameof(EOVERFLOW),
        EOPNOTSUPP => nameof(EOPNOTSUPP),
        ETIMEDOUT => nameof(ETIMEDOUT),
        int other => "errno " + other.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
