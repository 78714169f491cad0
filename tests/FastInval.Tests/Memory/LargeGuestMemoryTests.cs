using System.Runtime.InteropServices;
using FastInval.Smmu;
using FastInval.Tests.Smmu;
using FastInval.Tests.Vtd;
using FastInval.Vtd;
using static FastInval.Smmu.SmmuRegisters;

namespace FastInval.Tests.Memory;

/// <summary>Guest RAM larger than 4 GiB as a VMM has it: one sparse anonymous mapping (MAP_NORESERVE, so only the pages
/// touched are ever backed), reached through <see cref="NativeGuestMemory"/>, with a VT-d queue and wait status and an
/// SMMU command queue and CMD_SYNC MSI above 4 GiB.</summary>
public sealed unsafe partial class LargeGuestMemoryTests : IDisposable
{
    private const ulong Size = 6UL << 30;            // 6 GiB of guest RAM at guest-physical 0
    private const ulong FourGiB = 1UL << 32;
    private const int ProtRead = 1, ProtWrite = 2, MapPrivate = 0x02, MapAnonymous = 0x20, MapNoReserve = 0x4000;

    private static readonly nuint s_length = unchecked((nuint)Size);

    private readonly nint _host;

    public LargeGuestMemoryTests()
    {
        Assert.True(OperatingSystem.IsLinux(), "the sparse mapping uses Linux mmap");
        _host = Mmap(0, s_length, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
        Assert.NotEqual(-1, _host);
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap")]
    private static partial int Munmap(nint address, nuint length);

    private byte* Host(ulong guestPhysicalAddress) => (byte*)_host + guestPhysicalAddress;

    [Fact]
    public void OneBlockOfSixGiB_ReadsAndWritesNearZeroTwoAndFourGiB_ReachTheHostPages()
    {
        var memory = new NativeGuestMemory();
        memory.Map(0, _host, Size);
        ulong[] addresses = [0, 0x7FFF_FFF0, 0x7FFF_FFFC, 0xFFFF_FFF0, 0xFFFF_FFFC, FourGiB + 8, FourGiB + 0x1234_5678, Size - 8]; // some straddle 2 and 4 GiB
        foreach (ulong a in addresses)
        {
            Assert.True(memory.TryWriteUInt64(a, a ^ 0x5A5A_5A5A_0000_0001));
        }

        foreach (ulong a in addresses)
        {
            Assert.Equal(a ^ 0x5A5A_5A5A_0000_0001, *(ulong*)Host(a));         // the byte the host sees, little-endian
            Assert.True(memory.TryReadUInt64(a, out ulong v));
            Assert.Equal(a ^ 0x5A5A_5A5A_0000_0001, v);
        }

        Assert.True(memory.TryGetSpan(FourGiB - 8, 16, out Span<byte> span));   // zero-copy across the 4 GiB offset
        Assert.True(span.SequenceEqual(new ReadOnlySpan<byte>(Host(FourGiB - 8), 16)));
        Assert.False(memory.TryReadUInt64(Size - 4, out _));                    // runs off the end of the block
        Assert.True(memory.IsMapped(0, int.MaxValue));
        Assert.False(memory.IsMapped(Size - 0x10, 0x11));
    }

    [Fact]
    public void TwoAdjacentBlocks_SplitAtFourGiB_AnAccessAcrossTheSeamReachesBoth()
    {
        var memory = new NativeGuestMemory();
        memory.Map(0, _host, FourGiB);
        memory.Map(FourGiB, _host + unchecked((nint)FourGiB), Size - FourGiB);
        Assert.True(memory.TryWriteUInt64(FourGiB - 4, 0x1122_3344_5566_7788));
        Assert.Equal(0x5566_7788u, *(uint*)Host(FourGiB - 4));
        Assert.Equal(0x1122_3344u, *(uint*)Host(FourGiB));
        Assert.False(memory.TryGetSpan(FourGiB - 4, 8, out _));                 // two blocks: no single span
        Assert.True(memory.Unmap(FourGiB));
        Assert.False(memory.TryWriteUInt64(FourGiB - 4, 0));                    // now a gap: nothing written
        Assert.Equal(0x5566_7788u, *(uint*)Host(FourGiB - 4));
    }

    [Fact]
    public void VtdQueueAndWaitStatusAboveFourGiB_AreProcessed()
    {
        const ulong queue = FourGiB + 0x4000_0000;      // 5 GiB
        const ulong status = FourGiB + 0x1000;
        var memory = new NativeGuestMemory();
        memory.Map(0, _host, Size);
        using var unit = new VtdIommu(memory);
        unit.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 3, 9, 0x7000, 0x7000));
        Dsc.PIotlb(3, 3, 9, 0x7000).Write(new Span<byte>(Host(queue), 32));
        Dsc.Wait(sw: true, data: 0xC0DE, addr: status).Write(new Span<byte>(Host(queue + 32), 32));
        unit.WriteRegister(VtdRegisters.Iqa, queue | (1UL << 11), 8);
        unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
        unit.WriteRegister(VtdRegisters.Iqt, 64, 4);
        Assert.Equal(0u, (uint)unit.ReadRegister(VtdRegisters.Fsts, 4));
        Assert.Equal(64UL, unit.ReadRegister(VtdRegisters.Iqh, 8));
        Assert.Equal(0xC0DEu, *(uint*)Host(status));
        Assert.False(unit.Engine.Iotlb.TryLookup(TranslationStage.Stage1, 3, 9, 0x7000, out _));
    }

    [Fact]
    public void SmmuCommandQueueAndSyncMsiAboveFourGiB_AreConsumed()
    {
        const ulong queue = FourGiB + 0x6000_0000;      // 5.5 GiB
        const ulong msi = FourGiB + 0x2000;
        var memory = new NativeGuestMemory();
        memory.Map(0, _host, Size);
        var msis = new List<(ulong, uint)>();
        using var smmu = new SmmuV3(memory, new SmmuOptions { Msi = (a, d) => msis.Add((a, d)) });
        smmu.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 2, 0x3000, 0x3000));
        Cmd.NhAsid(1, 2).Write(new Span<byte>(Host(queue), 16));
        SmmuRig.SyncIrq(msi, 0xBEEF).Write(new Span<byte>(Host(queue + 16), 16));
        smmu.WriteRegister(CmdqBase, queue | 4, 8);
        smmu.WriteRegister(Cr0, Cr0CmdqEn | Cr0SmmuEn, 4);
        smmu.WriteRegister(CmdqProd, 2, 4);
        Assert.Equal(2u, (uint)smmu.ReadRegister(CmdqCons, 4));
        Assert.Equal(0xBEEFu, *(uint*)Host(msi));
        Assert.Equal([(msi, 0xBEEFu)], msis);
        Assert.False(smmu.Engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 2, 0x3000, out _));
    }

    public void Dispose()
    {
        if (_host != -1 && _host != 0)
        {
            Assert.Equal(0, Munmap(_host, s_length));
        }
    }
}
