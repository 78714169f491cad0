global using Reg = FastInval.Vtd.VtdRegisters;
using FastInval.Reference.Vtd;
using FastInval.Tests.Memory;
using FastInval.Vtd;

namespace FastInval.Tests.Vtd;

/// <summary>Descriptor builders in the Linux driver's encoding (include/…/intel/iommu.h QI_* macros), written from the
/// field tables of spec/vtd-queued-invalidation.md §1.</summary>
internal static class Dsc
{
    public static VtdDescriptor Cc(int g, ushort did = 0, ushort sid = 0, int fm = 0) =>
        new(0x1 | ((ulong)(uint)g << 4) | ((ulong)did << 16) | ((ulong)sid << 32) | ((ulong)(uint)fm << 48), 0);

    public static VtdDescriptor Iotlb(int g, ushort did = 0, ulong addr = 0, int am = 0, bool ih = false, bool dr = false, bool dw = false) =>
        new(0x2 | ((ulong)(uint)g << 4) | (dw ? 1UL << 6 : 0) | (dr ? 1UL << 7 : 0) | ((ulong)did << 16),
            (addr & ~0xFFFUL) | (ih ? 1UL << 6 : 0) | (uint)am);

    /// <summary>Linux <c>qi_desc_dev_iotlb</c>: mask = log2 of the page count (0 = one page, S = 0).</summary>
    public static VtdDescriptor DevTlb(ushort sid, ulong addr = 0, int mask = 0, ushort pfsid = 0, int mip = 0)
    {
        ulong qw1 = addr & ~0xFFFUL;
        if (mask != 0)
        {
            qw1 |= ((1UL << (12 + mask - 1)) - 1) & ~0xFFFUL;
            qw1 |= 1;
        }

        return new(0x3 | ((ulong)(pfsid & 0xF) << 12) | ((ulong)(uint)mip << 16) | ((ulong)sid << 32) | ((ulong)(pfsid >> 4) << 52), qw1);
    }

    public static VtdDescriptor Iec(bool selective = false, int im = 0, ushort iidx = 0) =>
        new(0x4 | (selective ? 1UL << 4 : 0) | ((ulong)(uint)im << 27) | ((ulong)iidx << 32), 0);

    public static VtdDescriptor Wait(bool sw = true, bool iflag = false, bool fn = false, bool pd = false, uint data = 0, ulong addr = 0) =>
        new(0x5 | (iflag ? 1UL << 4 : 0) | (sw ? 1UL << 5 : 0) | (fn ? 1UL << 6 : 0) | (pd ? 1UL << 7 : 0) | ((ulong)data << 32), addr);

    public static VtdDescriptor PIotlb(int g, ushort did, uint pasid, ulong addr = 0, int am = 0, bool ih = false) =>
        new(0x6 | ((ulong)(uint)g << 4) | ((ulong)did << 16) | ((ulong)pasid << 32),
            g == 3 ? (addr & ~0xFFFUL) | (ih ? 1UL << 6 : 0) | (uint)am : 0);

    public static VtdDescriptor Pc(int g, ushort did = 0, uint pasid = 0) =>
        new(0x7 | ((ulong)(uint)g << 4) | ((ulong)did << 16) | ((ulong)pasid << 32), 0);

    /// <summary>Linux <c>qi_desc_dev_iotlb_pasid</c>: sizeOrder = log2 of the page count (0 = one page, S = 0).</summary>
    public static VtdDescriptor PDevTlb(ushort sid, uint pasid, ulong addr = 0, int sizeOrder = 0, bool global = false, ushort pfsid = 0, int mip = 0)
    {
        ulong qw1 = addr & ~0xFFFUL;
        if (sizeOrder != 0)
        {
            qw1 |= ((1UL << sizeOrder) - 1) << 12;          // PFN bits 0..order-1
            qw1 &= ~(1UL << (12 + sizeOrder - 1));          // … with bit order-1 clear
            qw1 |= 1UL << 11;                               // S
        }

        return new(0x8 | ((ulong)(uint)mip << 4) | ((ulong)(pfsid & 0xF) << 12) | ((ulong)sid << 16) | ((ulong)pasid << 32) |
                   ((ulong)(pfsid >> 4) << 52), qw1 | (global ? 1UL : 0));
    }

    /// <summary>A descriptor with one extra bit set in a word.</summary>
    public static VtdDescriptor With(this VtdDescriptor d, int word, int bit) => word switch
    {
        0 => new(d.Qw0 | (1UL << bit), d.Qw1, d.Qw2, d.Qw3),
        1 => new(d.Qw0, d.Qw1 | (1UL << bit), d.Qw2, d.Qw3),
        2 => new(d.Qw0, d.Qw1, d.Qw2 | (1UL << bit), d.Qw3),
        _ => new(d.Qw0, d.Qw1, d.Qw2, d.Qw3 | (1UL << bit)),
    };
}

/// <summary>
/// A unit over a small guest memory: the queue at <see cref="QueueBase"/> (room for QS up to 2), a status page at
/// <see cref="StatusBase"/>, every MSI recorded; helpers that play the guest driver's register writes.
/// </summary>
internal sealed class VtdRig : IDisposable
{
    public const ulong QueueBase = 0x10_0000;
    public const ulong StatusBase = 0x20_0000;
    public const ulong Unmapped = 0x90_0000;
    public const ulong FeAddress = 0xFEE0_0000, IeAddress = 0xFEE0_1000;
    public const uint FeData = 0x41, IeData = 0x42;

    public readonly byte[] Queue = GuestSpaces.Pinned(4 * 4096);
    public readonly byte[] Status = GuestSpaces.Pinned(4096);
    public readonly GuestMemory Memory = new();
    public readonly GuestAddressSpace Space;
    public readonly List<(ulong Address, uint Data)> Msis = [];
    public readonly VtdIommu Unit;

    public VtdRig(VtdOptions? options = null, bool unmaskInterrupts = true, GuestMemoryKind kind = GuestMemoryKind.Managed)
    {
        Space = GuestSpaces.Over(kind, Memory, (QueueBase, Queue), (StatusBase, Status));
        options ??= new VtdOptions();
        Unit = new VtdIommu(Space, VtdDifferential.WithHost(options, (a, d) => Msis.Add((a, d)), options.FaultPlan,
            options.Engine ?? new EngineOptions { IotlbCapacity = 1024, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 }));
        Write32(Reg.Feaddr, (uint)FeAddress);
        Write32(Reg.Fedata, FeData);
        Write32(Reg.Ieaddr, (uint)IeAddress);
        Write32(Reg.Iedata, IeData);
        if (unmaskInterrupts)
        {
            Write32(Reg.Fectl, 0);
            Write32(Reg.Iectl, 0);
        }
    }

    public InvalidationEngine Engine => Unit.Engine;

    public bool Wide { get; private set; }

    public int Width => Wide ? 32 : 16;

    public uint Read32(uint offset) => (uint)Unit.ReadRegister(offset, 4);

    public ulong Read64(uint offset) => Unit.ReadRegister(offset, 8);

    public void Write32(uint offset, uint value) => Unit.WriteRegister(offset, value, 4);

    public void Write64(uint offset, ulong value) => Unit.WriteRegister(offset, value, 8);

    /// <summary>Programs IQA (IQT = 0 first) and enables queued invalidation, as Linux <c>__dmar_enable_qi</c>.</summary>
    public void Enable(bool wide = true, int qs = 0, ulong? queueBase = null)
    {
        Wide = wide;
        Write32(Reg.Iqt, 0);
        Write64(Reg.Iqa, (queueBase ?? QueueBase) | (wide ? 1UL << 11 : 0) | (uint)qs);
        Write32(Reg.Gcmd, Read32(Reg.Gsts) | Reg.Qie);
    }

    public void Disable() => Write32(Reg.Gcmd, Read32(Reg.Gsts) & ~Reg.Qie & ~(Reg.Srtp | Reg.Sirtp));

    /// <summary>Latches RTADDR.TTM (0 legacy, 1 scalable) with GCMD.SRTP.</summary>
    public void SetTranslationMode(int ttm)
    {
        Write64(Reg.Rtaddr, 0x30_0000UL | ((ulong)(uint)ttm << 10));
        Write32(Reg.Gcmd, (Read32(Reg.Gsts) & ~(Reg.Srtp | Reg.Sirtp)) | Reg.Srtp);
    }

    public int Slots => (int)((4096UL << (int)(Read64(Reg.Iqa) & 7)) / (ulong)Width);

    public int Head => (int)(Read64(Reg.Iqh) / (ulong)Width);

    public int Tail => (int)(Read64(Reg.Iqt) / (ulong)Width);

    /// <summary>Writes a descriptor into slot <paramref name="slot"/> of the queue.</summary>
    public void Put(int slot, VtdDescriptor d) => d.Write(Queue.AsSpan(slot * Width, Width));

    /// <summary>Appends descriptors at the tail and rings the doorbell once.</summary>
    public void Submit(params VtdDescriptor[] descriptors)
    {
        int tail = Tail;
        foreach (VtdDescriptor d in descriptors)
        {
            Put(tail, d);
            tail = (tail + 1) % Slots;
        }

        Write32(Reg.Iqt, (uint)(tail * Width));
    }

    public uint Fsts => Read32(Reg.Fsts);

    public int Iqei => (int)(Read64(Reg.Iqercd) & 0xF);

    public ushort Itesid => (ushort)(Read64(Reg.Iqercd) >> 32);

    public ushort Icesid => (ushort)(Read64(Reg.Iqercd) >> 48);

    public uint StatusAt(int offset) => BitConverter.ToUInt32(Status, offset);

    public static VtdDescriptor StatusWait(int offset, uint data = 2, bool iflag = false) =>
        Dsc.Wait(sw: true, iflag: iflag, data: data, addr: StatusBase + (ulong)offset);

    public void Dispose() => Unit.Dispose();
}
