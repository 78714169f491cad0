using System.Runtime.CompilerServices;
using FastInval.Internals;

namespace FastInval.Queues;

/// <summary>
/// The decoded invalidations of one queue run, their statuses after execution, and the after-execute check every queue
/// front end makes: an <see cref="InvalidationStatus.Invalid"/> status means the front end's decoder produced a descriptor
/// the engine refuses, a FastInval bug. It is asserted in debug builds and counted in <see cref="InternalErrors"/>; the
/// caller reports its architecture's internal error. No allocation after construction.
/// </summary>
internal sealed class QueueBatch
{
    /// <summary>Descriptors one batch holds.</summary>
    public const int Capacity = 256;

    private readonly InvalidationDescriptor[] _descriptors = new InvalidationDescriptor[Capacity];
    private readonly InvalidationStatus[] _statuses = new InvalidationStatus[Capacity];

    /// <summary>Every slot, for a decoder to write into.</summary>
    public Span<InvalidationDescriptor> Slots => _descriptors;

    /// <summary>Invalid statuses seen so far.</summary>
    public ulong InternalErrors { get; private set; }

    /// <summary>Test-only hook on each batch before it is executed (see <see cref="BatchHook"/>).</summary>
    public BatchHook? TestHook { get; set; }

    /// <summary>Every status slot (valid for the slots of the last <see cref="Execute"/>).</summary>
    public ReadOnlySpan<InvalidationStatus> Statuses => _statuses;

    /// <summary>Executes slots [0, <paramref name="count"/>) as one engine batch; false when the engine refused one of
    /// them (asserted in debug builds, counted in <see cref="InternalErrors"/>). The other statuses are valid either way.</summary>
    public bool Execute(InvalidationEngine engine, int count)
    {
        TestHook?.Invoke(_descriptors.AsSpan(0, count));
        BatchResult result = engine.Execute(_descriptors.AsSpan(0, count), _statuses);
        if (result.Invalid == 0)
        {
            return true;
        }

        FastAssert.True(result.Invalid == 0, "a queue decoder produced a descriptor the engine rejects");
        InternalErrors += (ulong)result.Invalid;
        return false;
    }
}

/// <summary>Descriptor fetch as every queue front end does it: the fault plan decides first (with the unit's fetch
/// ordinal, counted whether or not the fetch succeeds), then guest memory.</summary>
internal static class QueueFetch
{
    /// <summary>Reads <paramref name="slot"/>.Length bytes at <paramref name="address"/>; false for a planned fetch
    /// failure or unmapped memory. <paramref name="ordinal"/> is the unit's fetch counter and is incremented.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryFetch(GuestAddressSpace memory, FaultPlan plan, ref ulong ordinal, ulong address, Span<byte> slot) =>
        !plan.DecideFetchFails(ordinal++, address) && memory.TryRead(address, slot);
}

/// <summary>Guards a unit's queue processing against re-entry from its own callbacks (an MSI or interrupt sink that
/// writes a register): the nested write is applied and the running loop picks it up.</summary>
internal struct ReentrancyGuard
{
    private bool _active;

    /// <summary>True (and now entered) unless processing is already running.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnter()
    {
        if (_active)
        {
            return false;
        }

        _active = true;
        return true;
    }

    /// <summary>Leaves processing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Exit() => _active = false;
}

/// <summary>Register-width rules shared by the MMIO front ends.</summary>
internal static class RegisterHalves
{
    /// <summary>A 32-bit write to the low (<paramref name="low"/>) or high half of a 64-bit register: only the bits of
    /// that half that are in <paramref name="writable"/> change.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Merge(ulong register, uint value, bool low, ulong writable = ulong.MaxValue)
    {
        ulong shifted = low ? value : (ulong)value << 32;
        ulong half = low ? 0xFFFF_FFFFUL : 0xFFFF_FFFF_0000_0000UL;
        ulong mask = half & writable;
        return (register & ~mask) | (shifted & mask);
    }

    /// <summary>True for a 4- or 8-byte access, naturally aligned, inside a window of <paramref name="windowSize"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsValidAccess(uint offset, int size, uint windowSize) =>
        (size == 4 || size == 8) && (offset & (uint)(size - 1)) == 0 && offset <= windowSize - (uint)size;
}
