using System.Buffers.Binary;
using System.Collections.Immutable;
using FastInval.AmdVi;
using FastInval.Reference.AmdVi;
using FastInval.Reference.Scenarios;
using FastInval.Tests.DeviceTlbSinks;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.Tests.AmdVi;

/// <summary>
/// Migration of an <see cref="AmdViIommu"/>: random scenarios (the differential generator's command streams, register
/// writes, restarts, event-log draining and fills) run once without interruption, and once with
/// <see cref="AmdViIommu.SaveState"/> at a random step, the source disposed, a fresh unit (fresh engine) over the same
/// guest memory restored from the image, the host re-filling the caches with what the source had cached, and the rest of
/// the steps run on it. Registers, interrupts (with the Status and head they were signalled at), guest memory, the fetch
/// ordinal and the caches must be the same after every later step.
/// </summary>
/// <remarks>Device-TLB fault decisions that depend on the engine's device-TLB ordinal are taken out of the generated
/// plans: that ordinal belongs to the engine, which a migration replaces. Per-device time-outs and every fetch-error rule
/// (the fetch ordinal is in the image) stay.</remarks>
[Collection(AmdViPropertyCollection.Name)]
public class AmdViMigrationProperties
{
    private const int Cases = 10_000;

    [Property(MaxTest = Cases)]
    public Property SaveRestoreAtARandomStep_ContinuesExactlyAsAnUninterruptedRun() =>
        Prop.ForAll(AmdViGenerators.Scenarios(), Arb.From(Gen.Choose(0, 1000)), (s, cutSeed) =>
        {
            AmdViScenario scenario = s with { Faults = WithoutEngineOrdinals(s.Faults) };
            int cut = cutSeed % (scenario.Steps.Length + 1);
            string? why;
            try
            {
                why = Run(scenario, cut);
            }
            catch (Exception ex)
            {
                why = "exception: " + ex;
            }

            return (why is null).Label(why ?? "same").Classify(cut == 0, "saved before the first step")
                .Classify(cut == scenario.Steps.Length, "saved after the last step");
        });

    private static QueueFaults WithoutEngineOrdinals(QueueFaults f) =>
        f with { TimeoutPerMillion = 0, CompletionErrorPerMillion = 0, TimeoutOrdinals = [], CompletionErrorOrdinals = [] };

    private static readonly uint[] Offsets =
    [
        DeviceTableBase, CommandBufferBase, EventLogBase, Control, ExclusionBase, ExclusionLimit, ExtendedFeatures, 0x38,
        CommandBufferHead, CommandBufferTail, EventLogHead, EventLogTail, Status, 0x2028,
    ];

    private sealed class Guest
    {
        public readonly byte[] Buffer = new byte[8192];
        public readonly byte[] Events = new byte[4096];
        public readonly byte[] Store = new byte[4096];
        public readonly GuestMemory Memory = new();
        public readonly List<(ulong Status, ulong Head)> Interrupts = [];

        public Guest()
        {
            Memory.Map(AmdViDifferential.BufferRegion, Buffer);
            Memory.Map(AmdViDifferential.EventRegion, Events);
            Memory.Map(AmdViDifferential.StoreRegion, Store);
        }

        public AmdViIommu NewUnit(AmdViScenario s)
        {
            AmdViOptions preset = AmdViScenario.Options(s.Preset);
            AmdViIommu? unit = null;
            unit = new AmdViIommu(Memory, new AmdViOptions
            {
                GuestTranslation = preset.GuestTranslation,
                DeviceTlb = preset.DeviceTlb,
                InvalidateAll = preset.InvalidateAll,
                FaultPlan = s.Faults.Build(),
                Engine = new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
                Interrupt = () => Interrupts.Add((unit!.ReadRegister(Status, 8), unit.ReadRegister(CommandBufferHead, 8))),
            });
            return unit;
        }
    }

    /// <summary>Null when the migrated run matches the uninterrupted one after every step from the cut on.</summary>
    internal static string? Run(AmdViScenario s, int cut)
    {
        var straight = new Guest();
        using AmdViIommu a = straight.NewUnit(s);
        SetUp(a, s);

        var migrated = new Guest();
        AmdViIommu b = migrated.NewUnit(s);
        SetUp(b, s);
        for (int i = 0; i < cut; i++)
        {
            Apply(a, straight, s.Steps[i]);
            Apply(b, migrated, s.Steps[i]);
        }

        Span<byte> image = stackalloc byte[AmdViIommu.StateSize];
        if (b.SaveState(image) != AmdViIommu.StateSize)
        {
            return "SaveState did not report the image size";
        }

        TranslationEntry[] iotlb = b.Engine.Iotlb.ToArray();
        DeviceTlbEntry[] deviceTlb = b.Engine.DeviceTlb.ToArray();
        ConfigEntry[] config = b.Engine.ConfigCache.ToArray();
        b.Dispose();

        using AmdViIommu c = migrated.NewUnit(s);
        c.RestoreState(image);
        foreach (TranslationEntry e in iotlb)
        {
            c.Engine.Iotlb.Fill(in e);
        }

        foreach (DeviceTlbEntry e in deviceTlb)
        {
            c.Engine.DeviceTlb.Fill(in e);
        }

        foreach (ConfigEntry e in config)
        {
            c.Engine.ConfigCache.Fill(in e);
        }

        string? why = Compare(a, straight, c, migrated);
        if (why is not null)
        {
            return $"right after restore (cut {cut}): {why}";
        }

        for (int i = cut; i < s.Steps.Length; i++)
        {
            Apply(a, straight, s.Steps[i]);
            Apply(c, migrated, s.Steps[i]);
            why = Compare(a, straight, c, migrated);
            if (why is not null)
            {
                return $"step #{i} {s.Steps[i]} (cut {cut}): {why}";
            }
        }

        return null;
    }

    private static void SetUp(AmdViIommu u, AmdViScenario s)
    {
        u.WriteRegister(CommandBufferBase, (s.UnmappedBuffer ? AmdViDifferential.Unmapped : AmdViDifferential.BufferRegion) | ((ulong)s.CommandLength << 56), 8);
        u.WriteRegister(EventLogBase, AmdViDifferential.EventRegion | ((ulong)s.EventLength << 56), 8);
        u.WriteRegister(Control, s.Control | (s.Enabled ? ControlIommuEn | ControlCmdBufEn : 0), 8);
    }

    private static ulong RingSize(ulong baseRegister) => 16UL << Math.Max((int)((baseRegister >> 56) & 0xF), 8);

    private static void Apply(AmdViIommu u, Guest g, QueueStep step)
    {
        switch (step)
        {
            case AmdViSubmit submit:
                ulong cmdBase = u.ReadRegister(CommandBufferBase, 8);
                ulong size = RingSize(cmdBase);
                ulong tail = u.ReadRegister(CommandBufferTail, 8);
                foreach (AmdViCommand command in submit.Commands)
                {
                    ulong address = (cmdBase & RingBaseAddressMask) + tail;
                    if (address >= AmdViDifferential.BufferRegion && address + 16 <= AmdViDifferential.BufferRegion + (ulong)g.Buffer.Length)
                    {
                        command.Write(g.Buffer.AsSpan((int)(address - AmdViDifferential.BufferRegion), 16));
                    }

                    tail = (tail + 16) % size;
                }

                u.WriteRegister(CommandBufferTail, tail, 4);
                break;
            case AmdViDrainEvents:
                u.WriteRegister(Status, StatusWriteOneToClear, 4);
                u.WriteRegister(EventLogHead, u.ReadRegister(EventLogTail, 4), 4);
                break;
            case QueueWrite w:
                u.WriteRegister(w.Offset, w.Value, w.Size);
                break;
            case QueueRecover:
                ulong control = u.ReadRegister(Control, 8);
                if ((control & ControlCmdBufEn) == 0 || (u.ReadRegister(Status, 8) & StatusCmdBufRun) != 0)
                {
                    break;
                }

                u.WriteRegister(Control, control & ~ControlCmdBufEn, 8);
                ulong ring = RingSize(u.ReadRegister(CommandBufferBase, 8));
                u.WriteRegister(CommandBufferHead, (u.ReadRegister(CommandBufferHead, 8) + 16) % ring, 4);
                u.WriteRegister(Control, control, 8);
                break;
            case QueueFill f:
                if (f.Iotlb is TranslationEntry t)
                {
                    u.Engine.Iotlb.Fill(t);
                }

                if (f.DeviceTlb is DeviceTlbEntry e)
                {
                    u.Engine.DeviceTlb.Fill(e);
                }

                if (f.Config is ConfigEntry c)
                {
                    u.Engine.ConfigCache.Fill(c);
                }

                break;
        }
    }

    private static string? Compare(AmdViIommu a, Guest ga, AmdViIommu b, Guest gb)
    {
        foreach (uint offset in Offsets)
        {
            ulong x = a.ReadRegister(offset, 8), y = b.ReadRegister(offset, 8);
            if (x != y)
            {
                return $"register 0x{offset:X}: uninterrupted 0x{x:X}, migrated 0x{y:X}";
            }
        }

        if (!ga.Interrupts.SequenceEqual(gb.Interrupts))
        {
            return $"interrupts: uninterrupted [{string.Join(", ", ga.Interrupts)}], migrated [{string.Join(", ", gb.Interrupts)}]";
        }

        if (!ga.Buffer.AsSpan().SequenceEqual(gb.Buffer) || !ga.Events.AsSpan().SequenceEqual(gb.Events) || !ga.Store.AsSpan().SequenceEqual(gb.Store))
        {
            return "guest memory differs";
        }

        if (a.CommandFetches != b.CommandFetches)
        {
            return $"fetches: uninterrupted {a.CommandFetches}, migrated {b.CommandFetches}";
        }

        return SameSet(a.Engine.Iotlb.ToArray(), b.Engine.Iotlb.ToArray(), "IOTLB")
               ?? SameSet(a.Engine.DeviceTlb.ToArray(), b.Engine.DeviceTlb.ToArray(), "device TLB")
               ?? SameSet(a.Engine.ConfigCache.ToArray(), b.Engine.ConfigCache.ToArray(), "configuration cache");
    }

    private static string? SameSet<T>(T[] x, T[] y, string what) where T : IEquatable<T> =>
        x.Length == y.Length && x.ToHashSet().SetEquals(y) ? null
            : $"{what}: uninterrupted [{string.Join(", ", x)}], migrated [{string.Join(", ", y)}]";
}

/// <summary>The AMD-Vi state image: format, validation, reset.</summary>
public class AmdViStateImageTests
{
    private static byte[] Image(AmdViIommu unit)
    {
        var image = new byte[AmdViIommu.StateSize];
        Assert.Equal(AmdViIommu.StateSize, unit.SaveState(image));
        return image;
    }

    private static AmdViCommand IllegalCommand => new(0xFUL << 60, 0);

    [Fact]
    public void Image_HasTheDocumentedHeaderAndFieldOffsets()
    {
        using var rig = new AmdViRig();
        rig.Unit.WriteRegister(DeviceTableBase, 0x70_0000 | 0x1FF, 8);
        rig.Unit.WriteRegister(ExclusionBase, 0x80_0000 | 0x3, 8);
        rig.Unit.WriteRegister(ExclusionLimit, 0x88_0000, 8);
        rig.Submit(AmdViCommand.InvalidateIommuAll(), AmdViCommand.CompletionWait(AmdViRig.StoreBase, 5, store: true, interrupt: true, flush: false), IllegalCommand);
        Assert.False(rig.Running);
        byte[] image = Image(rig.Unit);
        Assert.Equal(0x56414946u, BinaryPrimitives.ReadUInt32LittleEndian(image));
        Assert.Equal((ushort)1, BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(4)));
        Assert.Equal((ushort)AmdViIommu.StateSize, BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(6)));
        Assert.Equal(rig.Unit.ReadRegister(ExtendedFeatures, 8), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(8)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(16)));   // IotlbSup
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(20)));   // stopped
        uint[] offsets = [DeviceTableBase, CommandBufferBase, EventLogBase, Control, ExclusionBase, ExclusionLimit, CommandBufferHead, CommandBufferTail, EventLogHead, EventLogTail];
        for (int i = 0; i < offsets.Length; i++)
        {
            Assert.Equal(rig.Unit.ReadRegister(offsets[i], 8), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(24 + (8 * i))));
        }

        Assert.Equal(rig.Status & StatusWriteOneToClear, BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(104)));
        Assert.Equal(StatusEventLogInt | StatusComWaitInt, rig.Status & StatusWriteOneToClear);
        Assert.Equal(32UL, rig.Head);
        Assert.Equal(rig.Unit.CommandFetches, BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(112)));
        Assert.Equal(3UL, rig.Unit.CommandFetches);
        Assert.All(image[120..], b => Assert.Equal(0, b));
    }

    [Fact]
    public void BadImages_AreRefused_AndLeaveTheUnitAsItWas()
    {
        using var source = new AmdViRig();
        source.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1, store: true, interrupt: false, flush: false));
        byte[] good = Image(source.Unit);

        using var target = new AmdViRig(enable: false);
        byte[] before = Image(target.Unit);

        void Refused(byte[] image)
        {
            Assert.Throws<ArgumentException>(() => target.Unit.RestoreState(image));
            Assert.Equal(before, Image(target.Unit));
        }

        Refused([]);
        Refused(good[..(AmdViIommu.StateSize - 1)]);
        Refused(Patched(good, 0, 0x56414947u));                           // magic
        Refused(Patched16(good, 4, 2));                                   // version
        Refused(Patched16(good, 6, AmdViIommu.StateSize + 8));            // size
        Refused(Patched64(good, 8, good[8] ^ 1UL));                       // another EFR
        Refused(Patched(good, 16, 0));                                    // another IotlbSup
        Refused(Patched(good, 20, 8));                                    // an unknown flag
        Refused(Patched64(good, 24, 1UL << 60));                          // Device Table Base reserved bit
        Refused(Patched64(good, 32, AmdViRig.BufferBase | 0x10));         // Command Buffer Base reserved bit
        Refused(Patched64(good, 40, 1UL << 63));                          // Event Log Base reserved bit
        Refused(Patched64(good, 48, 1UL << 18));                          // Control beyond bit 17
        Refused(Patched64(good, 56, 0x4));                                // Exclusion Base reserved bit
        Refused(Patched64(good, 64, 0x1));                                // Exclusion Limit reserved bit
        Refused(Patched64(good, 72, 0x8));                                // head not 16-byte aligned
        Refused(Patched64(good, 80, 4096));                               // tail beyond a 4 KiB buffer
        Refused(Patched64(good, 88, 0x1_0000));                           // event head beyond the log
        Refused(Patched64(good, 96, 0x4));                                // event tail misaligned
        Refused(Patched64(good, 104, StatusCmdBufRun));                   // a computed Status bit
        Refused(Patched64(Patched(good, 20, 1), 48, 0));                  // stopped with the buffer disabled
        Refused(Patched(good, 20, 4));                                    // held, but the held bytes are no COMPLETION_WAIT
        Refused(Patched64(good, 120, 1));                                 // held bytes without a held wait
        Refused(Patched64(good, 136, 1));                                 // reserved
        using var other = new AmdViRig(new AmdViOptions { InvalidateAll = false });
        Assert.Throws<ArgumentException>(() => other.Unit.RestoreState(good)); // other EFR
        using var noIotlb = new AmdViRig(new AmdViOptions { DeviceTlb = false });
        Assert.Throws<ArgumentException>(() => noIotlb.Unit.RestoreState(good)); // other IotlbSup
        Assert.Throws<ArgumentException>(() => source.Unit.SaveState(new byte[AmdViIommu.StateSize - 1]));
        target.Unit.RestoreState(good);
        Assert.Equal(good, Image(target.Unit));
    }

    [Fact]
    public void RestoreIntoAFreshUnit_ContinuesAStoppedBuffer_AfterRestart()
    {
        using var source = new AmdViRig();
        source.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1, store: true, interrupt: false, flush: false), IllegalCommand,
            AmdViCommand.CompletionWait(AmdViRig.StoreBase + 8, 2, store: true, interrupt: true, flush: false));
        Assert.False(source.Running);
        Assert.Equal(16UL, source.Head);
        byte[] image = Image(source.Unit);

        using var target = new AmdViRig(enable: false);    // the destination's guest memory holds the same rings (copied RAM)
        source.Buffer.CopyTo(target.Buffer, 0);
        source.Events.CopyTo(target.Events, 0);
        source.Store.CopyTo(target.Store, 0);
        target.Unit.RestoreState(image);
        Assert.Equal(0, target.Interrupts);                 // the restore sends nothing
        Assert.False(target.Running);
        Assert.Equal(16UL, target.Head);
        Assert.Equal(0UL, target.StoreAt(8));
        target.Restart(head: 32);                           // the guest's recovery on the destination
        Assert.True(target.Running);
        Assert.Equal(2UL, target.StoreAt(8));
        Assert.Equal(48UL, target.Head);
        Assert.Equal(1, target.Interrupts);
        Assert.Equal(source.Unit.CommandFetches + 1, target.Unit.CommandFetches);
    }

    [Fact]
    public void RestoreAndReset_DropOutstandingRequests_SaveRefusesWhileOutstanding()
    {
        var sink = new ParkedSink();
        using var rig = new AmdViRig(new AmdViOptions { DeviceTlbSink = new DeviceTlbSinkOptions { Sink = sink } });
        byte[] idle = Image(rig.Unit);
        rig.Submit(AmdViCommand.InvalidateIotlbPages(0x10, 0x1000, false, null, 0, null),
            AmdViCommand.CompletionWait(AmdViRig.StoreBase, 9, store: true, interrupt: false, flush: false));
        Assert.Equal(1, rig.Unit.OutstandingDeviceTlbRequests);
        Assert.Equal(16UL, rig.Head);                       // the wait is held
        Assert.Throws<InvalidOperationException>(() => rig.Unit.SaveState(new byte[AmdViIommu.StateSize]));
        rig.Unit.RestoreState(idle);
        Assert.Equal(0, rig.Unit.OutstandingDeviceTlbRequests);
        Assert.Equal(idle, Image(rig.Unit));
        rig.Submit(AmdViCommand.InvalidateIotlbPages(0x10, 0x1000, false, null, 0, null));
        Assert.Equal(1, rig.Unit.OutstandingDeviceTlbRequests);
        rig.Unit.Reset();
        Assert.Equal(0, rig.Unit.OutstandingDeviceTlbRequests);
    }

    [Fact]
    public void HeldWaitWhoseAnswersCame_IsCarriedInTheImage_AndCompletesOnTheDestination()
    {
        var sink = new ParkedSink();
        using var source = new AmdViRig(new AmdViOptions { DeviceTlbSink = new DeviceTlbSinkOptions { Sink = sink } });
        source.Submit(AmdViCommand.InvalidateIotlbPages(0x10, 0x1000, false, null, 0, null),
            AmdViCommand.CompletionWait(AmdViRig.StoreBase, 9, store: true, interrupt: true, flush: false));
        source.Unit.WriteRegister(CommandBufferTail, source.Head, 4);  // the guest pulls the tail back onto the held wait
        Assert.True(sink.Completion!.Complete(sink.Requests[0].Ticket, DeviceTlbFault.None));
        Assert.Equal(0, source.Unit.OutstandingDeviceTlbRequests);
        byte[] image = Image(source.Unit);
        Assert.Equal(4u, BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(20)) & 4);
        Assert.Equal(0UL, source.StoreAt(0));

        using var target = new AmdViRig(new AmdViOptions { DeviceTlbSink = new DeviceTlbSinkOptions { Sink = new ParkedSink() } }, enable: false);
        target.Unit.RestoreState(image);
        Assert.Equal(image, Image(target.Unit));
        ulong fetches = target.Unit.CommandFetches;
        target.Unit.WriteRegister(CommandBufferTail, 32, 4);           // the held wait completes without being fetched again
        Assert.Equal(9UL, target.StoreAt(0));
        Assert.Equal(32UL, target.Head);
        Assert.Equal(fetches, target.Unit.CommandFetches);
    }

    [Fact]
    public void Reset_ReturnsToPowerOn_AsAFreshUnitReads_AndEmptiesItsOwnCaches()
    {
        using var fresh = new AmdViIommu(new GuestMemory());
        using var rig = new AmdViRig();
        rig.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1, store: true, interrupt: true, flush: false), IllegalCommand);
        rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000, 0x1000));
        Assert.NotEqual(0UL, rig.Status & StatusWriteOneToClear);
        rig.Unit.Reset();
        Assert.Equal(Image(fresh), Image(rig.Unit));
        foreach (uint offset in new[] { DeviceTableBase, CommandBufferBase, EventLogBase, Control, CommandBufferHead, CommandBufferTail, EventLogTail, Status })
        {
            Assert.Equal(0UL, rig.Unit.ReadRegister(offset, 8));
        }

        Assert.Equal(fresh.ReadRegister(ExtendedFeatures, 8), rig.Unit.ReadRegister(ExtendedFeatures, 8));
        Assert.Equal(0, rig.Engine.Iotlb.Count);
        Assert.Equal(0UL, rig.Unit.CommandFetches);
        rig.Unit.WriteRegister(CommandBufferBase, AmdViRig.BufferBase | (8UL << RingLengthShift), 8);   // and it works again
        rig.Unit.WriteRegister(Control, ControlIommuEn | ControlCmdBufEn, 8);
        rig.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase + 8, 7, store: true, interrupt: false, flush: false));
        Assert.Equal(7UL, rig.StoreAt(8));
    }

    [Fact]
    public void Reset_WithACallersEngine_LeavesItsCaches()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 64, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 });
        using var unit = new AmdViIommu(new GuestMemory(), engine);
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x1000, 0x1000));
        unit.Reset();
        Assert.Equal(1, engine.Iotlb.Count);
    }

    [Fact]
    public void StateOperations_FromInsideAnInterrupt_AreRefused()
    {
        using var rig = new AmdViRig();
        var refused = new List<Type>();
        rig.OnInterrupt = () =>
        {
            foreach (Action op in new Action[] { () => rig.Unit.SaveState(new byte[AmdViIommu.StateSize]), () => rig.Unit.RestoreState(new byte[AmdViIommu.StateSize]), rig.Unit.Reset })
            {
                try
                {
                    op();
                }
                catch (InvalidOperationException ex)
                {
                    refused.Add(ex.GetType());
                }
            }
        };
        rig.Submit(AmdViCommand.CompletionWait(AmdViRig.StoreBase, 1, store: true, interrupt: true, flush: false));
        Assert.Equal(3, refused.Count);
        Assert.Equal(1UL, rig.StoreAt(0));
    }

    private static byte[] Patched(byte[] image, int offset, uint value)
    {
        byte[] copy = [.. image];
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(offset), value);
        return copy;
    }

    private static byte[] Patched16(byte[] image, int offset, int value)
    {
        byte[] copy = [.. image];
        BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(offset), (ushort)value);
        return copy;
    }

    private static byte[] Patched64(byte[] image, int offset, ulong value)
    {
        byte[] copy = [.. image];
        BinaryPrimitives.WriteUInt64LittleEndian(copy.AsSpan(offset), value);
        return copy;
    }
}
