using System.Diagnostics.Metrics;
using FastInval.AmdVi;
using FastInval.Internals;
using FastInval.Smmu;
using FastInval.Tests.AmdVi;
using FastInval.Tests.Smmu;
using FastInval.Tests.Vtd;
using FastInval.Vtd;

namespace FastInval.Tests.Diagnostics;

/// <summary>
/// The <c>FastInval</c> meter: a <see cref="MeterListener"/> sees every counter of one engine move by exactly what the
/// engine did (descriptors by scope, fills by result, evictions, removals, entries, lookups hit and miss), each unit
/// under its own tag; lookups are not counted while nobody observes them; a disposed engine leaves the meter; and with
/// a listener attached the hot paths still allocate nothing. Not parallel with other tests: a listener observes every
/// engine in the process, and the lookup gate is process-wide.
/// </summary>
[Collection(Name)]
public sealed class MetricsTests
{
    public const string Name = "FastInval meter";

    /// <summary>Collects every FastInval instrument once; returns value by (instrument, tags other than the unit) for
    /// <paramref name="unit"/>.</summary>
    private static Dictionary<string, long> Collect(string unit)
    {
        var values = new Dictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == FastInvalMetrics.MeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? u = null;
            var rest = new List<string>();
            foreach (KeyValuePair<string, object?> t in tags)
            {
                if (t.Key == "fastinval.unit")
                {
                    u = (string?)t.Value;
                }
                else
                {
                    rest.Add($"{t.Key}={t.Value}");
                }
            }

            if (u == unit)
            {
                values[instrument.Name + "{" + string.Join(",", rest) + "}"] = value;
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return values;
    }

    /// <summary>A listener that stays attached to every FastInval instrument and has collected once (so lookups count
    /// while it lives).</summary>
    private static MeterListener Observe()
    {
        var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == FastInvalMetrics.MeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) => { });
        listener.Start();
        listener.RecordObservableInstruments();
        return listener;
    }

    private static TranslationEntry Page(ulong page, ushort domain = 1) =>
        TranslationEntry.Leaf(TranslationStage.Stage1, domain, 1, page << 12, 0x1_0000_0000UL + (page << 12));

    [Fact]
    public void EngineCounters_MoveByWhatTheEngineDid()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 64, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 });
        string unit = engine.Metrics.Unit;
        Assert.StartsWith("engine-", unit);
        Dictionary<string, long> before = Collect(unit);
        Assert.Equal(0, before["fastinval.entries{fastinval.cache=iotlb}"]);

        for (ulong p = 0; p < 80; p++)
        {
            engine.Iotlb.Fill(Page(p)); // 64 fit: 16 evictions
        }

        engine.Iotlb.Fill(Page(79)); // same identity: replaced
        engine.DeviceTlb.Fill(new DeviceTlbEntry(7, AddressSpace.None, 0x5000, 0x9000));
        InvalidationToken token = engine.Iotlb.GetInvalidationToken(2, 0x1000);
        engine.Execute(InvalidationDescriptor.IotlbRange(2, 1, 0x1000, 0x1FFF)); // domain 2: makes the token stale
        Assert.False(engine.Iotlb.TryFill(Page(1, domain: 2), in token));

        var batch = new[]
        {
            InvalidationDescriptor.IotlbRange(1, 1, 79UL << 12, (79UL << 12) + 0xFFF), // removes page 79
            InvalidationDescriptor.DeviceTlb(7, AddressSpace.None, 0x5000, 0x5FFF),   // removes the device entry
            default,                                                                  // invalid
        };
        engine.Execute(batch, new InvalidationStatus[3]);

        for (int i = 0; i < 3; i++)
        {
            Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 70UL << 12, out _)); // hits (page 70 survived)
        }

        using MeterListener observer = Observe(); // observed from here: lookups count
        for (int i = 0; i < 5; i++)
        {
            Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 70UL << 12, out _));
        }

        Assert.False(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 0, out _)); // page 0 was evicted
        Assert.False(engine.DeviceTlb.TryLookup(7, AddressSpace.None, 0x5000, out _));

        Dictionary<string, long> v = Collect(unit);
        Assert.Equal(80, v["fastinval.fills{fastinval.cache=iotlb,fastinval.result=inserted}"]);
        Assert.Equal(1, v["fastinval.fills{fastinval.cache=iotlb,fastinval.result=replaced}"]);
        Assert.Equal(1, v["fastinval.fills{fastinval.cache=iotlb,fastinval.result=stale}"]);
        Assert.Equal(1, v["fastinval.fills{fastinval.cache=device_tlb,fastinval.result=inserted}"]);
        Assert.Equal(16, v["fastinval.evictions{fastinval.cache=iotlb}"]);
        Assert.Equal(17, v["fastinval.entries.removed{fastinval.cache=iotlb}"]);
        Assert.Equal(1, v["fastinval.entries.removed{fastinval.cache=device_tlb}"]);
        Assert.Equal(63, v["fastinval.entries{fastinval.cache=iotlb}"]);
        Assert.Equal(0, v["fastinval.entries{fastinval.cache=device_tlb}"]);
        Assert.Equal(2, v["fastinval.descriptors{fastinval.scope=iotlb_range}"]);
        Assert.Equal(1, v["fastinval.descriptors{fastinval.scope=device_tlb}"]);
        Assert.Equal(1, v["fastinval.descriptors{fastinval.scope=invalid}"]);
        Assert.Equal(0, v["fastinval.descriptors{fastinval.scope=config}"]);
        Assert.Equal(5, v["fastinval.lookups{fastinval.cache=iotlb,fastinval.result=hit}"]); // not the 3 before observation
        Assert.Equal(1, v["fastinval.lookups{fastinval.cache=iotlb,fastinval.result=miss}"]);
        Assert.Equal(1, v["fastinval.lookups{fastinval.cache=device_tlb,fastinval.result=miss}"]);
    }

    [Fact]
    public void Lookups_NotCountedWhileNobodyObserves()
    {
        using var engine = new InvalidationEngine();
        engine.Iotlb.Fill(Page(3));
        Collect(engine.Metrics.Unit); // observed once, then the listener is gone
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 3UL << 12, out _)); // notices: gate off
        Assert.False(MetricsGate.LookupsObserved);
        long hits = engine.Iotlb.Table.Store.Hits;
        for (int i = 0; i < 100; i++)
        {
            Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 3UL << 12, out _));
        }

        Assert.Equal(hits, engine.Iotlb.Table.Store.Hits);
    }

    [Fact]
    public void Units_AreTaggedByKind_AndADisposedEngineLeavesTheMeter()
    {
        var vtd = new VtdIommu(new GuestMemory());
        var smmu = new SmmuV3(new GuestMemory());
        var amdVi = new AmdViIommu(new GuestMemory());
        string vtdUnit = vtd.Engine.Metrics.Unit, smmuUnit = smmu.Engine.Metrics.Unit, amdViUnit = amdVi.Engine.Metrics.Unit;
        Assert.StartsWith("vtd-", vtdUnit);
        Assert.StartsWith("smmu-", smmuUnit);
        Assert.StartsWith("amdvi-", amdViUnit);
        Assert.NotEmpty(Collect(vtdUnit));
        Assert.NotEmpty(Collect(smmuUnit));
        vtd.Dispose();
        smmu.Dispose();
        amdVi.Dispose();
        Assert.Empty(Collect(vtdUnit));
        Assert.Empty(Collect(smmuUnit));
        Assert.Empty(Collect(amdViUnit));
    }

    [Fact]
    public void QueueErrorsAndDepth_CountEachArchitectedErrorOfEachUnit_DepthIsTailMinusHead()
    {
        using var vtd = new VtdRig();
        vtd.Enable();
        vtd.Submit(Dsc.Iotlb(2, 1).With(0, 40), Dsc.Iotlb(2, 1), Dsc.Iotlb(2, 1)); // a reserved bit: IQE, IQH stays on it
        Dictionary<string, long> v = Collect(vtd.Engine.Metrics.Unit);
        Assert.Equal(1, v["fastinval.queue.errors{fastinval.error=iqe}"]);
        Assert.Equal(3, v["fastinval.queue.depth{}"]); // the bad descriptor and the two behind it

        using var smmu = new SmmuRig();
        smmu.Submit(new SmmuCommand(0x7F, 0), Cmd.Sync()); // unknown opcode: CERROR_ILL
        Dictionary<string, long> s = Collect(smmu.Engine.Metrics.Unit);
        Assert.Equal(1, s["fastinval.queue.errors{fastinval.error=cerror_ill}"]);
        Assert.Equal(0, s["fastinval.queue.errors{fastinval.error=iqe}"]);
        Assert.Equal(2, s["fastinval.queue.depth{}"]); // CONS on the bad command, PROD past the CMD_SYNC

        using var amdVi = new AmdViRig(new AmdViOptions { GuestTranslation = false });
        amdVi.Submit(AmdViCommand.InvalidateIommuPages(1, 0x5000, pasid: 3)); // guest PASID without GT: ILLEGAL_COMMAND_ERROR
        Dictionary<string, long> a = Collect(amdVi.Engine.Metrics.Unit);
        Assert.Equal(1, a["fastinval.queue.errors{fastinval.error=illegal_command}"]);
        Assert.Equal(0, a["fastinval.queue.errors{fastinval.error=cerror_ill}"]);
        Assert.Equal(1, a["fastinval.queue.depth{}"]); // the head stops on the illegal command

        using var engine = new InvalidationEngine();
        Assert.False(Collect(engine.Metrics.Unit).ContainsKey("fastinval.queue.depth{}")); // a bare engine has no queue
    }

    [Fact]
    public void WithAListener_LookupsFillsAndExecuteAllocateNothing()
    {
        using var engine = new InvalidationEngine();
        using MeterListener listener = Observe(); // lookups counted from here
        Assert.True(MetricsGate.LookupsObserved);
        TranslationEntry e = Page(9);
        var batch = new[] { InvalidationDescriptor.IotlbRange(1, 1, 9UL << 12, (9UL << 12) + 0xFFF) };
        var statuses = new InvalidationStatus[1];
        long before = engine.Iotlb.Table.Store.Hits;
        long bytes = AllocationMeter.Measure(() =>
        {
            for (int i = 0; i < 1000; i++)
            {
                engine.Iotlb.Fill(in e);
                engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 9UL << 12, out _);
                engine.Execute(batch, statuses);
            }
        });
        Assert.Equal(0, bytes);
        Assert.True(engine.Iotlb.Table.Store.Hits - before >= 1000); // the lookups were counted
    }
}

[CollectionDefinition(MetricsTests.Name, DisableParallelization = true)]
public sealed class MetricsCollection;
