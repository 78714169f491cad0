using System.Runtime.Intrinsics;

namespace FastInval.Tests.Kernels;

public class KernelRegistryTests
{
    [Fact]
    public void Available_ListsEveryKernelNarrowestFirst()
    {
        Assert.Equal([TagScanKernel.Scalar, TagScanKernel.Vector128, TagScanKernel.Vector256, TagScanKernel.Vector512],
            TagScanKernels.Available.ToArray());
    }

    [Fact]
    public void AcceleratedFollowsTheHardware_Report()
    {
        Assert.Equal(Vector128.IsHardwareAccelerated, TagScanKernels.Accelerated.Contains(TagScanKernel.Vector128));
        Assert.Equal(Vector256.IsHardwareAccelerated, TagScanKernels.Accelerated.Contains(TagScanKernel.Vector256));
        Assert.Equal(Vector512.IsHardwareAccelerated, TagScanKernels.Accelerated.Contains(TagScanKernel.Vector512));
        Assert.DoesNotContain(TagScanKernel.Scalar, TagScanKernels.Accelerated);
    }

    [Fact]
    public void Best_IsTheWidestAcceleratedKernelUnlessForced()
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
    public void Best_MatchesTheKernelCIExpectsUnderItsRuntimeKnobs()
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
    public void TryParse_AcceptsNamesWithOrWithoutPrefix(string text, TagScanKernel expected)
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
    public void TryParse_RejectsUnknownNames(string? text) => Assert.False(TagScanKernels.TryParse(text, out _));
}
