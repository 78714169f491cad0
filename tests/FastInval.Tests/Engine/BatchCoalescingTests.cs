using FastInval.Tests.Kernels;

namespace FastInval.Tests.Engine;

/// <summary>
/// <c>Execute(span, statuses)</c> holds tag flushes back (16 at most) and runs flushes of one shape together, up to eight
/// values to a scan. A storm long enough to fill the hold-back several times, with more than eight flushes of each shape,
/// repeated targets and other scopes in between, must leave exactly the state of one-at-a-time execution, with every
/// kernel.
/// </summary>
public class BatchCoalescingTests
{
    public static TheoryData<TagScanKernel> Kernels() => TagScanKernelTests.Kernels();

    [Theory]
    [MemberData(nameof(Kernels))]
    public void StormOfTag_FlushesInOneBatchEqualsOneAtATime(TagScanKernel kernel)
    {
        var batch = new List<InvalidationDescriptor>();
        for (int i = 0; i < 70; i++)
        {
            batch.Add((i % 5) switch
            {
                0 or 1 => InvalidationDescriptor.IotlbDomain((ushort)(1 + (i % 23))),            // 28 domain flushes, some repeated
                2 or 3 => InvalidationDescriptor.IotlbAddressSpace(30, (uint)(i % 17)),          // 28 PASID flushes of one domain
                _ => i % 10 == 4
                    ? InvalidationDescriptor.IotlbRange(31, 3, 0x31000, 0x33FFF)                // a range flush in between
                    : InvalidationDescriptor.IotlbDomain(33, StageMask.Stage2),                  // another shape: stage-2 only
            });
        }

        using InvalidationEngine batched = Populated(kernel), single = Populated(kernel);
        var statuses = new InvalidationStatus[batch.Count];
        BatchResult result = batched.Execute(batch.ToArray(), statuses);
        foreach (InvalidationDescriptor d in batch)
        {
            Assert.Equal(InvalidationStatus.Ok, single.Execute(in d));
        }

        Assert.Equal(batch.Count, result.Ok);
        Assert.All(statuses, s => Assert.Equal(InvalidationStatus.Ok, s));
        Assert.Equal(single.Iotlb.Count, batched.Iotlb.Count);
        int survivors = 0;
        foreach ((TranslationStage stage, ushort domain, uint asid, ulong page) in Keys())
        {
            bool inSingle = single.Iotlb.TryLookup(stage, domain, asid, page << 12, out Translation a);
            bool inBatched = batched.Iotlb.TryLookup(stage, domain, asid, page << 12, out Translation b);
            Assert.True(inSingle == inBatched, $"{stage} domain {domain} asid {asid} page {page}: one at a time {inSingle}, batched {inBatched}");
            Assert.Equal(a, b);
            survivors += inSingle ? 1 : 0;
        }

        // The flushes removed something and left something: domains 24–29, 32 and every other PASID survive.
        Assert.Equal(single.Iotlb.Count, survivors);
        Assert.InRange(survivors, 1, Keys().Count() - 1);
    }

    private static IEnumerable<(TranslationStage Stage, ushort Domain, uint Asid, ulong Page)> Keys()
    {
        for (ushort domain = 1; domain <= 33; domain++)
        {
            for (uint asid = 0; asid < 20; asid += 3)
            {
                for (ulong page = 0; page < 8; page++)
                {
                    // Domain 33 also holds stage-2 entries (no address space); distinct pages keep every key unique.
                    bool stage2 = domain == 33 && asid % 2 == 0;
                    yield return (stage2 ? TranslationStage.Stage2 : TranslationStage.Stage1, domain,
                        stage2 ? AddressSpace.None : asid, (asid * 16) + page);
                }
            }
        }
    }

    private static InvalidationEngine Populated(TagScanKernel kernel)
    {
        var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 4096, Kernel = kernel });
        foreach ((TranslationStage stage, ushort domain, uint asid, ulong page) in Keys())
        {
            Assert.Equal(FillResult.Inserted, engine.Iotlb.Fill(TranslationEntry.Leaf(stage, domain, asid, page << 12, (page + domain) << 12)));
        }

        return engine;
    }
}
