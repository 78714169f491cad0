namespace FastInval.Host.Traces;

/// <summary>What a replay saw happen to one unit (or, for <see cref="RecordedUnitId"/> 0, to the requests addressed to no
/// unit: HELLO, CREATE, the server's STATS and requests naming a unit the connection does not hold).</summary>
public sealed class UnitFigures
{
    internal UnitFigures(uint recordedUnitId, uint connectionId)
    {
        RecordedUnitId = recordedUnitId;
        ConnectionId = connectionId;
    }

    /// <summary>The unit's id in the trace (0: requests addressed to no unit).</summary>
    public uint RecordedUnitId { get; }

    /// <summary>The connection that first addressed it.</summary>
    public uint ConnectionId { get; }

    /// <summary>Requests addressed to the unit.</summary>
    public long Requests { get; internal set; }

    /// <summary>Operations: entries filled, queries looked up and descriptors executed, plus one per other request.</summary>
    public long Operations { get; internal set; }

    /// <summary>Entries offered to FILL: IOTLB, device TLB, configuration cache.</summary>
    public long[] Filled { get; } = new long[3];

    /// <summary>LOOKUP queries.</summary>
    public long Lookups { get; internal set; }

    /// <summary>LOOKUP hits.</summary>
    public long Hits { get; internal set; }

    /// <summary>Descriptors executed, by scope: [0] unknown scope, [1] IOTLB, [2] IOTLB range, [3] device TLB, [4] configuration.</summary>
    public long[] Descriptors { get; } = new long[5];

    /// <summary>Entries EXECUTE removed: IOTLB, device TLB, configuration cache.</summary>
    public long[] Removed { get; } = new long[3];

    /// <summary>Descriptors answered TIMED_OUT.</summary>
    public long TimedOut { get; internal set; }

    /// <summary>Descriptors answered COMPLETION_ERROR.</summary>
    public long CompletionErrors { get; internal set; }

    /// <summary>Descriptors answered INVALID.</summary>
    public long Invalid { get; internal set; }

    /// <summary>Error replies by code (index = <see cref="ErrorCode"/>; codes past the table count in the last slot).</summary>
    public long[] Errors { get; } = new long[16];

    /// <summary>Error replies in all.</summary>
    public long ErrorReplies => Errors.Sum();

    /// <summary>The unit was destroyed (DESTROY or its connection closed).</summary>
    public bool Destroyed { get; internal set; }
}

/// <summary>The first reply of a replay that differs from the recorded one.</summary>
/// <param name="FrameIndex">Zero-based index of the recorded reply among the trace's frame records (requests and replies).</param>
/// <param name="RecordIndex">Zero-based index of its record in the file.</param>
/// <param name="Offset">Byte offset of its record in the file.</param>
/// <param name="ConnectionId">The connection.</param>
/// <param name="Field">The first field that differs (e.g. <c>status</c>, <c>statuses[3]</c>, <c>results[0].translated</c>).</param>
/// <param name="Message">The whole description.</param>
public sealed record TraceDifference(long FrameIndex, long RecordIndex, long Offset, uint ConnectionId, string Field, string Message);
