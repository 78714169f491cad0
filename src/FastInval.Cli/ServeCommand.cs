using System.CommandLine;

namespace FastInval.Cli;

/// <summary>What <c>fastinval serve</c> was asked for.</summary>
/// <param name="SocketPath">Path of the Unix socket to listen on.</param>
/// <param name="MaxUnits">Most units one connection may hold.</param>
/// <param name="MaxConnections">Most connections served at once.</param>
/// <param name="MaxFrameBytes">Largest frame, header included, the server accepts.</param>
/// <param name="RecordPath">Trace file every frame of every connection is recorded in, or null.</param>
internal sealed record ServeSettings(string SocketPath, int MaxUnits, int MaxConnections, int MaxFrameBytes, string? RecordPath = null);

/// <summary><c>fastinval serve --socket PATH [--max-units N] [--max-connections N] [--max-frame-bytes N] [--record FILE]</c>.</summary>
internal static class ServeCommand
{
    /// <summary>Default of <c>--max-units</c>.</summary>
    public const int DefaultMaxUnits = 16;

    /// <summary>Default of <c>--max-connections</c>.</summary>
    public const int DefaultMaxConnections = 64;

    /// <summary>Default of <c>--max-frame-bytes</c> (1 MiB).</summary>
    public const int DefaultMaxFrameBytes = 1 << 20;

    /// <summary>Builds the <c>serve</c> command; <paramref name="run"/> null means the real server.</summary>
    public static Command Build(Func<ServeSettings, TextWriter, TextWriter, CancellationToken, int>? run)
    {
        var socket = new Option<string>("--socket") { Description = "Path of the Unix socket to listen on (created mode 0600).", Required = true };
        var maxUnits = new Option<int>("--max-units") { Description = "Most units one connection may hold.", DefaultValueFactory = _ => DefaultMaxUnits };
        var maxConnections = new Option<int>("--max-connections") { Description = "Most connections served at once.", DefaultValueFactory = _ => DefaultMaxConnections };
        var maxFrameBytes = new Option<int>("--max-frame-bytes") { Description = "Largest frame (header included) accepted.", DefaultValueFactory = _ => DefaultMaxFrameBytes };
        var record = new Option<string>("--record") { Description = "Record every frame of every connection (both directions, timestamps) in this trace file (see docs/traces.md)." };
        maxUnits.Validators.Add(r => Positive(r, 1, 1 << 16));
        maxConnections.Validators.Add(r => Positive(r, 1, 1 << 16));
        maxFrameBytes.Validators.Add(r => Positive(r, 64, 1 << 28));

        var serve = new Command("serve", "Serve IOMMU units to other processes over a Unix socket (see docs/protocol.md).\n" +
            "Runs until SIGTERM or Ctrl-C, then drains in-flight requests, replies and removes the socket file.\n" +
            "Exit code 0 after a clean stop, 1 when the server could not start (e.g. a live server holds the path) or a\n" +
            "recording (--record) failed.")
        {
            socket, maxUnits, maxConnections, maxFrameBytes, record,
        };
        serve.SetAction((parseResult, cancellationToken) =>
        {
            var settings = new ServeSettings(parseResult.GetValue(socket)!, parseResult.GetValue(maxUnits),
                parseResult.GetValue(maxConnections), parseResult.GetValue(maxFrameBytes), parseResult.GetValue(record));
            TextWriter output = parseResult.InvocationConfiguration.Output, error = parseResult.InvocationConfiguration.Error;
            return Task.FromResult((run ?? Serve.Run)(settings, output, error, cancellationToken));
        });
        return serve;
    }

    private static void Positive(System.CommandLine.Parsing.OptionResult result, int min, int max)
    {
        if (result.Tokens.Count > 0 && !int.TryParse(result.Tokens[^1].Value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out _))
        {
            return; // not a number: the conversion error is reported on its own
        }

        int value = result.GetValueOrDefault<int>();
        if (value < min || value > max)
        {
            result.AddError($"{result.Option.Name} must be between {min} and {max} (was {value}).");
        }
    }
}
