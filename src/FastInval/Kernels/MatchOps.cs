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
internal readonly struct TagOp : IMatchOp
{
    public readonly ulong Mask;
    public readonly ulong Value;
    public readonly ulong Any;

    public TagOp(ulong mask, ulong value, ulong any)
    {
        Mask = mask;
        Value = value;
        Any = any;
    }

    public static bool UsesRange => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Match(ulong tag, ulong first, ulong last) => (tag & Mask) == Value && (tag & Any) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<ulong> Match(Vector128<ulong> tag, Vector128<ulong> first, Vector128<ulong> last) =>
        Vector128.Equals(tag & Vector128.Create(Mask), Vector128.Create(Value)) &
        ~Vector128.Equals(tag & Vector128.Create(Any), Vector128<ulong>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<ulong> Match(Vector256<ulong> tag, Vector256<ulong> first, Vector256<ulong> last) =>
        Vector256.Equals(tag & Vector256.Create(Mask), Vector256.Create(Value)) &
        ~Vector256.Equals(tag & Vector256.Create(Any), Vector256<ulong>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<ulong> Match(Vector512<ulong> tag, Vector512<ulong> first, Vector512<ulong> last) =>
        Vector512.Equals(tag & Vector512.Create(Mask), Vector512.Create(Value)) &
        ~Vector512.Equals(tag & Vector512.Create(Any), Vector512<ulong>.Zero);
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
/// An alternative that always holds is (0, 0); one that never holds is (0, 1).
/// </summary>
internal readonly struct RangeOp : IMatchOp
{
    public readonly ulong M0, V0, M1, V1, M2, V2, M3, V3, M4, V4, Any, Lo, Hi;

    public RangeOp(ulong m0, ulong v0, ulong m1, ulong v1, ulong m2, ulong v2, ulong m3, ulong v3, ulong m4, ulong v4,
        ulong any, ulong lo, ulong hi)
    {
        M0 = m0; V0 = v0; M1 = m1; V1 = v1; M2 = m2; V2 = v2; M3 = m3; V3 = v3; M4 = m4; V4 = v4;
        Any = any; Lo = lo; Hi = hi;
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
        Vector128.Equals(t & Vector128.Create(M0), Vector128.Create(V0)) &
        (Vector128.Equals(t & Vector128.Create(M1), Vector128.Create(V1)) | Vector128.Equals(t & Vector128.Create(M2), Vector128.Create(V2))) &
        (Vector128.Equals(t & Vector128.Create(M3), Vector128.Create(V3)) | Vector128.Equals(t & Vector128.Create(M4), Vector128.Create(V4))) &
        ~Vector128.Equals(t & Vector128.Create(Any), Vector128<ulong>.Zero) &
        Vector128.LessThanOrEqual(first, Vector128.Create(Hi)) &
        Vector128.GreaterThanOrEqual(last, Vector128.Create(Lo));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<ulong> Match(Vector256<ulong> t, Vector256<ulong> first, Vector256<ulong> last) =>
        Vector256.Equals(t & Vector256.Create(M0), Vector256.Create(V0)) &
        (Vector256.Equals(t & Vector256.Create(M1), Vector256.Create(V1)) | Vector256.Equals(t & Vector256.Create(M2), Vector256.Create(V2))) &
        (Vector256.Equals(t & Vector256.Create(M3), Vector256.Create(V3)) | Vector256.Equals(t & Vector256.Create(M4), Vector256.Create(V4))) &
        ~Vector256.Equals(t & Vector256.Create(Any), Vector256<ulong>.Zero) &
        Vector256.LessThanOrEqual(first, Vector256.Create(Hi)) &
        Vector256.GreaterThanOrEqual(last, Vector256.Create(Lo));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<ulong> Match(Vector512<ulong> t, Vector512<ulong> first, Vector512<ulong> last) =>
        Vector512.Equals(t & Vector512.Create(M0), Vector512.Create(V0)) &
        (Vector512.Equals(t & Vector512.Create(M1), Vector512.Create(V1)) | Vector512.Equals(t & Vector512.Create(M2), Vector512.Create(V2))) &
        (Vector512.Equals(t & Vector512.Create(M3), Vector512.Create(V3)) | Vector512.Equals(t & Vector512.Create(M4), Vector512.Create(V4))) &
        ~Vector512.Equals(t & Vector512.Create(Any), Vector512<ulong>.Zero) &
        Vector512.LessThanOrEqual(first, Vector512.Create(Hi)) &
        Vector512.GreaterThanOrEqual(last, Vector512.Create(Lo));
}
