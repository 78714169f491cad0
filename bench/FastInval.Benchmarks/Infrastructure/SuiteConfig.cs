using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Perfolizer.Horology;

namespace FastInval.Benchmarks.Infrastructure;

/// <summary>
/// The configuration of the whole suite: one short job so that every benchmark runs in a few seconds, the memory
/// diagnoser, and GitHub-markdown + JSON reports. The job is BenchmarkDotNet's "default" job, so command-line
/// options such as <c>--iterationCount</c> or <c>--inProcess</c> modify it; with <c>--job</c> (<c>dry</c>, <c>short</c>, …)
/// it is left out and the named job runs instead.
/// </summary>
public static class SuiteConfig
{
    /// <summary>Warm-up iterations of the suite job.</summary>
    public const int WarmupCount = 3;

    /// <summary>Measured iterations of the suite job.</summary>
    public const int IterationCount = 10;

    /// <summary>Target duration of one iteration.</summary>
    public const int IterationTimeMs = 125;

    /// <summary>The suite configuration for the command-line <paramref name="args"/>, writing its artifacts under
    /// <paramref name="artifactsPath"/> (or BenchmarkDotNet's default).</summary>
    public static IConfig Create(IReadOnlyList<string> args, string? artifactsPath = null)
    {
        bool namedJob = args.Any(a => a is "--job" or "-j");
        Job job = Job.Default
            .WithWarmupCount(WarmupCount)
            .WithIterationCount(IterationCount)
            .WithIterationTime(TimeInterval.FromMilliseconds(IterationTimeMs))
            .WithId("Suite")
            .AsDefault();

        IConfig config = (namedJob ? DefaultConfig.Instance : DefaultConfig.Instance.AddJob(job))
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddExporter(JsonExporter.Brief)
            .HideColumns(Column.Job, Column.IterationTime, Column.WarmupCount, Column.IterationCount);
        return artifactsPath is null ? config : config.WithArtifactsPath(artifactsPath);
    }
}

/// <summary>
/// "ns/entry": the mean time of a benchmark divided by its <c>Entries</c> parameter, i.e. the cost per cached entry of
/// an operation that visits the whole cache (a tag flush).
/// </summary>
public sealed class NsPerEntryColumn : IColumn
{
    /// <summary>The name of the parameter that holds the number of cached entries.</summary>
    public const string ParameterName = "Entries";

    public string Id => nameof(NsPerEntryColumn);

    public string ColumnName => "ns/entry";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => $"Mean divided by {ParameterName}: nanoseconds per cached entry";

    public bool IsAvailable(Summary summary) => summary.BenchmarksCases.Any(c => EntriesOf(c) is not null);

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        BenchmarkReport? report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats || EntriesOf(benchmarkCase) is not int entries || entries <= 0)
        {
            return "-";
        }

        return (stats.Mean / entries).ToString("0.000", CultureInfo.InvariantCulture);
    }

    private static int? EntriesOf(BenchmarkCase benchmarkCase) =>
        benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Name == ParameterName)?.Value as int?;
}

/// <summary>Adds the <see cref="NsPerEntryColumn"/> to a benchmark class.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class NsPerEntryColumnAttribute : ColumnConfigBaseAttribute
{
    public NsPerEntryColumnAttribute()
        : base(new NsPerEntryColumn())
    {
    }
}

/// <summary>
/// "descriptors/s" (or another unit): one second divided by the mean time of a benchmark whose operation handles
/// <c>OperationsPerInvoke</c> items, so that its Mean is already per item (the ring and unmap benchmarks).
/// </summary>
public sealed class DescriptorsPerSecondColumn(string columnName = "descriptors/s") : IColumn
{
    public string Id => nameof(DescriptorsPerSecondColumn) + columnName;

    public string ColumnName => columnName;

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => $"{columnName}: 1 s divided by the Mean per item";

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        BenchmarkReport? report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats || stats.Mean <= 0)
        {
            return "-";
        }

        double perSecond = 1e9 / stats.Mean;
        return perSecond >= 1e6
            ? (perSecond / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " M"
            : (perSecond / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + " k";
    }
}

/// <summary>Adds a <see cref="DescriptorsPerSecondColumn"/> named <c>columnName</c> to a benchmark class.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class DescriptorsPerSecondColumnAttribute(string columnName = "descriptors/s")
    : ColumnConfigBaseAttribute(new DescriptorsPerSecondColumn(columnName))
{
    /// <summary>The column's name.</summary>
    public string ColumnName => columnName;
}
