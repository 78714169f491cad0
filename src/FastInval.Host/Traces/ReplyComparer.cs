using System.Buffers.Binary;
using System.Globalization;

namespace FastInval.Host.Traces;

/// <summary>Compares a recorded frame the server sent with the one a replay sent, field by field (docs/traces.md §5),
/// and names the first field that differs.</summary>
internal static class ReplyComparer
{
    private static readonly (int Offset, int Size, string Name)[] s_header =
        [(4, 2, "type"), (6, 2, "status"), (8, 4, "request_id"), (12, 4, "unit_id")];

    private static readonly (int Offset, int Size, string Name)[] s_error = [(0, 4, "detail"), (4, 4, "reserved")];

    private static readonly (int Offset, int Size, string Name)[] s_hello =
    [
        (0, 2, "major"), (2, 2, "minor"), (4, 4, "max_frame_bytes"), (8, 4, "max_units_per_connection"), (12, 4, "max_outstanding_requests"),
        (16, 4, "max_connections"), (20, 4, "max_cache_entries"), (24, 4, "server_flags"), (28, 4, "reserved"),
    ];

    private static readonly (int Offset, int Size, string Name)[] s_unitStats =
    [
        (0, 4, "iotlb_capacity"), (4, 4, "iotlb_count"), (8, 4, "device_tlb_capacity"), (12, 4, "device_tlb_count"), (16, 4, "config_capacity"),
        (20, 4, "config_count"), (24, 8, "device_tlb_invalidations"), (32, 8, "requests"), (40, 8, "descriptors"), (48, 8, "fills"),
        (56, 8, "memory_bytes"),
    ];

    private static readonly (int Offset, int Size, string Name)[] s_lookupResult =
    [
        (0, 1, "hit"), (1, 1, "size_log2"), (2, 1, "flags"), (3, 1, "kind"), (4, 2, "rights"), (6, 2, "domain_id"), (8, 8, "translated"),
        (16, 8, "input_base"), (24, 4, "source_id"), (28, 4, "address_space_id"),
    ];

    private static readonly (int Offset, int Size, string Name)[] s_executePrefix =
        [(0, 4, "ok"), (4, 4, "timed_out"), (8, 4, "completion_errors"), (12, 4, "invalid"), (16, 4, "first_failure_index"), (20, 4, "count")];

    /// <summary>The protocol's name of a request type.</summary>
    public static string TypeName(ushort type) => type switch
    {
        MessageType.Hello => "HELLO",
        MessageType.Create => "CREATE",
        MessageType.Destroy => "DESTROY",
        MessageType.Fill => "FILL",
        MessageType.Lookup => "LOOKUP",
        MessageType.Execute => "EXECUTE",
        MessageType.FaultPlan => "FAULT_PLAN",
        MessageType.Stats => "STATS",
        MessageType.RegisterRead => "REG_READ",
        MessageType.RegisterWrite => "REG_WRITE",
        MessageType.IommufdIoctl => "IOMMUFD_IOCTL",
        MessageType.MapSharedCache => "MAP_SHARED_CACHE",
        _ => string.Create(CultureInfo.InvariantCulture, $"0x{type:X4}"),
    };

    /// <summary>The first field of <paramref name="replayed"/> that differs from <paramref name="recorded"/>, or null.
    /// <paramref name="replayedUnit"/> is the replayed frame's unit id in the trace's numbering; <paramref name="created"/>
    /// says both are successful CREATE replies (whose payload carries the unit id too).</summary>
    public static string? FirstDifference(ReadOnlySpan<byte> recorded, ReadOnlySpan<byte> replayed, uint replayedUnit, bool created,
        out string recordedValue, out string replayedValue)
    {
        recordedValue = replayedValue = "";
        foreach ((int offset, int size, string name) in s_header)
        {
            ulong a = Read(recorded, offset, size);
            ulong b = offset == 12 ? replayedUnit : Read(replayed, offset, size);
            if (a != b)
            {
                recordedValue = Show(a, size);
                replayedValue = Show(b, size);
                return name;
            }
        }

        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(recorded[4..]);
        ushort status = BinaryPrimitives.ReadUInt16LittleEndian(recorded[6..]);
        uint unit = BinaryPrimitives.ReadUInt32LittleEndian(recorded[12..]);
        ReadOnlySpan<byte> a1 = recorded[ProtocolConstants.HeaderSize..];
        ReadOnlySpan<byte> b1 = replayed[ProtocolConstants.HeaderSize..];
        int common = Math.Min(a1.Length, b1.Length);
        for (int i = 0; i < common; i++)
        {
            if (a1[i] == b1[i] || Ignored(type, status, unit, created, i))
            {
                continue;
            }

            (int offset, int size, string name) = Field(type, status, i);
            recordedValue = Show(Read(a1, offset, size), size);
            replayedValue = Show(Read(b1, offset, size), size);
            return name;
        }

        if (a1.Length != b1.Length && !(type == (MessageType.Stats | MessageType.ReplyBit) && unit == 0 && status == 0))
        {
            recordedValue = (a1.Length + ProtocolConstants.HeaderSize).ToString(CultureInfo.InvariantCulture);
            replayedValue = (b1.Length + ProtocolConstants.HeaderSize).ToString(CultureInfo.InvariantCulture);
            return "length";
        }

        return null;
    }

    /// <summary>Payload bytes a replay cannot reproduce: the unit id in a CREATE reply (mapped, compared through the
    /// header), the server-wide STATS figures (they count every connection of the recorded server, whose timing a
    /// replay does not have) and a unit's memory_bytes (the cache layout of the build, not the protocol's semantics).</summary>
    private static bool Ignored(ushort type, ushort status, uint unit, bool created, int offset)
    {
        if (status != 0)
        {
            return false;
        }

        return type switch
        {
            MessageType.Create | MessageType.ReplyBit => created && offset < 4,
            MessageType.Stats | MessageType.ReplyBit => unit == 0 || offset >= 56,
            _ => false,
        };
    }

    /// <summary>The field of a reply payload that holds byte <paramref name="i"/>: offset, size and name.</summary>
    private static (int, int, string) Field(ushort type, ushort status, int i)
    {
        if (status != 0 || type == MessageType.FrameError)
        {
            return Find(s_error, i, 0, "");
        }

        switch (type & ~MessageType.ReplyBit)
        {
            case MessageType.Hello:
                return Find(s_hello, i, 0, "");
            case MessageType.Create:
                return Find([(0, 4, "unit_id"), (4, 4, "reserved")], i, 0, "");
            case MessageType.Stats:
                return Find(s_unitStats, i, 0, "");
            case MessageType.Fill:
                return i < 8 ? Find([(0, 4, "count"), (4, 4, "reserved")], i, 0, "")
                    : (i, 1, string.Create(CultureInfo.InvariantCulture, $"results[{i - 8}]"));
            case MessageType.Lookup:
                if (i < 8)
                {
                    return Find([(0, 4, "count"), (4, 4, "hits")], i, 0, "");
                }

                int item = (i - 8) / ProtocolConstants.ItemSize;
                return Find(s_lookupResult, i, 8 + (item * ProtocolConstants.ItemSize), string.Create(CultureInfo.InvariantCulture, $"results[{item}]."));
            case MessageType.Execute:
                return i < ProtocolConstants.ExecuteReplyPrefixSize ? Find(s_executePrefix, i, 0, "")
                    : (i, 1, string.Create(CultureInfo.InvariantCulture, $"statuses[{i - ProtocolConstants.ExecuteReplyPrefixSize}]"));
            default:
                return (i, 1, string.Create(CultureInfo.InvariantCulture, $"payload[{i}]"));
        }
    }

    private static (int, int, string) Find((int Offset, int Size, string Name)[] fields, int i, int @base, string prefix)
    {
        foreach ((int offset, int size, string name) in fields)
        {
            if (i >= @base + offset && i < @base + offset + size)
            {
                return (@base + offset, size, prefix + name);
            }
        }

        return (i, 1, string.Create(CultureInfo.InvariantCulture, $"payload[{i}]"));
    }

    private static ulong Read(ReadOnlySpan<byte> bytes, int offset, int size)
    {
        ulong value = 0;
        for (int k = Math.Min(size, bytes.Length - offset) - 1; k >= 0; k--)
        {
            value = (value << 8) | bytes[offset + k];
        }

        return value;
    }

    private static string Show(ulong value, int size) => size == 1 || value < 10
        ? value.ToString(CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{value} (0x{value:X})");
}
