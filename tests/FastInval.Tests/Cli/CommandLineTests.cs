using System.Globalization;
using FastInval.Cli;

namespace FastInval.Tests.Cli;

public class CommandLineTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        using var stdout = new StringWriter(CultureInfo.InvariantCulture);
        using var stderr = new StringWriter(CultureInfo.InvariantCulture);
        int exit = CommandLine.Run(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void No_arguments_prints_usage_to_stderr_and_exits_2()
    {
        (int exit, string stdout, string stderr) = Run();
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.StartsWith("usage: fastinval <command>", stderr, StringComparison.Ordinal);
        Assert.Contains("  demo  ", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public void Help_prints_usage_listing_every_command_and_exits_2(string arg)
    {
        (int exit, string stdout, string stderr) = Run(arg);
        Assert.Equal(2, exit);
        Assert.Equal("", stderr);
        Assert.StartsWith("usage: fastinval <command>", stdout, StringComparison.Ordinal);
        Assert.All(CommandLine.Commands, c => Assert.Contains($"  {c.Name}", stdout, StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_command_is_an_error_with_usage_and_exits_2()
    {
        (int exit, string stdout, string stderr) = Run("frobnicate", "demo");
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.StartsWith("fastinval: unknown command 'frobnicate'", stderr, StringComparison.Ordinal);
        Assert.Contains("usage: fastinval <command>", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Demo_help_describes_the_demo_and_exits_0_without_running_it()
    {
        (int exit, string stdout, _) = Run("demo", "--help");
        Assert.Equal(0, exit);
        Assert.StartsWith("usage: fastinval demo", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Step 1.", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Demo_rejects_extra_arguments_with_exit_2()
    {
        (int exit, string stdout, string stderr) = Run("demo", "--fast");
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.StartsWith("fastinval demo: unexpected argument '--fast'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Command_names_are_unique()
    {
        Assert.Equal(CommandLine.Commands.Count, CommandLine.Commands.Select(c => c.Name).Distinct().Count());
    }
}
