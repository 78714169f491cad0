using System.Diagnostics;
using System.Globalization;
using FastInval.Host.Traces;

namespace FastInval.Cli;

/// <summary>What <c>fastinval replay</c> was asked for.</summary>
/// <param name="Path">The trace file.</param>
/// <param name="Verify">Compare every reply with the recorded one.</param>
/// <param name="Progress">Draw a progress bar on stderr even when it is not a terminal.</param>
internal sealed record ReplaySettings(string Path, bool Verify, bool Progress);

/// <summary>Runs <c>fastinval replay</c>: the trace against fresh units in process, figures per unit, a throughput line,
/// and with <c>--verify</c> the first reply that differs.</summary>
internal static class Replay
{
    /// <summary>Exit code of a trace file that cannot be read (missing, not a trace, truncated, inconsistent).</summary>
    public const int UnreadableTrace = 3;

    private static readonly string[] s_caches = ["iotlb", "device-tlb", "config"];
    private static readonly string[] s_scopes = ["unknown-scope", "iotlb", "iotlb-range", "device-tlb", "config"];

    /// <summary>Exit code 0: replayed (and, with verify, every reply equal); 1: a reply differs; 3: the trace cannot be read.</summary>
    public static int Run(ReplaySettings settings, TextWriter output, TextWriter error, bool errorIsTerminal)
    {
        TraceReader reader;
        try
        {
            reader = TraceReader.Open(settings.Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or TraceFormatException)
        {
            error.WriteLine($"fastinval replay: {settings.Path}: {e.Message}");
            return UnreadableTrace;
        }

        using (reader)
        {
            var bar = settings.Progress || errorIsTerminal ? new ProgressBar(error, reader.Length) : null;
            var clock = Stopwatch.StartNew();
            TraceReplayer replayer;
            try
            {
                replayer = TraceReplayer.Run(reader, settings.Verify, bar is null ? null : bar.Update);
            }
            catch (TraceFormatException e)
            {
                bar?.End();
                error.WriteLine($"fastinval replay: {settings.Path}: {e.Message}");
                return UnreadableTrace;
            }

            clock.Stop();
            bar?.End();
            using (replayer)
            {
                Print(output, settings, reader, replayer, clock.Elapsed);
                if (replayer.Difference is { } d)
                {
                    error.WriteLine($"fastinval replay: {d.Message}");
                    output.WriteLine($"verify: FAILED at frame {d.FrameIndex}, field {d.Field}");
                    return ExitCodes.Failure;
                }

                if (settings.Verify)
                {
                    output.WriteLine($"verify: ok, all {replayer.Replies.ToString("N0", CultureInfo.InvariantCulture)} replies equal the recorded ones");
                }

                return ExitCodes.Ok;
            }
        }
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static void Print(TextWriter output, ReplaySettings settings, TraceReader reader, TraceReplayer replayer, TimeSpan elapsed)
    {
        TraceHeader h = reader.Header;
        DateTimeOffset created = DateTimeOffset.UnixEpoch.AddTicks((long)(h.CreatedUnixNanoseconds / 100));
        output.WriteLine($"trace {settings.Path}: protocol {h.ProtocolMajor}.{h.ProtocolMinor}, {(h.Generated ? "generated" : "recorded")} " +
            $"{created.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)} UTC, {N(replayer.Connections)} connection(s), {N(reader.Position)} bytes");
        foreach (UnitFigures f in replayer.Units)
        {
            if (f.RecordedUnitId == 0)
            {
                output.WriteLine($"no unit (HELLO, CREATE, server STATS, unknown units): {N(f.Requests)} requests, {Errors(f)}");
                continue;
            }

            output.WriteLine($"unit {f.RecordedUnitId} (connection {f.ConnectionId}{(f.Destroyed ? ", destroyed" : "")}): {N(f.Requests)} requests, {N(f.Operations)} operations, {Errors(f)}");
            output.WriteLine($"  filled       {Join(s_caches, f.Filled, 0)}");
            output.WriteLine($"  looked up    {N(f.Lookups)} queries, {N(f.Hits)} hits");
            output.WriteLine($"  descriptors  {N(f.Descriptors.Sum())}: {Join(s_scopes, f.Descriptors, 1)}{(f.Descriptors[0] > 0 ? $", unknown scope {N(f.Descriptors[0])}" : "")}");
            output.WriteLine($"  removed      {Join(s_caches, f.Removed, 0)}");
            output.WriteLine($"  outcomes     timed-out {N(f.TimedOut)}, completion-error {N(f.CompletionErrors)}, invalid {N(f.Invalid)}");
        }

        if (replayer.MemoryRecords > 0 || replayer.SkippedRecords > 0)
        {
            output.WriteLine($"memory records {N(replayer.MemoryRecords)} ({N(replayer.MemoryBytes)} bytes of shared memory rebuilt), records of unknown kinds skipped {N(replayer.SkippedRecords)}");
        }

        double seconds = Math.Max(elapsed.TotalSeconds, 1e-9);
        output.WriteLine($"replay: {N(replayer.Operations)} operations in {N(replayer.Requests)} requests in {elapsed.TotalSeconds.ToString("F2", CultureInfo.InvariantCulture)} s: " +
            $"{N((long)(replayer.Operations / seconds))} operations/s, {N((long)(replayer.Requests / seconds))} requests/s");
    }

    private static string Errors(UnitFigures f)
    {
        if (f.ErrorReplies == 0)
        {
            return "0 error replies";
        }

        IEnumerable<string> codes = f.Errors.Select((n, code) => (n, code)).Where(x => x.n > 0)
            .Select(x => $"{(x.code < 13 ? ProtocolName((FastInval.Host.ErrorCode)x.code) : "other")} {N(x.n)}");
        return $"{N(f.ErrorReplies)} error replies ({string.Join(", ", codes)})";
    }

    /// <summary>The protocol document's spelling of an error code: UnknownUnit is UNKNOWN_UNIT.</summary>
    private static string ProtocolName(FastInval.Host.ErrorCode code) =>
        string.Concat(code.ToString().Select((ch, i) => i > 0 && char.IsUpper(ch) ? "_" + ch : char.ToUpperInvariant(ch).ToString()));

    private static string Join(string[] names, long[] values, int first) =>
        string.Join(", ", Enumerable.Range(first, values.Length - first).Select(i => $"{names[i]} {N(values[i])}"));

    /// <summary>A one-line progress bar redrawn in place (carriage return) at most ten times a second.</summary>
    private sealed class ProgressBar(TextWriter error, long total)
    {
        private const int Width = 30;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private long _lastDraw = -1000;
        private long _bytes;
        private long _records;
        private long _drawn = -1;

        public void Update(long bytes, long records)
        {
            _bytes = bytes;
            _records = records;
            long now = _clock.ElapsedMilliseconds;
            if (now - _lastDraw >= 100)
            {
                _lastDraw = now;
                Draw(bytes, records);
            }
        }

        private void Draw(long bytes, long records)
        {
            _drawn = bytes;
            double fraction = total > 0 ? Math.Clamp((double)bytes / total, 0, 1) : 0;
            int filled = (int)(fraction * Width);
            error.Write($"\r[{new string('#', filled)}{new string('-', Width - filled)}] {(fraction * 100).ToString("F0", CultureInfo.InvariantCulture),3}%  {N(records)} records  {(bytes / 1e6).ToString("F1", CultureInfo.InvariantCulture)} MB");
            error.Flush();
        }

        /// <summary>The last figures drawn, and the line ended.</summary>
        public void End()
        {
            if (_drawn != _bytes)
            {
                Draw(_bytes, _records);
            }

            error.WriteLine();
            error.Flush();
        }
    }
}
