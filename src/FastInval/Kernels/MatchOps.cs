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

/// <summary>Up to four <see cref="TagOp"/>s in one pass (OR): how a batch coalesces several tag flushes into one scan.
/// Unused operators are <see cref="Never"/>.</summary>
internal readonly struct TagOp4 : IMatchOp
{
    public static readonly TagOp Never = new(0, 1, 0);

    public readonly TagOp A;
    public readonly TagOp B;
    public readonly TagOp C;
    public readonly TagOp D;

    public TagOp4(TagOp a, TagOp b, TagOp c, TagOp d)
    {
        A = a;
        B = b;
        C = c;
        D = d;
    }

    public static bool UsesRange => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Match(ulong tag, ulong first, ulong last) =>
        A.Match(tag, first, last) | B.Match(tag, first, last) | C.Match(tag, first, last) | D.Match(tag, first, last);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<ulong> Match(Vector128<ulong> tag, Vector128<ulong> first, Vector128<ulong> last) =>
        A.Match(tag, first, last) | B.Match(tag, first, last) | C.Match(tag, first, last) | D.Match(tag, first, last);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<ulong> Match(Vector256<ulong> tag, Vector256<ulong> first, Vector256<ulong> last) =>
        A.Match(tag, first, last) | B.Match(tag, first, last) | C.Match(tag, first, last) | D.Match(tag, first, last);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<ulong> Match(Vector512<ulong> tag, Vector512<ulong> first, Vector512<ulong> last) =>
        A.Match(tag, first, last) | B.Match(tag, first, last) | C.Match(tag, first, last) | D.Match(tag, first, last);
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
