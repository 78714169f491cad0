namespace FastInval.Cli;

/// <summary>The embedded demo: a small guest maps pages, then unmaps them through the engine.</summary>
internal static class Demo
{
    public static int Run(TextWriter output)
    {
        using var engine = new InvalidationEngine();
        for (ulong page = 0; page < 1024; page++)
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, domainId: 1, addressSpaceId: 5,
                inputAddress: page << 12, outputAddress: 0x1_0000_0000 + (page << 12)));
        }

        output.WriteLine($"filled {engine.Iotlb.Count} IOTLB entries for DID 1, PASID 5 (kernel {TagScanKernels.Name(engine.Kernel)})");
        InvalidationStatus status = engine.Execute(InvalidationDescriptor.IotlbRange(1, 5, 0, (256UL << 12) - 1));
        output.WriteLine($"page-selective invalidation of 256 pages: {status}; {engine.Iotlb.Count} entries remain");
        return 0;
    }
}
