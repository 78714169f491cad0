namespace FastInval.Cli;

/// <summary>Runs the server of <c>fastinval serve</c>.</summary>
internal static class Serve
{
    /// <summary>Starts the server and runs it until SIGTERM, Ctrl-C or <paramref name="cancellationToken"/>.</summary>
    public static int Run(ServeSettings settings, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        error.WriteLine("fastinval serve: the server is not built yet");
        return ExitCodes.Failure;
    }
}
