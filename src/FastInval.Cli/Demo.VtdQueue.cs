using FastInval.Vtd;

namespace FastInval.Cli;

internal static partial class Demo
{
    // vm3's guest driver programs a VT-d unit's invalidation queue: a 4 KiB ring of 256-bit descriptors at guest-physical
    // QueueGpa, wait statuses written to StatusGpa. The host gives the unit the guest's RAM; the unit fetches from it.
    private const ulong QueueGpa = 0x10_0000;
    private const ulong StatusGpa = 0x20_0000;
    private const int Slot = 32;
    private const ushort QueueDid = 1;
    private const ushort QueueNicSid = 0x0100;

    /// <summary>One screen: descriptors in guest RAM and a wait; then a device that does not answer (ITE, the wait
    /// aborted), and the driver's recovery (clear ITE, resubmit), with the registers and caches after each doorbell.</summary>
    private static void RunVtdQueueStep(TextWriter o, SelfChecks checks, int step)
    {
        o.WriteLine();
        o.WriteLine($"Step {step}. vm3's driver uses a VT-d invalidation queue in guest RAM; its NIC stops answering once.");
        byte[] queue = new byte[4096], status = new byte[4096];
        var ram = new GuestMemory();
        ram.Map(QueueGpa, queue);
        ram.Map(StatusGpa, status);
        var msis = new List<string>();
        using var unit = new VtdIommu(ram, new VtdOptions
        {
            Msi = (address, data) => msis.Add(address == 0xFEE0_1000 ? "completion event" : $"fault event (data {data:x})"),
            Engine = new EngineOptions { IotlbCapacity = 1024, DeviceTlbCapacity = 256, ConfigCacheCapacity = 64 },
        });
        InvalidationEngine engine = unit.Engine;

        // The driver's set-up: event addresses, unmasked events, scalable mode (RTADDR.TTM = 01), the queue, QIE.
        unit.WriteRegister(VtdRegisters.Feaddr, 0xFEE0_0000, 4);
        unit.WriteRegister(VtdRegisters.Fedata, 0x41, 4);
        unit.WriteRegister(VtdRegisters.Ieaddr, 0xFEE0_1000, 4);
        unit.WriteRegister(VtdRegisters.Iedata, 0x42, 4);
        unit.WriteRegister(VtdRegisters.Fectl, 0, 4);
        unit.WriteRegister(VtdRegisters.Iectl, 0, 4);
        unit.WriteRegister(VtdRegisters.Rtaddr, 0x30_0000UL | (1UL << VtdRegisters.RtaddrTtmShift), 8);
        unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Srtp, 4);
        unit.WriteRegister(VtdRegisters.Iqt, 0, 8);
        unit.WriteRegister(VtdRegisters.Iqa, QueueGpa | VtdRegisters.IqaDw, 8);
        unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);

        for (ulong p = 0; p < 32; p++)
        {
            engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, QueueDid, 0, PagesBase + (p * Page), 0x60_0000_0000UL + (p * Page)));
            engine.DeviceTlb.Fill(new DeviceTlbEntry(QueueNicSid, AddressSpace.None, PagesBase + (p * Page), 0x60_0000_0000UL + (p * Page)));
        }

        int tail = 0;
        void Submit(params VtdDescriptor[] descriptors)
        {
            foreach (VtdDescriptor d in descriptors)
            {
                d.Write(queue.AsSpan(tail * Slot, Slot));
                tail = (tail + 1) % (queue.Length / Slot);
            }

            unit.WriteRegister(VtdRegisters.Iqt, (ulong)(tail * Slot), 8);   // the doorbell: the unit runs the queue now
        }

        uint Status() => BitConverter.ToUInt32(status, 0);
        uint Fsts() => (uint)unit.ReadRegister(VtdRegisters.Fsts, 4);
        ulong Iqh() => unit.ReadRegister(VtdRegisters.Iqh, 8) / Slot;
        bool Iotlb(ulong a) => engine.Iotlb.TryLookup(TranslationStage.Nested, QueueDid, 0, a, out _);
        bool Atc(ulong a) => engine.DeviceTlb.TryLookup(QueueNicSid, AddressSpace.None, a, out _);
        string Events()
        {
            string s = msis.Count == 0 ? "none" : string.Join(", ", msis);
            msis.Clear();
            return s;
        }

        // 1. Pages 0-7: PASID-based IOTLB (AM=3), device TLB of the NIC (8 pages), wait writing 1 with an interrupt.
        Submit(VtdDescriptor.PasidIotlbPages(QueueDid, 0, PagesBase, addressMask: 3),
            VtdDescriptor.DeviceTlb(QueueNicSid, PagesBase, log2Pages: 3),
            VtdDescriptor.Wait(statusWrite: true, interrupt: true, statusData: 1, statusAddress: StatusGpa));
        o.WriteLine($"  doorbell 1:   slots 0-2: PASID-IOTLB DID {QueueDid} {Hex(PagesBase)} AM=3, device TLB {Bdf(QueueNicSid)} 8 pages, wait (status 1, IF)");
        string events1 = Events();
        o.WriteLine($"  unit did:     IQH = {Iqh()}, status = {Status()}, FSTS = {Fsts():x}, events: {events1} (acknowledged); page {Hex(PagesBase)}: IOTLB {HitWord(Iotlb(PagesBase))}, NIC TLB {HitWord(Atc(PagesBase))}");
        checks.Check(Status() == 1 && Iqh() == 3 && !Iotlb(PagesBase) && !Atc(PagesBase) && events1 == "completion event", "the first wait completed after both invalidations");
        unit.WriteRegister(VtdRegisters.Ics, VtdRegisters.Iwc, 4);         // the driver acknowledges the completion (ICS.IWC)

        // 2. Pages 8-15 while the NIC does not answer: ITE, the wait after it is aborted.
        ulong second = PagesBase + (8 * Page);
        engine.FaultPlan = new FaultPlan { TimeoutSourceIds = [QueueNicSid] };
        Submit(VtdDescriptor.PasidIotlbPages(QueueDid, 0, second, addressMask: 3),
            VtdDescriptor.DeviceTlb(QueueNicSid, second, log2Pages: 3),
            VtdDescriptor.Wait(statusWrite: true, interrupt: true, statusData: 2, statusAddress: StatusGpa));
        ushort itesid = (ushort)((unit.ReadRegister(VtdRegisters.Iqercd, 8) & VtdRegisters.ItesidMask) >> VtdRegisters.ItesidShift);
        o.WriteLine($"  doorbell 2:   slots 3-5: the same for {Hex(second)}, wait (status 2); the NIC does not answer");
        string events2 = Events();
        o.WriteLine($"  unit did:     IQH = {Iqh()}, status = {Status()} (wait aborted), FSTS.ITE = {((Fsts() & VtdRegisters.Ite) != 0 ? 1 : 0)}, ITESID = {Bdf(itesid)}, events: {events2}");
        o.WriteLine($"                page {Hex(second)}: IOTLB {HitWord(Iotlb(second))}, NIC TLB {HitWord(Atc(second))} (stale until the retry)");
        checks.Check((Fsts() & VtdRegisters.Ite) != 0 && itesid == QueueNicSid && Status() == 1 && Iqh() == 6 && !Iotlb(second) && Atc(second)
            && events2 == "fault event (data 41)",
            "the time-out is an ITE naming the NIC, the wait after it is aborted, and the NIC keeps its entries");

        // 3. The driver's recovery: clear ITE (write 1), and once the device answers, resubmit the device-TLB part.
        engine.FaultPlan = new FaultPlan();
        unit.WriteRegister(VtdRegisters.Fsts, VtdRegisters.Ite, 4);
        Submit(VtdDescriptor.DeviceTlb(QueueNicSid, second, log2Pages: 3),
            VtdDescriptor.Wait(statusWrite: true, interrupt: true, statusData: 3, statusAddress: StatusGpa));
        o.WriteLine("  recovery:     the driver clears FSTS.ITE and resubmits slots 6-7: device TLB of the NIC, wait (status 3)");
        string events3 = Events();
        o.WriteLine($"  unit did:     IQH = {Iqh()}, status = {Status()}, FSTS = {Fsts():x}, events: {events3}; page {Hex(second)}: NIC TLB {HitWord(Atc(second))}");
        checks.Check(Status() == 3 && Fsts() == 0 && Iqh() == 8 && !Atc(second) && events3 == "completion event", "after the retry the wait completes and the NIC's entries are gone");
    }
}
