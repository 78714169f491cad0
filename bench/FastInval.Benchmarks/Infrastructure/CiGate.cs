using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace FastInval.Benchmarks.Infrastructure;

/// <summary>
/// <c>--ci-check &lt;baseline.json&gt; [--update] [--reset]</c>: the benchmark regression gate of CI.
/// <para>
/// Runs a short in-process job (5 warm-up and 15 measured iterations of 50 ms) over the gate's cases — every
/// benchmark class at <see cref="Sizes.Gate"/> entries (the ring, iommufd and SMMU classes at their smallest size),
/// without the 1 GiB unmap and the memory-read limit — and derives from that one run only figures that are stable on a
/// shared machine:
/// </para>
/// <list type="bullet">
/// <item><c>.ratio</c>: a row's median ÷ the median of its class's baseline row with the same parameters (each kernel
/// against the scalar kernel; FastInval against the QEMU-style port; one batch against one at a time; a notifier against
/// none);</item>
/// <item><c>.vsQemu</c>: where a class has a QEMU-style row that is not its baseline (tag flush), each FastInval row ÷
/// that row, so that a slower scalar kernel cannot hide behind the kernels measured against it;</item>
/// <item><c>.allocB</c>: bytes allocated per invocation of every FastInval row, exact: after BenchmarkDotNet's run the
/// gate sets the case up again and counts <see cref="GC.GetAllocatedBytesForCurrentThread"/> over
/// <see cref="AllocationCalls"/> direct calls (the in-process memory diagnoser reports stray bytes here).</item>
/// </list>
/// <para>
/// A ratio fails when it exceeds the baseline's × <see cref="RatioTolerance"/>; an allocation fails when it exceeds the
/// baseline's by more than <see cref="AllocationSlackBytes"/> (the in-process diagnoser sometimes reports 1 B for a
/// zero-allocation case). Absolute times are never compared. When a check fails, the classes concerned run once more
/// and only a check that fails both times counts: one burst of noise from a neighbour must not fail CI, a real
/// regression fails twice. Prints one line per check and a final <c>N passed, N failed</c>; exit code 1 on a failure.
/// </para>
/// <para>
/// <c>--update</c> records the run into the baseline, keeping for each figure the larger (worse) of the recorded and
/// the current value, so that a few runs on a quiet machine record the worst of them; <c>--reset</c> starts the
/// baseline over.
/// </para>
/// </summary>
internal static class CiGate
{
    /// <summary>A ratio may grow to this multiple of its baseline (DOTNET-NOTES §3.4: ±35 % run to run here).</summary>
    public const double RatioTolerance = 1.5;

    /// <summary>Bytes per operation an allocation figure may exceed its baseline by.</summary>
    public const long AllocationSlackBytes = 8;

    private static readonly HashSet<string> s_gateClasses =
    [
        nameof(TagFlushBenchmarks), nameof(PageInvalidationBenchmarks), nameof(LookupBenchmarks), nameof(FillBenchmarks),
        nameof(BatchBenchmarks), nameof(IommufdInvalidateBenchmarks), nameof(VtdQueueBenchmarks), nameof(SmmuQueueBenchmarks),
        nameof(AmdViQueueBenchmarks), nameof(NotifierBenchmarks),
    ];

    /// <summary>Classes whose rows are gated on allocations only. The iommufd class's QEMU-style row (1,024 heap-allocating
    /// invalidations per op, 2–8 ms, bound by collections) moved 2× between runs on this VM, so a ratio against it cannot
    /// be held to ×1.5; the engine path under iommufd is gated through the VT-d ring and page-invalidation ratios.</summary>
    private static readonly HashSet<string> s_allocationOnly = [nameof(IommufdInvalidateBenchmarks)];

    public static int Run(string baselinePath, string[] options)
    {
        bool update = options.Contains("--update");
        bool reset = options.Contains("--reset");
        Dictionary<string, double> current = Measure(_ => true);
        SortedDictionary<string, double> baseline = reset ? new(StringComparer.Ordinal) : Load(baselinePath);
        Directory.CreateDirectory(Path.Combine("artifacts", "bench-ci"));
        Save(Path.Combine("artifacts", "bench-ci", "current.json"), new SortedDictionary<string, double>(current, StringComparer.Ordinal));

        if (update || reset || baseline.Count == 0)
        {
            foreach ((string key, double value) in current)
            {
                baseline[key] = baseline.TryGetValue(key, out double old) ? Math.Max(old, value) : value;
            }

            Save(baselinePath, baseline);
            Console.WriteLine($"baseline {baselinePath}: {current.Count} figures recorded ({(reset ? "new baseline" : "the worse of recorded and current for each")})");
            foreach ((string key, double value) in current.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"     {key}: current={value:0.####} recorded={baseline[key]:0.####}"));
            }

            Console.WriteLine($"{current.Count} passed, 0 failed");
            return 0;
        }

        HashSet<string> failing = Failures(current, baseline, print: false);
        Dictionary<string, double>? rerun = null;
        if (failing.Count > 0)
        {
            var classes = failing.Select(ClassOf).ToHashSet(StringComparer.Ordinal);
            Console.WriteLine($"gate: {failing.Count} check(s) out of tolerance ({string.Join(", ", failing)}); running {string.Join(", ", classes)} again");
            rerun = Measure(type => classes.Contains(type));
        }

        int passed = 0, failed = 0;
        Console.WriteLine();
        Console.WriteLine($"Benchmark gate: ratios ≤ baseline × {RatioTolerance}, allocations ≤ baseline + {AllocationSlackBytes} B (CPU {ResultsRunner.CpuSlug()})");
        foreach ((string key, double limitBase) in baseline)
        {
            if (!current.TryGetValue(key, out double value))
            {
                Console.WriteLine($"FAIL {key}: not measured (benchmark removed or renamed? rerun with --reset)");
                failed++;
                continue;
            }

            bool bad = OutOfTolerance(key, value, limitBase);
            string second = "";
            if (bad && rerun is not null && rerun.TryGetValue(key, out double again))
            {
                bad = OutOfTolerance(key, again, limitBase);
                second = string.Create(CultureInfo.InvariantCulture, $" rerun={again:0.####}");
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{(bad ? "FAIL" : "ok  ")} {key}: current={value:0.####}{second} baseline={limitBase:0.####} limit={Limit(key, limitBase):0.####}"));
            if (bad)
            {
                failed++;
            }
            else
            {
                passed++;
            }
        }

        foreach (string key in current.Keys.Where(k => !baseline.ContainsKey(k)).Order(StringComparer.Ordinal))
        {
            Console.WriteLine($"note {key}: new figure {current[key]:0.####} (not in the baseline; record it with --update)");
        }

        Console.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    private static bool OutOfTolerance(string key, double value, double baseline) => value > Limit(key, baseline);

    private static double Limit(string key, double baseline) =>
        key.EndsWith(".allocB", StringComparison.Ordinal) ? baseline + AllocationSlackBytes : baseline * RatioTolerance;

    private static HashSet<string> Failures(Dictionary<string, double> current, SortedDictionary<string, double> baseline, bool print)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach ((string key, double b) in baseline)
        {
            if (current.TryGetValue(key, out double c) && OutOfTolerance(key, c, b))
            {
                result.Add(key);
                if (print)
                {
                    Console.WriteLine($"FAIL {key}");
                }
            }
        }

        return result;
    }

    private static string ClassOf(string key) => key[..key.IndexOf('.', StringComparison.Ordinal)];

    /// <summary>True for the cases the gate runs: every gate class at its gate size.</summary>
    private static bool InGate(BenchmarkCase c)
    {
        string type = c.Descriptor.Type.Name;
        if (!s_gateClasses.Contains(type))
        {
            return false;
        }

        foreach (var p in c.Parameters.Items)
        {
            bool keep = (type, p.Name, p.Value) switch
            {
                (_, "Entries", int n) when type is nameof(IommufdInvalidateBenchmarks) or nameof(VtdQueueBenchmarks) or nameof(AmdViQueueBenchmarks) => n == 1 << 10,
                (nameof(SmmuQueueBenchmarks), "Entries", int n) => n == 1 << 8,
                (_, "Entries", int n) => n == Sizes.Gate,
                (_, "Scope", FlushScope s) => s == FlushScope.Domain,
                (_, "Pages", int pages) => pages == 1,
                _ => true,
            };
            if (!keep)
            {
                return false;
            }
        }

        return true;
    }

    private static Dictionary<string, double> Measure(Func<string, bool> classFilter)
    {
        IConfig config = DefaultConfig.Instance
            .AddJob(Job.Default
                .WithToolchain(InProcessEmitToolchain.Instance)
                .WithWarmupCount(5)
                .WithIterationCount(15)
                .WithIterationTime(TimeInterval.FromMilliseconds(50))
                .WithId("CI"))
            .AddFilter(new SimpleFilter(c => InGate(c) && classFilter(c.Descriptor.Type.Name)))
            .WithArtifactsPath(Path.Combine("artifacts", "bench-ci"))
            .WithOptions(ConfigOptions.DisableLogFile);
        Summary[] summaries = BenchmarkSwitcher.FromAssembly(typeof(CiGate).Assembly).Run(["--filter", "*"], config).ToArray();

        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (Summary summary in summaries)
        {
            foreach (BenchmarkReport report in summary.Reports)
            {
                BenchmarkCase c = report.BenchmarkCase;
                if (report.ResultStatistics is not { } stats)
                {
                    result[Key(c) + ".failed"] = 1; // never in a baseline: reported as a new figure, and the class fails below
                    continue;
                }

                bool qemu = IsQemu(c);
                bool ratios = !s_allocationOnly.Contains(c.Descriptor.Type.Name);
                BenchmarkReport? baseline = Peer(summary, c, other => other.Descriptor.Baseline);
                if (ratios && baseline?.ResultStatistics is { } b && !ReferenceEquals(baseline.BenchmarkCase, c) && !qemu)
                {
                    result[Key(c) + ".ratio"] = stats.Median / b.Median;
                }

                BenchmarkReport? qemuRow = Peer(summary, c, IsQemu);
                if (ratios && !qemu && qemuRow is { ResultStatistics: { } q } && !qemuRow.BenchmarkCase.Descriptor.Baseline)
                {
                    result[Key(c) + ".vsQemu"] = stats.Median / q.Median;
                }

                if (!qemu)
                {
                    result[Key(c) + ".allocB"] = ExactAllocation(c);
                }
            }
        }

        return result;
    }

    /// <summary>Calls of a benchmark method the allocation count is taken over (after as many warm-up calls).</summary>
    public const int AllocationCalls = 256;

    /// <summary>Bytes one call of the case's benchmark method allocates, rounded down: the case is set up as
    /// BenchmarkDotNet sets it up (parameters, global setup, iteration setup) and called through a typed delegate.</summary>
    private static double ExactAllocation(BenchmarkCase c)
    {
        var descriptor = c.Descriptor;
        object instance = Activator.CreateInstance(descriptor.Type)!;
        foreach (var p in c.Parameters.Items)
        {
            const BindingFlags Flags = BindingFlags.Public | BindingFlags.Instance;
            if (descriptor.Type.GetField(p.Name, Flags) is { } field)
            {
                field.SetValue(instance, p.Value);
            }
            else
            {
                descriptor.Type.GetProperty(p.Name, Flags)!.SetValue(instance, p.Value);
            }
        }

        descriptor.GlobalSetupMethod?.Invoke(instance, null);
        try
        {
            MethodInfo measure = typeof(CiGate).GetMethod(nameof(Count), BindingFlags.NonPublic | BindingFlags.Static)!
                .MakeGenericMethod(descriptor.WorkloadMethod.ReturnType);
            Type func = typeof(Func<>).MakeGenericType(descriptor.WorkloadMethod.ReturnType);
            Delegate call = descriptor.WorkloadMethod.CreateDelegate(func, instance);
            Action? iterationSetup = descriptor.IterationSetupMethod is { } setup ? setup.CreateDelegate<Action>(instance) : null;
            return (long)measure.Invoke(null, [call, iterationSetup])!;
        }
        finally
        {
            descriptor.GlobalCleanupMethod?.Invoke(instance, null);
        }
    }

    private static long Count<T>(Func<T> call, Action? iterationSetup)
    {
        int calls = iterationSetup is null ? AllocationCalls : 4; // an iteration-setup case is one long call per setup
        long bytes = 0;
        T last = default!;
        for (int round = 0; round < 2; round++)
        {
            bytes = 0;
            for (int i = 0, retries = 0; i < calls; i++)
            {
                iterationSetup?.Invoke();
                int collections = GC.CollectionCount(0);
                long before = GC.GetAllocatedBytesForCurrentThread();
                last = call(); // a typed local: no boxing inside the count
                long delta = GC.GetAllocatedBytesForCurrentThread() - before;
                if (GC.CollectionCount(0) != collections && retries++ < calls)
                {
                    i--; // the per-thread counter can jump by an allocation quantum across a collection: count this call again
                    continue;
                }

                bytes += delta;
            }
        }

        GC.KeepAlive(last);
        return bytes / calls;
    }

    private static bool IsQemu(BenchmarkCase c) => c.Descriptor.WorkloadMethodDisplayInfo.Contains("QEMU", StringComparison.Ordinal);

    /// <summary>The report of the case of <paramref name="c"/>'s class with the same parameters that matches.</summary>
    private static BenchmarkReport? Peer(Summary summary, BenchmarkCase c, Func<BenchmarkCase, bool> match) =>
        summary.Reports.FirstOrDefault(r =>
            r.BenchmarkCase.Descriptor.Type == c.Descriptor.Type &&
            r.BenchmarkCase.Parameters.DisplayInfo == c.Parameters.DisplayInfo &&
            match(r.BenchmarkCase));

    private static string Key(BenchmarkCase c) =>
        $"{c.Descriptor.Type.Name}.{c.Descriptor.WorkloadMethodDisplayInfo.Trim('\'')}({c.Parameters.DisplayInfo})";

    private static SortedDictionary<string, double> Load(string path)
    {
        var result = new SortedDictionary<string, double>(StringComparer.Ordinal);
        if (File.Exists(path) && JsonNode.Parse(File.ReadAllText(path)) is JsonObject o && o["figures"] is JsonObject figures)
        {
            foreach ((string key, JsonNode? value) in figures)
            {
                result[key] = value!.GetValue<double>();
            }
        }

        return result;
    }

    private static void Save(string path, SortedDictionary<string, double> figures)
    {
        var o = new JsonObject
        {
            ["about"] = "CI benchmark gate (bench/FastInval.Benchmarks -- --ci-check): ratios within one run and bytes allocated per op; see bench/README.md",
            ["cpu"] = ResultsRunner.CpuSlug(),
            ["recorded"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture),
            ["figures"] = new JsonObject(figures.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(Math.Round(p.Value, 4))))),
        };
        File.WriteAllText(path, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
