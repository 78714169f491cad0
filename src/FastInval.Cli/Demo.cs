using System.Diagnostics;

namespace FastInval.Cli;

/// <summary>Knobs of the demo (the defaults are what <c>fastinval demo</c> runs).</summary>
internal sealed class DemoSettings
{
    /// <summary>IOTLB entries of the timing section (a multiple of 16 × 1,024; default 1,048,576).</summary>
    public int TimingEntries { get; init; } = 1 << 20;
}

/// <summary>
/// The embedded demo: a host with a VT-d-like IOMMU serves one guest with three devices. The guest maps memory, DMA
/// lookups hit, then the guest unmaps memory in several ways (page ranges, a PASID, a whole domain, device TLBs), one
/// device times out and is retried; a second guest's VMM forwards an invalidation array with a bad entry to iommufd; a
/// third guest drives a VT-d invalidation queue through a device time-out and its recovery; a fourth drives an AMD-Vi
/// command buffer through an illegal command and its recovery; and a timing section measures the engine over a 1M-entry IOTLB.
/// </summary>
/// <remarks>Only the engine's public API is used: this is also an example of how a VMM drives it.</remarks>
internal static partial class Demo
{
    /// <summary>Runs the demo, writing the story to <paramref name="output"/>; returns the exit code
    /// (<see cref="ExitCodes.Ok"/> when every self-check held, <see cref="ExitCodes.Failure"/> otherwise).</summary>
    public static int Run(TextWriter output) => Run(output, new DemoSettings());

    /// <inheritdoc cref="Run(TextWriter)"/>
    internal static int Run(TextWriter output, DemoSettings settings)
    {
        var checks = new SelfChecks(output);
        var total = Stopwatch.StartNew();
        RunScenario(output, checks);
        RunIommufdStep(output, checks, step: 8);
        RunVtdQueueStep(output, checks, step: 9);
        RunAmdViQueueStep(output, checks, step: 10);
        RunTimings(output, checks, settings);
        total.Stop();
        output.WriteLine();
        if (checks.Failures == 0)
        {
            output.WriteLine($"Demo finished in {total.Elapsed.TotalSeconds:F1} s; all {checks.Passed} self-checks held.");
            return ExitCodes.Ok;
        }

        output.WriteLine($"Demo finished in {total.Elapsed.TotalSeconds:F1} s; {checks.Failures} of {checks.Passed + checks.Failures} self-checks FAILED (see CHECK FAILED above).");
        return ExitCodes.Failure;
    }

    /// <summary>The demo's own assertions: a failed one prints a line and makes the exit code 1.</summary>
    private sealed class SelfChecks(TextWriter output)
    {
        public int Passed { get; private set; }

        public int Failures { get; private set; }

        public bool Check(bool condition, string what)
        {
            if (condition)
            {
                Passed++;
            }
            else
            {
                Failures++;
                output.WriteLine($"  CHECK FAILED: {what}");
            }

            return condition;
        }
    }

    // ---- formatting ---------------------------------------------------------------------------------------

    /// <summary>An integer with thousands separators.</summary>
    internal static string N(long value) => value.ToString("N0", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>An address in hex with a '_' every four digits: 0x40_0000_5123.</summary>
    internal static string Hex(ulong value)
    {
        string digits = value.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        var sb = new System.Text.StringBuilder("0x", 2 + digits.Length + (digits.Length / 4));
        for (int i = 0; i < digits.Length; i++)
        {
            if (i > 0 && (digits.Length - i) % 4 == 0)
            {
                sb.Append('_');
            }

            sb.Append(digits[i]);
        }

        return sb.ToString();
    }

    /// <summary>A power-of-two size: 4 KiB, 2 MiB, 512 GiB.</summary>
    internal static string Size(int log2) => log2 switch
    {
        >= 40 => $"{1L << (log2 - 40)} TiB",
        >= 30 => $"{1L << (log2 - 30)} GiB",
        >= 20 => $"{1L << (log2 - 20)} MiB",
        >= 10 => $"{1L << (log2 - 10)} KiB",
        _ => $"{1L << log2} B",
    };

    /// <summary>A PCI requester id as bus:device.function.</summary>
    internal static string Bdf(uint sid) => $"{(sid >> 8) & 0xFF:x2}:{(sid >> 3) & 0x1F:x2}.{sid & 7}";

    /// <summary>A PASID, or "no PASID".</summary>
    internal static string Pasid(uint pasid) => pasid == AddressSpace.None ? "no PASID" : $"PASID {(pasid < 10 ? pasid.ToString(System.Globalization.CultureInfo.InvariantCulture) : "0x" + pasid.ToString("x", System.Globalization.CultureInfo.InvariantCulture))}";

    /// <summary>"4 descriptors: 4 Ok" or "2 descriptors: 1 Ok, 1 TimedOut".</summary>
    internal static string Outcome(ReadOnlySpan<InvalidationStatus> statuses)
    {
        var counts = new SortedDictionary<InvalidationStatus, int>();
        foreach (InvalidationStatus s in statuses)
        {
            counts[s] = counts.GetValueOrDefault(s) + 1;
        }

        return $"{statuses.Length} descriptor{(statuses.Length == 1 ? "" : "s")}: " + string.Join(", ", counts.Select(kv => $"{kv.Value} {kv.Key}"));
    }
}
