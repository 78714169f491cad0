using System.Runtime.InteropServices;
using FastInval.Uapi;

namespace FastInval.Native;

/// <summary>
/// The C entry points of an iommufd fault queue's file (IOMMU_FAULT_QUEUE_ALLOC's out_fault_fd): read, write and close,
/// which libiommufd-preload.so routes read(2), write(2) and close(2) on that descriptor to. Buffers are user memory of
/// the calling process, checked byte by byte (EFAULT, never a signal). Every entry point returns a count or a negative
/// errno and leaves <c>errno</c> alone.
/// </summary>
internal static unsafe class NativePreloadExports
{
    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_fault_read")]
    public static long FaultRead(ulong handle, uint faultId, void* buffer, nuint count) => FaultIo(handle, faultId, buffer, count, write: false);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_fault_write")]
    public static long FaultWrite(ulong handle, uint faultId, void* buffer, nuint count) => FaultIo(handle, faultId, buffer, count, write: true);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_fault_close")]
    public static int FaultClose(ulong handle, uint faultId)
    {
        int rc = HandleTable.Enter(handle, HandleKind.Iommufd, out Iommufd? fd);
        if (rc != 0)
        {
            return rc;
        }

        int errno = Marshal.GetLastSystemError();
        try
        {
            return fd!.CloseFaultFile(faultId);
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
            Marshal.SetLastSystemError(errno);
        }
    }

    private static long FaultIo(ulong handle, uint faultId, void* buffer, nuint count, bool write)
    {
        int rc = HandleTable.Enter(handle, HandleKind.Iommufd, out Iommufd? fd);
        if (rc != 0)
        {
            return rc;
        }

        int errno = Marshal.GetLastSystemError();
        try
        {
            return write
                ? fd!.WriteFaultResponsesAt(faultId, (ulong)buffer, count)
                : fd!.ReadFaultsAt(faultId, (ulong)buffer, count);
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
            Marshal.SetLastSystemError(errno);
        }
    }
}
