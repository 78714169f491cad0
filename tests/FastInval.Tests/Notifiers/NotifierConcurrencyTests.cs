namespace FastInval.Tests.Notifiers;

/// <summary>
/// Subscribe and unsubscribe from several threads while a writer executes batches. Each batch is one IOTLB range
/// invalidation whose address encodes its sequence number, so every record says which batch it came from. Checked:
/// a subscriber that stays gets every batch exactly once, in order; a subscriber that comes and goes gets a contiguous
/// run of batches, starting no later than two batches after Subscribe returned, ending no earlier than the last batch
/// completed before Dispose was called; and no callback runs after Dispose returned.
/// </summary>
public class NotifierConcurrencyTests
{
    private sealed class Churner : IInvalidationNotifier
    {
        public readonly List<long> Seen = [];
        public volatile bool DisposeReturned;
        public long LateCalls;

        public void OnInvalidated(ReadOnlySpan<InvalidationRecord> records)
        {
            if (DisposeReturned)
            {
                Interlocked.Increment(ref LateCalls);
            }

            foreach (InvalidationRecord r in records)
            {
                Seen.Add((long)(r.Descriptor.First >> 12));
            }

            if (Seen.Count % 7 == 0)
            {
                Thread.SpinWait(200); // a slow callback now and then, so Dispose has something to wait for
            }

            if (DisposeReturned)
            {
                Interlocked.Increment(ref LateCalls); // still running when Dispose returned
            }
        }
    }

    [Fact]
    public void SubscribeAndDispose_FromSeveralThreads_DuringExecution_DeliverExactlyAndNeverLate()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 64 });
        var permanent = new Churner();
        using NotifierSubscription keep = engine.Notifiers.Subscribe(permanent);
        long completed = -1;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        int rounds = 0;

        void Churn(int seed)
        {
            var rng = new Random(seed);
            while (!stop.IsCancellationRequested)
            {
                var c = new Churner();
                var filter = rng.Next(2) == 0 ? NotifierFilter.All : new NotifierFilter { DomainId = 1 };
                NotifierSubscription s = engine.Notifiers.Subscribe(c, filter);
                long atSubscribe = Volatile.Read(ref completed);
                Thread.SpinWait(rng.Next(1, 20_000));
                long beforeDispose = Volatile.Read(ref completed);
                s.Dispose();
                c.DisposeReturned = true;
                Interlocked.Increment(ref rounds);
                lock (c.Seen)
                {
                    string? why = Check(c.Seen, atSubscribe, beforeDispose);
                    if (why is not null)
                    {
                        failures.Enqueue(why);
                    }
                }

                Thread.SpinWait(2_000); // let late calls, if any, happen before the count is read
                if (Interlocked.Read(ref c.LateCalls) != 0)
                {
                    failures.Enqueue("a callback ran after Dispose returned");
                }
            }
        }

        Thread[] churners = [.. Enumerable.Range(0, 3).Select(i => new Thread(() => Churn(i + 1)) { IsBackground = true })];
        foreach (Thread t in churners)
        {
            t.Start();
        }

        var statuses = new InvalidationStatus[1];
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(1.5);
        long seq = 0;
        while (DateTime.UtcNow < deadline || Volatile.Read(ref rounds) < 50)
        {
            ulong address = (ulong)seq << 12;
            engine.Execute([InvalidationDescriptor.IotlbRange(1, 1, address, address + 0xFFF)], statuses);
            Volatile.Write(ref completed, seq);
            seq++;
            if (DateTime.UtcNow > deadline + TimeSpan.FromSeconds(10))
            {
                break; // a starved machine: check what ran
            }
        }

        stop.Cancel();
        foreach (Thread t in churners)
        {
            t.Join();
        }

        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(5)));
        Assert.True(rounds >= 50, $"only {rounds} subscribe/dispose rounds ran");
        Assert.Equal(Enumerable.Range(0, (int)seq).Select(i => (long)i), permanent.Seen);
        Assert.Equal(1, engine.Notifiers.Count);
    }

    private static string? Check(List<long> seen, long atSubscribe, long beforeDispose)
    {
        for (int i = 1; i < seen.Count; i++)
        {
            if (seen[i] != seen[i - 1] + 1)
            {
                return $"not contiguous: {seen[i - 1]} then {seen[i]}";
            }
        }

        if (beforeDispose >= atSubscribe + 2)
        {
            // Batch atSubscribe + 2 began after Subscribe returned, and batch beforeDispose was delivered before
            // Dispose was called.
            if (seen.Count == 0)
            {
                return $"nothing received, though batches {atSubscribe + 2}..{beforeDispose} ran while subscribed";
            }

            if (seen[0] > atSubscribe + 2)
            {
                return $"first batch {seen[0]}, subscribed when {atSubscribe} had completed";
            }

            if (seen[^1] < beforeDispose)
            {
                return $"last batch {seen[^1]}, disposed when {beforeDispose} had completed";
            }
        }

        return null;
    }
}
