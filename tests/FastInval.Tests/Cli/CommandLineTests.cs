using System.Globalization;
using FastInval.Cli;

namespace FastInval.Tests.Cli;

public class CommandLineTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args) => RunWith(null, args);

    private static (int Exit, string Out, string Err) RunWith(Func<ServeSettings, TextWriter, TextWriter, CancellationToken, int>? serve, params string[] args)
    {
        using var stdout = new StringWriter(CultureInfo.InvariantCulture);
        using var stderr = new StringWriter(CultureInfo.InvariantCulture);
        int exit = CommandLine.Run(CommandLine.Build(serve), args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void NoArguments_IsAParseErrorOnStderrWithExit2()
    {
        (int exit, string stdout, string stderr) = Run();
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.StartsWith("fastinval: ", stderr, StringComparison.Ordinal);
        Assert.Contains("Run 'fastinval --help' for usage.", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("-?")]
    public void Help_ListsEveryCommandOnStdoutAndExits0(string arg)
    {
        (int exit, string stdout, string stderr) = Run(arg);
        Assert.Equal(0, exit);
        Assert.Equal("", stderr);
        Assert.Contains("Usage:\n  fastinval [command] [options]", stdout.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.All(CommandLine.Build().Subcommands, c => Assert.Matches($@"(?m)^  {c.Name}( <[A-Z]+>)?  ", stdout.ReplaceLineEndings("\n")));
        Assert.Contains("  demo ", stdout, StringComparison.Ordinal);
        Assert.Contains("  serve ", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Version_PrintsTheInformationalVersionAndExits0()
    {
        (int exit, string stdout, string stderr) = Run("--version");
        Assert.Equal(0, exit);
        Assert.Equal("", stderr);
        string expected = typeof(CommandLine).Assembly
            .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        Assert.Equal(expected + Environment.NewLine, stdout);
        Assert.Matches(@"^\d+\.\d+\.\d+", stdout);
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("help")]
    [InlineData("frobnicate", "demo")]
    public void UnknownCommand_IsAnErrorOnStderrAndExits2(params string[] args)
    {
        (int exit, string stdout, string stderr) = Run(args);
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Contains($"'{args[0]}'", stderr, StringComparison.Ordinal);
        Assert.EndsWith("Run 'fastinval --help' for usage." + Environment.NewLine, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void DemoHelpDescribesTheDemoAnd_Exits0WithoutRunningIt()
    {
        (int exit, string stdout, _) = Run("demo", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("fastinval demo [options]", stdout, StringComparison.Ordinal);
        Assert.Contains("self-check", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Step 1.", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Demo_RejectsExtraArgumentsWithExit2()
    {
        (int exit, string stdout, string stderr) = Run("demo", "--fast");
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.StartsWith("fastinval: Unrecognized command or argument '--fast'.", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Serve_ParsesItsOptionsWithDefaults()
    {
        ServeSettings? seen = null;
        (int exit, _, string stderr) = RunWith((s, _, _, _) => { seen = s; return 0; }, "serve", "--socket", "/tmp/x.sock");
        Assert.Equal(0, exit);
        Assert.Equal("", stderr);
        Assert.Equal(new ServeSettings("/tmp/x.sock", ServeCommand.DefaultMaxUnits, ServeCommand.DefaultMaxConnections, ServeCommand.DefaultMaxFrameBytes), seen);

        (exit, _, _) = RunWith((s, _, _, _) => { seen = s; return 7; }, "serve", "--socket", "a", "--max-units", "3", "--max-connections", "4", "--max-frame-bytes", "4096");
        Assert.Equal(7, exit);
        Assert.Equal(new ServeSettings("a", 3, 4, 4096), seen);
    }

    [Theory]
    [InlineData("serve")]
    [InlineData("serve", "--socket")]
    [InlineData("serve", "--socket", "a", "--max-units", "0")]
    [InlineData("serve", "--socket", "a", "--max-units", "many")]
    [InlineData("serve", "--socket", "a", "--max-frame-bytes", "8")]
    [InlineData("serve", "--socket", "a", "--max-connections", "-1")]
    [InlineData("serve", "--socket", "a", "extra")]
    public void Serve_ParseErrorsExit2WithoutStartingAServer(params string[] args)
    {
        bool started = false;
        (int exit, string stdout, string stderr) = RunWith((_, _, _, _) => { started = true; return 0; }, args);
        Assert.Equal(2, exit);
        Assert.False(started);
        Assert.Equal("", stdout);
        Assert.StartsWith("fastinval: ", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Command_NamesAreUnique()
    {
        var names = CommandLine.Build().Subcommands.Select(c => c.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
    }

    [Fact]
    public void Launcher_NamedFastinvalSitsBesideTheCliAssembly()
    {
        string dir = Path.GetDirectoryName(typeof(CommandLine).Assembly.Location)!;
        string cliProjectOutput = Path.Combine(CliLocator.ProjectOutputDirectory());
        Assert.True(File.Exists(Path.Combine(cliProjectOutput, "fastinval")), $"no fastinval launcher in {cliProjectOutput}");
        Assert.True(File.Exists(Path.Combine(dir, "FastInval.Cli.dll")));
    }
}
