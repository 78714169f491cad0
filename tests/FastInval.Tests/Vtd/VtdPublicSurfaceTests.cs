using FastInval.Smmu;
using FastInval.Tests.Smmu;
using FastInval.Vtd;

namespace FastInval.Tests.Vtd;

/// <summary>The public VT-d register table and descriptor builders, checked against numbers written out from the
/// architecture and against the Linux-driver encodings of the test kit (<see cref="Dsc"/>).</summary>
public class VtdPublicSurfaceTests
{
    [Fact]
    public void RegisterOffsetsAndBits_AreTheArchitectedOnes()
    {
        Assert.Equal<uint[]>(
            [0x00u, 0x08, 0x10, 0x18, 0x1C, 0x20, 0x34, 0x38, 0x3C, 0x40, 0x44, 0x80, 0x88, 0x90, 0x9C, 0xA0, 0xA4, 0xA8, 0xAC, 0xB0, 0xB8],
            [VtdRegisters.Ver, VtdRegisters.Cap, VtdRegisters.Ecap, VtdRegisters.Gcmd, VtdRegisters.Gsts, VtdRegisters.Rtaddr,
             VtdRegisters.Fsts, VtdRegisters.Fectl, VtdRegisters.Fedata, VtdRegisters.Feaddr, VtdRegisters.Feuaddr, VtdRegisters.Iqh,
             VtdRegisters.Iqt, VtdRegisters.Iqa, VtdRegisters.Ics, VtdRegisters.Iectl, VtdRegisters.Iedata, VtdRegisters.Ieaddr,
             VtdRegisters.Ieuaddr, VtdRegisters.Iqercd, VtdRegisters.Irta]);
        Assert.Equal<uint[]>([0x8000_0000u, 0x4000_0000, 0x0400_0000, 0x0200_0000, 0x0100_0000, 0x0080_0000],
            [VtdRegisters.Te, VtdRegisters.Srtp, VtdRegisters.Qie, VtdRegisters.Ire, VtdRegisters.Sirtp, VtdRegisters.Cfi]);
        Assert.Equal<uint[]>([1u, 2, 0x10, 0x20, 0x40, 0x8000_0000, 0x4000_0000, 1],
            [VtdRegisters.Pfo, VtdRegisters.Ppf, VtdRegisters.Iqe, VtdRegisters.Ice, VtdRegisters.Ite, VtdRegisters.InterruptMask,
             VtdRegisters.InterruptPending, VtdRegisters.Iwc]);
        Assert.Equal(0x3F_0000_0000_0000UL, VtdRegisters.CapMamvMask);
        Assert.Equal(0xF0_0000UL, VtdRegisters.EcapMhmvMask);
        Assert.Equal(0x7FFF0UL, VtdRegisters.QueueOffsetMask);
        Assert.Equal(0x800UL, VtdRegisters.IqaDw);
        Assert.Equal(0xFFFF_0000_0000UL, VtdRegisters.ItesidMask);
        Assert.Equal(0xFFFF_0000_0000_0000UL, VtdRegisters.IcesidMask);
    }

    [Fact]
    public void Builders_EncodeAsTheLinuxDriverDoes()
    {
        var r = new Random(11);
        for (int i = 0; i < 2000; i++)
        {
            ushort did = (ushort)r.Next(0x1_0000), sid = (ushort)r.Next(0x1_0000), pfsid = (ushort)r.Next(0x1_0000);
            uint pasid = (uint)r.Next(0x10_0000);
            int am = r.Next(64), fm = r.Next(4), mip = r.Next(32), im = r.Next(32), order = r.Next(1, 20);
            bool ih = r.Next(2) == 1, dr = r.Next(2) == 1, dw = r.Next(2) == 1, flag = r.Next(2) == 1;
            ulong page = (ulong)r.NextInt64(1L << 40) << 12;
            ulong aligned = page & ~((4096UL << order) - 1);
            uint data = (uint)r.Next();

            Assert.Equal(Dsc.Cc(1), VtdDescriptor.ContextCacheGlobal());
            Assert.Equal(Dsc.Cc(2, did), VtdDescriptor.ContextCacheDomain(did));
            Assert.Equal(Dsc.Cc(3, did, sid, fm), VtdDescriptor.ContextCacheDevice(did, sid, fm));
            Assert.Equal(Dsc.Iotlb(1, dr: dr, dw: dw), VtdDescriptor.IotlbGlobal(dr, dw));
            Assert.Equal(Dsc.Iotlb(2, did, dr: dr, dw: dw), VtdDescriptor.IotlbDomain(did, dr, dw));
            Assert.Equal(Dsc.Iotlb(3, did, page | 0xABC, am, ih, dr, dw), VtdDescriptor.IotlbPages(did, page | 0xABC, am, ih, dr, dw));
            Assert.Equal(Dsc.DevTlb(sid, page, 0, pfsid, mip), VtdDescriptor.DeviceTlb(sid, page, 0, pfsid, mip));
            Assert.Equal(Dsc.DevTlb(sid, aligned, order, pfsid, mip), VtdDescriptor.DeviceTlb(sid, page, order, pfsid, mip));
            Assert.Equal(Dsc.Iec(), VtdDescriptor.InterruptEntryCacheGlobal());
            Assert.Equal(Dsc.Iec(true, im, sid), VtdDescriptor.InterruptEntryCacheIndex(sid, im));
            Assert.Equal(Dsc.Wait(flag, ih, dr, dw, data, page | 0x4), VtdDescriptor.Wait(flag, ih, data, page | 0x7, dr, dw));
            Assert.Equal(Dsc.PIotlb(2, did, pasid), VtdDescriptor.PasidIotlbPasid(did, pasid));
            Assert.Equal(Dsc.PIotlb(3, did, pasid, page, am, ih), VtdDescriptor.PasidIotlbPages(did, pasid, page, am, ih));
            Assert.Equal(Dsc.Pc(0, did), VtdDescriptor.PasidCacheDomain(did));
            Assert.Equal(Dsc.Pc(1, did, pasid), VtdDescriptor.PasidCachePasid(did, pasid));
            Assert.Equal(Dsc.Pc(3), VtdDescriptor.PasidCacheGlobal());
            Assert.Equal(Dsc.PDevTlb(sid, pasid, page, 0, flag, pfsid, mip), VtdDescriptor.PasidDeviceTlb(sid, pasid, page, 0, flag, pfsid, mip));
            Assert.Equal(Dsc.PDevTlb(sid, pasid, aligned, order, flag, pfsid, mip), VtdDescriptor.PasidDeviceTlb(sid, pasid, page, order, flag, pfsid, mip));
        }
    }

    [Fact]
    public void Builders_RefuseValuesThatDoNotFitTheirField()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdDescriptor.ContextCacheDevice(1, 2, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdDescriptor.IotlbPages(1, 0, 64));
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdDescriptor.IotlbPages(1, 0, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdDescriptor.DeviceTlb(1, 0, 53));
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdDescriptor.DeviceTlb(1, 0, 0, mip: 32));
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdDescriptor.InterruptEntryCacheIndex(1, 32));
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdDescriptor.PasidIotlbPasid(1, 0x10_0000));
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdDescriptor.PasidCachePasid(1, 0x10_0000));
        Assert.Throws<ArgumentOutOfRangeException>(() => VtdDescriptor.PasidDeviceTlb(1, 0x10_0000, 0));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryBuilder_IsAcceptedByAFullFeaturedUnit_AndTheWaitCompletes(bool wide)
    {
        using var rig = new VtdRig(wide ? null : new VtdOptions { ScalableMode = false });
        rig.Enable(wide, qs: 1);
        if (wide)
        {
            rig.SetTranslationMode(1);
        }

        List<VtdDescriptor> all =
        [
            VtdDescriptor.ContextCacheGlobal(), VtdDescriptor.ContextCacheDomain(3), VtdDescriptor.ContextCacheDevice(3, 0x10, 2),
            VtdDescriptor.IotlbGlobal(true, true), VtdDescriptor.IotlbDomain(3), VtdDescriptor.IotlbPages(3, 0x4000, 2, true),
            VtdDescriptor.DeviceTlb(0x10, 0x8000, 3, 0x10, 1), VtdDescriptor.InterruptEntryCacheGlobal(), VtdDescriptor.InterruptEntryCacheIndex(8, 3),
            VtdDescriptor.Wait(statusWrite: true, interrupt: false, 7, VtdRig.StatusBase),
        ];
        if (wide)
        {
            all = [.. all.Where(d => d.Type is 0x3 or 0x4 or 0x5)]; // scalable mode: only the PASID-based forms of 1, 2 (and 3, 4, 5)
            all.InsertRange(0,
            [
                VtdDescriptor.PasidIotlbPasid(3, 5), VtdDescriptor.PasidIotlbPages(3, 5, 0x4000, 1, true), VtdDescriptor.PasidCacheDomain(3),
                VtdDescriptor.PasidCachePasid(3, 5), VtdDescriptor.PasidCacheGlobal(), VtdDescriptor.PasidDeviceTlb(0x10, 5, 0x8000, 2, true, 0x10, 1),
            ]);
        }

        rig.Submit([.. all]);
        Assert.Equal(0u, rig.Fsts);
        Assert.Equal(all.Count, rig.Head);
        Assert.Equal(7u, rig.StatusAt(0));
    }

    [Fact]
    public void UnitsOverACallersEngine_ShareItsCaches_AndDisposingThemLeavesItUsable()
    {
        using var engine = new InvalidationEngine(new EngineOptions { IotlbCapacity = 1024, DeviceTlbCapacity = 64, ConfigCacheCapacity = 64 });
        var memory = new GuestMemory();
        byte[] vtdQueue = new byte[4096], smmuQueue = new byte[4096];
        memory.Map(0x10_0000, vtdQueue);
        memory.Map(0x40_0000, smmuQueue);
        var vtd = new VtdIommu(memory, engine, new VtdOptions { ScalableMode = false });
        var smmu = new SmmuV3(memory, engine);
        Assert.Same(engine, vtd.Engine);
        Assert.Same(engine, smmu.Engine);

        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 7, AddressSpace.None, 0x1000, 0x1000));
        engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 2, 9, 0x2000, 0x2000));
        VtdDescriptor.IotlbDomain(7).Write(vtdQueue.AsSpan(0, 16));
        vtd.WriteRegister(VtdRegisters.Iqa, 0x10_0000, 8);
        vtd.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
        vtd.WriteRegister(VtdRegisters.Iqt, 16, 4);
        Assert.Equal(1, engine.Iotlb.Count);                         // the VT-d unit removed its domain's entry from the shared IOTLB

        Cmd.NhAsid(2, 9).Write(smmuQueue.AsSpan(0, 16));
        smmu.WriteRegister(SmmuRegisters.CmdqBase, 0x40_0000 | 4, 8);
        smmu.WriteRegister(SmmuRegisters.Cr0, SmmuRegisters.Cr0CmdqEn | SmmuRegisters.Cr0SmmuEn, 4);
        smmu.WriteRegister(SmmuRegisters.CmdqProd, 1, 4);
        Assert.Equal(0, engine.Iotlb.Count);

        vtd.Dispose();
        smmu.Dispose();
        Assert.Equal(FillResult.Inserted, engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 7, AddressSpace.None, 0x1000, 0x1000)));
        Assert.True(engine.Iotlb.TryLookup(TranslationStage.Stage2, 7, AddressSpace.None, 0x1000, out _));
    }

    [Fact]
    public void CallersEngine_WithConflictingOptionsOrNull_IsRefused_AndItsFaultPlanDecides()
    {
        using var engine = new InvalidationEngine(new EngineOptions { FaultPlan = new FaultPlan { FetchErrorOrdinals = [0] } });
        var memory = new GuestMemory();
        Assert.Throws<ArgumentException>(() => new VtdIommu(memory, engine, new VtdOptions { FaultPlan = FaultPlan.None }));
        Assert.Throws<ArgumentException>(() => new VtdIommu(memory, engine, new VtdOptions { Engine = new EngineOptions() }));
        Assert.Throws<ArgumentException>(() => new SmmuV3(memory, engine, new SmmuOptions { FaultPlan = FaultPlan.None }));
        Assert.Throws<ArgumentException>(() => new SmmuV3(memory, engine, new SmmuOptions { Engine = new EngineOptions() }));
        Assert.Throws<ArgumentNullException>(() => new VtdIommu(memory, (InvalidationEngine)null!));
        Assert.Throws<ArgumentNullException>(() => new SmmuV3(memory, (InvalidationEngine)null!));
        Assert.Throws<ArgumentNullException>(() => new VtdIommu((GuestAddressSpace)null!, engine));

        byte[] queue = new byte[4096];
        memory.Map(0x10_0000, queue);
        using var vtd = new VtdIommu(memory, engine, new VtdOptions { ScalableMode = false });
        VtdDescriptor.IotlbGlobal().Write(queue.AsSpan(0, 16));
        vtd.WriteRegister(VtdRegisters.Iqa, 0x10_0000, 8);
        vtd.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
        vtd.WriteRegister(VtdRegisters.Iqt, 16, 4);
        Assert.Equal(VtdRegisters.Iqe, (uint)vtd.ReadRegister(VtdRegisters.Fsts, 4));      // the engine's plan failed fetch 0
        Assert.Equal((ulong)VtdQueueError.FetchError, vtd.ReadRegister(VtdRegisters.Iqercd, 8) & VtdRegisters.IqeiMask);
    }
}
