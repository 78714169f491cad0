using System.Runtime.ExceptionServices;
using FastInval.Internals;

namespace FastInval.Queues;

/// <summary>What a queue front end does with the answers its device-TLB sink gives.</summary>
internal interface IDeviceTlbClient
{
    /// <summary>A request of device <paramref name="sourceId"/> completed with <paramref name="outcome"/> (the engine has
    /// applied it): note a time-out for the next wait, raise a completion error. Under the unit's lock.</summary>
    void OnDeviceTlbAnswer(DeviceTlbFault outcome, uint sourceId);

    /// <summary>Answers arrived while the queue loop was not running: go on with a held wait or a stalled queue. Under
    /// the unit's lock.</summary>
    void OnDeviceTlbProgress();
}

/// <summary>
/// The outstanding device-TLB requests of one unit: a fixed ring of tickets (nothing is allocated per request), the
/// one timer that times them out, and the <see cref="IDeviceTlbCompletion"/> the sink answers through.
/// </summary>
/// <remarks>
/// <para>Tickets are numbered from 1 and never reused. Ticket t lives in slot t mod capacity while it is outstanding or
/// answered out of order behind an older outstanding one; <see cref="_retired"/> is the oldest ticket not yet freed.
/// Every request has the same time-out, so deadlines grow with ticket numbers and the timer only has to watch the oldest
/// outstanding one; it is armed when the first request of an empty ring goes out and re-armed when it fires (a
/// completion never touches it, so an early answer costs one spurious wake-up at most).</para>
/// <para>Every member runs under the unit's lock (<see cref="QueueCore.Gate"/>); <see cref="Complete"/> and the timer
/// take it themselves.</para>
/// </remarks>
internal sealed class DeviceTlbTickets : IDeviceTlbCompletion
{
    private readonly QueueCore _core;
    private readonly IDeviceTlbClient _client;
    private readonly IDeviceTlbSink _sink;
    private readonly TimeProvider _time;
    private readonly long _timeoutTicks; // in the provider's timestamp units; long.MaxValue: never
    private readonly InvalidationDescriptor[] _descriptors;
    private readonly ulong[] _indices;
    private readonly long[] _deadlines;
    private readonly bool[] _answered;
    private readonly ulong _mask;
    private ulong _issued = 1;  // the next ticket
    private ulong _retired = 1; // the oldest ticket not yet freed
    private ITimer? _timer;
    private bool _timerArmed;
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
        _answered = new bool[capacity];
        _mask = (ulong)capacity - 1;
    }

    /// <summary>Tickets issued and not yet freed (outstanding, or answered behind an older outstanding one).</summary>
    public int InUse => (int)(_issued - _retired);

    /// <summary>Tickets that may still be issued before the ring is full.</summary>
    public int Free => _descriptors.Length - InUse;

    /// <summary>True while any request is unanswered: a wait must be held.</summary>
    public bool HasOutstanding => _issued != _retired;

    /// <summary>Requests not yet answered.</summary>
    public int Outstanding
    {
        get
        {
            int count = 0;
            for (ulong t = _retired; t < _issued; t++)
            {
                count += _answered[t & _mask] ? 0 : 1;
            }

            return count;
        }
    }

    /// <summary>Sends the device-TLB invalidations of one executed batch, in order, each with a new ticket (the caller
    /// checked <see cref="Free"/>). Every request is submitted even if the sink throws; the first exception is rethrown
    /// after the last.</summary>
    public void SubmitAll(ReadOnlySpan<InvalidationDescriptor> descriptors, ReadOnlySpan<ulong> indices, InvalidationSource source)
    {
        FastAssert.True(descriptors.Length <= Free, "the front end admits no more device-TLB invalidations than free tickets");
        ExceptionDispatchInfo? first = null;
        for (int i = 0; i < descriptors.Length; i++)
        {
            ulong ticket = _issued++;
            ulong slot = ticket & _mask;
            _descriptors[slot] = descriptors[i];
            _indices[slot] = indices[i];
            _answered[slot] = false;
            _deadlines[slot] = _timeoutTicks == long.MaxValue ? long.MaxValue : _time.GetTimestamp() + _timeoutTicks;
            ArmIfIdle(_deadlines[slot]);
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
            if (_disposed || ticket < _retired || ticket >= _issued || _answered[ticket & _mask])
            {
                return false;
            }

            Answer(ticket & _mask, outcome);
            Retire();
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
        for (ulong t = _retired; t < _issued; t++)
        {
            ulong slot = t & _mask;
            if (!_answered[slot] && !_disposed)
            {
                try
                {
                    _core.Engine.ApplyDeviceTlbAnswer(in _descriptors[slot], DeviceTlbFault.None, _core.Source, _indices[slot]);
                }
                catch (ObjectDisposedException)
                {
                    // as in Answer
                }
            }

            _answered[slot] = false;
        }

        _retired = _issued;
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

    private void Answer(ulong slot, DeviceTlbFault outcome)
    {
        _answered[slot] = true;
        ref readonly InvalidationDescriptor d = ref _descriptors[slot];
        try
        {
            _core.Engine.ApplyDeviceTlbAnswer(in d, outcome, _core.Source, _indices[slot]);
        }
        catch (ObjectDisposedException)
        {
            // a caller's engine disposed under the unit: nothing is cached any more, the front end still answers
        }

        _client.OnDeviceTlbAnswer(outcome, d.SourceId);
    }

    private void Retire()
    {
        while (_retired != _issued && _answered[_retired & _mask])
        {
            _answered[_retired & _mask] = false;
            _retired++;
        }
    }

    private void ArmIfIdle(long deadline)
    {
        if (_timerArmed || deadline == long.MaxValue)
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
    }

    private void Disarm()
    {
        if (_timerArmed)
        {
            _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _timerArmed = false;
        }
    }

    /// <summary>The timer: every request past its deadline times out, oldest first; the timer is re-armed for the
    /// oldest request still unanswered; a held wait or a stalled queue goes on.</summary>
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
            bool answered = false;
            for (ulong t = _retired; t < _issued; t++)
            {
                ulong slot = t & _mask;
                if (_answered[slot])
                {
                    continue;
                }

                if (_deadlines[slot] > now)
                {
                    ArmIfIdle(_deadlines[slot]);
                    break;
                }

                Answer(slot, DeviceTlbFault.Timeout);
                answered = true;
            }

            Retire();
            if (answered && !_core.IsRunning && !_core.IsDisposed)
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
