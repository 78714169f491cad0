using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastInval.Vtd;
using Smmu_ = FastInval.Smmu.SmmuRegisters;

namespace FastInval.Tests.Memory;

/// <summary>The bounds rules every <see cref="GuestAddressSpace"/> implementation keeps, run over each of them with the
/// same buffers.</summary>
public class GuestAddressSpaceTests
{
    public static TheoryData<GuestMemoryKind> Kinds => [GuestMemoryKind.Managed, GuestMemoryKind.Native, GuestMemoryKind.Callback];

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ReadOrWrite_CrossingTheEndOfARegionIntoAGap_FaultsAndTouchesNothing(GuestMemoryKind kind)
    {
        byte[] ram = GuestSpaces.Pinned(0x1000);
        GuestAddressSpace space = GuestSpaces.Over(kind, new GuestMemory(), (0x1000, ram));
        Assert.False(space.TryWriteUInt64(0x1FFC, ulong.MaxValue));
        Assert.All(ram, b => Assert.Equal(0, b));
        Assert.False(space.TryReadUInt64(0x0FFC, out ulong v));
        Assert.Equal(0UL, v);
        Assert.True(space.TryWriteUInt32(0x1FFC, 0xA1B2_C3D4));
        Assert.Equal(0xD4, ram[0xFFC]);
        Assert.True(space.TryReadUInt32(0x1FFC, out uint w));
        Assert.Equal(0xA1B2_C3D4u, w);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Access_AcrossAdjacentRegions_IsSplit_AcrossAGap_Faults(GuestMemoryKind kind)
    {
        byte[] a = GuestSpaces.Pinned(0x1000), b = GuestSpaces.Pinned(0x1000), c = GuestSpaces.Pinned(0x1000);
        GuestAddressSpace space = GuestSpaces.Over(kind, new GuestMemory(), (0x2000, b), (0x1000, a), (0x4000, c)); // gap at 0x3000
        Assert.True(space.TryWriteUInt64(0x1FFC, 0xAABB_CCDD_1122_3344));
        Assert.Equal(0x44, a[0xFFC]);
        Assert.Equal(0xDD, b[0]);
        Assert.True(space.TryReadUInt64(0x1FFC, out ulong v));
        Assert.Equal(0xAABB_CCDD_1122_3344UL, v);
        var big = new byte[0x1800];
        Assert.True(space.TryRead(0x1800, big));                 // 0x1800..0x2FFF: two regions
        Assert.False(space.TryRead(0x2800, big));                // 0x2800..0x3FFF: runs into the gap
        Assert.False(space.TryWriteUInt64(0x2FFC, 1));
        Assert.Equal(0, b[0xFFC]);
        Assert.False(space.TryWriteUInt64(0x3FFC, 1));
        Assert.Equal(0, c[0]);
        Assert.False(space.TryReadUInt32(0x3000, out _));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Access_CrossingTwoToThe64_Faults(GuestMemoryKind kind)
    {
        byte[] top = GuestSpaces.Pinned(0x100), bottom = GuestSpaces.Pinned(0x100);
        GuestAddressSpace space = GuestSpaces.Over(kind, new GuestMemory(), (ulong.MaxValue - 0xFF, top), (0, bottom));
        Assert.True(space.TryWriteUInt64(ulong.MaxValue - 7, 0x0102_0304_0506_0708));
        Assert.Equal(0x01, top[0xFF]);
        Assert.False(space.TryWriteUInt64(ulong.MaxValue - 3, 5));  // would wrap to address 0, which is mapped
        Assert.False(space.TryReadUInt64(ulong.MaxValue, out _));
        Assert.All(bottom, x => Assert.Equal(0, x));
        Assert.Equal(0x0506_0708u, space.TryReadUInt32(ulong.MaxValue - 7, out uint lo) ? lo : 0);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void EmptyAccess_SucceedsAnywhere(GuestMemoryKind kind)
    {
        GuestAddressSpace space = GuestSpaces.Over(kind, new GuestMemory(), (0x1000, GuestSpaces.Pinned(16)));
        Assert.True(space.TryRead(0x9999_0000, []));
        Assert.True(space.TryWrite(ulong.MaxValue, []));
        Assert.False(space.TryReadUInt32(0x9999_0000, out _));
    }

    [Theory]
    [InlineData(GuestMemoryKind.Managed)]
    [InlineData(GuestMemoryKind.Native)]
    public void TryGetSpan_InsideOneRegion_AliasesTheHostBuffer_AcrossRegionsOrUnmapped_IsFalse(GuestMemoryKind kind)
    {
        byte[] a = GuestSpaces.Pinned(0x1000), b = GuestSpaces.Pinned(0x1000);
        GuestAddressSpace space = GuestSpaces.Over(kind, new GuestMemory(), (0x1000, a), (0x2000, b));
        Assert.True(space.TryGetSpan(0x1FF0, 16, out Span<byte> span));
        Assert.Equal(16, span.Length);
        span[15] = 0x5A;
        Assert.Equal(0x5A, a[0xFFF]);
        Assert.True(space.TryGetSpan(0x2000, 0x1000, out span));
        Assert.True(Unsafe.AreSame(ref span[0], ref b[0]));
        Assert.False(space.TryGetSpan(0x1FF8, 16, out span));      // split between two host buffers: copy instead
        Assert.True(span.IsEmpty);
        Assert.False(space.TryGetSpan(0x3000, 1, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => space.TryGetSpan(0x1000, -1, out _));
    }

    [Fact]
    public void TryGetSpan_OverCallbacks_IsAlwaysFalse()
    {
        var backing = new GuestMemory();
        GuestAddressSpace space = GuestSpaces.Over(GuestMemoryKind.Callback, backing, (0x1000, GuestSpaces.Pinned(0x1000)));
        Assert.False(space.TryGetSpan(0x1000, 16, out Span<byte> span));
        Assert.True(span.IsEmpty);
        Assert.True(backing.TryGetSpan(0x1000, 16, out _));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ReadsAndWrites_AllocateNothing(GuestMemoryKind kind)
    {
        GuestAddressSpace space = GuestSpaces.Over(kind, new GuestMemory(), (0x1000, GuestSpaces.Pinned(0x1000)), (0x2000, GuestSpaces.Pinned(0x1000)));
        space.TryWriteUInt64(0x1FFC, 1);
        space.TryReadUInt64(0x1FFC, out _);
        ulong sum = 0;
        long allocated = AllocationMeter.Measure(() =>
        {
            Span<byte> descriptor = stackalloc byte[32];
            for (ulong a = 0x1000; a < 0x2FE0; a += 8)
            {
                space.TryWriteUInt64(a + 4, a);
                space.TryReadUInt64(a + 4, out ulong v);
                space.TryRead(a, descriptor);
                space.TryGetSpan(a, 32, out _);
                sum += v;
            }
        });
        Assert.Equal(0, allocated);
        Assert.NotEqual(0UL, sum);
    }
}

/// <summary><see cref="NativeGuestMemory"/>'s own rules: mapping arguments, unmapping.</summary>
public class NativeGuestMemoryTests
{
    [Fact]
    public void Map_RefusesNullEmptyWrappingAndOverlappingRanges()
    {
        byte[] ram = GuestSpaces.Pinned(0x2000);
        nint host = Marshal.UnsafeAddrOfPinnedArrayElement(ram, 0);
        var memory = new NativeGuestMemory();
        memory.Map(0x1000, host, 0x1000);
        Assert.Throws<ArgumentException>(() => memory.Map(0x1800, host + 0x1000, 0x1000));
        Assert.Throws<ArgumentException>(() => memory.Map(0x0800, host + 0x1000, 0x1000));
        Assert.Throws<ArgumentException>(() => memory.Map(0x8000, 0, 0x1000));
        Assert.Throws<ArgumentException>(() => memory.Map(0x8000, host, 0));
        Assert.Throws<ArgumentException>(() => memory.Map(ulong.MaxValue - 0x10, host, 0x100));
        Assert.Throws<ArgumentException>(() => memory.Map(0x10_0000, -0x10, 0x100));               // past 2^64 on the host
        Assert.False(memory.IsMapped(0x10_0000, 1));
        memory.Map(0x2000, host + 0x1000, 0x1000);
        Assert.True(memory.IsMapped(0x1000, 0x2000));
        Assert.False(memory.IsMapped(0x1000, 0x2001));
        Assert.False(memory.IsMapped(0x1000, -1));
    }

    [Fact]
    public void Unmap_RemovesOnlyTheNamedMapping_AndLeavesTheHostMemory()
    {
        byte[] ram = GuestSpaces.Pinned(0x2000);
        nint host = Marshal.UnsafeAddrOfPinnedArrayElement(ram, 0);
        var memory = new NativeGuestMemory();
        memory.Map(0x1000, host, 0x1000);
        memory.Map(0x3000, host + 0x1000, 0x1000);
        Assert.True(memory.TryWriteUInt32(0x1000, 7));
        Assert.True(memory.Unmap(0x1000));
        Assert.False(memory.Unmap(0x1000));
        Assert.False(memory.TryReadUInt32(0x1000, out _));
        Assert.Equal(7, ram[0]);
        Assert.True(memory.IsMapped(0x3000, 0x1000));
    }
}

/// <summary><see cref="CallbackGuestMemory"/>'s own rules: what reaches the callbacks.</summary>
public class CallbackGuestMemoryTests
{
    [Fact]
    public void Constructor_RefusesNullCallbacks()
    {
        Assert.Throws<ArgumentNullException>(() => new CallbackGuestMemory(null!, (_, _) => true));
        Assert.Throws<ArgumentNullException>(() => new CallbackGuestMemory((_, _) => true, null!));
    }

    [Fact]
    public void EmptyAndWrappingAccesses_NeverReachTheCallbacks_OthersAreOneCallEach()
    {
        var calls = new List<(char Op, ulong Address, int Length)>();
        var space = new CallbackGuestMemory(
            (a, d) => { calls.Add(('r', a, d.Length)); d.Fill(0xEE); return true; },
            (a, s) => { calls.Add(('w', a, s.Length)); return a < 0x1_0000; });
        Assert.True(space.TryRead(0x10, []));
        Assert.True(space.TryWrite(0x10, []));
        Assert.False(space.TryReadUInt64(ulong.MaxValue - 6, out _));
        Assert.False(space.TryWriteUInt32(ulong.MaxValue - 2, 1));
        Assert.Empty(calls);
        Assert.True(space.TryReadUInt64(ulong.MaxValue - 7, out ulong v));     // ends exactly at 2^64 - 1
        Assert.Equal(0xEEEE_EEEE_EEEE_EEEEUL, v);
        Assert.True(space.TryWriteUInt32(0x20, 1));
        Assert.False(space.TryWriteUInt32(0x2_0000, 1));                        // the callback's own fault
        Assert.Equal([('r', ulong.MaxValue - 7, 8), ('w', 0x20UL, 4), ('w', 0x2_0000UL, 4)], calls);
    }
}

/// <summary>A VMM accessor that throws: the exception reaches the host, and nothing the unit consumed is lost.</summary>
public class ThrowingAccessorTests
{
    [Fact]
    public void Vtd_FetchThrows_ExceptionReachesTheHost_IqhStaysOnTheFirstUnexecutedDescriptor_NextRunCompletes()
    {
        var backing = new GuestMemory();
        byte[] queue = new byte[4096], status = new byte[4096];
        backing.Map(0x10_0000, queue);
        backing.Map(0x20_0000, status);
        int reads = 0, throwAt = 2;
        var space = new CallbackGuestMemory(
            (a, d) => ++reads == throwAt ? throw new InvalidOperationException("accessor failed") : backing.TryRead(a, d),
            (a, s) => backing.TryWrite(a, s));
        using var unit = new VtdIommu(space, new VtdOptions { ScalableMode = false });
        var page = TranslationEntry.Leaf(TranslationStage.Stage2, 4, AddressSpace.None, 0x5000, 0x5000);
        unit.Engine.Iotlb.Fill(page);
        FastInval.Tests.Vtd.Dsc.Iotlb(3, 4, 0x5000).Write(queue.AsSpan(0, 16));
        FastInval.Tests.Vtd.Dsc.Iotlb(2, 4).Write(queue.AsSpan(16, 16));
        FastInval.Tests.Vtd.Dsc.Wait(sw: true, data: 1, addr: 0x20_0000).Write(queue.AsSpan(32, 16));
        unit.WriteRegister(VtdRegisters.Iqa, 0x10_0000, 8);
        unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
        Assert.Throws<InvalidOperationException>(() => unit.WriteRegister(VtdRegisters.Iqt, 48, 4));
        Assert.Equal(0UL, unit.ReadRegister(VtdRegisters.Iqh, 8));
        Assert.Equal(0u, (uint)unit.ReadRegister(VtdRegisters.Fsts, 4));
        Assert.True(unit.Engine.Iotlb.TryLookup(TranslationStage.Stage2, 4, AddressSpace.None, 0x5000, out _)); // not yet run
        unit.WriteRegister(VtdRegisters.Iqt, 48, 4);                      // the guest (or host) rings again: fetched from IQH
        Assert.Equal(48UL, unit.ReadRegister(VtdRegisters.Iqh, 8));
        Assert.Equal(1, status[0]);
        Assert.False(unit.Engine.Iotlb.TryLookup(TranslationStage.Stage2, 4, AddressSpace.None, 0x5000, out _));
    }

    [Fact]
    public void Smmu_FetchThrows_ConsumedInvalidationsAreExecuted_ConsStaysOnTheFailedFetch()
    {
        var backing = new GuestMemory();
        byte[] queue = new byte[256];
        backing.Map(0x40_0000, queue);
        int reads = 0;
        var space = new CallbackGuestMemory(
            (a, d) => ++reads == 2 ? throw new InvalidOperationException("accessor failed") : backing.TryRead(a, d),
            (a, s) => backing.TryWrite(a, s));
        using var smmu = new FastInval.Smmu.SmmuV3(space);
        smmu.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 2, 0x3000, 0x3000));
        FastInval.Tests.Smmu.Cmd.NhAsid(1, 2).Write(queue.AsSpan(0, 16));
        FastInval.Tests.Smmu.Cmd.Sync().Write(queue.AsSpan(16, 16));
        smmu.WriteRegister(Smmu_.CmdqBase, 0x40_0000 | 4, 8);
        smmu.WriteRegister(Smmu_.Cr0, Smmu_.Cr0CmdqEn | Smmu_.Cr0SmmuEn, 4);
        Assert.Throws<InvalidOperationException>(() => smmu.WriteRegister(Smmu_.CmdqProd, 2, 4));
        Assert.Equal(1u, (uint)smmu.ReadRegister(Smmu_.CmdqCons, 4));
        Assert.False(smmu.Engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 2, 0x3000, out _)); // consumed, so executed
        smmu.WriteRegister(Smmu_.CmdqProd, 2, 4);
        Assert.Equal(2u, (uint)smmu.ReadRegister(Smmu_.CmdqCons, 4));
    }
}
