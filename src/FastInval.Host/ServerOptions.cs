namespace FastInval.Host;

/// <summary>Settings of a <see cref="FastInvalServer"/>: where it listens and its limits (advertised in HELLO).</summary>
public sealed class ServerOptions
{
    /// <summary>Path of the Unix socket.</summary>
    public required string SocketPath { get; init; }

    /// <summary>Most units one connection may hold (default 16).</summary>
    public int MaxUnitsPerConnection { get; init; } = 16;

    /// <summary>Most connections served at once (default 64).</summary>
    public int MaxConnections { get; init; } = 64;

    /// <summary>Largest frame accepted, header included (default 1 MiB).</summary>
    public int MaxFrameBytes { get; init; } = 1 << 20;

    /// <summary>Unanswered requests read ahead on one connection before the replies are flushed (default 64).</summary>
    public int MaxOutstandingRequests { get; init; } = 64;

    /// <summary>Largest capacity of one cache of a unit (default 1,048,576 entries).</summary>
    public int MaxCacheEntries { get; init; } = 1 << 20;

    /// <summary>Mode of the socket file (default 0600: owner read and write).</summary>
    public UnixFileMode SocketFileMode { get; init; } = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>When set, every frame of every connection (both directions) is recorded in this trace
    /// (docs/traces.md). The caller disposes it after <see cref="FastInvalServer.StopAsync"/>.</summary>
    public Traces.TraceWriter? Trace { get; init; }

    /// <summary>Checks the settings; throws <see cref="ArgumentOutOfRangeException"/> for a bad one.</summary>
    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(SocketPath);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxUnitsPerConnection, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConnections, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxFrameBytes, 64);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxOutstandingRequests, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxCacheEntries, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxCacheEntries, 1 << 28);
    }
}
