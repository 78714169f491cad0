using System.Globalization;
using System.Text.Json;
using ScottPlot;

// FastInval.Plots <results-dir>: draws the scaling plots from BenchmarkDotNet's *-report-brief.json files in a results
// folder written by bench/run.sh (bench/results/<cpu-slug>/) and saves them as PNGs in the same folder.
//   tag-flush.png      time per cached entry of a domain flush against cache size, every kernel, the QEMU-style port,
//                      and the memory-read limit (8 bytes per entry) from the same run; log-log
//   lookup-fill.png    time per lookup hit and per fill against cache size, FastInval and the QEMU-style port; log-log
//   page-inval.png     time of a one-page invalidation against cache size, FastInval and the QEMU-style port; log-log
if (args.Length != 1 || !Directory.Exists(args[0]))
{
    Console.Error.WriteLine("usage: FastInval.Plots <results-dir>");
    return 2;
}

string dir = args[0];
string cpu = Results.CpuName(dir);
int written = 0;

var flush = Results.Load(dir, "TagFlushBenchmarks", "Scope=Domain");
var read = Results.Load(dir, "MemoryBandwidthBenchmarks", null);
if (flush.Count > 0)
{
    var series = flush.Select(s => (s.Key, s.Value.Select(p => (p.Entries, p.MeanNs / p.Entries)).ToList())).ToList();
    series.AddRange(read.Select(s => ("memory read limit (8 B/entry)", s.Value.Select(p => (p.Entries, p.MeanNs / p.Entries)).ToList())));
    written += Results.Plot(Path.Combine(dir, "tag-flush.png"), $"Domain flush: time per cached entry ({cpu})", "ns per cached entry", series);
}

var lookup = Results.Load(dir, "LookupBenchmarks", null);
var fill = Results.Load(dir, "FillBenchmarks", null);
if (lookup.Count > 0)
{
    var series = lookup.Select(s => ($"lookup hit, {s.Key}", s.Value.Select(p => (p.Entries, p.MeanNs)).ToList())).ToList();
    series.AddRange(fill.Select(s => ($"fill (evicting), {s.Key}", s.Value.Select(p => (p.Entries, p.MeanNs)).ToList())));
    written += Results.Plot(Path.Combine(dir, "lookup-fill.png"), $"Lookup and fill latency ({cpu})", "ns per lookup / per fill", series);
}

var page = Results.Load(dir, "PageInvalidationBenchmarks", "Pages=1");
if (page.Count > 0)
{
    var series = page.Select(s => (s.Key, s.Value.Select(p => (p.Entries, p.MeanNs)).ToList())).ToList();
    written += Results.Plot(Path.Combine(dir, "page-inval.png"), $"One-page invalidation, refill included ({cpu})", "ns per invalidation", series);
}

Console.WriteLine($"{written} plots written to {dir}");
return written > 0 ? 0 : 1;

/// <summary>One measured point: cache entries and mean time per operation.</summary>
internal readonly record struct Point(int Entries, double MeanNs);

internal static class Results
{
    /// <summary>The series (method title → points by size) of one class's brief JSON report, optionally only the cases
    /// whose parameters contain <paramref name="parameterFilter"/>.</summary>
    public static SortedDictionary<string, List<Point>> Load(string dir, string type, string? parameterFilter)
    {
        var result = new SortedDictionary<string, List<Point>>(StringComparer.Ordinal);
        string path = Path.Combine(dir, $"{type}-report-brief.json");
        if (!File.Exists(path))
        {
            return result;
        }

        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(path));
        foreach (JsonElement b in doc.RootElement.GetProperty("Benchmarks").EnumerateArray())
        {
            string parameters = b.GetProperty("Parameters").GetString() ?? "";
            if ((parameterFilter is not null && !parameters.Split('&').Contains(parameterFilter, StringComparer.Ordinal)) ||
                !b.TryGetProperty("Statistics", out JsonElement stats) || stats.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            int entries = parameters.Split('&').Select(p => p.Split('=')).Where(kv => kv[0] == "Entries")
                .Select(kv => int.Parse(kv[1], CultureInfo.InvariantCulture)).FirstOrDefault();
            string title = b.GetProperty("MethodTitle").GetString()!.Trim('\'');
            if (!result.TryGetValue(title, out List<Point>? points))
            {
                result[title] = points = [];
            }

            points.Add(new Point(entries, stats.GetProperty("Mean").GetDouble()));
        }

        foreach (List<Point> points in result.Values)
        {
            points.Sort((a, b) => a.Entries.CompareTo(b.Entries));
        }

        return result;
    }

    /// <summary>The processor name of the reports, with the folder's family/model suffix.</summary>
    public static string CpuName(string dir)
    {
        string slug = Path.GetFileName(Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar));
        foreach (string file in Directory.EnumerateFiles(dir, "*-report-brief.json"))
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(file));
            string? name = doc.RootElement.GetProperty("HostEnvironmentInfo").GetProperty("ProcessorName").GetString();
            int at = slug.IndexOf("-family", StringComparison.Ordinal);
            return at >= 0 ? $"{name}, {slug[(at + 1)..].Replace('-', ' ')}" : name ?? slug;
        }

        return slug;
    }

    /// <summary>A log-log plot: cache entries (log2 axis, labelled 1K..16M) against the value (log10 axis).</summary>
    public static int Plot(string path, string title, string yLabel, List<(string Name, List<(int Entries, double Value)> Points)> series)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int i = 0;
        double minY = double.MaxValue, maxY = double.MinValue;
        foreach ((string name, List<(int Entries, double Value)> points) in series)
        {
            double[] xs = points.Select(p => Math.Log2(p.Entries)).ToArray();
            double[] ys = points.Select(p => Math.Log10(p.Value)).ToArray();
            var scatter = plot.Add.Scatter(xs, ys, palette.GetColor(i++));
            scatter.LegendText = name;
            scatter.LineWidth = 2;
            scatter.MarkerSize = 7;
            if (name.StartsWith("memory read limit", StringComparison.Ordinal))
            {
                scatter.LinePattern = LinePattern.Dashed;
            }

            minY = Math.Min(minY, ys.Min());
            maxY = Math.Max(maxY, ys.Max());
        }

        int[] sizes = series.SelectMany(s => s.Points.Select(p => p.Entries)).Distinct().Order().ToArray();
        plot.Axes.Bottom.SetTicks(sizes.Select(s => Math.Log2(s)).ToArray(), sizes.Select(SizeLabel).ToArray());
        int lo = (int)Math.Floor(minY), hi = (int)Math.Ceiling(maxY);
        double[] decades = Enumerable.Range(lo, hi - lo + 1).Select(d => (double)d).ToArray();
        plot.Axes.Left.SetTicks(decades, decades.Select(d => Math.Pow(10, d).ToString("G4", CultureInfo.InvariantCulture)).ToArray());
        plot.Axes.SetLimitsY(lo - 0.05, hi + 0.05);
        plot.Title(title);
        plot.XLabel("cached entries (log scale)");
        plot.YLabel(yLabel + " (log scale)");
        plot.Legend.Alignment = Alignment.UpperLeft;
        plot.ShowLegend();
        plot.SavePng(path, 900, 560);
        Console.WriteLine($"wrote {path}");
        return 1;
    }

    private static string SizeLabel(int entries) =>
        entries >= 1 << 20 ? $"{entries >> 20}M" : entries >= 1 << 10 ? $"{entries >> 10}K" : entries.ToString(CultureInfo.InvariantCulture);
}
