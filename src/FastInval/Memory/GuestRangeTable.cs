using FastInval.Internals;

namespace FastInval;

/// <summary>A mapped guest-physical range [<see cref="First"/>, <see cref="Last"/>] (both inclusive).</summary>
internal interface IGuestRange
{
    /// <summary>First guest-physical address of the range.</summary>
    ulong First { get; }

    /// <summary>Last guest-physical address of the range (inclusive).</summary>
    ulong Last { get; }
}

/// <summary>
/// The mapping tables of <see cref="GuestMemory"/> and <see cref="NativeGuestMemory"/>: immutable arrays of
/// non-overlapping ranges sorted by <see cref="IGuestRange.First"/>. Writers build a new array under their own lock and
/// publish it with a release store; readers take one snapshot with an acquire load and search it without a lock.
/// </summary>
internal static class GuestRangeTable
{
    /// <summary>A copy of <paramref name="table"/> with <paramref name="entry"/> in its sorted place.</summary>
    /// <exception cref="ArgumentException"><paramref name="entry"/> overlaps a range of the table.</exception>
    public static T[] Insert<T>(T[] table, in T entry, string paramName) where T : struct, IGuestRange
    {
        foreach (T r in table)
        {
            if (entry.First <= r.Last && entry.Last >= r.First)
            {
                ThrowHelper.Argument(paramName, $"mapping 0x{entry.First:x}..0x{entry.Last:x} overlaps 0x{r.First:x}..0x{r.Last:x}");
            }
        }

        var next = new T[table.Length + 1];
        int i = 0;
        while (i < table.Length && table[i].First < entry.First)
        {
            next[i] = table[i];
            i++;
        }

        next[i] = entry;
        Array.Copy(table, i, next, i + 1, table.Length - i);
        return next;
    }

    /// <summary>A copy of <paramref name="table"/> without the range that starts at <paramref name="first"/>, or null
    /// when there is none.</summary>
    public static T[]? Remove<T>(T[] table, ulong first) where T : struct, IGuestRange
    {
        int index = -1;
        for (int i = 0; i < table.Length; i++)
        {
            if (table[i].First == first)
            {
                index = i;
                break;
            }
        }

        if (index < 0)
        {
            return null;
        }

        var next = new T[table.Length - 1];
        Array.Copy(table, 0, next, 0, index);
        Array.Copy(table, index + 1, next, index, table.Length - index - 1);
        return next;
    }

    /// <summary>Index of the range containing <paramref name="address"/>, or -1 (binary search).</summary>
    public static int Find<T>(T[] table, ulong address) where T : struct, IGuestRange
    {
        int lo = 0, hi = table.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            ref readonly T r = ref table[mid];
            if (address < r.First)
            {
                hi = mid - 1;
            }
            else if (address > r.Last)
            {
                lo = mid + 1;
            }
            else
            {
                return mid;
            }
        }

        return -1;
    }

    /// <summary>True when every byte of [address, address + length) lies in ranges of the table (adjacent ranges may
    /// share the access; an empty access is always mapped, a negative length never; an access never wraps past
    /// 2^64).</summary>
    public static bool IsMapped<T>(T[] table, ulong address, int length) where T : struct, IGuestRange
    {
        if (length < 0)
        {
            return false;
        }

        ulong remaining = (ulong)length;
        while (remaining > 0)
        {
            int i = Find(table, address);
            if (i < 0)
            {
                return false;
            }

            ulong last = table[i].Last;
            ulong available = last - address + 1; // 0 only for a range ending at 2^64 - 1 entered at address 0
            if (available == 0 || remaining <= available)
            {
                return true;
            }

            remaining -= available;
            address = last + 1;
            if (address == 0)
            {
                return false; // crosses 2^64
            }
        }

        return true;
    }
}
