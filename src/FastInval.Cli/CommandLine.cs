using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Reflection;

namespace FastInval.Cli;

/// <summary>Process exit codes of <c>fastinval</c>.</summary>
internal static class ExitCodes
{
    /// <summary>The command did what was asked (also <c>--help</c> and <c>--version</c>).</summary>
    public const int Ok = 0;

    /// <summary>The command ran and found something wrong (e.g. a demo self-check failed, a server could not start, a
    /// replayed reply differs from the recorded one).</summary>
    public const int Failure = 1;

    /// <summary>The command line was not understood.</summary>
    public const int Usage = 2;
}

/// <summary>
/// The <c>fastinval</c> command line on System.CommandLine: <c>fastinval &lt;command&gt; [options]</c>, with
/// <c>--help</c> (exit 0), <c>--version</c> (the informational version, exit 0) and parse errors on stderr (exit 2).
/// </summary>
internal static class CommandLine
{
    /// <summary>The command's name, as help and errors spell it.</summary>
    public const string Name = "fastinval";

    /// <summary>The informational version of the command (what <c>--version</c> prints).</summary>
    public static string Version { get; } =
        typeof(CommandLine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(CommandLine).Assembly.GetName().Version?.ToString()
        ?? "0.0.0";

    /// <summary>Builds the command tree. <paramref name="serve"/> runs <c>fastinval serve</c> (the tests replace it to
    /// check parsing without starting a server); null means the real server.</summary>
    public static Command Build(Func<ServeSettings, TextWriter, TextWriter, CancellationToken, int>? serve = null)
    {
        var root = new Command(Name, "FastInval: an IOMMU cache-invalidation engine, its demo and its server.");
        root.Options.Add(new HelpOption());
        var version = new VersionOption();
        version.Action = new PrintVersionAction();
        root.Options.Add(version);

        var demo = new Command("demo", "Run the embedded scenario: a guest maps and unmaps memory, then timings.\n" +
            "A host with a VT-d-like IOMMU serves a guest with three devices; the guest maps memory, DMA lookups hit, the\n" +
            "guest unmaps it in several ways (one device times out and is retried), and every step says what was asked,\n" +
            "what the engine removed and what a lookup returns now. Ends with timings over a 1M-entry IOTLB.\n" +
            "Exit code 0 when every self-check of the demo held, 1 otherwise.");
        demo.SetAction(parseResult => Demo.Run(parseResult.InvocationConfiguration.Output));
        root.Subcommands.Add(demo);

        root.Subcommands.Add(ServeCommand.Build(serve));
        root.Subcommands.Add(TraceCommands.BuildReplay());
        root.Subcommands.Add(TraceCommands.BuildGenerate());
        return root;
    }

    /// <summary>Runs the command line; returns the process exit code.</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter output, TextWriter error) =>
        Run(Build(), args, output, error);

    /// <summary>Runs <paramref name="args"/> against <paramref name="root"/>; returns the process exit code.</summary>
    public static int Run(Command root, IReadOnlyList<string> args, TextWriter output, TextWriter error)
    {
        ParseResult parseResult = root.Parse(args);
        if (parseResult.Errors.Count > 0 && parseResult.Action is null or ParseErrorAction)
        {
            foreach (System.CommandLine.Parsing.ParseError e in parseResult.Errors)
            {
                error.WriteLine($"{Name}: {e.Message}");
            }

            error.WriteLine($"Run '{Name} --help' for usage.");
            return ExitCodes.Usage;
        }

        // ProcessTerminationTimeout = null: commands that run until stopped (serve) handle SIGTERM and Ctrl-C themselves.
        var configuration = new InvocationConfiguration { Output = output, Error = error, ProcessTerminationTimeout = null };
        return parseResult.Invoke(configuration);
    }

    private sealed class PrintVersionAction : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.WriteLine(Version);
            return ExitCodes.Ok;
        }
    }
}
