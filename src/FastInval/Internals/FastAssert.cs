using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace FastInval.Internals;

/// <summary>Debug-only invariant checks (compiled out of Release), in the spirit of Sep's <c>SepAssert</c>.</summary>
internal static class FastAssert
{
    [Conditional("DEBUG")]
    public static void True([DoesNotReturnIf(false)] bool condition,
        [CallerArgumentExpression(nameof(condition))] string? expression = null)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"FastInval invariant violated: {expression}");
        }
    }
}
