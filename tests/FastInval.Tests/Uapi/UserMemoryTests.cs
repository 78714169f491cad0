using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

public class UserMemoryTests
{
    [Fact]
    public void Map_AddressesNonZeroPageAlignedAndSeparatedByAnUnmappedPage()
    {
        var m = new UserMemory();
        ulong a = m.Map(new byte[10]);
        ulong b = m.Map(new byte[4096]);
        ulong c = m.Map(Array.Empty<byte>());
        ulong d = m.Map(new byte[1]);
        Assert.All([a, b, c, d], x => Assert.True(x != 0 && x % 4096 == 0));
        Assert.True(b >= a + 4096 + 4096);
        Assert.True(c >= b + 4096 + 4096);
        Assert.True(d > c);
    }

    [Fact]
    public void Access_InsideAMappingSucceeds_AnyByteOutsideFaults()
    {
        var m = new UserMemory();
        byte[] buffer = [1, 2, 3, 4, 5, 6, 7, 8];
        ulong a = m.Map(buffer);
        byte[] four = new byte[4];
        Assert.True(m.TryRead(a + 4, four));
        Assert.Equal(new byte[] { 5, 6, 7, 8 }, four);
        Assert.False(m.TryRead(a + 5, four));           // runs one byte past the end
        Assert.False(m.TryRead(a - 1, four));
        Assert.False(m.TryRead(0, four));
        Assert.False(m.TryRead(ulong.MaxValue - 1, four));
        Assert.True(m.TryRead(0xDEAD_0000, Span<byte>.Empty)); // nothing to copy: copy_from_user of 0 bytes
        Assert.True(m.TryWrite(a, [9]));
        Assert.Equal(9, buffer[0]);                        // the caller's buffer, in place
        Assert.False(m.TryWrite(a + 8, [9]));
    }

    [Fact]
    public void Unmap_RemovesTheMappingOnly()
    {
        var m = new UserMemory();
        ulong a = m.Map(new byte[16]);
        ulong b = m.Map(new byte[16]);
        Assert.True(m.Unmap(a));
        Assert.False(m.Unmap(a));
        Assert.False(m.TryRead(a, new byte[1]));
        Assert.True(m.TryRead(b, new byte[16]));
    }

    [Fact]
    public void Map_SliceOfALargerBuffer_OnlyTheSliceIsMapped()
    {
        var m = new UserMemory();
        byte[] big = new byte[64];
        ulong a = m.Map(big.AsMemory(16, 8));
        Assert.True(m.TryWrite(a, [1, 2, 3, 4, 5, 6, 7, 8]));
        Assert.Equal(1, big[16]);
        Assert.False(m.TryRead(a + 8, new byte[1]));
    }
}
