using System.Runtime.InteropServices;
using FastInval.Host;

namespace FastInval.Cli;

/// <summary>Runs the server of <c>fastinval serve</c>.</summary>
internal static class Serve
{
    /// <summary>Starts the server and runs it until SIGTERM, SIGINT (Ctrl-C) or <paramref name="cancellationToken"/>; then
    /// drains, replies and removes the socket file. Exit code 0 after a clean stop, 1 when it could not start.</summary>
    public static int Run(ServeSettings settings, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var options = new ServerOptions
        {
            SocketPath = Path.GetFullPath(settings.SocketPath),
            MaxUnitsPerConnection = settings.MaxUnits,
            MaxConnections = settings.MaxConnections,
            MaxFrameBytes = settings.MaxFrameBytes,
        };
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true; // the server stops on its own, cleanly
            stop.Cancel();
        }

        using PosixSignalRegistration term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using PosixSignalRegistration interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        var server = new FastInvalServer(options);
        try
        {
            server.Start();
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            error.WriteLine($"fastinval serve: {e.Message}");
            return ExitCodes.Failure;
        }

        output.WriteLine($"fastinval serve: listening on {options.SocketPath} (protocol {ProtocolConstants.Major}.{ProtocolConstants.Minor}, " +
            $"max {options.MaxConnections} connections, {options.MaxUnitsPerConnection} units per connection, {options.MaxFrameBytes} bytes per frame)");
        output.Flush();
        try
        {
            stop.Token.WaitHandle.WaitOne();
        }
        finally
        {
            server.StopAsync().GetAwaiter().GetResult();
        }

        output.WriteLine($"fastinval serve: stopped ({server.FramesRead} frames served); removed {options.SocketPath}");
        output.Flush();
        return ExitCodes.Ok;
    }
}
