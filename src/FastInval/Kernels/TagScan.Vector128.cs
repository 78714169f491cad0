using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace FastInval.Kernels;

internal static partial class TagScan
{
    /// <summary>2 tags per compare: load, match, and only when some lane matched, extract the lane mask and record the hits.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Vector128Kernel<TOp>(in TOp op, ref ulong tags, ref ulong firsts, ref ulong lasts,
        nuint i, nuint end, Span<int> hits, out nuint next)
        where TOp : struct, IMatchOp
    {
        TOp local = op;
        ref int hit = ref MemoryMarshal.GetReference(hits);
        int n = 0;
        int limit = hits.Length - Padding;
        for (; i < end; i += (nuint)Vector128<ulong>.Count)
        {
            Vector128<ulong> t = Vector128.LoadUnsafe(ref tags, i);
            Vector128<ulong> m = TOp.UsesRange
                ? local.Match(t, Vector128.LoadUnsafe(ref firsts, i), Vector128.LoadUnsafe(ref lasts, i))
                : local.Match(t, default, default);
            if (m != Vector128<ulong>.Zero)
            {
                ulong bits = m.ExtractMostSignificantBits();
                do
                {
                    Unsafe.Add(ref hit, n++) = (int)(i + (nuint)BitOperations.TrailingZeroCount(bits));
                    bits &= bits - 1;
                }
                while (bits != 0);

                if (n > limit)
                {
                    next = i + (nuint)Vector128<ulong>.Count;
                    return n;
                }
            }
        }

        next = end;
        return n;
    }
}
