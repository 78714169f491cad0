using Microsoft.Extensions.ObjectPool;

namespace FastInval.Host;

/// <summary>What every connection of a server shares: limits, the request-context pool, unit ids and figures. Holds no
/// socket, so the dispatcher can be driven from a byte buffer (tests, fuzzing, benchmarks).</summary>
internal sealed class ServerCore
{
    private uint _nextUnitId;
    private int _connections;
    private int _units;
    private long _frames;
    private long _errorReplies;

    public ServerCore(ServerOptions options, ObjectPool<RequestContext>? contexts = null)
    {
        options.Validate();
        Options = options;
        var provider = new DefaultObjectPoolProvider { MaximumRetained = Math.Max(4, Environment.ProcessorCount * 2) };
        Contexts = contexts ?? provider.Create(new RequestContextPolicy());
    }

    public ServerOptions Options { get; }

    /// <summary>Per-request state.</summary>
    public ObjectPool<RequestContext> Contexts { get; }

    public int Connections => Volatile.Read(ref _connections);

    public int Units => Volatile.Read(ref _units);

    public long Frames => Interlocked.Read(ref _frames);

    public long ErrorReplies => Interlocked.Read(ref _errorReplies);

    /// <summary>A fresh unit id: never 0, not reused while the server runs.</summary>
    public uint NextUnitId()
    {
        uint id;
        do
        {
            id = Interlocked.Increment(ref _nextUnitId);
        }
        while (id == 0);
        return id;
    }

    /// <summary>Counts a connection in, unless the limit is reached.</summary>
    public bool TryEnterConnection()
    {
        while (true)
        {
            int current = Volatile.Read(ref _connections);
            if (current >= Options.MaxConnections)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _connections, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    public void LeaveConnection() => Interlocked.Decrement(ref _connections);

    public void UnitCreated() => Interlocked.Increment(ref _units);

    public void UnitDestroyed() => Interlocked.Decrement(ref _units);

    public void FrameRead() => Interlocked.Increment(ref _frames);

    public void ErrorReplied() => Interlocked.Increment(ref _errorReplies);
}
