namespace FastInval.Reference.Uapi;

/// <summary>
/// The reference's own user address space: byte buffers at addresses the caller chooses, read and written one byte at a
/// time. An address inside no buffer faults.
/// </summary>
public sealed class ReferenceUserMemory
{
    private readonly List<(ulong Address, byte[] Bytes, int Length)> _buffers = [];

    /// <summary>Places the first <paramref name="length"/> bytes of <paramref name="bytes"/> at <paramref name="address"/>.</summary>
    public void Map(ulong address, byte[] bytes, int length) => _buffers.Add((address, bytes, length));

    /// <summary>The byte at <paramref name="address"/>, or false when no buffer holds it.</summary>
    public bool TryReadByte(ulong address, out byte value)
    {
        foreach ((ulong start, byte[] bytes, int length) in _buffers)
        {
            if (address >= start && address - start < (ulong)length)
            {
                value = bytes[(int)(address - start)];
                return true;
            }
        }

        value = 0;
        return false;
    }

    /// <summary>Writes one byte; false when no buffer holds the address.</summary>
    public bool TryWriteByte(ulong address, byte value)
    {
        foreach ((ulong start, byte[] bytes, int length) in _buffers)
        {
            if (address >= start && address - start < (ulong)length)
            {
                bytes[(int)(address - start)] = value;
                return true;
            }
        }

        return false;
    }

    /// <summary>Reads <paramref name="count"/> bytes starting at <paramref name="address"/> (the address wraps at 2^64 like
    /// the kernel's pointer arithmetic); null if any byte faults.</summary>
    public byte[]? Read(ulong address, int count)
    {
        byte[] result = new byte[count];
        for (int i = 0; i < count; i++)
        {
            if (!TryReadByte(unchecked(address + (ulong)i), out result[i]))
            {
                return null;
            }
        }

        return result;
    }

    /// <summary>Writes <paramref name="bytes"/> at <paramref name="address"/>; false if any byte faults (bytes before it stay written).</summary>
    public bool Write(ulong address, byte[] bytes)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            if (!TryWriteByte(unchecked(address + (ulong)i), bytes[i]))
            {
                return false;
            }
        }

        return true;
    }
}
