using System.Runtime.CompilerServices;

namespace FastInval.Kernels;

/// <summary>
/// The tag-match scan: walks slots [start, end) of packed tag columns and writes the indices of the slots an
/// operator selects. Four kernels with the same contract: <c>Vector512</c>, <c>Vector256</c>, <c>Vector128</c>
/// (each in its own <c>NoInlining</c> method and file) and <c>Scalar</c>.
/// </summary>
/// <remarks>
/// Contract: <c>start</c> and <c>end</c> are multiples of <see cref="Padding"/> (tables pad their capacity with
/// invalid slots, so no kernel has a tail loop). A kernel stops early when fewer than 8 free places remain in
/// <c>hits</c> and reports where to resume in <c>next</c>; the caller acts on the hits (the kernels never modify
/// the columns) and calls again from <c>next</c>. Hits come out in ascending slot order.
/// </remarks>
internal static partial class TagScan
{
    /// <summary>Slots per widest vector (8 × u64 in a Vector512): table capacities are padded to a multiple of this.</summary>
    public const int Padding = 8;

    /// <summary>Smallest hits buffer a caller may pass.</summary>
    public const int MinHits = 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Run<TOp>(TagScanKernel kernel, in TOp op, ref ulong tags, ref ulong firsts, ref ulong lasts,
        nuint start, nuint end, Span<int> hits, out nuint next)
        where TOp : struct, IMatchOp
    {
        FastInval.Internals.FastAssert.True(start % Padding == 0 && end % Padding == 0 && hits.Length >= MinHits);
        return kernel switch
        {
            TagScanKernel.Vector512 => Vector512Kernel(in op, ref tags, ref firsts, ref lasts, start, end, hits, out next),
            TagScanKernel.Vector256 => Vector256Kernel(in op, ref tags, ref firsts, ref lasts, start, end, hits, out next),
            TagScanKernel.Vector128 => Vector128Kernel(in op, ref tags, ref firsts, ref lasts, start, end, hits, out next),
            _ => ScalarKernel(in op, ref tags, ref firsts, ref lasts, start, end, hits, out next),
        };
    }
}
