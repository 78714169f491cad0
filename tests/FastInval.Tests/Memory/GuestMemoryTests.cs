namespace FastInval.Tests.Memory;

public class GuestMemoryTests
{
    [Fact]
    public void Empty_AddressSpaceFaultsEveryAccess()
    {
        var memory = new GuestMemory();
        Assert.False(memory.TryReadUInt64(0, out ulong v));
        Assert.Equal(0UL, v);
        Assert.False(memory.TryWriteUInt32(0x1000, 1));
        Assert.False(memory.IsMapped(0, 1));
        Assert.True(memory.IsMapped(0, 0));
    }

    [Fact]
    public void ReadsAnd_WritesInsideAMappingReachTheHostBufferLittleEndian()
    {
        var memory = new GuestMemory();
        var ram = new byte[0x2000];
        memory.Map(0x8000_0000, ram);
        Assert.True(memory.TryWriteUInt64(0x8000_0010, 0x1122_3344_5566_7788));
        Assert.Equal(0x88, ram[0x10]);
        Assert.Equal(0x11, ram[0x17]);
        Assert.True(memory.TryReadUInt32(0x8000_0014, out uint hi));
        Assert.Equal(0x1122_3344u, hi);
    }

    [Fact]
    public void AccessStraddlingThe_EndOfAMappingFaultsAndWritesNothing()
    {
        var memory = new GuestMemory();
        var ram = new byte[0x1000];
        memory.Map(0x1000, ram);
        Assert.False(memory.TryWriteUInt64(0x1FFC, ulong.MaxValue));
        Assert.All(ram, b => Assert.Equal(0, b));
        Assert.False(memory.TryReadUInt64(0x0FFC, out _));
        Assert.True(memory.TryReadUInt32(0x1FFC, out _));
    }

    [Fact]
    public void AccessAcrossAdjacentMappings_IsSplitBetweenThem()
    {
        var memory = new GuestMemory();
        var a = new byte[0x1000];
        var b = new byte[0x1000];
        memory.Map(0x2000, b);
        memory.Map(0x1000, a);
        Assert.True(memory.TryWriteUInt64(0x1FFC, 0xAABB_CCDD_1122_3344));
        Assert.Equal(0x44, a[0xFFC]);
        Assert.Equal(0xDD, b[0]);
        Assert.True(memory.TryReadUInt64(0x1FFC, out ulong v));
        Assert.Equal(0xAABB_CCDD_1122_3344UL, v);
        Assert.True(memory.IsMapped(0x1000, 0x2000));
        Assert.False(memory.IsMapped(0x1000, 0x2001));
    }

    [Fact]
    public void OverlappingOrEmptyOrWrappingMappings_AreRefused()
    {
        var memory = new GuestMemory();
        memory.Map(0x1000, new byte[0x1000]);
        Assert.Throws<ArgumentException>(() => memory.Map(0x1800, new byte[0x1000]));
        Assert.Throws<ArgumentException>(() => memory.Map(0x0800, new byte[0x1000]));
        Assert.Throws<ArgumentException>(() => memory.Map(0x5000, Memory<byte>.Empty));
        Assert.Throws<ArgumentException>(() => memory.Map(ulong.MaxValue - 0x10, new byte[0x100]));
        memory.Map(ulong.MaxValue - 0xFF, new byte[0x100]);
        Assert.True(memory.TryWriteUInt64(ulong.MaxValue - 7, 5));
        Assert.False(memory.TryWriteUInt64(ulong.MaxValue - 3, 5));
    }

    [Fact]
    public void Unmap_RemovesOnlyTheNamedMapping()
    {
        var memory = new GuestMemory();
        memory.Map(0x1000, new byte[0x1000]);
        memory.Map(0x3000, new byte[0x1000]);
        Assert.True(memory.Unmap(0x1000));
        Assert.False(memory.Unmap(0x1000));
        Assert.False(memory.IsMapped(0x1000, 1));
        Assert.True(memory.IsMapped(0x3000, 0x1000));
    }

    [Fact]
    public void ReadsAnd_WritesAllocateNothing()
    {
        var memory = new GuestMemory();
        memory.Map(0x1000, new byte[0x1000]);
        memory.Map(0x2000, new byte[0x1000]);
        memory.TryWriteUInt64(0x1FFC, 1);
        memory.TryReadUInt64(0x1FFC, out _);
        ulong sum = 0;
        long allocated = AllocationMeter.Measure(() =>
        {
            for (ulong a = 0x1000; a < 0x3000; a += 8)
            {
                memory.TryWriteUInt64(a + 4, a);
                memory.TryReadUInt64(a + 4, out ulong v);
                sum += v;
            }
        });
        Assert.Equal(0, allocated);
        Assert.NotEqual(0UL, sum);
    }
}
