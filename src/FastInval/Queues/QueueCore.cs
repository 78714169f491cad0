using FastInval.Descriptors;
using FastInval.Internals;

namespace FastInval.Queues;

/// <summary>
/// What every queue front end (VT-d's invalidation queue, SMMUv3's command queue, AMD-Vi's command buffer) shares: the
/// engine it executes on (its own, disposed with it, or a caller's), descriptor fetch under the fault plan, the 256-entry
/// batch with its statuses and source indices, the after-execute status check, the re-entrancy guard of the queue loop,
/// and disposal that may happen from inside that loop.
/// </summary>
/// <remarks>
/// <para><b>How a front end plugs in.</b> It holds one <see cref="QueueCore"/> and keeps only its architecture: the
/// registers, the decoder and the error reporting. A doorbell write calls its loop inside
/// <see cref="TryEnter"/> / <see cref="Exit"/> (a nested doorbell from an interrupt callback then returns at once and the
/// running loop re-reads the registers). The loop fetches each entry with <see cref="TryFetch"/> (the fault plan decides
/// first, then guest memory), decodes into <see cref="Slots"/> (or appends with <see cref="Add"/>), and at each barrier
/// (VT-d wait, CMD_SYNC, COMPLETION_WAIT) or full batch calls <see cref="Execute"/>. The returned
/// <see cref="QueueRunResult"/> says whether FastInval itself failed (an <see cref="InvalidationStatus.Invalid"/> status:
/// asserted in debug builds, counted in <see cref="InternalErrors"/>, reported by the front end as its architecture's
/// internal error) and where the first device-TLB time-out and completion error are, which the front end turns into its
/// architected errors (ITE / ICE, CERROR_ATC_INV_SYNC, IOTLB_INV_TIMEOUT).</para>
/// <para><b>Registers.</b> <see cref="RegisterAccess"/> holds the access rule (4 or 8 bytes, naturally aligned, inside the
/// window) and the merge of a 32-bit half into a 64-bit register.</para>
/// <para><b>Device-TLB sink.</b> With <see cref="AttachDeviceTlbSink"/>, <see cref="Execute"/> takes the batch's valid
/// device-TLB invalidations out of the engine batch and, once the rest has executed, sends them in order to the sink
/// (<see cref="Tickets"/>); the engine applies each answer when it arrives. A front end admits a decoded descriptor with
/// <see cref="Admit(int, int)"/> / <see cref="TryAdd"/> (false: no ticket is free, stop the queue before it) and holds its wait
/// while <see cref="DeviceTlbTickets.HasOutstanding"/>.</para>
/// <para><b>Threading.</b> Every entry point of a unit runs under <see cref="Gate"/>; the sink's answers and the
/// time-out timer take it too, so a unit may be called from any thread.</para>
/// </remarks>
internal sealed class QueueCore
{
    /// <summary>Descriptors one batch holds.</summary>
    public const int BatchCapacity = 256;

    private readonly InvalidationDescriptor[] _batch = new InvalidationDescriptor[BatchCapacity];
    private readonly InvalidationStatus[] _statuses = new InvalidationStatus[BatchCapacity];
    private readonly ulong[] _indices = new ulong[BatchCapacity]; // queue slot of each batch entry, for the notifiers
    private readonly InvalidationSource _source;
    private bool _running;
    private InvalidationDescriptor[]? _deferred; // the batch's device-TLB invalidations, for the sink
    private ulong[]? _deferredIndices;
    private int _admitted; // device-TLB invalidations admitted into the batch not yet executed

    /// <summary>Builds the core over <paramref name="callerEngine"/> (owned by the caller) or, when it is null, over a
    /// new engine from <paramref name="engineOptions"/> and <paramref name="faultPlan"/> that the core owns.</summary>
    /// <param name="callerEngine">The caller's engine, or null.</param>
    /// <param name="engineOptions">The unit options' engine settings (must be null with a caller's engine).</param>
    /// <param name="faultPlan">The unit options' fault plan (must be null with a caller's engine).</param>
    /// <param name="source">The source the engine's notifiers report.</param>
    /// <param name="optionsName">The unit's options type, for the error message.</param>
    /// <exception cref="ArgumentException">A caller's engine together with engine options or a fault plan.</exception>
    public QueueCore(InvalidationEngine? callerEngine, EngineOptions? engineOptions, FaultPlan? faultPlan, InvalidationSource source, string optionsName)
    {
        _source = source;
        if (callerEngine is not null)
        {
            if (engineOptions is not null || faultPlan is not null)
            {
                ThrowHelper.Argument("options", $"with a caller's engine, {optionsName}.Engine and {optionsName}.FaultPlan must be null (the engine has its own)");
            }

            Engine = callerEngine;
        }
        else
        {
            EngineOptions options = engineOptions ?? new EngineOptions();
            Engine = new InvalidationEngine(options) { FaultPlan = faultPlan ?? options.FaultPlan };
            OwnsEngine = true;
            Engine.Metrics.Kind = source switch // the unit tag of the FastInval meter
            {
                InvalidationSource.VtdQueue => "vtd",
                InvalidationSource.SmmuCommandQueue => "smmu",
                InvalidationSource.AmdViCommandBuffer => "amdvi",
                _ => "unit",
            };
        }

        Engine.Metrics.AddQueue(this);
    }

    /// <summary>The unit's queue depth for the meter (<c>fastinval.queue.depth</c>): posted and not yet consumed entries,
    /// read from its registers. Set by the front end once it is built.</summary>
    public Func<long>? DepthSource { get; set; }

    /// <summary>The engine the unit executes on.</summary>
    public InvalidationEngine Engine { get; }

    /// <summary>The unit's lock: register accesses, state operations, disposal, device-TLB answers and the time-out
    /// timer hold it (it is re-entrant, so callbacks that write registers on the same thread do not deadlock).</summary>
    public Lock Gate { get; } = new();

    /// <summary>The source the engine's notifiers report for this unit.</summary>
    public InvalidationSource Source => _source;

    /// <summary>The outstanding requests to the device-TLB sink; null without a sink.</summary>
    public DeviceTlbTickets? Tickets { get; private set; }

    /// <summary>True while a device-TLB request is unanswered (a wait must be held).</summary>
    public bool HasOutstandingDeviceTlb => Tickets is { HasOutstanding: true };

    /// <summary>Sends the unit's device-TLB invalidations to <paramref name="options"/>' sink (nothing when null).</summary>
    /// <exception cref="ArgumentNullException">The sink or the time provider is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The time-out or the capacity is out of range.</exception>
    public void AttachDeviceTlbSink(IDeviceTlbClient client, DeviceTlbSinkOptions? options)
    {
        if (options is null)
        {
            return;
        }

        Tickets = new DeviceTlbTickets(this, client, options);
        _deferred = new InvalidationDescriptor[BatchCapacity];
        _deferredIndices = new ulong[BatchCapacity];
    }

    /// <summary>Admits slots [<paramref name="start"/>, +<paramref name="count"/>) just decoded into the batch: false when
    /// their device-TLB invalidations need more tickets than are free (the front end stops the queue before the guest
    /// descriptor they came from, and goes on when an answer frees one).</summary>
    public bool Admit(int start, int count) => Admit(_batch.AsSpan(start, count));

    /// <summary>Admits <paramref name="decoded"/>, the descriptors one guest command decoded to, before they are added
    /// with <see cref="Add"/>: false when their device-TLB invalidations need more tickets than are free.</summary>
    public bool Admit(ReadOnlySpan<InvalidationDescriptor> decoded)
    {
        if (Tickets is null)
        {
            return true;
        }

        int needed = 0;
        foreach (ref readonly InvalidationDescriptor d in decoded)
        {
            needed += d.Scope == InvalidationScope.DeviceTlb ? 1 : 0;
        }

        if (needed != 0 && _admitted + needed > Tickets.Free)
        {
            return false;
        }

        _admitted += needed;
        return true;
    }

    /// <summary><see cref="Admit(ReadOnlySpan{InvalidationDescriptor})"/> of one descriptor, then <see cref="Add"/>: false
    /// (nothing added) when a device-TLB invalidation finds no free ticket.</summary>
    public bool TryAdd(in InvalidationDescriptor descriptor, ulong index)
    {
        if (!Admit(new ReadOnlySpan<InvalidationDescriptor>(in descriptor)))
        {
            return false;
        }

        Add(in descriptor, index);
        return true;
    }

    /// <summary>True when the unit built <see cref="Engine"/> and disposes it.</summary>
    public bool OwnsEngine { get; }

    /// <summary>True once the unit is disposed.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>True while the queue loop runs (between <see cref="TryEnter"/> and <see cref="Exit"/>).</summary>
    public bool IsRunning => _running;

    /// <summary>Entry fetches attempted so far: the fault plan's next fetch ordinal (restored by migration).</summary>
    public ulong Fetches { get; set; }

    /// <summary>Invalid statuses seen so far (a FastInval bug each).</summary>
    public ulong InternalErrors { get; private set; }

    /// <summary>Test-only hook on each batch before it is executed (see <see cref="BatchHook"/>).</summary>
    public BatchHook? TestHook { get; set; }

    /// <summary>Every batch slot, for a decoder to write into; <see cref="Execute"/> runs a prefix.</summary>
    public Span<InvalidationDescriptor> Slots => _batch;

    /// <summary>The descriptor in batch slot <paramref name="i"/>.</summary>
    public ref readonly InvalidationDescriptor this[int i] => ref _batch[i];

    /// <summary>Entries appended with <see cref="Add"/> and not yet executed.</summary>
    public int Count { get; private set; }

    /// <summary>Throws <see cref="ObjectDisposedException"/> for <paramref name="unit"/> once disposed.</summary>
    public void ThrowIfDisposed(object unit) => ObjectDisposedException.ThrowIf(IsDisposed, unit);

    /// <summary>Throws <see cref="InvalidOperationException"/> while the queue loop runs (save, restore and reset are
    /// refused from inside a callback).</summary>
    public void ThrowIfRunning()
    {
        if (_running)
        {
            throw new InvalidOperationException("the unit's state cannot be saved, restored or reset from inside one of its register writes");
        }
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> while a device-TLB request is unanswered (a state image
    /// does not hold a held wait or outstanding requests).</summary>
    public void ThrowIfDeviceTlbOutstanding()
    {
        if (HasOutstandingDeviceTlb)
        {
            throw new InvalidOperationException("device-TLB requests are outstanding: the state can be saved once the sink has answered them or they have timed out");
        }
    }

    /// <summary>Drops every outstanding device-TLB request (a restore): their entries are removed as if answered, their
    /// tickets no longer accepted.</summary>
    public void DropDeviceTlbRequests() => Tickets?.DropAll();

    /// <summary>The core's part of a unit reset: the fetch ordinal back to 0 and, with its own engine, empty caches (a
    /// reset leaves nothing cached; a caller's engine, which other units may share, is left to its owner).</summary>
    public void Reset()
    {
        Fetches = 0;
        Tickets?.DropAll();
        if (OwnsEngine)
        {
            Engine.Iotlb.Clear();
            Engine.DeviceTlb.Clear();
            Engine.ConfigCache.Clear();
        }
    }

    /// <summary>Enters the queue loop; false when it is already running (a register write from a callback).</summary>
    public bool TryEnter()
    {
        if (_running)
        {
            return false;
        }

        _running = true;
        return true;
    }

    /// <summary>Leaves the queue loop; if the unit was disposed from a callback meanwhile, its own engine is disposed now
    /// (it outlived the loop that was using it).</summary>
    public void Exit()
    {
        _running = false;
        if (IsDisposed && OwnsEngine)
        {
            Engine.Dispose();
        }
    }

    /// <summary>Disposes the unit: its own engine now, or when the running loop exits. Idempotent.</summary>
    public void Dispose()
    {
        if (IsDisposed)
        {
            return;
        }

        IsDisposed = true;
        Engine.Metrics.RemoveQueue(this);
        Tickets?.Dispose();
        if (OwnsEngine && !_running)
        {
            Engine.Dispose();
        }
    }

    /// <summary>Reads <paramref name="slot"/>.Length bytes at <paramref name="address"/>: false for a planned fetch failure
    /// (asked with the fetch ordinal, which counts every attempt) or unmapped guest memory.</summary>
    public bool TryFetch(GuestAddressSpace memory, ulong address, Span<byte> slot) => Fetch(memory, address, slot) == QueueFetch.Ok;

    /// <summary><see cref="TryFetch"/> for a front end whose architecture tells the two failures apart (AMD-Vi's
    /// COMMAND_HARDWARE_ERROR types): the fault plan is asked first, with the fetch ordinal, then guest memory.</summary>
    public QueueFetch Fetch(GuestAddressSpace memory, ulong address, Span<byte> slot)
    {
        if (Engine.FaultPlan.DecideFetchFails(Fetches++, address))
        {
            return QueueFetch.Planned;
        }

        return memory.TryRead(address, slot) ? QueueFetch.Ok : QueueFetch.Unmapped;
    }

    /// <summary>The status batch slot <paramref name="i"/> got in the last <see cref="Execute"/> (for a front end that reports
    /// each failed entry, as AMD-Vi's IOTLB_INV_TIMEOUT does, rather than the first one <see cref="QueueRunResult"/> names).</summary>
    public InvalidationStatus StatusOf(int i) => _statuses[i];

    /// <summary>Sets the source index of slots [<paramref name="start"/>, +<paramref name="count"/>) (for a decoder that
    /// wrote them through <see cref="Slots"/>).</summary>
    public void SetIndices(int start, int count, ulong index) => _indices.AsSpan(start, count).Fill(index);

    /// <summary>Appends one descriptor at source index <paramref name="index"/>; the caller executes a full batch first.</summary>
    public void Add(in InvalidationDescriptor descriptor, ulong index)
    {
        FastAssert.True(Count < BatchCapacity, "execute a full batch before adding");
        _batch[Count] = descriptor;
        _indices[Count] = index;
        Count++;
    }

    /// <summary>Executes the <see cref="Add"/>ed entries (none: an empty result) and empties the batch.</summary>
    public QueueRunResult ExecuteAdded()
    {
        int count = Count;
        Count = 0;
        return count == 0 ? QueueRunResult.Empty : Execute(count);
    }

    /// <summary>Executes slots [0, <paramref name="count"/>) as one engine batch and checks the statuses.</summary>
    public QueueRunResult Execute(int count)
    {
        TestHook?.Invoke(_batch.AsSpan(0, count));
        if (Tickets is not null)
        {
            return ExecuteWithSink(count);
        }

        BatchResult result = Engine.Execute(_batch.AsSpan(0, count), _statuses, _source, _indices);
        return result.AllOk ? QueueRunResult.Empty : Check(in result, count);
    }

    /// <summary>The batch without its valid device-TLB invalidations runs on the engine; those go to the sink after it,
    /// in order (their answers reach the front end through <see cref="IDeviceTlbClient"/>, not in the result).</summary>
    private QueueRunResult ExecuteWithSink(int count)
    {
        int kept = 0, deferred = 0;
        for (int i = 0; i < count; i++)
        {
            ref readonly InvalidationDescriptor d = ref _batch[i];
            if (d.Scope == InvalidationScope.DeviceTlb && DescriptorPredicates.IsValid(in d))
            {
                _deferred![deferred] = d;
                _deferredIndices![deferred++] = _indices[i];
            }
            else
            {
                _batch[kept] = d;
                _indices[kept++] = _indices[i];
            }
        }

        _admitted = 0;
        QueueRunResult run = QueueRunResult.Empty;
        if (kept > 0)
        {
            BatchResult result = Engine.Execute(_batch.AsSpan(0, kept), _statuses, _source, _indices);
            run = result.AllOk ? QueueRunResult.Empty : Check(in result, kept);
        }

        if (deferred > 0)
        {
            Tickets!.SubmitAll(_deferred.AsSpan(0, deferred), _deferredIndices.AsSpan(0, deferred), _source);
        }

        return run;
    }

    private QueueRunResult Check(in BatchResult result, int count)
    {
        bool internalError = false;
        if (result.Invalid != 0)
        {
            FastAssert.True(result.Invalid == 0, "a queue decoder produced a descriptor the engine rejects");
            InternalErrors += (ulong)result.Invalid;
            internalError = true;
        }

        int firstTimeout = -1, firstCompletionError = -1;
        ReadOnlySpan<InvalidationStatus> statuses = _statuses.AsSpan(0, count);
        for (int i = 0; i < statuses.Length; i++)
        {
            if (statuses[i] == InvalidationStatus.TimedOut && firstTimeout < 0)
            {
                firstTimeout = i;
            }
            else if (statuses[i] == InvalidationStatus.CompletionError && firstCompletionError < 0)
            {
                firstCompletionError = i;
            }
        }

        return new QueueRunResult(internalError,
            firstTimeout < 0 ? null : _batch[firstTimeout].SourceId,
            firstCompletionError < 0 ? null : _batch[firstCompletionError].SourceId);
    }
}

/// <summary>How one entry fetch ended.</summary>
internal enum QueueFetch : byte
{
    /// <summary>The entry was read.</summary>
    Ok = 0,

    /// <summary>The fault plan failed the fetch.</summary>
    Planned = 1,

    /// <summary>Nothing backs the address in guest memory.</summary>
    Unmapped = 2,
}

/// <summary>What a front end needs to know of one executed batch.</summary>
/// <param name="InternalError">The engine refused a descriptor (a FastInval bug; already counted and asserted).</param>
/// <param name="TimedOutSource">The source id of the first device-TLB invalidation that timed out, if any.</param>
/// <param name="CompletionErrorSource">The source id of the first device-TLB invalidation that completed with an error, if any.</param>
internal readonly record struct QueueRunResult(bool InternalError, uint? TimedOutSource, uint? CompletionErrorSource)
{
    /// <summary>Nothing failed.</summary>
    public static QueueRunResult Empty => default;
}

/// <summary>Register-width rules of the MMIO front ends.</summary>
internal static class RegisterAccess
{
    /// <summary>True for a 4- or 8-byte access, naturally aligned, inside a window of <paramref name="windowSize"/> bytes.</summary>
    public static bool IsValid(uint offset, int size, uint windowSize) =>
        (size == 4 || size == 8) && (offset & (uint)(size - 1)) == 0 && offset <= windowSize - (uint)size;

    /// <summary>A 32-bit write to the low (<paramref name="low"/>) or high half of a 64-bit register: only the bits of
    /// that half that are in <paramref name="writable"/> change.</summary>
    public static ulong Merge(ulong register, uint value, bool low, ulong writable = ulong.MaxValue)
    {
        ulong shifted = low ? value : (ulong)value << 32;
        ulong half = low ? 0xFFFF_FFFFUL : 0xFFFF_FFFF_0000_0000UL;
        ulong mask = half & writable;
        return (register & ~mask) | (shifted & mask);
    }

    /// <summary>The 32-bit half of a 64-bit register that a 4-byte read at <paramref name="offset"/> sees (bit 2 of the
    /// offset picks the high half).</summary>
    public static uint Half(ulong register, uint offset) => (uint)(register >> ((int)(offset & 4) * 8));
}

/// <summary>Bit-field accessors of the wire formats (descriptors, commands, registers).</summary>
internal static class WireBits
{
    /// <summary>Bit <paramref name="bit"/> of <paramref name="word"/>.</summary>
    public static bool Bit(ulong word, int bit) => ((word >> bit) & 1) != 0;

    /// <summary>The <paramref name="width"/>-bit field at <paramref name="shift"/>.</summary>
    public static ulong Field(ulong word, int shift, int width) => (word >> shift) & ((1UL << width) - 1);

    /// <summary>The field under <paramref name="mask"/>, shifted down by <paramref name="shift"/>.</summary>
    public static ulong Get(ulong word, ulong mask, int shift) => (word & mask) >> shift;

    /// <summary><paramref name="value"/> placed at <paramref name="shift"/> and cut to <paramref name="mask"/>.</summary>
    public static ulong Put(ulong value, ulong mask, int shift) => (value << shift) & mask;
}
