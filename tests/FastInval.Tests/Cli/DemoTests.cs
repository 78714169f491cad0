using System.Globalization;
using System.Text.RegularExpressions;
using FastInval.Cli;

namespace FastInval.Tests.Cli;

/// <summary>Runs <c>fastinval demo</c> once, in-process, exactly as the command line does.</summary>
public sealed class DemoRunFixture
{
    public DemoRunFixture()
    {
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        ExitCode = Demo.Run(writer);
        Text = writer.ToString();
    }

    public int ExitCode { get; }

    public string Text { get; }
}

/// <summary>
/// The demo's printed facts that must be true. Expected numbers are derived here from the scenario (the layout of
/// each address space and the VT-d rules of each invalidation), not copied from the output.
/// </summary>
public sealed partial class DemoTests(DemoRunFixture run) : IClassFixture<DemoRunFixture>
{
    // Scenario layout (Demo.Scenario.cs): per address space 1,024 4-KiB pages, 16 2-MiB pages and 5 paging-structure
    // entries (one 512 GiB, two 1 GiB, two 2 MiB spans); 4 address spaces (NIC, NVMe, accelerator PASIDs 0x11 and 0x12);
    // 32 stage-2 entries per domain, 3 domains. Device TLBs: NIC 256 pages; accelerator 256 pages + 4 2-MiB per PASID.
    private const int PerSpace = 1024 + 16 + 5;
    private const int Iotlb0 = (4 * PerSpace) + (3 * 32);
    private const int Atc0 = 256 + (2 * (256 + 4));
    private const int Config0 = 3 + 4;

    // Step 3: 16 NIC pages with IH=1 (leaves only); the accelerator's 2 MiB page with IH=0 also takes the table entries
    // whose span covers it (the 1 GiB entry at 4 GiB and the 512 GiB entry at 0), not the other 1 GiB or the 2 MiB ones.
    private const int Step3Iotlb = 16 + 1 + 2;
    private const int Step3Atc = 16 + 1;

    // Step 4: PASID 0x12 completely: IOTLB address space, device TLB of that PASID, its PASID-table entry.
    private const int Step4Iotlb = PerSpace;
    private const int Step4Atc = 256 + 4;

    // Step 5: DID 3 = what is left of PASID 0x11 after step 3, plus the domain's 32 stage-2 entries.
    private const int Step5Iotlb = PerSpace - 3 + 32;
    private const int Step5Atc = 256 + 4 - 1;
    private const int Step5Others = Iotlb0 - Step3Iotlb - Step4Iotlb - Step5Iotlb;

    private string Text => run.Text;

    [Fact]
    public void Demo_Exits0AndEverySelfCheckHeld()
    {
        Assert.Equal(0, run.ExitCode);
        Assert.DoesNotContain("CHECK FAILED", Text, StringComparison.Ordinal);
        Assert.Matches(@"all \d+ self-checks held", Text);
        for (int step = 1; step <= 10; step++)
        {
            Assert.Contains($"Step {step}. ", Text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Mapping_FillsEveryCacheWithTheScenarioEntries()
    {
        Assert.Contains($"now cached: IOTLB {N(Iotlb0)} entries, device TLB {N(Atc0)} entries, config cache {N(Config0)} entries", Step(1), StringComparison.Ordinal);
    }

    [Fact]
    public void DmaLookupsAfterMappingAll_Hit()
    {
        string[] lookups = Lookups(Step(2));
        Assert.Equal(7, lookups.Length);
        Assert.All(lookups, l => Assert.Contains(" hit ->", l, StringComparison.Ordinal));
        Assert.Contains(lookups, l => l.Contains("NIC DMA 0x8000_5123", StringComparison.Ordinal) && l.EndsWith("host 0x40_0000_5123 (4 KiB page)", StringComparison.Ordinal));
        Assert.Contains(lookups, l => l.Contains("accelerator DMA 0x1_0000_1234", StringComparison.Ordinal) && l.EndsWith("(2 MiB page)", StringComparison.Ordinal));
    }

    [Fact]
    public void PageSelectiveBatch_RemovesTheRangesAndHonoursTheLeafHint()
    {
        string s = Step(3);
        Assert.Equal(("4 descriptors: 4 Ok", Step3Iotlb, Step3Atc, 0), EngineDid(s));
        Assert.Contains("DID 1 PASID 0: 16 x 4 KiB page", s, StringComparison.Ordinal);
        Assert.Contains("DID 3 PASID 0x11: 1 x 2 MiB page, 1 x 1 GiB table entry, 1 x 512 GiB table entry", s, StringComparison.Ordinal);
        Assert.EndsWith("IOTLB miss: the host must walk the page tables again", Lookup(s, "NIC DMA 0x8000_5123"), StringComparison.Ordinal);
        Assert.Contains("device-TLB miss", Lookup(s, "NIC translated DMA 0x8000_5123"), StringComparison.Ordinal);
        Assert.Contains("IOTLB hit", Lookup(s, "NIC DMA to the next page 0x8001_0123"), StringComparison.Ordinal);
        Assert.Contains("paging-structure entry (2 MiB span) hit", Lookup(s, "page walk of the NIC (IH=1 kept it)"), StringComparison.Ordinal);
        Assert.Contains("IOTLB miss", Lookup(s, "accelerator DMA 0x1_0000_1234"), StringComparison.Ordinal);
        Assert.Contains("IOTLB hit", Lookup(s, "accelerator DMA to the next 2 MiB"), StringComparison.Ordinal);
        Assert.Contains("IOTLB hit", Lookup(s, "the other process (PASID 0x12)"), StringComparison.Ordinal);
    }

    [Fact]
    public void Pasid_FlushRemovesThatPasidEverywhereAndNothingOfTheOtherPasidOrStage2()
    {
        string s = Step(4);
        Assert.Equal(("3 descriptors: 3 Ok", Step4Iotlb, Step4Atc, 1), EngineDid(s));
        Assert.Contains("IOTLB miss", Lookup(s, "process 0x12 0x8000_0040"), StringComparison.Ordinal);
        Assert.Contains("device-TLB miss", Lookup(s, "process 0x12 translated DMA"), StringComparison.Ordinal);
        Assert.Contains("config-cache miss", Lookup(s, "PASID-table entry PASID 0x12 of 03:00.0"), StringComparison.Ordinal);
        Assert.Contains("IOTLB hit", Lookup(s, "process 0x11 0x8000_0040"), StringComparison.Ordinal);
        Assert.Contains("device-TLB hit", Lookup(s, "process 0x11 translated DMA"), StringComparison.Ordinal);
        Assert.Contains("IOTLB hit", Lookup(s, "host stage-2 of guest-physical 0x123_4567 (DID 3)"), StringComparison.Ordinal);
    }

    [Fact]
    public void Domain_FlushRemovesExactlyTheDomainsEntries()
    {
        string s = Step(5);
        (string outcome, int iotlb, int atc, int config) = EngineDid(s);
        Assert.Equal(("3 descriptors: 3 Ok", Step5Iotlb, Step5Atc, 2), (outcome, iotlb, atc, config));

        Match m = ExactlyRegex().Match(s);
        Assert.True(m.Success, "the 'exactly DID 3' line is printed");
        int held = Parse(m.Groups["held"].Value), holds = Parse(m.Groups["holds"].Value);
        int othersBefore = Parse(m.Groups["ob"].Value), othersAfter = Parse(m.Groups["oa"].Value);
        Assert.Equal(Step5Iotlb, held);
        Assert.Equal(held, iotlb);
        Assert.Equal(0, holds);
        Assert.Equal(Step5Others, othersBefore);
        Assert.Equal(othersBefore, othersAfter);

        Assert.Contains("DID 3 host stage-2: 32 x 2 MiB page", s, StringComparison.Ordinal);
        Assert.Contains("IOTLB miss", Lookup(s, "accelerator DMA 0x8000_0040"), StringComparison.Ordinal);
        Assert.Contains("IOTLB miss", Lookup(s, "host stage-2 of guest-physical 0x123_4567 (DID 3)"), StringComparison.Ordinal);
        Assert.Contains("IOTLB hit", Lookup(s, "NIC DMA 0x8001_0123"), StringComparison.Ordinal);
        Assert.Contains("IOTLB hit", Lookup(s, "NVMe DMA 0x8010_0040"), StringComparison.Ordinal);
    }

    [Fact]
    public void TimedOutDevice_KeepsItsStaleEntries()
    {
        string s = Step(6);
        Assert.Equal(("2 descriptors: 1 Ok, 1 TimedOut", 16, 0, 0), EngineDid(s));
        Assert.Contains("descriptor #1 (device TLB of 01:00.0) TimedOut", s, StringComparison.Ordinal);
        Assert.Contains("the NIC's device TLB still holds 16 of its 16 entries for the unmapped range", s, StringComparison.Ordinal);
        Assert.Contains("IOTLB miss", Lookup(s, "NIC DMA 0x8001_0123"), StringComparison.Ordinal);
        string atc = Lookup(s, "NIC translated DMA 0x8001_0123");
        Assert.Contains("device-TLB hit -> host 0x40_0001_0123", atc, StringComparison.Ordinal);
        Assert.Contains("STALE", atc, StringComparison.Ordinal);
    }

    [Fact]
    public void RetryWithANewFaultPlan_RemovesTheStaleEntries()
    {
        string s = Step(7);
        Assert.Equal(("1 descriptor: 1 Ok", 0, 16, 0), EngineDid(s));
        Assert.Contains("the NIC's device TLB now holds 0 entries for the unmapped range", s, StringComparison.Ordinal);
        Assert.Contains("device-TLB miss", Lookup(s, "NIC translated DMA 0x8001_0123"), StringComparison.Ordinal);
        Assert.Contains("device-TLB hit", Lookup(s, "NIC translated DMA to a page still mapped"), StringComparison.Ordinal);
    }

    [Fact]
    public void IommufdArrayWithABadMiddleEntry_ReturnsTheErrnoAndEntryNumAndAppliesOnlyTheEntriesBeforeIt()
    {
        string s = Step(8);
        Assert.Contains("ioctl returned -95 (-EOPNOTSUPP), entry_num = 1", s, StringComparison.Ordinal);
        Assert.Contains("page 0x5000 (entry [0]): IOTLB miss, NIC device TLB miss", s, StringComparison.Ordinal);
        Assert.Contains("IOTLB hit / hit, NIC device TLB for [2] hit", s, StringComparison.Ordinal);
        Assert.Matches(@"VT-d S1 nested HWPT \d+ \(DID \d+\), NIC 04:00\.0 attached", s);
    }

    [Fact]
    public void VtdQueueStep_CompletesAWaitThenRaisesIteForTheSilentDeviceAndRecovers()
    {
        string s = Step(9);
        // Doorbell 1: three 256-bit slots, the wait writes 1 and raises a completion event.
        Assert.Contains("IQH = 3, status = 1, FSTS = 0, events: completion event", s, StringComparison.Ordinal);
        // Doorbell 2: the wait after the timed-out device-TLB invalidation is fetched and aborted: IQH past it, status
        // unchanged, FSTS.ITE (bit 6 = 0x40) with ITESID = the NIC, one fault event with FEDATA.
        Assert.Contains("IQH = 6, status = 1 (wait aborted), FSTS.ITE = 1, ITESID = 01:00.0, events: fault event (data 41)", s, StringComparison.Ordinal);
        Assert.Contains("IOTLB miss, NIC TLB hit (stale until the retry)", s, StringComparison.Ordinal);
        // Recovery: ITE cleared, two more slots, the wait writes 3.
        Assert.Contains("IQH = 8, status = 3, FSTS = 0, events: completion event; page 0x8000_8000: NIC TLB miss", s, StringComparison.Ordinal);
    }

    [Fact]
    public void AmdViStep_CompletesAWaitThenStopsOnTheIllegalCommandAndRecovers()
    {
        string s = Step(10);
        // Doorbell 1: three slots, the COMPLETION_WAIT stores 1 after both invalidations; no interrupt was asked for.
        Assert.Contains("head = 3, semaphore = 1, CmdBufRun = 1, interrupts: 0; page 0x8000_0000: IOTLB miss, NIC TLB miss", s, StringComparison.Ordinal);
        // Doorbell 2: slot 3 ran, slot 4 is illegal: the head stays on it, CmdBufRun drops, the wait is not reached, one
        // event names slot 4's address (0x10_0000 + 4 * 16) and EventIntEn signals the interrupt.
        Assert.Contains("head = 4 (stopped on it), CmdBufRun = 0, semaphore = 1, event log: 1 entry, IllegalCommandError at 0x10_0040, interrupts: 1", s, StringComparison.Ordinal);
        Assert.Contains("page 0x8000_8000: IOTLB miss (slot 3 ran), NIC TLB hit (stale until the recovery)", s, StringComparison.Ordinal);
        // Recovery: fetching resumes at slot 4; the wait stores 2.
        Assert.Contains("head = 6, semaphore = 2, CmdBufRun = 1; page 0x8000_8000: NIC TLB miss", s, StringComparison.Ordinal);
    }

    [Fact]
    public void Final_CountsAreTheMappingMinusEveryRemoval()
    {
        int iotlb = Iotlb0 - Step3Iotlb - Step4Iotlb - Step5Iotlb - 16;
        int atc = Atc0 - Step3Atc - Step4Atc - Step5Atc - 16;
        int config = Config0 - 1 - 2;
        Assert.Contains($"At the end: IOTLB {N(iotlb)} entries, device TLB {N(atc)} entries, config cache {N(config)} entries;", Text, StringComparison.Ordinal);
        Assert.Contains("6 device-TLB invalidations were sent.", Text, StringComparison.Ordinal); // 2 + 1 + 1 + 1 + 1 (the retry)
    }

    [Fact]
    public void TimingSection_NamesKernelAndCpuAndReportsPositiveRates()
    {
        string t = Text[Text.IndexOf("How fast:", StringComparison.Ordinal)..];
        Assert.Contains($"kernel:             {TagScanKernels.Name(TagScanKernels.Best)} ", t, StringComparison.Ordinal);
        string? expectKernel = Environment.GetEnvironmentVariable("FASTINVAL_EXPECT_KERNEL");
        if (!string.IsNullOrEmpty(expectKernel))
        {
            Assert.Contains($"kernel:             TagScan.{expectKernel} ", t, StringComparison.Ordinal);
        }

        string cpu = MachineInfo.CpuName();
        Assert.False(string.IsNullOrWhiteSpace(cpu));
        Assert.Contains($"CPU:                {cpu} ", t, StringComparison.Ordinal);
        if (File.Exists("/proc/cpuinfo"))
        {
            string? model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (model is not null)
            {
                Assert.Equal(model[(model.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim(), cpu);
            }
        }

        Assert.Contains("IOTLB of 1,048,576 entries", t, StringComparison.Ordinal);
        Assert.Contains("1,048,576 random DMA addresses", t, StringComparison.Ordinal);
        Assert.Contains("all hit", t, StringComparison.Ordinal);
        Assert.Contains("DID 7 (65,536 of 1,048,576 entries)", t, StringComparison.Ordinal);
        foreach (string unit in new[] { "fills/s", "lookups/s", "invalidations/s" })
        {
            Match m = Regex.Match(t, @"= (?<v>[\d.]+) M " + Regex.Escape(unit));
            Assert.True(m.Success, unit);
            Assert.True(double.Parse(m.Groups["v"].Value, CultureInfo.InvariantCulture) > 0, unit);
        }

        Assert.Matches(@"domain flush: +DID 7 .* = [\d.]+ ns per cached entry", t);
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    private static string N(int value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static int Parse(string digits) => int.Parse(digits, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);

    /// <summary>The text of step <paramref name="n"/>, up to the next step or the end of the scenario.</summary>
    private string Step(int n)
    {
        int start = Text.IndexOf($"Step {n}. ", StringComparison.Ordinal);
        Assert.True(start >= 0, $"step {n} is printed");
        int end = Text.IndexOf($"Step {n + 1}. ", start, StringComparison.Ordinal);
        if (end < 0)
        {
            end = Text.IndexOf("How fast:", start, StringComparison.Ordinal);
        }

        return Text[start..end];
    }

    private static (string Outcome, int Iotlb, int DeviceTlb, int Config) EngineDid(string step)
    {
        Match m = EngineDidRegex().Match(step);
        Assert.True(m.Success, "the step has an 'engine did' line");
        return (m.Groups["outcome"].Value, Parse(m.Groups["i"].Value), Parse(m.Groups["d"].Value), Parse(m.Groups["c"].Value));
    }

    private static string[] Lookups(string step) =>
        step.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith("  lookup now:", StringComparison.Ordinal)).ToArray();

    private static string Lookup(string step, string what)
    {
        string[] matches = Lookups(step).Where(l => l.Contains("lookup now:   " + what, StringComparison.Ordinal)).ToArray();
        Assert.True(matches.Length == 1, $"exactly one lookup line starts with '{what}' ({matches.Length} found)");
        return matches[0];
    }

    [GeneratedRegex(@"engine did:\s+(?<outcome>[^;]+); removed (?<i>[\d,]+) IOTLB, (?<d>[\d,]+) device-TLB, (?<c>[\d,]+) config-cache entries")]
    private static partial Regex EngineDidRegex();

    [GeneratedRegex(@"DID 3 held (?<held>[\d,]+) IOTLB entries and now holds (?<holds>[\d,]+); the other domains held (?<ob>[\d,]+) and hold (?<oa>[\d,]+)")]
    private static partial Regex ExactlyRegex();
}
