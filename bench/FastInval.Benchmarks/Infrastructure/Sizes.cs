namespace FastInval.Benchmarks.Infrastructure;

/// <summary>Cache sizes the benchmarks run at.</summary>
public static class Sizes
{
    /// <summary>The scaling series of the suite: 1K to 16M entries, ×4 per step (so 64K and 1M, the sizes of DESIGN §4's
    /// targets, are in it). Tag flush, page invalidation, lookup, fill and the memory-read limit run at every size; the
    /// plots put them on one axis.</summary>
    public static readonly int[] Scaling = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24];

    /// <summary>The size the CI gate measures (<c>--ci-check</c>): large enough that a flush is dominated by the scan,
    /// small enough that every case sets up in well under a second.</summary>
    public const int Gate = 1 << 16;
}
