using System.Collections.Immutable;

namespace FastInval;

/// <summary>What the "hardware" does with one device-TLB invalidation.</summary>
public enum DeviceTlbFault : byte
{
    /// <summary>The device invalidates and completes normally.</summary>
    None = 0,

    /// <summary>The device never answers (VT-d ITE; SMMU ATC invalidation time-out reported as CERROR_ATC_INV_SYNC).
    /// Its entries stay cached.</summary>
    Timeout = 1,

    /// <summary>The device invalidates but its completion is malformed (VT-d ICE: bad ITag or source id).</summary>
    CompletionError = 2,
}

/// <summary>
/// A deterministic, seedable plan of injected "hardware" failures. The plan is a pure function of its settings and
/// of the question asked (an operation's ordinal and its device or address), so the fast engine, the reference
/// engine and every front end that asks the same questions in the same order get the same answers.
/// </summary>
/// <remarks>
/// <para>Device-TLB invalidations: the ordinal is the zero-based count of valid device-TLB descriptors an engine has
/// executed before this one, and the device asked about is the descriptor's <see cref="InvalidationDescriptor.SourceId"/>
/// (even for an all-devices descriptor without <see cref="InvalidationFlags.MatchSource"/>). The first rule that applies decides: <see cref="TimeoutOrdinals"/>, then
/// <see cref="CompletionErrorOrdinals"/>, then <see cref="TimeoutSourceIds"/>, then the seeded random draw
/// (<see cref="TimeoutPerMillion"/>, then <see cref="CompletionErrorPerMillion"/>).</para>
/// <para>Guest-memory fetches (descriptor and command reads by the queue front ends): the ordinal is the front end's
/// zero-based count of fetches; a fetch fails if its ordinal is in <see cref="FetchErrorOrdinals"/>, its address lies in
/// one of <see cref="FetchErrorRanges"/>, or the seeded draw falls under <see cref="FetchErrorPerMillion"/>.</para>
/// <para>As an <see cref="IDeviceTlbSink"/> (<see cref="DeviceTlbSinkOptions.Sink"/>) the plan answers each request at
/// once with the same decision, asked with the request's <see cref="DeviceTlbRequest.Ordinal"/>: a unit over the plan as
/// its sink behaves as the unit whose engine holds the plan.</para>
/// <para>Threading: immutable; safe to share between engines and threads. Deciding allocates nothing.</para>
/// </remarks>
public sealed class FaultPlan : IDeviceTlbSink
{
    private const uint Million = 1_000_000;

    /// <summary>A plan that injects nothing.</summary>
    public static FaultPlan None { get; } = new();

    /// <summary>Seed of the random draws.</summary>
    public ulong Seed { get; init; }

    /// <summary>Chance, in millionths, that a device-TLB invalidation times out.</summary>
    public uint TimeoutPerMillion { get; init; }

    /// <summary>Chance, in millionths, that a device-TLB invalidation completes with an error.</summary>
    public uint CompletionErrorPerMillion { get; init; }

    /// <summary>Chance, in millionths, that a guest-memory fetch fails.</summary>
    public uint FetchErrorPerMillion { get; init; }

    /// <summary>Devices whose every device-TLB invalidation times out (a dead device).</summary>
    public ImmutableArray<uint> TimeoutSourceIds { get; init; } = [];

    /// <summary>Ordinals of device-TLB invalidations that time out.</summary>
    public ImmutableArray<ulong> TimeoutOrdinals { get; init; } = [];

    /// <summary>Ordinals of device-TLB invalidations that complete with an error.</summary>
    public ImmutableArray<ulong> CompletionErrorOrdinals { get; init; } = [];

    /// <summary>Ordinals of guest-memory fetches that fail.</summary>
    public ImmutableArray<ulong> FetchErrorOrdinals { get; init; } = [];

    /// <summary>Inclusive guest-physical address ranges whose fetches fail.</summary>
    public ImmutableArray<(ulong First, ulong Last)> FetchErrorRanges { get; init; } = [];

    /// <summary>True when the plan can inject anything at all.</summary>
    public bool IsEmpty =>
        TimeoutPerMillion == 0 && CompletionErrorPerMillion == 0 && FetchErrorPerMillion == 0 &&
        Empty(TimeoutSourceIds) && Empty(TimeoutOrdinals) && Empty(CompletionErrorOrdinals) &&
        Empty(FetchErrorOrdinals) && FetchErrorRanges.IsDefaultOrEmpty;

    /// <summary>Decides the fate of the device-TLB invalidation number <paramref name="ordinal"/> sent to <paramref name="sourceId"/>.</summary>
    public DeviceTlbFault DecideDeviceTlb(ulong ordinal, uint sourceId)
    {
        if (Contains(TimeoutOrdinals, ordinal))
        {
            return DeviceTlbFault.Timeout;
        }

        if (Contains(CompletionErrorOrdinals, ordinal))
        {
            return DeviceTlbFault.CompletionError;
        }

        if (!TimeoutSourceIds.IsDefaultOrEmpty && TimeoutSourceIds.Contains(sourceId))
        {
            return DeviceTlbFault.Timeout;
        }

        if (TimeoutPerMillion == 0 && CompletionErrorPerMillion == 0)
        {
            return DeviceTlbFault.None;
        }

        uint draw = Draw(Seed, 0xD7B1_0000_0000_0001UL, ordinal, sourceId);
        if (draw < TimeoutPerMillion)
        {
            return DeviceTlbFault.Timeout;
        }

        return draw - TimeoutPerMillion < CompletionErrorPerMillion ? DeviceTlbFault.CompletionError : DeviceTlbFault.None;
    }

    /// <summary>Answers <paramref name="request"/> at once, inside the call, with
    /// <see cref="DecideDeviceTlb"/>(<see cref="DeviceTlbRequest.Ordinal"/>, the descriptor's source id).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="completion"/> is null.</exception>
    public void Submit(in DeviceTlbRequest request, IDeviceTlbCompletion completion)
    {
        ArgumentNullException.ThrowIfNull(completion);
        completion.Complete(request.Ticket, DecideDeviceTlb(request.Ordinal, request.Descriptor.SourceId));
    }

    /// <summary>Decides whether guest-memory fetch number <paramref name="ordinal"/> at <paramref name="address"/> fails.</summary>
    public bool DecideFetchFails(ulong ordinal, ulong address)
    {
        if (Contains(FetchErrorOrdinals, ordinal))
        {
            return true;
        }

        if (!FetchErrorRanges.IsDefaultOrEmpty)
        {
            foreach ((ulong first, ulong last) in FetchErrorRanges)
            {
                if (address >= first && address <= last)
                {
                    return true;
                }
            }
        }

        return FetchErrorPerMillion != 0 && Draw(Seed, 0xFE7C_0000_0000_0003UL, ordinal, address) < FetchErrorPerMillion;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        IsEmpty ? "no faults" :
        $"seed={Seed} timeout={TimeoutPerMillion}ppm ice={CompletionErrorPerMillion}ppm fetch={FetchErrorPerMillion}ppm " +
        $"deadSids=[{string.Join(',', TimeoutSourceIds.IsDefault ? [] : TimeoutSourceIds)}] " +
        $"timeoutAt=[{string.Join(',', TimeoutOrdinals.IsDefault ? [] : TimeoutOrdinals)}] " +
        $"iceAt=[{string.Join(',', CompletionErrorOrdinals.IsDefault ? [] : CompletionErrorOrdinals)}]";

    private static bool Empty<T>(ImmutableArray<T> a) => a.IsDefaultOrEmpty;

    private static bool Contains(ImmutableArray<ulong> set, ulong value)
    {
        if (set.IsDefaultOrEmpty)
        {
            return false;
        }

        foreach (ulong v in set)
        {
            if (v == value)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A uniform draw in [0, 10^6) from SplitMix64 over (seed, salt, ordinal, key).</summary>
    private static uint Draw(ulong seed, ulong salt, ulong ordinal, ulong key)
    {
        ulong z = seed ^ salt;
        z = Mix(z + ordinal * 0x9E37_79B9_7F4A_7C15UL);
        z = Mix(z ^ (key * 0xC2B2_AE3D_27D4_EB4FUL));
        return (uint)(z % Million);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }
}
