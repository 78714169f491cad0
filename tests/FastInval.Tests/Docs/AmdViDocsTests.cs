using FastInval.AmdVi;

namespace FastInval.Tests.Docs;

/// <summary>Keeps docs/amdvi-command-buffer.md true: its example is this file's code, and it runs here.</summary>
public class AmdViDocsTests
{
    private const string Region = "docs:amdvi-example";

    [Fact]
    public void AmdViExample_RunsAndTheDocShowsItVerbatim()
    {
        // <docs:amdvi-example>
        var memory = new GuestMemory();                       // the guest's RAM, as the VMM sees it
        var ram = new byte[1 << 20];
        memory.Map(0x0, ram);

        using var unit = new AmdViIommu(memory, new AmdViOptions
        {
            Interrupt = () => { /* deliver the IOMMU's MSI to the guest */ },
        });

        // The host caches a translation it walked for the guest: DomainID 1, host page table, IOVA 0x4000.
        unit.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, domainId: 1, addressSpaceId: AddressSpace.None,
            inputAddress: 0x4000, outputAddress: 0x9_0000));

        // The guest driver: a 256-entry command buffer at 0x1_0000 (ComLen = 8), enabled with the IOMMU; one
        // INVALIDATE_IOMMU_PAGES of the page and a COMPLETION_WAIT that stores 1 (64 bits) at 0x2_0000.
        unit.WriteRegister(AmdViRegisters.CommandBufferBase, 0x1_0000 | (8UL << AmdViRegisters.RingLengthShift), 8);
        unit.WriteRegister(AmdViRegisters.Control, AmdViRegisters.ControlIommuEn | AmdViRegisters.ControlCmdBufEn, 8);
        AmdViCommand.InvalidateIommuPages(domainId: 1, address: 0x4000).Write(ram.AsSpan(0x1_0000, 16));
        AmdViCommand.CompletionWait(storeAddress: 0x2_0000, data: 1).Write(ram.AsSpan(0x1_0010, 16));
        unit.WriteRegister(AmdViRegisters.CommandBufferTail, 0x20, 4);                  // both processed here

        bool stillCached = unit.Engine.Iotlb.TryLookup(TranslationStage.Stage2, 1, AddressSpace.None, 0x4000, out _); // false
        ulong semaphore = BitConverter.ToUInt64(ram, 0x2_0000);                         // 1
        // </docs:amdvi-example>

        Assert.False(stillCached);
        Assert.Equal(1UL, semaphore);
        Assert.Equal(0x20UL, unit.ReadRegister(AmdViRegisters.CommandBufferHead, 8));
        Assert.NotEqual(0UL, unit.ReadRegister(AmdViRegisters.Status, 8) & AmdViRegisters.StatusCmdBufRun);

        string snippet = ReadmeTests.ExtractRegion(File.ReadAllText(ReadmeTests.RepoFile("tests", "FastInval.Tests", "Docs", "AmdViDocsTests.cs")), Region);
        string doc = ReadmeTests.ExtractRegion(File.ReadAllText(ReadmeTests.RepoFile("docs", "amdvi-command-buffer.md")), Region);
        Assert.True(snippet == doc, "docs/amdvi-command-buffer.md's example must be exactly the code between the <" + Region +
            "> markers of AmdViDocsTests.cs. Copy it from here:\n\n" + snippet);
    }
}
