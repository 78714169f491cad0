using System.Runtime.CompilerServices;
using FastInval.Internals;

namespace FastInval;

/// <summary>The public execution entry points and their notification.</summary>
public sealed partial class InvalidationEngine
{
    /// <summary>The engine's invalidation notifiers: subscribe to learn, per executed batch, what it invalidated.</summary>
    public InvalidationNotifiers Notifiers { get; } = new();

    /// <summary>Executes one descriptor; notifiers receive it as a one-record batch (source
    /// <see cref="InvalidationSource.Engine"/>, index 0) when it was applied.</summary>
    /// <exception cref="InvalidOperationException">Called from a notifier callback of this engine.</exception>
    public InvalidationStatus Execute(in InvalidationDescriptor descriptor) => Execute(in descriptor, InvalidationSource.Engine, 0);

    /// <summary>
    /// Executes a batch with the effect of executing it one descriptor at a time, writing each descriptor's outcome;
    /// then notifiers receive the applied descriptors (source <see cref="InvalidationSource.Engine"/>, index = position
    /// in the batch).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="statuses"/> is shorter than <paramref name="batch"/>.</exception>
    /// <exception cref="InvalidOperationException">Called from a notifier callback of this engine.</exception>
    public BatchResult Execute(ReadOnlySpan<InvalidationDescriptor> batch, Span<InvalidationStatus> statuses) =>
        Execute(batch, statuses, InvalidationSource.Engine, default);

    /// <summary>One descriptor from a front end, notified with its source index.</summary>
    internal InvalidationStatus Execute(in InvalidationDescriptor descriptor, InvalidationSource source, ulong index)
    {
        InvalidationNotifiers notifiers = Notifiers;
        if (notifiers.HasSubscribers && notifiers.IsDeliveringOnThisThread)
        {
            InvalidationNotifiers.ThrowReentrant();
        }

        InvalidationStatus status = ExecuteCore(in descriptor);
        if (notifiers.HasSubscribers)
        {
            NotifyOne(in descriptor, status, source, index);
        }

        return status;
    }

    /// <summary>A batch from a front end: <paramref name="indices"/>[i] is descriptor i's index at its source (empty: the
    /// position in the batch).</summary>
    internal BatchResult Execute(ReadOnlySpan<InvalidationDescriptor> batch, Span<InvalidationStatus> statuses,
        InvalidationSource source, ReadOnlySpan<ulong> indices)
    {
        if (statuses.Length < batch.Length)
        {
            ThrowHelper.Argument(nameof(statuses), "statuses must be at least as long as the batch");
        }

        FastAssert.True(indices.IsEmpty || indices.Length >= batch.Length, "one source index per descriptor");
        InvalidationNotifiers notifiers = Notifiers;
        if (notifiers.HasSubscribers && notifiers.IsDeliveringOnThisThread)
        {
            InvalidationNotifiers.ThrowReentrant();
        }

        BatchResult result = ExecuteBatchCore(batch, statuses);
        if (notifiers.HasSubscribers)
        {
            notifiers.Deliver(batch, statuses[..batch.Length], source, indices);
        }

        return result;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void NotifyOne(in InvalidationDescriptor descriptor, InvalidationStatus status, InvalidationSource source, ulong index)
    {
        ReadOnlySpan<InvalidationDescriptor> one = new(in descriptor);
        ReadOnlySpan<InvalidationStatus> outcome = new(in status);
        ReadOnlySpan<ulong> at = new(in index);
        Notifiers.Deliver(one, outcome, source, at);
    }
}
