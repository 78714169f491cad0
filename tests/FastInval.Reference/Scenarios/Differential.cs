using System.Text;


namespace FastInval.Reference.Scenarios;

/// <summary>
/// Runs a <see cref="Scenario"/> on the fast engine and on the <see cref="ReferenceEngine"/> side by side and reports the
/// first disagreement (null when there is none).
/// </summary>
public static class Differential
{
    /// <summary>
    /// Exact mode (capacities above the working set): every fill result, lookup answer and outcome is equal, the
    /// caches are equal after every invalidation and at the end, and probe lookups at every cached entry agree.
    /// </summary>
    public static string? RunExact(Scenario s)
    {
        using var fast = new InvalidationEngine(s.Options());
        var reference = new ReferenceEngine(s.Plan.Build());
        for (int i = 0; i < s.Ops.Length; i++)
        {
            Op op = s.Ops[i];
            string? why = StepExact(fast, reference, op);
            if (why is null && op is ExecuteOp or BatchOp or SetFaultPlanOp or ClearOp)
            {
                why = CompareCaches(fast, reference);
            }

            if (why is not null)
            {
                return $"op #{i} {op}:\n  {why}";
            }
        }

        return CompareCaches(fast, reference) ?? ProbeEveryEntry(fast, reference);
    }

    /// <summary>
    /// Evicting mode (tiny capacities): the fast caches always hold a subset of the reference's entries (a cache may
    /// forget, never invent or resurrect); a fast hit is the answer the documented priority gives among the entries the
    /// fast cache still holds; fill results agree up to eviction; outcomes are equal.
    /// </summary>
    public static string? RunEvicting(Scenario s)
    {
        using var fast = new InvalidationEngine(s.Options());
        var reference = new ReferenceEngine(s.Plan.Build());
        for (int i = 0; i < s.Ops.Length; i++)
        {
            Op op = s.Ops[i];
            string? why = StepEvicting(fast, reference, op) ?? CheckSubset(fast, reference);
            if (why is not null)
            {
                return $"op #{i} {op}:\n  {why}";
            }
        }

        return null;
    }

    private static string? StepExact(InvalidationEngine fast, ReferenceEngine reference, Op op)
    {
        switch (op)
        {
            case FillIotlbOp fill:
            {
                FillResult f = fast.Iotlb.Fill(fill.Entry);
                FillResult r = reference.FillIotlb(fill.Entry);
                return f == r ? null : $"fill result: fast {f}, reference {r}";
            }

            case FillDeviceTlbOp fill:
            {
                FillResult f = fast.DeviceTlb.Fill(fill.Entry);
                FillResult r = reference.FillDeviceTlb(fill.Entry);
                return f == r ? null : $"fill result: fast {f}, reference {r}";
            }

            case FillIotlbRunOp run:
                foreach (TranslationEntry e in run.Entries())
                {
                    FillResult f = fast.Iotlb.Fill(e);
                    FillResult r = reference.FillIotlb(e);
                    if (f != r)
                    {
                        return $"fill result of {Code.Of(e)}: fast {f}, reference {r}";
                    }
                }

                return null;

            case FillDeviceTlbRunOp run:
                foreach (DeviceTlbEntry e in run.Entries())
                {
                    FillResult f = fast.DeviceTlb.Fill(e);
                    FillResult r = reference.FillDeviceTlb(e);
                    if (f != r)
                    {
                        return $"fill result of {Code.Of(e)}: fast {f}, reference {r}";
                    }
                }

                return null;

            case FillConfigOp fill:
            {
                FillResult f = fast.ConfigCache.Fill(fill.Entry);
                FillResult r = reference.FillConfig(fill.Entry);
                return f == r ? null : $"fill result: fast {f}, reference {r}";
            }

            case ExecuteOp exec:
            {
                InvalidationStatus f = fast.Execute(exec.Descriptor);
                InvalidationStatus r = reference.Execute(exec.Descriptor);
                return f == r ? null : $"status: fast {f}, reference {r}";
            }

            case BatchOp batch:
                return CompareBatch(fast, reference, batch);

            case SetFaultPlanOp plan:
                fast.FaultPlan = plan.Plan.Build();
                reference.FaultPlan = plan.Plan.Build();
                return null;

            case ClearOp { Cache: CacheKind.Iotlb }:
                fast.Iotlb.Clear();
                reference.ClearIotlb();
                return fast.Iotlb.Count == 0 ? null : $"Count {fast.Iotlb.Count} after Clear";

            case ClearOp { Cache: CacheKind.DeviceTlb }:
                fast.DeviceTlb.Clear();
                reference.ClearDeviceTlb();
                return fast.DeviceTlb.Count == 0 ? null : $"Count {fast.DeviceTlb.Count} after Clear";

            case ClearOp:
                fast.ConfigCache.Clear();
                reference.ClearConfig();
                return fast.ConfigCache.Count == 0 ? null : $"Count {fast.ConfigCache.Count} after Clear";

            default:
                return CompareLookup(fast, reference, op, evicting: false);
        }
    }

    private static string? StepEvicting(InvalidationEngine fast, ReferenceEngine reference, Op op)
    {
        switch (op)
        {
            case FillIotlbOp fill:
            {
                int before = fast.Iotlb.Count;
                FillResult f = fast.Iotlb.Fill(fill.Entry);
                FillResult r = reference.FillIotlb(fill.Entry);
                return CheckFillUpToEviction(f, r, before, fast.Iotlb.Count, fast.Iotlb.Capacity);
            }

            case FillDeviceTlbOp fill:
            {
                int before = fast.DeviceTlb.Count;
                FillResult f = fast.DeviceTlb.Fill(fill.Entry);
                FillResult r = reference.FillDeviceTlb(fill.Entry);
                return CheckFillUpToEviction(f, r, before, fast.DeviceTlb.Count, fast.DeviceTlb.Capacity);
            }

            case FillConfigOp fill:
            {
                int before = fast.ConfigCache.Count;
                FillResult f = fast.ConfigCache.Fill(fill.Entry);
                FillResult r = reference.FillConfig(fill.Entry);
                return CheckFillUpToEviction(f, r, before, fast.ConfigCache.Count, fast.ConfigCache.Capacity);
            }

            case FillIotlbRunOp run:
                foreach (TranslationEntry e in run.Entries())
                {
                    int before = fast.Iotlb.Count;
                    string? why = CheckFillUpToEviction(fast.Iotlb.Fill(e), reference.FillIotlb(e), before, fast.Iotlb.Count, fast.Iotlb.Capacity);
                    if (why is not null)
                    {
                        return $"{Code.Of(e)}: {why}";
                    }
                }

                return null;

            case FillDeviceTlbRunOp run:
                foreach (DeviceTlbEntry e in run.Entries())
                {
                    int before = fast.DeviceTlb.Count;
                    string? why = CheckFillUpToEviction(fast.DeviceTlb.Fill(e), reference.FillDeviceTlb(e), before, fast.DeviceTlb.Count, fast.DeviceTlb.Capacity);
                    if (why is not null)
                    {
                        return $"{Code.Of(e)}: {why}";
                    }
                }

                return null;

            case ExecuteOp or BatchOp or SetFaultPlanOp or ClearOp:
                return StepExact(fast, reference, op);

            default:
                return CompareLookup(fast, reference, op, evicting: true);
        }
    }

    private static string? CheckFillUpToEviction(FillResult f, FillResult r, int countBefore, int countAfter, int capacity)
    {
        if ((f == FillResult.Rejected) != (r == FillResult.Rejected))
        {
            return $"fill result: fast {f}, reference {r}";
        }

        if (f == FillResult.Replaced && r != FillResult.Replaced)
        {
            return $"fill result: fast {f} (an entry the reference does not have), reference {r}";
        }

        int expectedCount = f switch
        {
            FillResult.Inserted => countBefore + 1,
            _ => countBefore,
        };
        if (countAfter != expectedCount)
        {
            return $"fill result {f} but Count went {countBefore} -> {countAfter}";
        }

        if (f == FillResult.InsertedAfterEviction && countBefore != capacity)
        {
            return $"InsertedAfterEviction with {countBefore} of {capacity} entries in use (the doc says: the cache was full)";
        }

        if (countAfter > capacity)
        {
            return $"Count {countAfter} above Capacity {capacity}";
        }

        return null;
    }

    private static string? CompareBatch(InvalidationEngine fast, ReferenceEngine reference, BatchOp batch)
    {
        InvalidationDescriptor[] descriptors = [.. batch.Descriptors];
        var f = new InvalidationStatus[descriptors.Length];
        var r = new InvalidationStatus[descriptors.Length];
        BatchResult fr = fast.Execute(descriptors, f);
        BatchResult rr = reference.Execute(descriptors, r);
        for (int i = 0; i < descriptors.Length; i++)
        {
            if (f[i] != r[i])
            {
                return $"status of batch entry {i}: fast {f[i]}, reference {r[i]} (fast [{string.Join(", ", f)}], reference [{string.Join(", ", r)}])";
            }
        }

        return fr == rr ? null : $"batch result: fast {fr}, reference {rr}";
    }

    /// <summary>Compares one lookup. Evicting: a fast miss is fine; a fast hit must be the answer the documented
    /// priority gives among the entries the fast cache holds (which <see cref="CheckSubset"/> keeps within the reference's).</summary>
    private static string? CompareLookup(InvalidationEngine fast, ReferenceEngine reference, Op op, bool evicting)
    {
        bool fh;
        Translation ft;
        bool rh;
        Translation rt;
        ReferenceEngine oracle = evicting ? Rebuild(fast) : reference;
        switch (op)
        {
            case LookupIotlbOp l:
                fh = fast.Iotlb.TryLookup(l.Stage, l.DomainId, l.AddressSpaceId, l.Address, out ft);
                rh = oracle.TryLookupIotlb(l.Stage, l.DomainId, l.AddressSpaceId, l.Address, out rt);
                break;

            case LookupIotlbTableOp l:
                fh = fast.Iotlb.TryLookupTable(l.Stage, l.DomainId, l.AddressSpaceId, l.Address, l.SpanLog2, out ft);
                rh = oracle.TryLookupIotlbTable(l.Stage, l.DomainId, l.AddressSpaceId, l.Address, l.SpanLog2, out rt);
                break;

            case LookupDeviceTlbOp l:
                fh = fast.DeviceTlb.TryLookup(l.SourceId, l.Pasid, l.Address, out ft);
                rh = oracle.TryLookupDeviceTlb(l.SourceId, l.Pasid, l.Address, out rt);
                break;

            case LookupConfigOp l:
            {
                bool fc = fast.ConfigCache.TryLookup(l.Kind, l.SourceId, l.AddressSpaceId, out ConfigEntry fe);
                bool rc = oracle.TryLookupConfig(l.Kind, l.SourceId, l.AddressSpaceId, out ConfigEntry re);
                if (evicting && !fc)
                {
                    return null;
                }

                if (fc == rc && (!fc || fe == re))
                {
                    return null;
                }

                return $"config lookup: fast {(fc ? fe.ToString() : "miss")}, reference {(rc ? re.ToString() : "miss")}";
            }

            default:
                throw new InvalidOperationException("unknown op " + op);
        }

        if (evicting && !fh)
        {
            return null;
        }

        if (fh == rh && (!fh || Same(ft, rt)))
        {
            return null;
        }

        return $"lookup: fast {Code.Of(fh, ft)}, {(evicting ? "reference over the fast cache's own entries" : "reference")} {Code.Of(rh, rt)}";
    }

    private static bool Same(in Translation a, in Translation b) =>
        a.OutputAddress == b.OutputAddress && a.InputBase == b.InputBase && a.Rights == b.Rights &&
        a.SizeLog2 == b.SizeLog2 && a.Global == b.Global;

    /// <summary>A reference engine holding exactly the fast engine's current entries.</summary>
    private static ReferenceEngine Rebuild(InvalidationEngine fast)
    {
        var r = new ReferenceEngine();
        foreach (TranslationEntry e in fast.Iotlb.ToArray())
        {
            r.FillIotlb(e);
        }

        foreach (DeviceTlbEntry e in fast.DeviceTlb.ToArray())
        {
            r.FillDeviceTlb(e);
        }

        foreach (ConfigEntry e in fast.ConfigCache.ToArray())
        {
            r.FillConfig(e);
        }

        return r;
    }

    /// <summary>Null when the two engines hold the same entries and have executed as many device-TLB descriptors, else the
    /// first difference (also used by the iommufd differential).</summary>
    public static string? CompareCaches(InvalidationEngine fast, ReferenceEngine reference)
    {
        if (fast.DeviceTlbInvalidations != reference.DeviceTlbInvalidations)
        {
            return $"device-TLB ordinal: fast {fast.DeviceTlbInvalidations}, reference {reference.DeviceTlbInvalidations}";
        }

        return Diff("IOTLB", EntryOrder.Sorted(fast.Iotlb.ToArray()), reference.IotlbSnapshot(), Code.Of)
            ?? Diff("device TLB", EntryOrder.Sorted(fast.DeviceTlb.ToArray()), reference.DeviceTlbSnapshot(), Code.Of)
            ?? Diff("config cache", EntryOrder.Sorted(fast.ConfigCache.ToArray()), reference.ConfigSnapshot(), Code.Of)
            ?? CountsMatch(fast, reference);
    }

    private static string? CountsMatch(InvalidationEngine fast, ReferenceEngine reference)
    {
        if (fast.Iotlb.Count != reference.IotlbCount || fast.DeviceTlb.Count != reference.DeviceTlbCount ||
            fast.ConfigCache.Count != reference.ConfigCount)
        {
            return $"Count: fast {fast.Iotlb.Count}/{fast.DeviceTlb.Count}/{fast.ConfigCache.Count}, " +
                   $"reference {reference.IotlbCount}/{reference.DeviceTlbCount}/{reference.ConfigCount}";
        }

        return null;
    }

    private static string? Diff<T>(string cache, T[] fast, T[] reference, Func<T, string> show) where T : IEquatable<T>
    {
        if (fast.AsSpan().SequenceEqual(reference))
        {
            return null;
        }

        var sb = new StringBuilder($"{cache} differs:");
        foreach (T e in fast)
        {
            if (Array.IndexOf(reference, e) < 0)
            {
                sb.Append("\n    only in fast:      ").Append(show(e));
            }
        }

        foreach (T e in reference)
        {
            if (Array.IndexOf(fast, e) < 0)
            {
                sb.Append("\n    only in reference: ").Append(show(e));
            }
        }

        if (fast.Length != reference.Length)
        {
            sb.Append($"\n    counts: fast {fast.Length}, reference {reference.Length}");
        }

        return sb.ToString();
    }

    private static string? CheckSubset(InvalidationEngine fast, ReferenceEngine reference)
    {
        return Subset("IOTLB", fast.Iotlb.ToArray(), reference.IotlbSnapshot(), Code.Of)
            ?? Subset("device TLB", fast.DeviceTlb.ToArray(), reference.DeviceTlbSnapshot(), Code.Of)
            ?? Subset("config cache", fast.ConfigCache.ToArray(), reference.ConfigSnapshot(), Code.Of)
            ?? (fast.DeviceTlbInvalidations == reference.DeviceTlbInvalidations ? null
                : $"device-TLB ordinal: fast {fast.DeviceTlbInvalidations}, reference {reference.DeviceTlbInvalidations}");
    }

    private static string? Subset<T>(string cache, T[] fast, T[] reference, Func<T, string> show) where T : IEquatable<T>
    {
        for (int i = 0; i < fast.Length; i++)
        {
            if (Array.IndexOf(reference, fast[i]) < 0)
            {
                return $"{cache}: the fast cache holds an entry the reference does not (invented, stale or resurrected): {show(fast[i])}";
            }

            if (Array.IndexOf(fast, fast[i], i + 1) >= 0)
            {
                return $"{cache}: the fast cache holds an entry twice: {show(fast[i])}";
            }
        }

        return null;
    }

    /// <summary>Address spaces a global entry is probed under: "none", the extremes, and an ordinary id.</summary>
    private static readonly uint[] ProbeAddressSpaces = [AddressSpace.None, 0, AddressSpace.MaxId, 5];

    /// <summary>Looks up every cached entry at its first and last byte, for each address space that can see it.</summary>
    private static string? ProbeEveryEntry(InvalidationEngine fast, ReferenceEngine reference)
    {
        foreach (TranslationEntry e in reference.IotlbSnapshot())
        {
            uint[] spaces = e.Global ? ProbeAddressSpaces : [e.AddressSpaceId];
            foreach (uint asid in spaces)
            {
                foreach (ulong address in new[] { e.InputAddress, e.InputAddress + EntryRules.SpanMinusOne(e.SizeLog2) })
                {
                    Op probe = e.IsTable
                        ? new LookupIotlbTableOp(e.Stage, e.DomainId, asid, address, e.SizeLog2)
                        : new LookupIotlbOp(e.Stage, e.DomainId, asid, address);
                    string? why = CompareLookup(fast, reference, probe, evicting: false);
                    if (why is not null)
                    {
                        return $"final probe {probe}:\n  {why}";
                    }
                }
            }
        }

        foreach (DeviceTlbEntry e in reference.DeviceTlbSnapshot())
        {
            uint[] spaces = e.Global ? ProbeAddressSpaces : [e.Pasid];
            foreach (uint pasid in spaces)
            {
                foreach (ulong address in new[] { e.InputAddress, e.InputAddress + EntryRules.SpanMinusOne(e.SizeLog2) })
                {
                    Op probe = new LookupDeviceTlbOp(e.SourceId, pasid, address);
                    string? why = CompareLookup(fast, reference, probe, evicting: false);
                    if (why is not null)
                    {
                        return $"final probe {probe}:\n  {why}";
                    }
                }
            }
        }

        foreach (ConfigEntry e in reference.ConfigSnapshot())
        {
            Op probe = new LookupConfigOp(e.Kind, e.SourceId, e.AddressSpaceId);
            string? why = CompareLookup(fast, reference, probe, evicting: false);
            if (why is not null)
            {
                return $"final probe {probe}:\n  {why}";
            }
        }

        return null;
    }
}
