using System.Runtime.InteropServices;
using FastInval.Host;
using FastInval.Host.Traces;

namespace FastInval.Cli;

/// <summary>Runs the server of <c>fastinval serve</c>.</summary>
internal static class Serve
{
    /// <summary>Starts the server and runs it until SIGTERM, SIGINT (Ctrl-C) or <paramref name="cancellationToken"/>; then
    /// drains, replies and removes the socket file. Exit code 0 after a clean stop, 1 when it could not start.</summary>
    public static int Run(ServeSettings settings, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var limits = new ServerOptions
        {
            SocketPath = Path.GetFullPath(settings.SocketPath),
            MaxUnitsPerConnection = settings.MaxUnits,
            MaxConnections = settings.MaxConnections,
            MaxFrameBytes = settings.MaxFrameBytes,
        };
        TraceWriter? trace = null;
        if (settings.RecordPath is not null)
        {
            try
            {
                trace = TraceWriter.Create(settings.RecordPath, TraceHeader.For(limits));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"fastinval serve: cannot record to {settings.RecordPath}: {e.Message}");
                return ExitCodes.Failure;
            }
        }

        var options = new ServerOptions
        {
            SocketPath = limits.SocketPath,
            MaxUnitsPerConnection = limits.MaxUnitsPerConnection,
            MaxConnections = limits.MaxConnections,
            MaxFrameBytes = limits.MaxFrameBytes,
            Trace = trace,
        };
        try
        {
            return Run(options, trace, settings, output, error, cancellationToken);
        }
        finally
        {
            trace?.Dispose();
        }
    }

    private static int Run(ServerOptions options, TraceWriter? trace, ServeSettings settings, TextWriter output, TextWriter error,
        CancellationToken cancellationToken)
    {
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
        if (trace is not null)
        {
            output.WriteLine($"fastinval serve: recording every frame to {settings.RecordPath}");
        }

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
        if (trace is not null)
        {
            trace.Dispose(); // the END record: the trace is whole
            if (trace.Failure is not null)
            {
                error.WriteLine($"fastinval serve: recording to {settings.RecordPath} failed after {trace.Records} records: {trace.Failure.Message}");
                return ExitCodes.Failure;
            }

            output.WriteLine($"fastinval serve: recorded {trace.Records} records to {settings.RecordPath}");
        }

        output.Flush();
        return ExitCodes.Ok;
    }
}
