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
        unit.WriteRegister(VtdRegisters.Iqa, 0x1_0000 | VtdRegisters.IqaDw, 8);         // base, 256-bit, QS = 0
        unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
        VtdDescriptor.PasidIotlbPages(domainId: 1, pasid: 5, address: 0x4000).Write(ram.AsSpan(0x1_0000, 32));
        VtdDescriptor.Wait(statusWrite: true, interrupt: false, statusData: 1, statusAddress: 0x2_0000).Write(ram.AsSpan(0x1_0020, 32));
        unit.WriteRegister(VtdRegisters.Iqt, 0x40, 4);                                  // both processed here

        bool stillCached = unit.Engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 5, 0x4000, out _); // false
        uint status = BitConverter.ToUInt32(ram, 0x2_0000);                              // 1
        // </docs:vtd-example>

        Assert.False(stillCached);
        Assert.Equal(1u, status);
        Assert.Equal(0UL, unit.ReadRegister(VtdRegisters.Fsts, 4));
        Assert.Equal(0x40UL, unit.ReadRegister(VtdRegisters.Iqh, 8));

        string snippet = ReadmeTests.ExtractRegion(File.ReadAllText(ReadmeTests.RepoFile("tests", "FastInval.Tests", "Docs", "VtdDocsTests.cs")), Region);
        string doc = ReadmeTests.ExtractRegion(File.ReadAllText(ReadmeTests.RepoFile("docs", "vtd-queued-invalidation.md")), Region);
        Assert.True(snippet == doc, "docs/vtd-queued-invalidation.md's example must be exactly the code between the <" + Region +
            "> markers of VtdDocsTests.cs. Copy it from here:\n\n" + snippet);
    }
}
