using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace FastInval.Uapi;

/// <summary>
/// The kernel's user-copy rules (include/linux/uaccess.h, include/linux/iommu.h; spec/iommufd-uapi.md §3) over a
/// "user view": the bytes readable from a user pointer up to the end of its mapping. Everything past the view faults.
/// </summary>
internal static class UserCopy
{
    /// <summary>
    /// <c>copy_struct_from_user(dst, dst.Length, src, usize)</c>: when the user's struct is longer than the kernel's,
    /// its extra bytes must be zero (E2BIG; scanned in address order, so a fault met before a non-zero byte is EFAULT);
    /// then min(usize, ksize) bytes are copied (EFAULT) and a shorter struct is zero-extended. Returns 0 or a negative errno.
    /// </summary>
    public static int CopyStruct(Span<byte> dst, ReadOnlySpan<byte> view, ulong usize)
    {
        ulong ksize = (ulong)dst.Length;
        if (usize > ksize)
        {
            int rc = CheckZeroed(view, ksize, usize);
            if (rc != 0)
            {
                return rc;
            }
        }

        int copy = (int)Math.Min(usize, ksize);
        if (view.Length < copy)
        {
            return -Errno.EFAULT;
        }

        view[..copy].CopyTo(dst);
        dst[copy..].Clear();
        return 0;
    }

    /// <summary><c>check_zeroed_user(src + from, to - from)</c>: 0 when every byte of [from, to) is zero, -E2BIG at the first
    /// non-zero byte, -EFAULT at the first byte outside the view.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int CheckZeroed(ReadOnlySpan<byte> view, ulong from, ulong to)
    {
        ulong end = Math.Min(to, (ulong)view.Length);
        if (from < end)
        {
            int i = view[(int)from..(int)end].IndexOfAnyExcept((byte)0);
            if (i >= 0)
            {
                return -Errno.E2BIG;
            }
        }

        return to > (ulong)view.Length ? -Errno.EFAULT : 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint U32(ReadOnlySpan<byte> s, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(s[offset..]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong U64(ReadOnlySpan<byte> s, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(s[offset..]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutU32(Span<byte> s, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(s[offset..], value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutU64(Span<byte> s, int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(s[offset..], value);
}
