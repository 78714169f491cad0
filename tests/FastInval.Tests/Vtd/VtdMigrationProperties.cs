using System.Buffers.Binary;
using System.Collections.Immutable;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Vtd;
using FastInval.Vtd;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Vtd;

/// <summary>
/// Migration of a <see cref="VtdIommu"/>: random scenarios (the differential generator's descriptor streams, register
/// writes, recoveries and fills) run once without interruption, and once with <see cref="VtdIommu.SaveState"/> at a
/// random step, the source disposed, a fresh unit (fresh engine) over the same guest memory restored from the image, the
/// host re-filling the caches with what the source had cached, and the rest of the steps run on it. Registers, MSIs,
/// guest memory, the fetch ordinal and the caches must be the same after every later step.
/// </summary>
/// <remarks>Device-TLB fault decisions that depend on the engine's device-TLB ordinal (per-million rates, ordinal lists)
/// are taken out of the generated plans: that ordinal belongs to the engine, which a migration replaces. Per-source-id
/// time-outs and every fetch-error rule (the fetch ordinal is in the image) stay.</remarks>
public class VtdMigrationProperties
{
    private const int Cases = 10_000;

    [Property(MaxTest = Cases)]
    public Property SaveRestoreAtARandomStep_ContinuesExactlyAsAnUninterruptedRun() =>
        Prop.ForAll(VtdGenerators.Scenarios(), Arb.From(Gen.Choose(0, 1000)), (s, cutSeed) =>
        {
            VtdScenario scenario = s with { Faults = WithoutEngineOrdinals(s.Faults) };
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

    private sealed class Guest
    {
        public readonly byte[] Queue = new byte[8192];
        public readonly byte[] Status = new byte[4096];
        public readonly GuestMemory Memory = new();
        public readonly List<(ulong, uint)> Msis = [];

        public Guest()
        {
            Memory.Map(VtdDifferential.QueueRegion, Queue);
            Memory.Map(VtdDifferential.StatusRegion, Status);
        }

        public VtdIommu NewUnit(VtdScenario s) => new(Memory, VtdDifferential.WithHost(VtdScenario.Options(s.Preset),
            (a, d) => Msis.Add((a, d)), s.Faults.Build(), new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 }));
    }

    /// <summary>Null when the migrated run matches the uninterrupted one after every step from the cut on.</summary>
    internal static string? Run(VtdScenario s, int cut)
    {
        var straight = new Guest();
        using VtdIommu a = straight.NewUnit(s);
        SetUp(a, s);

        var migrated = new Guest();
        VtdIommu b = migrated.NewUnit(s);
        SetUp(b, s);
        for (int i = 0; i < cut; i++)
        {
            Apply(a, straight, s.Steps[i]);
            Apply(b, migrated, s.Steps[i]);
        }

        Span<byte> image = stackalloc byte[VtdIommu.StateSize];
        if (b.SaveState(image) != VtdIommu.StateSize)
        {
            return "SaveState did not report the image size";
        }

        TranslationEntry[] iotlb = b.Engine.Iotlb.ToArray();
        DeviceTlbEntry[] deviceTlb = b.Engine.DeviceTlb.ToArray();
        ConfigEntry[] config = b.Engine.ConfigCache.ToArray();
        b.Dispose();

        using VtdIommu c = migrated.NewUnit(s);
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

    private static void SetUp(VtdIommu u, VtdScenario s)
    {
        u.WriteRegister(VtdRegisters.Feaddr, 0xFEE0_0000, 4);
        u.WriteRegister(VtdRegisters.Fedata, 0x41, 4);
        u.WriteRegister(VtdRegisters.Ieaddr, 0xFEE0_1000, 4);
        u.WriteRegister(VtdRegisters.Iedata, 0x42, 4);
        u.WriteRegister(VtdRegisters.Fectl, s.MaskFaults ? VtdRegisters.InterruptMask : 0, 4);
        u.WriteRegister(VtdRegisters.Iectl, s.MaskCompletions ? VtdRegisters.InterruptMask : 0, 4);
        if (s.TranslationMode != 0)
        {
            u.WriteRegister(VtdRegisters.Rtaddr, 0x30_0000UL | ((ulong)(uint)s.TranslationMode << VtdRegisters.RtaddrTtmShift), 8);
            u.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Srtp, 4);
        }

        u.WriteRegister(VtdRegisters.Iqt, 0, 4);
        u.WriteRegister(VtdRegisters.Iqa, s.QueueBase | (s.Wide ? VtdRegisters.IqaDw : 0) | (uint)s.QueueSize, 8);
        u.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie | (s.TranslationMode != 0 ? VtdRegisters.Srtp : 0), 4);
    }

    private static void Apply(VtdIommu u, Guest g, QueueStep step)
    {
        ulong iqa = u.ReadRegister(VtdRegisters.Iqa, 8);
        int width = (iqa & VtdRegisters.IqaDw) != 0 ? 32 : 16;
        ulong queueBase = iqa & VtdRegisters.IqaBaseMask;
        int slots = (4096 << (int)(iqa & VtdRegisters.IqaQsMask)) / width;
        switch (step)
        {
            case VtdSubmit submit:
                int slot = (int)(u.ReadRegister(VtdRegisters.Iqt, 8) / (ulong)width) % slots;
                foreach (VtdDescriptor d in submit.Descriptors)
                {
                    Put(g, queueBase + (ulong)(slot * width), width, d);
                    slot = (slot + 1) % slots;
                }

                u.WriteRegister(VtdRegisters.Iqt, (ulong)(slot * width), 4);
                break;
            case QueueWrite w:
                u.WriteRegister(w.Offset, w.Value, w.Size);
                break;
            case QueueRecover:
                if ((u.ReadRegister(VtdRegisters.Fsts, 4) & VtdRegisters.Iqe) != 0)
                {
                    Put(g, queueBase + u.ReadRegister(VtdRegisters.Iqh, 8), width, VtdDescriptor.Wait(statusWrite: false, interrupt: false, fence: true));
                }

                u.WriteRegister(VtdRegisters.Fsts, VtdRegisters.Iqe | VtdRegisters.Ice | VtdRegisters.Ite, 4);
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

    private static void Put(Guest g, ulong address, int width, VtdDescriptor d)
    {
        if (address >= VtdDifferential.QueueRegion && address + (ulong)width <= VtdDifferential.QueueRegion + (ulong)g.Queue.Length)
        {
            d.Write(g.Queue.AsSpan((int)(address - VtdDifferential.QueueRegion), width));
        }
    }

    private static string? Compare(VtdIommu a, Guest ga, VtdIommu b, Guest gb)
    {
        for (uint offset = 0; offset < 0x240; offset += 4)
        {
            ulong x = a.ReadRegister(offset, 4), y = b.ReadRegister(offset, 4);
            if (x != y)
            {
                return $"register 0x{offset:X}: uninterrupted 0x{x:X}, migrated 0x{y:X}";
            }
        }

        if (!ga.Msis.SequenceEqual(gb.Msis))
        {
            return $"MSIs: uninterrupted [{string.Join(", ", ga.Msis)}], migrated [{string.Join(", ", gb.Msis)}]";
        }

        if (!ga.Queue.AsSpan().SequenceEqual(gb.Queue) || !ga.Status.AsSpan().SequenceEqual(gb.Status))
        {
            return "guest memory differs";
        }

        if (a.DescriptorFetches != b.DescriptorFetches)
        {
            return $"fetches: uninterrupted {a.DescriptorFetches}, migrated {b.DescriptorFetches}";
        }

        return SameSet(a.Engine.Iotlb.ToArray(), b.Engine.Iotlb.ToArray(), "IOTLB")
               ?? SameSet(a.Engine.DeviceTlb.ToArray(), b.Engine.DeviceTlb.ToArray(), "device TLB")
               ?? SameSet(a.Engine.ConfigCache.ToArray(), b.Engine.ConfigCache.ToArray(), "configuration cache");
    }

    private static string? SameSet<T>(T[] x, T[] y, string what) where T : IEquatable<T> =>
        x.Length == y.Length && x.ToHashSet().SetEquals(y) ? null
            : $"{what}: uninterrupted [{string.Join(", ", x)}], migrated [{string.Join(", ", y)}]";
}

/// <summary>The VT-d state image: format, validation, reset.</summary>
public class VtdStateImageTests
{
    private static byte[] Image(VtdIommu unit)
    {
        var image = new byte[VtdIommu.StateSize];
        Assert.Equal(VtdIommu.StateSize, unit.SaveState(image));
        return image;
    }

    [Fact]
    public void Image_HasTheDocumentedHeaderAndFieldOffsets()
    {
        using var rig = new VtdRig();
        rig.Enable(wide: true, qs: 1);
        rig.Write64(Reg.Irta, 0x5000_0000UL | 0xF);
        rig.Submit(VtdDescriptor.IotlbGlobal(), new VtdDescriptor(0x3F, 0));             // one executed, then an IQE
        byte[] image = Image(rig.Unit);
        Assert.Equal(0x44564946u, BinaryPrimitives.ReadUInt32LittleEndian(image));
        Assert.Equal((ushort)1, BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(4)));
        Assert.Equal((ushort)VtdIommu.StateSize, BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(6)));
        Assert.Equal(rig.Read64(Reg.Cap), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(8)));
        Assert.Equal(rig.Read64(Reg.Ecap), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(16)));
        Assert.Equal(rig.Read32(Reg.Gsts), BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(24)));
        Assert.Equal(rig.Read32(Reg.Fsts), BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(28)));
        Assert.Equal(rig.Read32(Reg.Fectl), BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(44)));
        Assert.Equal(rig.Read64(Reg.Iqh), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(64)));
        Assert.Equal(rig.Read64(Reg.Iqt), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(72)));
        Assert.Equal(rig.Read64(Reg.Iqa), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(80)));
        Assert.Equal(rig.Read64(Reg.Iqercd), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(104)));
        Assert.Equal(rig.Read64(Reg.Irta), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(112)));
        Assert.Equal(rig.Unit.DescriptorFetches, BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(120)));
        Assert.NotEqual(0UL, rig.Unit.DescriptorFetches);
    }

    [Fact]
    public void BadImages_AreRefused_AndLeaveTheUnitAsItWas()
    {
        using var source = new VtdRig();
        source.Enable(wide: true);
        source.Submit(VtdRig.StatusWait(0));
        byte[] good = Image(source.Unit);

        using var target = new VtdRig();
        byte[] before = Image(target.Unit);

        void Refused(byte[] image)
        {
            Assert.Throws<ArgumentException>(() => target.Unit.RestoreState(image));
            Assert.Equal(before, Image(target.Unit));
        }

        Refused([]);
        Refused(good[..(VtdIommu.StateSize - 1)]);
        Refused(Patched(good, 0, 0x44564947u));                     // magic
        Refused(Patched16(good, 4, 2));                             // version
        Refused(Patched16(good, 6, VtdIommu.StateSize + 8));        // size
        Refused(Patched(good, 24, 1u << 20));                       // a GSTS bit no unit sets
        Refused(Patched(good, 40, 3u));                             // translation mode
        Refused(Patched64(good, 64, 0x8));                          // IQH not 16-byte aligned
        Refused(Patched64(good, 128, 1));                           // reserved
        using var other = new VtdRig(new VtdOptions { MaxAddressMask = 9 });
        Assert.Throws<ArgumentException>(() => other.Unit.RestoreState(good)); // other CAP
        Assert.Throws<ArgumentException>(() => source.Unit.SaveState(new byte[VtdIommu.StateSize - 1]));
        target.Unit.RestoreState(good);
        Assert.Equal(good, Image(target.Unit));
    }

    [Fact]
    public void RestoreIntoAFreshUnit_ContinuesAStoppedQueue_AfterRecovery()
    {
        using var source = new VtdRig();
        source.Enable(wide: true);
        source.Submit(VtdRig.StatusWait(0, 1), new VtdDescriptor(0x3F, 0), VtdRig.StatusWait(4, 2));  // IQE on the second
        Assert.Equal(Reg.Iqe, source.Fsts);
        byte[] image = Image(source.Unit);

        using var target = new VtdRig();           // the destination's guest memory holds the same queue (copied RAM)
        source.Queue.CopyTo(target.Queue, 0);
        source.Status.CopyTo(target.Status, 0);
        target.Unit.RestoreState(image);
        target.Msis.Clear();
        Assert.Equal(source.Read64(Reg.Iqh), target.Read64(Reg.Iqh));
        Assert.Equal(Reg.Iqe, target.Fsts);
        Assert.Equal(3, target.Iqei);
        Assert.Empty(target.Msis);                 // the restore sends nothing
        VtdDescriptor.Wait(statusWrite: false, interrupt: false, fence: true).Write(target.Queue.AsSpan(32, 32)); // slot 1 of 256-bit
        target.Write32(Reg.Fsts, Reg.Iqe);         // the guest's recovery on the destination
        Assert.Equal(0u, target.Fsts);
        Assert.Equal(2u, target.StatusAt(4));
        Assert.Equal(96UL, target.Read64(Reg.Iqh));
    }

    [Fact]
    public void Reset_ReturnsToPowerOn_AsAFreshUnitReads_AndEmptiesItsOwnCaches()
    {
        using var fresh = new VtdIommu(new GuestMemory());   // the same capabilities as the rig's
        using var rig = new VtdRig();
        rig.Enable(wide: true, qs: 2);
        rig.SetTranslationMode(1);
        rig.Submit(VtdRig.StatusWait(0, iflag: true), new VtdDescriptor(0x3F, 0));
        rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 5, 0x1000, 0x1000));
        Assert.NotEqual(0u, rig.Fsts);
        rig.Unit.Reset();
        Assert.Equal(Image(fresh), Image(rig.Unit));
        Assert.Equal(0, rig.Engine.Iotlb.Count);
        Assert.Equal(VtdRegisters.InterruptMask, rig.Read32(Reg.Fectl));
        Assert.Equal(0UL, rig.Unit.DescriptorFetches);
        rig.Enable(wide: true);                   // and it works again
        rig.Submit(VtdRig.StatusWait(8, 7));
        Assert.Equal(7u, rig.StatusAt(8));
    }

    [Fact]
    public void Reset_WithACallersEngine_LeavesItsCaches()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 64, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 });
        using var unit = new VtdIommu(new GuestMemory(), engine);
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 5, 0x1000, 0x1000));
        unit.Reset();
        Assert.Equal(1, engine.Iotlb.Count);
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
