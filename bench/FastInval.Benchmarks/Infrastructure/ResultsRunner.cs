using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using BenchmarkDotNet.Environments;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace FastInval.Benchmarks.Infrastructure;

/// <summary>
/// <c>--results &lt;dir&gt; [BenchmarkDotNet options]</c>: runs the suite (all of it unless a <c>--filter</c> is given) and
/// copies BenchmarkDotNet's GitHub-markdown and JSON reports into <c>&lt;dir&gt;/&lt;cpu-slug&gt;/</c>, replacing the previous
/// results of that CPU (a full run empties the folder first; a filtered run replaces the files it produces), then
/// rewrites <c>summary.md</c> there: the environment and every report of the folder, in suite order.
/// </summary>
internal static partial class ResultsRunner
{
    /// <summary>Suite order of the reports in summary.md.</summary>
    private static readonly string[] s_order =
        [
            nameof(TagFlushBenchmarks), nameof(MemoryBandwidthBenchmarks), nameof(PageInvalidationBenchmarks), nameof(LookupBenchmarks),
            nameof(FillBenchmarks), nameof(BatchBenchmarks), nameof(UnmapBenchmarks), nameof(IommufdInvalidateBenchmarks),
            nameof(VtdQueueBenchmarks), nameof(SmmuQueueBenchmarks),
        ];

    public static int Run(string resultsRoot, string[] options)
    {
        string slug = CpuSlug();
        string artifacts = Path.GetFullPath(Path.Combine("artifacts", "bench", slug));
        if (Directory.Exists(artifacts))
        {
            Directory.Delete(artifacts, recursive: true);
        }

        bool filtered = options.Any(o => o is "--filter" or "-f");
        string[] args = filtered ? options : ["--filter", "*", .. options];
        var clock = Stopwatch.StartNew();
        Summary[] summaries = BenchmarkSwitcher.FromAssembly(typeof(ResultsRunner).Assembly).Run(args, SuiteConfig.Create(args, artifacts)).ToArray();
        clock.Stop();

        string target = Path.Combine(resultsRoot, slug);
        if (!filtered && Directory.Exists(target))
        {
            Directory.Delete(target, recursive: true);
        }

        Directory.CreateDirectory(target);
        string reports = Path.Combine(artifacts, "results");
        int copied = 0;
        if (Directory.Exists(reports))
        {
            foreach (string file in Directory.EnumerateFiles(reports))
            {
                if (file.EndsWith("-report-github.md", StringComparison.Ordinal) || file.EndsWith("-report-brief.json", StringComparison.Ordinal))
                {
                    File.Copy(file, Path.Combine(target, ShortName(Path.GetFileName(file))), overwrite: true);
                    copied++;
                }
            }
        }

        if (!filtered)
        {
            Console.WriteLine("memory footprint per cached translation:");
            Footprint.Run(Path.Combine(target, "footprint.md"));
        }

        WriteSummary(target, options, clock.Elapsed);
        bool failed = summaries.Length == 0 || summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
        Console.WriteLine($"{copied} report files written to {target} ({clock.Elapsed.TotalMinutes:0.0} min){(failed ? "; SOME BENCHMARKS FAILED" : "")}");
        return failed ? 1 : 0;
    }

    /// <summary>A file-system name for this CPU: the processor name, plus family and model where /proc/cpuinfo gives them
    /// (brand strings like "AMD EPYC" name several generations).</summary>
    public static string CpuSlug()
    {
        string name = HostEnvironmentInfo.GetCurrent().Cpu.Value.ProcessorName ?? "unknown-cpu";
        string slug = NonAlphanumeric().Replace(name.ToLowerInvariant(), "-").Trim('-');
        slug = CoreCountOrProcessor().Replace(slug, "").Trim('-');
        if (ProcCpuInfo("cpu family") is string family && ProcCpuInfo("model") is string model)
        {
            slug += $"-family{family}-model{model}";
        }

        return slug.Length == 0 ? "unknown-cpu" : slug;
    }

    private static string? ProcCpuInfo(string key)
    {
        const string path = "/proc/cpuinfo";
        if (!File.Exists(path))
        {
            return null;
        }

        foreach (string line in File.ReadLines(path))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line[..colon].Trim() == key)
            {
                return line[(colon + 1)..].Trim();
            }
        }

        return null;
    }

    private static string ShortName(string file) => file.StartsWith("FastInval.Benchmarks.", StringComparison.Ordinal) ? file["FastInval.Benchmarks.".Length..] : file;

    private static void WriteSummary(string target, string[] options, TimeSpan elapsed)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"# FastInval benchmarks on {HostEnvironmentInfo.GetCurrent().Cpu.Value.ProcessorName}");
        sb.AppendLine();
        sb.AppendLine("Written by `bench/run.sh` (`--results`); BenchmarkDotNet's own reports for each class sit next to this file.");
        sb.AppendLine();
        sb.AppendLine("```");
        foreach (string line in HostEnvironmentInfo.GetCurrent().ToFormattedString())
        {
            sb.AppendLine(line);
        }

        if (ProcCpuInfo("cpu family") is string family)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"/proc/cpuinfo: family {family}, model {ProcCpuInfo("model")}, stepping {ProcCpuInfo("stepping")}");
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"Scan kernels: accelerated {string.Join(", ", TagScanKernels.Accelerated.Select(TagScanKernels.Name))}; best {TagScanKernels.Name(TagScanKernels.Best)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Last run: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, options [{string.Join(' ', options)}], wall time {elapsed.TotalMinutes:0.0} min");
        sb.AppendLine("```");
        var reports = Directory.EnumerateFiles(target, "*-report-github.md")
            .OrderBy(f => Array.FindIndex(s_order, c => Path.GetFileName(f).StartsWith(c, StringComparison.Ordinal)) is int i and >= 0 ? i : int.MaxValue)
            .ThenBy(f => f, StringComparer.Ordinal);
        foreach (string report in reports)
        {
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"## {Path.GetFileName(report).Replace("-report-github.md", "", StringComparison.Ordinal)}");
            sb.AppendLine();
            sb.Append(File.ReadAllText(report));
        }

        string footprint = Path.Combine(target, "footprint.md");
        if (File.Exists(footprint))
        {
            sb.AppendLine();
            sb.AppendLine("## Memory footprint (bytes per cached translation, `--footprint`)");
            sb.AppendLine();
            sb.Append(File.ReadAllText(footprint));
        }

        File.WriteAllText(Path.Combine(target, "summary.md"), sb.ToString());
    }

    [GeneratedRegex("[^a-z0-9]+")]
    private static partial Regex NonAlphanumeric();

    [GeneratedRegex(@"(-\d+-core|-processor)\b")]
    private static partial Regex CoreCountOrProcessor();
}
