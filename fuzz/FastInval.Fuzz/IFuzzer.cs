namespace FastInval.Fuzz;

/// <summary>
/// A fuzz target (the dotnet/runtime DotnetFuzzing shape): found by reflection, named after its type, fed raw bytes.
/// A target returns normally for every input the product handles correctly and throws <see cref="OracleException"/>
/// when an oracle fails; any other exception escaping it is a crash of the product.
/// </summary>
public interface IFuzzer
{
    /// <summary>The target's name (its type name): the corpus folder and the command-line argument.</summary>
    string Name => GetType().Name;

    /// <summary>Runs one input.</summary>
    void FuzzTarget(ReadOnlySpan<byte> input);
}

/// <summary>An oracle failed: the engines disagree, or the product broke a rule it promises.</summary>
public sealed class OracleException : Exception
{
    /// <summary>Creates the exception with the disagreement.</summary>
    public OracleException(string message) : base(message)
    {
    }

    /// <summary>Creates an empty exception.</summary>
    public OracleException()
    {
    }

    /// <summary>Creates the exception with an inner exception.</summary>
    public OracleException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>Every target in this assembly.</summary>
public static class Fuzzers
{
    /// <summary>All targets, by name.</summary>
    public static IReadOnlyList<IFuzzer> All { get; } = typeof(IFuzzer).Assembly.GetTypes()
        .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IFuzzer).IsAssignableFrom(t))
        .OrderBy(t => t.Name, StringComparer.Ordinal)
        .Select(t => (IFuzzer)Activator.CreateInstance(t)!)
        .ToArray();

    /// <summary>The target of that name (case-insensitive), or null.</summary>
    public static IFuzzer? Find(string name) =>
        All.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase));
}
