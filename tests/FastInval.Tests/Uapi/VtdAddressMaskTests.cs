using System.Numerics;

using FastInval.Reference.Uapi;
using FastInval.Uapi;

using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Uapi;

/// <summary>
/// The v6.10+ range → (address, mask) conversion (spec/iommufd-uapi.md §6.3, vtd-queued-invalidation.md §4.4): the worked
/// examples of both specs, the edge cases of the kernel's 64-bit arithmetic, and a property on random ranges.
/// </summary>
[Collection(HeavyPropertyCollection.Name)]
public class VtdAddressMaskTests
{
    [Theory]
    [InlineData(0x1000UL, 1UL, 0x1000UL, 0)]
    [InlineData(0x4000UL, 4UL, 0x4000UL, 2)]
    [InlineData(0x3000UL, 2UL, 0x0UL, 3)]
    [InlineData(0x2000UL, 3UL, 0x0UL, 3)]
    [InlineData(0x5000UL, 2UL, 0x4000UL, 2)]    // vtd notes §4.4: 0x5000–0x6FFF
    [InlineData(0x3000UL, 3UL, 0x0UL, 3)]       // 0x3000–0x5FFF
    [InlineData(0x7000UL, 2UL, 0x0UL, 4)]       // 0x7000–0x8FFF
    [InlineData(0x0UL, ulong.MaxValue, 0x0UL, 52)]
    public void WorkedExamples_AddressAndMask(ulong addr, ulong npages, ulong expectedAddress, int expectedMask)
    {
        int mask = VtdAddressMask.Compute(addr, npages, out ulong block);
        Assert.Equal(expectedMask, mask);
        Assert.Equal(expectedAddress, block);
    }

    [Theory]
    [InlineData(0x0UL, 0UL, 52)]                              // [0, 2^64 − 1]: the newest kernels' "everything"
    [InlineData(0x0UL, 1UL << 52, 52)]                        // npages << 12 wraps to 0 as well
    [InlineData(0x5000UL, 0UL, 0)]                            // no page: rounding 0 up gives 1 on x86-64
    [InlineData(0x5000UL, 1UL << 52, 0)]
    [InlineData(0xFFFF_FFFF_FFFF_F000UL, 2UL, 53)]            // the last page number carries past bit 52
    [InlineData(0x8000_0000_0000_0000UL, 1UL << 51, 51)]
    [InlineData(0x0UL, (1UL << 52) - 1, 52)]
    [InlineData(0x1000UL, (1UL << 51) + 1, 52)]
    public void EdgeCases_KernelArithmetic(ulong addr, ulong npages, int expectedMask)
    {
        int mask = VtdAddressMask.Compute(addr, npages, out ulong block);
        Assert.Equal(expectedMask, mask);
        if (mask < VtdAddressMask.All)
        {
            Assert.Equal(0UL, block & ((4096UL << mask) - 1));
        }
    }

    /// <summary>For every 4 KiB-aligned range that does not wrap: the block is naturally aligned, contains the whole range,
    /// holds at least the page count rounded up to a power of two, and is the smallest such block (half of it, aligned,
    /// would not contain the range, unless it is exactly that rounded size); the reference's independent search agrees.</summary>
    [Property(MaxTest = 10_000)]
    public Property RandomRanges_BlockCoversRangeAndIsTheSmallestAlignedWidening() =>
        Prop.ForAll(Ranges(), range =>
        {
            (ulong addr, ulong npages) = range;
            int mask = VtdAddressMask.Compute(addr, npages, out ulong block);
            ReferenceVtdS1.Block reference = ReferenceVtdS1.Compute(addr, npages);
            ulong last = addr + (npages << 12) - 1;
            int roundedLog2 = 64 - BitOperations.LeadingZeroCount(npages - 1);
            if (mask >= VtdAddressMask.All)
            {
                return reference.All.Label($"mask {mask}: reference says {reference}");
            }

            ulong size = 4096UL << mask;
            bool aligned = (block & (size - 1)) == 0;
            bool covers = block <= addr && last <= block + (size - 1);
            bool largeEnough = mask >= roundedLog2;
            ulong half = size / 2;
            bool smallest = mask == roundedLog2 || (addr / half) != (last / half);
            bool agrees = !reference.All && reference.First == block && reference.Last == block + (size - 1);
            return (aligned && covers && largeEnough && smallest && agrees)
                .Label($"block 0x{block:x}/2^{mask} pages: aligned={aligned} covers={covers} largeEnough={largeEnough} smallest={smallest} reference={reference}");
        });

    private static Arbitrary<(ulong Addr, ulong Npages)> Ranges() => Arb.From(
        from addrPages in Gen.Frequency(
            (3, Gen.Choose(0, 4096).Select(x => (ulong)x)),
            (2, Gen.Choose(0, int.MaxValue).Select(x => (ulong)x)),
            (1, from hi in Gen.Choose(0, (1 << 20) - 1) from lo in Gen.Choose(0, int.MaxValue) select ((ulong)hi << 31) | (uint)lo))
        from npages in Gen.Frequency(
            (4, Gen.Choose(1, 64).Select(x => (ulong)x)),
            (2, Gen.Choose(1, 1 << 20).Select(x => (ulong)x)),
            (1, Gen.Choose(0, 40).Select(s => 1UL << s)),
            (1, Gen.Choose(0, 40).Select(s => (1UL << s) + 1)))
        where addrPages + npages <= 1UL << 52
        select (addrPages << 12, npages));
}
