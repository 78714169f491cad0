using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>
/// The generic ioctl path (iommufd_fops_ioctl; notes §1.2–1.3): TEST_F(iommufd, cmd_length), cmd_fail and cmd_ex_fail of
/// the kernel selftests, and each dispatch rule on its own.
/// </summary>
public class DispatchTests
{
    /// <summary>(request, minimum size, kernel size, result R of a zeroed struct of exactly the kernel size).</summary>
    public static TheoryData<uint, int, int, int> Lengths() => new()
    {
        { IommufdRequest.Destroy, 8, 8, -Errno.ENOENT },
        { IommufdRequest.HwptAlloc, 24, 48, -Errno.ENOENT },
        { IommufdRequest.HwptInvalidate, 32, 32, -Errno.ENOENT },
        { IommufdRequest.IoasAlloc, 12, 12, 0 },
        { IommufdRequest.ViommuAlloc, 24, 40, -Errno.EOPNOTSUPP },
        { IommufdRequest.VdeviceAlloc, 24, 24, -Errno.ENOENT },
    };

    /// <summary>TEST_LENGTH(struct, ioctl, last): the struct plus one extra byte of 0xFF.</summary>
    [Theory]
    [MemberData(nameof(Lengths))]
    public void CmdLength_MinMinusOneOversizedExactAndZeroTail_EinvalE2bigThenSameResultTwice(uint request, int minSize, int kernelSize, int expected)
    {
        using var u = new Ufd();
        byte[] cmd = new byte[kernelSize + 8];
        cmd[kernelSize] = 0xFF;
        Ufd.Put32(cmd, 0, (uint)minSize - 1);
        Assert.Equal(-Errno.EINVAL, u.Ioctl(request, cmd));
        Ufd.Put32(cmd, 0, (uint)kernelSize + 1);
        Assert.Equal(-Errno.E2BIG, u.Ioctl(request, cmd));
        Ufd.Put32(cmd, 0, (uint)kernelSize);
        Assert.Equal(expected, u.Ioctl(request, cmd));
        Ufd.Put32(cmd, 0, (uint)kernelSize + 1);
        cmd[kernelSize] = 0;
        Assert.Equal(expected, u.Ioctl(request, cmd));
    }

    [Fact]
    public void CmdFail_DestroyZeroNullArgAndNumberBelowTable_EnoentEfaultEnotty()
    {
        using var u = new Ufd();
        Assert.Equal(-Errno.ENOENT, u.Destroy(0));
        Assert.Equal(-Errno.EFAULT, u.Fd.Ioctl(IommufdRequest.Destroy, Span<byte>.Empty));
        Assert.Equal(-Errno.ENOTTY, u.Ioctl(0x3B7F, Ufd.Struct(8)));
    }

    [Fact]
    public void CmdExFail_DestroyWithFutureField_ZeroAcceptedNonZeroE2bigShortEinval()
    {
        using var u = new Ufd();
        byte[] cmd = new byte[16];
        Ufd.Put32(cmd, 0, 16);
        Assert.Equal(-Errno.ENOENT, u.Ioctl(IommufdRequest.Destroy, cmd));
        cmd[8] = 1;
        Assert.Equal(-Errno.E2BIG, u.Ioctl(IommufdRequest.Destroy, cmd));
        Ufd.Put32(cmd, 0, 8);
        Assert.Equal(-Errno.ENOENT, u.Ioctl(IommufdRequest.Destroy, cmd));
        Ufd.Put32(cmd, 0, 7);
        Assert.Equal(-Errno.EINVAL, u.Ioctl(IommufdRequest.Destroy, cmd));
    }

    [Theory]
    [InlineData(0x3B64u)]      // VFIO_GET_API_VERSION: the VFIO compatibility handler is not modelled
    [InlineData(0x3B95u)]      // above the table
    [InlineData(0x3BA0u)]      // IOMMU_TEST_CMD without the selftest
    [InlineData(0x0000u)]
    public void Ioctl_NumberOutsideTable_EnottyWithoutReadingTheArgument(uint request)
    {
        using var u = new Ufd(new IommufdOptions());
        Assert.Equal(-Errno.ENOTTY, u.Fd.Ioctl(request, Span<byte>.Empty));
    }

    [Theory]
    [InlineData(0xC0083B80u)]    // _IOWR(';', 0x80, 8): right number, wrong direction and size bits
    [InlineData(0x4B80u)]        // another ioctl type with iommufd's number
    public void Ioctl_NumberInTableButRequestMismatch_SizeReadFirstThenEnotty(uint request)
    {
        using var u = new Ufd();
        Assert.Equal(-Errno.EFAULT, u.Fd.Ioctl(request, new byte[3]));
        Assert.Equal(-Errno.ENOTTY, u.Ioctl(request, Ufd.Struct(8)));
    }

    [Fact]
    public void Ioctl_ArgShorterThanSize_Efault()
    {
        using var u = new Ufd();
        byte[] cmd = Ufd.InvalidateStruct(0, 0, 0, 0, 0);
        Assert.Equal(-Errno.EFAULT, u.Fd.Ioctl(IommufdRequest.HwptInvalidate, cmd.AsSpan(0, 31)));
        byte[] longer = new byte[40];
        cmd.CopyTo(longer, 0);
        Ufd.Put32(longer, 0, 48);                           // the zero tail runs off the argument
        Assert.Equal(-Errno.EFAULT, u.Ioctl(IommufdRequest.HwptInvalidate, longer));
        longer[35] = 1;                                     // a non-zero byte before the end is met first
        Assert.Equal(-Errno.E2BIG, u.Ioctl(IommufdRequest.HwptInvalidate, longer));
    }

    [Fact]
    public void Ioctl_RejectedBeforeHandler_WritesNothing()
    {
        using var u = new Ufd();
        byte[] cmd = Ufd.InvalidateStruct(5, 0x1234, 1, 24, 7, size: 40);
        cmd[39] = 9;
        byte[] before = (byte[])cmd.Clone();
        Assert.Equal(-Errno.E2BIG, u.Ioctl(IommufdRequest.HwptInvalidate, cmd));
        Assert.Equal(before, cmd);
        Ufd.Put32(cmd, 0, 31);
        before = (byte[])cmd.Clone();
        Assert.Equal(-Errno.EINVAL, u.Ioctl(IommufdRequest.HwptInvalidate, cmd));
        Assert.Equal(before, cmd);
    }

    [Fact]
    public void Respond_UserStructLongerThanKernel_OnlyKernelSizeWritten()
    {
        using var u = new Ufd();
        byte[] cmd = new byte[20];
        Ufd.Put32(cmd, 0, 16);
        Assert.Equal(0, u.Ioctl(IommufdRequest.IoasAlloc, cmd));
        Assert.Equal(1u, Ufd.U32(cmd, 8));
        Assert.Equal(0u, Ufd.U32(cmd, 12));
        Assert.Equal(16u, Ufd.U32(cmd, 0));
    }

    [Fact]
    public void TestCmd_SizeAtMinimumAndUnknownOp_AcceptedAndEopnotsupp()
    {
        using var u = new Ufd();
        byte[] cmd = Ufd.Struct(72, (4, 0x7777));
        Ufd.Put32(cmd, 0, 68);
        Assert.Equal(-Errno.EOPNOTSUPP, u.Ioctl(IommufdRequest.TestCmd, cmd));
        Ufd.Put32(cmd, 0, 67);
        Assert.Equal(-Errno.EINVAL, u.Ioctl(IommufdRequest.TestCmd, cmd));
    }

    [Fact]
    public void HwptInvalidate_CoreChecks_OrderAndEntryNumWrittenBack()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        uint n = 5;
        Assert.Equal(-Errno.EOPNOTSUPP, u.Invalidate(99, 0, 0, 0, ref n, reserved: 1));   // __reserved before everything
        Assert.Equal(0u, n);
        n = 5;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(99, 0, 0, 24, ref n));                    // before the id lookup
        Assert.Equal(0u, n);
        n = 5;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(99, 0x10000, 0, 0, ref n));
        Assert.Equal(0u, n);
        n = 0;
        Assert.Equal(-Errno.ENOENT, u.Invalidate(99, 0, 0, 0, ref n));                     // an empty array skips the pointer checks
        n = 3;
        Assert.Equal(-Errno.ENOENT, u.Invalidate(0, 0x10000, 0, 24, ref n));
        Assert.Equal(0u, n);
        n = 3;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(ioas, 0x10000, 0, 24, ref n));            // neither nested HWPT nor vIOMMU
        Assert.Equal(0u, n);
    }
}
