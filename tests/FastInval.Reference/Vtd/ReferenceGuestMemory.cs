namespace FastInval.Reference.Vtd;

/// <summary>
/// The reference's own guest-physical memory: a list of byte arrays at base addresses, read and written one byte at a
/// time. An access touching any unmapped byte fails as a whole and changes nothing.
/// </summary>
public sealed class ReferenceGuestMemory
{
    private readonly List<(ulong Base, byte[] Bytes)> _regions = [];

    /// <summary>Maps <paramref name="bytes"/> (not copied) at <paramref name="guestAddress"/>.</summary>
    public void Map(ulong guestAddress, byte[] bytes) => _regions.Add((guestAddress, bytes));

    private bool TryLocate(ulong address, out byte[] bytes, out int index)
    {
        foreach ((ulong b, byte[] r) in _regions)
        {
            if (address >= b && address - b < (ulong)r.Length)
            {
                bytes = r;
                index = (int)(address - b);
                return true;
            }
        }

        bytes = [];
        index = 0;
        return false;
    }

    /// <summary>Reads <paramref name="length"/> bytes, or null if any of them is unmapped (or the range wraps).</summary>
    public byte[]? Read(ulong address, int length)
    {
        var result = new byte[length];
        for (int i = 0; i < length; i++)
        {
            ulong a = address + (ulong)i;
            if (a < address || !TryLocate(a, out byte[] bytes, out int index))
            {
                return null;
            }

            result[i] = bytes[index];
        }

        return result;
    }

    /// <summary>Writes <paramref name="data"/>; false (and nothing written) if any byte is unmapped.</summary>
    public bool Write(ulong address, byte[] data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            ulong a = address + (ulong)i;
            if (a < address || !TryLocate(a, out _, out _))
            {
                return false;
            }
        }

        for (int i = 0; i < data.Length; i++)
        {
            TryLocate(address + (ulong)i, out byte[] bytes, out int index);
            bytes[index] = data[i];
        }

        return true;
    }
}
