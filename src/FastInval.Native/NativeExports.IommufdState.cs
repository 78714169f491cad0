using System.Runtime.InteropServices;
using FastInval.Uapi;

namespace FastInval.Native;

/// <summary>The iommufd state entry points (fastinval.h, "iommufd state: migration and reset"): save, restore, reset,
/// and the descriptor of a fault object (fresh after a restore).</summary>
internal static unsafe partial class NativeExports
{
    private const int ERANGE = 34;

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_save_state")]
    public static int IommufdSaveState(ulong handle, byte* buffer, nuint size, nuint* needed)
    {
        if (needed == null || (buffer == null && size != 0))
        {
            return -NativeErrno.EFAULT;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Iommufd, out Iommufd? fd);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            int imageSize = fd!.StateSize;
            *needed = (nuint)imageSize;
            if (buffer == null)
            {
                return 0; // the size query
            }

            if (size < (nuint)imageSize)
            {
                return -ERANGE;
            }

            // Calls on one context are serialized by the caller's ioctl discipline; should an ioctl from another thread
            // have grown the table since the query above, SaveState refuses the short span and nothing is written.
            *needed = (nuint)fd.SaveState(new Span<byte>(buffer, imageSize));
            return 0;
        }
        catch (ArgumentException)
        {
            return -ERANGE;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_restore_state")]
    public static int IommufdRestoreState(ulong handle, byte* image, nuint size)
    {
        if (image == null && size != 0)
        {
            return -NativeErrno.EFAULT;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Iommufd, out Iommufd? fd);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            if (size > int.MaxValue)
            {
                return -NativeErrno.EINVAL;
            }

            fd!.RestoreState(new ReadOnlySpan<byte>(image, (int)size));
            return 0;
        }
        catch (ArgumentException)
        {
            return -NativeErrno.EINVAL;
        }
        catch (InvalidOperationException e) when (e is not ObjectDisposedException)
        {
            return -NativeErrno.EEXIST; // the C ABI has no callbacks into a context, so this is a context that is not fresh
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_reset")]
    public static int IommufdReset(ulong handle)
    {
        int rc = HandleTable.Enter(handle, HandleKind.Iommufd, out Iommufd? fd);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            fd!.Reset();
            return 0;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_fault_fd")]
    public static int IommufdFaultFd(ulong handle, uint faultId)
    {
        int rc = HandleTable.Enter(handle, HandleKind.Iommufd, out Iommufd? fd);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            int descriptor = fd!.FaultDescriptor(faultId);
            return descriptor >= 0 ? descriptor : -NativeErrno.ENOENT;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }
}
