using System.Runtime.Intrinsics;

namespace FastInval.Tests.Kernels;

public class KernelRegistryTests
{
    [Fact]
    public void Available_lists_every_kernel_narrowest_first()
    {
        Assert.Equal([TagScanKernel.Scalar, TagScanKernel.Vector128, TagScanKernel.Vector256, TagScanKernel.Vector512],
            TagScanKernels.Available.ToArray());
    }

    [Fact]
    public void Accelerated_follows_the_hardware_report()
    {
        Assert.Equal(Vector128.IsHardwareAccelerated, TagScanKernels.Accelerated.Contains(TagScanKernel.Vector128));
        Assert.Equal(Vector256.IsHardwareAccelerated, TagScanKernels.Accelerated.Contains(TagScanKernel.Vector256));
        Assert.Equal(Vector512.IsHardwareAccelerated, TagScanKernels.Accelerated.Contains(TagScanKernel.Vector512));
        Assert.DoesNotContain(TagScanKernel.Scalar, TagScanKernels.Accelerated);
    }

    [Fact]
    public void Best_is_the_widest_accelerated_kernel_unless_forced()
    {
        string? forced = Environment.GetEnvironmentVariable(TagScanKernels.EnvironmentVariable);
        if (TagScanKernels.TryParse(forced, out TagScanKernel k))
        {
            Assert.Equal(k, TagScanKernels.Best);
        }
        else
        {
            TagScanKernel expected = TagScanKernels.Accelerated.Length == 0 ? TagScanKernel.Scalar : TagScanKernels.Accelerated[^1];
            Assert.Equal(expected, TagScanKernels.Best);
        }
    }

    /// <summary>CI runs the suite under DOTNET_EnableHWIntrinsic=0 and DOTNET_PreferredVectorBitWidth=128 and sets
    /// FASTINVAL_EXPECT_KERNEL, so this proves the knob reached the process and the registry obeyed it.</summary>
    [Fact]
    public void Best_matches_the_kernel_CI_expects_under_its_runtime_knobs()
    {
        string? expected = Environment.GetEnvironmentVariable("FASTINVAL_EXPECT_KERNEL");
        Assert.True(expected is null || TagScanKernels.TryParse(expected, out _), $"bad FASTINVAL_EXPECT_KERNEL '{expected}'");
        if (expected is not null && TagScanKernels.TryParse(expected, out TagScanKernel k))
        {
            Assert.Equal(k, TagScanKernels.Best);
        }
    }

    [Theory]
    [InlineData("Vector256", TagScanKernel.Vector256)]
    [InlineData("TagScan.Vector512", TagScanKernel.Vector512)]
    [InlineData(" scalar ", TagScanKernel.Scalar)]
    [InlineData("tagscan.vector128", TagScanKernel.Vector128)]
    public void TryParse_accepts_names_with_or_without_prefix(string text, TagScanKernel expected)
    {
        Assert.True(TagScanKernels.TryParse(text, out TagScanKernel k));
        Assert.Equal(expected, k);
        Assert.True(TagScanKernels.TryParse(TagScanKernels.Name(k), out TagScanKernel again));
        Assert.Equal(k, again);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Vector1024")]
    [InlineData("TagScan.")]
    [InlineData(null)]
    public void TryParse_rejects_unknown_names(string? text) => Assert.False(TagScanKernels.TryParse(text, out _));
}
