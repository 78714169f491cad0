namespace FastInval.Tests.Docs;

/// <summary>Keeps README.md true: its minimal example is this file's code, and it runs here.</summary>
public class ReadmeTests
{
    private const string Region = "readme:minimal-example";

    [Fact]
    public void MinimalExample_RunsAndREADMEShowsItVerbatim()
    {
        // <readme:minimal-example>
        using var engine = new InvalidationEngine(); // an IOTLB, device TLBs and config caches with default capacities

        // The host walked the guest's page table: in domain (DID) 1, PASID 5, IOVA 0x8000_0000 maps host page 0x1_2345_6000.
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, domainId: 1, addressSpaceId: 5,
            inputAddress: 0x8000_0000, outputAddress: 0x1_2345_6000));

        // A device's DMA to 0x8000_0123 hits the IOTLB.
        bool hit = engine.Iotlb.TryLookup(TranslationStage.Stage1, domainId: 1, addressSpaceId: 5, address: 0x8000_0123,
            out Translation t);                                  // hit == true, t.OutputAddress == 0x1_2345_6123

        // The guest unmaps the page and asks for a page-selective invalidation of [0x8000_0000, 0x8000_0fff].
        InvalidationStatus status = engine.Execute(InvalidationDescriptor.IotlbRange(domainId: 1, addressSpaceId: 5,
            first: 0x8000_0000, last: 0x8000_0fff));             // status == InvalidationStatus.Ok

        // The next DMA misses: the host must walk the page table again (and finds the page unmapped).
        bool hitAfter = engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 5, 0x8000_0123, out _); // hitAfter == false
        // </readme:minimal-example>

        Assert.True(hit);
        Assert.Equal(0x1_2345_6123UL, t.OutputAddress);
        Assert.Equal(InvalidationStatus.Ok, status);
        Assert.False(hitAfter);
        Assert.Equal(0, engine.Iotlb.Count);

        string snippet = ExtractRegion(File.ReadAllText(RepoFile("tests", "FastInval.Tests", "Docs", "ReadmeTests.cs")), Region);
        string readme = Normalize(File.ReadAllText(RepoFile("README.md")));
        Assert.Contains("## Minimal example", readme, StringComparison.Ordinal);
        Assert.True(readme.Contains("```csharp\nusing FastInval;\n\n" + snippet + "```\n", StringComparison.Ordinal),
            "README.md's minimal example must be exactly the code between the <" + Region + "> markers of ReadmeTests.cs " +
            "(dedented), after a 'using FastInval;' line. Copy it from here:\n\n" + snippet);
    }

    [Fact]
    public void README_KeepsTheTwoQuickStartCommands()
    {
        string readme = Normalize(File.ReadAllText(RepoFile("README.md")));
        Assert.Contains("dotnet run --project src/FastInval.Cli -- demo     # the embedded demo\n", readme, StringComparison.Ordinal);
        Assert.Contains("dotnet test FastInval.sln -c Release              # the test suite (what CI runs, see .ci/run)\n", readme, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("DID")]
    [InlineData("PASID")]
    [InlineData("VMID")]
    [InlineData("ASID")]
    [InlineData("SID")]
    [InlineData("IOTLB")]
    [InlineData("device TLB / ATC")]
    [InlineData("ATS")]
    [InlineData("AM")]
    [InlineData("IH")]
    [InlineData("TTL")]
    [InlineData("TG")]
    [InlineData("IQH / IQT")]
    [InlineData("PROD / CONS")]
    [InlineData("IQE / ITE / ICE")]
    [InlineData("CERROR")]
    [InlineData("STE / CD")]
    [InlineData("context / PASID entries")]
    public void README_TerminologyTableDefines(string term)
    {
        string readme = Normalize(File.ReadAllText(RepoFile("README.md")));
        Assert.Contains($"\n| {term} | ", readme, StringComparison.Ordinal);
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    internal static string Normalize(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal);

    /// <summary>The lines strictly between <c>// &lt;name&gt;</c> and <c>// &lt;/name&gt;</c>, with their common
    /// indentation removed, each ending in a newline.</summary>
    internal static string ExtractRegion(string source, string name)
    {
        string[] lines = Normalize(source).Split('\n');
        int begin = Array.FindIndex(lines, l => l.Trim() == $"// <{name}>");
        int end = Array.FindIndex(lines, l => l.Trim() == $"// </{name}>");
        Assert.True(begin >= 0 && end > begin, $"region <{name}> found");
        string[] body = lines[(begin + 1)..end];
        int indent = body.Where(l => l.Trim().Length > 0).Min(l => l.Length - l.TrimStart(' ').Length);
        return string.Concat(body.Select(l => (l.Trim().Length == 0 ? "" : l[indent..]) + "\n"));
    }

    /// <summary>A file of the repository, found by walking up from the test's output directory to README.md.</summary>
    internal static string RepoFile(params string[] parts)
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "README.md")) && File.Exists(Path.Combine(dir.FullName, "FastInval.sln")))
            {
                return Path.Combine([dir.FullName, .. parts]);
            }
        }

        throw new FileNotFoundException($"README.md (with FastInval.sln beside it) not found above {AppContext.BaseDirectory}");
    }
}
