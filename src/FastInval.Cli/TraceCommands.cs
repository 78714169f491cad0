using System.CommandLine;
using System.Globalization;
using FastInval.Host.Traces;

namespace FastInval.Cli;

/// <summary><c>fastinval replay FILE [--verify] [--progress]</c> and <c>fastinval generate WORKLOAD --seed N -o FILE
/// [--operations N]</c>.</summary>
internal static class TraceCommands
{
    /// <summary>Builds the <c>replay</c> command.</summary>
    public static Command BuildReplay()
    {
        var file = new Argument<string>("FILE") { Description = "The trace file (from `fastinval serve --record` or `fastinval generate`)." };
        var verify = new Option<bool>("--verify") { Description = "Compare every reply with the recorded one; exit 1 at the first difference." };
        var progress = new Option<bool>("--progress") { Description = "Draw a progress bar on stderr even when it is not a terminal." };
        var replay = new Command("replay", "Replay a trace against fresh units in this process (no socket) and print, per unit:\n" +
            "requests, operations, entries filled, lookups, descriptors by scope, entries removed, outcomes and errors; then\n" +
            "a throughput line. A progress bar is drawn on stderr when it is a terminal (or with --progress).\n" +
            "Exit code 0 when replayed (with --verify: every reply equal to the recorded one), 1 when a reply differs\n" +
            "(the first difference, its frame index and field, on stderr), 2 for a command-line error, 3 when the trace\n" +
            "cannot be read (missing, not a trace, truncated, inconsistent record).")
        {
            file, verify, progress,
        };
        replay.SetAction(parseResult =>
        {
            var settings = new ReplaySettings(parseResult.GetValue(file)!, parseResult.GetValue(verify), parseResult.GetValue(progress));
            TextWriter output = parseResult.InvocationConfiguration.Output, error = parseResult.InvocationConfiguration.Error;
            bool terminal = ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected;
            return Replay.Run(settings, output, error, terminal);
        });
        return replay;
    }

    /// <summary>Builds the <c>generate</c> command.</summary>
    public static Command BuildGenerate()
    {
        var workload = new Argument<string>("WORKLOAD") { Description = "One of: " + string.Join(", ", Workloads.All.Select(w => w.Name)) + "." };
        workload.AcceptOnlyFromAmong([.. Workloads.All.Select(w => w.Name)]);
        workload.HelpName = "WORKLOAD";
        var seed = new Option<int>("--seed") { Description = "Seed of the workload's random choices (the same seed gives the same trace, byte for byte past its creation time).", Required = true };
        var outputFile = new Option<string>("--output", "-o") { Description = "The trace file to write.", Required = true };
        var operations = new Option<long>("--operations") { Description = "Operations to send (entries filled, queries, descriptors, one per other request); default per workload." };
        operations.Validators.Add(r =>
        {
            if (r.Tokens.Count > 0 && long.TryParse(r.Tokens[^1].Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) && (n < 1 || n > 1L << 32))
            {
                r.AddError($"--operations must be between 1 and {1L << 32} (was {n}).");
            }
        });
        string list = string.Join("\n", Workloads.All.Select(w => $"  {w.Name}: {w.Description} (default {w.DefaultOperations} operations)"));
        var generate = new Command("generate", "Write a synthetic trace: one engine unit driven through the protocol in this process, replies\n" +
            "included (so `fastinval replay --verify` of it checks that the engine still answers the same). Workloads:\n" + list + "\n" +
            "Exit code 0 when written, 1 when the workload's own checks failed or the file could not be written, 2 for a\n" +
            "command-line error.")
        {
            workload, seed, outputFile, operations,
        };
        generate.SetAction(parseResult =>
        {
            TextWriter output = parseResult.InvocationConfiguration.Output, error = parseResult.InvocationConfiguration.Error;
            string name = parseResult.GetValue(workload)!;
            long count = parseResult.GetResult(operations) is { Implicit: false } ? parseResult.GetValue(operations) : 0;
            return Generate.Run(name, parseResult.GetValue(seed), parseResult.GetValue(outputFile)!, count, output, error);
        });
        return generate;
    }
}

/// <summary>Runs <c>fastinval generate</c>.</summary>
internal static class Generate
{
    /// <summary>Writes the workload's trace to <paramref name="path"/>; <paramref name="operations"/> 0 is the workload's default.</summary>
    public static int Run(string workload, int seed, string path, long operations, TextWriter output, TextWriter error)
    {
        (string name, _, long defaultOperations, Action<TraceClient, Random, long> run) = Workloads.All.Single(w => w.Name == workload);
        long target = operations > 0 ? operations : defaultOperations;
        TraceWriter trace;
        try
        {
            trace = TraceWriter.Create(path, TraceHeader.For(new FastInval.Host.ServerOptions { SocketPath = "(generate)" }, TraceFormat.FlagGenerated));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"fastinval generate: cannot write {path}: {e.Message}");
            return ExitCodes.Failure;
        }

        long sent;
        try
        {
            using var client = new TraceClient(trace);
            run(client, new Random(seed), target);
            sent = client.Operations;
        }
        catch (InvalidOperationException e)
        {
            trace.Dispose();
            error.WriteLine($"fastinval generate: {name}: {e.Message}");
            return ExitCodes.Failure;
        }

        long records = trace.Records;
        trace.Dispose();
        if (trace.Failure is not null)
        {
            error.WriteLine($"fastinval generate: writing {path} failed: {trace.Failure.Message}");
            return ExitCodes.Failure;
        }

        output.WriteLine($"generate {name} (seed {seed}): {sent.ToString("N0", CultureInfo.InvariantCulture)} operations, {records.ToString("N0", CultureInfo.InvariantCulture)} records, {new FileInfo(path).Length.ToString("N0", CultureInfo.InvariantCulture)} bytes -> {path}");
        return ExitCodes.Ok;
    }
}
