using System.Runtime.CompilerServices;
using FastInval.Caches;
using FastInval.Descriptors;
using FastInval.Internals;
using FastInval.Kernels;

namespace FastInval;

/// <summary>Capacities, kernel and fault plan of an <see cref="InvalidationEngine"/>. Immutable once built; may be shared.</summary>
public sealed class EngineOptions
{
    /// <summary>IOTLB capacity in entries (default 65,536).</summary>
    public int IotlbCapacity { get; init; } = 1 << 16;

    /// <summary>Device-TLB capacity in entries, all devices together (default 16,384).</summary>
    public int DeviceTlbCapacity { get; init; } = 1 << 14;

    /// <summary>Configuration-cache capacity in entries (default 4,096).</summary>
    public int ConfigCacheCapacity { get; init; } = 1 << 12;

    /// <summary>Scan kernel (default <see cref="TagScanKernels.Best"/>).</summary>
    public TagScanKernel Kernel { get; init; } = TagScanKernels.Best;

    /// <summary>Injected hardware failures (default none).</summary>
    public FaultPlan FaultPlan { get; init; } = FaultPlan.None;
}

/// <summary>Counts of a batch's outcomes; <see cref="FirstFailureIndex"/> is the index of the first descriptor whose status
/// is not <see cref="InvalidationStatus.Ok"/> (time-outs and completion errors count), or −1.</summary>
/// <param name="Ok">Descriptors executed without error.</param>
/// <param name="TimedOut">Device-TLB descriptors that timed out.</param>
/// <param name="CompletionErrors">Device-TLB descriptors that completed with an error.</param>
/// <param name="Invalid">Malformed descriptors.</param>
/// <param name="FirstFailureIndex">Index of the first non-Ok descriptor, or −1.</param>
public readonly record struct BatchResult(int Ok, int TimedOut, int CompletionErrors, int Invalid, int FirstFailureIndex)
{
    /// <summary>True when every descriptor is <see cref="InvalidationStatus.Ok"/>.</summary>
    public bool AllOk => TimedOut == 0 && CompletionErrors == 0 && Invalid == 0;
}

/// <summary>
/// The core: an IOTLB, device TLBs and configuration caches, and the batch executor that applies invalidation
/// descriptors to them. Every front end decodes into <see cref="InvalidationDescriptor"/> and calls
/// <see cref="Execute(ReadOnlySpan{InvalidationDescriptor}, Span{InvalidationStatus})"/>.
/// </summary>
/// <remarks>
/// <para><b>Semantics.</b> A batch has exactly the effect of executing its descriptors one by one, in order (removals
/// commute, and device-TLB fault decisions are taken in descriptor order). Underneath, tag flushes of one batch are
/// held back (16 at most) and those of one shape share a scan, up to eight to a scan; small ranges probe the hash index block by block instead of scanning, and a flush of the
/// whole IOTLB resets it.</para>
/// <para><b>Errors.</b> No exception for descriptor content: a malformed descriptor reports
/// <see cref="InvalidationStatus.Invalid"/> and changes nothing; a device-TLB descriptor reports the fault plan's
/// decision (a time-out leaves the device's entries in place; a completion error removes them). Only host errors
/// throw (an outcome span shorter than the batch).</para>
/// <para><b>Threading.</b> Every member may be called from any thread. <c>Execute</c> and the caches' fills, clears and
/// snapshots are writers, serialized by one writer lock inside the engine (the caches share it); lookups on the caches
/// never take it and may run at any time. Once Execute returns, no lookup that starts afterwards returns an entry it
/// removed, and no <c>TryFill</c> whose token predates it inserts an entry it may cover.</para>
/// <para><b>Lifetime.</b> <see cref="Dispose"/> may race calls on other threads: it waits for writers and lookups inside
/// the caches to leave, then frees; afterwards <c>Execute</c> and every member of the caches throw
/// <see cref="ObjectDisposedException"/> (the engine's configuration properties stay readable). Execute also throws
/// when any one of its caches was disposed on its own.</para>
/// <para><b>Allocation.</b> Execute, fills and lookups allocate nothing.</para>
/// </remarks>
public sealed partial class InvalidationEngine : IDisposable
{
    /// <summary>A probe is taken to cost about this many slots of a vector scan.</summary>
    private const ulong ProbeToScanRatio = 32;

    private ulong _deviceTlbOrdinal;

    /// <summary>The one writer lock of the engine and its three caches: Execute, fills and clears take it; lookups never do.</summary>
    private readonly WriterLock _writerLock = new();
    private int _disposed;

    /// <summary>Creates an engine with its caches.</summary>
    public InvalidationEngine(EngineOptions? options = null)
    {
        options ??= new EngineOptions();
        Iotlb = new TranslationCache(options.IotlbCapacity, _writerLock);
        DeviceTlb = new DeviceTlb(options.DeviceTlbCapacity, _writerLock);
        ConfigCache = new ConfigurationCache(options.ConfigCacheCapacity, _writerLock);
        Kernel = options.Kernel;
        FaultPlan = options.FaultPlan ?? FaultPlan.None;
        Metrics = FastInvalMetrics.Register(this);
    }

    // Metrics: descriptors executed, by scope (index = InvalidationScope; 0 counts invalid descriptors). Written under the
    // writer lock; read by the meter's collection.
    private readonly long[] _executed = new long[8];

    /// <summary>Descriptors executed with <paramref name="scope"/> (<see cref="InvalidationScope.None"/>: invalid ones).</summary>
    internal long ExecutedCount(InvalidationScope scope) => Volatile.Read(ref _executed[(byte)scope & 7]);

    /// <summary>This engine's registration with the <c>FastInval</c> meter (its unit tag).</summary>
    internal FastInvalMetrics.Registration Metrics { get; }

    /// <summary>The IOTLB (leaf and paging-structure entries).</summary>
    public TranslationCache Iotlb { get; }

    /// <summary>Device TLBs of every device behind this IOMMU.</summary>
    public DeviceTlb DeviceTlb { get; }

    /// <summary>Context / PASID / STE / CD / interrupt-entry caches.</summary>
    public ConfigurationCache ConfigCache { get; }

    /// <summary>The scan kernel in use.</summary>
    public TagScanKernel Kernel { get; }

    /// <summary>The fault plan consulted for device-TLB invalidations (may be replaced between batches; null means none).</summary>
    public FaultPlan FaultPlan
    {
        get => _faultPlan;
        set => _faultPlan = value ?? FaultPlan.None;
    }

    private FaultPlan _faultPlan = FaultPlan.None;

    /// <summary>Device-TLB descriptors executed so far: the ordinal the fault plan sees next.</summary>
    public ulong DeviceTlbInvalidations => _deviceTlbOrdinal;

    /// <summary>Executes one descriptor under the writer lock (no notification: the public overloads notify).</summary>
    private InvalidationStatus ExecuteCore(in InvalidationDescriptor descriptor)
    {
        using (EnterWrite())
        {
            return ExecuteOne(in descriptor);
        }
    }

    /// <summary>Takes the writer lock; throws <see cref="ObjectDisposedException"/> if the engine or one of its caches is
    /// disposed (checked under the lock, so no cache is freed while the call runs).</summary>
    private WriterLock.Scope EnterWrite()
    {
        WriterLock.Scope scope = _writerLock.EnterScope();
        if (_disposed != 0 || Iotlb.Lifetime.IsDisposed || DeviceTlb.Lifetime.IsDisposed || ConfigCache.Lifetime.IsDisposed)
        {
            scope.Dispose();
            ThrowHelper.ObjectDisposed(nameof(InvalidationEngine));
        }

        return scope;
    }

    [SkipLocalsInit]
    private InvalidationStatus ExecuteOne(in InvalidationDescriptor descriptor)
    {
        if (!DescriptorPredicates.IsValid(in descriptor))
        {
            _executed[0]++; // metrics: invalid descriptors
            return InvalidationStatus.Invalid;
        }

        NoteInvalidation(in descriptor);
        switch (descriptor.Scope)
        {
            case InvalidationScope.Iotlb:
                if (IsWholeIotlb(in descriptor))
                {
                    Iotlb.Table.Clear();
                }
                else
                {
                    ScanIotlbTags(in descriptor);
                }

                return InvalidationStatus.Ok;
            case InvalidationScope.IotlbRange:
                ExecuteIotlbRange(in descriptor);
                return InvalidationStatus.Ok;
            case InvalidationScope.DeviceTlb:
                return ExecuteDeviceTlb(in descriptor);
            default:
                ExecuteConfig(in descriptor);
                return InvalidationStatus.Ok;
        }
    }

    /// <summary>Executes a batch with the effect of executing it one descriptor at a time, writing each descriptor's
    /// outcome, under the writer lock (no notification: the public overloads notify; the caller checked the spans' lengths).</summary>
    private BatchResult ExecuteBatchCore(ReadOnlySpan<InvalidationDescriptor> batch, Span<InvalidationStatus> statuses)
    {
        using (EnterWrite())
        {
            return ExecuteBatchLocked(batch, statuses);
        }
    }

    [SkipLocalsInit] // the hold-back buffer is written before it is read
    private BatchResult ExecuteBatchLocked(ReadOnlySpan<InvalidationDescriptor> batch, Span<InvalidationStatus> statuses)
    {
        int ok = 0, timedOut = 0, completionErrors = 0, invalid = 0, firstFailure = -1;
        Span<PendingTagFlush> pending = stackalloc PendingTagFlush[PendingCapacity];
        int pendingCount = 0;
        for (int i = 0; i < batch.Length; i++)
        {
            ref readonly InvalidationDescriptor d = ref batch[i];
            InvalidationStatus status;
            if (d.Scope == InvalidationScope.Iotlb && DescriptorPredicates.IsValid(in d))
            {
                status = InvalidationStatus.Ok;
                NoteInvalidation(in d);
                if (IsWholeIotlb(in d))
                {
                    Iotlb.Table.Clear();
                    pendingCount = 0; // nothing left for them to remove
                }
                else
                {
                    RangeOp op = DescriptorPredicates.Iotlb(in d, withRange: false);
                    if (DescriptorPredicates.TryReduce(in op, out TagOp tagOp))
                    {
                        pending[pendingCount++] = new PendingTagFlush(tagOp.Mask, tagOp.Value, tagOp.Any);
                        if (pendingCount == pending.Length)
                        {
                            FlushPending(pending, ref pendingCount);
                        }
                    }
                    else
                    {
                        Iotlb.Table.RemoveByScan(in op, Kernel);
                    }
                }
            }
            else
            {
                status = ExecuteOne(in d);
            }

            statuses[i] = status;
            switch (status)
            {
                case InvalidationStatus.Ok: ok++; break;
                case InvalidationStatus.TimedOut: timedOut++; break;
                case InvalidationStatus.CompletionError: completionErrors++; break;
                default: invalid++; break;
            }

            if (status != InvalidationStatus.Ok && firstFailure < 0)
            {
                firstFailure = i;
            }
        }

        FlushPending(pending, ref pendingCount);
        return new BatchResult(ok, timedOut, completionErrors, invalid, firstFailure);
    }

    /// <summary>Tag flushes a batch holds back before it scans; they are removals from one cache, so their order
    /// among themselves and against the batch's other descriptors does not change the result.</summary>
    private const int PendingCapacity = 16;

    /// <summary>A held-back tag flush: the scalar words of its <see cref="TagOp"/>.</summary>
    private readonly record struct PendingTagFlush(ulong Mask, ulong Value, ulong Any);

    /// <summary>
    /// Runs the held-back tag flushes: flushes of one shape (same mask and any-bits) share a scan, up to
    /// <see cref="TagOpAnyOf.Capacity"/> values at a time; a shape with one flush runs the plain operator.
    /// </summary>
    [SkipLocalsInit]
    private void FlushPending(Span<PendingTagFlush> pending, ref int count)
    {
        Span<ulong> values = stackalloc ulong[TagOpAnyOf.Capacity];
        while (count > 0)
        {
            ulong mask = pending[0].Mask, any = pending[0].Any;
            int taken = 0, kept = 0;
            for (int k = 0; k < count; k++)
            {
                PendingTagFlush p = pending[k];
                if (p.Mask == mask && p.Any == any && taken < values.Length)
                {
                    values[taken++] = p.Value;
                }
                else
                {
                    pending[kept++] = p;
                }
            }

            count = kept;
            ScanPending(mask, any, values[..taken]);
        }
    }

    /// <summary>One coalesced scan, out of line so that <see cref="Execute(ReadOnlySpan{InvalidationDescriptor}, Span{InvalidationStatus})"/>'s
    /// frame does not hold the operators' broadcast vectors.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ScanPending(ulong mask, ulong any, ReadOnlySpan<ulong> values)
    {
        if (values.Length == 1)
        {
            var op = new TagOp(mask, values[0], any);
            Iotlb.Table.RemoveByScan(in op, Kernel);
        }
        else
        {
            var op = new TagOpAnyOf(mask, any, values);
            Iotlb.Table.RemoveByScan(in op, Kernel);
        }
    }

    /// <summary>A tag-only IOTLB flush, out of line: its operators hold broadcast vectors, which this method's frame
    /// zero-initializes, and the other scopes of <see cref="Execute(in InvalidationDescriptor)"/> should not pay for that.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ScanIotlbTags(in InvalidationDescriptor d)
    {
        RangeOp op = DescriptorPredicates.Iotlb(in d, withRange: false);
        if (DescriptorPredicates.TryReduce(in op, out TagOp tagOp))
        {
            Iotlb.Table.RemoveByScan(in tagOp, Kernel);
        }
        else
        {
            Iotlb.Table.RemoveByScan(in op, Kernel);
        }
    }

    /// <summary>
    /// Advances the invalidation sequence of what a valid descriptor may cover, before anything is removed, so that a
    /// <c>TryFill</c> whose token predates this call is refused (see <see cref="InvalidationToken"/>). Keys: the domain
    /// for the IOTLB, the source id for device TLBs and configuration caches; without a key, the whole cache.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void NoteInvalidation(in InvalidationDescriptor d)
    {
        _executed[(byte)d.Scope & 7]++; // metrics: descriptors executed by scope (1-4)
        switch (d.Scope)
        {
            case InvalidationScope.Iotlb:
                if ((d.Flags & InvalidationFlags.MatchDomain) != 0)
                {
                    Iotlb.Table.Sequence.BumpKey(d.DomainId);
                }
                else
                {
                    Iotlb.Table.Sequence.BumpAll();
                }

                break;
            case InvalidationScope.IotlbRange:
                if ((d.Flags & InvalidationFlags.MatchDomain) != 0)
                {
                    Iotlb.Table.Sequence.BumpRange(d.DomainId, d.First, d.Last);
                }
                else
                {
                    Iotlb.Table.Sequence.BumpAll();
                }

                break;
            case InvalidationScope.DeviceTlb:
                if ((d.Flags & InvalidationFlags.MatchSource) == 0)
                {
                    DeviceTlb.Table.Sequence.BumpAll();
                }
                else if (DescriptorPredicates.IsNoPasidDeviceTlb(in d))
                {
                    DeviceTlb.Table.Sequence.BumpKey(d.SourceId); // also removes PASID-tagged entries at any address
                }
                else
                {
                    DeviceTlb.Table.Sequence.BumpRange(d.SourceId, d.First, d.Last);
                }

                break;
            default:
                if ((d.Flags & InvalidationFlags.MatchSource) != 0 && d.Last - d.First < InvalidationSequence.MaxRegionBumps &&
                    d.Last <= uint.MaxValue)
                {
                    for (ulong sid = d.First; ; sid++)
                    {
                        ConfigCache.Sequence.BumpKey((uint)sid);
                        if (sid == d.Last)
                        {
                            break;
                        }
                    }
                }
                else
                {
                    ConfigCache.Sequence.BumpAll();
                }

                break;
        }
    }

    private static bool IsWholeIotlb(in InvalidationDescriptor d) =>
        d.Stages == StageMask.All && (d.Flags & (InvalidationFlags.MatchDomain | InvalidationFlags.MatchAddressSpace | InvalidationFlags.LeafOnly)) == 0;

    [SkipLocalsInit] // every local is assigned before use: no frame clear per descriptor
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // into ExecuteOne, as tiered PGO does; NativeAOT would not
    private void ExecuteIotlbRange(in InvalidationDescriptor d)
    {
        RangeMatch match = DescriptorPredicates.IotlbMatch(in d, withRange: true);
        TranslationTable table = Iotlb.Table;
        if ((d.Flags & InvalidationFlags.MatchDomain) != 0)
        {
            bool matchAs = (d.Flags & InvalidationFlags.MatchAddressSpace) != 0;
            bool leafOnly = (d.Flags & InvalidationFlags.LeafOnly) != 0;
            (ulong hintLeaves, ulong hintTables) = DescriptorPredicates.HintedSizes(d.GranuleHint, d.LevelHint);
            ulong tablesAllowed = leafOnly ? 0 : hintTables;
            ulong nonGlobal = (table.SizeMask(false, false) & hintLeaves) | (table.SizeMask(true, false) & tablesAllowed);
            ulong global = !matchAs || (d.Flags & InvalidationFlags.IncludeGlobal) != 0
                ? (table.SizeMask(false, true) & hintLeaves) | (table.SizeMask(true, true) & tablesAllowed)
                : 0;

            // Non-global entries can be probed when their address-space key is known: the matched id, or "none" for a
            // stage-2-only flush (stage-2 entries never carry an address space).
            bool canProbe = matchAs || d.Stages == StageMask.Stage2 || nonGlobal == 0;
            if (canProbe)
            {
                uint key = matchAs ? (uint)TranslationTag.EncodeAddressSpace(d.AddressSpaceId) : (uint)TranslationTag.AddressSpaceNone;
                ulong cost = SaturatingAdd(TranslationTable.ProbeCost(nonGlobal, d.First, d.Last), TranslationTable.ProbeCost(global, d.First, d.Last));
                if (ShouldProbe(cost, table.Store.ScanEnd))
                {
                    if (nonGlobal != 0)
                    {
                        table.RemoveByProbe(in match, d.DomainId, key, nonGlobal, d.First, d.Last);
                    }

                    if (global != 0) // usually none: no call at all
                    {
                        table.RemoveByProbe(in match, d.DomainId, TranslationTag.GlobalKey, global, d.First, d.Last);
                    }
                    return;
                }
            }
        }

        ScanWith(table, in match);
    }

    /// <summary>The scan path: widens the predicate to its vector form here, out of line, so that the probe path's frame
    /// never holds (and zero-initializes) the broadcast constants.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ScanWith(TranslationTable table, in RangeMatch match)
    {
        var op = new RangeOp(in match);
        table.RemoveByScan(in op, Kernel);
    }

    private InvalidationStatus ExecuteDeviceTlb(in InvalidationDescriptor d)
    {
        DeviceTlbFault fault = FaultPlan.DecideDeviceTlb(_deviceTlbOrdinal++, d.SourceId);
        if (fault == DeviceTlbFault.Timeout)
        {
            return InvalidationStatus.TimedOut;
        }

        RemoveDeviceTlb(in d);
        return fault == DeviceTlbFault.CompletionError ? InvalidationStatus.CompletionError : InvalidationStatus.Ok;
    }

    /// <summary>Takes the next device-TLB ordinal for an invalidation that a device-TLB sink answers instead of the fault
    /// plan (the sink's request carries it; the count goes on as if the engine had executed it).</summary>
    internal ulong TakeDeviceTlbOrdinal()
    {
        using (EnterWrite())
        {
            return _deviceTlbOrdinal++;
        }
    }

    /// <summary>Applies a device's answer to a device-TLB invalidation that a sink carried: unless it timed out, the
    /// entries it covers are removed (a completion error removes them too, as in <see cref="FaultPlan"/>'s model) and
    /// notifiers receive it as a one-record batch. Returns the status the descriptor would have had from the engine.</summary>
    internal InvalidationStatus ApplyDeviceTlbAnswer(in InvalidationDescriptor d, DeviceTlbFault outcome, InvalidationSource source, ulong index)
    {
        FastAssert.True(d.Scope == InvalidationScope.DeviceTlb && DescriptorPredicates.IsValid(in d), "a sink carries valid device-TLB descriptors only");
        InvalidationNotifiers notifiers = Notifiers;
        if (notifiers.HasSubscribers && notifiers.IsDeliveringOnThisThread)
        {
            InvalidationNotifiers.ThrowReentrant();
        }

        InvalidationStatus status = outcome switch
        {
            DeviceTlbFault.Timeout => InvalidationStatus.TimedOut,
            DeviceTlbFault.CompletionError => InvalidationStatus.CompletionError,
            _ => InvalidationStatus.Ok,
        };
        using (EnterWrite())
        {
            NoteInvalidation(in d);
            if (status != InvalidationStatus.TimedOut)
            {
                RemoveDeviceTlb(in d);
            }
        }

        if (notifiers.HasSubscribers)
        {
            NotifyOne(in d, status, source, index);
        }

        return status;
    }

    private void RemoveDeviceTlb(in InvalidationDescriptor d)
    {
        RangeMatch match = DescriptorPredicates.DeviceTlbMatch(in d);
        TranslationTable table = DeviceTlb.Table;
        bool probed = false;
        if ((d.Flags & InvalidationFlags.MatchSource) != 0)
        {
            ulong sizes = table.SizeMask(false, false) | table.SizeMask(false, true);
            if (ShouldProbe(TranslationTable.ProbeCost(sizes, d.First, d.Last), table.Store.ScanEnd))
            {
                table.RemoveByProbe(in match, d.SourceId, 0, sizes, d.First, d.Last);
                probed = true;
            }
        }

        if (!probed)
        {
            ScanWith(table, in match);
        }

        if (DescriptorPredicates.IsNoPasidDeviceTlb(in d) && table.PasidTaggedCount != 0)
        {
            ScanPasidTagged(table, in d);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ScanPasidTagged(TranslationTable table, in InvalidationDescriptor d)
    {
        RangeOp tagged = DescriptorPredicates.DeviceTlbPasidTagged(in d);
        table.RemoveByScan(in tagged, Kernel);
    }

    private void ExecuteConfig(in InvalidationDescriptor d)
    {
        RangeOp op = DescriptorPredicates.Config(in d);
        ConfigurationCache cache = ConfigCache;
        if ((d.Flags & InvalidationFlags.MatchSource) != 0 && d.Last - d.First < 16 && d.Last <= uint.MaxValue)
        {
            // Probe when every (kind, source id) key is fully known.
            bool matchAs = (d.Flags & InvalidationFlags.MatchAddressSpace) != 0;
            bool probeable = true;
            for (int bit = 0; bit < 5; bit++)
            {
                var kind = (ConfigKinds)(1 << bit);
                if ((d.ConfigKinds & kind) != 0 && ConfigurationCache.HasAddressSpace(kind) && !matchAs)
                {
                    probeable = false;
                }
            }

            ulong keys = (d.Last - d.First + 1) * (ulong)System.Numerics.BitOperations.PopCount((uint)d.ConfigKinds);
            if (probeable && ShouldProbe(keys, cache.Store.ScanEnd))
            {
                for (ulong sid = d.First; ; sid++)
                {
                    for (int bit = 0; bit < 5; bit++)
                    {
                        var kind = (ConfigKinds)(1 << bit);
                        if ((d.ConfigKinds & kind) != 0)
                        {
                            uint asId = ConfigurationCache.HasAddressSpace(kind) ? d.AddressSpaceId : AddressSpace.None;
                            cache.RemoveByProbe(in op, kind, (uint)sid, asId);
                        }
                    }

                    if (sid == d.Last)
                    {
                        break;
                    }
                }

                return;
            }
        }

        if ((d.Flags & InvalidationFlags.MatchSource) == 0 && DescriptorPredicates.TryReduce(in op, out TagOp tagOp))
        {
            cache.RemoveByScan(in tagOp, Kernel);
        }
        else
        {
            cache.RemoveByScan(in op, Kernel);
        }
    }

    /// <summary>Probing the hash index is chosen when it costs less than scanning the store.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool ShouldProbe(ulong probes, nuint scanEnd) => probes <= (ulong)scanEnd / ProbeToScanRatio;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SaturatingAdd(ulong a, ulong b) => a > ulong.MaxValue - b ? ulong.MaxValue : a + b;

    /// <summary>Frees the caches' native storage. Safe while lookups run on other threads (they finish first; later ones
    /// throw <see cref="ObjectDisposedException"/>). Afterwards <c>Execute</c> and every member of the caches throw
    /// <see cref="ObjectDisposedException"/>. Idempotent.</summary>
    public void Dispose()
    {
        Volatile.Write(ref _disposed, 1);
        FastInvalMetrics.Unregister(Metrics);
        Iotlb.Dispose();
        DeviceTlb.Dispose();
        ConfigCache.Dispose();
    }
}
