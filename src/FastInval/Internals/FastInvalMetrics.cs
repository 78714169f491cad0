using System.Diagnostics.Metrics;

namespace FastInval.Internals;

/// <summary>
/// The <c>FastInval</c> meter (<see cref="System.Diagnostics.Metrics"/>; docs/metrics.md). Every instrument is
/// observable: the engines keep plain counters that their writers (serialized by the writer lock) already own, and the
/// meter reads them only when a listener collects, so the hot paths pay nothing for the meter and allocate nothing.
/// Lookups are the exception, because they run on any thread without a lock: they are counted, with an atomic
/// increment, only while the <c>fastinval.lookups</c> instrument is observed (<see cref="MetricsGate"/>).
/// </summary>
/// <remarks>Each live engine is one unit, tagged <c>fastinval.unit</c> = <c>kind-N</c>: <c>engine</c> for an engine
/// the host made, <c>vtd</c>, <c>smmu</c> or <c>amdvi</c> for the engine a unit owns, <c>iommufd</c> for an iommufd
/// context's, with N unique in the process. A disposed engine leaves the meter.</remarks>
internal static class FastInvalMetrics
{
    /// <summary>The meter's name: what <c>dotnet-counters monitor --counters FastInval</c> and a
    /// <see cref="MeterListener"/> select.</summary>
    public const string MeterName = "FastInval";

    private static readonly Lock s_lock = new();
    private static readonly List<Registration> s_units = [];
    private static long s_nextId;

    private static readonly Meter s_meter = new(MeterName, typeof(FastInvalMetrics).Assembly.GetName().Version?.ToString());

    private static readonly string[] s_scopes = ["invalid", "iotlb", "iotlb_range", "device_tlb", "config"];
    private static readonly string[] s_caches = ["iotlb", "device_tlb", "config"];
    private static readonly string[] s_errors =
    [
        "iqe", "ite", "ice", "cerror_ill", "cerror_abt", "cerror_atc_inv_sync", "illegal_command", "command_hardware_error",
        "iotlb_inv_timeout",
    ];

    private static readonly ObservableCounter<long> s_lookups = s_meter.CreateObservableCounter("fastinval.lookups", ObserveLookups,
        "{lookup}", "Lookups by cache and result (hit, miss); counted only while this instrument is observed.");

    static FastInvalMetrics()
    {
        s_meter.CreateObservableCounter("fastinval.descriptors", ObserveDescriptors, "{descriptor}",
            "Invalidation descriptors executed, by scope (iotlb, iotlb_range, device_tlb, config; invalid: refused as malformed).");
        s_meter.CreateObservableCounter("fastinval.fills", ObserveFills, "{fill}",
            "Fills by cache and result: inserted (a new entry), replaced (same identity), stale (TryFill refused for a stale token).");
        s_meter.CreateObservableCounter("fastinval.entries.removed", ObserveRemoved, "{entry}",
            "Entries removed by cache: by invalidation, eviction or clearing.");
        s_meter.CreateObservableCounter("fastinval.evictions", ObserveEvictions, "{entry}",
            "Entries evicted (CLOCK victims) to make room for a fill, by cache.");
        s_meter.CreateObservableUpDownCounter("fastinval.entries", ObserveEntries, "{entry}", "Entries cached now, by cache.");
        s_meter.CreateObservableUpDownCounter("fastinval.queue.depth", ObserveQueueDepth, "{descriptor}",
            "Descriptors or commands the guest has posted that the unit has not consumed yet (tail minus head), per unit.");
        s_meter.CreateObservableCounter("fastinval.queue.errors", ObserveQueueErrors, "{error}",
            "Errors the units' queues reported to their guests, by architected error (iqe, ite, ice, cerror_ill, cerror_abt, " +
            "cerror_atc_inv_sync, illegal_command, command_hardware_error, iotlb_inv_timeout).");
    }

    /// <summary>True while some listener observes <c>fastinval.lookups</c>.</summary>
    public static bool LookupsEnabled => s_lookups.Enabled;

    /// <summary>Adds an engine to the meter (its constructor calls this).</summary>
    public static Registration Register(InvalidationEngine engine)
    {
        var r = new Registration(engine, Interlocked.Increment(ref s_nextId));
        lock (s_lock)
        {
            s_units.Add(r);
        }

        return r;
    }

    /// <summary>Takes a disposed engine out of the meter.</summary>
    public static void Unregister(Registration registration)
    {
        lock (s_lock)
        {
            s_units.Remove(registration);
        }
    }

    /// <summary>One engine's place in the meter: its unit tag.</summary>
    internal sealed class Registration
    {
        private readonly WeakReference<InvalidationEngine> _engine;
        private string _kind = "engine";

        public Registration(InvalidationEngine engine, long id)
        {
            _engine = new WeakReference<InvalidationEngine>(engine);
            Id = id;
            Unit = "engine-" + id;
        }

        public long Id { get; }

        /// <summary>The <c>fastinval.unit</c> tag: <c>kind-N</c>.</summary>
        public string Unit { get; private set; }

        /// <summary>What owns the engine (<c>engine</c>, <c>vtd</c>, <c>smmu</c>, <c>amdvi</c>, <c>iommufd</c>).</summary>
        public string Kind
        {
            get => _kind;
            set
            {
                _kind = value;
                Unit = value + "-" + Id;
            }
        }

        public bool TryGetEngine(out InvalidationEngine? engine) => _engine.TryGetTarget(out engine);

        private readonly long[] _queueErrors = new long[(int)QueueError.Count];
        private readonly List<WeakReference<Queues.QueueCore>> _queues = [];

        /// <summary>True once a unit's queue runs on this engine.</summary>
        public bool HasQueues
        {
            get
            {
                lock (_queues)
                {
                    return _queues.Count != 0;
                }
            }
        }

        /// <summary>Adds a unit's queue (its constructor) whose depth the meter reports.</summary>
        public void AddQueue(Queues.QueueCore queue)
        {
            lock (_queues)
            {
                _queues.Add(new WeakReference<Queues.QueueCore>(queue));
            }
        }

        /// <summary>Takes a disposed unit's queue out.</summary>
        public void RemoveQueue(Queues.QueueCore queue)
        {
            lock (_queues)
            {
                _queues.RemoveAll(w => !w.TryGetTarget(out Queues.QueueCore? q) || q == queue);
            }
        }

        /// <summary>The depth of every queue on this engine, added (a register read without the units' locks: a
        /// reading taken during a write may be one write old).</summary>
        public long QueueDepth()
        {
            long depth = 0;
            lock (_queues)
            {
                foreach (WeakReference<Queues.QueueCore> w in _queues)
                {
                    if (w.TryGetTarget(out Queues.QueueCore? q) && q.DepthSource is Func<long> source)
                    {
                        depth += source();
                    }
                }
            }

            return depth;
        }

        /// <summary>Counts an error a unit's queue reported to its guest (units sharing an engine count together; any
        /// thread).</summary>
        public void CountQueueError(QueueError error) => Interlocked.Increment(ref _queueErrors[(int)error]);

        /// <summary>Errors of one kind counted so far.</summary>
        public long QueueErrors(QueueError error) => Volatile.Read(ref _queueErrors[(int)error]);
    }

    private static List<(string Unit, InvalidationEngine Engine)> Snapshot()
    {
        var live = new List<(string, InvalidationEngine)>();
        lock (s_lock)
        {
            for (int i = s_units.Count - 1; i >= 0; i--)
            {
                if (s_units[i].TryGetEngine(out InvalidationEngine? e))
                {
                    live.Add((s_units[i].Unit, e!));
                }
                else
                {
                    s_units.RemoveAt(i); // collected without Dispose
                }
            }
        }

        live.Reverse();
        return live;
    }

    private static Caches.SlotStore StoreOf(InvalidationEngine e, int cache) => cache switch
    {
        0 => e.Iotlb.Table.Store,
        1 => e.DeviceTlb.Table.Store,
        _ => e.ConfigCache.Store,
    };

    private static Measurement<long> M(long value, string unit, string key, string tag) =>
        new(value, new KeyValuePair<string, object?>("fastinval.unit", unit), new KeyValuePair<string, object?>(key, tag));

    private static Measurement<long> M(long value, string unit, string cache, string key, string tag) =>
        new(value, new KeyValuePair<string, object?>("fastinval.unit", unit), new KeyValuePair<string, object?>("fastinval.cache", cache),
            new KeyValuePair<string, object?>(key, tag));

    private static IEnumerable<Measurement<long>> ObserveDescriptors()
    {
        var result = new List<Measurement<long>>();
        foreach ((string unit, InvalidationEngine e) in Snapshot())
        {
            for (int scope = 0; scope < s_scopes.Length; scope++)
            {
                result.Add(M(e.ExecutedCount((InvalidationScope)scope), unit, "fastinval.scope", s_scopes[scope]));
            }
        }

        return result;
    }

    private static List<Measurement<long>> PerCache(Func<Caches.SlotStore, long> read)
    {
        var result = new List<Measurement<long>>();
        foreach ((string unit, InvalidationEngine e) in Snapshot())
        {
            for (int cache = 0; cache < s_caches.Length; cache++)
            {
                result.Add(M(read(StoreOf(e, cache)), unit, "fastinval.cache", s_caches[cache]));
            }
        }

        return result;
    }

    private static IEnumerable<Measurement<long>> ObserveFills()
    {
        var result = new List<Measurement<long>>();
        foreach ((string unit, InvalidationEngine e) in Snapshot())
        {
            for (int cache = 0; cache < s_caches.Length; cache++)
            {
                Caches.SlotStore s = StoreOf(e, cache);
                result.Add(M(s.Inserted, unit, s_caches[cache], "fastinval.result", "inserted"));
                result.Add(M(s.Replaced, unit, s_caches[cache], "fastinval.result", "replaced"));
                result.Add(M(s.Stale, unit, s_caches[cache], "fastinval.result", "stale"));
            }
        }

        return result;
    }

    private static IEnumerable<Measurement<long>> ObserveLookups()
    {
        MetricsGate.LookupsObserved = true; // from now on lookups count, until no listener observes them
        var result = new List<Measurement<long>>();
        foreach ((string unit, InvalidationEngine e) in Snapshot())
        {
            for (int cache = 0; cache < s_caches.Length; cache++)
            {
                Caches.SlotStore s = StoreOf(e, cache);
                result.Add(M(s.Hits, unit, s_caches[cache], "fastinval.result", "hit"));
                result.Add(M(s.Misses, unit, s_caches[cache], "fastinval.result", "miss"));
            }
        }

        return result;
    }

    private static IEnumerable<Measurement<long>> ObserveQueueDepth()
    {
        var result = new List<Measurement<long>>();
        lock (s_lock)
        {
            foreach (Registration r in s_units)
            {
                if (r.HasQueues)
                {
                    result.Add(new Measurement<long>(r.QueueDepth(), new KeyValuePair<string, object?>("fastinval.unit", r.Unit)));
                }
            }
        }

        return result;
    }

    private static IEnumerable<Measurement<long>> ObserveQueueErrors()
    {
        var result = new List<Measurement<long>>();
        lock (s_lock)
        {
            foreach (Registration r in s_units)
            {
                for (int e = 0; e < s_errors.Length; e++)
                {
                    result.Add(M(r.QueueErrors((QueueError)e), r.Unit, "fastinval.error", s_errors[e]));
                }
            }
        }

        return result;
    }

    private static IEnumerable<Measurement<long>> ObserveRemoved() => PerCache(s => s.Removed);

    private static IEnumerable<Measurement<long>> ObserveEvictions() => PerCache(s => s.Evicted);

    private static IEnumerable<Measurement<long>> ObserveEntries() => PerCache(s => s.Count);
}

/// <summary>The architected errors a unit's queue reports, as the meter counts them.</summary>
internal enum QueueError
{
    /// <summary>VT-d invalidation queue error (FSTS.IQE).</summary>
    Iqe,

    /// <summary>VT-d invalidation time-out error (FSTS.ITE).</summary>
    Ite,

    /// <summary>VT-d invalidation completion error (FSTS.ICE).</summary>
    Ice,

    /// <summary>SMMUv3 CERROR_ILL.</summary>
    CerrorIll,

    /// <summary>SMMUv3 CERROR_ABT.</summary>
    CerrorAbt,

    /// <summary>SMMUv3 CERROR_ATC_INV_SYNC.</summary>
    CerrorAtcInvSync,

    /// <summary>AMD-Vi ILLEGAL_COMMAND_ERROR.</summary>
    IllegalCommand,

    /// <summary>AMD-Vi COMMAND_HARDWARE_ERROR.</summary>
    CommandHardwareError,

    /// <summary>AMD-Vi IOTLB_INV_TIMEOUT.</summary>
    IotlbInvTimeout,

    /// <summary>The number of kinds.</summary>
    Count,
}

/// <summary>The one flag a lookup tests for the meter (a class of its own with no static constructor, so that even
/// ahead-of-time code reads it without an initialization check).</summary>
internal static class MetricsGate
{
    /// <summary>Set when a listener first collects <c>fastinval.lookups</c>; cleared by the first lookup after the last
    /// listener left.</summary>
    public static volatile bool LookupsObserved;
}
