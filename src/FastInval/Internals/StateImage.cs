using System.Buffers.Binary;
using System.Numerics;

namespace FastInval.Internals;

/// <summary>
/// The 8-byte header every unit's migration image starts with (magic u32 at 0, version u16 at 4, size u16 at 6, all
/// little-endian), and the checks of it, shared by <c>VtdIommu</c>, <c>SmmuV3</c> and <c>AmdViIommu</c> (docs/migration.md).
/// </summary>
internal static class StateImage
{
    public const int HeaderSize = 8;

    /// <summary>Throws unless <paramref name="destination"/> has room for an image of <paramref name="size"/> bytes.</summary>
    public static void CheckDestination(Span<byte> destination, int size, string unit)
    {
        if (destination.Length < size)
        {
            ThrowHelper.Argument(nameof(destination), $"the {unit} state image needs {size} bytes");
        }
    }

    /// <summary>Writes the header into the first bytes of <paramref name="image"/>.</summary>
    public static void WriteHeader(Span<byte> image, uint magic, ushort version, int size)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(image, magic);
        BinaryPrimitives.WriteUInt16LittleEndian(image[4..], version);
        BinaryPrimitives.WriteUInt16LittleEndian(image[6..], (ushort)size);
    }

    /// <summary>Throws unless <paramref name="image"/> starts with this unit kind's magic, the known version and size,
    /// and holds at least that many bytes.</summary>
    public static void CheckHeader(ReadOnlySpan<byte> image, uint magic, ushort knownVersion, int knownSize, string unit)
    {
        if (image.Length < HeaderSize || BinaryPrimitives.ReadUInt32LittleEndian(image) != magic)
        {
            ThrowHelper.Argument(nameof(image), $"not a FastInval {unit} state image (magic)");
        }

        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(image[4..]);
        ushort size = BinaryPrimitives.ReadUInt16LittleEndian(image[6..]);
        if (version != knownVersion || size != knownSize || image.Length < knownSize)
        {
            ThrowHelper.Argument(nameof(image), $"{unit} state image version {version}, size {size} (of {image.Length} bytes): only version {knownVersion} with {knownSize} bytes is known");
        }
    }

    /// <summary>The little-endian u32 at <paramref name="offset"/>.</summary>
    public static uint U32(ReadOnlySpan<byte> image, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(image[offset..]);

    /// <summary>The little-endian u64 at <paramref name="offset"/>.</summary>
    public static ulong U64(ReadOnlySpan<byte> image, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(image[offset..]);

    /// <summary>Continues the CRC-32C (Castagnoli) <paramref name="crc"/> over <paramref name="data"/>, without the initial
    /// and final inversion (images whose size varies carry one, see the iommufd image).</summary>
    public static uint Crc32C(uint crc, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        }

        for (; i < data.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, data[i]);
        }

        return crc;
    }
}
