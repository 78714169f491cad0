namespace FastInval.Tests.Engine;

/// <summary>
/// The lookups the C ABI makes under its handle table's pin (<c>TryLookupPinned</c>, no reader slot) answer exactly as the
/// public lookups do: the same hit or miss and the same translation, for random entries of every span, global and not,
/// probed at random addresses, in random address spaces and at invalid ones.
/// </summary>
public class PinnedLookupTests
{
    [Fact]
    public void Iotlb_PinnedLookup_AnswersAsTryLookup()
    {
        using var cache = new TranslationCache(4096);
        var random = new Random(12);
        var filled = new List<ulong>();
        for (int i = 0; i < 3000; i++)
        {
            byte size = (byte)(random.Next(3) switch { 0 => 12, 1 => 21, _ => 30 });
            ulong input = ((ulong)random.Next(1 << 12) << size) & ((1UL << 44) - 1);
            bool global = random.Next(8) == 0;
            var e = new TranslationEntry(TranslationStage.Stage1, (ushort)random.Next(4), global ? AddressSpace.None : (uint)random.Next(4),
                input, 0x10_0000_0000UL + input, size, AccessRights.Read, Granule.Size4K, global, isTable: false);
            cache.Fill(in e);
            filled.Add(input);
        }

        int hits = 0;
        for (int i = 0; i < 20000; i++)
        {
            ushort domain = (ushort)random.Next(5);
            uint asid = random.Next(10) == 0 ? uint.MaxValue - 1 : (uint)random.Next(5);
            ulong address = random.Next(2) == 0 ? filled[random.Next(filled.Count)] + (ulong)random.Next(4096) : (ulong)random.NextInt64(1L << 44);
            bool expected = cache.TryLookup(TranslationStage.Stage1, domain, asid, address, out Translation want);
            bool actual = cache.TryLookupPinned(TranslationStage.Stage1, domain, asid, address, out Translation got);
            Assert.Equal(expected, actual);
            Assert.Equal(want, got);
            hits += actual ? 1 : 0;
        }

        Assert.InRange(hits, 100, 19900); // both answers occur
    }

    [Fact]
    public void DeviceTlb_PinnedLookup_AnswersAsTryLookup()
    {
        using var tlb = new DeviceTlb(2048);
        var random = new Random(13);
        var filled = new List<ulong>();
        for (int i = 0; i < 1500; i++)
        {
            byte size = (byte)(random.Next(2) == 0 ? 12 : 21);
            ulong input = (ulong)random.Next(1 << 10) << size;
            bool global = random.Next(8) == 0;
            var e = new DeviceTlbEntry((uint)random.Next(4), (uint)random.Next(3), input, 0x20_0000_0000UL + input, size, AccessRights.ReadWrite, global);
            tlb.Fill(in e);
            filled.Add(input);
        }

        int hits = 0;
        for (int i = 0; i < 20000; i++)
        {
            uint source = (uint)random.Next(5);
            uint pasid = random.Next(10) == 0 ? uint.MaxValue - 1 : (uint)random.Next(4);
            ulong address = random.Next(2) == 0 ? filled[random.Next(filled.Count)] + (ulong)random.Next(4096) : (ulong)random.NextInt64(1L << 31);
            bool expected = tlb.TryLookup(source, pasid, address, out Translation want);
            bool actual = tlb.TryLookupPinned(source, pasid, address, out Translation got);
            Assert.Equal(expected, actual);
            Assert.Equal(want, got);
            hits += actual ? 1 : 0;
        }

        Assert.InRange(hits, 100, 19900);
    }
}
