namespace FastInval.Tests.Cli;

/// <summary>Finds the CLI's build output (the project's own bin folder, same configuration as the tests).</summary>
internal static class CliLocator
{
    /// <summary>src/FastInval.Cli/bin/&lt;configuration&gt;/net10.0 of this checkout.</summary>
    public static string ProjectOutputDirectory()
    {
        string testDir = AppContext.BaseDirectory; // tests/FastInval.Tests/bin/<cfg>/net10.0/
        var net = new DirectoryInfo(testDir.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = net.Name, configuration = net.Parent!.Name;
        DirectoryInfo repo = net.Parent!.Parent!.Parent!.Parent!.Parent!;
        return Path.Combine(repo.FullName, "src", "FastInval.Cli", "bin", configuration, tfm);
    }

    /// <summary>The CLI assembly to run with <c>dotnet</c>.</summary>
    public static string CliDll() => Path.Combine(ProjectOutputDirectory(), "FastInval.Cli.dll");
}
