namespace FastInval.Host;

/// <summary>One unit a connection created: an engine, the lock that serializes its writers, and its figures.</summary>
internal sealed class Unit : IDisposable
{
    public Unit(uint id, InvalidationEngine engine)
    {
        Id = id;
        Engine = engine;
    }

    /// <summary>The unit's id on the wire.</summary>
    public uint Id { get; }

    /// <summary>The engine.</summary>
    public InvalidationEngine Engine { get; }

    /// <summary>Held by writers (FILL, EXECUTE, FAULT_PLAN, DESTROY): the engine's single-writer rule. Lookups do not
    /// take it.</summary>
    public Lock WriteGate { get; } = new();

    /// <summary>Requests answered without error, CREATE included.</summary>
    public ulong Requests;

    /// <summary>Descriptors executed.</summary>
    public ulong Descriptors;

    /// <summary>Entries offered to FILL.</summary>
    public ulong Fills;

    public void Dispose()
    {
        lock (WriteGate)
        {
            Engine.Dispose();
        }
    }
}
