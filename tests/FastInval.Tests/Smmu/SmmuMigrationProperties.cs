using System.Buffers.Binary;
using System.Collections.Immutable;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Smmu;
using FastInval.Smmu;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Smmu;

/// <summary>
/// Migration of an <see cref="SmmuV3"/>: random scenarios of the differential generator run once without interruption and
/// once with <see cref="SmmuV3.SaveState"/> at a random step, the source disposed, a fresh SMMU (fresh engine) over the same
/// guest memory restored from the image and re-filled with what the source had cached. Registers, MSIs, wired interrupts,
/// guest memory, the fetch ordinal and the caches must be the same after every later step. As for VT-d, device-TLB
/// decisions that depend on the engine's ordinal are taken out of the plans (that ordinal belongs to the engine).
/// </summary>
public class SmmuMigrationProperties
{
    private const int Cases = 10_000;

    [Property(MaxTest = Cases)]
    public Property SaveRestoreAtARandomStep_ContinuesExactlyAsAnUninterruptedRun() =>
        Prop.ForAll(SmmuGenerators.Scenarios(), Arb.From(Gen.Choose(0, 1000)), (s, cutSeed) =>
        {
            SmmuScenario scenario = s with { Faults = s.Faults with { TimeoutPerMillion = 0, CompletionErrorPerMillion = 0, TimeoutOrdinals = [] } };
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

            return (why is null).Label(why ?? "same");
        });

    private sealed class Guest
    {
        public readonly byte[] Queue = new byte[4096];
        public readonly byte[] MsiPage = new byte[4096];
        public readonly GuestMemory Memory = new();
        public readonly List<string> Signals = [];

        public Guest()
        {
            Memory.Map(SmmuDifferential.QueueRegion, Queue);
            Memory.Map(SmmuDifferential.MsiRegion, MsiPage);
        }

        public SmmuV3 NewSmmu(SmmuScenario s)
        {
            SmmuOptions preset = SmmuScenario.Options(s.Preset);
            return new SmmuV3(Memory, new SmmuOptions
            {
                Features = preset.Features,
                StreamIdBits = preset.StreamIdBits,
                MaxCommandQueueLog2 = preset.MaxCommandQueueLog2,
                OutputAddressBits = preset.OutputAddressBits,
                FaultPlan = s.Faults.Build(),
                Engine = new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
                Msi = (a, d) => Signals.Add($"msi 0x{a:X}=0x{d:X}"),
                WiredInterrupt = i => Signals.Add($"wired {i}"),
            });
        }
    }

    private static string? Run(SmmuScenario s, int cut)
    {
        int maxLog2 = SmmuScenario.Options(s.Preset).MaxCommandQueueLog2;
        var straight = new Guest();
        using SmmuV3 a = straight.NewSmmu(s);
        SetUp(a, s);
        var migrated = new Guest();
        SmmuV3 b = migrated.NewSmmu(s);
        SetUp(b, s);
        for (int i = 0; i < cut; i++)
        {
            Apply(a, straight, s.Steps[i], maxLog2);
            Apply(b, migrated, s.Steps[i], maxLog2);
        }

        var image = new byte[SmmuV3.StateSize];
        b.SaveState(image);
        TranslationEntry[] iotlb = b.Engine.Iotlb.ToArray();
        DeviceTlbEntry[] deviceTlb = b.Engine.DeviceTlb.ToArray();
        ConfigEntry[] config = b.Engine.ConfigCache.ToArray();
        b.Dispose();
        using SmmuV3 c = migrated.NewSmmu(s);
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
            Apply(a, straight, s.Steps[i], maxLog2);
            Apply(c, migrated, s.Steps[i], maxLog2);
            why = Compare(a, straight, c, migrated);
            if (why is not null)
            {
                return $"step #{i} {s.Steps[i]} (cut {cut}): {why}";
            }
        }

        return null;
    }

    private static void SetUp(SmmuV3 u, SmmuScenario s)
    {
        u.WriteRegister(SmmuRegisters.CmdqBase, (s.UnmappedQueue ? SmmuDifferential.Unmapped : SmmuDifferential.QueueRegion) | (uint)s.Log2Size, 8);
        if (s.IrqMode != 0)
        {
            u.WriteRegister(SmmuRegisters.IrqCtrl, SmmuRegisters.IrqGerrorEn, 4);
        }

        if (s.IrqMode >= 2)
        {
            u.WriteRegister(SmmuRegisters.GerrorIrqCfg0, s.IrqMode == 2 ? SmmuDifferential.MsiRegion + 0x800 : SmmuDifferential.Unmapped, 8);
            u.WriteRegister(SmmuRegisters.GerrorIrqCfg1, 0xE0, 4);
        }

        u.WriteRegister(SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn | (s.SmmuEnabled ? SmmuRegisters.Cr0SmmuEn : 0), 4);
    }

    private static void Apply(SmmuV3 u, Guest g, QueueStep step, int maxLog2)
    {
        ulong cmdqBase = u.ReadRegister(SmmuRegisters.CmdqBase, 8);
        int log2 = Math.Min((int)(cmdqBase & 0x1F), maxLog2);
        ulong entries = 1UL << log2;
        ulong queueBase = cmdqBase & 0x00FF_FFFF_FFFF_FFE0UL;
        switch (step)
        {
            case SmmuSubmit submit:
                ulong prod = u.ReadRegister(SmmuRegisters.CmdqProd, 4);
                ulong index = prod % entries, wrap = (prod >> log2) & 1;
                foreach (SmmuCommand cmd in submit.Commands)
                {
                    Put(g, queueBase + (index * 16), cmd);
                    if (++index == entries)
                    {
                        index = 0;
                        wrap ^= 1;
                    }
                }

                u.WriteRegister(SmmuRegisters.CmdqProd, index | (wrap << log2), 4);
                break;
            case QueueWrite w:
                u.WriteRegister(w.Offset, w.Value, w.Size);
                break;
            case QueueRecover:
                ulong cons = u.ReadRegister(SmmuRegisters.CmdqCons, 4);
                ulong active = u.ReadRegister(SmmuRegisters.Gerror, 4) ^ u.ReadRegister(SmmuRegisters.Gerrorn, 4);
                if ((active & SmmuRegisters.GerrorCmdqErr) != 0 && ((cons >> SmmuRegisters.ConsErrShift) & 0x7F) == 1)
                {
                    Put(g, queueBase + ((cons % entries) * 16), new SmmuCommand(0x0FC0_2046UL, 0)); // CERROR_ILL: skip it with a CMD_SYNC
                }

                u.WriteRegister(SmmuRegisters.Gerrorn, u.ReadRegister(SmmuRegisters.Gerror, 4), 4);
                break;
            case QueueFill f:
                if (f.Iotlb is TranslationEntry t)
                {
                    u.Engine.Iotlb.Fill(t);
                }

                if (f.DeviceTlb is DeviceTlbEntry d)
                {
                    u.Engine.DeviceTlb.Fill(d);
                }

                if (f.Config is ConfigEntry c)
                {
                    u.Engine.ConfigCache.Fill(c);
                }

                break;
        }
    }

    private static void Put(Guest g, ulong address, SmmuCommand c)
    {
        if (address >= SmmuDifferential.QueueRegion && address + 16 <= SmmuDifferential.QueueRegion + (ulong)g.Queue.Length)
        {
            c.Write(g.Queue.AsSpan((int)(address - SmmuDifferential.QueueRegion), 16));
        }
    }

    private static string? Compare(SmmuV3 a, Guest ga, SmmuV3 b, Guest gb)
    {
        for (uint offset = 0; offset < 0x100; offset += 4)
        {
            ulong x = a.ReadRegister(offset, 4), y = b.ReadRegister(offset, 4);
            if (x != y)
            {
                return $"register 0x{offset:X}: uninterrupted 0x{x:X}, migrated 0x{y:X}";
            }
        }

        if (!ga.Signals.SequenceEqual(gb.Signals))
        {
            return $"signals: uninterrupted [{string.Join(", ", ga.Signals)}], migrated [{string.Join(", ", gb.Signals)}]";
        }

        if (!ga.Queue.AsSpan().SequenceEqual(gb.Queue) || !ga.MsiPage.AsSpan().SequenceEqual(gb.MsiPage))
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

/// <summary>The SMMUv3 state image: format, validation, reset.</summary>
public class SmmuStateImageTests
{
    private static byte[] Image(SmmuV3 smmu)
    {
        var image = new byte[SmmuV3.StateSize];
        Assert.Equal(SmmuV3.StateSize, smmu.SaveState(image));
        return image;
    }

    [Fact]
    public void Image_HasTheDocumentedHeaderAndFields_ACerrorAndItsPendingMarkSurviveMigration()
    {
        var plan = new FaultPlan { TimeoutSourceIds = [0x10] };
        using var rig = new SmmuRig(options: new SmmuOptions { FaultPlan = plan });
        rig.Submit(Cmd.AtcInv(0x10, 0x1000, 0));                      // times out: the next CMD_SYNC will be CERROR_ATC_INV_SYNC
        byte[] image = Image(rig.Smmu);
        Assert.Equal(0x33554D53u, BinaryPrimitives.ReadUInt32LittleEndian(image));
        Assert.Equal((ushort)1, BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(4)));
        Assert.Equal((ushort)SmmuV3.StateSize, BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(6)));
        Assert.Equal((uint)rig.Smmu.ReadRegister(SmmuRegisters.Idr0, 4), BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(8)));
        Assert.Equal((uint)rig.Smmu.ReadRegister(SmmuRegisters.Cr0, 4), BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(32)));
        Assert.Equal(rig.Smmu.ReadRegister(SmmuRegisters.CmdqBase, 8), BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(88)));
        Assert.Equal(rig.Prod, BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(96)));
        Assert.Equal(rig.Cons, BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(100)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(104)));                 // the ATC time-out mark
        Assert.Equal(rig.Smmu.CommandFetches, BinaryPrimitives.ReadUInt64LittleEndian(image.AsSpan(112)));

        using var target = new SmmuRig(enable: false);
        rig.Queue.CopyTo(target.Queue, 0);
        target.Smmu.RestoreState(image);
        target.Submit(Cmd.Sync());
        Assert.Equal(3u, target.ConsError);                            // CERROR_ATC_INV_SYNC on the destination
    }

    [Fact]
    public void BadImages_AreRefused_AndLeaveTheSmmuAsItWas()
    {
        using var source = new SmmuRig();
        source.Submit(Cmd.NsnhAll(), Cmd.Sync());
        byte[] good = Image(source.Smmu);
        using var target = new SmmuRig(enable: false);
        byte[] before = Image(target.Smmu);

        void Refused(byte[] image)
        {
            Assert.Throws<ArgumentException>(() => target.Smmu.RestoreState(image));
            Assert.Equal(before, Image(target.Smmu));
        }

        Refused([]);
        Refused(good[..(SmmuV3.StateSize - 1)]);
        Refused(Patched(good, 0, 0x33554D54u));
        Refused(Patched(good, 4, 2u | ((uint)SmmuV3.StateSize << 16)));  // version 2
        Refused(Patched(good, 8, 0));                                    // IDR0
        Refused(Patched(good, 32, 1u << 8));                             // a CR0 bit no SMMU implements
        Refused(Patched(good, 100, 1u << 31));                           // CONS bit 31
        Refused(Patched(good, 104, 4));                                  // unknown flag
        Refused(Patched(good, 108, 1));                                  // reserved
        using var other = new SmmuRig(options: new SmmuOptions { StreamIdBits = 8 });
        Assert.Throws<ArgumentException>(() => other.Smmu.RestoreState(good));
        Assert.Throws<ArgumentException>(() => source.Smmu.SaveState(new byte[SmmuV3.StateSize - 1]));
        target.Smmu.RestoreState(good);
        Assert.Equal(good, Image(target.Smmu));
    }

    [Fact]
    public void Reset_ReturnsToPowerOn_AsAFreshSmmuReads_AndEmptiesItsOwnCaches()
    {
        using var fresh = new SmmuV3(new GuestMemory());
        using var rig = new SmmuRig();
        rig.Submit(new SmmuCommand(0x00, 0));                            // CERROR_ILL active
        rig.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x1000, 0x1000));
        Assert.True(rig.ErrorActive);
        rig.Smmu.Reset();
        Assert.Equal(Image(fresh), Image(rig.Smmu));
        Assert.Equal(0, rig.Engine.Iotlb.Count);
        rig.Smmu.WriteRegister(SmmuRegisters.CmdqBase, SmmuRig.QueueBase | (uint)rig.Log2Size, 8);
        rig.Smmu.WriteRegister(SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn, 4);
        rig.Submit(Cmd.Sync());
        Assert.Equal(1u, rig.ConsIndex);
        Assert.False(rig.ErrorActive);
    }

    private static byte[] Patched(byte[] image, int offset, uint value)
    {
        byte[] copy = [.. image];
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(offset), value);
        return copy;
    }
}
