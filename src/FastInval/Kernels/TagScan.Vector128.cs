using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace FastInval.Kernels;

internal static partial class TagScan
{
    /// <summary>
    /// 4 vectors of 2 tags per iteration (one padding unit of 8 slots): load and match, test all lanes with one branch,
    /// and only when some lane matched combine the lane masks and record the hits.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Vector128Kernel<TOp>(in TOp op, ref ulong tags, ref ulong firsts, ref ulong lasts,
        nuint i, nuint end, Span<int> hits, out nuint next)
        where TOp : struct, IMatchOp
    {
        TOp local = op;
        ref int hit = ref MemoryMarshal.GetReference(hits);
        int n = 0;
        int limit = hits.Length - Padding;
        for (; i < end; i += Padding)
        {
            Vector128<ulong> m0 = TOp.UsesRange
                ? local.Match(Vector128.LoadUnsafe(ref tags, i + 0), Vector128.LoadUnsafe(ref firsts, i + 0), Vector128.LoadUnsafe(ref lasts, i + 0))
                : local.Match(Vector128.LoadUnsafe(ref tags, i + 0), default, default);
            Vector128<ulong> m1 = TOp.UsesRange
                ? local.Match(Vector128.LoadUnsafe(ref tags, i + 2), Vector128.LoadUnsafe(ref firsts, i + 2), Vector128.LoadUnsafe(ref lasts, i + 2))
                : local.Match(Vector128.LoadUnsafe(ref tags, i + 2), default, default);
            Vector128<ulong> m2 = TOp.UsesRange
                ? local.Match(Vector128.LoadUnsafe(ref tags, i + 4), Vector128.LoadUnsafe(ref firsts, i + 4), Vector128.LoadUnsafe(ref lasts, i + 4))
                : local.Match(Vector128.LoadUnsafe(ref tags, i + 4), default, default);
            Vector128<ulong> m3 = TOp.UsesRange
                ? local.Match(Vector128.LoadUnsafe(ref tags, i + 6), Vector128.LoadUnsafe(ref firsts, i + 6), Vector128.LoadUnsafe(ref lasts, i + 6))
                : local.Match(Vector128.LoadUnsafe(ref tags, i + 6), default, default);
            if ((m0 | m1 | m2 | m3) != Vector128<ulong>.Zero)
            {
                ulong bits = (ulong)m0.ExtractMostSignificantBits() | ((ulong)m1.ExtractMostSignificantBits() << 2) | ((ulong)m2.ExtractMostSignificantBits() << 4) | ((ulong)m3.ExtractMostSignificantBits() << 6);
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
