using System.Collections.Immutable;
using System.Runtime.Intrinsics;

namespace FastInval;

/// <summary>The tag-match scan kernels. The name of each, <c>TagScan.&lt;Kernel&gt;</c>, is also its benchmark label and
/// the value <see cref="TagScanKernels.EnvironmentVariable"/> accepts.</summary>
public enum TagScanKernel : byte
{
    /// <summary>One slot at a time.</summary>
    Scalar = 0,

    /// <summary>Two 64-bit tags per compare.</summary>
    Vector128 = 1,

    /// <summary>Four 64-bit tags per compare.</summary>
    Vector256 = 2,

    /// <summary>Eight 64-bit tags per compare (runs in software where AVX-512 is absent).</summary>
    Vector512 = 3,
}

/// <summary>
/// Registry of the scan kernels (Sep's factory idea): <see cref="Available"/> kernels run correctly on this machine
/// (all of them: vector types fall back to software), <see cref="Accelerated"/> ones run on hardware, and
/// <see cref="Best"/> is the widest accelerated kernel unless <c>FASTINVAL_KERNEL</c> forces one.
/// </summary>
/// <remarks>Threading: immutable after type initialization; safe from any thread.</remarks>
public static class TagScanKernels
{
    /// <summary>Environment variable that forces <see cref="Best"/>: <c>Scalar</c>, <c>Vector128</c>, <c>Vector256</c> or
    /// <c>Vector512</c> (the <c>TagScan.</c> prefix is accepted). An unknown value is ignored and reported by
    /// <see cref="EnvironmentError"/>.</summary>
    public const string EnvironmentVariable = "FASTINVAL_KERNEL";

    /// <summary>Every kernel, narrowest first.</summary>
    public static ImmutableArray<TagScanKernel> Available { get; } =
        [TagScanKernel.Scalar, TagScanKernel.Vector128, TagScanKernel.Vector256, TagScanKernel.Vector512];

    /// <summary>Kernels that run on vector hardware here, narrowest first.</summary>
    public static ImmutableArray<TagScanKernel> Accelerated { get; } = ComputeAccelerated();

    /// <summary>The kernel engines use by default.</summary>
    public static TagScanKernel Best { get; } = ComputeBest(out s_environmentError);

    /// <summary>Why the environment variable was ignored, or null.</summary>
    public static string? EnvironmentError => s_environmentError;

    private static readonly string? s_environmentError;

    /// <summary>The kernel's registry name, e.g. <c>TagScan.Vector256</c>.</summary>
    public static string Name(TagScanKernel kernel) => "TagScan." + kernel.ToString();

    /// <summary>Parses <c>Vector256</c> or <c>TagScan.Vector256</c> (case-insensitive).</summary>
    public static bool TryParse(string? text, out TagScanKernel kernel)
    {
        kernel = TagScanKernel.Scalar;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        string s = text.Trim();
        if (s.StartsWith("TagScan.", StringComparison.OrdinalIgnoreCase))
        {
            s = s["TagScan.".Length..];
        }

        foreach (TagScanKernel k in Available)
        {
            if (string.Equals(k.ToString(), s, StringComparison.OrdinalIgnoreCase))
            {
                kernel = k;
                return true;
            }
        }

        return false;
    }

    private static ImmutableArray<TagScanKernel> ComputeAccelerated()
    {
        var list = ImmutableArray.CreateBuilder<TagScanKernel>();
        if (Vector128.IsHardwareAccelerated)
        {
            list.Add(TagScanKernel.Vector128);
        }

        if (Vector256.IsHardwareAccelerated)
        {
            list.Add(TagScanKernel.Vector256);
        }

        if (Vector512.IsHardwareAccelerated)
        {
            list.Add(TagScanKernel.Vector512);
        }

        return list.ToImmutable();
    }

    private static TagScanKernel ComputeBest(out string? error)
    {
        error = null;
        string? forced = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(forced))
        {
            if (TryParse(forced, out TagScanKernel k))
            {
                return k;
            }

            error = $"{EnvironmentVariable}='{forced}' is not a kernel name; using the widest accelerated kernel";
        }

        ImmutableArray<TagScanKernel> acc = ComputeAccelerated();
        return acc.Length == 0 ? TagScanKernel.Scalar : acc[^1];
    }
}
