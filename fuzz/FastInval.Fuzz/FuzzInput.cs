using System.Buffers.Binary;

namespace FastInval.Fuzz;

/// <summary>Reads a fuzz input front to back; past the end every read returns zero, so every input is a valid program.</summary>
public ref struct FuzzInput
{
    private ReadOnlySpan<byte> _rest;

    /// <summary>Wraps an input.</summary>
    public FuzzInput(ReadOnlySpan<byte> input) => _rest = input;

    /// <summary>True when bytes remain.</summary>
    public readonly bool HasMore => !_rest.IsEmpty;

    /// <summary>Bytes left.</summary>
    public readonly int Remaining => _rest.Length;

    /// <summary>The next byte (0 past the end).</summary>
    public byte Byte()
    {
        if (_rest.IsEmpty)
        {
            return 0;
        }

        byte b = _rest[0];
        _rest = _rest[1..];
        return b;
    }

    /// <summary>The next little-endian u16.</summary>
    public ushort UInt16() => (ushort)(Byte() | (Byte() << 8));

    /// <summary>The next little-endian u32.</summary>
    public uint UInt32() => UInt16() | ((uint)UInt16() << 16);

    /// <summary>The next little-endian u64.</summary>
    public ulong UInt64() => UInt32() | ((ulong)UInt32() << 32);

    /// <summary>An element of a palette chosen by the next byte.</summary>
    public T Pick<T>(ReadOnlySpan<T> palette) => palette[Byte() % palette.Length];

    /// <summary>Copies the next <paramref name="destination"/>.Length bytes (zero-filled past the end).</summary>
    public void Bytes(scoped Span<byte> destination)
    {
        int n = Math.Min(destination.Length, _rest.Length);
        _rest[..n].CopyTo(destination);
        destination[n..].Clear();
        _rest = _rest[n..];
    }

    /// <summary>Reads a little-endian u64 from a span (helper for targets that slice records).</summary>
    public static ulong ReadUInt64(ReadOnlySpan<byte> bytes) => BinaryPrimitives.ReadUInt64LittleEndian(bytes);
}
