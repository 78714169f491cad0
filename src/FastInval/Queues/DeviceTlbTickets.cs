using System.Runtime.ExceptionServices;
using FastInval.Internals;

namespace FastInval.Queues;

/// <summary>What a queue front end does with the answers its device-TLB sink gives.</summary>
internal interface IDeviceTlbClient
{
    /// <summary>A request of device <paramref name="sourceId"/> from queue slot <paramref name="index"/> completed with
    /// <paramref name="outcome"/> (the engine has applied it): note a time-out for the next wait, raise a completion error,
    /// log an event. Under the unit's lock.</summary>
    void OnDeviceTlbAnswer(DeviceTlbFault outcome, uint sourceId, ulong index);

    /// <summary>Answers arrived while the queue loop was not running: go on with a held wait or a stalled queue. Under
    /// the unit's lock.</summary>
    void OnDeviceTlbProgress();
}

/// <summary>
/// The outstanding device-TLB requests of one unit: a fixed table of request slots with a free list (nothing is
/// allocated per request), the one timer that times them out, and the <see cref="IDeviceTlbCompletion"/> the sink
/// answers through.
/// </summary>
/// <remarks>
/// <para>A ticket is a 48-bit sequence number above the 16-bit slot it occupies: never 0, never reused, and an answer
/// finds its slot at once and is refused when the slot has moved on to another ticket. An answered request frees its
/// slot whatever the order of the answers.</para>
/// <para>The timer is armed when a request goes out while it is idle (or for a request due before it), and when it fires
/// it times out every request past its deadline (the oldest first, so that ITESID names it) and re-arms for the earliest
/// deadline left; an answer never touches it, so an early answer costs one spurious wake-up at most.</para>
/// <para>Every member runs under the unit's lock (<see cref="QueueCore.Gate"/>); <see cref="Complete"/> and the timer
/// take it themselves.</para>
/// </remarks>
internal sealed class DeviceTlbTickets : IDeviceTlbCompletion
{
    private const int SlotBits = 16;
    private const ulong SlotMask = (1UL << SlotBits) - 1;

    private readonly QueueCore _core;
    private readonly IDeviceTlbClient _client;
    private readonly IDeviceTlbSink _sink;
    private readonly TimeProvider _time;
    private readonly long _timeoutTicks; // in the provider's timestamp units; long.MaxValue: never
    private readonly InvalidationDescriptor[] _descriptors;
    private readonly ulong[] _indices;
    private readonly long[] _deadlines;
    private readonly ulong[] _tickets; // 0: the slot is free
    private readonly int[] _free;      // stack of free slots
    private int _freeCount;
    private ulong _sequence = 1;
    private ITimer? _timer;
    private bool _timerArmed;
    private long _armedFor;
    private bool _disposed;

    public DeviceTlbTickets(QueueCore core, IDeviceTlbClient client, DeviceTlbSinkOptions options)
    {
        ArgumentNullException.ThrowIfNull(options.Sink, "options.DeviceTlbSink.Sink");
        ArgumentNullException.ThrowIfNull(options.TimeProvider, "options.DeviceTlbSink.TimeProvider");
        int capacity = options.MaxOutstanding;
        if (capacity is < 16 or > 65536 || (capacity & (capacity - 1)) != 0)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(options), "DeviceTlbSink.MaxOutstanding must be a power of two from 16 to 65536");
        }

        if (options.Timeout <= TimeSpan.Zero && options.Timeout != Timeout.InfiniteTimeSpan)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(options), "DeviceTlbSink.Timeout must be positive or infinite");
        }

        _core = core;
        _client = client;
        _sink = options.Sink;
        _time = options.TimeProvider;
        _timeoutTicks = options.Timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : ToTimestampTicks(options.Timeout, _time.TimestampFrequency);
        _descriptors = new InvalidationDescriptor[capacity];
        _indices = new ulong[capacity];
        _deadlines = new long[capacity];
        _tickets = new ulong[capacity];
        _free = new int[capacity];
        for (int i = 0; i < capacity; i++)
        {
            _free[i] = capacity - 1 - i; // slot 0 on top
        }

        _freeCount = capacity;
    }

    /// <summary>The time-out of the requests sent from now on when the architecture lets the guest program it (AMD-Vi's
    /// Control.InvTimeOut; <see cref="Timeout.InfiniteTimeSpan"/>: none); null: <see cref="DeviceTlbSinkOptions.Timeout"/>.</summary>
    public TimeSpan? TimeoutOverride { get; set; }

    /// <summary>Requests that may still go out before every slot is taken.</summary>
    public int Free => _freeCount;

    /// <summary>True while any request is unanswered: a wait must be held.</summary>
    public bool HasOutstanding => _freeCount != _tickets.Length;

    /// <summary>Requests not yet answered.</summary>
    public int Outstanding => _tickets.Length - _freeCount;

    /// <summary>Sends the device-TLB invalidations of one executed batch, in order, each with a new ticket (the caller
    /// checked <see cref="Free"/>). Every request is submitted even if the sink throws; the first exception is rethrown
    /// after the last.</summary>
    public void SubmitAll(ReadOnlySpan<InvalidationDescriptor> descriptors, ReadOnlySpan<ulong> indices, InvalidationSource source)
    {
        FastAssert.True(descriptors.Length <= Free, "the front end admits no more device-TLB invalidations than free tickets");
        ExceptionDispatchInfo? first = null;
        for (int i = 0; i < descriptors.Length; i++)
        {
            int slot = _free[--_freeCount];
            ulong ticket = (_sequence++ << SlotBits) | (uint)slot;
            _tickets[slot] = ticket;
            _descriptors[slot] = descriptors[i];
            _indices[slot] = indices[i];
            long timeoutTicks = TimeoutOverride is TimeSpan o
                ? o == Timeout.InfiniteTimeSpan ? long.MaxValue : ToTimestampTicks(o, _time.TimestampFrequency)
                : _timeoutTicks;
            _deadlines[slot] = timeoutTicks == long.MaxValue ? long.MaxValue : _time.GetTimestamp() + timeoutTicks;
            Arm(_deadlines[slot]);
            var request = new DeviceTlbRequest(ticket, descriptors[i], source, indices[i], _core.Engine.TakeDeviceTlbOrdinal());
            try
            {
                _sink.Submit(in request, this);
            }
            catch (Exception e) when (first is null)
            {
                first = ExceptionDispatchInfo.Capture(e);
            }
        }

        first?.Throw();
    }

    /// <inheritdoc/>
    public bool Complete(ulong ticket, DeviceTlbFault outcome)
    {
        if (outcome is not (DeviceTlbFault.None or DeviceTlbFault.Timeout or DeviceTlbFault.CompletionError))
        {
            ThrowHelper.ArgumentOutOfRange(nameof(outcome), "outcome must be None, Timeout or CompletionError");
        }

        using (_core.Gate.EnterScope())
        {
            ulong slot = ticket & SlotMask;
            if (_disposed || ticket == 0 || slot >= (ulong)_tickets.Length || _tickets[slot] != ticket)
            {
                return false;
            }

            Answer((int)slot, outcome);
            if (!_core.IsRunning)
            {
                _client.OnDeviceTlbProgress();
            }

            return true;
        }
    }

    /// <summary>Drops every request (a reset or a restore): their entries are removed from the engine as if answered
    /// normally, so nothing the guest asked to invalidate stays cached, and their tickets are no longer accepted.</summary>
    public void DropAll()
    {
        for (int slot = 0; slot < _tickets.Length; slot++)
        {
            if (_tickets[slot] != 0)
            {
                Apply(slot, DeviceTlbFault.None);
                Release(slot);
            }
        }

        Disarm();
    }

    /// <summary>Refuses answers from now on and stops the timer. Under the unit's lock.</summary>
    public void Dispose()
    {
        _disposed = true;
        _timer?.Dispose();
        _timer = null;
        _timerArmed = false;
    }

    private void Answer(int slot, DeviceTlbFault outcome)
    {
        uint sourceId = _descriptors[slot].SourceId;
        ulong index = _indices[slot];
        Apply(slot, outcome);
        Release(slot);
        _client.OnDeviceTlbAnswer(outcome, sourceId, index);
    }

    private void Apply(int slot, DeviceTlbFault outcome)
    {
        if (_disposed)
        {
            return;
        }

        try
        {
            _core.Engine.ApplyDeviceTlbAnswer(in _descriptors[slot], outcome, _core.Source, _indices[slot]);
        }
        catch (ObjectDisposedException)
        {
            // a caller's engine disposed under the unit: nothing is cached any more, the front end still answers
        }
    }

    private void Release(int slot)
    {
        _tickets[slot] = 0;
        _free[_freeCount++] = slot;
    }

    /// <summary>Makes the timer fire by <paramref name="deadline"/>: armed when idle, moved only for an earlier deadline
    /// (with one time-out for every request that never happens in steady state).</summary>
    private void Arm(long deadline)
    {
        if (deadline == long.MaxValue || (_timerArmed && deadline >= _armedFor))
        {
            return;
        }

        TimeSpan due = ToTimeSpan(deadline - _time.GetTimestamp(), _time.TimestampFrequency);
        if (_timer is null)
        {
            _timer = _time.CreateTimer(static state => ((DeviceTlbTickets)state!).OnTimer(), this, due, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _timer.Change(due, Timeout.InfiniteTimeSpan);
        }

        _timerArmed = true;
        _armedFor = deadline;
    }

    private void Disarm()
    {
        if (_timerArmed)
        {
            _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _timerArmed = false;
        }
    }

    /// <summary>The timer: every request past its deadline times out, the oldest first; the timer is re-armed for the
    /// earliest deadline left; a held wait or a stalled queue goes on.</summary>
    private void OnTimer()
    {
        using (_core.Gate.EnterScope())
        {
            if (_disposed)
            {
                return;
            }

            _timerArmed = false;
            long now = _time.GetTimestamp();
            int oldest = -1;
            for (int slot = 0; slot < _tickets.Length; slot++)
            {
                if (_tickets[slot] != 0 && _deadlines[slot] <= now && (oldest < 0 || _tickets[slot] >> SlotBits < _tickets[oldest] >> SlotBits))
                {
                    oldest = slot;
                }
            }

            if (oldest >= 0)
            {
                Answer(oldest, DeviceTlbFault.Timeout);
            }

            long next = long.MaxValue;
            for (int slot = 0; slot < _tickets.Length; slot++)
            {
                if (_tickets[slot] == 0)
                {
                    continue;
                }

                if (_deadlines[slot] <= now)
                {
                    Answer(slot, DeviceTlbFault.Timeout);
                }
                else
                {
                    next = Math.Min(next, _deadlines[slot]);
                }
            }

            if (next != long.MaxValue)
            {
                Arm(next);
            }

            if (oldest >= 0 && !_core.IsRunning && !_core.IsDisposed)
            {
                _client.OnDeviceTlbProgress();
            }
        }
    }

    private static long ToTimestampTicks(TimeSpan span, long frequency) =>
        (long)Int128.Min((Int128)span.Ticks * frequency / TimeSpan.TicksPerSecond, long.MaxValue - 1);

    /// <summary>A timer's due time for <paramref name="timestampTicks"/>, at most a day (timers refuse due times past
    /// about 49 days; a timer that fires early re-arms itself for the rest).</summary>
    private static TimeSpan ToTimeSpan(long timestampTicks, long frequency) =>
        timestampTicks <= 0 ? TimeSpan.Zero : TimeSpan.FromTicks((long)Int128.Min((Int128)timestampTicks * TimeSpan.TicksPerSecond / frequency, TimeSpan.TicksPerDay));
}
