using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace FastInval.Kernels;

internal static partial class TagScan
{
    /// <summary>8 tags per compare: load, match, and only when some lane matched, extract the lane mask and record the hits.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Vector512Kernel<TOp>(in TOp op, ref ulong tags, ref ulong firsts, ref ulong lasts,
        nuint i, nuint end, Span<int> hits, out nuint next)
        where TOp : struct, IMatchOp
    {
        TOp local = op;
        ref int hit = ref MemoryMarshal.GetReference(hits);
        int n = 0;
        int limit = hits.Length - Padding;
        for (; i < end; i += (nuint)Vector512<ulong>.Count)
        {
            Vector512<ulong> t = Vector512.LoadUnsafe(ref tags, i);
            Vector512<ulong> m = TOp.UsesRange
                ? local.Match(t, Vector512.LoadUnsafe(ref firsts, i), Vector512.LoadUnsafe(ref lasts, i))
                : local.Match(t, default, default);
            if (m != Vector512<ulong>.Zero)
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
                    next = i + (nuint)Vector512<ulong>.Count;
                    return n;
                }
            }
        }

        next = end;
        return n;
    }
}
