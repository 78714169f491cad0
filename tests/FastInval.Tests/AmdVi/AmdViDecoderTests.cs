using FastInval.AmdVi;

namespace FastInval.Tests.AmdVi;

/// <summary>The reserved-bit rules, bit by bit: every bit of every command is flipped on a legal command; a bit outside
/// the command's fields makes it illegal, a bit inside keeps it legal. The field lists here are written from the command
/// table, independently of <see cref="AmdViCommandLayout"/>.</summary>
public class AmdViDecoderTests
{
    private static readonly AmdViCapabilities All = new(new AmdViOptions());

    private static ulong Bits(int hi, int lo) => (hi == 63 ? ulong.MaxValue : (1UL << (hi + 1)) - 1) & ~((1UL << lo) - 1);

    public static TheoryData<string, AmdViCommand, ulong, ulong> Commands() => new()
    {
        { "COMPLETION_WAIT", AmdViCommand.CompletionWait(0x1000, 5), Bits(51, 0), ulong.MaxValue },
        { "INVALIDATE_DEVTAB_ENTRY", AmdViCommand.InvalidateDevTabEntry(0x10), Bits(15, 0), 0 },
        { "INVALIDATE_IOMMU_PAGES", AmdViCommand.InvalidateIommuPages(3, 0x5000), Bits(19, 0) | Bits(47, 32), Bits(2, 0) | Bits(63, 12) },
        { "INVALIDATE_IOTLB_PAGES", AmdViCommand.InvalidateIotlbPages(0x10, 0x5000), Bits(59, 0), 1UL | 4UL | Bits(63, 12) },
        { "INVALIDATE_INTERRUPT_TABLE", AmdViCommand.InvalidateInterruptTable(0x10), Bits(15, 0), 0 },
        { "INVALIDATE_IOMMU_ALL", AmdViCommand.InvalidateIommuAll(), 0, 0 },
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void EveryBit_OutsideTheFieldsIsIllegal_InsideIsLegal(string name, AmdViCommand legal, ulong fields0, ulong fields1)
    {
        Span<InvalidationDescriptor> output = stackalloc InvalidationDescriptor[AmdViCommandDecoder.MaxOutput];
        Assert.NotEqual(AmdViDecodeOutcome.Illegal, AmdViCommandDecoder.Decode(legal, All, output, out _));
        for (int bit = 0; bit < 128; bit++)
        {
            bool inQw0 = bit < 64;
            if (bit is >= 60 and < 64)
            {
                continue; // the opcode
            }

            ulong mask = 1UL << (bit % 64);
            var flipped = inQw0 ? new AmdViCommand(legal.Qword0 ^ mask, legal.Qword1) : new AmdViCommand(legal.Qword0, legal.Qword1 ^ mask);
            bool field = ((inQw0 ? fields0 : fields1) & mask) != 0;
            AmdViDecodeOutcome outcome = AmdViCommandDecoder.Decode(flipped, All, output, out _);
            Assert.True(field == (outcome != AmdViDecodeOutcome.Illegal), $"{name}: bit {bit} gave {outcome}");
        }
    }

    [Fact]
    public void NeverThrows_AndStaysInsideItsOutput_ForRandomCommands()
    {
        var r = new Random(0xA3D);
        Span<InvalidationDescriptor> output = stackalloc InvalidationDescriptor[AmdViCommandDecoder.MaxOutput];
        var none = new AmdViCapabilities(new AmdViOptions { GuestTranslation = false, DeviceTlb = false, InvalidateAll = false });
        for (int i = 0; i < 20_000; i++)
        {
            var c = new AmdViCommand((ulong)r.NextInt64() ^ ((ulong)r.Next(16) << 60), (ulong)r.NextInt64());
            AmdViDecodeOutcome a = AmdViCommandDecoder.Decode(c, All, output, out int count);
            Assert.InRange(count, a == AmdViDecodeOutcome.Invalidation ? 1 : 0, a == AmdViDecodeOutcome.Invalidation ? 2 : 0);
            AmdViDecodeOutcome b = AmdViCommandDecoder.Decode(c, none, output, out _);
            Assert.True(b == AmdViDecodeOutcome.Illegal || b == a, $"{c}: fewer features cannot make a command legal");
        }
    }

    [Fact]
    public void DecodedDescriptors_AreAlwaysValidForTheEngine()
    {
        using var engine = new InvalidationEngine(new EngineOptions());
        Span<InvalidationDescriptor> output = stackalloc InvalidationDescriptor[AmdViCommandDecoder.MaxOutput];
        Span<InvalidationStatus> statuses = stackalloc InvalidationStatus[AmdViCommandDecoder.MaxOutput];
        var r = new Random(17);
        int executed = 0;
        for (int i = 0; i < 5_000; i++)
        {
            int op = r.Next(1, 9);
            ulong fields0 = op switch { 1 => 0x000F_FFFF_FFFF_FFFFUL, 2 or 5 => 0xFFFFUL, 3 => 0x0000_FFFF_000F_FFFFUL, 4 => 0x0FFF_FFFF_FFFF_FFFFUL, _ => 0 };
            ulong fields1 = op switch { 1 => ulong.MaxValue, 3 => ~0xFF8UL, 4 => ~0xFFAUL, _ => 0 };
            var c = new AmdViCommand(((ulong)op << 60) | ((ulong)r.NextInt64() & fields0), (ulong)r.NextInt64() & fields1);
            if (AmdViCommandDecoder.Decode(c, All, output, out int count) == AmdViDecodeOutcome.Invalidation)
            {
                Assert.True(engine.Execute(output[..count], statuses).Invalid == 0, $"{c}: {output[0]} / {(count > 1 ? output[1] : default)}");
                executed++;
            }
        }

        Assert.True(executed > 2500, $"only {executed} commands were legal");
    }

    [Theory]
    [InlineData(0x5000UL, 0x1000UL, 0x5000UL, false)]
    [InlineData(0x5000UL, 0x2000UL, 0x5000UL, true)]
    [InlineData(0x4000UL, 0x2000UL, 0x4000UL, true)]
    [InlineData(0x0UL, 0x40_0000UL, 0x1F_F000UL, true)]
    [InlineData(0x1000UL, 1UL << 52, AmdViCommand.AllPagesAddress, true)]
    public void EncodeRange_IsLinuxsEncoding_AndDecodesToACoveringBlock(ulong address, ulong bytes, ulong encoded, bool size)
    {
        (ulong a, bool s) = AmdViCommand.EncodeRange(address, bytes);
        Assert.Equal((encoded, size), (a, s));
        AmdViCommandDecoder.Range(a | (s ? AmdViCommandLayout.SizeMask : 0), out ulong first, out ulong last);
        Assert.True(first <= address && last >= address + bytes - 1, $"0x{first:x}..0x{last:x}");
    }
}
