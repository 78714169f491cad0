namespace FastInval.Reference.Scenarios;

/// <summary>A notifier that keeps every record and the size of every callback (tests only: it allocates).</summary>
public sealed class RecordingNotifier : IInvalidationNotifier
{
    private readonly object _lock = new();

    /// <summary>Every record received, in order.</summary>
    public List<InvalidationRecord> Records { get; } = [];

    /// <summary>The number of records of each callback, in order.</summary>
    public List<int> Batches { get; } = [];

    /// <summary>Compare the records as multisets, not sequences: a unit with a device-TLB sink reports a batch's
    /// device-TLB invalidations when the device answers, after the rest of the batch.</summary>
    public bool OrderInsensitive { get; init; }

    /// <inheritdoc/>
    public void OnInvalidated(ReadOnlySpan<InvalidationRecord> records)
    {
        lock (_lock)
        {
            Batches.Add(records.Length);
            foreach (InvalidationRecord r in records)
            {
                Records.Add(r);
            }
        }
    }

    /// <summary>Null when <paramref name="expected"/> equals what was received, else the first difference. One spelling
    /// is normalised on both sides first: a configuration record over a short source-id range (up to 8 ids, a VT-d
    /// context-cache function mask) becomes one record per id, since a decoder may write eight consecutive SIDs as one
    /// range or as eight descriptors with the same effect.</summary>
    public string? Compare(IReadOnlyList<InvalidationRecord> expected)
    {
        lock (_lock)
        {
            List<InvalidationRecord> want = Normalise(expected), got = Normalise(Records);
            if (OrderInsensitive)
            {
                want.Sort(ByContent);
                got.Sort(ByContent);
            }

            return CompareNormalised(want, got);
        }
    }

    private static int ByContent(InvalidationRecord a, InvalidationRecord b) =>
        string.CompareOrdinal(a.ToString(), b.ToString());

    private static List<InvalidationRecord> Normalise(IReadOnlyList<InvalidationRecord> records)
    {
        var list = new List<InvalidationRecord>(records.Count);
        foreach (InvalidationRecord r in records)
        {
            InvalidationDescriptor d = r.Descriptor;
            if (d.Scope == InvalidationScope.Config && (d.Flags & InvalidationFlags.MatchSource) != 0 && d.First < d.Last && d.Last - d.First < 8)
            {
                for (ulong sid = d.First; sid <= d.Last; sid++)
                {
                    var one = new InvalidationDescriptor(d.Scope, d.Flags, d.Stages, d.LevelHint, d.GranuleHint, d.ConfigKinds,
                        d.DomainId, d.AddressSpaceId, d.SourceId, sid, sid);
                    list.Add(new InvalidationRecord(one, r.Source, r.SourceIndex, r.Status));
                }
            }
            else
            {
                list.Add(r);
            }
        }

        return list;
    }

    private static string? CompareNormalised(List<InvalidationRecord> expected, List<InvalidationRecord> received)
    {
        {
            for (int i = 0; i < Math.Max(expected.Count, received.Count); i++)
            {
                if (i >= received.Count)
                {
                    return $"record #{i}: missing, expected {expected[i]}";
                }

                if (i >= expected.Count)
                {
                    return $"record #{i}: unexpected {received[i]}";
                }

                if (received[i] != expected[i])
                {
                    return $"record #{i}: got {received[i]}, expected {expected[i]}";
                }
            }

            return null;
        }
    }
}
