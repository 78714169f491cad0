using System.Diagnostics.CodeAnalysis;

namespace FastInval.Internals;

/// <summary>Throws for host programming errors only (bad capacities, short output spans). Guest and
/// client input never reaches these: it gets an architected status instead.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ArgumentOutOfRange(string paramName, string message) =>
        throw new ArgumentOutOfRangeException(paramName, message);

    [DoesNotReturn]
    public static void Argument(string paramName, string message) =>
        throw new ArgumentException(message, paramName);

    [DoesNotReturn]
    public static void ObjectDisposed(string name) => throw new ObjectDisposedException(name);
}
