using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using FastInval.Internals;

namespace FastInval;

/// <summary>A consumer of invalidation records: one call per executed batch (see <see cref="InvalidationNotifiers"/>).</summary>
public interface IInvalidationNotifier
{
    /// <summary>
    /// Called on the thread that executed the batch, after the whole batch was applied to the caches and before the
    /// front end completes anything that follows it (a VT-d wait, an SMMU CMD_SYNC, the ioctl's return). The span holds
    /// the batch's records that pass this subscription's filter, in execution order, at least one; it is valid only
    /// during the call (copy what must outlive it). The callback must not execute invalidations on the same engine.
    /// </summary>
    void OnInvalidated(ReadOnlySpan<InvalidationRecord> records);
}

/// <summary>The callback form of <see cref="IInvalidationNotifier.OnInvalidated"/>.</summary>
public delegate void InvalidationCallback(ReadOnlySpan<InvalidationRecord> records);

/// <summary>
/// The notifiers of one <see cref="InvalidationEngine"/>: subscribers learn, once per executed batch and without
/// allocation, every descriptor the engine applied (see <see cref="InvalidationRecord"/> for which ones), with its source
/// front end and index, so that a VMM can forward invalidations (vhost device IOTLB, a passthrough device's nested HWPT
/// through iommufd, its own device models).
/// </summary>
/// <remarks>
/// <para><b>Delivery.</b> At the end of each executed batch (each call of an <c>Execute</c> overload, each run of a
/// queue between two waits or CMD_SYNCs, each IOMMU_HWPT_INVALIDATE chunk) the engine builds the batch's records once
/// and calls every subscriber whose filter passes at least one of them, once, in subscription order, with a span of
/// the records that pass. No record for a batch that applied nothing. Cost with no subscriber: one field read per
/// batch; with subscribers: one 48-byte record per applied descriptor and one interface call per subscriber.</para>
/// <para><b>Threading.</b> <see cref="Subscribe(IInvalidationNotifier, NotifierFilter)"/> and
/// <see cref="NotifierSubscription.Dispose"/> may be called from any thread at any time, also from inside a callback.
/// The subscriber list is copy-on-write: a batch is delivered to the subscribers of the list it read when its execution
/// ended. A subscription made while a batch is being delivered receives the next batch. Disposing a subscription from
/// another thread waits until a callback of that subscription that is running has returned; once
/// <see cref="NotifierSubscription.Dispose"/> returns, the notifier is never called again. Disposed from inside its own
/// callback, it returns at once: that callback finishes, and no later one starts.</para>
/// <para><b>Exceptions.</b> A callback that throws does not undo or stop anything: the batch is applied (delivery
/// starts only after the last descriptor ran), the front end goes on (its wait, sync, error reporting and ioctl result
/// are what they would have been), and the other subscribers still receive the batch. The exception is caught and kept
/// on the subscription (<see cref="NotifierSubscription.Faults"/>, <see cref="NotifierSubscription.LastFault"/>), which
/// stays subscribed. A consumer that failed part way must assume it missed records and resynchronise (flush what it
/// forwards to).</para>
/// <para><b>Host misuse.</b> A callback that executes invalidations on the same engine gets an
/// <see cref="InvalidOperationException"/> from that <c>Execute</c> (before it applies anything), which is then recorded as
/// that callback's fault.</para>
/// </remarks>
public sealed class InvalidationNotifiers
{
    private static readonly NotifierSubscription[] s_none = [];

    private readonly object _gate = new();
    private NotifierSubscription[] _subscribers = s_none;
    private InvalidationRecord[] _records = new InvalidationRecord[64];
    private InvalidationRecord[] _filtered = new InvalidationRecord[64];
    private int _deliveringThread;

    internal InvalidationNotifiers()
    {
    }

    /// <summary>Subscriptions alive now.</summary>
    public int Count => Volatile.Read(ref _subscribers).Length;

    /// <summary>Subscribes <paramref name="notifier"/> to the records that pass <paramref name="filter"/>. Dispose the
    /// returned subscription to unsubscribe.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="notifier"/> is null.</exception>
    /// <exception cref="ArgumentException">The filter's address space is neither a valid id nor <see cref="AddressSpace.None"/>,
    /// or its range is empty (First &gt; Last).</exception>
    public NotifierSubscription Subscribe(IInvalidationNotifier notifier, NotifierFilter filter = default)
    {
        ArgumentNullException.ThrowIfNull(notifier);
        if (filter.AddressSpaceId is uint asId && !AddressSpace.IsValid(asId))
        {
            ThrowHelper.Argument(nameof(filter), "the filter's address space must be at most AddressSpace.MaxId or AddressSpace.None");
        }

        if (filter.Range is (ulong first, ulong last) && first > last)
        {
            ThrowHelper.Argument(nameof(filter), "the filter's range is empty (First > Last)");
        }

        var subscription = new NotifierSubscription(this, notifier, filter);
        lock (_gate)
        {
            NotifierSubscription[] old = _subscribers;
            var updated = new NotifierSubscription[old.Length + 1];
            old.CopyTo(updated, 0);
            updated[^1] = subscription;
            Volatile.Write(ref _subscribers, updated);
        }

        return subscription;
    }

    /// <summary>Subscribes a callback (see <see cref="Subscribe(IInvalidationNotifier, NotifierFilter)"/>).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="callback"/> is null.</exception>
    /// <exception cref="ArgumentException">The filter is malformed (see the other overload).</exception>
    public NotifierSubscription Subscribe(InvalidationCallback callback, NotifierFilter filter = default)
    {
        ArgumentNullException.ThrowIfNull(callback);
        return Subscribe(new CallbackNotifier(callback), filter);
    }

    /// <summary>True when at least one subscription is alive (one field read: the hot path's test).</summary>
    internal bool HasSubscribers
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref _subscribers).Length != 0;
    }

    /// <summary>True while a callback runs on the calling thread (an <c>Execute</c> from it is refused).</summary>
    internal bool IsDeliveringOnThisThread => Volatile.Read(ref _deliveringThread) == Environment.CurrentManagedThreadId;

    internal void Remove(NotifierSubscription subscription)
    {
        lock (_gate)
        {
            NotifierSubscription[] old = _subscribers;
            int at = Array.IndexOf(old, subscription);
            if (at < 0)
            {
                return;
            }

            NotifierSubscription[] updated = old.Length == 1 ? s_none : new NotifierSubscription[old.Length - 1];
            Array.Copy(old, 0, updated, 0, at);
            Array.Copy(old, at + 1, updated, at, old.Length - at - 1);
            Volatile.Write(ref _subscribers, updated);
        }
    }

    /// <summary>Builds the batch's records (applied descriptors only) and delivers them. <paramref name="indices"/> empty
    /// means "the position in the batch".</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal void Deliver(ReadOnlySpan<InvalidationDescriptor> batch, ReadOnlySpan<InvalidationStatus> statuses,
        InvalidationSource source, ReadOnlySpan<ulong> indices)
    {
        NotifierSubscription[] subscribers = Volatile.Read(ref _subscribers);
        if (subscribers.Length == 0)
        {
            return;
        }

        if (_records.Length < batch.Length)
        {
            int capacity = Math.Max(batch.Length, _records.Length * 2);
            _records = new InvalidationRecord[capacity];
            _filtered = new InvalidationRecord[capacity];
        }

        Span<InvalidationRecord> records = _records;
        int n = 0;
        for (int i = 0; i < batch.Length; i++)
        {
            InvalidationStatus status = statuses[i];
            if (status is InvalidationStatus.Ok or InvalidationStatus.CompletionError)
            {
                records[n++] = new InvalidationRecord(in batch[i], source, indices.IsEmpty ? (ulong)i : indices[i], status);
            }
        }

        if (n == 0)
        {
            return;
        }

        int previous = _deliveringThread;
        Volatile.Write(ref _deliveringThread, Environment.CurrentManagedThreadId);
        try
        {
            foreach (NotifierSubscription subscriber in subscribers)
            {
                if (subscriber.Filter.IsAll)
                {
                    subscriber.Invoke(records[..n]);
                    continue;
                }

                Span<InvalidationRecord> filtered = _filtered;
                int m = 0;
                for (int k = 0; k < n; k++)
                {
                    if (subscriber.Filter.Matches(in records[k]))
                    {
                        filtered[m++] = records[k];
                    }
                }

                if (m != 0)
                {
                    subscriber.Invoke(filtered[..m]);
                }
            }
        }
        finally
        {
            Volatile.Write(ref _deliveringThread, previous);
        }
    }

    [DoesNotReturn]
    internal static void ThrowReentrant() =>
        throw new InvalidOperationException("an invalidation notifier must not execute invalidations on the engine that notifies it");

    private sealed class CallbackNotifier(InvalidationCallback callback) : IInvalidationNotifier
    {
        public void OnInvalidated(ReadOnlySpan<InvalidationRecord> records) => callback(records);
    }
}

/// <summary>A live subscription to an engine's <see cref="InvalidationNotifiers"/>; dispose it to unsubscribe.</summary>
public sealed class NotifierSubscription : IDisposable
{
    private readonly InvalidationNotifiers _owner;
    private int _disposed;
    private int _inFlight;
    private long _faults;
    private Exception? _lastFault;

    internal NotifierSubscription(InvalidationNotifiers owner, IInvalidationNotifier notifier, NotifierFilter filter)
    {
        _owner = owner;
        Notifier = notifier;
        Filter = filter;
    }

    /// <summary>The subscribed notifier.</summary>
    public IInvalidationNotifier Notifier { get; }

    /// <summary>The subscription's filter.</summary>
    public NotifierFilter Filter { get; }

    /// <summary>True until <see cref="Dispose"/> is called.</summary>
    public bool IsActive => Volatile.Read(ref _disposed) == 0;

    /// <summary>Callbacks of this subscription that threw.</summary>
    public long Faults => Interlocked.Read(ref _faults);

    /// <summary>The exception the latest faulting callback threw, or null.</summary>
    public Exception? LastFault => Volatile.Read(ref _lastFault);

    /// <summary>Unsubscribes. Idempotent, from any thread. From another thread than a running callback of this
    /// subscription, it returns when that callback has returned; from inside it, at once. Either way no callback of
    /// this subscription starts afterwards. Do not call it holding a lock that the callback takes.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _owner.Remove(this);
        if (_owner.IsDeliveringOnThisThread)
        {
            return; // inside a callback: this subscription's own one may be the caller
        }

        var spin = default(SpinWait);
        while (Volatile.Read(ref _inFlight) != 0)
        {
            spin.SpinOnce();
        }
    }

    internal void Invoke(ReadOnlySpan<InvalidationRecord> records)
    {
        Interlocked.Increment(ref _inFlight);
        try
        {
            if (Volatile.Read(ref _disposed) == 0)
            {
                Notifier.OnInvalidated(records);
            }
        }
        catch (Exception ex)
        {
            Interlocked.Increment(ref _faults);
            Volatile.Write(ref _lastFault, ex);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }
}
