using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace FastInval.Kernels;

internal static partial class TagScan
{
    /// <summary>
    /// one vector of 8 tags per iteration (one padding unit of 8 slots): load and match, test all lanes with one branch,
    /// and only when some lane matched combine the lane masks and record the hits.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Vector512Kernel<TOp>(in TOp op, ref ulong tags, ref ulong firsts, ref ulong lasts,
        nuint i, nuint end, Span<int> hits, out nuint next)
        where TOp : struct, IMatchOp
    {
        TOp local = op;
        ref int hit = ref MemoryMarshal.GetReference(hits);
        int n = 0;
        int limit = hits.Length - Padding;
        for (; i < end; i += Padding)
        {
            Vector512<ulong> m0 = TOp.UsesRange
                ? local.Match(Vector512.LoadUnsafe(ref tags, i + 0), Vector512.LoadUnsafe(ref firsts, i + 0), Vector512.LoadUnsafe(ref lasts, i + 0))
                : local.Match(Vector512.LoadUnsafe(ref tags, i + 0), default, default);
            ulong bits = m0.ExtractMostSignificantBits();
            if (bits != 0)
            {
                do
                {
                    Unsafe.Add(ref hit, n++) = (int)(i + (nuint)BitOperations.TrailingZeroCount(bits));
                    bits &= bits - 1;
                }
                while (bits != 0);

                if (n > limit)
                {
                    next = i + Padding;
                    return n;
                }
            }
        }

        next = end;
        return n;
    }
}
