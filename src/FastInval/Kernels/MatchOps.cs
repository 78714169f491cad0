using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace FastInval.Kernels;

/// <summary>
/// A tag-match operator: decides, for a slot's packed tag word and its [first, last] span, whether the slot is
/// selected. Every operator has a scalar form and one form per vector width, so a generic kernel over it compiles
/// to one body per scope (the <c>TNegator</c> / <c>IBooleanUnaryOperator</c> idea of dotnet/runtime).
/// Invalid slots have a zero tag; every operator requires the valid bit, so padding never matches.
/// </summary>
internal interface IMatchOp
{
    /// <summary>True when the operator reads the span columns; kernels skip loading them otherwise.</summary>
    static abstract bool UsesRange { get; }

    bool Match(ulong tag, ulong first, ulong last);

    Vector128<ulong> Match(Vector128<ulong> tag, Vector128<ulong> first, Vector128<ulong> last);

    Vector256<ulong> Match(Vector256<ulong> tag, Vector256<ulong> first, Vector256<ulong> last);

    Vector512<ulong> Match(Vector512<ulong> tag, Vector512<ulong> first, Vector512<ulong> last);
}

/// <summary>The lean tag flush: <c>(tag &amp; Mask) == Value ∧ (tag &amp; Any) ≠ 0</c>. Domain, PASID/ASID, VMID and
/// "all of these stages/kinds" flushes are all of this shape.</summary>
/// <remarks>Constants are broadcast once, at construction, into 512-bit vectors; narrower kernels use their low lanes.
/// A kernel's loop then reads them as register or memory operands instead of broadcasting scalars every iteration.</remarks>
internal readonly struct TagOp : IMatchOp
{
    private readonly Vector512<ulong> _mask;
    private readonly Vector512<ulong> _value;
    private readonly Vector512<ulong> _any;

    public TagOp(ulong mask, ulong value, ulong any)
    {
        _mask = Vector512.Create(mask);
        _value = Vector512.Create(value);
        _any = Vector512.Create(any);
    }

    public ulong Mask => _mask.ToScalar();

    public ulong Value => _value.ToScalar();

    public ulong Any => _any.ToScalar();

    public static bool UsesRange => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Match(ulong tag, ulong first, ulong last) => (tag & Mask) == Value && (tag & Any) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<ulong> Match(Vector128<ulong> tag, Vector128<ulong> first, Vector128<ulong> last) =>
        Vector128.Equals(tag & _mask.GetLower().GetLower(), _value.GetLower().GetLower()) &
        ~Vector128.Equals(tag & _any.GetLower().GetLower(), Vector128<ulong>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<ulong> Match(Vector256<ulong> tag, Vector256<ulong> first, Vector256<ulong> last) =>
        Vector256.Equals(tag & _mask.GetLower(), _value.GetLower()) &
        ~Vector256.Equals(tag & _any.GetLower(), Vector256<ulong>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<ulong> Match(Vector512<ulong> tag, Vector512<ulong> first, Vector512<ulong> last) =>
        Vector512.Equals(tag & _mask, _value) & ~Vector512.Equals(tag & _any, Vector512<ulong>.Zero);
}

/// <summary>
/// Up to eight tag flushes of one shape in one pass: <c>(tag &amp; Mask) ∈ {V0 … V7} ∧ (tag &amp; Any) ≠ 0</c>. How a
/// batch coalesces its tag flushes: flushes of the same shape (every domain flush, every PASID flush of the same
/// stages) differ only in their value, so one masked AND serves them all and each extra flush costs one compare and
/// one OR per vector instead of a pass over the tag column. Fewer than eight values repeat the first.
/// </summary>
internal readonly struct TagOpAnyOf : IMatchOp
{
    /// <summary>Most values one operator holds.</summary>
    public const int Capacity = 8;

    private readonly Vector512<ulong> _mask;
    private readonly Vector512<ulong> _any;
    private readonly Vector512<ulong> _v0, _v1, _v2, _v3, _v4, _v5, _v6, _v7;

    /// <summary>One operator over <paramref name="values"/> (1 to <see cref="Capacity"/> of them).</summary>
    public TagOpAnyOf(ulong mask, ulong any, ReadOnlySpan<ulong> values)
    {
        FastInval.Internals.FastAssert.True(values.Length is > 0 and <= Capacity);
        _mask = Vector512.Create(mask);
        _any = Vector512.Create(any);
        ulong first = values[0];
        _v0 = Vector512.Create(first);
        _v1 = Vector512.Create(values.Length > 1 ? values[1] : first);
        _v2 = Vector512.Create(values.Length > 2 ? values[2] : first);
        _v3 = Vector512.Create(values.Length > 3 ? values[3] : first);
        _v4 = Vector512.Create(values.Length > 4 ? values[4] : first);
        _v5 = Vector512.Create(values.Length > 5 ? values[5] : first);
        _v6 = Vector512.Create(values.Length > 6 ? values[6] : first);
        _v7 = Vector512.Create(values.Length > 7 ? values[7] : first);
    }

    public static bool UsesRange => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Match(ulong tag, ulong first, ulong last)
    {
        ulong t = tag & _mask.ToScalar();
        return (tag & _any.ToScalar()) != 0 &&
            (t == _v0.ToScalar() || t == _v1.ToScalar() || t == _v2.ToScalar() || t == _v3.ToScalar() ||
             t == _v4.ToScalar() || t == _v5.ToScalar() || t == _v6.ToScalar() || t == _v7.ToScalar());
    }

    // The vector forms fold the eight compares as min_j(t ^ v_j) == 0 (unsigned): XOR and MIN run on every vector port,
    // while eight compares OR-ed together become mask-register ops (KORB) with an AVX-512 encoding, and those issue one
    // per cycle on one port: measured 4x a single TagOp's scan on Zen 5, against about 1.5x this way.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<ulong> Match(Vector128<ulong> tag, Vector128<ulong> first, Vector128<ulong> last)
    {
        Vector128<ulong> t = tag & _mask.GetLower().GetLower();
        Vector128<ulong> m =
            Vector128.Min(
                Vector128.Min(Vector128.Min(t ^ _v0.GetLower().GetLower(), t ^ _v1.GetLower().GetLower()), Vector128.Min(t ^ _v2.GetLower().GetLower(), t ^ _v3.GetLower().GetLower())),
                Vector128.Min(Vector128.Min(t ^ _v4.GetLower().GetLower(), t ^ _v5.GetLower().GetLower()), Vector128.Min(t ^ _v6.GetLower().GetLower(), t ^ _v7.GetLower().GetLower())));
        return Vector128.Equals(m, Vector128<ulong>.Zero) & ~Vector128.Equals(tag & _any.GetLower().GetLower(), Vector128<ulong>.Zero);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<ulong> Match(Vector256<ulong> tag, Vector256<ulong> first, Vector256<ulong> last)
    {
        Vector256<ulong> t = tag & _mask.GetLower();
        Vector256<ulong> m =
            Vector256.Min(
                Vector256.Min(Vector256.Min(t ^ _v0.GetLower(), t ^ _v1.GetLower()), Vector256.Min(t ^ _v2.GetLower(), t ^ _v3.GetLower())),
                Vector256.Min(Vector256.Min(t ^ _v4.GetLower(), t ^ _v5.GetLower()), Vector256.Min(t ^ _v6.GetLower(), t ^ _v7.GetLower())));
        return Vector256.Equals(m, Vector256<ulong>.Zero) & ~Vector256.Equals(tag & _any.GetLower(), Vector256<ulong>.Zero);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<ulong> Match(Vector512<ulong> tag, Vector512<ulong> first, Vector512<ulong> last)
    {
        Vector512<ulong> t = tag & _mask;
        Vector512<ulong> m =
            Vector512.Min(
                Vector512.Min(Vector512.Min(t ^ _v0, t ^ _v1), Vector512.Min(t ^ _v2, t ^ _v3)),
                Vector512.Min(Vector512.Min(t ^ _v4, t ^ _v5), Vector512.Min(t ^ _v6, t ^ _v7)));
        return Vector512.Equals(m, Vector512<ulong>.Zero) & ~Vector512.Equals(tag & _any, Vector512<ulong>.Zero);
    }
}

/// <summary>
/// The scalar words of a <see cref="RangeOp"/> without its broadcast vectors: what an index probe needs. Building a
/// <see cref="RangeOp"/> broadcasts 13 constants into 512-bit vectors (832 bytes), which dominates a one-page
/// invalidation that only probes a bucket or two; the probe path uses this instead and the scan path widens it.
/// </summary>
internal readonly struct RangeMatch
{
    public readonly ulong M0, V0, M1, V1, M2, V2, M3, V3, M4, V4, Any, Lo, Hi;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public RangeMatch(ulong m0, ulong v0, ulong m1, ulong v1, ulong m2, ulong v2, ulong m3, ulong v3, ulong m4, ulong v4,
        ulong any, ulong lo, ulong hi)
    {
        M0 = m0; V0 = v0; M1 = m1; V1 = v1; M2 = m2; V2 = v2; M3 = m3; V3 = v3; M4 = m4; V4 = v4;
        Any = any; Lo = lo; Hi = hi;
    }

    /// <summary>The same predicate as <see cref="RangeOp.Match(ulong, ulong, ulong)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Match(ulong t, ulong first, ulong last) =>
        (t & M0) == V0 &&
        ((t & M1) == V1 || (t & M2) == V2) &&
        ((t & M3) == V3 || (t & M4) == V4) &&
        (t & Any) != 0 &&
        first <= Hi && last >= Lo;
}

/// <summary>
/// The general predicate: a base masked compare, two groups of two alternatives (address space or global; leaf level
/// or table level), an any-bit check (stage or kind) and a span overlap with [<see cref="Lo"/>, <see cref="Hi"/>]:
/// <code>
/// (t &amp; M0) == V0 ∧ ((t &amp; M1) == V1 ∨ (t &amp; M2) == V2) ∧ ((t &amp; M3) == V3 ∨ (t &amp; M4) == V4)
///   ∧ (t &amp; Any) ≠ 0 ∧ first ≤ Hi ∧ last ≥ Lo
/// </code>
/// An alternative that always holds is (0, 0); one that never holds is (0, 1). The scalar words serve the scalar form
/// and the index probes; the vector constants are broadcast once, as in <see cref="TagOp"/>.
/// </summary>
internal readonly struct RangeOp : IMatchOp
{
    public readonly ulong M0, V0, M1, V1, M2, V2, M3, V3, M4, V4, Any, Lo, Hi;
    private readonly Vector512<ulong> _m0, _v0, _m1, _v1, _m2, _v2, _m3, _v3, _m4, _v4, _any, _lo, _hi;

    /// <summary>The vector form of a scalar predicate (broadcasts its constants for a scan).</summary>
    public RangeOp(in RangeMatch m)
        : this(m.M0, m.V0, m.M1, m.V1, m.M2, m.V2, m.M3, m.V3, m.M4, m.V4, m.Any, m.Lo, m.Hi)
    {
    }

    public RangeOp(ulong m0, ulong v0, ulong m1, ulong v1, ulong m2, ulong v2, ulong m3, ulong v3, ulong m4, ulong v4,
        ulong any, ulong lo, ulong hi)
    {
        M0 = m0; V0 = v0; M1 = m1; V1 = v1; M2 = m2; V2 = v2; M3 = m3; V3 = v3; M4 = m4; V4 = v4;
        Any = any; Lo = lo; Hi = hi;
        _m0 = Vector512.Create(m0); _v0 = Vector512.Create(v0); _m1 = Vector512.Create(m1); _v1 = Vector512.Create(v1);
        _m2 = Vector512.Create(m2); _v2 = Vector512.Create(v2); _m3 = Vector512.Create(m3); _v3 = Vector512.Create(v3);
        _m4 = Vector512.Create(m4); _v4 = Vector512.Create(v4); _any = Vector512.Create(any);
        _lo = Vector512.Create(lo); _hi = Vector512.Create(hi);
    }

    public static bool UsesRange => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Match(ulong t, ulong first, ulong last) =>
        (t & M0) == V0 &&
        ((t & M1) == V1 || (t & M2) == V2) &&
        ((t & M3) == V3 || (t & M4) == V4) &&
        (t & Any) != 0 &&
        first <= Hi && last >= Lo;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<ulong> Match(Vector128<ulong> t, Vector128<ulong> first, Vector128<ulong> last) =>
        Vector128.Equals(t & L(_m0), L(_v0)) &
        (Vector128.Equals(t & L(_m1), L(_v1)) | Vector128.Equals(t & L(_m2), L(_v2))) &
        (Vector128.Equals(t & L(_m3), L(_v3)) | Vector128.Equals(t & L(_m4), L(_v4))) &
        ~Vector128.Equals(t & L(_any), Vector128<ulong>.Zero) &
        Vector128.LessThanOrEqual(first, L(_hi)) &
        Vector128.GreaterThanOrEqual(last, L(_lo));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<ulong> Match(Vector256<ulong> t, Vector256<ulong> first, Vector256<ulong> last) =>
        Vector256.Equals(t & _m0.GetLower(), _v0.GetLower()) &
        (Vector256.Equals(t & _m1.GetLower(), _v1.GetLower()) | Vector256.Equals(t & _m2.GetLower(), _v2.GetLower())) &
        (Vector256.Equals(t & _m3.GetLower(), _v3.GetLower()) | Vector256.Equals(t & _m4.GetLower(), _v4.GetLower())) &
        ~Vector256.Equals(t & _any.GetLower(), Vector256<ulong>.Zero) &
        Vector256.LessThanOrEqual(first, _hi.GetLower()) &
        Vector256.GreaterThanOrEqual(last, _lo.GetLower());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<ulong> Match(Vector512<ulong> t, Vector512<ulong> first, Vector512<ulong> last) =>
        Vector512.Equals(t & _m0, _v0) &
        (Vector512.Equals(t & _m1, _v1) | Vector512.Equals(t & _m2, _v2)) &
        (Vector512.Equals(t & _m3, _v3) | Vector512.Equals(t & _m4, _v4)) &
        ~Vector512.Equals(t & _any, Vector512<ulong>.Zero) &
        Vector512.LessThanOrEqual(first, _hi) &
        Vector512.GreaterThanOrEqual(last, _lo);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> L(Vector512<ulong> v) => v.GetLower().GetLower();
}
