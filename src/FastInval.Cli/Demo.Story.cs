namespace FastInval.Cli;

internal static partial class Demo
{
    /// <summary>Entries removed from each cache by one batch.</summary>
    private readonly record struct Removed(int Iotlb, int DeviceTlb, int Config);

    /// <summary>Narrates the scenario: steps, requests, what the engine removed, and lookups.</summary>
    private sealed class Story(TextWriter o, InvalidationEngine engine, SelfChecks checks)
    {
        private const string Indent = "                ";
        private int _step;

        public void Step(string title)
        {
            o.WriteLine();
            o.WriteLine($"Step {++_step}. {title}");
        }

        public void Asked(params string[] lines)
        {
            for (int i = 0; i < lines.Length; i++)
            {
                o.WriteLine((i == 0 ? "  guest asked:  " : Indent) + lines[i]);
            }
        }

        /// <summary>Executes a batch, prints its outcome and the entries it removed from each cache, and checks each
        /// descriptor's status against <paramref name="expected"/> (default: all <see cref="InvalidationStatus.Ok"/>).</summary>
        public Removed Execute(InvalidationDescriptor[] batch, InvalidationStatus[]? expected = null)
        {
            TranslationEntry[] iotlbBefore = engine.Iotlb.ToArray();
            DeviceTlbEntry[] atcBefore = engine.DeviceTlb.ToArray();
            ConfigEntry[] configBefore = engine.ConfigCache.ToArray();

            var statuses = new InvalidationStatus[batch.Length];
            BatchResult result = engine.Execute(batch, statuses);

            List<TranslationEntry> iotlbGone = Gone(iotlbBefore, engine.Iotlb.ToArray());
            List<DeviceTlbEntry> atcGone = Gone(atcBefore, engine.DeviceTlb.ToArray());
            List<ConfigEntry> configGone = Gone(configBefore, engine.ConfigCache.ToArray());
            var removed = new Removed(iotlbBefore.Length - engine.Iotlb.Count, atcBefore.Length - engine.DeviceTlb.Count,
                configBefore.Length - engine.ConfigCache.Count);

            o.WriteLine($"  engine did:   {Outcome(statuses)}; removed {N(removed.Iotlb)} IOTLB, {N(removed.DeviceTlb)} device-TLB, {N(removed.Config)} config-cache entries");
            Detail("IOTLB", iotlbGone.GroupBy(e => e.Stage == TranslationStage.Stage2 ? $"DID {e.DomainId} host stage-2" : $"DID {e.DomainId} {Pasid(e.AddressSpaceId)}")
                .Select(g => $"{g.Key}: " + Kinds(g.Select(e => (e.IsTable, (int)e.SizeLog2)))));
            Detail("device TLB", atcGone.GroupBy(e => $"{Bdf(e.SourceId)} {Pasid(e.Pasid)}")
                .Select(g => $"{g.Key}: " + Kinds(g.Select(e => (false, (int)e.SizeLog2)))));
            Detail("config", configGone.Select(e => e.Kind == ConfigKinds.Context
                ? $"context entry of {Bdf(e.SourceId)} (DID {e.DomainId})"
                : $"PASID-table entry {Pasid(e.AddressSpaceId)} of {Bdf(e.SourceId)} (DID {e.DomainId})"));

            expected ??= Enumerable.Repeat(InvalidationStatus.Ok, batch.Length).ToArray();
            checks.Check(statuses.AsSpan().SequenceEqual(expected), $"statuses [{string.Join(", ", statuses)}] are [{string.Join(", ", expected)}]");
            checks.Check(result.Ok == statuses.Count(s => s == InvalidationStatus.Ok) && result.AllOk == statuses.All(s => s == InvalidationStatus.Ok),
                "the batch result agrees with the per-descriptor statuses");
            checks.Check(removed == new Removed(iotlbGone.Count, atcGone.Count, configGone.Count),
                "a batch only removes entries (the counts agree with the entries that are gone)");
            return removed;
        }

        private void Detail(string cache, IEnumerable<string> lines)
        {
            bool first = true;
            foreach (string line in lines)
            {
                o.WriteLine($"{Indent}  {(first ? cache + ":" : ""),-12}{line}");
                first = false;
            }
        }

        private static string Kinds(IEnumerable<(bool IsTable, int SizeLog2)> entries) =>
            string.Join(", ", entries.GroupBy(e => e).OrderBy(g => g.Key.IsTable).ThenBy(g => g.Key.SizeLog2)
                .Select(g => $"{N(g.Count())} x {Size(g.Key.SizeLog2)} {(g.Key.IsTable ? "table entry" : "page")}"));

        private static List<T> Gone<T>(T[] before, T[] after)
        {
            var still = new HashSet<T>(after);
            return before.Where(e => !still.Contains(e)).ToList();
        }

        /// <summary>A DMA lookup in the IOTLB of a guest address space (combined stage-1 + stage-2 entries).</summary>
        public void Lookup(string who, Space s, ulong iova, bool expectHit, string? note = null)
        {
            bool hit = engine.Iotlb.TryLookup(TranslationStage.Nested, s.Did, s.Pasid, iova, out Translation t);
            Print($"{who} {Hex(iova)} (DID {s.Did}, {Pasid(s.Pasid)})", hit
                ? $"IOTLB hit -> host {Hex(t.OutputAddress)} ({Size(t.SizeLog2)} page)"
                : "IOTLB miss: the host must walk the page tables again", hit, expectHit, note);
        }

        /// <summary>A lookup in a device's own TLB (what a translated ATS request would use).</summary>
        public void AtcLookup(string who, Space s, ulong iova, bool expectHit, string? note = null)
        {
            bool hit = engine.DeviceTlb.TryLookup(s.Device.Sid, s.AtcPasid, iova, out Translation t);
            Print($"{who} {Hex(iova)} ({Bdf(s.Device.Sid)}, {Pasid(s.AtcPasid)})", hit
                ? $"device-TLB hit -> host {Hex(t.OutputAddress)}"
                : "device-TLB miss: the device must send an ATS translation request", hit, expectHit, note);
        }

        /// <summary>A lookup of a paging-structure (walk-cache) entry.</summary>
        public void TableLookup(string who, Space s, ulong iova, int spanLog2, bool expectHit)
        {
            bool hit = engine.Iotlb.TryLookupTable(TranslationStage.Nested, s.Did, s.Pasid, iova, spanLog2, out Translation t);
            Print($"{who} at {Hex(iova)}", hit
                ? $"paging-structure entry ({Size(spanLog2)} span) hit -> page table at host {Hex(t.OutputAddress)}"
                : $"paging-structure entry ({Size(spanLog2)} span) miss", hit, expectHit, null);
        }

        /// <summary>A lookup of the host's own stage-2 translation of a guest-physical address.</summary>
        public void Stage2Lookup(ushort did, ulong gpa, bool expectHit, string? note = null)
        {
            bool hit = engine.Iotlb.TryLookup(TranslationStage.Stage2, did, AddressSpace.None, gpa, out Translation t);
            Print($"host stage-2 of guest-physical {Hex(gpa)} (DID {did})", hit
                ? $"IOTLB hit -> host {Hex(t.OutputAddress)} ({Size(t.SizeLog2)} page)"
                : "IOTLB miss", hit, expectHit, note);
        }

        /// <summary>A configuration-cache lookup.</summary>
        public void ConfigLookup(ConfigKinds kind, uint sid, uint pasid, bool expectHit)
        {
            bool hit = engine.ConfigCache.TryLookup(kind, sid, pasid, out ConfigEntry e);
            Print($"{(kind == ConfigKinds.PasidEntry ? "PASID-table entry" : kind.ToString())} {Pasid(pasid)} of {Bdf(sid)}", hit
                ? $"config-cache hit (DID {e.DomainId})"
                : "config-cache miss: the IOMMU re-reads the guest's table", hit, expectHit, null);
        }

        private void Print(string what, string result, bool hit, bool expectHit, string? note)
        {
            o.WriteLine($"  lookup now:   {what} -> {result}{(note is null ? "" : $" ({note})")}");
            checks.Check(hit == expectHit, $"{what}: expected a {(expectHit ? "hit" : "miss")}");
        }

        /// <summary>IOTLB entries tagged with <paramref name="did"/>, counted from a snapshot of the cache.</summary>
        public int IotlbOfDomain(ushort did) => engine.Iotlb.ToArray().Count(e => e.DomainId == did);

        /// <summary>Device-TLB entries of <paramref name="sid"/> overlapping [first, last].</summary>
        public int AtcInRange(uint sid, ulong first, ulong last) =>
            engine.DeviceTlb.ToArray().Count(e => e.SourceId == sid && e.InputAddress <= last && e.InputAddress + ((1UL << e.SizeLog2) - 1) >= first);
    }
}
