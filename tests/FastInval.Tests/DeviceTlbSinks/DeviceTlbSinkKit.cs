namespace FastInval.Tests.DeviceTlbSinks;

/// <summary>A sink that keeps every request and answers nothing by itself: the test answers, from any thread.</summary>
internal sealed class ParkedSink : IDeviceTlbSink
{
    private readonly List<DeviceTlbRequest> _requests = [];

    public IDeviceTlbCompletion? Completion { get; private set; }

    /// <summary>Threads Submit was called on.</summary>
    public HashSet<int> SubmitThreads { get; } = [];

    /// <summary>Throw from the next Submit (after recording it).</summary>
    public bool ThrowOnce { get; set; }

    public IReadOnlyList<DeviceTlbRequest> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    public void Submit(in DeviceTlbRequest request, IDeviceTlbCompletion completion)
    {
        lock (_requests)
        {
            _requests.Add(request);
            SubmitThreads.Add(Environment.CurrentManagedThreadId);
            Completion = completion;
        }

        if (ThrowOnce)
        {
            ThrowOnce = false;
            throw new InvalidOperationException("the device is gone");
        }
    }

    /// <summary>Answers request <paramref name="i"/> (in submission order) on a new thread and waits for it.</summary>
    public bool AnswerOnOtherThread(int i, DeviceTlbFault outcome)
    {
        DeviceTlbRequest request = Requests[i];
        bool result = false;
        int caller = Environment.CurrentManagedThreadId, answerer = caller;
        var thread = new Thread(() =>
        {
            answerer = Environment.CurrentManagedThreadId;
            result = Completion!.Complete(request.Ticket, outcome);
        });
        thread.Start();
        thread.Join();
        Assert.NotEqual(caller, answerer);
        return result;
    }
}

/// <summary>A sink that answers every request at once, inside Submit, with a fixed outcome.</summary>
internal sealed class ImmediateSink(DeviceTlbFault outcome = DeviceTlbFault.None) : IDeviceTlbSink
{
    public int Count { get; private set; }

    public void Submit(in DeviceTlbRequest request, IDeviceTlbCompletion completion)
    {
        Count++;
        Assert.True(completion.Complete(request.Ticket, outcome));
    }
}

/// <summary>A sink that keeps the tickets of one doorbell in a preallocated array, for allocation tests.</summary>
internal sealed class BufferedSink : IDeviceTlbSink
{
    private readonly ulong[] _tickets = new ulong[1024];
    private IDeviceTlbCompletion? _completion;

    public int Count { get; private set; }

    public void Submit(in DeviceTlbRequest request, IDeviceTlbCompletion completion)
    {
        _completion = completion;
        _tickets[Count++] = request.Ticket;
    }

    /// <summary>Answers the kept requests newest first (out of order) and forgets them.</summary>
    public void AnswerAllReversed()
    {
        for (int i = Count - 1; i >= 0; i--)
        {
            Assert.True(_completion!.Complete(_tickets[i], DeviceTlbFault.None));
        }

        Count = 0;
    }
}
