using System.Collections.Immutable;
using System.Globalization;
using System.Text;

namespace FastInval.Reference.Scenarios;

/// <summary>
/// One step of a differential scenario. <see cref="object.ToString"/> prints the step as the C# call it stands for,
/// so a shrunk counterexample can be pasted into a unit test.
/// </summary>
public abstract record Op;

/// <summary><c>Iotlb.Fill(entry)</c>.</summary>
public sealed record FillIotlbOp(TranslationEntry Entry) : Op
{
    /// <inheritdoc/>
    public override string ToString() => $"Iotlb.Fill({Code.Of(Entry)})";
}

/// <summary><paramref name="Count"/> IOTLB fills: <paramref name="First"/> and its next neighbours, one span apart
/// (input and output advance together), like a host caching a whole mapped buffer.</summary>
public sealed record FillIotlbRunOp(TranslationEntry First, int Count) : Op
{
    /// <summary>The entries, in fill order.</summary>
    public IEnumerable<TranslationEntry> Entries()
    {
        TranslationEntry e = First;
        for (int i = 0; i < Count; i++)
        {
            ulong step = unchecked((ulong)i << Math.Min((int)e.SizeLog2, 63));
            yield return new TranslationEntry(e.Stage, e.DomainId, e.AddressSpaceId, unchecked(e.InputAddress + step),
                unchecked(e.OutputAddress + step), e.SizeLog2, e.Rights, e.Granule, e.Global, e.IsTable);
        }
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"for (int i = 0; i < {Count}; i++) Iotlb.Fill(/* {Code.Of(First)} advanced by i spans */)";
}

/// <summary><paramref name="Count"/> device-TLB fills: <paramref name="First"/> and its next neighbours, one span apart.</summary>
public sealed record FillDeviceTlbRunOp(DeviceTlbEntry First, int Count) : Op
{
    /// <summary>The entries, in fill order.</summary>
    public IEnumerable<DeviceTlbEntry> Entries()
    {
        DeviceTlbEntry e = First;
        for (int i = 0; i < Count; i++)
        {
            ulong step = unchecked((ulong)i << Math.Min((int)e.SizeLog2, 63));
            yield return new DeviceTlbEntry(e.SourceId, e.Pasid, unchecked(e.InputAddress + step), unchecked(e.OutputAddress + step),
                e.SizeLog2, e.Rights, e.Global);
        }
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"for (int i = 0; i < {Count}; i++) DeviceTlb.Fill(/* {Code.Of(First)} advanced by i spans */)";
}

/// <summary><c>DeviceTlb.Fill(entry)</c>.</summary>
public sealed record FillDeviceTlbOp(DeviceTlbEntry Entry) : Op
{
    /// <inheritdoc/>
    public override string ToString() => $"DeviceTlb.Fill({Code.Of(Entry)})";
}

/// <summary><c>ConfigCache.Fill(entry)</c>.</summary>
public sealed record FillConfigOp(ConfigEntry Entry) : Op
{
    /// <inheritdoc/>
    public override string ToString() => $"ConfigCache.Fill({Code.Of(Entry)})";
}

/// <summary><c>Iotlb.TryLookup(stage, domain, address space, address)</c>.</summary>
public sealed record LookupIotlbOp(TranslationStage Stage, ushort DomainId, uint AddressSpaceId, ulong Address) : Op
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"Iotlb.TryLookup({Code.Of(Stage)}, {Code.Hex(DomainId)}, {Code.As(AddressSpaceId)}, {Code.Hex(Address)}, out _)";
}

/// <summary><c>Iotlb.TryLookupTable(stage, domain, address space, address, spanLog2)</c>.</summary>
public sealed record LookupIotlbTableOp(TranslationStage Stage, ushort DomainId, uint AddressSpaceId, ulong Address, int SpanLog2) : Op
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"Iotlb.TryLookupTable({Code.Of(Stage)}, {Code.Hex(DomainId)}, {Code.As(AddressSpaceId)}, {Code.Hex(Address)}, {SpanLog2}, out _)";
}

/// <summary><c>DeviceTlb.TryLookup(source, pasid, address)</c>.</summary>
public sealed record LookupDeviceTlbOp(uint SourceId, uint Pasid, ulong Address) : Op
{
    /// <inheritdoc/>
    public override string ToString() => $"DeviceTlb.TryLookup({Code.Hex(SourceId)}, {Code.As(Pasid)}, {Code.Hex(Address)}, out _)";
}

/// <summary><c>ConfigCache.TryLookup(kind, source, address space)</c>.</summary>
public sealed record LookupConfigOp(ConfigKinds Kind, uint SourceId, uint AddressSpaceId) : Op
{
    /// <inheritdoc/>
    public override string ToString() => $"ConfigCache.TryLookup({Code.Of(Kind)}, {Code.Hex(SourceId)}, {Code.As(AddressSpaceId)}, out _)";
}

/// <summary><c>Execute(descriptor)</c>.</summary>
public sealed record ExecuteOp(InvalidationDescriptor Descriptor) : Op
{
    /// <inheritdoc/>
    public override string ToString() => $"Execute({Code.Of(Descriptor)}) /* {Descriptor} */";
}

/// <summary><c>Execute(batch, statuses)</c>.</summary>
public sealed record BatchOp(ImmutableArray<InvalidationDescriptor> Descriptors) : Op
{
    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder("Execute([");
        foreach (InvalidationDescriptor d in Descriptors)
        {
            sb.Append("\n        ").Append(Code.Of(d)).Append(", /* ").Append(d).Append(" */");
        }

        return sb.Append("], statuses)").ToString();
    }
}

/// <summary>Which cache a <see cref="ClearOp"/> empties.</summary>
public enum CacheKind
{
    /// <summary>The IOTLB.</summary>
    Iotlb,

    /// <summary>The device TLBs.</summary>
    DeviceTlb,

    /// <summary>The configuration caches.</summary>
    ConfigCache,
}

/// <summary><c>Iotlb.Clear()</c>, <c>DeviceTlb.Clear()</c> or <c>ConfigCache.Clear()</c> (host-side writer call).</summary>
public sealed record ClearOp(CacheKind Cache) : Op
{
    /// <inheritdoc/>
    public override string ToString() => $"{Cache}.Clear()";
}

/// <summary><c>FaultPlan = plan</c> (both engines, between batches).</summary>
public sealed record SetFaultPlanOp(FaultSpec Plan) : Op
{
    /// <inheritdoc/>
    public override string ToString() => $"FaultPlan = {Plan}";
}

/// <summary>The settings of a <see cref="FaultPlan"/>, printable as the C# that builds it.</summary>
public sealed record FaultSpec(ulong Seed, uint TimeoutPerMillion, uint CompletionErrorPerMillion,
    ImmutableArray<uint> TimeoutSourceIds, ImmutableArray<ulong> TimeoutOrdinals, ImmutableArray<ulong> CompletionErrorOrdinals)
{
    /// <summary>No faults.</summary>
    public static FaultSpec None { get; } = new(0, 0, 0, [], [], []);

    /// <summary>The plan these settings describe.</summary>
    public FaultPlan Build() => new()
    {
        Seed = Seed,
        TimeoutPerMillion = TimeoutPerMillion,
        CompletionErrorPerMillion = CompletionErrorPerMillion,
        TimeoutSourceIds = TimeoutSourceIds,
        TimeoutOrdinals = TimeoutOrdinals,
        CompletionErrorOrdinals = CompletionErrorOrdinals,
    };

    /// <inheritdoc/>
    public override string ToString() =>
        $"new FaultPlan {{ Seed = {Code.Hex(Seed)}, TimeoutPerMillion = {TimeoutPerMillion}, CompletionErrorPerMillion = {CompletionErrorPerMillion}, " +
        $"TimeoutSourceIds = [{string.Join(", ", TimeoutSourceIds.Select(Code.Hex))}], " +
        $"TimeoutOrdinals = [{string.Join(", ", TimeoutOrdinals)}], CompletionErrorOrdinals = [{string.Join(", ", CompletionErrorOrdinals)}] }}";
}

/// <summary>A differential scenario: engine settings and a sequence of operations.</summary>
public sealed record Scenario(TagScanKernel Kernel, int IotlbCapacity, int DeviceTlbCapacity, int ConfigCacheCapacity,
    FaultSpec Plan, ImmutableArray<Op> Ops)
{
    /// <summary>The fast engine's options.</summary>
    public EngineOptions Options() => new()
    {
        Kernel = Kernel,
        IotlbCapacity = IotlbCapacity,
        DeviceTlbCapacity = DeviceTlbCapacity,
        ConfigCacheCapacity = ConfigCacheCapacity,
        FaultPlan = Plan.Build(),
    };

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture,
            $"\nnew EngineOptions {{ Kernel = TagScanKernel.{Kernel}, IotlbCapacity = {IotlbCapacity}, DeviceTlbCapacity = {DeviceTlbCapacity}, ConfigCacheCapacity = {ConfigCacheCapacity}, FaultPlan = {Plan} }}\n");
        for (int i = 0; i < Ops.Length; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  #{i,-3} {Ops[i]};\n");
        }

        return sb.ToString();
    }
}

/// <summary>C# spellings of the vocabulary values.</summary>
public static class Code
{
    /// <summary>0x-prefixed hex.</summary>
    public static string Hex(ulong value) => "0x" + value.ToString("X", CultureInfo.InvariantCulture);

    /// <summary>0x-prefixed hex.</summary>
    public static string Hex(uint value) => Hex((ulong)value);

    /// <summary>An address-space id: <c>AddressSpace.None</c> or hex.</summary>
    public static string As(uint id) => id == AddressSpace.None ? "AddressSpace.None" : Hex(id);

    /// <summary>An enum value by name when defined, else as a cast.</summary>
    public static string Of<TEnum>(TEnum value) where TEnum : struct, Enum
    {
        string name = value.ToString();
        string type = typeof(TEnum).Name;
        if (name.Length == 0 || char.IsDigit(name[0]) || name[0] == '-')
        {
            return $"({type})0x{Convert.ToUInt64(value, CultureInfo.InvariantCulture):X}";
        }

        return string.Join(" | ", name.Split(", ").Select(part => type + "." + part));
    }

    /// <summary>The constructor call that makes <paramref name="e"/>.</summary>
    public static string Of(TranslationEntry e) =>
        $"new TranslationEntry({Of(e.Stage)}, {Hex(e.DomainId)}, {As(e.AddressSpaceId)}, {Hex(e.InputAddress)}, {Hex(e.OutputAddress)}, " +
        $"{e.SizeLog2}, {Of(e.Rights)}, {Of(e.Granule)}, global: {Bool(e.Global)}, isTable: {Bool(e.IsTable)})";

    /// <summary>The constructor call that makes <paramref name="e"/>.</summary>
    public static string Of(DeviceTlbEntry e) =>
        $"new DeviceTlbEntry({Hex(e.SourceId)}, {As(e.Pasid)}, {Hex(e.InputAddress)}, {Hex(e.OutputAddress)}, {e.SizeLog2}, {Of(e.Rights)}, global: {Bool(e.Global)})";

    /// <summary>The constructor call that makes <paramref name="e"/>.</summary>
    public static string Of(ConfigEntry e) =>
        $"new ConfigEntry({Of(e.Kind)}, {Hex(e.SourceId)}, {As(e.AddressSpaceId)}, {Hex(e.DomainId)}, {Hex(e.Value)})";

    /// <summary>The constructor call that makes <paramref name="d"/>.</summary>
    public static string Of(InvalidationDescriptor d) =>
        $"new InvalidationDescriptor({Of(d.Scope)}, {Of(d.Flags)}, {Of(d.Stages)}, {d.LevelHint}, {Of(d.GranuleHint)}, {Of(d.ConfigKinds)}, " +
        $"{Hex(d.DomainId)}, {As(d.AddressSpaceId)}, {Hex(d.SourceId)}, {Hex(d.First)}, {Hex(d.Last)})";

    /// <summary>A translation, or "miss".</summary>
    public static string Of(bool hit, in Translation t) =>
        hit ? $"hit {{ Output = {Hex(t.OutputAddress)}, InputBase = {Hex(t.InputBase)}, Rights = {Of(t.Rights)}, SizeLog2 = {t.SizeLog2}, Global = {Bool(t.Global)} }}" : "miss";

    private static string Bool(bool b) => b ? "true" : "false";
}
