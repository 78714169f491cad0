using FastInval.Reference;
using FastInval.Reference.Scenarios;

namespace FastInval.Tests.Notifiers;

/// <summary>
/// Runs a <see cref="Scenario"/> on the fast engine, with one unfiltered and one filtered notifier subscribed, and on the
/// <see cref="ReferenceEngine"/>, and checks every batch's records against the reference: (1) the unfiltered notifier
/// got exactly one callback per execution that applied something, holding exactly the descriptors the reference
/// applied (status Ok or CompletionError), in order, with their batch positions and statuses; (2) every entry the
/// reference removed is removed, by the reference's own matching rules, by some record's descriptor; (3) the filtered
/// notifier got a subsequence of those records, and every removed entry that the filter selects (an entry predicate
/// written here from the filter's documentation) is removed by one of the records it got; (4) the caches agree.
/// </summary>
internal static class NotifierDifferential
{
    public static string? Run(Scenario s, NotifierFilter filter)
    {
        using var fast = new InvalidationEngine(s.Options());
        var reference = new ReferenceEngine(s.Plan.Build());
        var all = new RecordingNotifier();
        var some = new RecordingNotifier();
        using NotifierSubscription a = fast.Notifiers.Subscribe(all);
        using NotifierSubscription b = fast.Notifiers.Subscribe(some, filter);
        for (int i = 0; i < s.Ops.Length; i++)
        {
            string? why = Step(fast, reference, s.Ops[i], all, some, filter);
            if (why is not null)
            {
                return $"op #{i} {s.Ops[i]}:\n  {why}";
            }
        }

        return a.Faults + b.Faults == 0 ? null : "a recorder faulted";
    }

    private static string? Step(InvalidationEngine fast, ReferenceEngine reference, Op op, RecordingNotifier all,
        RecordingNotifier some, NotifierFilter filter)
    {
        InvalidationDescriptor[] batch;
        switch (op)
        {
            case FillIotlbOp f: fast.Iotlb.Fill(f.Entry); reference.FillIotlb(f.Entry); return null;
            case FillIotlbRunOp f: foreach (TranslationEntry e in f.Entries()) { fast.Iotlb.Fill(e); reference.FillIotlb(e); } return null;
            case FillDeviceTlbOp f: fast.DeviceTlb.Fill(f.Entry); reference.FillDeviceTlb(f.Entry); return null;
            case FillDeviceTlbRunOp f: foreach (DeviceTlbEntry e in f.Entries()) { fast.DeviceTlb.Fill(e); reference.FillDeviceTlb(e); } return null;
            case FillConfigOp f: fast.ConfigCache.Fill(f.Entry); reference.FillConfig(f.Entry); return null;
            case SetFaultPlanOp p: fast.FaultPlan = p.Plan.Build(); reference.FaultPlan = p.Plan.Build(); return null;
            case ClearOp { Cache: CacheKind.Iotlb }: fast.Iotlb.Clear(); reference.ClearIotlb(); return null;
            case ClearOp { Cache: CacheKind.DeviceTlb }: fast.DeviceTlb.Clear(); reference.ClearDeviceTlb(); return null;
            case ClearOp: fast.ConfigCache.Clear(); reference.ClearConfig(); return null;
            case ExecuteOp e: batch = [e.Descriptor]; break;
            case BatchOp bo: batch = [.. bo.Descriptors]; break;
            default: return null; // lookups change nothing
        }

        TranslationEntry[] iotlbBefore = reference.IotlbSnapshot();
        DeviceTlbEntry[] devBefore = reference.DeviceTlbSnapshot();
        ConfigEntry[] cfgBefore = reference.ConfigSnapshot();
        int allCallbacks = all.Batches.Count, allRecords = all.Records.Count, someRecords = some.Records.Count;

        var statuses = new InvalidationStatus[batch.Length];
        if (op is ExecuteOp)
        {
            statuses[0] = reference.Execute(batch[0]);
            InvalidationStatus fastStatus = fast.Execute(batch[0]);
            if (fastStatus != statuses[0])
            {
                return $"status: fast {fastStatus}, reference {statuses[0]}";
            }
        }
        else
        {
            reference.Execute(batch, statuses);
            fast.Execute(batch, new InvalidationStatus[batch.Length]);
        }

        // (1) exactly the applied descriptors, in one callback.
        var expected = new List<InvalidationRecord>();
        for (int i = 0; i < batch.Length; i++)
        {
            if (statuses[i] is InvalidationStatus.Ok or InvalidationStatus.CompletionError)
            {
                expected.Add(new InvalidationRecord(batch[i], InvalidationSource.Engine, (ulong)i, statuses[i]));
            }
        }

        int callbacks = all.Batches.Count - allCallbacks;
        if (callbacks != (expected.Count == 0 ? 0 : 1) || (callbacks == 1 && all.Batches[^1] != expected.Count))
        {
            return $"{callbacks} callbacks for {expected.Count} applied descriptors";
        }

        List<InvalidationRecord> got = all.Records.GetRange(allRecords, all.Records.Count - allRecords);
        if (!got.SequenceEqual(expected))
        {
            return $"records [{string.Join("; ", got)}], expected [{string.Join("; ", expected)}]";
        }

        // (2) every removal is covered by a record; (3) the filtered view.
        List<InvalidationRecord> filtered = some.Records.GetRange(someRecords, some.Records.Count - someRecords);
        if (!IsSubsequence(filtered, got))
        {
            return $"filtered records [{string.Join("; ", filtered)}] are not a subsequence of [{string.Join("; ", got)}]";
        }

        foreach (TranslationEntry e in iotlbBefore.Except(reference.IotlbSnapshot()))
        {
            if (!got.Any(r => RemovesIotlb(r.Descriptor, e)))
            {
                return $"removed IOTLB entry {e} is covered by no record";
            }

            if (SelectsIotlb(filter, e) && !filtered.Any(r => RemovesIotlb(r.Descriptor, e)))
            {
                return $"removed IOTLB entry {e} is selected by filter {filter} but covered by none of its records";
            }
        }

        foreach (DeviceTlbEntry e in devBefore.Except(reference.DeviceTlbSnapshot()))
        {
            if (!got.Any(r => r.Scope == InvalidationScope.DeviceTlb && DescriptorRules.MatchesDeviceTlb(r.Descriptor, e)))
            {
                return $"removed device-TLB entry {e} is covered by no record";
            }

            if (SelectsDeviceTlb(filter, e) && !filtered.Any(r => r.Scope == InvalidationScope.DeviceTlb && DescriptorRules.MatchesDeviceTlb(r.Descriptor, e)))
            {
                return $"removed device-TLB entry {e} is selected by filter {filter} but covered by none of its records";
            }
        }

        foreach (ConfigEntry e in cfgBefore.Except(reference.ConfigSnapshot()))
        {
            if (!got.Any(r => r.Scope == InvalidationScope.Config && DescriptorRules.MatchesConfig(r.Descriptor, e)))
            {
                return $"removed config entry {e} is covered by no record";
            }

            if (SelectsConfig(filter, e) && !filtered.Any(r => r.Scope == InvalidationScope.Config && DescriptorRules.MatchesConfig(r.Descriptor, e)))
            {
                return $"removed config entry {e} is selected by filter {filter} but covered by none of its records";
            }
        }

        // (4)
        return Differential.CompareCaches(fast, reference);
    }

    private static bool RemovesIotlb(in InvalidationDescriptor d, in TranslationEntry e) => d.Scope switch
    {
        InvalidationScope.Iotlb => DescriptorRules.MatchesIotlbTags(d, e),
        InvalidationScope.IotlbRange => DescriptorRules.MatchesIotlbRange(d, e),
        _ => false,
    };

    // The filter's selection, from its documentation: an entry of a selected cache with the filter's domain, visible to
    // its address space (own or global), of its device, and lying inside its range; a criterion only applies to
    // entries that carry the field.
    private static bool SelectsIotlb(NotifierFilter f, TranslationEntry e) =>
        (f.Scopes & NotifierScopes.Iotlb) != 0 &&
        (f.DomainId is not ushort d || e.DomainId == d) &&
        (f.AddressSpaceId is not uint a || e.Global || e.AddressSpaceId == a) &&
        Inside(f, e.InputAddress, e.SizeLog2);

    private static bool SelectsDeviceTlb(NotifierFilter f, DeviceTlbEntry e) =>
        (f.Scopes & NotifierScopes.DeviceTlb) != 0 &&
        (f.SourceId is not uint s || e.SourceId == s) &&
        (f.AddressSpaceId is not uint a || e.Global || e.Pasid == a) &&
        Inside(f, e.InputAddress, e.SizeLog2);

    private static bool SelectsConfig(NotifierFilter f, ConfigEntry e) =>
        (f.Scopes & NotifierScopes.Config) != 0 &&
        (f.DomainId is not ushort d || e.DomainId == d) &&
        (f.AddressSpaceId is not uint a || e.AddressSpaceId == a) &&
        (f.SourceId is not uint s || e.SourceId == s);

    private static bool Inside(NotifierFilter f, ulong input, int sizeLog2)
    {
        if (f.Range is not (ulong first, ulong last))
        {
            return true;
        }

        ulong end = sizeLog2 >= 64 ? ulong.MaxValue : input + ((1UL << sizeLog2) - 1);
        return input >= first && end <= last;
    }

    private static bool IsSubsequence(List<InvalidationRecord> sub, List<InvalidationRecord> all)
    {
        int j = 0;
        foreach (InvalidationRecord r in all)
        {
            if (j < sub.Count && sub[j] == r)
            {
                j++;
            }
        }

        return j == sub.Count;
    }
}
