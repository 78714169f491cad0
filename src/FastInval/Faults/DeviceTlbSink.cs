namespace FastInval;

/// <summary>
/// One device-TLB (ATS) invalidation that a queue front end asks a device to carry out: the decoded invalidation, the
/// ticket that completes it, and where it came from.
/// </summary>
/// <param name="Ticket">The number to pass to <see cref="IDeviceTlbCompletion.Complete"/>. Unique for the unit's
/// lifetime (never reused, also not after a reset or a restore), never 0.</param>
/// <param name="Descriptor">The invalidation, of scope <see cref="InvalidationScope.DeviceTlb"/>: the device is
/// <see cref="InvalidationDescriptor.SourceId"/>, the range <see cref="InvalidationDescriptor.First"/> to
/// <see cref="InvalidationDescriptor.Last"/>, the PASID and global flags as decoded from the guest's descriptor.</param>
/// <param name="Source">The front end: <see cref="InvalidationSource.VtdQueue"/> or
/// <see cref="InvalidationSource.SmmuCommandQueue"/>.</param>
/// <param name="Index">The guest descriptor's slot in its queue (as in an <see cref="InvalidationRecord"/>).</param>
/// <param name="Ordinal">The engine's device-TLB ordinal of this invalidation: the question a
/// <see cref="FaultPlan"/> answers (see <see cref="FaultPlan.DecideDeviceTlb"/>).</param>
public readonly record struct DeviceTlbRequest(ulong Ticket, InvalidationDescriptor Descriptor, InvalidationSource Source, ulong Index, ulong Ordinal);

/// <summary>
/// What answers a unit's device-TLB invalidations: the devices themselves (a VMM forwards each request to the device's
/// ATS invalidation path, a vhost device IOTLB, or a passthrough device's iommufd HWPT) or a simulation
/// (<see cref="FaultPlan"/>).
/// </summary>
/// <remarks>
/// <para><b>Contract.</b> <see cref="Submit"/> is called once per device-TLB invalidation, in queue order, on the thread
/// that runs the unit's queue (a register write, a completion or the time-out timer) and under the unit's lock. It must
/// return without waiting for the answer: it completes the request later, from any thread, through
/// the completion it is given, or at once, inside the call. Until every earlier request has completed, the unit holds
/// the guest's next wait (VT-d invalidation wait, SMMUv3 CMD_SYNC) as hardware does.</para>
/// <para>An exception from <see cref="Submit"/> propagates out of the register write that ran the queue, once every
/// request of the batch has been submitted; the request stays outstanding until it completes or times out.</para>
/// </remarks>
public interface IDeviceTlbSink
{
    /// <summary>Sends <paramref name="request"/> to its device.</summary>
    /// <param name="request">The invalidation and its ticket.</param>
    /// <param name="completion">Where the answer goes (<see cref="IDeviceTlbCompletion.Complete"/> with
    /// <see cref="DeviceTlbRequest.Ticket"/>).</param>
    void Submit(in DeviceTlbRequest request, IDeviceTlbCompletion completion);
}

/// <summary>Takes the answers to a unit's device-TLB requests. Thread-safe: any thread may call it at any time.</summary>
public interface IDeviceTlbCompletion
{
    /// <summary>
    /// Completes request <paramref name="ticket"/>: <see cref="DeviceTlbFault.None"/> when the device invalidated and
    /// answered normally, <see cref="DeviceTlbFault.CompletionError"/> when it invalidated but its completion message is
    /// malformed, <see cref="DeviceTlbFault.Timeout"/> when the host gives up on it before the unit's own time-out.
    /// The unit then applies the answer: the engine's device-TLB entries the request covers are removed unless it timed
    /// out (notifiers hear of it then), the front end raises the architected error, and a held wait whose earlier
    /// requests have all completed is released, processing the queue on the calling thread.
    /// </summary>
    /// <returns>True when this closed an outstanding request; false for a ticket that is unknown, already completed or
    /// timed out, dropped by a reset or a restore, or completed after the unit was disposed (nothing happens then).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="outcome"/> is not a defined value.</exception>
    bool Complete(ulong ticket, DeviceTlbFault outcome);
}

/// <summary>A unit's device-TLB sink and the time-out that turns a device's silence into an error.</summary>
public sealed class DeviceTlbSinkOptions
{
    /// <summary>The default <see cref="Timeout"/>: one second, the invalidation time-out Linux programs into AMD-Vi's
    /// control register.</summary>
    public static TimeSpan DefaultTimeout { get; } = TimeSpan.FromSeconds(1);

    /// <summary>Where the unit sends its device-TLB invalidations.</summary>
    public required IDeviceTlbSink Sink { get; init; }

    /// <summary>How long a request may stay unanswered before the unit completes it as <see cref="DeviceTlbFault.Timeout"/>
    /// (VT-d ITE, SMMUv3 CERROR_ATC_INV_SYNC); <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> waits forever.
    /// Positive or infinite; default <see cref="DefaultTimeout"/>.</summary>
    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    /// <summary>The clock and timer of the time-out (default <see cref="TimeProvider.System"/>). The timer's callback
    /// runs on the provider's threads and may process the queue there.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Requests that may be outstanding at once, a power of two from 16 to 65,536 (default 256). When they are
    /// all outstanding the queue stops before the next device-TLB invalidation, as a device's invalidate queue does,
    /// and goes on when one completes.</summary>
    public int MaxOutstanding { get; init; } = 256;
}
