using System.Diagnostics;
using Xunit.Abstractions;

namespace FastInval.Tests.Host;

/// <summary>
/// Eight or more connections at once, each with its own unit and twin engine, running mixed checked operations for a
/// bounded time: 3 s by default, <c>FASTINVAL_SOAK_SECONDS</c> seconds when set (≥ 30 for the long mode), longer (at most
/// 30 s) only until at least 100 operations per connection were checked.
/// </summary>
public class SoakTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ConcurrentConnections_RunMixedOperationsWithEveryReplyChecked()
    {
        int seconds = int.TryParse(Environment.GetEnvironmentVariable("FASTINVAL_SOAK_SECONDS"), out int s) && s > 0 ? s : 3;
        const int Connections = 8;
        const int MinimumOperations = Connections * 100;
        // A starved CI machine (two cores, other stress tests beside this one) can stall the connections for seconds:
        // past the soak time, the connections go on until the minimum count is met, bounded at Limit seconds.
        int limit = Math.Max(seconds, 30);
        await using var server = new TestServer();
        var clock = Stopwatch.StartNew();
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        long operations = 0;
        Task[] workers = [.. Enumerable.Range(0, Connections).Select(i => Task.Factory.StartNew(() =>
        {
            try
            {
                using WireClient c = server.Connect();
                using var twin = new TwinSession(c, seed: 1000 + i, iotlb: 128, deviceTlb: 32, config: 16);
                long counted = 0;
                while (clock.Elapsed.TotalSeconds < seconds
                    || (Interlocked.Read(ref operations) < MinimumOperations && clock.Elapsed.TotalSeconds < limit))
                {
                    twin.Step();
                    Interlocked.Add(ref operations, twin.Operations - counted);
                    counted = twin.Operations;
                }
            }
            catch (Exception e)
            {
                errors.Enqueue($"connection {i}: {e}");
            }
        }, TaskCreationOptions.LongRunning))];
        await Task.WhenAll(workers);
        Assert.True(errors.IsEmpty, string.Join("\n", errors));
        Assert.True(operations >= MinimumOperations, $"only {operations} operations in {clock.Elapsed.TotalSeconds:F1} s");
        output.WriteLine($"{Connections} connections, {clock.Elapsed.TotalSeconds:F1} s: {operations} checked operations, 0 errors");
        TestServer.Eventually(() => server.Server.UnitCount == 0, "units to be freed");
    }
}
