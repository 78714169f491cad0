namespace FastInval.Cli;

/// <summary>Process exit codes of <c>fastinval</c>.</summary>
internal static class ExitCodes
{
    /// <summary>The command did what was asked.</summary>
    public const int Ok = 0;

    /// <summary>The command ran and found something wrong (e.g. a demo self-check failed).</summary>
    public const int Failure = 1;

    /// <summary>The command line was not understood, or usage was asked for.</summary>
    public const int Usage = 2;
}

/// <summary>What a command gets: its own arguments (the command name removed) and where to write.</summary>
internal sealed record CommandInvocation(IReadOnlyList<string> Arguments, TextWriter Out, TextWriter Error);

/// <summary>One subcommand: its name, a one-line synopsis of its arguments, a one-line summary and its body.</summary>
internal sealed record CliCommand(string Name, string Synopsis, string Summary, Func<CommandInvocation, int> Run);

/// <summary>
/// The <c>fastinval</c> command dispatcher: <c>fastinval &lt;command&gt; [arguments]</c>. Adding a subcommand
/// (<c>serve</c>, <c>replay</c>, <c>generate</c>) is one more entry in <see cref="Commands"/>.
/// </summary>
internal static class CommandLine
{
    /// <summary>Every subcommand, in the order usage lists them.</summary>
    public static IReadOnlyList<CliCommand> Commands { get; } =
    [
        new("demo", "", "run the embedded scenario: a guest maps and unmaps memory, then timings", DemoCommand),
    ];

    /// <summary>Runs the command line; returns the process exit code.</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter output, TextWriter error)
    {
        if (args.Count == 0)
        {
            WriteUsage(error);
            return ExitCodes.Usage;
        }

        string name = args[0];
        if (IsHelp(name) || name == "help")
        {
            WriteUsage(output);
            return ExitCodes.Usage;
        }

        CliCommand? command = Find(name);
        if (command is null)
        {
            error.WriteLine($"fastinval: unknown command '{name}'");
            error.WriteLine();
            WriteUsage(error);
            return ExitCodes.Usage;
        }

        return command.Run(new CommandInvocation(args.Skip(1).ToArray(), output, error));
    }

    /// <summary>The command named <paramref name="name"/> (exact, case-sensitive), or null.</summary>
    public static CliCommand? Find(string name) => Commands.FirstOrDefault(c => c.Name == name);

    /// <summary>True for the usual ways of asking for help.</summary>
    public static bool IsHelp(string arg) => arg is "--help" or "-h" or "-?";

    /// <summary>Writes the overall usage.</summary>
    public static void WriteUsage(TextWriter writer)
    {
        writer.WriteLine("usage: fastinval <command> [arguments]");
        writer.WriteLine();
        writer.WriteLine("commands:");
        int width = Commands.Max(c => (c.Name + " " + c.Synopsis).TrimEnd().Length);
        foreach (CliCommand c in Commands)
        {
            writer.WriteLine($"  {(c.Name + " " + c.Synopsis).TrimEnd().PadRight(width)}  {c.Summary}");
        }

        writer.WriteLine();
        writer.WriteLine("'fastinval <command> --help' describes one command.");
    }

    /// <summary>Usage of one command.</summary>
    public static void WriteCommandUsage(TextWriter writer, CliCommand command, string? details = null)
    {
        writer.WriteLine($"usage: fastinval {(command.Name + " " + command.Synopsis).TrimEnd()}");
        writer.WriteLine();
        writer.WriteLine(details ?? command.Summary);
    }

    private static int DemoCommand(CommandInvocation invocation)
    {
        CliCommand self = Find("demo")!;
        const string details =
            "Runs an embedded scenario through the engine: a host with a VT-d-like IOMMU serves a guest with three devices;\n" +
            "the guest maps memory, DMA lookups hit, the guest unmaps it in several ways (one device times out and is retried),\n" +
            "and every step says what was asked, what the engine removed and what a lookup returns now. Ends with timings\n" +
            "over a 1M-entry IOTLB. Exit code 0 when every self-check of the demo held, 1 otherwise.";
        if (invocation.Arguments.Count == 1 && IsHelp(invocation.Arguments[0]))
        {
            WriteCommandUsage(invocation.Out, self, details);
            return ExitCodes.Ok;
        }

        if (invocation.Arguments.Count > 0)
        {
            invocation.Error.WriteLine($"fastinval demo: unexpected argument '{invocation.Arguments[0]}'");
            invocation.Error.WriteLine();
            WriteCommandUsage(invocation.Error, self, details);
            return ExitCodes.Usage;
        }

        return Demo.Run(invocation.Out);
    }
}
