using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastInval.Kernels;

internal static partial class TagScan
{
    /// <summary>One slot at a time: the baseline every vector kernel is measured and tested against.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ScalarKernel<TOp>(in TOp op, ref ulong tags, ref ulong firsts, ref ulong lasts,
        nuint i, nuint end, Span<int> hits, out nuint next)
        where TOp : struct, IMatchOp
    {
        TOp local = op;
        ref int hit = ref MemoryMarshal.GetReference(hits);
        int n = 0;
        int limit = hits.Length - Padding;
        for (; i < end; i += Padding)
        {
            if (n > limit)
            {
                next = i;
                return n;
            }

            for (nuint j = 0; j < Padding; j++)
            {
                nuint k = i + j;
                ulong first = TOp.UsesRange ? Unsafe.Add(ref firsts, k) : 0;
                ulong last = TOp.UsesRange ? Unsafe.Add(ref lasts, k) : 0;
                if (local.Match(Unsafe.Add(ref tags, k), first, last))
                {
                    Unsafe.Add(ref hit, n++) = (int)k;
                }
            }
        }

        next = end;
        return n;
    }
}
