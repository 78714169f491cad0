using FastInval.Vtd;

namespace FastInval.Tests.Docs;

/// <summary>Keeps docs/vtd-queued-invalidation.md true: its example is this file's code, and it runs here.</summary>
public class VtdDocsTests
{
    private const string Region = "docs:vtd-example";

    [Fact]
    public void VtdExample_RunsAndTheDocShowsItVerbatim()
    {
        // <docs:vtd-example>
        var memory = new GuestMemory();                       // the guest's RAM, as the VMM sees it
        var ram = new byte[1 << 20];
        memory.Map(0x0, ram);

        using var unit = new VtdIommu(memory, new VtdOptions
        {
            Msi = (address, data) => { /* deliver the interrupt to the guest */ },
        });

        // The host caches a translation it walked for the guest: domain 1, PASID 5, IOVA 0x4000.
        unit.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, domainId: 1, addressSpaceId: 5,
            inputAddress: 0x4000, outputAddress: 0x9_0000));

        // The guest driver: a 256-bit queue at 0x1_0000, enabled; one PASID-based IOTLB invalidation of the page and a
        // wait descriptor whose status write lands at 0x2_0000.
        unit.WriteRegister(0x90, 0x1_0000 | (1UL << 11), 8);                            // IQA: base, DW = 1, QS = 0
        unit.WriteRegister(0x18, 1u << 26, 4);                                          // GCMD.QIE
        new VtdDescriptor(0x6 | (3UL << 4) | (1UL << 16) | (5UL << 32), 0x4000).Write(ram.AsSpan(0x1_0000, 32));
        new VtdDescriptor(0x5 | (1UL << 5) | (1UL << 32), 0x2_0000).Write(ram.AsSpan(0x1_0020, 32));
        unit.WriteRegister(0x88, 0x40, 4);                                              // IQT: both processed here

        bool stillCached = unit.Engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 5, 0x4000, out _); // false
        uint status = BitConverter.ToUInt32(ram, 0x2_0000);                              // 1
        // </docs:vtd-example>

        Assert.False(stillCached);
        Assert.Equal(1u, status);
        Assert.Equal(0UL, unit.ReadRegister(0x34, 4));
        Assert.Equal(0x40UL, unit.ReadRegister(0x80, 8));

        string snippet = ReadmeTests.ExtractRegion(File.ReadAllText(ReadmeTests.RepoFile("tests", "FastInval.Tests", "Docs", "VtdDocsTests.cs")), Region);
        string doc = ReadmeTests.ExtractRegion(File.ReadAllText(ReadmeTests.RepoFile("docs", "vtd-queued-invalidation.md")), Region);
        Assert.True(snippet == doc, "docs/vtd-queued-invalidation.md's example must be exactly the code between the <" + Region +
            "> markers of VtdDocsTests.cs. Copy it from here:\n\n" + snippet);
    }
}
